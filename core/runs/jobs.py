"""Background training jobs: each run trains in its own detached `recscope train` process.

The Streamlit script thread never trains. A job survives page reruns, closed tabs and app
restarts because it runs in a new process session; its state lives only in the run folder
(run.json + progress.jsonl), so any session can read it. One job per device at a time: a job
waits on a file lock for its device and says "queued" meanwhile.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from core.runs.store import RunStore, now_iso

ACTIVE = ("queued", "running")


def start_job(store: RunStore, run_id: str) -> int:
    """Launch `recscope train --run-id RUN` detached; returns its pid."""
    folder = store.folder(run_id)
    log = open(folder / "job.log", "ab")  # noqa: SIM115 - handed to the child process
    env = {**os.environ, "RECSCOPE_HOME": str(store.home), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "train", "--run-id", run_id, "--json"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        start_new_session=True,  # not killed with the app; its own process group
    )
    log.close()
    store.update(run_id, pid=proc.pid, job_started_at=now_iso())
    return proc.pid


@contextlib.contextmanager
def device_slot(store: RunStore, run_id: str, device_key: str) -> Iterator[None]:
    """Hold the device's lock while training; others block here and show as queued."""
    locks = store.home / "locks"
    locks.mkdir(exist_ok=True)
    with open(locks / f"{device_key.replace(':', '_')}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            store.update(run_id, status="queued", message=f"Waiting for {device_key} to be free.")
            fcntl.flock(handle, fcntl.LOCK_EX)
        store.update(run_id, message="")
        yield


def cancel_job(store: RunStore, run_id: str) -> dict:
    """Stop a queued or running job cleanly (SIGTERM); the job marks itself cancelled."""
    record = store.read(run_id)
    if record.get("status") not in ACTIVE:
        return record
    pid = record.get("pid")
    if pid and _alive(pid, run_id):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(os.getpgid(pid), signal.SIGTERM)
        return store.update(run_id, cancel_requested=True)
    return store.update(run_id, status="cancelled", finished_at=now_iso())


def refresh(store: RunStore, record: dict) -> dict:
    """Mark a job whose process is gone (killed, machine restarted) as failed, with why."""
    if record.get("status") not in ACTIVE or not record.get("pid"):
        return record
    if _alive(record["pid"], record["run_id"]):
        return record
    record = store.read(record["run_id"])  # it may have finished between the two reads
    if record.get("status") not in ACTIVE:
        return record
    if record.get("cancel_requested"):  # killed before its SIGTERM handler was installed
        return store.update(record["run_id"], status="cancelled", finished_at=now_iso())
    tail = _log_tail(store.folder(record["run_id"]) / "job.log")
    return store.update(
        record["run_id"],
        status="failed",
        error="The training process stopped before finishing" + (f": {tail}" if tail else "."),
        finished_at=now_iso(),
    )


def progress_summary(record: dict, events: list[dict]) -> dict:
    """What a progress bar shows: epoch, share done, ETA, last loss and best metric."""
    last = events[-1] if events else {}
    epochs = last.get("epochs") or record.get("params", {}).get("epochs") or 0
    epoch = last.get("epoch", 0)
    done = record.get("status") == "finished"
    metrics = [e["valid_metric"] for e in events if e.get("valid_metric") is not None]
    return {
        "epoch": epoch,
        "epochs": epochs,
        "fraction": 1.0 if done else (min(epoch / epochs, 1.0) if epochs else 0.0),
        "eta_s": None if done else last.get("eta_s"),
        "loss": last.get("loss"),
        "best_metric": max(metrics) if metrics else None,
        "metric_name": last.get("metric_name", "ndcg@10"),
        "samples_per_s": last.get("samples_per_s"),
    }


def _alive(pid: int, run_id: str) -> bool:
    """True if `pid` is a live process training `run_id` (guards against reused pids).

    Right after the fork, before exec, the child still shows the parent's command line;
    it is recognised then as the leader of its own new session (pgid == pid).
    """
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        stat = Path(f"/proc/{pid}/stat").read_text(errors="replace")
    except OSError:
        return True  # no /proc (macOS): trust the pid
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    try:
        leader = os.getpgid(pid) == pid
    except OSError:
        return False
    return run_id in cmdline or leader


def _log_tail(path: Path) -> str:
    if not path.exists():
        return ""
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    return (errors or lines[-1:] or [""])[-1].removeprefix("error: ")
