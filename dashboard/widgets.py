"""Streamlit pieces the pages share: run pickers, on-demand buttons, metric rows, columns.

Everything here draws with `st.`; the decisions behind it (which runs to preselect, how a run
is named) are pure functions in `dashboard.views`, tested there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import streamlit as st

from core.data import schema as S
from core.errors import RecScopeError
from core.eval import compare as C
from core.models import model_class, param_specs
from core.retrieval.similar import neighbors_frame
from dashboard import charts_user, selection
from dashboard import views as V
from dashboard import views_items as VI
from dashboard import views_train as VT
from dashboard import views_user as U
from dashboard.text import md


def run_picker(
    label: str,
    finished: Sequence[Mapping],
    *,
    key: str,
    limit: int,
    with_score: bool = False,
    help: str | None = None,
) -> list[str]:
    """A multiselect of finished runs (newest first), preselecting `views.default_runs`; the
    pick is kept across pages and in the URL as `?runs=` (`dashboard.selection`)."""
    by_id = {r["run_id"]: r for r in finished}
    return selection.choice(
        st.multiselect,
        label,
        list(by_id),
        key=key,
        param="runs",
        default=V.default_runs(finished, limit),
        format_func=lambda r: V.run_option(by_id[r], with_score),
        help=help,
    )


def pick_runs(
    label: str,
    finished: Sequence[Mapping],
    *,
    key: str,
    limit: int,
    minimum: int,
    too_few: str,
    what: str,
    with_score: bool = False,
    help: str | None = None,
) -> list[Mapping]:
    """`run_picker`, then the picked records in pick order; [] after saying why when fewer
    than `minimum` are picked (`too_few`) or they cannot be `what` together."""
    chosen = run_picker(label, finished, key=key, limit=limit, with_score=with_score, help=help)
    if len(chosen) < minimum:
        st.info(too_few)
        return []
    by_id = {r["run_id"]: r for r in finished}
    records = [by_id[r] for r in chosen]
    return records if comparable(records, what) else []


def comparable(records: Sequence[Mapping], what: str) -> bool:
    """True when the runs share dataset and split; else a warning 'These runs cannot be
    {what}: …' and False."""
    try:
        C.check_comparable(list(records))
    except RecScopeError as err:
        st.warning(f"These runs cannot be {what}: {md(err)}")
        return False
    return True


def metric_row(facts: Sequence[tuple[str, str, str | None]]) -> None:
    """One `st.metric` per (label, value, help), side by side."""
    for col, (label, value, help) in zip(st.columns(len(facts)), facts, strict=True):
        col.metric(label, value, help=help)


def on_demand(container, label: str, key: str, token) -> bool:
    """A button for a slow computation: True from the click on, for as long as `token` (what
    was asked for, e.g. (run, kind)) stays the same; the page then computes and draws it."""
    done = st.session_state.setdefault(f"{key}_done", [])
    if container.button(label, key=key):
        done.append(token)
    return token in done


def user_finder(segments: pd.DataFrame, dataset: str, key: str = "user_id") -> int | None:
    """Find a user by id, at random, or at random from a segment (a popover); returns the
    user's code, or None after a warning when the typed id is unknown.

    `segments` is `views_user.user_segments`; the widgets are keyed `key` (the id box),
    'user_random', 'user_seg_kind', 'user_seg_value' and 'user_seg_pick' (prefix: the part
    of `key` before '_').
    """
    prefix = key.split("_")[0]
    pool = U.testable_users(segments)

    def known(text: str) -> str | None:  # an id from the session or the URL: only if it exists
        return text if U.find_user(segments, text) is not None else None

    selection.restore(key, "user", pool[0], decode=known)  # kept across pages, ?user= in the URL
    if not st.session_state.get(key):
        st.session_state[key] = pool[0]
    left, mid, right = st.columns([2, 1, 3], vertical_alignment="bottom")
    left.text_input("User id", key=key, help="The id as it appears in the uploaded file.")
    mid.button("Random user", key=f"{prefix}_random", on_click=_pick, args=(key, pool))
    with right.popover("Find by segment", width="stretch"):
        kind = st.selectbox(
            "Segment kind", U.segment_kinds(segments), format_func=V.SEGMENT_KINDS.get,
            key=f"{prefix}_seg_kind",
        )  # fmt: skip
        counts = U.segment_counts(segments, kind)
        value = st.selectbox(
            "Segment", counts.index.tolist(), key=f"{prefix}_seg_value",
            format_func=lambda v: f"{v} ({counts[v]:,} test users)",
        )  # fmt: skip
        members = U.segment_members(segments, kind, value)
        st.button(
            "Random user from this segment", key=f"{prefix}_seg_pick", on_click=_pick,
            args=(key, members),
        )  # fmt: skip
    selection.remember(key, "user", st.session_state[key])
    code = U.find_user(segments, st.session_state[key])
    if code is None:
        st.warning(
            f"There is no user '{md(str(st.session_state[key]).strip())}' in dataset "
            f"'{md(dataset)}'; type an id from the file (for example '{md(pool[0])}') or pick "
            "one at random."
        )
    return code


