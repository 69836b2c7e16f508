"""Scenarios page: one model per scenario, one for everything, or one that knows the scenario?

Sizes and overlap of the scenarios, the per-scenario leaderboard of the strategies (with
both architectures of the scenario-aware model, MMoE and PLE, and paired confidence
intervals against a chosen baseline), cross-scenario transfer curves, and one user's
history and recommendations side by side.
The leaderboard and transfer are background jobs of the one job system (`core.runs.jobs`,
`core.runs.scenario_runs`): the page starts them, polls their stages and shows their results.
"""

from __future__ import annotations

from functools import partial

import pandas as pd
import streamlit as st

from core.data import schema as S
from core.runs import jobs, stages
from core.runs import scenario_runs as sr
from core.runs.store import RunStore, workspace_home
from core.scenarios.strategies import MIN_SCENARIO_INTERACTIONS, user_history
from dashboard import cache, shell
from dashboard import charts_scenarios as C
from dashboard.job_panel import job_controls
from dashboard.text import md

NOTHING = (
    "This dataset has {n} — there is nothing to compare across scenarios. Ingest interactions "
    "with a scenario column (the surface where each happened: feed, shop, search…) to use "
    "this page."
)
METRIC = "ndcg@10"
#: in the user view before the leaderboard job has finished: no strategy to pick yet
NO_RECS = (
    "Press 'Train and compare' above: once the strategies are trained, each one's "
    "recommendations show here beside the user's history."
)


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
    store = RunStore(home)
    _overview(cache.scenario_overview(home, name))
    recs = _leaderboard(store, name, ds)
    _transfer(store, name, ds)
    _user(ds, recs)


def _overview(tables: dict) -> None:
    """Sizes and overlaps (`dashboard.cache.scenario_overview`: computed once per dataset)."""
    st.subheader("Scenarios at a glance")
    number = partial(st.column_config.NumberColumn, format="localized")
    config = {c: number(c.capitalize()) for c in ("interactions", "users", "items")}
    st.dataframe(tables["sizes"], hide_index=True, column_config={"scenario": "Scenario", **config})
    if tables["small"]:
        st.warning(C.small_scenarios_note(tables["small"], MIN_SCENARIO_INTERACTIONS))
    left, right = st.columns(2)
    fig = C.user_overlap_heatmap(tables["user_overlap"])
    left.plotly_chart(fig, width="stretch", key="sc_user_overlap")
    fig = C.item_overlap_heatmap(tables["item_overlap"])
    right.plotly_chart(fig, width="stretch", key="sc_item_overlap")


def _leaderboard(store: RunStore, name: str, ds) -> pd.DataFrame | None:
    """The strategy leaderboard; returns the stored top lists for the user view (or None)."""
    st.subheader("Which strategy wins in each scenario?")
    st.caption(
        "Leave-last-out split. Each scenario's test interactions are ranked against that "
        "scenario's items; each user's training and validation items are excluded. The "
        "reference strategies use EASE; the scenario-aware model is trained twice, with its MMoE "
        "and with its PLE layers; the mean treats every scenario equally."
    )
    done = jobs.latest_job(store, name, sr.LEADERBOARD, finished=True)
    newest = jobs.latest_job(store, name, sr.LEADERBOARD)
    label = "Train and compare" if done is None else "Retrain"
    start = partial(sr.new_leaderboard, store, name)
    job_controls(store, newest, label, "sc_train", start, primary=True)
    if newest is None or newest.get("status") not in jobs.ACTIVE:
        st.caption(_how_long(stages.last_times(store, name, sr.LEADERBOARD), "leaderboard"))
    if done is None:
        if newest is None or newest.get("status") not in jobs.ACTIVE:
            st.info(
                "Press the button to train the strategies: one model per scenario, one for "
                "everything, and the scenario-aware model with MMoE and with PLE layers."
            )
        return None
    result = store.result(done["run_id"])
    board = pd.DataFrame(result["leaderboard"])
    number = st.column_config.NumberColumn
    columns = {s: number(s, format="%.4f") for s in ds.scenarios}
    columns.update(strategy="Strategy", mean=number("Mean over scenarios", format="%.4f"))
    columns["fit_s"] = number("Fit (s)", format="%.1f")
    st.markdown(f"**Test {METRIC}** (higher is better)")
    st.dataframe(C.leaderboard_view(board), hide_index=True, column_config=columns, key="sc_board")
    fig = C.leaderboard_bars(board, ds.scenarios, METRIC)
    st.plotly_chart(fig, width="stretch", key="sc_bars")
    _paired(result, board, ds.scenarios)
    for note in result.get("notes", []):
        st.caption(note)
    return cache.scenario_recs(store.home, done["run_id"])


