"""SHAP explanations: "why does model M score item i for user u?" in readable features.

Features (see `core.explain.features`): each of the user's `max_history` most recent
distinct history items, one grouped feature for older items, and any context features the
model declares (`explain_context`). A coalition of present features is turned into a masked
history and scored through the model's `score_histories(histories, item_codes, user_code)`,
"the scores if the user's known history were exactly this list" (each model file documents
how it answers that):
- pop: the counts, whatever the history (every SHAP value is 0, base value = score);
- item-kNN, EASE: x_S W, exact and additive;
- SASRec: the masked sequence itself goes through the Transformer;
- BPR-MF, NeuMF, LightGCN (whose user vectors are learned, not computed from the history):
  f(S) = trained score + g(S) − g(full history), where g re-estimates the user from S (ridge
  least-squares fold-in of the item vectors for BPR and for both NeuMF branches; LightGCN's
  first-layer view Σ_{i∈S} e_i·e_j / √|S| over its final item embeddings), so the full
  history gives exactly the trained score and each item's value is its fold-in effect.

Context protocol (hybrid / multi-scenario models): a model may define
`explain_context(user_code, item_code) -> list[(name, present_value, baseline_value[, kind])]`
with names like "user:age_band", "item:category", "scenario"; `score_histories` then also
receives `context=[{name: value}, ...]` (one dict per history, baseline where masked).

Method, per model:
- additive models (they have `history_contributions`: item-kNN, EASE): the exact Shapley
  value of a history item is its closed-form contribution W[i, item] (tests check this
  against shap's ExactExplainer); every history item is then its own feature, and only
  items that together carry under 5% of Σ|value| are grouped (`features.group_small`), so
  the items that carry the score are named, however long the history;
- otherwise shap's ExactExplainer for at most `EXACT_MAX_FEATURES` features and its
  PermutationExplainer (antithetic permutations, fixed seed) beyond; both take an
  `Independent` masker whose single background row is "all absent".

Either way, base value = the score with every feature absent, and base value + Σ values =
the model's score (each permutation telescopes from all-absent to all-present).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shap
import torch

from core.data import schema as S
from core.errors import RecScopeError
from core.explain.features import HistoryFeatures, build_features, group_small
from core.protocols import AdditiveHistory, ExplainsContext, ExplainsHistory

log = logging.getLogger(__name__)

#: up to this many features the exact (2^M coalitions) explainer runs; permutation beyond
EXACT_MAX_FEATURES = 12
#: antithetic permutation pairs for the permutation explainer
N_PERMUTATIONS = 10
METHODS = ("auto", "closed_form", "exact", "permutation")
#: build_features depth that keeps every distinct history item (closed-form explanations)
ALL_ITEMS = 1 << 30
#: explanations kept in memory, keyed by (run_id, user_code, item_code, max_history, method)
_CACHE_SIZE = 512
_cache: OrderedDict[tuple, Explanation] = OrderedDict()


@dataclass
class Explanation:
    """One explanation. contributions: feature, kind, label, value, item_code, position."""

    user_id: str
    item_id: str
    item_title: str
    score: float
    base_value: float
    contributions: pd.DataFrame
    model: str = ""
    method: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    #: False when the model scores this item the same whatever the history (pop): then
    #: there is nothing per user to explain (`_personal`)
    personal: bool = True

    def to_json(self) -> dict:
        """The CLI document: user_id, item_id, score, base_value, contributions."""
        return {
            "user_id": str(self.user_id),
            "item_id": str(self.item_id),
            "score": float(self.score),
            "base_value": float(self.base_value),
            "contributions": [
                {"feature": r.feature, "value": float(r.value), "label": r.label, "kind": r.kind}
                for r in self.contributions.itertuples()
            ],
        }

    @property
    def total(self) -> float:
        """base_value + Σ contributions (equals `score`)."""
        return float(self.base_value + self.contributions["value"].sum())


def explain(
    loaded,
    user_code: int,
    item_code: int,
    *,
    max_history: int = 50,
    method: str = "auto",
    n_permutations: int = N_PERMUTATIONS,
    seed: int = 0,
    history: Sequence[int] | np.ndarray | None = None,
    group: bool = True,
) -> Explanation:
    """Explain `loaded.model`'s score of `item_code` for `user_code` (a `LoadedRun`).

    The model's history must be train+valid (what `load_run` sets); the features come from
    the same interactions in time order. `history` (item codes, oldest first) explains the
    score the user would get if that were their history instead (the "what if" editor:
    `core.explain.whatif`); score and base value + contributions are then those of the edited
    history. Results are cached per (run, user, item, history).

    Closed-form (additive) models get one feature per history item: the `max_history`
    largest by |value|, and more until the rest is small (`features.group_small`;
    `group=False` keeps every item apart). The other models get the `max_history` most
    recent items and one feature for the older ones.
    """
    if method not in METHODS:
        raise RecScopeError(f"Explanation method '{method}' is unknown; use one of {METHODS}.")
    if int(max_history) < 1:
        raise RecScopeError(f"max_history must be at least 1; got {max_history!r}.")
    events = None if history is None else np.asarray(history, dtype=np.int64).reshape(-1)
    key = (
        loaded.record.get("run_id"), int(user_code), int(item_code), int(max_history), method,
        bool(group),
    )  # fmt: skip
    if events is not None:
        key += (tuple(events.tolist()),)
    if key[0] is not None and key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    started = time.perf_counter()
    model, ds = loaded.model, loaded.dataset
    _check_code(user_code, ds.n_users, "user")
    _check_code(item_code, ds.n_items, "item")
    if events is not None and len(events) and not (0 <= events.min() and events.max() < ds.n_items):
        bad = events[(events < 0) | (events >= ds.n_items)][0]
        _check_code(int(bad), ds.n_items, "history item")
    if not isinstance(model, ExplainsHistory):
        raise RecScopeError(
            f"Model '{model.name}' cannot score a masked history, so it cannot be explained; "
            "pick a run of a model that can (every built-in model can)."
        )
    context = None
    if isinstance(model, ExplainsContext):
        context = model.explain_context(int(user_code), int(item_code))
    additive = isinstance(model, AdditiveHistory) and not context
    closed = method == "closed_form" or (method == "auto" and additive)
    # closed form: every history item its own feature (grouped after, by size, not age)
    depth = ALL_ITEMS if closed else int(max_history)
    feats = build_features(
        ds, loaded.split.known_for("test"), int(user_code), depth, context, events
    )
    with torch.inference_mode():
        if events is None:
            score = float(model.score([int(user_code)], [int(item_code)]).double().cpu()[0, 0])
        else:
            scored = model.score_histories([events], np.array([int(item_code)]), int(user_code))
            score = float(np.asarray(scored, dtype=np.float64)[0, 0])
    n_feat = len(feats.table)
    if closed:
        method_used = "closed_form"
    elif method == "auto":
        method_used = "exact" if n_feat <= EXACT_MAX_FEATURES else "permutation"
    else:
        method_used = method
    if n_feat == 0:
        base, values = score, np.zeros(0)
    elif method_used == "closed_form" and events is not None:
        base, values = _closed_form_edited(model, feats, int(item_code))
    elif method_used == "closed_form":
        base, values = _closed_form(model, feats, int(item_code), score)
    else:
        base, values = _shap_values(model, feats, int(item_code), method_used, n_permutations, seed)
    table = feats.table.copy()
    if method_used == "closed_form" and group:
        table, values = group_small(table, np.asarray(values, np.float64), int(max_history))
    table["value"] = values
    # largest |value| first; a grouped feature ("N other items") last whatever its size
    order = table.assign(_g=table["feature"] == "history:other", _a=-table["value"].abs())
    table = table.reindex(order.sort_values(["_g", "_a"], kind="stable").index)
    table = table.reset_index(drop=True)[
        ["feature", "kind", "label", "value", "item_code", "position"]
    ]
    exp = Explanation(
        user_id=str(ds.user_ids[int(user_code)]),
        item_id=str(ds.item_ids[int(item_code)]),
        item_title=str(ds.item_titles()[int(item_code)]),
        score=score,
        base_value=float(base),
        contributions=table,
        model=str(model.name),
        method=method_used,
        seconds=time.perf_counter() - started,
        personal=_personal(model, feats, int(item_code), float(base), np.asarray(values), ds),
    )
    gap = abs(exp.total - score)
    if gap > 1e-4 * max(1.0, abs(score)):
        log.warning(
            "explanation of %s is not additive: base+sum=%g, score=%g", key, exp.total, score
        )
        exp.notes.append(
            f"Base value plus contributions ({exp.total:.6g}) differs from the score "
            f"({score:.6g}) by {gap:.2g}."
        )
    if key[0] is not None:
        _cache[key] = exp
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return exp


def clear_cache() -> None:
    """Forget cached explanations (e.g. after a run was deleted)."""
    _cache.clear()


def warm_up() -> float:
    """Compile shap's numba kernels once per process (seconds taken); call in the background.

    The first Permutation/Exact explanation of a process otherwise pays that compile
    (a few seconds; far more on a busy machine); later ones take milliseconds.
    """
    started = time.perf_counter()
    masker = shap.maskers.Independent(np.zeros((1, 3)), max_samples=1)

    def f(masks: np.ndarray) -> np.ndarray:
        return np.asarray(masks, dtype=np.float64).sum(1)  # (N,)

    row = np.ones((1, 3))
    shap.explainers.PermutationExplainer(f, masker, seed=0)(
        row, max_evals=7, batch_size=7, silent=True
    )
    shap.explainers.ExactExplainer(f, masker)(row)
    return time.perf_counter() - started


def global_importance(
    loaded,
    n_users: int = 50,
    seed: int = 0,
    *,
    max_history: int = 50,
    n_permutations: int = 4,
) -> pd.DataFrame:
    """Mean |SHAP| by feature group over `n_users` random users' top recommendation.

    Groups: history position ("most recent", "2-5 back", "6-20 back", "older"), history
    item category (when the items table has one), and each context feature. Columns:
    group_kind, group, mean_abs_shap (mean over explanations of the group's summed |SHAP|),
    share (of all groups of that kind), n_explanations.
    """
    ds = loaded.dataset
    known = loaded.split.known_for("test")
    active = np.flatnonzero(np.bincount(known.users, minlength=ds.n_users) > 0)
    if len(active) == 0:
        raise RecScopeError("No user has a known history, so there is nothing to explain.")
    rng = np.random.default_rng(seed)
    users = np.sort(rng.choice(active, size=min(int(n_users), len(active)), replace=False))
    top, _ = loaded.model.recommend(users, 1, seed=loaded.split.seed)
    categories = ds.items[S.CATEGORY].astype(object).to_numpy() if S.CATEGORY in ds.items else None
    rows = []
    for n, (user, item) in enumerate(zip(users, top[:, 0], strict=True)):
        exp = explain(
            loaded,
            int(user),
            int(item),
            max_history=max_history,
            n_permutations=n_permutations,
            seed=seed,
            group=False,  # exact explanations: each item in its own position bucket
        )
        for r in exp.contributions.itertuples():
            mag = abs(float(r.value))
            if r.kind == "history":
                rows.append((n, "position", _position_bucket(r.position, r.item_code), mag))
                if categories is not None and not pd.isna(r.item_code):
                    cat = categories[int(r.item_code)]
                    rows.append((n, "category", "unknown" if pd.isna(cat) else str(cat), mag))
            else:
                rows.append((n, r.kind, r.feature, mag))
    frame = pd.DataFrame(rows, columns=["explanation", "group_kind", "group", "abs_shap"])
    n_exp = len(users)
    sums = frame.groupby(["group_kind", "group"], sort=False)["abs_shap"].sum() / n_exp
    out = sums.rename("mean_abs_shap").reset_index()
    totals = out.groupby("group_kind")["mean_abs_shap"].transform("sum")
    out["share"] = np.where(totals > 0, out["mean_abs_shap"] / totals.where(totals > 0, 1), 0.0)
    out["n_explanations"] = n_exp
    order = {"position": 0, "category": 1, "user": 2, "item": 3, "scenario": 4}
    bucket = {b: i for i, b in enumerate(POSITION_BUCKETS)}
    out["_k"] = out["group_kind"].map(order).fillna(9)
    out["_b"] = [
        bucket.get(g, 0) if k == "position" else 0
        for k, g in zip(out.group_kind, out.group, strict=True)
    ]
    out = out.sort_values(["_k", "_b", "mean_abs_shap"], ascending=[True, True, False])
    return out.drop(columns=["_k", "_b"]).reset_index(drop=True)


POSITION_BUCKETS = ("most recent", "2-5 back", "6-20 back", "older")


def _position_bucket(position, item_code) -> str:
    if item_code is None or position is None or pd.isna(item_code):
        return "older"
    p = int(position)
    if p == 0:
        return "most recent"
    if p < 5:
        return "2-5 back"
    if p < 20:
        return "6-20 back"
    return "older"


def _personal(
    model, feats: HistoryFeatures, item: int, base: float, values: np.ndarray, ds
) -> bool:
    """Whether a history can move the score of `item` at all. Only asked when no feature
    moved it here: the whole catalogue as the history then scores it like no history for a
    model with no per-user features (pop), and differently for any other."""
    if feats.context or np.any(values != 0):
        return True
    n_items = int(ds.n_items)
    catalogue = np.setdiff1d(np.arange(n_items, dtype=np.int64), [item])
    with torch.inference_mode():
        out = model.score_histories([catalogue], np.array([item]), feats.user_code)
    probe = float(np.asarray(out, dtype=np.float64)[0, 0])
    return abs(probe - base) > 1e-9 * max(1.0, abs(base))


def _closed_form(model, feats: HistoryFeatures, item: int, score: float):
    """Exact Shapley values of an additive model: each item's W[i, item]; base = the rest."""
    contrib = model.history_contributions(feats.user_code, item)  # {item code: weight}
    values = np.zeros(len(feats.table))
    for item_code, weight in contrib.items():
        hits = np.flatnonzero(feats.events == item_code)
        if len(hits):
            values[feats.event_feature[hits[0]]] += weight
    # an additive score has no interaction terms, so the empty history scores score - Σ
    base = float(
        model.score_histories([np.zeros(0, np.int64)], np.array([item]), feats.user_code)[0, 0]
    )
    return base, values


def _closed_form_edited(model, feats: HistoryFeatures, item: int):
    """Exact Shapley values of an additive model on an explicit history: feature j's value is
    f({j}) - f(∅) (no interaction terms), from one batch of single-feature histories."""
    n_feat = len(feats.table)
    masks = np.vstack([np.zeros((1, n_feat)), np.eye(n_feat)])  # (1 + M, M)
    with torch.inference_mode():
        out = model.score_histories(feats.histories(masks), np.array([item]), feats.user_code)
    out = np.asarray(out, dtype=np.float64)[:, 0]  # (1 + M,)
    return float(out[0]), out[1:] - out[0]


def _shap_values(model, feats: HistoryFeatures, item: int, method: str, n_perm: int, seed: int):
    """(base value, (M,) SHAP values) from shap's Exact or Permutation explainer."""
    n_feat = len(feats.table)
    items = np.array([item], dtype=np.int64)
    with_context = bool(feats.context)

    def f(masks: np.ndarray) -> np.ndarray:
        masks = np.asarray(masks)
        context = feats.context_rows(masks) if with_context else None
        with torch.inference_mode():
            out = model.score_histories(feats.histories(masks), items, feats.user_code, context)
        return np.asarray(out, dtype=np.float64)[:, 0]  # (N,)

    masker = shap.maskers.Independent(np.zeros((1, n_feat)), max_samples=1)
    row = np.ones((1, n_feat))
    if method == "exact":
        if n_feat > 20:
            raise RecScopeError(
                f"The exact explainer needs 2^{n_feat} model calls; use at most 20 features "
                "(max_history) or method='permutation'."
            )
        explainer = shap.explainers.ExactExplainer(f, masker)
        result = explainer(row)
    else:
        explainer = shap.explainers.PermutationExplainer(f, masker, seed=seed)
        evals = max(1, int(n_perm)) * (2 * n_feat + 1)
        result = explainer(row, max_evals=evals, batch_size=evals, silent=True)
    return float(np.asarray(result.base_values).reshape(-1)[0]), np.asarray(result.values)[0]


def _check_code(code: int, n: int, kind: str) -> None:
    if not 0 <= int(code) < n:
        raise RecScopeError(f"The {kind} code {code} is outside 0..{n - 1}; map the id first.")
