"""The what-if editor's session state and its "what changed" sentence (dashboard.whatif)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.data.dataset import Dataset
from core.explain.whatif import HistoryEdit, WhatIfList
from dashboard import whatif as W


def _dataset() -> Dataset:
    inter = pd.DataFrame({"user_id": ["u"] * 3 + ["v"], "item_id": ["a", "b", "c", "d"]})
    items = pd.DataFrame({"item_id": list("abcd"), "title": ["A", "B", "C", "D"]})
    return Dataset.from_frames("tiny", inter, items=items)


def test_an_item_the_user_had_added_again_then_removed_is_gone():
    ds, state = _dataset(), {}
    history = ds.item_codes(["a", "b", "c"])
    W.add_item(state, "tiny", "u", "a")  # move "a" to the end ...
    W.remove_item(state, "tiny", "u", "a")  # ... then take it out
    edit = W.as_edit(W.stored_edit(state, "tiny", "u"), ds, history)
    assert edit == HistoryEdit((), (int(ds.item_codes(["a"])[0]),))


def test_an_added_item_the_user_never_had_is_simply_un_added():
    ds, state = _dataset(), {}
    history = ds.item_codes(["a", "b", "c"])
    W.add_item(state, "tiny", "u", "d")
    W.remove_item(state, "tiny", "u", "d")
    assert W.as_edit(W.stored_edit(state, "tiny", "u"), ds, history) == HistoryEdit((), ())


def test_changes_line_counts_entered_and_left_separately():
    ds = _dataset()
    a, b, c, d = (int(x) for x in ds.item_codes(list("abcd")))
    shorter = WhatIfList(np.array([b]), np.array([1.0]), np.array([a, b]), np.array([2.0, 1.0]))
    assert W.changes_line(ds, shorter) == "1 left: “A”."
    swapped = WhatIfList(np.array([b, a]), np.ones(2), np.array([a, b]), np.ones(2))
    assert W.changes_line(ds, swapped) == "Same items, new order."
    moved = WhatIfList(np.array([c, d, b]), np.ones(3), np.array([a, b]), np.ones(2))
    assert W.changes_line(ds, moved) == "2 entered: “C”, “D” · 1 left: “A”."


def test_item_labels_read_the_titles_once_for_all_options(monkeypatch):
    """A picker formats every option on every run: the labels come from one read of the
    titles (a label per call rebuilt all titles: 15 s of an ML-100k first open, issue 16)."""
    ds = _dataset()
    calls = []
    titles = Dataset.item_titles
    monkeypatch.setattr(Dataset, "item_titles", lambda self: calls.append(1) or titles(self))
    codes = list(range(ds.n_items))
    labels = W.item_labels(ds, codes)
    assert len(calls) == 1 and list(labels) == codes
    assert labels[0] == f"{titles(ds)[0]} ({ds.item_ids[0]})"
