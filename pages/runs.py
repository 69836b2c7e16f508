"""Runs page: every training run in the workspace with its headline test metrics."""

from __future__ import annotations

import streamlit as st

from core.data.profile import HEADLINE
from core.runs.store import RunStore, workspace_home
from dashboard import cache, charts, shell

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
    table = cache.runs(home)
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
        table = table[table["dataset"] == chosen]
    if table.empty:
        st.info(f"No runs on dataset '{chosen}' yet — train one from the Train page.")
        return
    counts = table["status"].value_counts()
    st.caption(" · ".join(f"{n} {status}" for status, n in counts.items()))
    st.dataframe(table, hide_index=True, width="stretch", column_config=_columns())
    finished = table.dropna(subset=[HEADLINE[0]])
    if len(finished):
        st.plotly_chart(charts.metric_bar(finished, HEADLINE[0]), width="stretch")
    _details(home, table["run"].tolist())


def _columns() -> dict:
    metric = {
        m: st.column_config.NumberColumn(m, format="%.4f", help=f"Test {m}") for m in HEADLINE
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


def _details(home, run_ids: list[str]) -> None:
    with st.expander("Run details"):
        run_id = st.selectbox("Run", run_ids, key="runs_detail")
        record = RunStore(home).read(run_id)
        st.write(f"**Parameters** of {record.get('model')} (seed {record.get('seed', '—')}):")
        st.json(record.get("params") or {}, expanded=False)
        st.write("**All metrics** (valid and test):")
        st.dataframe(record.get("metrics") or {}, width="stretch")
        if record.get("error"):
            st.error(str(record["error"]))
