"""The run store: `RECSCOPE_HOME/runs/<run_id>/` with run.json, progress.jsonl, model/, tables.

Writes are atomic (temp file + rename) so a reader never sees half a record, and run ids
are unique per call so two browser sessions never overwrite each other's runs.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path

from core.errors import RecScopeError
from core.storage import read_json, write_json

STATUSES = ("queued", "running", "finished", "failed", "cancelled")


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
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        run_id = f"{record.get('model', 'run')}-{stamp}-{secrets.token_hex(3)}"
        folder = self.root / run_id
        folder.mkdir(parents=True, exist_ok=False)
        record = {
            "run_id": run_id,
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
        folder = self.root / run_id
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
        record = self.read(run_id)
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(record.get(key), dict):
                record[key] = {**record[key], **value}
            else:
                record[key] = value
        record["updated_at"] = now_iso()
        write_json(self.folder(run_id) / "run.json", record)
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

    def list(self, dataset: str | None = None) -> list[dict]:
        """All run records, newest first; unreadable folders are skipped."""
        records = []
        for folder in self.root.iterdir():
            path = folder / "run.json"
            if not path.exists():
                continue
            try:
                record = read_json(path)
            except (OSError, json.JSONDecodeError):
                continue
            if dataset is None or record.get("dataset") == dataset:
                records.append(record)
        return sorted(records, key=_created_key, reverse=True)

    def delete(self, run_id: str) -> None:
        import shutil

        shutil.rmtree(self.folder(run_id))


def _created_key(record: dict) -> datetime:
    """Sort key by creation time; parsed, so whole-second and microsecond stamps compare."""
    try:
        return datetime.fromisoformat(record.get("created_at", ""))
    except (TypeError, ValueError):
        return datetime.min.replace(tzinfo=timezone.utc)


def now_iso(timespec: str = "seconds") -> str:
    """The current UTC time as ISO 8601 text (whole seconds unless asked otherwise)."""
    return datetime.now(timezone.utc).isoformat(timespec=timespec)
