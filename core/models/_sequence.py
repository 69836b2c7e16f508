"""What the sequence models (sasrec, bert4rec, gru4rec) share: history, scoring, explanation.

A sequence model reads each user's most recent `max_len` items (left-padded with the
padding code `n_items_`) and turns them into one vector per user whose dot product with the
item embeddings (`net_.items`, rows 0..n_items-1) scores the next item. A subclass supplies
the network (`_build_net`), the training rows and loss, and `_last_hidden(seqs)`: the
(B, L) padded histories -> (B, d) next-item vectors.

Written once here: `set_history` keeps the padded sequences (`seqs_`, saved with the
weights, so a loaded model scores alike), `score`, `score_histories` (ExplainsHistory: the
edited history goes through the same network, so the full known history gives exactly
`score`), `item_embeddings`, and the softmax over the catalogue with the sampled fallback
(`core.train.sampled_softmax`, `sampled_softmax_loss`).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.data import schema as S
from core.data.dataset import Interactions
from core.models._neural import NeuralRecommender
from core.models.base import AT_LEAST_ONE, DIMENSION, FRACTION, Range
from core.train import SOFTMAX_LOSSES, sampled_softmax, sampled_softmax_loss

#: histories scored per forward pass in `score_histories`
HISTORY_BATCH = 256


class SequenceRecommender(NeuralRecommender):
    """Base of next-item models over the user's recent items; the network lives in `net_`."""

    PARAM_RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(("max_len", "negatives"), AT_LEAST_ONE),
        "dim": DIMENSION,
        "dropout": FRACTION,
        "loss": Range(choices=SOFTMAX_LOSSES),
    }
    SEQUENCE_HELP: ClassVar[dict[str, str]] = {
        "dim": "Size of the item vectors.",
        "max_len": "How many of the user's most recent items the model reads.",
        "dropout": "Dropout rate.",
        "loss": "auto, full (softmax over every item) or sampled (softmax over negatives).",
        "negatives": "Items sampled per batch for the sampled softmax.",
    }

    max_len: int
    loss: str
    negatives: int
    seqs_: torch.Tensor

    @property
    def sampled_(self) -> bool:
        return sampled_softmax(self.loss, self.n_items_)

    @abc.abstractmethod
    def _last_hidden(self, seqs: torch.Tensor) -> torch.Tensor:
        """Padded histories (B, L), newest last -> next-item vectors (B, d)."""

    # -- training ----------------------------------------------------------------------
    def _softmax_loss(
        self, hidden: torch.Tensor, targets: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        """Cross-entropy of hidden states (N, d) against their target items (N,).

        Over the whole catalogue, or over the target plus `negatives` items shared by the
        batch when `sampled_` (a large catalogue).
        """
        items = self.net_.items.weight[: self.n_items_]  # (I, d)
        bias = self._item_bias()
        if not self.sampled_:
            logits = hidden @ items.T  # (N, I)
            return F.cross_entropy((logits if bias is None else logits + bias).float(), targets)
        neg = torch.randint(
            0, self.n_items_, (int(self.negatives),), device=self.device, generator=gen
        )  # (n,) shared by the batch
        pos_logit = (hidden * items[targets]).sum(-1, keepdim=True)  # (N, 1)
        neg_logit = hidden @ items[neg].T  # (N, n)
        if bias is not None:
            pos_logit, neg_logit = pos_logit + bias[targets, None], neg_logit + bias[neg]
        return sampled_softmax_loss(pos_logit, neg_logit, targets, neg)

    def _item_bias(self) -> torch.Tensor | None:
        """A learnt logit per item (I,) added to every score, or None (sasrec, gru4rec)."""
        return None

    def _logits(self, hidden: torch.Tensor, items: torch.Tensor | None) -> torch.Tensor:
        """Next-item vectors (B, d) -> logits (B, I), or (B, m) for the given items."""
        table = self.net_.items.weight[: self.n_items_]  # (I, d)
        logits = hidden @ (table if items is None else table[items]).T
        bias = self._item_bias()
        if bias is None:
            return logits
        return logits + (bias if items is None else bias[items])

    def _next_item_windows(self, train: Interactions) -> tuple[torch.Tensor, ...]:
        """Training windows (W, max_len + 1) of a causal model, padding = `n_items_`."""
        windows = training_windows(train, int(self.max_len))  # -1 = padding
        windows[windows < 0] = self.n_items_
        return (torch.as_tensor(windows, device=self.device),)

    def _next_item_loss(self, windows: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Every real position of every window (B, L + 1) predicts the item after it.

        `net_(inputs)` must give the hidden state per position, (B, L, d).
        """
        inputs, targets = windows[:, :-1], windows[:, 1:]  # (B, L) each
        real = inputs != self.n_items_  # a real input implies a real target (left padding)
        hidden = self.net_(inputs)[real]  # (N, d)
        return self._softmax_loss(hidden, targets[real], gen)

    # -- history and scoring -----------------------------------------------------------
    def _history_changed(self, known: Interactions) -> None:
        seqs = known.sequences(int(self.max_len))  # (n_users, L), -1 = padding
        seqs[seqs < 0] = known.n_items
        self.seqs_ = torch.as_tensor(seqs, device=self.device)

    def score(self, user_codes: Any, item_codes: Any = None) -> torch.Tensor:
        """Next-item logits from each user's history, shape (B, n_items) or (B, len(items))."""
        users = self._users_on_device(user_codes)
        items = self._items_or_all(item_codes)
        with torch.inference_mode():
            return self._logits(self._last_hidden(self.seqs_[users]), items)  # (B, I)

    def score_histories(
        self,
        histories: list[np.ndarray],
        item_codes: Any,
        user_code: int,
        context: list[dict] | None = None,
    ) -> np.ndarray:
        """Next-item logits of `item_codes` after each history (time order), (N, m).

        For explanations and what-if edits: the edited sequence itself (its last `max_len`
        items, left-padded) goes through the network, so the full history gives exactly
        `score`.
        """
        self._check_fitted()
        items = self._items_or_all(item_codes)
        length = int(self.max_len)
        seqs = np.full((len(histories), length), self.n_items_, dtype=np.int64)  # padding code
        for row, history in enumerate(histories):
            tail = np.asarray(history, dtype=np.int64)[-length:]
            seqs[row, length - len(tail) :] = tail
        seqs_t = torch.from_numpy(seqs).to(self.device)  # (N, L)
        with torch.inference_mode():
            out = [
                self._logits(self._last_hidden(seqs_t[lo : lo + HISTORY_BATCH]), items)
                for lo in range(0, len(seqs), HISTORY_BATCH)
            ]  # (b, m) each
        return torch.cat(out).double().cpu().numpy()  # (N, m)

    def item_embeddings(self) -> np.ndarray:
        self._check_fitted()
        return self.net_.items.weight[: self.n_items_].detach().float().cpu().numpy()

    # -- state: the sequences travel with the weights, so a loaded model scores alike ---
    def _state(self) -> dict[str, torch.Tensor]:
        return {**super()._state(), "seqs": self.seqs_}

    def _set_state(self, state: dict[str, torch.Tensor]) -> None:
        super()._set_state(state)
        self.seqs_ = state["seqs"].to(self.device)


class TransformerBlock(nn.Module):
    """Pre-norm Transformer block: self-attention under a boolean mask, then an MLP."""

    def __init__(self, dim: int, heads: int, p: float, inner: int | None = None) -> None:
        super().__init__()
        self.heads, self.p = heads, p
        inner = inner or dim
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, inner), nn.GELU(), nn.Dropout(p), nn.Linear(inner, dim)
        )
        self.drop = nn.Dropout(p)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, L, d), mask (B, 1, L, L) True where a query may see a key -> (B, L, d)."""
        b, length, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(d, dim=-1)  # (B, L, d) each
        q, k, v = (t.view(b, length, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        att = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.p if self.training else 0.0
        )  # (B, h, L, d/h)
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(b, length, d)))
        return x + self.drop(self.mlp(self.norm2(x)))


def training_windows(train: Interactions, max_len: int) -> np.ndarray:
    """Training windows of max_len + 1 items, newest last, left-padded with -1.

    Each user's history is cut from the newest end into windows whose targets (the last
    max_len slots) do not overlap; slot 0 of a window repeats the newest item of the window
    before it, so every item but a user's first is predicted exactly once.
    """
    frame = train.ordered
    users = frame[S.USER].to_numpy()
    items = frame[S.ITEM].to_numpy().astype(np.int64)
    if len(users) == 0:
        return np.full((0, max_len + 1), -1, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1]
    counts = np.diff(np.r_[starts, len(users)])
    from_end = np.repeat(starts + counts, counts) - np.arange(len(users)) - 1  # 0 = newest
    # a user with n items has targets from_end 0..n-2 -> ceil((n-1)/max_len) windows
    n_windows = np.maximum(0, (counts - 2) // max_len + 1) * (counts > 1)
    first = np.r_[0, np.cumsum(n_windows)[:-1]]  # row of each user's newest window
    out = np.full((int(n_windows.sum()), max_len + 1), -1, dtype=np.int64)
    user_first = np.repeat(first, counts)
    user_windows = np.repeat(n_windows, counts)
    # main placement: item with from_end f goes to window f // max_len at slot max_len - f % L
    w, slot = from_end // max_len, max_len - from_end % max_len
    keep = w < user_windows
    out[user_first[keep] + w[keep], slot[keep]] = items[keep]
    # context slot 0 of window w holds the item with from_end (w + 1) * max_len
    ctx = (from_end % max_len == 0) & (from_end > 0) & (from_end // max_len - 1 < user_windows)
    out[user_first[ctx] + from_end[ctx] // max_len - 1, 0] = items[ctx]
    return out
