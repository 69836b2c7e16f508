"""User explorer: one user's history, what each model recommends, and why (SHAP)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core.data import schema as S
from core.errors import RecScopeError
from core.eval import compare as C
from core.explain.explainer import explain
from core.protocols import capabilities
from core.runs.store import RunStore, workspace_home
from dashboard import cache, shell
from dashboard import charts_user as charts
from dashboard import views as V

KS = (5, 10, 20)
USER_KEY = "user_id"
HIT = "✔"
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
        st.info(f"No finished run on '{dataset}' yet — train a model on the Train page.")
        return
    by_id = {r["run_id"]: r for r in finished}
    chosen = st.multiselect(
        "Runs",
        list(by_id),
        default=_default_runs(finished),
        format_func=lambda r: f"{by_id[r].get('model')} · {r} ({by_id[r].get('split')} split)",
        key="user_runs",
        help="Their top lists are shown side by side; they must share the split.",
    )
    if not chosen:
        st.info("Pick at least one run.")
        return
    records = [by_id[r] for r in chosen]
    try:
        C.check_comparable(records)
    except RecScopeError as err:
        st.warning(f"These runs cannot be shown side by side: {err}")
        return
    labels = V.run_labels(records)
    loaded = {r: cache.loaded_run(home, r) for r in chosen}
    first = loaded[chosen[0]]
    segments = cache.user_segments(home, chosen[0])
    code = _find_user(first.dataset, segments)
    if code is None:
        return
    held = V.held_out(first.split, code)
    _profile(first.dataset, segments.iloc[code], held)
    _history(first, code)
    lists = _lists(loaded, labels, code, held)
    _explain(loaded, labels, lists, code)
    _global(home, chosen, labels, _fast_first(loaded))
    _tradeoff(home, chosen, labels)


def _find_user(dataset, segments: pd.DataFrame) -> int | None:
    """The user picked by id, at random or from a segment; None (with a message) if unknown."""
    testable = segments.loc[segments["n_test"] > 0, "user_id"].tolist()
    pool = testable or segments["user_id"].tolist()
    if not st.session_state.get(USER_KEY):
        st.session_state[USER_KEY] = pool[0]
    left, mid, right = st.columns([2, 1, 3], vertical_alignment="bottom")
    left.text_input("User id", key=USER_KEY, help="The id as it appears in the uploaded file.")
    mid.button("Random user", key="user_random", on_click=_pick, args=(pool,))
    with right.popover("Find by segment", width="stretch"):
        kinds = [k for k in V.SEGMENT_KINDS if segments[k].notna().any()]
        kind = st.selectbox(
            "Segment kind", kinds, format_func=V.SEGMENT_KINDS.get, key="user_seg_kind"
        )
        counts = segments[segments["n_test"] > 0][kind].value_counts().sort_index()
        value = st.selectbox(
            "Segment",
            counts.index.tolist(),
            format_func=lambda v: f"{v} ({counts[v]:,} test users)",
            key="user_seg_value",
        )
        members = segments.loc[(segments[kind] == value) & (segments["n_test"] > 0), "user_id"]
        st.button(
            "Random user from this segment",
            key="user_seg_pick",
            on_click=_pick,
            args=(members.tolist(),),
        )
    user_id = str(st.session_state[USER_KEY]).strip()
    match = np.flatnonzero(segments["user_id"].to_numpy() == user_id)
    if len(match) == 0:
        st.warning(
            f"There is no user '{user_id}' in dataset '{dataset.name}'; type an id from the "
            f"file (for example '{pool[0]}') or pick one at random."
        )
        return None
    return int(segments[S.USER].iloc[match[0]])


def _pick(users: list) -> None:
    """Button callback: put a random user of `users` into the id box (before it is drawn)."""
    if users:
        st.session_state[USER_KEY] = str(users[np.random.default_rng().integers(len(users))])


def _profile(dataset, seg: pd.Series, held: np.ndarray) -> None:
    st.subheader(f"User {seg['user_id']}")
    cols = st.columns(4)
    cols[0].metric("Known interactions", f"{int(seg['n_known']):,}", help="Train + validation.")
    cols[1].metric("Held out for testing", f"{len(held):,}")
    cols[2].metric("Activity bucket", str(seg["activity"]), help=str(seg["cold_user"]))
    cols[3].metric("Main scenario", str(seg["scenario"] or "—"))
    attrs = dataset.users.iloc[int(seg[S.USER])].drop(labels=[S.USER_ID], errors="ignore")
    shown = [f"{k.replace('_', ' ')} **{v}**" for k, v in attrs.items() if not pd.isna(v)]
    if shown:
        st.markdown("Attributes: " + " · ".join(shown))


def _history(loaded, code: int) -> None:
    history = V.user_history(loaded.dataset, loaded.split, code)
    st.plotly_chart(charts.history_timeline(history), width="stretch", key="user_timeline")
    left, right = st.columns([3, 2])
    with left.expander(f"History table ({len(history):,} interactions)", expanded=True):
        st.dataframe(
            history.drop(columns=[S.ITEM]).iloc[::-1],
            hide_index=True,
            width="stretch",
            height=260,
            column_config={"time": st.column_config.DatetimeColumn("Time", format="YYYY-MM-DD")},
        )
    tests = history[history["part"] == "test"]
    right.markdown("**Held-out (test) items** — what a good list should contain")
    right.dataframe(
        tests[["time", "title", "category", "scenario"]],
        hide_index=True,
        width="stretch",
        column_config={"time": st.column_config.DatetimeColumn("Time", format="YYYY-MM-DD")},
    )


def _lists(loaded: dict, labels: dict, code: int, held: np.ndarray) -> dict[str, pd.DataFrame]:
    st.subheader("Recommendations")
    a, b, c = st.columns([1, 2, 2])
    k = a.radio("K", KS, index=1, horizontal=True, key="user_k")
    diversity = b.slider(
        "Diversity weight (MMR)", 0.0, 1.0, 0.0, 0.05, key="user_div",
        help="0 = the model's own order; higher trades relevance for less similar items.",
    )  # fmt: skip
    novelty = c.slider(
        "Novelty weight", 0.0, 1.0, 0.0, 0.05, key="user_nov",
        help="0 = the model's own order; higher favours less popular items.",
    )  # fmt: skip
    lists = {}
    cols = st.columns(len(loaded))
    for col, (run_id, run) in zip(cols, loaded.items(), strict=True):
        table = V.top_list(run, code, k, diversity=diversity, novelty=novelty, held=held)
        lists[run_id] = table
        n_hits = int(table["hit"].sum())
        col.markdown(f"**{labels[run_id]}** — {n_hits} hit{'s' if n_hits != 1 else ''}")
        marks = [
            f"{r} ✔" if h else str(r) for r, h in zip(table["rank"], table["hit"], strict=True)
        ]
        col.dataframe(
            table.assign(**{"#": marks})[["#", "title", "score", "category"]],
            hide_index=True,
            width="stretch",
            height=38 + 35 * len(table),
            column_config={
                "#": st.column_config.TextColumn("#", width=50, help=f"{HIT} = a held-out item"),
                "title": st.column_config.TextColumn("Title", width="medium"),
                "score": st.column_config.NumberColumn("Score", format="%.3f", width="small"),
            },
        )
    return lists


def _explain(loaded: dict, labels: dict, lists: dict, code: int) -> None:
    st.subheader("Why this recommendation?")
    left, right = st.columns(2)
    runs = list(lists)
    run_id = left.selectbox(
        "Model",
        runs,
        index=_fast_first(loaded),
        format_func=lambda r: labels[r],
        key="user_explain_run",
    )
    table = lists[run_id]
    if table.empty:
        st.info("This list is empty, so there is nothing to explain.")
        return
    by_code = {int(r.item_code): r for r in table.itertuples()}
    item = right.selectbox(
        "Item",
        list(by_code),
        format_func=lambda i: (
            f"#{by_code[i].rank} {by_code[i].title}" + (" (held out)" if by_code[i].hit else "")
        ),
        key="user_explain_item",
    )
    with st.spinner("Computing SHAP values…"):
        exp = explain(loaded[run_id], code, int(item), max_history=EXPLAIN_HISTORY)
    st.markdown(_explanation_text(exp, labels[run_id]))
    for note in exp.notes:
        st.caption(note)
    a, b = st.columns(2)
    a.plotly_chart(
        charts.shap_waterfall(exp.contributions, exp.base_value, exp.score),
        width="stretch",
        key="user_waterfall",
    )
    b.plotly_chart(charts.shap_bar(exp.contributions), width="stretch", key="user_shap_bar")
    with st.expander(f"All {len(exp.contributions)} features"):
        st.dataframe(
            exp.contributions[["label", "kind", "value"]],
            hide_index=True,
            width="stretch",
            column_config={"value": st.column_config.NumberColumn("SHAP value", format="%+.4f")},
        )


def _explanation_text(exp, run: str) -> str:
    lift = exp.score - exp.base_value
    text = (
        f"**{run}** scores “{exp.item_title}” **{exp.score:.4f}** for this user. Knowing none "
        f"of the features below, it would score **{exp.base_value:.4f}** (the base value); "
        f"together they {'add' if lift >= 0 else 'take away'} **{abs(lift):.4f}**."
    )
    if len(exp.contributions) and not exp.contributions["value"].abs().gt(0).any():
        text += " This model ignores the user's history, so no feature changes its score."
    method = {"closed_form": "exact closed form", "exact": "exact Shapley values"}
    return text + f" ({method.get(exp.method, 'shap permutation estimate')}, {exp.seconds:.2f} s)"


def _global(home, chosen: list[str], labels: dict, first: int) -> None:
    with st.expander("Which features matter overall? (global importance)"):
        run_id = st.selectbox(
            "Model", chosen, index=first, format_func=lambda r: labels[r], key="user_global_run"
        )
        st.caption(
            f"Mean |SHAP| of feature groups over {GLOBAL_USERS} random users' top item: how "
            "recent a history item is, its category, and any user or context features."
        )
        done = st.session_state.setdefault("user_global_done", [])
        if st.button("Compute global importance", key="user_global_go"):
            done.append(run_id)
        if run_id in done:
            with shell.guard("computing the global importance"):
                table = cache.global_importance(home, run_id, GLOBAL_USERS)
                st.plotly_chart(charts.importance_bar(table), width="stretch")


def _tradeoff(home, chosen: list[str], labels: dict) -> None:
    st.subheader("Re-ranking trade-off on the test set")
    st.caption(
        f"Re-rank the lists of up to {TRADEOFF_USERS:,} test users at weights 0 to 0.9 and "
        "see what each step costs in NDCG@10 and gains in novelty, coverage and diversity."
    )
    a, b, c = st.columns([2, 2, 1], vertical_alignment="bottom")
    run_id = a.selectbox("Model", chosen, format_func=lambda r: labels[r], key="user_curve_run")
    kind = b.radio("Weight", ("diversity", "novelty"), horizontal=True, key="user_curve_kind")
    done = st.session_state.setdefault("user_curve_done", [])
    if c.button("Compute the curve", key="user_curve_go"):
        done.append((run_id, kind))
    if (run_id, kind) in done:
        curve = cache.tradeoff(home, run_id, kind, 10, TRADEOFF_USERS)
        st.plotly_chart(charts.tradeoff(curve, 10, kind), width="stretch")


def _fast_first(loaded: dict) -> int:
    """Index of the first run that explains in closed form (item-kNN, EASE: milliseconds)."""
    fast = [i for i, run in enumerate(loaded.values()) if capabilities(run.model).explains_exactly]
    return fast[0] if fast else 0


def _default_runs(finished: list[dict]) -> list[str]:
    """The newest run of each model (up to 3) on the newest run's split."""
    newest, picked = finished[0], {}
    for rec in finished:
        same = (rec.get("split"), rec.get("seed")) == (newest.get("split"), newest.get("seed"))
        if same and rec.get("model") not in picked and len(picked) < 3:
            picked[rec.get("model")] = rec["run_id"]
    return list(picked.values())
