"""Runs page: every training run in the workspace with its headline test metrics.

Records are read on every rerun (the Refresh button is one), never cached, so a run whose
process died reads "failed" at the next refresh; an unreadable run.json is listed as the
run store's failed placeholder with its error.
"""

from __future__ import annotations

import streamlit as st

from core.data.profile import HEADLINE, runs_table
from core.runs.store import RunStore, workspace_home
from dashboard import cache, charts, selection, shell, tables
from dashboard import views as V
from dashboard.text import md

ALL = "All datasets"
EMPTY = (
    "No runs yet — train one from the Train page or `recscope train --dataset NAME --model MODEL`."
)


def render() -> None:
    st.title("Runs")
    st.caption(
        "Every model trained in this workspace. Metrics are measured on the test split with "
        "full ranking over all items; items in the user's training and validation history "
        "are excluded from the ranking."
    )
    home = workspace_home()
    st.button(
        "Refresh statuses", key="runs_refresh", icon=":material/refresh:",
        help="Read every run again: a run whose process stopped shows as failed.",
    )  # fmt: skip
    records = RunStore(home).list()  # read afresh on every rerun, never cached
    table = runs_table(records)
    if table.empty:
        st.info(EMPTY)
        return
    choices = [ALL, *sorted(table["dataset"].dropna().unique())]
    active = shell.active_dataset()
    chosen = st.selectbox(
        "Dataset",
        choices,
        index=choices.index(active) if active in choices else 0,
        key="runs_dataset_filter",
        help="Show only the runs trained on one dataset.",
    )
    if chosen != ALL:
        # a run whose record cannot be read has no known dataset: listed under every one
        table = table[(table["dataset"] == chosen) | table["dataset"].isna()]
    if table.empty:
        st.info(f"No runs on dataset '{md(chosen)}' yet — train one from the Train page.")
        return
    counts = table["status"].value_counts()
    st.caption(" · ".join(f"{n} {status}" for status, n in counts.items()))
    shown, config = tables.readable(table, _columns())  # "—" where a run has no value yet
    st.dataframe(shown, hide_index=True, width="stretch", column_config=config)
    finished = table.dropna(subset=[HEADLINE[0]])
    if len(finished):
        fig = cache.figure(charts.metric_bar, finished, HEADLINE[0])  # built once per table
        st.plotly_chart(fig, width="stretch")
    by_id = {r.get("run_id"): r for r in records}
    _details([by_id[r] for r in table["run"] if r in by_id])


def _columns() -> dict:
    metric = {
        m: st.column_config.NumberColumn(V.metric_label(m), format="%.4f", help=f"Test {m}")
        for m in HEADLINE
    }
    return {
        "run": st.column_config.TextColumn("Run"),
        "model": st.column_config.TextColumn("Model"),
        "dataset": st.column_config.TextColumn("Dataset"),
        "split": st.column_config.TextColumn("Split"),
        "status": st.column_config.TextColumn("Status"),
        "created": st.column_config.DatetimeColumn("Created (UTC)", format="YYYY-MM-DD HH:mm"),
        "fit_s": st.column_config.NumberColumn("Fit time (s)", format="%.1f"),
        **metric,
    }


def _details(records: list[dict]) -> None:
    with st.expander("Run details"):
        by_id = {r["run_id"]: r for r in records}
        run_id = selection.choice(st.selectbox, "Run", list(by_id), key="runs_detail", param="run")
        record = by_id[run_id]
        if record.get("model"):
            st.write(
                f"**Parameters** of {md(record['model'])} (seed {md(record.get('seed', '—'))}):"
            )
            st.json(record.get("params") or {}, expanded=False)
            st.write("**All metrics** (test and validation):")
            _all_metrics(record.get("metrics") or {})
        if record.get("error"):
            st.error(md(record["error"]))


def _all_metrics(metrics: dict) -> None:
    """Every metric of a run, one row each with its whole name; "—" where a split lacks it."""
    table = V.metrics_long(metrics)
    config = {
        "metric": st.column_config.TextColumn("Metric", width="large"),
        "test": st.column_config.NumberColumn("Test", format="%.4f"),
        "valid": st.column_config.NumberColumn("Validation", format="%.4f"),
    }
    shown, config = tables.readable(table, config)
    st.dataframe(shown, hide_index=True, width="stretch", column_config=config)
    users = (metrics.get("test") or {}).get("n_users")
    counted = f" over {int(users):,} test users" if isinstance(users, (int, float)) else ""
    st.caption(
        f"Measured{counted}. Beyond-accuracy metrics (coverage, novelty, diversity, "
        "popularity) are measured on the test split only; — marks a value a split lacks."
    )
