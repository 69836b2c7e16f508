"""The User explorer's "what if" editor: search and add items, remove items, reset.

Draws with `st.`; the state and sentences are `dashboard.whatif` (tested there). The buttons
change the edit in callbacks, so the rerun they trigger already shows the edited lists.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import streamlit as st

from core.data.dataset import Dataset
from core.explain.whatif import HistoryEdit, apply_edit
from dashboard import whatif as W
from dashboard.text import md


def editor(
    ds: Dataset,
    dataset: str,
    user_id: str,
    history: np.ndarray,
    labels: Sequence[str],
    reasons: Sequence[str | None],
) -> HistoryEdit:
    """The editor for one user; returns their current edit (empty: the recorded history).

    labels/reasons: the selected runs and `core.explain.whatif.reaction` of each (None: it
    reacts), so the editor says which lists can follow the edit and why the others cannot.
    """
    state = st.session_state
    edit = W.as_edit(W.stored_edit(state, dataset, user_id), ds, history)
    edited = apply_edit(history, edit)
    with st.expander("What if? Edit this user's history", expanded=not edit.empty):
        st.caption(
            "Add items as the newest interaction or remove items: every list and explanation "
            "below follows the edited history through each model's own fold-in, without "
            "retraining — the way an online system reacts to a new click."
        )
        st.markdown(W.reactions_line(labels, reasons))
        for label, why in zip(labels, reasons, strict=True):
            if why is not None:
                st.caption(f"{md(label)}: {md(why)}")
        add, drop = st.columns(2)
        query = add.text_input(
            "Search items to add (title or id)", key="user_whatif_search",
            placeholder="e.g. Ep. 1", on_change=_new_search, args=(ds,),
        )  # fmt: skip
        matches = W.search_items(ds, query)
        if query and not matches:
            add.caption(f"No item matches '{md(query)}'.")
        pick = add.selectbox(
            "Item to add", matches, format_func=W.item_labels(ds, matches).get,
            key="user_whatif_pick", disabled=not matches,
        )  # fmt: skip
        add.button(
            "Add as newest", key="user_whatif_add", disabled=pick is None,
            on_click=_add, args=(dataset, user_id, None if pick is None else ds.item_ids[pick]),
        )  # fmt: skip
        newest_first = [int(c) for c in dict.fromkeys(edited[::-1].tolist())]
        gone = drop.selectbox(
            "Item to remove (newest first)", newest_first,
            format_func=W.item_labels(ds, newest_first).get, key="user_whatif_drop",
            disabled=not newest_first,
        )  # fmt: skip
        drop.button(
            "Remove from the history", key="user_whatif_remove", disabled=gone is None,
            on_click=_remove, args=(dataset, user_id, None if gone is None else ds.item_ids[gone]),
        )  # fmt: skip
        st.markdown(W.summary(ds, edit, len(edited)))
        st.button(
            "Reset to the recorded history", key="user_whatif_reset", disabled=edit.empty,
            on_click=W.reset, args=(st.session_state, dataset, user_id),
        )  # fmt: skip
    return edit


def _new_search(ds: Dataset) -> None:
    # a keyed selectbox keeps its value when its options change (Streamlit 1.67), and the
    # browser kept showing "Choose an option": a new search picks its first match itself
    matches = W.search_items(ds, st.session_state.get("user_whatif_search", ""))
    st.session_state["user_whatif_pick"] = matches[0] if matches else None


def _add(dataset: str, user_id: str, item_id) -> None:
    if item_id is not None:
        W.add_item(st.session_state, dataset, user_id, str(item_id))


def _remove(dataset: str, user_id: str, item_id) -> None:
    if item_id is not None:
        W.remove_item(st.session_state, dataset, user_id, str(item_id))
