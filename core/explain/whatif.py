"""What if the user's history were different? Top lists from an edited history, no retraining.

An edit removes items from a user's known history (every interaction with them) and appends
items as the newest, in the order given (an item already in the history moves to the end).
Each model answers through its own fold-in, the `ExplainsHistory` capability:
`score_histories([edited], all items, user)` is "the scores if the user's known history were
this list" (SASRec, BERT4Rec, GRU4Rec read the edited sequence itself; BPR, NeuMF, LightGCN
re-estimate the user vector from it; item-kNN and EASE sum its item weights). The scores are
ranked by the one ranking routine (`core.eval.ranking.top_k`, the run's tie seed) with the
edited history's items excluded, so the unedited history gives exactly `recommend`'s list.

A model without the capability, or one whose scores ignore the history (popularity), cannot
react; `reaction` says why in one sentence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from core.data import schema as S
from core.data.dataset import Interactions
from core.errors import ParameterError, RecScopeError
from core.eval.ranking import check_k, top_k
from core.protocols import ExplainsHistory


@dataclass(frozen=True)
class HistoryEdit:
    """Items to remove from a history and items to append as the newest (item codes)."""

    added: tuple[int, ...] = ()
    removed: tuple[int, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.added and not self.removed


@dataclass(frozen=True)
class WhatIfList:
    """One model's top-k before and after an edit: codes and scores, (k,) each (no padding).

    entered: codes in the edited list that were not in the original one (edited order);
    left: codes of the original list that are not in the edited one (original order).
    """

    items: np.ndarray
    scores: np.ndarray
    before: np.ndarray
    before_scores: np.ndarray

    @property
    def entered(self) -> np.ndarray:
        return self.items[~np.isin(self.items, self.before)]

    @property
    def left(self) -> np.ndarray:
        return self.before[~np.isin(self.before, self.items)]


def known_history(known: Interactions, user_code: int) -> np.ndarray:
    """(E,) item codes of the user's known interactions, oldest first (as the models read them)."""
    ordered = known.ordered
    mine = ordered[S.USER].to_numpy() == int(user_code)
    return ordered[S.ITEM].to_numpy(dtype=np.int64)[mine]


def apply_edit(history: np.ndarray, edit: HistoryEdit) -> np.ndarray:
    """The edited history (E',) oldest first: removed and re-added items dropped from their
    place, then the added items appended in order (the last one is the newest)."""
    history = np.asarray(history, dtype=np.int64)
    added = list(dict.fromkeys(int(i) for i in edit.added))  # each once, first order kept
    dropped = np.isin(history, np.array([*edit.removed, *added], dtype=np.int64))
    return np.concatenate([history[~dropped], np.array(added, dtype=np.int64)])


def check_edit(history: np.ndarray, edit: HistoryEdit, item_ids: np.ndarray, user_id: str) -> None:
    """A ParameterError naming the first removed item the history does not hold."""
    held = set(np.asarray(history, dtype=np.int64).tolist())
    for code in edit.removed:
        if int(code) not in held:
            raise ParameterError(
                f"Item '{item_ids[int(code)]}' is not in user '{user_id}'s history, so it "
                "cannot be removed; pass an item the user has interacted with."
            )


def reaction(model, user_code: int, history: np.ndarray) -> str | None:
    """None when `model`'s list follows an edited history; else one sentence saying why not.

    Decided by the capability (`ExplainsHistory`) and by what the model does with it: scores
    that are the same for the user's history and for an empty one ignore the history.
    """
    name = getattr(model, "name", type(model).__name__)
    if not isinstance(model, ExplainsHistory):
        return (
            f"{name} cannot score an edited history (it has no history fold-in), so its list "
            "stays as it was trained."
        )
    history = np.asarray(history, dtype=np.int64)
    probe = history if len(history) else np.zeros(1, dtype=np.int64)
    with torch.inference_mode():
        scores = model.score_histories(
            [probe, np.zeros(0, dtype=np.int64)], np.arange(model.n_items_), int(user_code)
        )
    if np.array_equal(scores[0], scores[1]):
        return (
            f"{name} scores items the same whatever the user's history (an empty history "
            "changes nothing), so an edit cannot change its list."
        )
    return None


