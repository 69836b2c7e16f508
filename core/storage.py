"""Atomic file and folder writes, file locks, and the sweep of what crashed writers left.

A reader never sees a half-written file: every write goes to a temp name in the same
folder (`.<name>.<random>.tmp`) and is renamed over the target; a folder written by
`atomic_dir` replaces the old one whole (which is parked as `.<name>.old` for a moment).
A writer killed mid-write leaves only such a temp name behind; `sweep_stale` removes the
ones older than an hour when a workspace opens.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

from core.errors import RecScopeError

log = logging.getLogger(__name__)

#: what `write_text`, `write_parquet` and `atomic_dir` leave behind when killed mid-write
STALE_NAME = re.compile(r"^\..+\.(tmp|old)$")
STALE_AFTER_S = 3600.0
LOCK_TIMEOUT_S = 60.0


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temp file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: object) -> None:
    write_text(path, json.dumps(data, indent=2, default=_json_default))


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    """Write `frame` to `path` through a unique temp file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def file_lock(path: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the lock file `path` (across processes and threads); a clear error on timeout."""
    try:
        with FileLock(str(path), timeout=timeout):
            yield
    except Timeout as err:
        raise RecScopeError(
            f"{path} stayed locked by another process for {timeout:.0f} s; try again, or "
            "stop the process that holds it."
        ) from err


def is_locked(path: Path) -> bool:
    """True while another process or thread holds the lock file `path` (never waits)."""
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def now_iso(timespec: str = "seconds") -> str:
    """The current UTC time as ISO 8601 text (whole seconds unless asked otherwise)."""
    return datetime.now(timezone.utc).isoformat(timespec=timespec)


@contextmanager
def atomic_dir(target: Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temp folder beside `target`; on success it replaces `target` whole."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        yield tmp
        if target.exists():
            if not overwrite:
                raise FileExistsError(target)
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sweep_stale(folders: Iterable[Path], max_age_s: float = STALE_AFTER_S) -> int:
    """Remove temp files and folders (`.<name>.*.tmp`, `.<name>.old`) older than `max_age_s`.

    Looks directly inside each of `folders`; age is the newest mtime in the entry (a folder
    still being filled is young). Returns how many entries were removed.
    """
    cutoff = time.time() - max_age_s
    removed = 0
    for folder in folders:
        try:
            entries = list(Path(folder).iterdir())
        except OSError:
            continue
        for entry in entries:
            if not STALE_NAME.match(entry.name) or _newest_mtime(entry) > cutoff:
                continue
            try:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed += 1
            except OSError as err:
                log.warning("could not remove stale %s: %s", entry, err)
    return removed


#: errno -> (what happened, what to do): the one table behind every I/O error sentence
OS_SENTENCES: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", "free some disk space and run it again"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some disk space and run it again"),
    errno.EACCES: ("permission denied", "check the permissions or choose another path"),
    errno.EPERM: ("operation not permitted", "check the permissions or choose another path"),
    errno.EROFS: ("the file system is read-only", "choose a writable path (RECSCOPE_HOME)"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.EISDIR: ("it is a folder, not a file", "give the path of a file"),
    errno.ENOTDIR: ("a part of the path is not a folder", "check the path"),
    errno.EEXIST: ("it already exists", "choose another name or remove it first"),
    errno.EMFILE: ("too many open files", "close other programs or raise the limit (ulimit -n)"),
    errno.ENAMETOOLONG: ("the name is too long", "choose a shorter name"),
}


def os_error_sentence(err: OSError, what: str | None = None) -> str:
    """One sentence for an I/O error: the path (both, for a rename), what happened, the fix.

    Without `what` (the CLI): "/x/run.json: no space left on the device; free some disk
    space and run it again." With `what` ("Training", a job that failed on it): "Training
    failed: could not write /x/run.json (no space left on the device); free …".
    """
    happened, fix = OS_SENTENCES.get(err.errno, (None, None))
    if happened is None:
        happened = " ".join(str(err.strerror or str(err) or type(err).__name__).split())
        happened = happened.rstrip(".")
        happened = happened[:1].lower() + happened[1:]
        fix = "check the path and the disk, then run it again"
    path = f"{err.filename} -> {err.filename2}" if err.filename2 else err.filename
    if what is not None:
        target = path or "a file in the workspace"
        return f"{what} failed: could not write {target} ({happened}); {fix}."
    if path:
        return f"{path}: {happened}; {fix}."
    return f"{happened[:1].upper()}{happened[1:]}; {fix}."


def _newest_mtime(entry: Path) -> float:
    try:
        newest = entry.lstat().st_mtime
        if entry.is_dir() and not entry.is_symlink():
            for root, dirs, files in os.walk(entry):
                for name in dirs + files:
                    newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
        return newest
    except OSError:
        return time.time()  # vanished or unreadable meanwhile: not ours to judge now


def _json_default(value: object) -> object:
    """Make numpy scalars and paths JSON-serialisable."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")
