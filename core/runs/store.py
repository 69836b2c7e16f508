"""The run store: `RECSCOPE_HOME/runs/<run_id>/` with run.json, progress.jsonl, job.log, results.

Every background job is a run here, whatever it computes; run.json's `kind` says which:
"train" (a model: model/, per_user.parquet, recs.parquet), "leaderboard" or "transfer"
(scenario analyses: result.json, recs.parquet). A record without a kind is a training run
(records written before kinds existed). File names inside a run folder are fixed; nothing a
user types becomes a path, and a run id is checked before it is joined to one.

Writes are atomic (temp file + rename) so a reader never sees half a record; every
read-modify-write of run.json holds the record's file lock, so concurrent writers (the job,
its heartbeat, a Cancel, a status refresh) never lose each other's keys. Run ids are unique
per call so two browser sessions never overwrite each other's runs.

Reads refresh: `read` and `list` turn an active run whose process is gone (core.runs.liveness)
into "failed" with its last log line, under the lock. A run.json that cannot be read (cut
short, or JSON that is not an object) is a RecScopeError for `read` and a "failed"
placeholder in `list`, never a crash and never silently missing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from core.errors import CancelledError, RecScopeError
from core.names import check_kind, check_run_id, is_run_id
from core.runs import liveness
from core.storage import (
    file_lock,
    now_iso,
    os_error_sentence,
    read_json,
    sweep_stale,
    write_json,
)

log = logging.getLogger(__name__)

STATUSES = ("queued", "running", "finished", "failed", "cancelled")
TRAIN = "train"
KINDS = (TRAIN, "leaderboard", "transfer", "tune")
RESULT = "result.json"
RECORD = "run.json"
LOCK = ".run.lock"
#: how often (at most) one process sweeps a workspace's stale temp files
SWEEP_EVERY_S = 600.0
_swept: dict[Path, float] = {}


def kind_of(record: dict) -> str:
    """The job kind of a run record; records without one are training runs."""
    return record.get("kind") or TRAIN


def workspace_home(home: str | Path | None = None) -> Path:
    """The workspace folder: explicit, else RECSCOPE_HOME, else ./workspace."""
    path = Path(home or os.environ.get("RECSCOPE_HOME") or "workspace").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    path = path.resolve()
    _sweep(path)
    return path


class RunStore:
    """Reads and writes run folders under `<home>/runs`."""

    def __init__(self, home: str | Path | None = None) -> None:
        self.home = workspace_home(home)
        self.root = self.home / "runs"
        self.root.mkdir(parents=True, exist_ok=True)

    def new_run(self, record: dict) -> str:
        """Create a run folder and its first record; returns the new run id."""
        check_kind(kind_of(record), KINDS)
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
        try:
            write_json(folder / RECORD, record)
        except OSError as err:
            raise RecScopeError(os_error_sentence(err, "Creating the run")) from err
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
        """The run's record, refreshed (a run whose process is gone reads as failed)."""
        return self.refresh(self._load(self.folder(run_id)))

    def update(self, run_id: str, **changes) -> dict:
        """Merge `changes` into run.json (dict values merge one level deep), under its lock."""
        with self.edit(run_id) as record:
            for key, value in changes.items():
                if isinstance(value, dict) and isinstance(record.get(key), dict):
                    record[key] = {**record[key], **value}
                else:
                    record[key] = value
        return record

    @contextlib.contextmanager
    def edit(self, run_id: str) -> Iterator[dict]:
        """Check-and-set on run.json: yields the record read under its file lock; what the
        body leaves in it is written atomically when the body ends (nothing if it raises)."""
        folder = self.folder(run_id)
        with file_lock(folder / LOCK):
            record = self._load(folder)
            before = json.dumps(record, sort_keys=True, default=str)
            yield record
            if json.dumps(record, sort_keys=True, default=str) != before:
                record["updated_at"] = now_iso()
                write_json(folder / RECORD, record)

    def refresh(self, record: dict) -> dict:
        """`record`, or if its process is gone, the record marked failed (cancelled when a
        cancel was asked for) with the process's last log line. Decided again under the lock,
        so a run that finished meanwhile stays finished. If the disk refuses the write, the
        refreshed record is still returned."""
        if liveness.gone(record) is None or record.get("unreadable"):
            return record
        run_id = record["run_id"]
        try:
            with self.edit(run_id) as fresh:
                _mark_gone(fresh, self.root / run_id)
        except OSError as err:
            log.warning("could not record that run %s stopped: %s", run_id, err)
            fresh = dict(record)
            _mark_gone(fresh, self.root / run_id)
        return fresh

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
        """Run records of one `kind` (None: every kind), newest first, refreshed.

        The default lists training runs only, which is what every model page wants. A run
        whose run.json cannot be read is listed as a "failed" placeholder saying so (under
        every dataset, since its own is unknown), with the kind its run id names.
        """
        records = []
        for folder in self.root.iterdir():
            if not (folder / RECORD).exists() or not is_run_id(folder.name):
                continue
            try:
                record = self.refresh(self._load(folder))
            except RecScopeError as err:
                record = _placeholder(folder, str(err))
            mine = record.get("dataset") == dataset or record.get("unreadable")
            if dataset is not None and not mine:
                continue
            if kind is None or kind_of(record) == kind:
                records.append(record)
        return sorted(records, key=_created_key, reverse=True)

    def delete(self, run_id: str) -> None:
        import shutil

        shutil.rmtree(self.folder(run_id))

    def _load(self, folder: Path) -> dict:
        """run.json as it is on disk; a RecScopeError sentence when it cannot be read."""
        path = folder / RECORD
        try:
            record = read_json(path)
        except FileNotFoundError as err:
            raise RecScopeError(
                f"There is no run '{folder.name}' in {self.root}; `recscope runs` lists the runs."
            ) from err
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            why = f"it is cut short or not JSON ({err})"
            if isinstance(err, OSError):
                why = f"it cannot be opened ({err.strerror})"
            raise RecScopeError(_unreadable(folder, why)) from err
        if not isinstance(record, dict):
            why = f"it holds a JSON {type(record).__name__}, not an object"
            raise RecScopeError(_unreadable(folder, why))
        record.setdefault("run_id", folder.name)
        return record


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

    An `OSError` (disk full, permission denied) fails the run with a sentence naming what
    could not be written. If the record itself cannot be written then, the run's process
    ends anyway and status reads call it failed (it never stays "running").
    """
    try:
        yield
    except CancelledError:
        _record_end(store, run_id, status="cancelled")
    except RecScopeError as err:
        _record_end(store, run_id, status="failed", error=str(err))
        raise
    except OSError as err:
        log.warning("run %s failed on I/O: %s", run_id, err)
        message = os_error_sentence(err, what)
        _record_end(store, run_id, status="failed", error=message)
        raise RecScopeError(message) from err
    except Exception as err:
        log.exception("run %s failed", run_id)
        message = f"{what} failed with an unexpected {type(err).__name__}: {err}"
        _record_end(store, run_id, status="failed", error=message)
        raise RecScopeError(message) from err


def refuse_unless_queued(record: dict) -> None:
    """A RecScopeError unless `record` is queued: a run is started once, and a finished,
    failed or cancelled one is never trained (or computed) again in place."""
    status = record.get("status")
    if status != "queued":
        raise RecScopeError(
            f"Run {record.get('run_id')} is already {status}; a run is started only once, "
            "so start a new run instead."
        )


def _record_end(store: RunStore, run_id: str, **changes) -> None:
    try:
        store.update(run_id, finished_at=now_iso(), **changes)
    except (OSError, RecScopeError) as err:  # disk full, record unreadable: the error stands
        log.warning("could not record the end of run %s: %s", run_id, err)
        if changes.get("error"):  # the log keeps it: job.log's last error line is shown
            log.error("%s", changes["error"])


def _mark_gone(record: dict, folder: Path) -> None:
    """Turn an active record whose process is gone into its final state (in place)."""
    why = liveness.gone(record)
    if why is None:
        return
    record["finished_at"] = now_iso()
    if record.get("cancel_requested"):  # killed before (or instead of) stopping itself
        record["status"] = "cancelled"
        return
    record["status"] = "failed"
    record["error"] = liveness.stop_message(record, why, liveness.log_tail(folder / "job.log"))


def _unreadable(folder: Path, why: str) -> str:
    return (
        f"The record of run '{folder.name}' ({folder / RECORD}) is unreadable: {why}; delete "
        "the run folder or restore the file."
    )


def _placeholder(folder: Path, error: str) -> dict:
    """What `list` shows for a run whose run.json cannot be read."""
    prefix = folder.name.split("-", 1)[0]
    try:
        created = datetime.fromtimestamp((folder / RECORD).stat().st_mtime, timezone.utc)
    except OSError:
        created = datetime.min.replace(tzinfo=timezone.utc)
    return {
        "run_id": folder.name,
        "kind": prefix if prefix in KINDS else TRAIN,
        "dataset": None,
        "model": None,
        "status": "failed",
        "error": error,
        "unreadable": True,
        "created_at": created.isoformat(timespec="microseconds"),
        "metrics": {},
        "timings": {},
        "params": {},
    }


def _sweep(home: Path) -> None:
    """Remove stale temp files of crashed writers, at most once per SWEEP_EVERY_S."""
    now = time.monotonic()
    if now - _swept.get(home, -SWEEP_EVERY_S) < SWEEP_EVERY_S:
        return
    _swept[home] = now
    folders = [home]
    for part in ("runs", "datasets"):
        top = home / part
        if top.is_dir():
            folders.append(top)
            folders.extend(p for p in top.iterdir() if p.is_dir() and not p.name.startswith("."))
    folders.extend(p / "model" for p in folders[1:] if (p / "model").is_dir())
    removed = sweep_stale(folders)
    if removed:
        log.info("removed %d stale temp files under %s", removed, home)
