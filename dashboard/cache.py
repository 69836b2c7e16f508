"""The one caching module of the dashboard.

Tables (`st.cache_data`, each caller gets a copy) are keyed by dataset name plus its
content fingerprint (`dataset_key`: dataset.json's, read on every call, never the data), or
by run id plus the modification time of its run.json, so a re-ingested dataset or an updated
run is read afresh, and nothing derived from the data is recomputed on a rerun. Run records
and statuses are never cached: every rerun reads them (the run store refreshes a run whose
process died), so a page never shows a stale "running". Big read-only objects (a loaded
Dataset, a fitted model) go through `st.cache_resource`: shared between sessions and never
mutated by a page.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.data import profile
from core.data.dataset import Dataset
from core.data.stored import META, dataset_dir
from core.runs.store import RunStore
from core.storage import read_json
from dashboard.data_dirs import allowed_path


def dataset(home: Path, name: str) -> Dataset:
    """The stored dataset `name`, loaded once per version on disk (shared, read-only)."""
    return _dataset(str(home), name, _stamp(home, name))


def profile_tables(
    home: Path, name: str, progress: Callable[[float, str], None] | None = None
) -> dict:
    """Everything the Data page's profile draws, computed once per dataset version, one
    table at a time: `progress(done_share, what_next)` is told before each (a 10M-row
    profile takes seconds; every later call only reads the cache)."""
    key, out, steps = dataset_key(home, name), {}, len(PROFILE_PARTS) + 1
    if progress is not None:
        progress(0.0, "Loading the dataset…")
    _dataset(str(home), name, key)
    for i, (part, label) in enumerate(PROFILE_PARTS.items(), start=1):
        if progress is not None:
            progress(i / steps, label)
        out[part] = _profile_part(str(home), name, part, key)
    return out


def dataset_key(home: Path, name: str) -> str:
    """The cache key of dataset `name`'s content: the fingerprint in its dataset.json (read
    afresh on every call; a few hundred bytes), or the file's time for datasets stored
    before fingerprints existed (hashing their tables on every rerun would cost seconds)."""
    return _stamp(home, name)


def figure(build: Callable[..., Any], *args, **kwargs) -> Any:
    """`build(*args, **kwargs)`, a chart function (table in, Plotly figure out), built once per
    distinct arguments and shared, never mutated by a page: building a figure costs 0.1-0.6 s
    (mostly applying its template) on every rerun otherwise, sending it a few ms."""
    return _figure(build.__module__, build.__qualname__, args, kwargs)


def text_source(home: Path, name: str) -> str | None:
    """`core.data.text.text_source` of the dataset (a pass over every item's text: 0.1-0.4 s
    at 50k items), once per dataset version."""
    return _text_source(str(home), name, _stamp(home, name))


def item_scenario_counts(home: Path, name: str) -> pd.DataFrame:
    """`dashboard.views_items.scenario_counts`: interactions per (item, scenario), computed
    once per dataset version (the item card reads one item's rows of it)."""
    return _item_scenario_counts(str(home), name, _stamp(home, name))


def scenario_overview(home: Path, name: str) -> dict:
    """The Scenarios page's tables (sizes, user and item overlap, small scenarios), once per
    dataset version."""
    return _scenario_overview(str(home), name, _stamp(home, name))


def raw_table(
    content: bytes, filename: str, format: str = "auto", limit: int | None = None
) -> tuple[pd.DataFrame, str]:
    """An uploaded file's first `limit` rows as a raw table plus its detected format."""
    return _raw_upload(content, filename, format, limit)


def raw_path(
    home: Path, path: str | Path, format: str = "auto", limit: int | None = None
) -> tuple[pd.DataFrame, str]:
    """A file on the server, only inside the data folders (`dashboard.data_dirs`): its first
    `limit` rows as a raw table plus its detected format."""
    resolved = allowed_path(str(path), home)
    return _raw_path(str(resolved), format, limit, _mtime(resolved))


def loaded_run(home: Path, run_id: str):
    """A finished run's record, split and fitted model (core.runs.pipeline.LoadedRun), shared."""
    folder = RunStore(home).folder(run_id)
    return _loaded_run(str(home), run_id, _mtime(folder / "run.json"))


def run_stamp(home: Path, run_ids) -> tuple:
    """(run_id, run.json mtime) pairs: the cache key of anything read from these runs."""
    store = RunStore(home)
    return tuple((r, _mtime(store.folder(r) / "run.json")) for r in run_ids)


def paired(home: Path, run_ids: tuple, metric: str, baseline: str) -> pd.DataFrame:
    """`core.eval.compare.paired_table` (bootstrap + Wilcoxon), once per set of run versions."""
    return _paired(str(home), run_stamp(home, (baseline, *run_ids)), metric, baseline)


def segments(home: Path, run_ids: tuple, metric: str) -> pd.DataFrame:
    """`core.eval.compare.segment_table` of the runs for one metric."""
    return _segments(str(home), run_stamp(home, run_ids), metric)


def overlap(home: Path, run_ids: tuple, k: int) -> pd.DataFrame:
    """`core.eval.compare.overlap`: mean Jaccard@k of the runs' stored lists."""
    return _overlap(str(home), run_stamp(home, run_ids), int(k))


def user_segments(home: Path, run_id: str) -> pd.DataFrame:
    """`dashboard.views_user.user_segments` of the run's dataset and split (for finding users)."""
    return _user_segments(str(home), run_stamp(home, (run_id,)))


def tradeoff(home: Path, run_id: str, kind: str, k: int, max_users: int) -> pd.DataFrame:
    """`core.eval.rerank.tradeoff_curve` of a run on its test users (seconds; on demand)."""
    return _tradeoff(str(home), run_stamp(home, (run_id,)), kind, int(k), int(max_users))


def global_importance(home: Path, run_id: str, n_users: int) -> pd.DataFrame:
    """`core.explain.explainer.global_importance` of a run over `n_users` random users."""
    return _global_importance(str(home), run_stamp(home, (run_id,)), int(n_users))


def run_index(home: Path, run_id: str):
    """A run's item index (core.retrieval.similar.run_index; saved in the run folder), or None."""
    folder = RunStore(home).folder(run_id)
    return _run_index(str(home), run_id, _mtime(folder / "run.json"))


def text_index(home: Path, name: str):
    """The Faiss index over a dataset's item-text embeddings (core.retrieval.similar.text_index)."""
    return _text_index(str(home), name, _stamp(home, name))


def item_map(home: Path, name: str, run_id: str | None) -> tuple[pd.DataFrame, str]:
    """The 2-D map table of a run's item embeddings (run_id None: the item texts)."""
    path = RunStore(home).folder(run_id) / "run.json" if run_id else None
    stamp = _mtime(path) if path else _stamp(home, name)
    return _item_map(str(home), name, run_id, stamp)


def text_ready(home: Path, name: str) -> bool:
    """True when the dataset's item-text embeddings are on disk (neighbours by text are
    then instant; otherwise embedding them takes tens of seconds, so the page asks first)."""
    from core.data.text import embeddings_cached

    return embeddings_cached(dataset(home, name))


def map_ready(home: Path, name: str, run_id: str | None) -> bool:
    """True when the item map is drawn already (kept on disk: reading it is instant;
    projecting it with UMAP takes up to a minute in a fresh process, so the page asks)."""
    from core.retrieval.embedding_map import map_stored

    if run_id:
        loaded = loaded_run(home, run_id)
        vectors = loaded.model.item_embeddings()
        return vectors is not None and map_stored(vectors, loaded.folder)
    if not text_ready(home, name):
        return False
    from core.data.text import item_text_embeddings

    ds = dataset(home, name)
    return map_stored(item_text_embeddings(ds), ds.folder)


def item_facts(home: Path, name: str) -> pd.DataFrame:
    """Per item: code, id, title, category, popularity, main scenario."""
    return _item_facts(str(home), name, _stamp(home, name))


def scenario_recs(home: Path, run_id: str) -> pd.DataFrame | None:
    """A leaderboard job's stored top lists (core.runs.scenario_runs.recommendations)."""
    return _scenario_recs(str(home), run_id, run_stamp(home, (run_id,)))


def clear() -> None:
    """Forget every cached table and object (after deleting data on disk)."""
    st.cache_data.clear()
    st.cache_resource.clear()


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=4)
def _dataset(home: str, name: str, key: str) -> Dataset:
    return Dataset.load(Path(home), name)


