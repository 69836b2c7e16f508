"""User explorer: one user's history, what each model recommends, and why (SHAP)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core.data import schema as S
from core.explain import whatif as WI
from core.explain.explainer import explain
from core.runs.store import RunStore, workspace_home
from dashboard import cache, selection, shell, widgets
from dashboard import charts_user as charts
from dashboard import views as V
from dashboard import views_user as U
from dashboard import whatif as W
from dashboard.interest_panel import render_user_interests
from dashboard.text import md
from dashboard.whatif_editor import editor

KS = (5, 10, 20)
USER_KEY = "user_id"
TRADEOFF_USERS = 500
GLOBAL_USERS = 30
#: most recent distinct history items explained one by one (older ones form one feature)
EXPLAIN_HISTORY = 20


def render() -> None:
    st.title("User explorer")
    st.caption(
        "Open any user: their history, the items held out for testing, each model's top list "
        "(known items excluded) and why a model recommends an item."
    )
    home = workspace_home()
    dataset = shell.active_dataset()
    if not dataset:
        st.info("No dataset yet — add one on the Data page, then train a model.")
        return
    finished = [r for r in RunStore(home).list(dataset) if r.get("status") == "finished"]
    if not finished:
        st.info(f"No finished run on '{md(dataset)}' yet — train a model on the Train page.")
        return
    records = widgets.pick_runs(
        "Runs", finished, key="user_runs", limit=3, minimum=1, too_few="Pick at least one run.",
        what="shown side by side",
        help="Their top lists are shown side by side; they must share the split.",
    )  # fmt: skip
    if not records:
        return
    chosen, labels = [r["run_id"] for r in records], V.run_labels(records)
    loaded = {r: cache.loaded_run(home, r) for r in chosen}
    first = loaded[chosen[0]]
    segments = cache.user_segments(home, chosen[0])
    code = widgets.user_finder(segments, dataset, key=USER_KEY)
    if code is None:
        return
    held = U.held_out(first.split, code)
    _profile(first.dataset, segments.iloc[code], held)
    _history(first, code)
    edited = _what_if(loaded, labels, dataset, code)
    lists = _lists(loaded, labels, code, held, edited)
    fast = U.fast_first([run.model for run in loaded.values()])
    _explain(loaded, labels, lists, code, fast, edited)
    render_user_interests(home, dataset, chosen, str(segments.iloc[code]["user_id"]))
    _global(home, chosen, labels, fast)
    _tradeoff(home, chosen, labels)


def _profile(dataset, seg: pd.Series, held: np.ndarray) -> None:
    st.subheader(f"User {md(seg['user_id'])}")
    widgets.metric_row(U.profile_facts(seg, len(held)))
    if line := U.attributes_line(dataset, int(seg[S.USER])):
        st.markdown(line)


def _history(loaded, code: int) -> None:
    history = U.user_history(loaded.dataset, loaded.split, code)
    widgets.chart(st, charts.history_timeline(history), key="user_timeline")
    left, right = st.columns([3, 2])
    time = {"time": widgets.time_column()}
    with left.expander(f"History table ({len(history):,} interactions)", expanded=True):
        newest_first = history.drop(columns=[S.ITEM]).iloc[::-1]
        st.dataframe(newest_first, hide_index=True, width="stretch", height=260, column_config=time)
    right.markdown("**Held-out (test) items** — what a good list should contain")
    tests = history.loc[history["part"] == "test", ["time", S.TITLE, S.CATEGORY, S.SCENARIO]]
    right.dataframe(tests, hide_index=True, width="stretch", column_config=time)


def _what_if(loaded: dict, labels: dict, dataset: str, code: int) -> dict:
    """The editor; {run_id: (recorded history, edit)} for runs that follow it, else None."""
    first = next(iter(loaded.values()))
    history = WI.known_history(U.user_split(first.split, code).known_for("test"), code)
    reasons = {r: _reaction(r, run, code, history) for r, run in loaded.items()}
    user_id = str(first.dataset.user_ids[code])
    shown = [labels[r] for r in reasons]
    edit = editor(first.dataset, dataset, user_id, history, shown, list(reasons.values()))
    return {r: None if edit.empty or why else (history, edit) for r, why in reasons.items()}


def _reaction(run_id: str, run, code: int, history: np.ndarray) -> str | None:
    """`WI.reaction` of a run to a user's recorded history, worked out once per session: it
    scores the whole catalogue twice per run and never changes (2 s of each rerun of an
    ML-100k page with 3 runs at load 20)."""
    memo = st.session_state.setdefault("_user_reactions", {})
    if (run_id, code) not in memo:
        memo[run_id, code] = WI.reaction(run.model, code, history)
    return memo[run_id, code]


def _lists(
    loaded: dict, labels: dict, code: int, held: np.ndarray, edited: dict
) -> dict[str, pd.DataFrame]:
    st.subheader("Recommendations")
    a, b, c = st.columns([1, 2, 2])
    k = selection.choice(a.radio, "K", KS, key="user_k", param="k", default=10, horizontal=True)
    any_edit = any(e is not None for e in edited.values())
    off = " Off while the history is edited." if any_edit else ""
    diversity = b.slider(
        "Diversity weight (MMR)", 0.0, 1.0, 0.0, 0.05, key="user_div", disabled=any_edit,
        help="0 = the model's own order; higher trades relevance for less similar items." + off,
    )  # fmt: skip
    novelty = c.slider(
        "Novelty weight", 0.0, 1.0, 0.0, 0.05, key="user_nov", disabled=any_edit,
        help="0 = the model's own order; higher favours less popular items." + off,
    )  # fmt: skip
    if any_edit:
        st.caption(
            "What if: the lists that react follow the edited history in each model's own "
            f"order, its items excluded; {W.NEW} marks an item that entered the list."
        )
    lists = {}
    for col, (run_id, run) in zip(st.columns(len(loaded)), loaded.items(), strict=True):
        if edited[run_id] is None:
            w = (0.0, 0.0) if any_edit else (diversity, novelty)
            lists[run_id] = U.top_list(run, code, k, diversity=w[0], novelty=w[1], held=held)
        else:
            history, edit = edited[run_id]
            result = WI.what_if(run.model, code, history, edit, k, seed=run.split.seed)
            lists[run_id] = W.edited_table(run.dataset, result, held)
        heading, shown = U.list_view(lists[run_id], labels[run_id])
        shown = W.mark_new(shown, lists[run_id])
        col.markdown(heading)
        col.html(U.list_html(shown))
        if edited[run_id] is not None:
            col.markdown(W.changes_line(run.dataset, result))
        elif any_edit:
            col.caption("Not edited: this model cannot react (see the editor above).")
    return lists


def _explain(loaded: dict, labels: dict, lists: dict, code: int, fast: int, edited: dict) -> None:
    st.subheader("Why this recommendation?")
    left, right = st.columns(2)
    run_id = left.selectbox(
        "Model", list(lists), index=fast, format_func=labels.get, key="user_explain_run"
    )
    if lists[run_id].empty:
        st.info("This list is empty, so there is nothing to explain.")
        return
    by_code = {int(r.item_code): r for r in lists[run_id].itertuples()}
    item = right.selectbox(
        "Item", list(by_code), format_func=lambda i: U.item_option(by_code[i]),
        key="user_explain_item",
    )  # fmt: skip
    history = None if edited[run_id] is None else WI.apply_edit(*edited[run_id])
    if history is not None:
        st.caption("Explained on the edited history: 'added' marks the items you added.")
    with st.spinner("Computing SHAP values…"):
        exp = explain(loaded[run_id], code, int(item), max_history=EXPLAIN_HISTORY, history=history)
    widgets.explanation(exp, labels[run_id], key="user")


def _global(home, chosen: list[str], labels: dict, first: int) -> None:
    with st.expander("Which features matter overall? (global importance)"):
        run_id = st.selectbox(
            "Model", chosen, index=first, format_func=labels.get, key="user_global_run"
        )
        st.caption(
            f"Mean |SHAP| of feature groups over {GLOBAL_USERS} random users' top item: how "
            "recent a history item is, its category, and any user or context features."
        )
        if widgets.on_demand(st, "Compute global importance", "user_global_go", run_id):
            with shell.guard("computing the global importance"):
                table = cache.global_importance(home, run_id, GLOBAL_USERS)
                widgets.chart(st, charts.importance_bar(table))


def _tradeoff(home, chosen: list[str], labels: dict) -> None:
    st.subheader("Re-ranking trade-off on the test set")
    st.caption(
        f"Re-rank the lists of up to {TRADEOFF_USERS:,} test users at weights 0 to 0.9 and "
        "see what each step costs in NDCG@10 and gains in novelty, coverage and diversity."
    )
    a, b, c = st.columns([2, 2, 1], vertical_alignment="bottom")
    run_id = a.selectbox("Model", chosen, format_func=labels.get, key="user_curve_run")
    kind = b.radio("Weight", ("diversity", "novelty"), horizontal=True, key="user_curve_kind")
    if widgets.on_demand(c, "Compute the curve", "user_curve_go", (run_id, kind)):
        curve = cache.tradeoff(home, run_id, kind, 10, TRADEOFF_USERS)
        widgets.chart(st, charts.tradeoff(curve, 10, kind))
