"""Popularity: every user gets the most-interacted items — the baseline every model must beat.

Ranking: score(u, j) = number of training interactions with item j (the same for every user),
the "MostPop" baseline used throughout the literature, e.g. Cremonesi, Koren & Turrin (2010),
"Performance of recommender algorithms on top-N recommendation tasks".

Ratings (when the training data has a rating column): the damped item mean of Koren (2010),
"Factor in the neighbors", section 2.1 —
    r̂(u, j) = (Σ ratings of j + shrinkage · μ) / (n_j + shrinkage),   μ = global mean,
so rarely rated items are pulled toward μ. It gives the evaluator a real RMSE/MAE baseline.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from core.data import schema as S
from core.data.dataset import Interactions
from core.errors import RecScopeError
from core.models.base import NON_NEGATIVE, Range, RecommenderBase, as_codes
from core.models.itemknn import check_codes
from core.models.space import Param
from core.protocols import ProgressFn


class Popularity(RecommenderBase):
    """Most-popular items for everyone; damped item-mean ratings when ratings exist."""

    name: ClassVar[str] = "pop"
    PARAM_RANGES: ClassVar[dict[str, Range]] = {"shrinkage": NON_NEGATIVE}
    PARAM_HELP: ClassVar[dict[str, str]] = {
        "shrinkage": "Rating predictions only: how many 'virtual' global-mean ratings each "
        "item's mean is pulled toward (0 = plain item mean).",
        "device_choice": "Where scores are computed: auto, cpu or cuda (auto picks the GPU "
        "when there is one).",
    }

    #: nothing worth tuning: the ranking is the item counts (shrinkage only damps ratings)
    SEARCH_SPACE: ClassVar[dict[str, Param]] = {}

    def __init__(self, shrinkage: float = 10.0, device_choice: str | None = None) -> None:
        self.shrinkage = shrinkage
        self.device_choice = device_choice

    def fit(
        self,
        train: Interactions,
        valid: Interactions | None = None,
        progress: ProgressFn | None = None,
    ) -> Popularity:
        """Count training interactions per item (and the damped item mean rating if rated)."""
        self._check_params()
        self._start_fit(train)
        items = torch.from_numpy(train.items.astype(np.int64))
        self.counts_ = torch.bincount(items, minlength=self.n_items_).float().to(self.device)
        self.rating_mean_: torch.Tensor | None = None
        self.global_mean_: float | None = None
        if S.RATING in train.frame.columns:
            ratings = torch.from_numpy(train.frame[S.RATING].to_numpy(dtype=np.float64))
            sums = torch.zeros(self.n_items_, dtype=torch.float64).index_add_(0, items, ratings)
            n = torch.bincount(items, minlength=self.n_items_).double()
            mu = float(ratings.mean())
            damped = (sums + self.shrinkage * mu) / (n + self.shrinkage)
            # items with no rating at all (and shrinkage 0) fall back to the global mean
            damped = torch.where(n > 0, damped, torch.full_like(damped, mu))
            self.rating_mean_ = damped.float().to(self.device)  # (n_items,)
            self.global_mean_ = mu
        return self

    def score(self, user_codes: Any, item_codes: Any = None) -> torch.Tensor:
        """Item counts, shape (B, n_items) or (B, len(item_codes)); identical rows."""
        self._check_fitted()
        users = as_codes(user_codes)
        check_codes(users, self.n_users_, "user")
        counts = self.counts_
        items = self._items_or_all(item_codes)
        if items is not None:
            check_codes(items, self.n_items_, "item")
            counts = counts[items]
        return counts.unsqueeze(0).expand(len(users), -1).clone()  # (B, n)

    def catalogue_scores(self) -> torch.Tensor:
        """(n_items,) item counts: every row of `score` (UserIndependentScores), so the
        evaluator ranks the catalogue once rather than a (users, items) block."""
        self._check_fitted()
        return self.counts_

    def score_histories(
        self,
        histories: list[np.ndarray],
        item_codes: Any,
        user_code: int,
        context: list[dict] | None = None,
    ) -> np.ndarray:
        """Item counts for every history (N, m): popularity ignores history, so SHAP is 0."""
        items = as_codes(item_codes)
        row = self.score([int(user_code)], items).double().cpu().numpy()  # (1, m)
        return np.repeat(row, len(histories), axis=0)

    @property
    def predicts_ratings(self) -> bool:
        """True when fitted on data with a rating column (so `predict_ratings` works)."""
        return getattr(self, "rating_mean_", None) is not None

    def predict_ratings(self, user_codes: Any, item_codes: Any) -> np.ndarray | None:
        """Predicted rating for each (user, item) pair; both 1-D of equal length -> (N,).

        None when the training data had no rating column (there is nothing to predict).
        """
        self._check_fitted()
        if not self.predicts_ratings:
            return None
        users, items = as_codes(user_codes), as_codes(item_codes)
        if len(users) != len(items):
            raise RecScopeError(
                f"predict_ratings needs one item per user; got {len(users)} users and "
                f"{len(items)} items — pass two arrays of equal length."
            )
        check_codes(users, self.n_users_, "user")
        check_codes(items, self.n_items_, "item")
        return self.rating_mean_[items.to(self.device)].cpu().numpy()

    def _state(self) -> dict[str, torch.Tensor]:
        state = {"counts": self.counts_}
        if self.predicts_ratings:
            state["rating_mean"] = self.rating_mean_
            state["global_mean"] = torch.tensor([self.global_mean_], dtype=torch.float64)
        return state

    def _set_state(self, state: dict[str, torch.Tensor]) -> None:
        self.counts_ = state["counts"].float()
        self.rating_mean_ = state.get("rating_mean")
        self.global_mean_ = float(state["global_mean"][0]) if "global_mean" in state else None