#: the Data page's profile: table name -> what computing it is called in the progress bar
PROFILE_PARTS = {
    "counts": "Counting users, items and distinct pairs…",
    "users": "Measuring activity per user…",
    "items": "Measuring activity per item…",
    "ratings": "Counting the ratings…",
    "time": "Counting activity over time…",
    "scenario_users": "Counting scenarios per user…",
    "scenario_overlap": "Measuring scenario overlap…",
    "scenario_sizes": "Measuring scenario sizes…",
    "top_items": "Finding the most used items…",
}
#: looked up at call time (module attributes), so a test can count the calls
_PROFILE_FUNCTIONS = {
    "counts": lambda ds: profile.counts(ds),
    "users": lambda ds: profile.activity(ds, "user"),
    "items": lambda ds: profile.activity(ds, "item"),
    "ratings": lambda ds: profile.rating_distribution(ds),
    "time": lambda ds: profile.activity_over_time(ds),
    "scenario_users": lambda ds: profile.scenario_users(ds),
    "scenario_overlap": lambda ds: profile.scenario_overlap(ds),
    "scenario_sizes": lambda ds: profile.scenario_sizes(ds),
    "top_items": lambda ds: profile.top_items(ds, 20),
}


@st.cache_data(show_spinner=False, max_entries=64)
def _profile_part(home: str, name: str, part: str, key: str):
    return _PROFILE_FUNCTIONS[part](_dataset(home, name, key))


