"""The one job system: every background job is a `recscope` subcommand in its own process.

Kinds (run.json `kind`) and the command each runs, always with `--run-id RUN --json`:
training (`recscope train`), the scenario leaderboard (`recscope scenarios leaderboard`),
the transfer experiment (`recscope transfer`) and tuning (`recscope tune`, core.runs.tuning).
The Streamlit script thread never computes them. A job survives page reruns, closed tabs
and app restarts because it runs in a new process session; its state lives only in its run
folder (run.json, progress.jsonl, job.log, its result), so any session can read it. One job
per device at a time, first come first served (core.runs.queue, which also gives closed-form
training a lane of its own): a waiting job says "queued" and its place in line meanwhile.

Whoever starts a job (a page through `start_job`, a user typing `recscope train`), its
process runs the work inside `job_process`: it records its pid (with the process start
time, core.runs.liveness), keeps a heartbeat, writes its log lines to job.log, and turns
SIGTERM into the process-wide cancel flag (core.train.request_cancel), which the training
loop and the job stages check at batch and stage boundaries. Every status read of the store
refreshes (a dead process reads as failed, with its last log line); `cancel_job` signals
the process of any kind, whoever started it.

Training on several processes (`recscope train --nproc N`): the job's process is the
launcher. It claims the run as above and starts torchrun (`run_ranks`), in a session of its
own; torchrun starts the ranks, each in a session of its own too. A Cancel signals the
launcher, which forwards SIGTERM to torchrun, which forwards it to every rank; the ranks
agree to stop at the same batch and rank 0 marks the run cancelled. Every rank and torchrun
itself die with their parent (core.distributed.die_with_parent), so a SIGKILL of the
launcher leaves no orphan rank.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from core import distributed
from core.device import pick_device
from core.errors import CancelledError, RecScopeError
from core.runs import liveness, queue
from core.runs.liveness import ACTIVE
from core.runs.queue import device_slot
from core.runs.store import RunStore, kind_of, recording_outcome, refuse_unless_queued
from core.storage import now_iso
from core.train import cancel_requested, clear_cancel, raise_if_cancelled, request_cancel

log = logging.getLogger(__name__)

#: the `recscope` subcommand of each job kind
COMMANDS = {
    "train": ("train",),
    "leaderboard": ("scenarios", "leaderboard"),
    "transfer": ("transfer",),
    "tune": ("tune",),
}
#: a second Cancel this long after the first one stops the process with SIGKILL
FORCE_AFTER_S = 15.0
#: how often a job that waits for its device looks at the cancel flag
QUEUE_POLL_S = 0.2
#: torchrun gives its ranks 30 s to stop after SIGTERM; past this, the launcher kills it
TORCHRUN_GRACE_S = 30.0 + FORCE_AFTER_S
#: `stage(text, step, steps)`: what a job body reports as it goes
Stage = Callable[[str, int, int], None]


def start_job(store: RunStore, run_id: str) -> int:
    """Launch the run's `recscope <kind> --run-id RUN` detached; returns its pid."""
    folder = store.folder(run_id)
    command = COMMANDS[kind_of(store.read(run_id))]
    queue.submit(store, run_id)  # its place in the queue: the order of the clicks
    job_log = open(folder / "job.log", "ab")  # noqa: SIM115 - handed to the child process
    env = {**os.environ, "RECSCOPE_HOME": str(store.home), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", *command, "--run-id", run_id, "--json"],
        stdout=job_log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        start_new_session=True,  # not killed with the app; its own process group
    )
    job_log.close()
    start = liveness.process_start(proc.pid)
    store.update(
        run_id,
        pid=proc.pid,
        pid_start=start,
        host=liveness.host_name(),
        job_started_at=now_iso(),
    )
    return proc.pid


