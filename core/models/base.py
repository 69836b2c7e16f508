"""The `Recommender` protocol and the parts every model shares (written once).

A model is constructed from keyword hyperparameters, learns in `fit`, and scores users
over the whole catalogue with `score`. `recommend`, `save` and `load` are written once here
(in `RecommenderBase`) on top of `score` and two small hooks (`_state` / `_set_state`).

History: a model scores a user from the interactions it was told are known. `fit` sets
that to the training data; the evaluator calls `set_history(split.known_for("test"))`
before scoring the test part, so validation items count as known history (as RecBole does).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from core.data.dataset import Interactions
from core.device import pick_device
from core.errors import NotFittedError, ParameterError, RecScopeError
from core.eval.ranking import known_flat_indices, top_k

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"


class RecommenderBase:
    """Shared behaviour: params, history, recommend, save/load, cancel flag.

    Subclasses implement `fit`, `score`, `_state() -> dict[str, Tensor]` and
    `_set_state(state)`, and may override `item_embeddings`.
    """

    name: ClassVar[str] = "base"
    #: one-line help per hyperparameter, shown by the Train page
    PARAM_HELP: ClassVar[dict[str, str]] = {}
    #: True for models that train with the shared loop (epochs, device)
    trains_with_loop: ClassVar[bool] = False

    device: torch.device
    n_users_: int
    n_items_: int
    history_: sp.csr_matrix

    # -- hyperparameters -------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """The constructor's keyword arguments, as given (JSON-serialisable)."""
        sig = inspect.signature(type(self).__init__)
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return {
            p.name: getattr(self, p.name)
            for p in sig.parameters.values()
            if p.name != "self" and p.kind in kinds
        }

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        sig = inspect.signature(cls.__init__)
        return {
            p.name: p.default
            for p in sig.parameters.values()
            if p.name != "self" and p.default is not inspect.Parameter.empty
        }

    def _resolve_device(self) -> torch.device:
        return pick_device(getattr(self, "device_choice", None))

    # -- history ---------------------------------------------------------------------
    def set_history(self, known: Interactions) -> None:
        """Interactions the model may treat as the user's known past when scoring."""
        self.history_ = known.csr()
        self._history_changed(known)

    def _history_changed(self, known: Interactions) -> None:
        """Hook for models whose scores depend on history (item-kNN, EASE, SASRec)."""

    # -- ranking -----------------------------------------------------------------------
    def recommend(
        self, user_codes: Any, k: int = 10, exclude_seen: bool = True, *, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item codes and scores per user, shapes (B, k); known items excluded.

        Ranked by `core.eval.ranking.top_k` (the evaluator's routine and tie rule; pass the
        run's seed to get the lists it scored). Where fewer than k items are left the rest
        is item -1 with score -inf.
        """
        self._check_fitted()
        users = as_codes(user_codes)
        k = min(int(k), self.n_items_)
        with torch.inference_mode():
            scores = self.score(users)  # (B, n_items)
            exclude = None
            if exclude_seen:
                exclude = known_flat_indices(
                    self.history_, users.numpy(), scores.shape[1], scores.device
                )
            items, values = top_k(
                scores, k, users=users.to(scores.device), exclude=exclude, seed=seed
            )
        return items.cpu().numpy(), values.cpu().numpy()

    def item_embeddings(self) -> np.ndarray | None:
        return None

    # -- persistence -------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Constructor arguments as JSON beside a state dict of tensors; never pickle."""
        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "model": self.name,
            "params": self.get_params(),
            "n_users": self.n_users_,
            "n_items": self.n_items_,
        }
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        state = {k: v.detach().cpu().contiguous() for k, v in self._state().items()}
        torch.save(state, folder / WEIGHTS_FILE)

    @classmethod
    def load(cls, folder: Path, device: str | None = None) -> RecommenderBase:
        """Rebuild with `cls(**params)` and load tensors with `weights_only=True`."""
        folder = Path(folder)
        config = json.loads((folder / CONFIG_FILE).read_text())
        params = dict(config["params"])
        if device is not None and "device_choice" in params:
            params["device_choice"] = device
        model = cls(**params)
        model.n_users_ = int(config["n_users"])
        model.n_items_ = int(config["n_items"])
        model.device = model._resolve_device()
        state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        model._set_state({k: v.to(model.device) for k, v in state.items()})
        model.history_ = sp.csr_matrix((model.n_users_, model.n_items_), dtype=np.float32)
        return model

    # -- checks ------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "n_items_"):
            raise NotFittedError(self)

    def _start_fit(self, train: Interactions) -> None:
        """Common start of `fit`: device, sizes, history."""
        if len(train) == 0:
            raise RecScopeError(f"{type(self).__name__} cannot train on zero interactions.")
        self.device = self._resolve_device()
        self.n_users_ = train.n_users
        self.n_items_ = train.n_items
        self.set_history(train)

    def _items_or_all(self, item_codes: Any) -> torch.Tensor | None:
        return None if item_codes is None else as_codes(item_codes).to(self.device)


def as_codes(codes: Any) -> torch.Tensor:
    """Integer codes from a list, array or tensor, as a 1-D int64 CPU tensor."""
    if isinstance(codes, torch.Tensor):
        return codes.reshape(-1).long().cpu()
    # a copy: codes often come from read-only pandas/Arrow buffers, which torch must not share
    return torch.from_numpy(np.array(codes, dtype=np.int64, ndmin=1).reshape(-1))


def check_positive(name: str, value: float, *, integer: bool = False) -> None:
    """Raise a ParameterError unless `value` is a positive number (integer if asked)."""
    ok = isinstance(value, (int, float)) and value > 0
    if integer:
        ok = ok and float(value).is_integer()
    if not ok:
        kind = "positive whole number" if integer else "positive number"
        raise ParameterError(f"Parameter '{name}' must be a {kind}; got {value!r}.")


def check_non_negative(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or value < 0:
        raise ParameterError(f"Parameter '{name}' must be zero or more; got {value!r}.")
