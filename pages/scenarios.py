"""Scenarios page: one model per scenario, one for everything, or one that knows the scenario?

Sizes and overlap of the scenarios, the per-scenario leaderboard of the three strategies,
cross-scenario transfer curves, and one user's history and recommendations side by side.
Training runs as a background process (`core.runs.scenario_jobs`); the page polls its status.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.data.profile import scenario_overlap, scenario_sizes
from core.runs import scenario_jobs as jobs
from core.runs.store import workspace_home
from core.scenarios.strategies import (
    MIN_SCENARIO_INTERACTIONS,
    item_overlap,
    small_scenarios,
    user_history,
)
from dashboard import cache, charts, shell
from dashboard import charts_scenarios as sc_charts

NOTHING = (
    "This dataset has {n} — there is nothing to compare across scenarios. Ingest interactions "
    "with a scenario column (the surface where each happened: feed, shop, search…) to use "
    "this page."
)
STRATEGY = {
    "multiscenario": "One model that knows the scenario (multiscenario)",
    "pooled": "One model for everything (pooled)",
    "per_scenario": "One model per scenario",
}
METRIC = "ndcg@10"


def render() -> None:
    st.title("Scenarios")
    st.caption(
        "Should each scenario have its own model, one model for everything, or one model that "
        "knows the scenario? And does what a user likes in one scenario predict another?"
    )
    name = shell.active_dataset()
    if not name:
        st.info("Add a dataset on the Data page first.")
        return
    home = workspace_home()
    ds = cache.dataset(home, name)
    if not ds.has_scenarios or len(ds.scenarios) < 2:
        what = "one scenario" if ds.has_scenarios else "no scenario column"
        st.info(NOTHING.format(n=what))
        return
    _overview(ds)
    _leaderboard(home, name, ds)
    _transfer(home, name, ds)
    _user(home, name, ds)


def _overview(ds) -> None:
    st.subheader("Scenarios at a glance")
    sizes = scenario_sizes(ds)
    st.dataframe(
        sizes,
        hide_index=True,
        column_config={
            "scenario": "Scenario",
            "interactions": st.column_config.NumberColumn("Interactions", format="localized"),
            "users": st.column_config.NumberColumn("Users", format="localized"),
            "items": st.column_config.NumberColumn("Items", format="localized"),
        },
    )
    small = small_scenarios(ds)
    if small:
        st.warning(
            f"{', '.join(small)} {'has' if len(small) == 1 else 'have'} fewer than "
            f"{MIN_SCENARIO_INTERACTIONS} interactions: too few for a model of its own, so the "
            "per-scenario strategy recommends its popular items there and its metrics are noisy."
        )
    left, right = st.columns(2)
    with left:
        fig = charts.overlap_heatmap(scenario_overlap(ds))
        fig.update_layout(title={"text": "Users active in both scenarios"})
        st.plotly_chart(fig, width="stretch", key="sc_user_overlap")
    with right:
        fig = charts.overlap_heatmap(item_overlap(ds))
        fig.update_layout(title={"text": "Items with interactions in both scenarios"})
        fig.update_traces(
            colorbar={"title": {"text": "Items"}},
            hovertemplate="%{y} and %{x}: %{z} items<extra></extra>",
        )
        st.plotly_chart(fig, width="stretch", key="sc_item_overlap")


def _leaderboard(home, name: str, ds) -> None:
    st.subheader("Which strategy wins in each scenario?")
    st.caption(
        "Leave-last-out split. Each scenario's test interactions are ranked against that "
        "scenario's items; each user's training and validation items are excluded. The "
        "reference strategies use EASE; the mean treats every scenario equally."
    )
    state = jobs.status(home, name, jobs.LEADERBOARD)
    running = state is not None and state.get("status") == "running"
    label = "Train and compare" if jobs.result(home, name, jobs.LEADERBOARD) is None else "Retrain"
    if st.button(label, disabled=running, key="sc_train", type="primary"):
        jobs.start(home, name, jobs.LEADERBOARD)
        st.rerun()
    _job_state(home, name, jobs.LEADERBOARD, state)
    result = jobs.result(home, name, jobs.LEADERBOARD)
    if result is None:
        if not running:
            st.info("Press the button to train the three strategies (about a minute on a CPU).")
        return
    board = pd.DataFrame(result["leaderboard"])
    shown = board.assign(strategy=board["strategy"].map(STRATEGY).fillna(board["strategy"]))
    columns = {s: st.column_config.NumberColumn(s, format="%.4f") for s in ds.scenarios}
    columns["mean"] = st.column_config.NumberColumn("Mean over scenarios", format="%.4f")
    columns["fit_s"] = st.column_config.NumberColumn("Fit (s)", format="%.1f")
    columns["strategy"] = "Strategy"
    st.markdown(f"**Test {METRIC}** (higher is better)")
    st.dataframe(shown, hide_index=True, column_config=columns, key="sc_board")
    st.plotly_chart(
        sc_charts.leaderboard_bars(board, ds.scenarios, METRIC), width="stretch", key="sc_bars"
    )
    for note in result.get("notes", []):
        st.caption(note)


def _transfer(home, name: str, ds) -> None:
    st.subheader("Does one scenario tell us about another?")
    st.caption(
        "Users active in the source are treated as new to the target: models are trained "
        "without their target history, then see only their first m target interactions; "
        "the rest of their target history is what they should be recommended."
    )
    left, right = st.columns(2)
    source = left.selectbox("Source scenario", ds.scenarios, key="sc_source")
    others = [s for s in ds.scenarios if s != source]
    target = right.selectbox("Target scenario", others, key="sc_target")
    kind = jobs.transfer_kind(source, target)
    state = jobs.status(home, name, kind)
    running = state is not None and state.get("status") == "running"
    if st.button("Measure transfer", disabled=running, key="sc_transfer"):
        jobs.start(home, name, kind)
        st.rerun()
    _job_state(home, name, kind, state)
    result = jobs.result(home, name, kind)
    if result is None:
        if not running:
            st.caption(f"Not measured yet for {source} → {target}: press the button.")
        return
    curves = pd.DataFrame(result["curves"])
    st.plotly_chart(
        sc_charts.transfer_curves(curves, target, result["metric"]), width="stretch", key="sc_tc"
    )
    st.caption(result["protocol"])
    wide = curves.pivot_table(index="model", columns="m", values=result["metric"])
    wide.columns = [f"m={m}" for m in wide.columns]
    wide.index = [sc_charts.LABELS.get(m, m) for m in wide.index]
    st.markdown(f"**Test {result['metric']} at each m** (same users for every model)")
    formats = {c: st.column_config.NumberColumn(c, format="%.4f") for c in wide.columns}
    st.dataframe(wide, column_config=formats, key="sc_transfer_table")
    sim = result.get("profiles")
    if sim:
        st.markdown(
            f"**Interest profiles.** Over {sim['n_users']:,} users active in both, the category "
            f"mix in '{source}' and '{target}' has cosine similarity "
            f"{sim['same_user_cosine']:.2f} for the same user against "
            f"{sim['random_pair_cosine']:.2f} for random pairs of users."
        )
        st.plotly_chart(
            sc_charts.profile_similarity_hist(sim["same_user"], sim["random_pairs"]),
            width="stretch",
            key="sc_sim",
        )


def _user(home, name: str, ds) -> None:
    st.subheader("One user across scenarios")
    recs = jobs.recommendations(home, name)
    users = ds.user_ids
    user_id = st.selectbox("User", users, key="sc_user", help="Type to search by user id.")
    code = int(ds.user_codes([user_id])[0])
    strategy = st.radio(
        "Recommendations from",
        list(STRATEGY),
        format_func=STRATEGY.get,
        horizontal=True,
        key="sc_user_strategy",
    )
    history = user_history(ds, code)
    titles = ds.item_titles()
    for column, scenario in zip(st.columns(len(ds.scenarios)), ds.scenarios, strict=True):
        with column:
            st.markdown(f"**{scenario}**")
            seen = history[scenario]
            st.caption(f"Recent history ({len(seen)} shown)")
            if seen.empty:
                st.write("Never active here.")
            else:
                st.dataframe(seen.drop(columns="item_code"), hide_index=True)
            if recs is None:
                continue
            mine = recs[
                (recs["strategy"] == strategy)
                & (recs["scenario"] == scenario)
                & (recs["user_code"] == code)
            ].sort_values("rank")
            st.caption("Recommended next")
            st.dataframe(
                pd.DataFrame({"title": titles[mine["item_code"].to_numpy()]}), hide_index=True
            )
    if recs is None:
        st.caption("Recommendations appear here once the strategies are trained (above).")


def _job_state(home, name: str, kind: str, state: dict | None) -> None:
    if state is None:
        return
    if state.get("status") == "failed":
        st.error(f"The last run failed: {state.get('message', 'no message')}")
    elif state.get("status") == "running":
        _poll(home, name, kind)


@st.fragment(run_every=3)
def _poll(home, name: str, kind: str) -> None:
    state = jobs.status(home, name, kind) or {}
    if state.get("status") != "running":
        st.rerun()  # the whole page redraws with the result
    st.info(f"Working in the background: {state.get('message') or 'training…'}")
