"""What the neural models share: the `fit` template over `core.train`, state and checks.

A neural model subclasses `NeuralRecommender` and implements:
`_build_net() -> nn.Module` (from hyperparameters, `n_users_`, `n_items_`),
`_train_tensors(train) -> tuple[Tensor, ...]` (on `self.device`),
`_loss(batch, gen) -> Tensor` and `score(...)`; optionally `_prepare(train)` for data the
network needs (a graph, sequences) and `_weights_changed()` to drop caches.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch

from core.data.dataset import Interactions
from core.device import seed_everything
from core.models.base import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    POSITIVE,
    Range,
    RecommenderBase,
    as_codes,
)
from core.protocols import ProgressFn
from core.train import CancelFlag, TrainConfig, TrainResult, run_training

#: help for the loop's hyperparameters, merged into each model's PARAM_HELP
LOOP_HELP: dict[str, str] = {
    "epochs": "Most passes over the training data (early stopping usually ends sooner).",
    "batch_size": "Training examples per optimiser step; larger is faster on a GPU.",
    "lr": "Adam learning rate (AdamW; SparseAdam for sparse embedding tables).",
    "weight_decay": "Decoupled weight decay (AdamW); on sparse embedding tables only the "
    "rows each batch uses decay.",
    "patience": "Epochs without a better validation NDCG@10 before training stops.",
    "eval_every": "Validate every this many epochs.",
    "device_choice": "auto, cpu, cuda or mps (auto picks the GPU when there is one).",
    "seed": "Random seed: the same seed gives the same model.",
}


class NeuralRecommender(RecommenderBase, abc.ABC):
    """Base of models trained by `core.train.run_training`; the network lives in `net_`."""

    trains_with_loop: ClassVar[bool] = True
    PARAM_RANGES: ClassVar[dict[str, Range]] = {
        "epochs": AT_LEAST_ONE,
        "batch_size": AT_LEAST_ONE,
        "patience": AT_LEAST_ONE,
        "eval_every": AT_LEAST_ONE,
        "lr": POSITIVE,
        "weight_decay": NON_NEGATIVE,
        "seed": NON_NEGATIVE,
    }
    net_: torch.nn.Module
    train_result_: TrainResult

    # hyperparameters every neural model has (set by the subclass constructor)
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    patience: int
    eval_every: int
    seed: int

    def fit(
        self,
        train: Interactions,
        valid: Interactions | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelFlag = None,
    ) -> NeuralRecommender:
        """Train with the shared loop; `cancel` is checked before each batch."""
        self._check_params()
        self._start_fit(train)
        seed_everything(self.seed)
        self._prepare(train)
        self.net_ = self._build_net().to(self.device)
        tensors = self._train_tensors(train)
        config = TrainConfig(
            epochs=int(self.epochs),
            batch_size=self._batch_size(int(tensors[0].shape[0])),
            lr=float(self.lr),
            weight_decay=float(self.weight_decay),
            patience=int(self.patience),
            eval_every=int(self.eval_every),
            seed=int(self.seed),
        )
        self.train_result_ = run_training(
            self, tensors, config, train=train, valid=valid, progress=progress, cancel=cancel
        )
        return self

    # -- hooks -------------------------------------------------------------------------
    def _batch_size(self, n_examples: int) -> int:
        """Examples per optimiser step for `n_examples` training examples: `batch_size`."""
        return int(self.batch_size)

    def _prepare(self, train: Interactions) -> None:
        """Data the network needs besides its weights (graph, sequences); none by default."""

    @abc.abstractmethod
    def _build_net(self) -> torch.nn.Module:
        """Each neural model defines this hook; an incomplete model cannot be built."""

    @abc.abstractmethod
    def _train_tensors(self, train: Interactions) -> tuple[torch.Tensor, ...]:
        """Each neural model defines this hook; an incomplete model cannot be built."""

    @abc.abstractmethod
    def _loss(self, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
        """Each neural model defines this hook; an incomplete model cannot be built."""

    def _weights_changed(self) -> None:
        """Drop anything computed from the weights (called by the loop)."""

    # -- state -------------------------------------------------------------------------
    def _state(self) -> dict[str, torch.Tensor]:
        self._check_fitted()
        return {f"net.{k}": v for k, v in self.net_.state_dict().items()}

    def _set_state(self, state: dict[str, torch.Tensor]) -> None:
        self.net_ = self._build_net().to(self.device)
        net_state = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
        self.net_.load_state_dict(net_state)
        self.net_.eval()
        self._weights_changed()

    # -- checks ------------------------------------------------------------------------
    def _users_on_device(self, user_codes: Any) -> torch.Tensor:
        self._check_fitted()
        return as_codes(user_codes).to(self.device)
