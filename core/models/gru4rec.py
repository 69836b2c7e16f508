"""GRU4Rec: a recurrent network over the user's recent items, scoring the next one.

Hidasi et al., "Session-based Recommendations with Recurrent Neural Networks", ICLR 2016.
Item embeddings (with dropout) feed a GRU of one or more layers; a linear layer maps each
hidden state back to the item space, and its dot product with the (tied) item embeddings
scores the next item — the form RecBole implements.

Training: as sasrec, every position of every training window (`training_windows`) predicts
the item after it, with softmax cross-entropy over the whole catalogue — the loss Hidasi &
Czapp ("The effect of third party implementations on reproducibility", RecSys 2023) found
best for GRU4Rec besides their tuned BPR-max — or the sampled softmax shared with sasrec
(`loss="sampled"`, or "auto" on a large catalogue). Sequences are left-padded: the GRU
reads the padding (a zero vector) first, the same way in training and scoring, so an edited
history in `score_histories` gives the same number as `score` for the same items.

Defaults: dim 64, hidden 128, 1 layer, dropout 0.3 (RecBole's), lr 3e-3, patience 10;
measured in bench/RESULTS.md, "BERT4Rec and GRU4Rec".
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from core.data.dataset import Interactions
from core.models._neural import LOOP_HELP
from core.models._sequence import SequenceRecommender
from core.models.base import AT_LEAST_ONE, DIMENSION, Range
from core.models.space import Param, choice, float_param, int_param


class GRU4Rec(SequenceRecommender):
    """A GRU over recent items; next-item scores for the whole catalogue."""

    name: ClassVar[str] = "gru4rec"
    PARAM_RANGES: ClassVar[dict[str, Range]] = {"layers": AT_LEAST_ONE, "hidden": DIMENSION}
    PARAM_HELP: ClassVar[dict[str, str]] = {
        **SequenceRecommender.SEQUENCE_HELP,
        "hidden": "Size of the GRU's hidden state.",
        "layers": "Stacked GRU layers.",
        "dropout": "Dropout on the item embeddings (and between GRU layers).",
        **LOOP_HELP,
    }

    #: what the tuner searches (core.models.space)
    SEARCH_SPACE: ClassVar[dict[str, Param]] = {
        "dim": choice(32, 64, 128),
        "hidden": choice(64, 128, 256),
        "layers": int_param(1, 3),
        "dropout": float_param(0.0, 0.5),
        "lr": float_param(1e-4, 1e-2, log=True),
        "max_len": int_param(10, 200, log=True),
    }

    def __init__(
        self,
        dim: int = 64,
        hidden: int = 128,
        max_len: int = 50,
        layers: int = 1,
        dropout: float = 0.3,
        loss: str = "auto",
        negatives: int = 1024,
        epochs: int = 100,
        batch_size: int = 256,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        patience: int = 10,
        eval_every: int = 1,
        device_choice: str | None = None,
        seed: int = 42,
    ) -> None:
        self.dim = dim
        self.hidden = hidden
        self.max_len = max_len
        self.layers = layers
        self.dropout = dropout
        self.loss = loss
        self.negatives = negatives
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.eval_every = eval_every
        self.device_choice = device_choice
        self.seed = seed

    # -- training ----------------------------------------------------------------------
    def _build_net(self) -> nn.Module:
        return _GRU4RecNet(
            self.n_items_, int(self.dim), int(self.hidden), int(self.layers), float(self.dropout)
        )

    def _train_tensors(self, train: Interactions) -> tuple[torch.Tensor, ...]:
        return self._next_item_windows(train)  # (W, max_len + 1)

    def _loss(self, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
        (windows,) = batch  # (B, L + 1)
        return self._next_item_loss(windows, gen)

    def _last_hidden(self, seqs: torch.Tensor) -> torch.Tensor:
        return self.net_(seqs)[:, -1]  # (B, d): the state after the newest item


class _GRU4RecNet(nn.Module):
    def __init__(self, n_items: int, dim: int, hidden: int, layers: int, p: float) -> None:
        super().__init__()
        self.items = nn.Embedding(n_items + 1, dim, padding_idx=n_items)
        nn.init.normal_(self.items.weight, std=dim**-0.5)
        with torch.no_grad():
            self.items.weight[n_items].zero_()
        self.drop = nn.Dropout(p)
        self.gru = nn.GRU(dim, hidden, layers, batch_first=True, dropout=p if layers > 1 else 0.0)
        self.out = nn.Linear(hidden, dim)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Item codes (B, L), left-padded -> hidden states in item space (B, L, d)."""
        states, _ = self.gru(self.drop(self.items(seq)))  # (B, L, hidden)
        return self.out(states)
