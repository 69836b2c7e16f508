"""SASRec: self-attentive sequential recommendation.

Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018. A causal Transformer
reads each user's most recent `max_len` items (learned positional embeddings, dropout,
layer norm) and the output at each position scores the next item by a dot product with
the (shared) item embeddings.

Training: every position of every training window predicts the next item, with softmax
cross-entropy over the whole catalogue, or over the target plus `negatives` items shared
by the batch (`loss="sampled"`, `core.train.sampled_softmax_loss`, shared with the hybrid)
when the catalogue is large (`loss="auto"` switches at `core.train.AUTO_SAMPLED_ITEMS`).
Histories longer than `max_len` are cut into several windows.

Scoring reads the user's *current* history (`set_history`), so when the evaluator adds the
validation item to the history for the test, that item is in the input (as RecBole does).
Sequences are left-padded; see `_attention_mask` for how padding is kept out of attention.
History, scoring, explanation and the softmax are shared with bert4rec and gru4rec
(`core.models._sequence`).

Defaults: dim 64, 2 layers, 1 head, dropout 0.2, lr 3e-3; patience 10 because one
held-out item per user makes validation NDCG noisy, and a shorter patience stopped training
long before it converged (measurements: bench/RESULTS.md, "SASRec").
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from core.data.dataset import Interactions
from core.errors import ParameterError
from core.models._neural import LOOP_HELP
from core.models._sequence import SequenceRecommender, TransformerBlock, training_windows
from core.models.base import AT_LEAST_ONE, Range
from core.models.space import Param, choice, float_param, int_param

#: kept under its old name: the windows are shared with gru4rec now
_windows = training_windows


class SASRec(SequenceRecommender):
    """Causal self-attention over recent items; next-item scores for the whole catalogue."""

    name: ClassVar[str] = "sasrec"
    PARAM_RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(("layers", "heads"), AT_LEAST_ONE),
    }
    PARAM_HELP: ClassVar[dict[str, str]] = {
        **SequenceRecommender.SEQUENCE_HELP,
        "dim": "Size of item vectors and of the Transformer.",
        "layers": "Transformer blocks.",
        "heads": "Attention heads per block (must divide dim).",
        "dropout": "Dropout on embeddings, attention and feed-forward layers.",
        **LOOP_HELP,
    }

    #: what the tuner searches (core.models.space); every dim choice is divisible by every
    #: heads choice
    SEARCH_SPACE: ClassVar[dict[str, Param]] = {
        "dim": choice(16, 32, 64, 128),
        "layers": int_param(1, 4),
        "heads": choice(1, 2, 4),
        "dropout": float_param(0.0, 0.5),
        "lr": float_param(1e-4, 1e-2, log=True),
        "max_len": int_param(10, 200, log=True),
    }

    def __init__(
        self,
        dim: int = 64,
        max_len: int = 50,
        layers: int = 2,
        heads: int = 1,
        dropout: float = 0.2,
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
        self.max_len = max_len
        self.layers = layers
        self.heads = heads
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

    def _check_params(self) -> None:
        super()._check_params()
        if self.dim % self.heads:
            raise ParameterError(f"Parameter 'heads' must divide dim={self.dim}; got {self.heads}.")

    # -- training ----------------------------------------------------------------------
    def _build_net(self) -> nn.Module:
        return _SASRecNet(
            self.n_items_,
            int(self.dim),
            int(self.max_len),
            int(self.layers),
            int(self.heads),
            float(self.dropout),
        )

    def _train_tensors(self, train: Interactions) -> tuple[torch.Tensor, ...]:
        return self._next_item_windows(train)  # (W, max_len + 1)

    def _loss(self, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
        (windows,) = batch  # (B, L + 1)
        return self._next_item_loss(windows, gen)

    def _last_hidden(self, seqs: torch.Tensor) -> torch.Tensor:
        return self.net_(seqs)[:, -1]  # (B, d): the output at the newest item


class _SASRecNet(nn.Module):
    def __init__(self, n_items: int, dim: int, max_len: int, layers: int, heads: int, p: float):
        super().__init__()
        self.pad = n_items
        self.items = nn.Embedding(n_items + 1, dim, padding_idx=n_items)
        self.positions = nn.Embedding(max_len, dim)
        nn.init.normal_(self.items.weight, std=dim**-0.5)
        nn.init.normal_(self.positions.weight, std=dim**-0.5)
        with torch.no_grad():
            self.items.weight[n_items].zero_()
        self.drop = nn.Dropout(p)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, p) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Item codes (B, L), left-padded with `pad` -> hidden states (B, L, d)."""
        length = seq.shape[1]
        x = self.items(seq) + self.positions.weight[-length:]  # (B, L, d)
        x = self.drop(x)
        mask = _attention_mask(seq != self.pad)  # (B, 1, L, L)
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)


def _attention_mask(real: torch.Tensor) -> torch.Tensor:
    """Boolean (B, 1, L, L): query t may see key s iff s <= t and s is a real item, or s == t.

    `is_causal=True` alone would let real items attend to the left padding; masking padding
    keys alone would leave padding queries with no key at all (a NaN row). Letting every
    position see itself fixes both; padding outputs are never used.
    """
    length = real.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=real.device).tril()
    eye = torch.eye(length, dtype=torch.bool, device=real.device)
    return (causal & (real[:, None, :] | eye))[:, None]  # (B, 1, L, L)
