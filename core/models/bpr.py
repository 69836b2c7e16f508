"""BPR-MF: matrix factorisation trained with Bayesian Personalised Ranking.

Rendle, Freudenthaler, Gantner & Schmidt-Thieme, "BPR: Bayesian Personalized Ranking from
Implicit Feedback", UAI 2009. Scores are dot products of user and item vectors. Each
training pair (u, i) is contrasted with `negatives` uniformly sampled items j the user has
not interacted with; the loss is -log sigmoid(s_ui - s_uj) averaged over them, plus an
optional L2 penalty on the embeddings used in the batch.

Defaults: dim 128, 4 negatives (more of the catalogue seen per step, at little cost; 3 scored
mean 0.2841 against 0.2876 over five seeds), lr 2e-3 with no L2, patience 3, and a
Xavier-normal start; chosen on MovieLens-100k over five seeds (bench/RESULTS.md, "BPR",
session 9): the validation NDCG peaks around epoch 17-21 and then wanders within ±0.002;
patience 3 and 4 stopped at the same best epochs of all five seeds (mean test NDCG@10
0.2876), and longer patience only runs longer. lr 3e-3 took ~0.7x the time at 0.2847.

The embedding tables are sparse: a step updates only the rows of its batch (lazy Adam,
`core.train` "Sparse updates"), which is what lets an epoch of a 10M-row log finish.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from core.data.dataset import Interactions
from core.models._foldin import current_history, ridge_fold_in
from core.models._neural import LOOP_HELP, NeuralRecommender
from core.models.base import AT_LEAST_ONE, DIMENSION, NON_NEGATIVE, Range
from core.models.space import L2_PENALTY, LEARNING_RATE, Param, int_param
from core.train import bpr_loss, known_keys, pair_tensors, sample_negatives


class BPRMF(NeuralRecommender):
    """Matrix factorisation with the BPR pairwise loss; scores are dot products."""

    name: ClassVar[str] = "bpr"
    PARAM_RANGES: ClassVar[dict[str, Range]] = {
        "dim": DIMENSION,
        "reg": NON_NEGATIVE,
        "negatives": AT_LEAST_ONE,
    }
    #: the shared protocol suite's tiny planted data fits in one batch: more, smaller steps
    SUITE_PARAMS: ClassVar[dict] = {"epochs": 30, "batch_size": 256, "lr": 0.01}
    PARAM_HELP: ClassVar[dict[str, str]] = {
        "dim": "Size of the user and item vectors.",
        "reg": "L2 penalty on the vectors of each batch (per example).",
        "negatives": "Sampled non-interacted items contrasted with each positive pair.",
        **LOOP_HELP,
    }

    #: what the tuner searches (core.models.space); reg's default 0 is tried as it is
    SEARCH_SPACE: ClassVar[dict[str, Param]] = {
        "dim": int_param(16, 256, log=True),
        "lr": LEARNING_RATE,
        "reg": L2_PENALTY,
        "negatives": int_param(1, 16, log=True),
    }

    def __init__(
        self,
        dim: int = 128,
        reg: float = 0.0,
        negatives: int = 4,
        epochs: int = 100,
        batch_size: int = 2048,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        patience: int = 3,
        eval_every: int = 1,
        device_choice: str | None = None,
        seed: int = 42,
    ) -> None:
        self.dim = dim
        self.reg = reg
        self.negatives = negatives
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.eval_every = eval_every
        self.device_choice = device_choice
        self.seed = seed

    def _build_net(self) -> nn.Module:
        return _MF(self.n_users_, self.n_items_, int(self.dim))

    def _train_tensors(self, train: Interactions) -> tuple[torch.Tensor, ...]:
        self.known_ = known_keys(train, self.device)
        return pair_tensors(train, self.device)  # (n,), (n,)

    def _loss(self, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
        users, pos = batch  # (B,), (B,)
        neg = sample_negatives(users, self.n_items_, int(self.negatives), gen, self.known_)
        u = self.net_.users(users)  # (B, d)
        i, j = self.net_.items(pos), self.net_.items(neg)  # (B, d), (B, n, d)
        if not self.reg:
            return bpr_loss(u, i, j)
        l2 = (u.pow(2).sum(-1) + i.pow(2).sum(-1) + j.pow(2).sum(-1).mean(-1)).mean()
        return bpr_loss(u, i, j) + float(self.reg) * l2

    def score(self, user_codes: Any, item_codes: Any = None) -> torch.Tensor:
        """Dot products, shape (B, n_items) or (B, len(item_codes))."""
        users = self._users_on_device(user_codes)
        items = self._items_or_all(item_codes)
        with torch.inference_mode():
            u = self.net_.users(users)  # (B, d)
            v = self.net_.items.weight if items is None else self.net_.items(items)  # (I, d)
            return u @ v.T  # (B, I)

    def score_histories(
        self,
        histories: list[np.ndarray],
        item_codes: Any,
        user_code: int,
        context: list[dict] | None = None,
    ) -> np.ndarray:
        """Scores of `item_codes` if the user's history were each list, (N, m) (explanations).

        Fold-in: f(S) = s(u, j) + g(S, j) − g(H, j) with g(S, j) = u_S · v_j, u_S the ridge
        least-squares user vector fitted to S's item vectors (`_foldin.ridge_fold_in`)
        and H the current history, so the full history gives the trained score exactly.
        """
        items = self._items_or_all(item_codes)
        vectors = self.net_.items.weight.detach()  # (I, d)
        rows = [*histories, current_history(self, user_code)]
        g = ridge_fold_in(vectors, rows) @ vectors[items].double().T  # (N + 1, m)
        trained = self.score([int(user_code)], items).double()  # (1, m)
        return (trained + g[:-1] - g[-1:]).cpu().numpy()

    def item_embeddings(self) -> np.ndarray:
        self._check_fitted()
        return self.net_.items.weight.detach().float().cpu().numpy()


class _MF(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        # sparse: each step updates only the rows its batch uses (core.train, "Sparse updates")
        self.users = nn.Embedding(n_users, dim, sparse=True)
        self.items = nn.Embedding(n_items, dim, sparse=True)
        # Xavier-normal start (std ≈ sqrt(2 / (rows + dim))), as RecBole's BPR: it trains to
        # a better ranking than a fixed std of 0.1 (bench/RESULTS.md, "BPR")
        nn.init.xavier_normal_(self.users.weight)
        nn.init.xavier_normal_(self.items.weight)
