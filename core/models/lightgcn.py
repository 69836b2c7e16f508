"""LightGCN: linear graph convolution over the user-item graph, trained with BPR.

He, Deng, Wang, Li, Zhang & Wang, "LightGCN: Simplifying and Powering Graph Convolution
Network for Recommendation", SIGIR 2020. Embeddings are smoothed over the symmetrically
normalised bipartite graph, E_{k+1} = D^-1/2 A D^-1/2 E_k, and the final embedding is the
mean of layers 0..K. Propagation is a torch sparse-dense product on the device; the loss is
BPR plus L2 on the batch's layer-0 ("ego") embeddings, as in the paper, averaged over
`negatives` sampled items per positive pair.

Defaults: dim 128, 3 layers, one negative per pair (as RecBole's LightGCN); batch 8192
with lr 2e-2, because every batch propagates over the whole graph, so fewer, larger batches
make an epoch cheaper and the larger lr keeps them productive. Chosen on the sample data
and MovieLens-100k (measurements: bench/RESULTS.md, "LightGCN"). Four negatives scored
0.3027 NDCG@10 on MovieLens-100k's random split against one negative's 0.2847 (RecBole's
LightGCN: 0.2116) but cost 1.5x the time: the default takes the time, `negatives=4` the
last 6%.

`max_steps` (64) bounds the propagations per epoch: on a log with more than 64 batches of
`batch_size` pairs the batch grows to a 64th of the pairs, and the run's notes say so. On a
10M-row log (9.7M pairs, a graph of 250k nodes) one propagation with its backward pass costs
seconds of CPU, so 1,190 batches of 8192 made an epoch hours long (the plan said 5 h); 64
batches of 152k make it minutes. MovieLens-100k and smaller have fewer than 64 batches of
8192 and train exactly as before.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from core.data.dataset import Interactions
from core.models._foldin import current_history, history_matrix
from core.models._neural import LOOP_HELP, NeuralRecommender
from core.models.base import AT_LEAST_ONE, DIMENSION, NON_NEGATIVE, Range
from core.models.space import L2_PENALTY, LEARNING_RATE, Param, int_param
from core.train import bpr_loss, known_keys, pair_tensors, sample_negatives


class LightGCN(NeuralRecommender):
    """Graph-smoothed user/item embeddings; scores are dot products of the final embeddings."""

    name: ClassVar[str] = "lightgcn"
    PARAM_RANGES: ClassVar[dict[str, Range]] = {
        "dim": DIMENSION,
        "layers": NON_NEGATIVE,
        "reg": NON_NEGATIVE,
        "negatives": AT_LEAST_ONE,
        "max_steps": NON_NEGATIVE,
    }
    PARAM_HELP: ClassVar[dict[str, str]] = {
        "dim": "Size of the user and item vectors.",
        "layers": "Propagation steps over the user-item graph (2-3 is typical).",
        "max_steps": "Most optimiser steps per epoch (each propagates the whole graph): more "
        "pairs than that many batches make the batch larger. 0: always batch_size.",
        "reg": "L2 penalty on the batch's layer-0 vectors (per example).",
        "negatives": "Sampled non-interacted items contrasted with each positive pair.",
        **LOOP_HELP,
    }

    #: what the tuner searches (core.models.space); reg's default 0 is tried as it is
    SEARCH_SPACE: ClassVar[dict[str, Param]] = {
        "dim": int_param(16, 256, log=True),
        "layers": int_param(1, 4),
        "lr": LEARNING_RATE,
        "reg": L2_PENALTY,
    }

    def __init__(
        self,
        dim: int = 128,
        layers: int = 3,
        reg: float = 0.0,
        negatives: int = 1,
        max_steps: int = 64,
        epochs: int = 100,
        batch_size: int = 8192,
        lr: float = 2e-2,
        weight_decay: float = 0.0,
        patience: int = 5,
        eval_every: int = 1,
        device_choice: str | None = None,
        seed: int = 42,
    ) -> None:
        self.dim = dim
        self.layers = layers
        self.reg = reg
        self.negatives = negatives
        self.max_steps = max_steps
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.eval_every = eval_every
        self.device_choice = device_choice
        self.seed = seed

    # -- training ----------------------------------------------------------------------
    def _batch_size(self, n_examples: int) -> int:
        """`batch_size`, or a `max_steps`-th of the pairs when that is larger."""
        self.batch_used_ = effective_batch(n_examples, int(self.batch_size), int(self.max_steps))
        return self.batch_used_

    def fit_notes(self) -> list[str]:
        used, asked = getattr(self, "batch_used_", None), int(self.batch_size)
        if used is None or used == asked:
            return []
        return [
            f"LightGCN trained with batches of {used:,} pairs, not {asked:,}: each step "
            f"propagates the whole graph, and max_steps={int(self.max_steps)} keeps an epoch "
            "to that many steps."
        ]

    def _prepare(self, train: Interactions) -> None:
        self.graph_ = _normalised_graph(train, self.device)
        self.cache_ = None

    def _build_net(self) -> nn.Module:
        net = nn.Embedding(self.n_users_ + self.n_items_, int(self.dim))  # users, then items
        nn.init.normal_(net.weight, std=0.1)
        return net

    def _train_tensors(self, train: Interactions) -> tuple[torch.Tensor, ...]:
        self.known_ = known_keys(train, self.device)
        return pair_tensors(train, self.device)  # (n,), (n,)

    def _loss(self, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
        users, pos = batch  # (B,), (B,)
        neg = sample_negatives(users, self.n_items_, int(self.negatives), gen, self.known_)
        final = self._propagate()  # (U + I, d)
        off = self.n_users_
        u, i, j = final[users], final[off + pos], final[off + neg]  # (B, d), (B, d), (B, n, d)
        if not self.reg:
            return bpr_loss(u, i, j)
        ego = self.net_.weight
        e_u, e_i, e_j = ego[users], ego[off + pos], ego[off + neg]
        l2 = (e_u.pow(2).sum(-1) + e_i.pow(2).sum(-1) + e_j.pow(2).sum(-1).mean(-1)).mean()
        return bpr_loss(u, i, j) + float(self.reg) * l2

    def _weights_changed(self) -> None:
        self.cache_ = None

    def _propagate(self) -> torch.Tensor:
        """Mean of layers 0..K of graph propagation, shape (n_users + n_items, d)."""
        # sparse products run in fp32: autocast has no bf16 sparse kernels
        with torch.autocast(self.device.type, enabled=False):
            layer = self.net_.weight.float()  # (U + I, d)
            total = layer
            for _ in range(int(self.layers)):
                layer = SymmetricProduct.apply(self.graph_, layer)  # (U + I, d)
                total = total + layer
            return total / (int(self.layers) + 1)

    def _final(self) -> torch.Tensor:
        if self.cache_ is None:
            with torch.inference_mode():
                self.cache_ = self._propagate()
        return self.cache_

    # -- scoring -----------------------------------------------------------------------
    def score(self, user_codes: Any, item_codes: Any = None) -> torch.Tensor:
        """Dot products of final embeddings, shape (B, n_items) or (B, len(item_codes))."""
        users = self._users_on_device(user_codes)
        items = self._items_or_all(item_codes)
        final = self._final()
        with torch.inference_mode():
            u = final[users]  # (B, d)
            v = final[self.n_users_ :] if items is None else final[self.n_users_ + items]
            return u @ v.T  # (B, I)

    def score_histories(
        self,
        histories: list[np.ndarray],
        item_codes: Any,
        user_code: int,
        context: list[dict] | None = None,
    ) -> np.ndarray:
        """Scores of `item_codes` if the user's history were each list, (N, m) (explanations).

        Fold-in through LightGCN's first-layer view (a user's layer-1 vector is the normalised
        sum of its items' vectors): f(S) = s(u, j) + g(S, j) − g(H, j) with
        g(S, j) = Σ_{i ∈ S} e_i · e_j / √|S| over the final item embeddings e and H the current
        history, so the full history gives the trained score exactly.
        """
        items = self._items_or_all(item_codes)
        final = self._final()[self.n_users_ :].double()  # (I, d)
        rows = [*histories, current_history(self, user_code)]
        union, x = history_matrix(rows, self.device)  # (U,), (N + 1, U)
        size = x.sum(1, keepdim=True).clamp(min=1).sqrt()  # (N + 1, 1)
        g = (x @ (final[union] @ final[items].T)) / size  # (N + 1, m)
        trained = self.score([int(user_code)], items).double()  # (1, m)
        return (trained + g[:-1] - g[-1:]).cpu().numpy()

    def item_embeddings(self) -> np.ndarray:
        self._check_fitted()
        return self._final()[self.n_users_ :].float().cpu().numpy()

    # -- state: the propagated embeddings travel with the weights (no graph on load) ----
    def _state(self) -> dict[str, torch.Tensor]:
        return {**super()._state(), "final": self._final()}

    def _set_state(self, state: dict[str, torch.Tensor]) -> None:
        super()._set_state(state)
        self.cache_ = state["final"].float()


class SymmetricProduct(torch.autograd.Function):
    """`graph @ x` for a symmetric sparse `graph`, whose backward pass is `graph @ grad`.

    torch's own backward of a CSR product multiplies by the transpose, which it rebuilds on
    every step: on MovieLens-100k that backward took 79 ms a step against 10 ms for the
    forward (cProfile, one thread), 57% of the fit. The normalised adjacency is its own
    transpose, so the forward's product serves both ways.
    """

    @staticmethod
    def forward(ctx, graph: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.graph = graph
        return graph @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, ctx.graph @ grad


def effective_batch(n_examples: int, batch_size: int, max_steps: int) -> int:
    """Pairs per step: `batch_size`, raised so an epoch takes at most `max_steps` steps
    (0: no bound). Shared with the plan's cost formula (core.runs.plan_costs)."""
    if max_steps <= 0:
        return batch_size
    return max(batch_size, -(-n_examples // max_steps))


def _normalised_graph(train: Interactions, device: torch.device) -> torch.Tensor:
    """D^-1/2 A D^-1/2 of the bipartite user-item graph, sparse CSR (U + I, U + I).

    CSR, not COO: its sparse-dense products are faster on the CPU (bench/RESULTS.md,
    "LightGCN").
    """
    mat = train.csr().tocoo()  # binary, duplicates merged
    n_users, n = train.n_users, train.n_users + train.n_items
    rows = np.concatenate([mat.row, mat.col + n_users]).astype(np.int64)
    cols = np.concatenate([mat.col + n_users, mat.row]).astype(np.int64)
    degree = np.bincount(rows, minlength=n).astype(np.float32)
    inv_sqrt = np.zeros_like(degree)
    inv_sqrt[degree > 0] = degree[degree > 0] ** -0.5
    values = inv_sqrt[rows] * inv_sqrt[cols]
    graph = torch.sparse_coo_tensor(
        torch.from_numpy(np.stack([rows, cols])),
        torch.from_numpy(values),
        (n, n),
        check_invariants=True,
    )
    with warnings.catch_warnings():  # torch calls CSR "beta"; the product used here is stable
        warnings.simplefilter("ignore", UserWarning)
        return graph.coalesce().to_sparse_csr().to(device)