def run_ranks(store: RunStore, run_id: str, nproc: int) -> int:
    """Train run `run_id` on `nproc` processes under torchrun and wait; torchrun's exit code.

    The ranks write their logs to this process's stderr (a job's job.log), never to stdout,
    which carries the one JSON document. This process's cancel flag (SIGTERM, or a Cancel
    its heartbeat read in the record) is forwarded once as SIGTERM to torchrun, which passes
    it to every rank; one that is still there FORCE_AFTER_S after torchrun's own grace
    period is killed, and the ranks with it.
    """
    command = distributed.torchrun_command(nproc, ["train", "--run-id", run_id, "--json"])
    env = {**os.environ, "RECSCOPE_HOME": str(store.home), "PYTHONUNBUFFERED": "1"}
    log.info("starting %d ranks: %s", nproc, " ".join(command[1:]))
    try:
        out = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr: the run's own log
        out = None
    job_log = open(store.folder(run_id) / "job.log", "ab") if out is None else None  # noqa: SIM115
    proc = subprocess.Popen(
        command,
        stdout=out if job_log is None else job_log,
        stdin=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        start_new_session=True,  # a Cancel reaches torchrun once: from here
        preexec_fn=distributed.die_with_parent,  # noqa: PLW1509 - only calls prctl
    )
    if job_log is not None:
        job_log.close()
    forwarded = None
    while True:
        try:
            return proc.wait(timeout=QUEUE_POLL_S)
        except subprocess.TimeoutExpired:
            pass
        if cancel_requested() and forwarded is None:
            log.info("cancel: stopping the %d ranks of %s", nproc, run_id)
            proc.send_signal(signal.SIGTERM)
            forwarded = time.monotonic()
        elif forwarded is not None and time.monotonic() - forwarded > TORCHRUN_GRACE_S:
            proc.kill()


