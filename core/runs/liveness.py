"""Is a run's process still there? Pids with their start time, heartbeats, last log lines.

A job records `pid`, `pid_start` (the boot id and the process's start time from
/proc/<pid>/stat, so a pid the kernel later hands to another process is not mistaken for
the job), `host` and a `heartbeat_at` it rewrites every HEARTBEAT_S seconds. A status read
asks `gone(record)`: one /proc read per active run on this host; a run of another host
(a workspace on a shared disk) is gone when its heartbeat is older than STALE_S.
"""

from __future__ import annotations

import os
import re
import socket
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

ACTIVE = ("queued", "running")
HEARTBEAT_S = 5.0
#: a heartbeat from another host older than this means its process is gone
STALE_S = 60.0
#: an active record that no process has claimed (no pid) for this long was never started
UNCLAIMED_S = 600.0
#: how an error message names the process of each kind
LABELS = {
    "train": "training",
    "leaderboard": "leaderboard",
    "transfer": "transfer",
    "tune": "tuning",
}
_LOG_PREFIX = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


def this_process() -> dict:
    """The fields a job writes to claim its record: pid, pid_start, host."""
    pid = os.getpid()
    return {"pid": pid, "pid_start": process_start(pid), "host": host_name()}


def process_start(pid: int) -> str | None:
    """'<boot id>:<start ticks>' of process `pid`; None if there is none (or a zombie);
    "" where /proc cannot tell (not Linux)."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text(errors="replace")
    except FileNotFoundError:
        return None if Path("/proc/self/stat").exists() else ""
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[-1].split()  # the name in (...) may hold spaces
    if not fields or fields[0] in ("Z", "X"):
        return None
    return f"{_boot_id()}:{fields[19]}"  # field 22 of stat; fields[0] is field 3


def gone(record: dict, now: datetime | None = None) -> str | None:
    """Why an active run's process is gone ("stopped", "never started"), or None if it is
    alive, unknown, or the run is not active."""
    if record.get("status") not in ACTIVE:
        return None
    now = now or datetime.now(timezone.utc)
    host = record.get("host")
    if host and host != host_name():
        beat = _parse(record.get("heartbeat_at")) or _parse(record.get("created_at"))
        return "stopped" if beat and (now - beat).total_seconds() > STALE_S else None
    pid = record.get("pid")
    if pid is None:
        created = _parse(record.get("created_at"))
        old = created is not None and (now - created).total_seconds() > UNCLAIMED_S
        return "never started" if old else None
    if not is_pid(pid):  # a hand-edited or damaged record names no process
        return "stopped"
    alive = _alive(pid, record.get("pid_start"), str(record.get("run_id", "")))
    return None if alive else "stopped"


def is_pid(value: object) -> bool:
    """A process id a record may hold: a positive int (not a bool, text or a list)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def stop_message(record: dict, why: str, tail: str) -> str:
    """The one-sentence error of a run whose process is gone."""
    label = LABELS.get(record.get("kind") or "train", record.get("kind") or "job")
    if why == "never started":
        return (
            f"The {label} run was never picked up by a process; start it again from its page "
            "or with `recscope train`."
        )
    if not tail:
        return f"The {label} process stopped unexpectedly; its log is empty."
    return f"The {label} process stopped unexpectedly: {tail}"


def log_tail(path: Path) -> str:
    """The last error line of a job log (the CLI's `error:` or a logged ERROR), else its last
    non-empty line; the logging prefix is dropped."""
    try:
        with open(path, "rb") as handle:  # only the end: logs of long runs grow
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - 16_384))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("error:", "ERROR "))]
    last = (errors or lines[-1:] or [""])[-1]
    return _LOG_PREFIX.sub("", last.removeprefix("error: "))


@cache
def host_name() -> str:
    return socket.gethostname()


def _alive(pid: int, start: str | None, run_id: str) -> bool:
    now = process_start(pid)
    if now is None:
        return False
    if now == "":  # no /proc: the pid is all there is
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if start:
        return now == start
    return _legacy_alive(pid, run_id)


def _legacy_alive(pid: int, run_id: str) -> bool:
    """Records written before pid_start: alive only while the pid's command line names the
    run. (Any session leader holding a reused pid is not the job: `start_job` records
    pid_start for the child it forks, so no record of a live job lacks it.)"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return bool(run_id) and run_id in cmdline


@cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return "boot"


def _parse(stamp: object) -> datetime | None:
    try:
        value = datetime.fromisoformat(str(stamp))
    except (TypeError, ValueError):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
