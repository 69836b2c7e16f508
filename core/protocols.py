"""The `Recommender` protocol, the optional abilities a model may declare, and progress events.

Every caller (evaluation, SHAP, Faiss, scenarios, the pages) talks to a model through these
protocols only. An optional ability is a small runtime-checkable Protocol with one signature;
callers ask `isinstance(model, ExplainsHistory)`, never `hasattr(model, ...)` and never the
model's name. `capabilities(model)` answers every such question at once for the pages.

This module sits in the base layer: it imports nothing of ours, so every layer may use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report from `fit`: written as a JSON line by background jobs.

    A closed-form model that tries several values of a hyperparameter instead of training
    epochs (EASE's λ search) reports each try with `param` (its name, e.g. "λ") and
    `param_value`; `epoch` and `epochs` then count the tries, not epochs.
    """

    epoch: int
    epochs: int
    loss: float | None = None
    valid_metric: float | None = None
    metric_name: str = "ndcg@10"
    samples_per_s: float | None = None
    elapsed_s: float = 0.0
    eta_s: float | None = None
    best_epoch: int | None = None
    message: str = ""
    param: str | None = None
    param_value: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


ProgressFn = Callable[[ProgressEvent], None]


@runtime_checkable
class Recommender(Protocol):
    """What every model offers; evaluation, SHAP, Faiss and the UI use only this.

    `score` returns (B, n_items) — or (B, m) for given items — scores on the model's device;
    `recommend` is written once (models.base) on the one ranking routine.
    """

    name: ClassVar[str]
    #: True for models trained by the shared epoch loop (core.train): epochs, early stopping
    trains_with_loop: ClassVar[bool]
    n_users_: int
    n_items_: int

    def fit(self, train: Any, valid: Any = None, progress: ProgressFn | None = None) -> Any: ...

    def score(self, user_codes: Any, item_codes: Any = None) -> torch.Tensor: ...

    def recommend(
        self, user_codes: Any, k: int = 10, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def item_embeddings(self) -> np.ndarray | None: ...

    def set_history(self, known: Any) -> None: ...

    def save(self, folder: Path) -> None: ...


@runtime_checkable
class ExplainsHistory(Protocol):
    """Scores an edited or masked history: "the scores if the user's known history were this".

    histories: N arrays of item codes (oldest first); item_codes: the m items to score;
    context: None, or one {feature name: value} dict per history (see `ExplainsContext`).
    Returns (N, m) float64. The full known history must reproduce `score` exactly.
    """

    def score_histories(
        self,
        histories: Sequence[np.ndarray],
        item_codes: Any,
        user_code: int,
        context: Sequence[dict] | None = None,
    ) -> np.ndarray: ...


@runtime_checkable
class ExplainsContext(Protocol):
    """Has features beyond the history (user/item attributes, scenario) that SHAP can mask.

    Returns [(name, present value, baseline value, kind)], kind one of "user", "item",
    "scenario"; `score_histories(..., context=...)` takes the chosen values back.
    """

    def explain_context(self, user_code: int, item_code: int) -> list[tuple]: ...


@runtime_checkable
class AdditiveHistory(Protocol):
    """The score is a sum over history items: {history item code: its share of the score}.

    The shares are the exact Shapley values (item-kNN, EASE), so no sampling is needed.
    """

    def history_contributions(self, user_code: int, item_code: int) -> dict[int, float]: ...


@runtime_checkable
class SimilarItems(Protocol):
    """Has item-item similarities of its own (item-kNN, EASE).

    `similar_items` gives the k most similar item codes and their weights, (k,) each;
    `item_weights` the whole (n_items, n_items) weight matrix as a dense or sparse tensor;
    `has_dense_weights` says which, without making it.
    """

    def similar_items(self, item_code: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]: ...

    def item_weights(self) -> torch.Tensor: ...

    def has_dense_weights(self) -> bool: ...


@runtime_checkable
class UserVectors(Protocol):
    """Has a vector per user whose inner product with `item_embeddings()` ranks items.

    (B,) user codes -> (B, d); used for retrieval through an inner-product index.
    """

    def user_vectors(self, user_codes: Any) -> torch.Tensor: ...


@runtime_checkable
class PredictsRatings(Protocol):
    """Predicts a rating per (user, item) pair: (N,), (N,) -> (N,), or None when it was
    trained without ratings (so RMSE/MAE are left out)."""

    def predict_ratings(self, user_codes: Any, item_codes: Any) -> np.ndarray | None: ...


@runtime_checkable
class UserIndependentScores(Protocol):
    """Scores every user alike: `catalogue_scores()` is (n_items,), equal to every row of
    `score` (popularity). The evaluator then sorts the catalogue once instead of scanning a
    (users, items) block per batch; the lists and metrics are the same."""

    def catalogue_scores(self) -> torch.Tensor: ...


@runtime_checkable
class ScenarioAware(Protocol):
    """Knows the scenario (surface) of a request: scores (B,) users in one scenario code."""

    def score_scenario(self, user_codes: Any, scenario_code: int) -> torch.Tensor: ...


@runtime_checkable
class LoopTrainable(Protocol):
    """What the one training loop (core.train) needs from a neural model.

    `net_` is the module AdamW optimises; `_loss(batch, gen)` the scalar loss of one batch;
    `_weights_changed()` drops caches derived from the weights (after every epoch and after
    the best weights are restored).
    """

    device: torch.device
    net_: torch.nn.Module

    def _loss(self, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor: ...

    def _weights_changed(self) -> None: ...


@dataclass(frozen=True)
class Capabilities:
    """What a model (or a run's model) can do; the one answer pages ask for."""

    explains: bool  # SHAP over its history (ExplainsHistory)
    explains_exactly: bool  # closed-form Shapley values (AdditiveHistory, no context)
    context_features: bool  # attributes / scenario as SHAP features (ExplainsContext)
    item_embeddings: bool  # vectors for the Faiss index and the map
    similar_items: bool  # neighbours from embeddings or its own item-item weights
    user_retrieval: bool  # users retrieve items through an inner-product index
    ratings: bool  # may predict ratings (RMSE/MAE when the data has them)
    scenario_aware: bool  # scores a request in a chosen scenario
    trains_with_loop: bool  # epochs and early stopping (neural models)


def capabilities(model: Any) -> Capabilities:
    """Every optional ability of `model`, decided from the protocols it satisfies."""
    has_embeddings = isinstance(model, Recommender) and model.item_embeddings() is not None
    return Capabilities(
        explains=isinstance(model, ExplainsHistory),
        explains_exactly=isinstance(model, AdditiveHistory)
        and not isinstance(model, ExplainsContext),
        context_features=isinstance(model, ExplainsContext),
        item_embeddings=has_embeddings,
        similar_items=has_embeddings or isinstance(model, SimilarItems),
        user_retrieval=has_embeddings and isinstance(model, UserVectors),
        ratings=isinstance(model, PredictsRatings),
        scenario_aware=isinstance(model, ScenarioAware),
        trains_with_loop=bool(model.trains_with_loop),
    )