@contextlib.contextmanager
def cancel_on_sigterm() -> Iterator[None]:
    """Within: SIGTERM only sets the process-wide cancel flag (a torchrun rank's handler)."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        clear_cancel()


@contextlib.contextmanager
def job_process(store: RunStore, run_id: str) -> Iterator[None]:
    """Run a job's work in this process: claim the record, beat, log, and cancel on SIGTERM.

    Claiming writes pid, pid_start and host under the record's lock; a run that was cancelled
    before this process got to it raises `CancelledError`; one that another live process already
    runs, or that is not queued (running, finished, failed, cancelled: a run is started once),
    raises a RecScopeError and is left as it is. A daemon thread rewrites heartbeat_at every
    HEARTBEAT_S seconds. SIGTERM only sets the cancel flag (checked at batch and stage
    boundaries), so no exception ever starts inside a file write. Log records go to the run's
    job.log too, unless stdout already is that file (a job `start_job` launched). Everything is
    undone on the way out, so in-process callers keep their own handlers.
    """
    _claim(store, run_id)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(store, run_id, stop), daemon=True)
    handler = _log_to_job_log(store.folder(run_id) / "job.log")
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join(timeout=liveness.HEARTBEAT_S + 5)
        _never_left_running(store, run_id)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
        clear_cancel()


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
        raise_if_cancelled(f"before '{text}'")
        store.append_progress(run_id, {"stage": text, "step": int(step), "steps": int(steps)})
        store.update(run_id, message=text)

    with job_process(store, run_id), recording_outcome(store, run_id, "The job"):
        device_key = device_key or str(pick_device(record.get("device_request")))
        with device_slot(store, run_id, device_key):
            store.update(run_id, status="running", started_at=now_iso())
            tick = time.perf_counter()
            payload = work(stage)
            raise_if_cancelled("before its result was stored")
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


def cancel_job(store: RunStore, run_id: str) -> dict:
    """Stop a queued or running job of any kind, whoever started it; the record after.

    Decided under the record's lock (check-and-set), so a run that finished meanwhile stays
    finished with its metrics. A live process gets SIGTERM and marks itself cancelled at the
    next batch or stage boundary (a Cancel FORCE_AFTER_S after the first one sends SIGKILL,
    and the next status read says cancelled). A run without a live process is cancelled
    here. A job on another host (a shared workspace) sees the request at its next heartbeat.
    Only a job that leads its own session (one `start_job` launched) is signalled as
    a group; a `recscope train` typed in a shell is signalled alone, never the shell's group.
    """
    with store.edit(run_id) as record:
        if record.get("status") not in ACTIVE:
            return record
        if liveness.gone(record) is None and record.get("pid"):
            if record.get("host") in (None, liveness.host_name()):  # a pid means nothing elsewhere
                force = _asked_before(record, FORCE_AFTER_S)
                # a live local record's pid passed liveness.is_pid
                _signal(record["pid"], signal.SIGKILL if force else signal.SIGTERM)
            record["cancel_requested"] = True
            record.setdefault("cancel_requested_at", now_iso())
        else:
            record.update(status="cancelled", finished_at=now_iso(), cancel_requested=True)
    return record


def latest_job(
    store: RunStore, dataset: str, kind: str, *, finished: bool = False, **params
) -> dict | None:
    """The newest `kind` job on `dataset` whose params include `params` (refreshed, by
    `RunStore.list`), or None.

    finished=True: the newest one that finished, i.e. the one whose result to show.
    """
    for record in store.list(dataset, kind=kind):
        mine = record.get("params") or {}
        if not all(mine.get(key) == value for key, value in params.items()):
            continue
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


def _claim(store: RunStore, run_id: str) -> None:
    """Take a queued run for this process. A run is started once: one that another live
    process holds, or that is running, finished, failed or cancelled, is refused (a failed
    run is not retried in place; its record and results stay as they are)."""
    me = liveness.this_process()
    store.read(run_id)  # a run whose process is gone is marked failed before it is judged
    with store.edit(run_id) as record:
        status = record.get("status")
        other = record.get("pid") and record.get("pid") != me["pid"]
        if other and status in ACTIVE and liveness.gone(record) is None:
            raise RecScopeError(
                f"Run {run_id} is already {status} in process {record['pid']}; "
                "cancel it first or start a new run."
            )
        cancelled = status == "cancelled" or (status == "queued" and record.get("cancel_requested"))
        if cancelled and not record.get("started_at"):
            raise CancelledError(f"Run {run_id} was cancelled before it started.")
        refuse_unless_queued(record)
        record.update(me, heartbeat_at=now_iso("milliseconds"))


def _heartbeat(store: RunStore, run_id: str, stop: threading.Event) -> None:
    """Rewrite heartbeat_at; a cancel asked in the record (no signal reached us) is obeyed."""
    while not stop.wait(liveness.HEARTBEAT_S):
        try:
            record = store.update(run_id, heartbeat_at=now_iso("milliseconds"))
        except (OSError, RecScopeError) as err:  # disk full, folder deleted: keep working
            log.debug("heartbeat of %s not written: %s", run_id, err)
            continue
        if record.get("cancel_requested"):
            request_cancel()


def _never_left_running(store: RunStore, run_id: str) -> None:
    """A job body that ended without an outcome (a bug, or an error the record could not
    take) must not stay "running" while this process lives on (an in-process caller)."""
    try:
        with store.edit(run_id) as record:
            if record.get("status") in ACTIVE:
                record.update(
                    status="failed",
                    error="The job ended without recording how; see its log (job.log).",
                    finished_at=now_iso(),
                )
    except (OSError, RecScopeError) as err:
        log.warning("could not end the record of %s: %s", run_id, err)


def _on_sigterm(signum, frame) -> None:
    request_cancel()  # only a flag: the loop stops at its next batch boundary


def _log_to_job_log(path: Path) -> logging.Handler | None:
    """A handler copying log records to job.log, unless stdout already writes there."""
    try:
        out, log_file = os.fstat(sys.stdout.fileno()), path.stat()
        if (out.st_dev, out.st_ino) == (log_file.st_dev, log_file.st_ino):
            return None
    except (OSError, ValueError, AttributeError):
        pass  # no job.log yet, or stdout is not a real file
    try:
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    return handler


def _signal(pid: int, sig: int) -> None:
    """Signal a job: its whole group if it leads its own session, else the process alone.

    Never pid 0 or 1 (or below): 0 and negatives address groups, 1 is init. A process gone
    meanwhile, or one this user may not signal, is left alone."""
    if pid <= 1:
        log.warning("not signalling pid %s", pid)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        try:
            leader = os.getsid(pid) == pid
        except OSError:
            leader = False
        if leader:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _asked_before(record: dict, seconds: float) -> bool:
    stamp = record.get("cancel_requested_at")
    if not stamp:
        return False
    try:
        then = datetime.fromisoformat(stamp)
    except ValueError:
        return False
    return (datetime.now(timezone.utc) - then).total_seconds() > seconds
