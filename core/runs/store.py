"""The run store: `RECSCOPE_HOME/runs/<run_id>/` with run.json, progress.jsonl, job.log, results.

Every background job is a run here, whatever it computes; run.json's `kind` says which:
"train" (a model: model/, per_user.parquet, recs.parquet), "leaderboard" or "transfer"
(scenario analyses: result.json, recs.parquet). A record without a kind is a training run
(records written before kinds existed). File names inside a run folder are fixed; nothing a
user types becomes a path, and a run id is checked before it is joined to one.

Writes are atomic (temp file + rename) so a reader never sees half a record, and run ids
are unique per call so two browser sessions never overwrite each other's runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from core.errors import CancelledError, RecScopeError
from core.storage import read_json, write_json

STATUSES = ("queued", "running", "finished", "failed", "cancelled")
TRAIN = "train"
KINDS = (TRAIN, "leaderboard", "transfer")
RESULT = "result.json"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def kind_of(record: dict) -> str:
    """The job kind of a run record; records without one are training runs."""
    return record.get("kind") or TRAIN


def workspace_home(home: str | Path | None = None) -> Path:
    """The workspace folder: explicit, else RECSCOPE_HOME, else ./workspace."""
    path = Path(home or os.environ.get("RECSCOPE_HOME") or "workspace").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


class RunStore:
    """Reads and writes run folders under `<home>/runs`."""

    def __init__(self, home: str | Path | None = None) -> None:
        self.home = workspace_home(home)
        self.root = self.home / "runs"
        self.root.mkdir(parents=True, exist_ok=True)

    def new_run(self, record: dict) -> str:
        """Create a run folder and its first record; returns the new run id."""
        if kind_of(record) not in KINDS:
            raise RecScopeError(f"Job kind '{record['kind']}' is unknown; use one of {KINDS}.")
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        prefix = record.get("model") if kind_of(record) == TRAIN else record["kind"]
        run_id = f"{prefix or 'run'}-{stamp}-{secrets.token_hex(3)}"
        check_run_id(run_id)
        folder = self.root / run_id
        folder.mkdir(parents=True, exist_ok=False)
        record = {
            "run_id": run_id,
            "kind": TRAIN,
            "status": "queued",
            # microseconds: runs created within one second (a script, a test) still sort
            # newest first; with whole seconds their order fell to the folder listing
            "created_at": now_iso("microseconds"),
            "metrics": {},
            "timings": {},
            **record,
        }
        record["run_id"] = run_id
        write_json(folder / "run.json", record)
        return run_id

    def folder(self, run_id: str) -> Path:
        folder = self.root / check_run_id(run_id)
        if not (folder / "run.json").exists():
            raise RecScopeError(
                f"There is no run '{run_id}' in {self.root}; `recscope runs` lists the runs."
            )
        return folder

    def model_dir(self, run_id: str) -> Path:
        return self.folder(run_id) / "model"

    def read(self, run_id: str) -> dict:
        return read_json(self.folder(run_id) / "run.json")

    def update(self, run_id: str, **changes) -> dict:
        """Merge `changes` into run.json (dict values merge one level deep)."""
        folder = self.folder(run_id)
        # the job, the page (cancel) and `refresh` all update one record: hold its lock
        with open(folder / ".run.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            record = self.read(run_id)
            for key, value in changes.items():
                if isinstance(value, dict) and isinstance(record.get(key), dict):
                    record[key] = {**record[key], **value}
                else:
                    record[key] = value
            record["updated_at"] = now_iso()
            write_json(folder / "run.json", record)
        return record

    def append_progress(self, run_id: str, event: dict) -> None:
        """One JSON line per event; a line is written whole with a single write call."""
        line = json.dumps({"time": time.time(), **event}) + "\n"
        with open(self.folder(run_id) / "progress.jsonl", "a", encoding="utf-8") as handle:
            handle.write(line)

    def progress(self, run_id: str) -> list[dict]:
        path = self.folder(run_id) / "progress.jsonl"
        if not path.exists():
            return []
        events = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line being written right now
        return events

    def write_result(self, run_id: str, payload: dict) -> None:
        """The job's JSON result (leaderboard, transfer), beside its run.json."""
        write_json(self.folder(run_id) / RESULT, payload)

    def result(self, run_id: str) -> dict | None:
        """The job's JSON result, or None before it has one."""
        path = self.folder(run_id) / RESULT
        return read_json(path) if path.exists() else None

    def list(self, dataset: str | None = None, kind: str | None = TRAIN) -> list[dict]:
        """Run records of one `kind` (None: every kind), newest first; unreadable ones skipped.

        The default lists training runs only, which is what every model page wants.
        """
        records = []
        for folder in self.root.iterdir():
            path = folder / "run.json"
            if not path.exists():
                continue
            try:
                record = read_json(path)
            except (OSError, json.JSONDecodeError):
                continue
            if dataset is not None and record.get("dataset") != dataset:
                continue
            if kind is None or kind_of(record) == kind:
                records.append(record)
        return sorted(records, key=_created_key, reverse=True)

    def delete(self, run_id: str) -> None:
        import shutil

        shutil.rmtree(self.folder(run_id))


def check_run_id(run_id: str) -> str:
    """`run_id` if it can name a run folder (no separators, no '..'), else a clear error."""
    if not _RUN_ID.match(run_id or "") or ".." in run_id:
        raise RecScopeError(
            f"'{run_id}' is not a run id; run ids are letters, digits, '_', '-' and '.' as "
            "`recscope runs` lists them."
        )
    return run_id


def _created_key(record: dict) -> datetime:
    """Sort key by creation time; parsed, so whole-second and microsecond stamps compare."""
    try:
        return datetime.fromisoformat(record.get("created_at", ""))
    except (TypeError, ValueError):
        return datetime.min.replace(tzinfo=timezone.utc)


@contextlib.contextmanager
def recording_outcome(store: RunStore, run_id: str, what: str) -> Iterator[None]:
    """End the record of a job body that stops early: cancelled, or failed with one sentence.

    A `CancelledError` marks the run cancelled and is swallowed (the caller then returns the
    record); a `RecScopeError` marks it failed with its message and propagates; anything
    else is logged with its traceback, and the run fails with a one-sentence message that
    propagates as a `RecScopeError`. `what` starts that sentence ("Training", "The job").
    """
    try:
        yield
    except CancelledError:
        store.update(run_id, status="cancelled", finished_at=now_iso())
    except RecScopeError as err:
        store.update(run_id, status="failed", error=str(err), finished_at=now_iso())
        raise
    except Exception as err:
        logging.getLogger(__name__).exception("run %s failed", run_id)
        message = f"{what} failed with an unexpected {type(err).__name__}: {err}"
        store.update(run_id, status="failed", error=message, finished_at=now_iso())
        raise RecScopeError(message) from err


def now_iso(timespec: str = "seconds") -> str:
    """The current UTC time as ISO 8601 text (whole seconds unless asked otherwise)."""
    return datetime.now(timezone.utc).isoformat(timespec=timespec)
