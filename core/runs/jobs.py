"""The one job system: every background job is a `recscope` subcommand in its own process.

Kinds (run.json `kind`) and the command each runs, always with `--run-id RUN --json`:
training (`recscope train`), the scenario leaderboard (`recscope scenarios leaderboard`) and
the transfer experiment (`recscope transfer`). The Streamlit script thread never computes
them. A job survives page reruns, closed tabs and app restarts because it runs in a new
process session; its state lives only in its run folder (run.json, progress.jsonl, job.log,
its result), so any session can read it. One job per device at a time: a job waits on a file
lock for its device and says "queued" meanwhile. Every status read goes through `refresh`
(a dead process reads as failed, with its last log line); `cancel_job` stops any kind.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from core.device import pick_device
from core.errors import RecScopeError
from core.runs.store import RunStore, kind_of, now_iso, recording_outcome

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
#: the `recscope` subcommand of each job kind
COMMANDS = {
    "train": ("train",),
    "leaderboard": ("scenarios", "leaderboard"),
    "transfer": ("transfer",),
}
#: how an error message names the process of each kind
LABELS = {"train": "training", "leaderboard": "leaderboard", "transfer": "transfer"}
#: `stage(text, step, steps)`: what a job body reports as it goes
Stage = Callable[[str, int, int], None]


def start_job(store: RunStore, run_id: str) -> int:
    """Launch the run's `recscope <kind> --run-id RUN` detached; returns its pid."""
    folder = store.folder(run_id)
    command = COMMANDS[kind_of(store.read(run_id))]
    log = open(folder / "job.log", "ab")  # noqa: SIM115 - handed to the child process
    env = {**os.environ, "RECSCOPE_HOME": str(store.home), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", *command, "--run-id", run_id, "--json"],
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


def run_job(
    store: RunStore, run_id: str, kind: str, work: Callable[[Stage], dict], device_key=None
) -> dict:
    """Run a non-training job body in this process, under the device lock; the final record.

    `work(stage)` computes and returns the JSON result (stored as result.json); each
    `stage(text, step, steps)` call appends a progress line and becomes the record's
    message. The device is the record's `device_request` unless `device_key` is given.
    Status moves queued -> running -> finished | failed | cancelled; a `CancelledError`
    (the CLI raises one on SIGTERM) ends the job as cancelled.
    """
    record = job_record(store, run_id, kind)

    def stage(text: str, step: int, steps: int) -> None:
        store.append_progress(run_id, {"stage": text, "step": int(step), "steps": int(steps)})
        store.update(run_id, message=text)

    store.update(run_id, pid=os.getpid())
    with recording_outcome(store, run_id, "The job"):
        device_key = device_key or str(pick_device(record.get("device_request")))
        with device_slot(store, run_id, device_key):
            store.update(run_id, status="running", started_at=now_iso())
            tick = time.perf_counter()
            payload = work(stage)
            store.write_result(run_id, payload)
            total = round(time.perf_counter() - tick, 3)
        return store.update(
            run_id, status="finished", message="", finished_at=now_iso(), timings={"total_s": total}
        )
    return store.read(run_id)  # cancelled


def job_record(store: RunStore, run_id: str, kind: str) -> dict:
    """The record of job `run_id`, which must be of `kind` (another kind: a clear error)."""
    record = store.read(run_id)
    if kind_of(record) != kind:
        raise RecScopeError(
            f"Run '{run_id}' is a {kind_of(record)} job, not a {kind} job; "
            f"`recscope runs --kind {kind}` lists those."
        )
    return record


@contextlib.contextmanager
def device_slot(store: RunStore, run_id: str, device_key: str) -> Iterator[None]:
    """Hold the device's lock while a job computes; others block here and show as queued."""
    locks = store.home / "locks"
    locks.mkdir(exist_ok=True)
    device_key = "cuda:0" if device_key == "cuda" else device_key  # one lock per GPU
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
    label = LABELS.get(kind_of(record), kind_of(record))
    return store.update(
        record["run_id"],
        status="failed",
        error=f"The {label} process stopped before finishing" + (f": {tail}" if tail else "."),
        finished_at=now_iso(),
    )


def latest_job(
    store: RunStore, dataset: str, kind: str, *, finished: bool = False, **params
) -> dict | None:
    """The newest `kind` job on `dataset` whose params include `params` (refreshed), or None.

    finished=True: the newest one that finished, i.e. the one whose result to show.
    """
    for record in store.list(dataset, kind=kind):
        mine = record.get("params") or {}
        if not all(mine.get(key) == value for key, value in params.items()):
            continue
        record = refresh(store, record)
        if not finished or record.get("status") == "finished":
            return record
    return None


def stage_summary(record: dict, events: list[dict]) -> dict:
    """What a progress bar shows for a staged job: the current stage, share done, stages."""
    staged = [e for e in events if e.get("stage")]
    last = staged[-1] if staged else {}
    done = record.get("status") == "finished"
    steps = last.get("steps") or 0
    return {
        "stage": last.get("stage") or record.get("message") or "",
        "fraction": 1.0 if done else (min(last.get("step", 0) / steps, 1.0) if steps else 0.0),
        "stages": [e["stage"] for e in staged],
    }


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
    """True if `pid` is a live process running job `run_id` (guards against reused pids).

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