def recommend_history(
    model, user_code: int, histories: Sequence[np.ndarray], k: int = 10, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (N, k) codes and scores of `user_code` if their history were each of `histories`,
    each history's items excluded; -1 / -inf pad a list shorter than k. `seed`: the run's."""
    if not isinstance(model, ExplainsHistory):
        raise RecScopeError(
            f"Model '{model.name}' cannot score an edited history; pick a run of a model that "
            "can (every built-in model can)."
        )
    n_items = int(model.n_items_)
    k = check_k(k, n_items)
    histories = [np.asarray(h, dtype=np.int64) for h in histories]
    with torch.inference_mode():
        raw = model.score_histories(histories, np.arange(n_items), int(user_code))  # (N, n)
        scores = torch.as_tensor(np.asarray(raw, dtype=np.float64)).float()  # (N, n)
        exclude = torch.zeros(scores.shape, dtype=torch.bool)  # (N, n)
        for row, history in enumerate(histories):
            exclude[row, torch.from_numpy(history)] = True
        users = torch.full((len(histories),), int(user_code), dtype=torch.int64)
        items, values = top_k(scores, k, users=users, exclude=exclude, seed=seed)
    return items.numpy(), values.numpy()


def what_if(
    model, user_code: int, history: np.ndarray, edit: HistoryEdit, k: int = 10, *, seed: int = 0
) -> WhatIfList:
    """`model`'s top-k for the user's `history` and for the history after `edit` (one call)."""
    edited = apply_edit(history, edit)
    items, scores = recommend_history(model, user_code, [edited, history], k, seed=seed)
    real = items >= 0
    return WhatIfList(
        items=items[0][real[0]],
        scores=scores[0][real[0]].astype(np.float64),
        before=items[1][real[1]],
        before_scores=scores[1][real[1]].astype(np.float64),
    )


def recommend_edited(
    loaded, user_id: str, add: Sequence[str], remove: Sequence[str], k: int = 10
) -> dict:
    """`recscope recommend RUN --user U --add ITEM … --remove ITEM …` on a `LoadedRun`.

    Ids as in the uploaded file. Returns {"user_id", "items": [{"rank", "item_id", "title",
    "score", "new"}], "entered", "left" (item ids), "history": {"added", "removed", "length"}};
    an unknown id, an item the history does not hold, or a model that cannot react raises a
    one-sentence RecScopeError.
    """
    ds, model = loaded.dataset, loaded.model
    user = int(ds.user_codes([user_id])[0])
    add_codes = ds.item_codes(list(add)) if len(add) else np.zeros(0, np.int64)
    remove_codes = ds.item_codes(list(remove)) if len(remove) else np.zeros(0, np.int64)
    history = known_history(loaded.split.known_for("test"), user)
    edit = HistoryEdit(tuple(int(c) for c in add_codes), tuple(int(c) for c in remove_codes))
    check_edit(history, edit, ds.item_ids, str(user_id))
    why = reaction(model, user, history)
    if why is not None:
        raise RecScopeError(f"Run {loaded.record.get('run_id')} cannot show a what-if list: {why}")
    result = what_if(model, user, history, edit, k, seed=loaded.split.seed)
    titles, ids = ds.item_titles(), ds.item_ids
    items = [
        {
            "rank": rank,
            "item_id": str(ids[c]),
            "title": str(titles[c]),
            "score": float(score),
            "new": bool(c not in set(result.before.tolist())),
        }
        for rank, (c, score) in enumerate(zip(result.items, result.scores, strict=True), 1)
    ]
    return {
        "user_id": str(user_id),
        "items": items,
        "entered": [str(ids[c]) for c in result.entered],
        "left": [str(ids[c]) for c in result.left],
        "history": {
            "added": [str(ids[c]) for c in edit.added],
            "removed": [str(ids[c]) for c in edit.removed],
            "length": int(len(apply_edit(history, edit))),
        },
    }
