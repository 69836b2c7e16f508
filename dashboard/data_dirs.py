"""The folders whose files the dashboard may read by path ("Path on the server").

A visitor types a path; the server reads it. So a path is read only when, after following
every link, it lies inside a configured data folder: the workspace, the shipped
sample_data/, and any folder listed in RECSCOPE_DATA_DIRS (os.pathsep-separated, e.g.
`RECSCOPE_DATA_DIRS=/data/logs:/srv/shared`). Every server-path read of the dashboard goes
through `allowed_path` (the main, item and user tables, the preview and the ingest), and
`check_companions` checks the item/user tables ingest would pick up beside the main file.
A relative path is looked up inside each data folder, then in the folder the server was
started in, and the file found must still lie inside a data folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from core.errors import RecScopeError

DATA_DIRS_ENV = "RECSCOPE_DATA_DIRS"
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data"


def data_dirs(home: Path) -> list[Path]:
    """The resolved data folders: the workspace, sample_data, then RECSCOPE_DATA_DIRS."""
    extra = [p for p in os.environ.get(DATA_DIRS_ENV, "").split(os.pathsep) if p.strip()]
    folders = []
    for folder in [Path(home), SAMPLE_DIR, *(Path(p.strip()).expanduser() for p in extra)]:
        resolved = folder.resolve()
        if resolved not in folders:
            folders.append(resolved)
    return folders


def allowed_path(text: str, home: Path) -> Path:
    """The resolved file `text` names, when it lies inside a data folder; else a
    RecScopeError naming the folders. Links are followed before the check, and the resolved
    path is what the caller reads (a link swapped afterwards does not move the read)."""
    raw = str(text).strip()
    if not raw or "\x00" in raw:
        raise RecScopeError(
            f"The path {raw!r} is not a file path; type the path of a file on the server."
        )
    path = Path(raw).expanduser()
    folders = data_dirs(home)
    if not path.is_absolute():
        path = _relative(path, raw, folders)
    resolved = path.resolve()
    if not any(resolved.is_relative_to(folder) for folder in folders):
        listed = ", ".join(str(f) for f in folders)
        raise RecScopeError(
            f"The server reads files only inside its data folders ({listed}), and '{raw}' is "
            f"outside them; upload the file instead, copy it into one of those folders, or "
            f"add its folder to {DATA_DIRS_ENV} when starting the server."
        )
    return resolved


def _relative(path: Path, raw: str, folders: Sequence[Path]) -> Path:
    """A relative path as the user meant it: inside each data folder in turn, else from the
    folder the server was started in ('sample_data/x.csv' from the repository); the caller
    still checks that the one found lies inside a data folder."""
    for base in (*folders, Path.cwd()):
        if (base / path).exists():
            return base / path
    listed = ", ".join(str(f) for f in folders)
    raise RecScopeError(
        f"There is no file '{raw}' inside the data folders ({listed}) or the folder the server "
        "was started in; check the spelling or type the full path."
    )


def check_companions(source: Path, home: Path, items: object, users: object) -> None:
    """Refuse (as `allowed_path` does) an item/user table that ingest would read from beside
    `source` (core.data.ingest.columns.find_companions) when it lies outside the data
    folders, e.g. an items.csv beside interactions.csv that links elsewhere."""
    from core.data.ingest.columns import find_companions

    given = {"items": items, "users": users}
    for role, found in find_companions(source).items():
        if found is not None and given[role] is None:
            allowed_path(str(found), home)
