"""Datasets on disk as versions: where they live, their fingerprint and date, one writer a name.

`home/datasets/<name>/` holds the Parquet tables and dataset.json. A name reaches a path
only through `dataset_dir`, which checks it (`core.names`). dataset.json records the
`fingerprint` (SHA-256 over the stored tables, computed once when they are written) and
`ingested_at`; datasets written before fingerprints existed get theirs computed from the
files when asked (`current_fingerprint`), which gives the same value. A run keeps the
fingerprint of the data it was trained on, so a replaced dataset is noticed, not used.

Writers of one name are serialised by `name_lock`: the existence check and the rename
happen under it, so of two ingests under one new name the second sees the first's data and
refuses (`DatasetExistsError`) instead of both winning silently.
"""

from __future__ import annotations

import hashlib
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from pathlib import Path

from core.errors import RecScopeError
from core.names import check_dataset_name, dataset_name_from, is_dataset_name, numbered

# now_iso stays importable from here: core.data.dataset stamps ingested_at with it
from core.storage import file_lock, is_locked, now_iso, read_json  # noqa: F401

META = "dataset.json"
#: the stored tables, in the order they are hashed
TABLES = ("interactions.parquet", "items.parquet", "users.parquet")


class DatasetExistsError(RecScopeError):
    """Ingest under a name that is taken, without asking to replace it."""

    def __init__(self, name: str, n_interactions: int | None, ingested: str) -> None:
        self.name, self.n_interactions, self.ingested = name, n_interactions, ingested
        size = f"{n_interactions:,} interactions, " if n_interactions is not None else ""
        super().__init__(
            f"A dataset named '{name}' already exists ({size}ingested {ingested}); choose "
            "another --name or pass --replace to overwrite it."
        )


def datasets_dir(home: Path) -> Path:
    return Path(home) / "datasets"


def dataset_dir(home: Path, name: str) -> Path:
    """The folder of dataset `name` (which is checked first; it may not exist yet)."""
    return datasets_dir(home) / check_dataset_name(name)


def list_datasets(home: Path) -> list[str]:
    """Names of the stored datasets; temp and lock files beside them are not datasets."""
    folder = datasets_dir(home)
    if not folder.exists():
        return []
    return sorted(
        p.name for p in folder.iterdir() if is_dataset_name(p.name) and (p / META).exists()
    )


def name_lock(home: Path, name: str) -> AbstractContextManager:
    """The lock every writer of dataset `name` holds from its existence check to its rename
    (`core.storage.file_lock`: a sentence, not a hang, when another writer never lets go)."""
    return file_lock(_lock_path(home, name))


def refuse_existing(home: Path, name: str) -> None:
    """Raise `DatasetExistsError` when a dataset `name` is stored (a sentence with its size)."""
    folder = dataset_dir(home, name)
    if not (folder / META).exists():
        return
    try:
        meta = read_json(folder / META)
    except (OSError, ValueError):
        meta = {}
    raise DatasetExistsError(name, meta.get("n_interactions"), ingested_on(folder, meta))


def free_name(home: Path, base: str) -> str:
    """`base` if no dataset (or folder) has that name, else base-2, base-3, …: a default
    name for an upload that does not collide with what is stored. Free text is made valid
    first ('my data.csv' -> 'my-data.csv')."""
    base = base if is_dataset_name(base) else dataset_name_from(base)
    folder = datasets_dir(home)
    name, n = base, 1
    while (folder / name).exists() or ((folder / f".{name}.lock").exists() and _busy(home, name)):
        n += 1
        name = numbered(base, n)
    return name


def fingerprint(folder: Path) -> str:
    """SHA-256 (hex) over the stored tables' bytes, each preceded by its file name."""
    digest = hashlib.sha256()
    for table in TABLES:
        path = Path(folder) / table
        if not path.exists():
            continue
        digest.update(table.encode() + b"\0")
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def current_fingerprint(home: Path, name: str) -> str:
    """The fingerprint of what is stored under `name` now (dataset.json's, else computed)."""
    folder = dataset_dir(home, name)
    meta = read_json(folder / META)
    return meta.get("fingerprint") or fingerprint(folder)


def ingested_on(folder: Path, meta: dict | None = None) -> str:
    """When the stored dataset was written, as 'YYYY-MM-DD HH:MM UTC' (dataset.json's
    `ingested_at`; its file time for datasets written before that was recorded)."""
    meta = meta if meta is not None else read_json(Path(folder) / META)
    stamp = meta.get("ingested_at")
    try:
        when = datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        when = None
    if when is None:
        when = datetime.fromtimestamp((Path(folder) / META).stat().st_mtime, timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _busy(home: Path, name: str) -> bool:
    """True while another writer holds `name`'s lock (an ingest under it is under way)."""
    return is_locked(_lock_path(home, name))


def _lock_path(home: Path, name: str) -> Path:
    folder = datasets_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f".{check_dataset_name(name)}.lock"
