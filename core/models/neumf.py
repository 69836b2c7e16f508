"""NeuMF: neural collaborative filtering, a GMF branch and an MLP branch fused by one layer.

He, Liao, Zhang, Nie, Hu & Chua, "Neural Collaborative Filtering", WWW 2017. Trained as in
the paper with binary cross-entropy over each observed pair and `negatives` uniformly
sampled unobserved items (sampled on the device).

Scoring every item for a batch of users is vectorised: the MLP's first layer is linear in
the concatenation [user; item], so it splits into a per-user and a per-item part that are
broadcast-added, and the rest of the MLP runs on (B, C, h) blocks of C items at a time.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.data.dataset import Interactions
from core.models._foldin import current_history, ridge_fold_in
from core.models._neural import LOOP_HELP, NeuralRecommender
from core.models.base import AT_LEAST_ONE, DIMENSION, FRACTION, Range
from core.models.space import LEARNING_RATE, Param, float_param, int_param
from core.train import known_keys, pair_tensors, sample_negatives

#: floats in the widest activation of one scoring block, (users, items, dim / 2): 16 MB.
#: At 128 MB (2^20 pairs, dim 64) every block was a fresh mapping whose pages faulted in,
#: and scoring ran 2.9x slower on one CPU core (3.8 vs 11.1 M pairs/s, 50k items, issue 15)
_SCORE_BLOCK_FLOATS = 1 << 22


class NeuMF(NeuralRecommender):
    """GMF (elementwise product) + MLP over user and item embeddings, one logit per pair."""

    name: ClassVar[str] = "neumf"
    PARAM_RANGES: ClassVar[dict[str, Range]] = {
        "dim": DIMENSION,
        "layers": AT_LEAST_ONE,
        "negatives": AT_LEAST_ONE,
        "dropout": FRACTION,
    }
    PARAM_HELP: ClassVar[dict[str, str]] = {
        "dim": "Size of the user and item vectors of each branch; the MLP starts this wide.",
        "layers": "Hidden layers of the MLP branch (each half as wide as the one before).",
        "negatives": "Unobserved items sampled per observed pair.",
        "dropout": "Dropout between MLP layers.",
        **LOOP_HELP,
    }
    #: quick settings for the shared protocol suite's tiny planted data (1.6k pairs)
    SUITE_PARAMS: ClassVar[dict] = {"epochs": 30, "batch_size": 256, "lr": 0.01}

    #: what the tuner searches (core.models.space)
    SEARCH_SPACE: ClassVar[dict[str, Param]] = {
        "dim": int_param(8, 128, log=True),
        "layers": int_param(1, 4),
        "dropout": float_param(0.0, 0.5),
        "lr": LEARNING_RATE,
    }

    def __init__(
        self,
        dim: int = 64,
        layers: int = 3,
        negatives: int = 4,
        dropout: float = 0.0,
        epochs: int = 100,
        batch_size: int = 2048,
        lr: float = 5e-3,
        weight_decay: float = 0.0,
        patience: int = 10,
        eval_every: int = 1,
        device_choice: str | None = None,
        seed: int = 42,
    ) -> None:
        self.dim = dim
        self.layers = layers
        self.negatives = negatives
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.eval_every = eval_every
        self.device_choice = device_choice
        self.seed = seed

    def _build_net(self) -> nn.Module:
        return _NeuMFNet(
            self.n_users_, self.n_items_, int(self.dim), int(self.layers), float(self.dropout)
        )

    def _train_tensors(self, train: Interactions) -> tuple[torch.Tensor, ...]:
        self.known_ = known_keys(train, self.device)
        return pair_tensors(train, self.device)  # (n,), (n,)

    def _loss(self, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
        users, pos = batch  # (B,), (B,)
        n_neg = int(self.negatives)
        neg = sample_negatives(users, self.n_items_, n_neg, gen, self.known_)  # (B, n)
        items = torch.cat([pos[:, None], neg], dim=1)  # (B, 1 + n)
        logits = self.net_.pairs(users[:, None].expand_as(items), items).float()  # (B, 1 + n)
        labels = torch.zeros_like(logits)
        labels[:, 0] = 1.0
        return F.binary_cross_entropy_with_logits(logits, labels)

    def score(self, user_codes: Any, item_codes: Any = None) -> torch.Tensor:
        """Logits for every (user, item), shape (B, n_items) or (B, len(item_codes))."""
        users = self._users_on_device(user_codes)
        items = self._items_or_all(item_codes)
        if items is None:
            items = torch.arange(self.n_items_, device=self.device)
        with torch.inference_mode():
            width = self.net_.first_user.out_features
            step = max(1, _SCORE_BLOCK_FLOATS // (width * max(1, len(users))))
            return torch.cat(
                [self.net_.grid(users, items[lo : lo + step]) for lo in range(0, len(items), step)],
                dim=1,
            )  # (B, I)

    def score_histories(
        self,
        histories: list[np.ndarray],
        item_codes: Any,
        user_code: int,
        context: list[dict] | None = None,
    ) -> np.ndarray:
        """Scores of `item_codes` if the user's history were each list, (N, m) (explanations).

        Fold-in: f(S) = s(u, j) + g(S, j) − g(H, j), g = the network with both user vectors
        (GMF and MLP) replaced by ridge least-squares fits to S's item vectors of that branch
        (`_foldin.ridge_fold_in`); H = the current history, so f(H) = the trained score.
        """
        net = self.net_
        items = self._items_or_all(item_codes)
        rows = [*histories, current_history(self, user_code)]
        u_gmf = ridge_fold_in(net.gmf_items.weight.detach(), rows).float()  # (N + 1, d)
        u_mlp = ridge_fold_in(net.mlp_items.weight.detach(), rows).float()  # (N + 1, d)
        with torch.inference_mode():
            gmf = (u_gmf * net.out_gmf.weight) @ net.gmf_items(items).T  # (N + 1, m)
            h = net.first_user(u_mlp)[:, None, :] + net.first_item(net.mlp_items(items))[None]
            g = (gmf + net.out_mlp(net.rest(h)).squeeze(-1)).double()  # (N + 1, m)
            trained = self.score([int(user_code)], items).double()  # (1, m)
        return (trained + g[:-1] - g[-1:]).cpu().numpy()

    def item_embeddings(self):
        """The GMF item vectors (the branch whose geometry is a dot product)."""
        self._check_fitted()
        return self.net_.gmf_items.weight.detach().float().cpu().numpy()


def mlp_widths(dim: int, layers: int) -> list[int]:
    """The MLP branch's widths: dim, dim/2, dim/4, … (`layers` + 1 of them; the plan prices
    the same layers, core.runs.plan_costs)."""
    return [max(1, dim >> k) for k in range(layers + 1)]


class _NeuMFNet(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, layers: int, dropout: float):
        super().__init__()
        # sparse tables: a step updates only its batch's rows (core.train, "Sparse updates")
        self.gmf_users = nn.Embedding(n_users, dim, sparse=True)
        self.gmf_items = nn.Embedding(n_items, dim, sparse=True)
        self.mlp_users = nn.Embedding(n_users, dim, sparse=True)
        self.mlp_items = nn.Embedding(n_items, dim, sparse=True)
        for emb in (self.gmf_users, self.gmf_items, self.mlp_users, self.mlp_items):
            nn.init.normal_(emb.weight, std=0.01)
        widths = mlp_widths(dim, layers)
        self.first_user = nn.Linear(dim, widths[1])  # first layer, user half (with bias)
        self.first_item = nn.Linear(dim, widths[1], bias=False)  # first layer, item half
        rest: list[nn.Module] = []
        for a, b in zip(widths[1:-1], widths[2:], strict=True):
            rest += [nn.ReLU(), nn.Dropout(dropout), nn.Linear(a, b)]
        self.rest = nn.Sequential(*rest, nn.ReLU())
        # the fusion layer over [gmf; mlp], kept as two halves so scoring can use a matmul
        self.out_gmf = nn.Linear(dim, 1, bias=False)
        self.out_mlp = nn.Linear(widths[-1], 1)

    def pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits for aligned (users, items) of any equal shape S -> S."""
        gmf = self.gmf_users(users) * self.gmf_items(items)  # (*S, d)
        h = self.first_user(self.mlp_users(users)) + self.first_item(self.mlp_items(items))
        return (self.out_gmf(gmf) + self.out_mlp(self.rest(h))).squeeze(-1)  # (*S,)

    def grid(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits for every pair of users (B,) and items (C,) -> (B, C), without repeats."""
        weighted = self.gmf_users(users) * self.out_gmf.weight  # (B, d)
        gmf = weighted @ self.gmf_items(items).T  # (B, C): GMF branch through its output half
        h_u = self.first_user(self.mlp_users(users))  # (B, h)
        h_i = self.first_item(self.mlp_items(items))  # (C, h)
        h = self.rest(h_u[:, None, :] + h_i[None, :, :])  # (B, C, h_last)
        return gmf + self.out_mlp(h).squeeze(-1)  # (B, C)