@st.cache_resource(show_spinner=False, max_entries=256)
def _figure(module: str, name: str, args: tuple, kwargs: dict) -> Any:
    return getattr(importlib.import_module(module), name)(*args, **kwargs)


@st.cache_data(show_spinner=False, max_entries=8)
def _text_source(home: str, name: str, key: str) -> str | None:
    from core.data.text import text_source

    return text_source(_dataset(home, name, key))


@st.cache_data(show_spinner=False, max_entries=8)
def _item_scenario_counts(home: str, name: str, key: str) -> pd.DataFrame:
    from dashboard.views_items import scenario_counts

    return scenario_counts(_dataset(home, name, key))


@st.cache_data(show_spinner="Measuring the scenarios…", max_entries=8)
def _scenario_overview(home: str, name: str, key: str) -> dict:
    from core.scenarios.strategies import item_overlap, small_scenarios

    ds = _dataset(home, name, key)
    return {
        "sizes": profile.scenario_sizes(ds),
        "small": small_scenarios(ds),
        "user_overlap": profile.scenario_overlap(ds),
        "item_overlap": item_overlap(ds),
    }


@st.cache_data(show_spinner="Reading the file…", max_entries=4)
def _raw_upload(
    content: bytes, filename: str, format: str, limit: int | None
) -> tuple[pd.DataFrame, str]:
    from core.data.ingest.ingest import read_raw

    return read_raw((content, filename), format=format, limit=limit)


@st.cache_data(show_spinner="Reading the file…", max_entries=4)
def _raw_path(path: str, format: str, limit: int | None, mtime: int) -> tuple[pd.DataFrame, str]:
    from core.data.ingest.ingest import read_raw

    return read_raw(path, format=format, limit=limit)


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def _loaded_run(home: str, run_id: str, mtime: int):
    from core.runs.pipeline import load_run

    return load_run(RunStore(home), run_id)


@st.cache_data(show_spinner="Running the paired tests…", max_entries=32)
def _paired(home: str, stamp: tuple, metric: str, baseline: str) -> pd.DataFrame:
    from core.eval.compare import paired_table

    ids = [r for r, _ in stamp]
    return paired_table(RunStore(home), ids[1:], metric, baseline)