def _paired(result: dict, board: pd.DataFrame, scenarios: list[str]) -> None:
    """Each strategy minus a chosen baseline, per scenario, with paired 95% CIs."""
    paired = pd.DataFrame(result.get("paired") or [])
    if paired.empty:
        st.caption("This leaderboard was computed before paired intervals were stored; retrain.")
        return
    names = [s for s in board["strategy"] if s in set(paired["baseline"])]
    default = names.index("pooled") if "pooled" in names else 0
    baseline = st.selectbox(
        "Compare against",
        names,
        index=default,
        format_func=lambda s: C.STRATEGY_NAMES.get(s, s),
        key="sc_baseline",
    )
    st.markdown(f"**Difference in test {METRIC} against the baseline, same users**")
    table = C.paired_view(paired, baseline, scenarios)
    st.dataframe(table, hide_index=True, column_config={"strategy": "Strategy"}, key="sc_paired")
    st.caption(
        "Each cell: the mean per-user difference (strategy minus baseline) among the "
        "scenario's test users, with its 95% bootstrap confidence interval; * marks a "
        "difference significant after Holm's correction over the table's cells (Wilcoxon "
        "signed-rank test)."
    )


def _transfer(store: RunStore, name: str, ds) -> None:
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
    hybrid = st.checkbox(
        "Also compare the text two-tower model (hybrid)",
        value=False,
        key="sc_hybrid",
        help="The longest training of the job by far: on the sample data on a 2-core CPU at "
        "load average 10-16 one hybrid epoch took 190-300 s against 35-56 s for the "
        "scenario-aware model's, and it still improved after 4 epochs (it runs until its "
        "validation score stops improving, up to 50). Measured for issue 16; left out "
        "unless asked for.",
    )
    pair = {"source": source, "target": target}
    done = jobs.latest_job(store, name, sr.TRANSFER, finished=True, **pair)
    newest = jobs.latest_job(store, name, sr.TRANSFER, **pair)
    start = partial(sr.new_transfer, store, name, source, target, include_hybrid=hybrid)
    job_controls(store, newest, "Measure transfer", "sc_transfer", start)
    if newest is None or newest.get("status") not in jobs.ACTIVE:
        took = stages.last_times(store, name, sr.TRANSFER, **pair, include_hybrid=hybrid)
        took = took or stages.last_times(store, name, sr.TRANSFER, include_hybrid=hybrid)
        st.caption(_how_long(took, "transfer measurement"))
    if done is None:
        st.text(f"Not measured yet for {source} → {target}: press the button.")
        return
    result = store.result(done["run_id"])
    curves, metric = pd.DataFrame(result["curves"]), result["metric"]
    st.plotly_chart(C.transfer_curves(curves, target, metric), width="stretch", key="sc_tc")
    st.text(result["protocol"])
    wide = C.transfer_view(curves, metric)
    st.markdown(f"**Test {metric} at each m** (same users for every model)")
    formats = {c: st.column_config.NumberColumn(c, format="%.4f") for c in wide.columns}
    st.dataframe(wide, column_config=formats, key="sc_transfer_table")
    sim = result.get("profiles")
    if sim:
        st.markdown(C.profile_note(sim))
        fig = C.profile_similarity_hist(sim["same_user"], sim["random_pairs"])
        st.plotly_chart(fig, width="stretch", key="sc_sim")


def _how_long(took: dict | None, what: str) -> str:
    """How long the job may take and why: the last one on this data, measured, with its
    longest stages — or, before any ran, no number at all."""
    if took is None:
        return (
            f"No {what} has run on this dataset yet, so there is no measured time to go by; "
            "once it starts, its stages and an estimate of the time left are shown here."
        )
    longest = "; ".join(f"{s}: {stages.format_seconds(t)}" for s, t in took["stages"][:2])
    most = f" — most of it went to {longest}" if longest else ""
    return (
        f"The last {what} on this dataset took {stages.format_seconds(took['total_s'])} "
        f"(measured{most}). Training the neural models is the long part; a machine busy "
        "with other work takes longer."
    )


def _user(ds, recs: pd.DataFrame | None) -> None:
    st.subheader("One user across scenarios")
    user_id = st.selectbox("User", ds.user_ids, key="sc_user", help="Type to search by user id.")
    code = int(ds.user_codes([user_id])[0])
    names, strategy = C.STRATEGY_NAMES, None
    if recs is None:  # issue 16 point 9: no strategy picker before there is anything to pick
        st.caption(NO_RECS)
    else:
        strategy = st.radio(
            "Recommendations from",
            list(names),
            format_func=names.get,
            horizontal=True,
            key="sc_user_strategy",
        )
    history, titles = user_history(ds, code), ds.item_titles()
    categories = None
    if S.CATEGORY in ds.items.columns:
        categories = ds.items[S.CATEGORY].astype(str).to_numpy()
    for scenario in ds.scenarios:
        st.markdown(f"**{md(scenario)}**")
        seen = history[scenario]
        top = None
        if recs is not None:
            top = C.recommended_titles(recs, strategy, scenario, code, titles, categories)
        if seen.empty:
            st.caption("Never active here.")
        table = C.history_beside_next(seen, top)
        if len(table):
            caption = f"Recent history ({len(seen)} shown)"
            st.caption(caption + (" beside what comes next" if top is not None else ""))
            st.dataframe(table, hide_index=True)