def explanation(exp, run: str, key: str) -> None:
    """An `core.explain.explainer.Explanation` of `run`: the sentence and its notes, the
    waterfall and the bar chart side by side, and every feature in an expander."""
    if U.same_for_everyone(exp):  # pop: a sentence, not a row of zero bars
        st.info(U.explanation_sentence(exp, run))
        return
    st.markdown(U.explanation_sentence(exp, run))
    for note in exp.notes:
        st.caption(note)
    left, right = st.columns(2)
    waterfall = charts_user.shap_waterfall(exp.contributions, exp.base_value, exp.score)
    chart(left, waterfall, key=f"{key}_waterfall")
    chart(right, charts_user.shap_bar(exp.contributions), key=f"{key}_shap_bar")
    with st.expander(f"All {len(exp.contributions)} features"):
        st.dataframe(
            exp.contributions[["label", "kind", "value"]], hide_index=True, width="stretch",
            column_config={"value": st.column_config.NumberColumn("SHAP value", format="%+.4f")},
        )  # fmt: skip


def param_inputs(model: str) -> dict:
    """An expander of widgets for a model's hyperparameters (`core.models.param_specs`, plus
    epochs for loop-trained models); returns only the values changed from the defaults."""
    changed = {}
    specs = param_specs(model)
    if not specs:
        return changed
    with st.expander(f"{model} settings"):
        if model_class(model).trains_with_loop:
            epochs = model_class(model).default_params().get("epochs")
            value = st.number_input(
                "epochs", 1, 10_000, int(epochs), key=f"p_{model}_epochs",
                help="Upper bound; early stopping usually ends training sooner.",
            )  # fmt: skip
            if value != epochs:
                changed["epochs"] = int(value)
        for spec in specs:
            key = f"p_{model}_{spec.name}"
            if spec.kind is bool:
                value = st.checkbox(spec.name, spec.default, key=key, help=spec.help)
            elif spec.kind is int:
                value = int(st.number_input(spec.name, value=spec.default, key=key, help=spec.help))
            elif spec.kind is float:
                value = st.number_input(
                    spec.name, value=float(spec.default), key=key, help=spec.help, format="%g"
                )
            else:  # e.g. EASE's l2 ("auto" or a number): a typed number is passed as one
                text = st.text_input(spec.name, spec.default, key=key, help=spec.help)
                value = VT.param_value(text)
            if value != spec.default:
                changed[spec.name] = value
    return changed


def chart(container, figure, key: str | None = None, **kwargs) -> None:
    """A Plotly figure at the container's full width."""
    container.plotly_chart(figure, width="stretch", key=key, **kwargs)


# -- column layouts of the tables ------------------------------------------------------------


def time_column():
    """A timestamp column shown as a date."""
    return st.column_config.DatetimeColumn("Time", format="YYYY-MM-DD")


def metric_columns(metrics: Sequence[str]) -> dict:
    """Readable, 4-decimal number columns for metric keys ('ndcg@10' -> 'NDCG@10')."""
    return {m: st.column_config.NumberColumn(V.metric_label(m), format="%.4f") for m in metrics}


def neighbours(dataset, facts: pd.DataFrame, answer: Mapping, caption: str) -> list[int]:
    """A neighbour answer (`core.retrieval.similar`) as a table (rank, title, similarity,
    category, uses) with `caption` under it; returns the neighbours' item codes.

    The item id stays in the data (downloads) but off screen: two tables share the width.
    """
    st.dataframe(
        neighbors_frame(dataset, answer, facts["popularity"].to_numpy()),
        hide_index=True,
        width="stretch",
        # numbers before the category: two tables share the width, and a last narrow
        # "Uses" column was cut off (issue 16 point 6)
        column_order=["rank", S.TITLE, "score", "popularity", S.CATEGORY],
        column_config={
            # pixel widths that add up to half a wide page (~460 px), so that "Home & Garden"
            # and "Uses" are not cut when the run's and the text's tables share the width
            "rank": st.column_config.NumberColumn("#", width=36),
            S.ITEM_ID: st.column_config.TextColumn("Item id"),
            S.TITLE: st.column_config.TextColumn("Title", width=180),
            "score": st.column_config.NumberColumn(
                "Similarity",
                format="%.3f",
                width=75,
                help="Higher is closer: cosine in an index, the weight for item-item",
            ),  # fmt: skip
            S.CATEGORY: st.column_config.TextColumn("Category", width=120),
            "popularity": st.column_config.NumberColumn(
                "Uses", format="%d", width=52, help="Interactions with the item"
            ),
        },
    )
    st.caption(caption)
    return VI.neighbour_codes(dataset, answer)


# -- helpers ---------------------------------------------------------------------------------


def _pick(key: str, users: list) -> None:
    """Button callback: put a random user of `users` into the id box (before it is drawn)."""
    if users:
        st.session_state[key] = str(users[np.random.default_rng().integers(len(users))])