@st.cache_data(show_spinner=False, max_entries=32)
def _segments(home: str, stamp: tuple, metric: str) -> pd.DataFrame:
    from core.eval.compare import segment_table

    return segment_table(RunStore(home), [r for r, _ in stamp], metric)


@st.cache_data(show_spinner="Comparing the lists…", max_entries=16)
def _overlap(home: str, stamp: tuple, k: int) -> pd.DataFrame:
    from core.eval.compare import overlap

    return overlap(RunStore(home), [r for r, _ in stamp], k)


@st.cache_data(show_spinner=False, max_entries=8)
def _user_segments(home: str, stamp: tuple) -> pd.DataFrame:
    from dashboard.views_user import user_segments

    loaded = _loaded_run(home, stamp[0][0], stamp[0][1])
    return user_segments(loaded.dataset, loaded.split)


@st.cache_data(show_spinner="Re-ranking every test user at each weight…", max_entries=16)
def _tradeoff(home: str, stamp: tuple, kind: str, k: int, max_users: int) -> pd.DataFrame:
    from core.eval.rerank import tradeoff_curve

    loaded = _loaded_run(home, stamp[0][0], stamp[0][1])
    return tradeoff_curve(loaded, kind=kind, k=k, max_users=max_users)


@st.cache_data(show_spinner="Explaining many users…", max_entries=8)
def _global_importance(home: str, stamp: tuple, n_users: int) -> pd.DataFrame:
    from core.explain.explainer import global_importance

    loaded = _loaded_run(home, stamp[0][0], stamp[0][1])
    return global_importance(loaded, n_users=n_users, max_history=20)


@st.cache_resource(show_spinner="Building the item index…", max_entries=8)
def _run_index(home: str, run_id: str, mtime: int):
    from core.retrieval.similar import run_index

    return run_index(_loaded_run(home, run_id, mtime))


@st.cache_resource(show_spinner="Embedding the item texts…", max_entries=4)
def _text_index(home: str, name: str, key: str):
    from core.retrieval.similar import text_index

    return text_index(_dataset(home, name, key))


@st.cache_data(show_spinner=False, max_entries=8)
def _item_map(
    home: str, name: str, run_id: str | None, stamp: int | str
) -> tuple[pd.DataFrame, str]:
    from core.retrieval.embedding_map import stored_map

    if run_id:  # kept on disk beside the run (UMAP compiles for long in a fresh process)
        loaded = _loaded_run(home, run_id, stamp)
        vectors, ds, folder = loaded.model.item_embeddings(), loaded.dataset, loaded.folder
    else:
        from core.data.text import item_text_embeddings

        ds = _dataset(home, name, stamp)
        vectors, folder = item_text_embeddings(ds), ds.folder
    return stored_map(vectors, ds, folder)


@st.cache_data(show_spinner=False, max_entries=8)
def _item_facts(home: str, name: str, key: str) -> pd.DataFrame:
    from core.retrieval.embedding_map import item_facts

    return item_facts(_dataset(home, name, key))


@st.cache_data(show_spinner=False, max_entries=4)
def _scenario_recs(home: str, run_id: str, stamp: tuple) -> pd.DataFrame | None:
    from core.runs.scenario_runs import recommendations

    return recommendations(RunStore(home), run_id)


def _stamp(home: str | Path, name: str) -> str:
    """`dataset_key`: dataset.json's fingerprint, else its time (the name is checked first)."""
    path = dataset_dir(Path(home), name) / META
    try:
        found = read_json(path).get("fingerprint")
    except (OSError, ValueError):  # missing or being replaced: the loader says why
        found = None
    return str(found) if found else f"mtime:{_mtime(path)}"


def _mtime(path: Path) -> int:
    """Modification time in ns, 0 when the file is missing (the loader then says why)."""
    try:
        return Path(path).stat().st_mtime_ns
    except OSError:
        return 0
