"""The one caching module of the dashboard.

Tables (`st.cache_data`, each caller gets a copy) are keyed by dataset or run id plus the
modification time of the file behind them, so a re-ingested dataset or an updated run is
read afresh. Big read-only objects (a loaded Dataset, a fitted model) go through
`st.cache_resource`: shared between sessions and never mutated by a page.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core import profile
from core.dataset import Dataset, datasets_dir
from core.runs import RunStore


def dataset(home: Path, name: str) -> Dataset:
    """The stored dataset `name`, loaded once per version on disk (shared, read-only)."""
    return _dataset(str(home), name, _mtime(datasets_dir(home) / name / "dataset.json"))


def profile_tables(home: Path, name: str) -> dict:
    """Everything the Data page's profile draws, computed once per dataset version."""
    return _profile(str(home), name, _mtime(datasets_dir(home) / name / "dataset.json"))


def runs(home: Path, dataset_name: str | None = None) -> pd.DataFrame:
    """The run overview table (see `core.profile.runs_table`), re-read when any run changes."""
    root = Path(home) / "runs"
    stamp = tuple(sorted((p.parent.name, p.stat().st_mtime_ns) for p in root.glob("*/run.json")))
    return _runs(str(home), dataset_name, stamp)


def raw_table(
    content: bytes, filename: str, format: str = "auto", limit: int | None = None
) -> tuple[pd.DataFrame, str]:
    """An uploaded file's first `limit` rows as a raw table plus its detected format."""
    return _raw_upload(content, filename, format, limit)


def raw_path(path: str, format: str = "auto", limit: int | None = None) -> tuple[pd.DataFrame, str]:
    """A file on the server: its first `limit` rows as a raw table plus its detected format."""
    return _raw_path(path, format, limit, _mtime(Path(path)))


def loaded_run(home: Path, run_id: str):
    """A finished run's record, split and fitted model (core.pipeline.LoadedRun), shared."""
    folder = RunStore(home).folder(run_id)
    return _loaded_run(str(home), run_id, _mtime(folder / "run.json"))


def clear() -> None:
    """Forget every cached table and object (after deleting data on disk)."""
    st.cache_data.clear()
    st.cache_resource.clear()


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=4)
def _dataset(home: str, name: str, mtime: int) -> Dataset:
    return Dataset.load(Path(home), name)


@st.cache_data(show_spinner="Profiling the dataset…", max_entries=16)
def _profile(home: str, name: str, mtime: int) -> dict:
    ds = _dataset(home, name, mtime)
    return {
        "counts": profile.counts(ds),
        "users": profile.activity(ds, "user"),
        "items": profile.activity(ds, "item"),
        "ratings": profile.rating_distribution(ds),
        "time": profile.activity_over_time(ds),
        "scenario_users": profile.scenario_users(ds),
        "scenario_overlap": profile.scenario_overlap(ds),
        "scenario_sizes": profile.scenario_sizes(ds),
        "top_items": profile.top_items(ds, 20),
    }


@st.cache_data(show_spinner=False, max_entries=16)
def _runs(home: str, dataset_name: str | None, stamp: tuple) -> pd.DataFrame:
    return profile.runs_table(RunStore(home).list(dataset_name))


@st.cache_data(show_spinner="Reading the file…", max_entries=4)
def _raw_upload(
    content: bytes, filename: str, format: str, limit: int | None
) -> tuple[pd.DataFrame, str]:
    from core.ingest import read_raw

    return read_raw((content, filename), format=format, limit=limit)


@st.cache_data(show_spinner="Reading the file…", max_entries=4)
def _raw_path(path: str, format: str, limit: int | None, mtime: int) -> tuple[pd.DataFrame, str]:
    from core.ingest import read_raw

    return read_raw(path, format=format, limit=limit)


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def _loaded_run(home: str, run_id: str, mtime: int):
    from core.pipeline import load_run

    return load_run(RunStore(home), run_id)


def _mtime(path: Path) -> int:
    """Modification time in ns, 0 when the file is missing (the loader then says why)."""
    try:
        return Path(path).stat().st_mtime_ns
    except OSError:
        return 0
