"""The "what if" history editor's state, search, tables and sentences (no Streamlit).

The edit of one user lives in a session-state mapping under `state_key(dataset, user_id)` as
{"added": [item ids], "removed": [item ids]} (ids as in the file, so a rerun, another user
and back, or a re-ingested dataset keep or drop it cleanly); `core.explain.whatif` turns it
into the edited history and the models' lists.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence

import numpy as np
import pandas as pd

from core.data import schema as S
from core.data.dataset import Dataset
from core.explain.whatif import HistoryEdit, WhatIfList
from dashboard.text import md

#: session-state key of the {state_key: edit} mapping
STATE = "user_whatif"
#: items a search offers at most
SEARCH_LIMIT = 50
#: items named per side in a list's "what changed" line
SHOWN_CHANGES = 3
#: marks an item that entered the list after the edit (plain text: headless Chromium here
#: has no emoji font, and a person's browser may lack one too)
NEW = "(new)"


def state_key(dataset: str, user_id: str) -> str:
    return f"{dataset}\x1f{user_id}"


def stored_edit(state: MutableMapping, dataset: str, user_id: str) -> dict:
    """The user's {"added", "removed"} id lists (empty ones when there is no edit)."""
    edits = state.get(STATE) or {}
    entry = edits.get(state_key(dataset, user_id)) or {}
    return {"added": list(entry.get("added", [])), "removed": list(entry.get("removed", []))}


def add_item(state: MutableMapping, dataset: str, user_id: str, item_id: str) -> None:
    """Append `item_id` as the newest interaction (moved to the end if already added)."""
    entry = stored_edit(state, dataset, user_id)
    entry["added"] = [i for i in entry["added"] if i != item_id] + [item_id]
    entry["removed"] = [i for i in entry["removed"] if i != item_id]
    _store(state, dataset, user_id, entry)


def remove_item(state: MutableMapping, dataset: str, user_id: str, item_id: str) -> None:
    """Take `item_id` out of the history: un-added if it was added, and removed from the
    recorded history too (`as_edit` drops a removal the recorded history does not hold), so
    an item the user had, added again and then removed is gone, not back in its old place."""
    entry = stored_edit(state, dataset, user_id)
    if item_id in entry["added"]:
        entry["added"].remove(item_id)
    if item_id not in entry["removed"]:
        entry["removed"].append(item_id)
    _store(state, dataset, user_id, entry)


def reset(state: MutableMapping, dataset: str, user_id: str) -> None:
    """Forget the user's edit: back to the recorded history."""
    edits = dict(state.get(STATE) or {})
    edits.pop(state_key(dataset, user_id), None)
    state[STATE] = edits


def as_edit(entry: dict, ds: Dataset, history: np.ndarray) -> HistoryEdit:
    """The stored id lists as a `HistoryEdit` of codes; ids no longer in the dataset and
    removals of items the history does not hold are dropped."""
    index = pd.Index(ds.item_ids.astype(str))
    added = [int(c) for c in index.get_indexer(entry["added"]) if c >= 0]
    held = set(np.asarray(history, dtype=np.int64).tolist())
    removed = [int(c) for c in index.get_indexer(entry["removed"]) if c >= 0 and int(c) in held]
    return HistoryEdit(tuple(added), tuple(removed))


def search_items(ds: Dataset, query: str, limit: int = SEARCH_LIMIT) -> list[int]:
    """Codes of items whose id equals or whose title or id contains `query` (case-insensitive),
    exact id matches first, then by title; [] for an empty query."""
    query = str(query or "").strip().lower()
    if not query:
        return []
    ids = pd.Series(ds.item_ids.astype(str)).str.lower()
    titles = pd.Series(ds.item_titles().astype(str))
    exact = np.flatnonzero(ids.to_numpy() == query)
    hits = np.flatnonzero(
        (
            titles.str.lower().str.contains(query, regex=False)
            | ids.str.contains(query, regex=False)
        ).to_numpy()
    )
    rest = [int(c) for c in hits[np.argsort(titles.to_numpy()[hits], kind="stable")]]
    ordered = [int(c) for c in exact] + [c for c in rest if c not in set(exact.tolist())]
    return ordered[: int(limit)]


