"""The User explorer's interest section, and the cached interest tables both pages read.

`render_user_interests` is the one entry point the User explorer calls. The cached helpers
below (`profiles`, `calibration`) follow `dashboard.cache`'s rules — tables keyed by run id and
run.json mtime, the profiles object by the dataset's fingerprint, shared and never mutated —
and sit here only because that module had another owner while this was written; they belong
in `dashboard.cache`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import streamlit as st

from core.data.split import split
from core.eval import interest as I
from core.eval.compare import stored_lists
from core.runs.store import RunStore
from dashboard import cache, shell, widgets
from dashboard import charts_interest as charts
from dashboard import views as V
from dashboard import views_interest as VI
from dashboard.text import md

KS = (5, 10, 20)
MAX_WINDOW = 500


def render_user_interests(home: Path, dataset_name: str, run_ids: list[str], user_id: str) -> None:
    """Long-term vs recent category shares of one user, the drift between them, and each run's
    top-K shares beside the held-out ones. Runs that cannot be used are named in a sentence;
    a dataset without item categories gets one sentence instead of the section."""
    st.subheader("Long-term and recent interests")
    with shell.guard("drawing the interest profiles"):
        _render(Path(home), dataset_name, list(run_ids), str(user_id))


def profiles(home: Path, dataset_name: str, record: dict | None, recent: int) -> I.InterestProfiles:
    """`core.eval.interest.interest_profiles` under a run's split (None: every interaction)."""
    ds = cache.dataset(home, dataset_name)
    method = record.get("split") if record else None
    seed = int(record.get("seed", 42)) if record else 0
    return _profiles(str(home), dataset_name, ds.fingerprint, method, seed, int(recent))


def calibration(
    home: Path, run_ids: Sequence[str], k: int, recent: int
) -> tuple[pd.DataFrame, dict]:
    """`core.eval.interest.calibration_table` and `reference_kl` of comparable runs."""
    return _calibration(str(home), cache.run_stamp(home, tuple(run_ids)), int(k), int(recent))


def lists(home: Path, run_ids: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Each run's stored top lists (user_code, rank, item_code)."""
    return {r: _lists(str(home), r, m) for r, m in cache.run_stamp(home, tuple(run_ids))}


def _render(home: Path, dataset_name: str, run_ids: list[str], user_id: str) -> None:
    store = RunStore(home)
    records, notes = VI.usable_runs(store, dataset_name, run_ids)
    for note in notes:
        st.caption(md(note))
    ds = cache.dataset(home, dataset_name)
    left, right = st.columns(2)
    recent = left.number_input(
        "Recent window (interactions)", min_value=1, max_value=MAX_WINDOW, value=I.RECENT,
        step=1, key="interest_recent",
        help="How many of the user's newest known interactions count as their recent interests.",
    )  # fmt: skip
    k = right.radio("Top K", KS, index=1, horizontal=True, key="interest_k")
    try:
        prof = profiles(home, dataset_name, records[0] if records else None, int(recent))
    except I.NoCategoriesError as err:
        st.info(str(err))
        return
    code = int(ds.user_codes([user_id])[0])
    shares = I.user_shares(prof, code)
    if shares.empty:
        st.info("This user has no interaction with an item that has a category.")
        return
    drift = I.drift(prof, code)
    chart_col, fact_col = st.columns([3, 1])
    widgets.chart(chart_col, charts.interest_bars(shares, prof.window), key="interest_shares")
    fact_col.metric("Drift (total variation)", "—" if pd.isna(drift) else f"{drift:.2f}")
    fact_col.caption(VI.drift_sentence(drift, int(prof.n_long[code]), prof.window, prof.by_time))
    if prof.held_out is not None:
        fact_col.caption(VI.held_out_sentence(shares))
    basis = (
        f"History = the user's training and validation interactions under the "
        f"{records[0].get('split')} split (what the models knew when they made their lists)."
        if records
        else "No finished run was given, so the history is every interaction in the data."
    )
    st.caption(f"{md(prof.source)} {basis}")
    if records:
        _runs(home, prof, code, records, int(k))


def _runs(home: Path, prof: I.InterestProfiles, code: int, records: list, k: int) -> None:
    labels = V.run_labels(records)
    chosen = [r["run_id"] for r in records]
    run_shares, distances = I.user_run_shares(prof, code, lists(home, chosen), k)
    held = I.user_shares(prof, code).set_index("category")["held_out"]
    held = held.reindex(run_shares["category"]).fillna(0.0).reset_index(drop=True)
    widgets.chart(st, charts.list_bars(run_shares, held, chosen, labels, k), key="interest_lists")
    for row in distances.to_dict("records"):
        st.markdown(md(VI.follows_sentence(row, labels[row["run_id"]], k)))
    table = distances.assign(run=[labels[r] for r in distances["run_id"]])
    table = table[["run", "tv_recent", "tv_long_term", "kl_held_out", "kl_history"]]
    st.dataframe(
        table, hide_index=True, width="stretch", key="interest_distances",
        column_config={
            "run": st.column_config.TextColumn("Run"),
            "tv_recent": st.column_config.NumberColumn("Distance to recent", format="%.3f"),
            "tv_long_term": st.column_config.NumberColumn("Distance to long-term", format="%.3f"),
            "kl_held_out": st.column_config.NumberColumn("KL to held-out", format="%.3f"),
            "kl_history": st.column_config.NumberColumn("KL to history", format="%.3f"),
        },
    )  # fmt: skip
    st.caption(
        f"Distance = total variation between the top {k}'s category shares and the user's "
        f"recent or long-term shares (lower = closer). KL = {VI.KL_FORMULA}, with q the top "
        f"{k}'s shares and p the held-out or history shares; lower is better."
    )


@st.cache_resource(show_spinner="Measuring interest profiles…", max_entries=8)
def _profiles(
    home: str, name: str, fingerprint: str | None, method: str | None, seed: int, recent: int
) -> I.InterestProfiles:
    ds = cache.dataset(Path(home), name)
    I.category_weights(ds.items)  # a dataset without categories says so before the split
    parts = split(ds, method, seed) if method else None
    return I.interest_profiles(ds, parts, recent=recent)


@st.cache_data(show_spinner=False, max_entries=32)
def _lists(home: str, run_id: str, mtime: int) -> pd.DataFrame:
    return stored_lists(RunStore(home), run_id)


@st.cache_data(show_spinner="Measuring calibration…", max_entries=16)
def _calibration(home: str, stamp: tuple, k: int, recent: int) -> tuple[pd.DataFrame, dict]:
    store = RunStore(home)
    records = [store.read(r) for r, _ in stamp]
    prof = profiles(Path(home), records[0]["dataset"], records[0], recent)
    runs = {r: _lists(home, r, m) for r, m in stamp}
    return I.calibration_table(prof, runs, k), I.reference_kl(prof)