def item_labels(ds: Dataset, codes: Sequence[int]) -> dict[int, str]:
    """{code: 'Title (id)'} of items, for a picker's `format_func` (`labels.get`).

    The titles are read once: a picker formats every option on every run, and a label per
    call rebuilt all titles each time (272 options of an ML-100k history: 15 s of a 47 s
    first open at load 21)."""
    titles, ids = ds.item_titles(), ds.item_ids
    return {int(c): f"{titles[int(c)]} ({ids[int(c)]})" for c in codes}


def summary(ds: Dataset, edit: HistoryEdit, n_edited: int) -> str:
    """'Edited history: 38 items — added “A”, “B” (newest last) · removed “C”.' (Markdown)."""
    titles = ds.item_titles()
    parts = []
    if edit.added:
        names = ", ".join(f"“{md(titles[c])}”" for c in edit.added)
        parts.append(f"added {names}" + (" (newest last)" if len(edit.added) > 1 else ""))
    if edit.removed:
        parts.append("removed " + ", ".join(f"“{md(titles[c])}”" for c in edit.removed))
    if not parts:
        return f"Recorded history: {n_edited:,} items, not edited."
    return f"Edited history: {n_edited:,} items — " + " · ".join(parts) + "."


def reactions_line(labels: Sequence[str], reasons: Sequence[str | None]) -> str:
    """Which runs follow an edit: 'React to the edit: **sasrec**, **ease**.' (Markdown)."""
    can = [f"**{md(label)}**" for label, why in zip(labels, reasons, strict=True) if why is None]
    if not can:
        return "None of the selected runs can react to an edited history."
    return "React to the edit: " + ", ".join(can) + "."


def edited_table(ds: Dataset, result: WhatIfList, held: Sequence[int] | np.ndarray) -> pd.DataFrame:
    """The edited list as `views_user.top_list` lays it out, plus `new` (entered the list)."""
    codes = result.items.astype(np.int64)
    held_set = {int(i) for i in held}
    category = (
        ds.items[S.CATEGORY].astype(object).to_numpy()[codes]
        if S.CATEGORY in ds.items.columns
        else np.full(len(codes), None, dtype=object)
    )
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(codes) + 1),
            S.ITEM: codes,
            S.ITEM_ID: ds.item_ids[codes].astype(str),
            S.TITLE: ds.item_titles()[codes],
            S.CATEGORY: [None if pd.isna(c) else str(c) for c in category],
            "score": result.scores,
            "hit": [int(c) in held_set for c in codes],
            "new": ~np.isin(codes, result.before),
        }
    )


def mark_new(shown: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """`views_user.list_view`'s table with NEW before the titles of items that entered."""
    if "new" not in table:
        return shown
    titles = [
        f"{NEW} {t}" if new else t for t, new in zip(shown[S.TITLE], table["new"], strict=True)
    ]
    return shown.assign(**{S.TITLE: titles})


def changes_line(ds: Dataset, result: WhatIfList) -> str:
    """What the edit changed in one list: 'Entered: “A”, “B” · Left: “C”, “D”.' (Markdown)."""
    if not len(result.entered) and np.array_equal(result.items, result.before):
        return "The edit changes nothing in this list."
    if not len(result.entered) and not len(result.left):
        return "Same items, new order."
    titles = ds.item_titles()

    def names(codes: np.ndarray) -> str:
        shown = ", ".join(f"“{md(titles[c])}”" for c in codes[:SHOWN_CHANGES])
        more = len(codes) - SHOWN_CHANGES
        return shown + (f" and {more} more" if more > 0 else "")

    parts = []
    if len(result.entered):
        parts.append(f"{len(result.entered)} entered: {names(result.entered)}")
    if len(result.left):
        parts.append(f"{len(result.left)} left: {names(result.left)}")
    return " · ".join(parts) + "."


def _store(state: MutableMapping, dataset: str, user_id: str, entry: dict) -> None:
    edits = dict(state.get(STATE) or {})  # a new dict: Streamlit sees the assignment
    if entry["added"] or entry["removed"]:
        edits[state_key(dataset, user_id)] = entry
    else:
        edits.pop(state_key(dataset, user_id), None)
    state[STATE] = edits
