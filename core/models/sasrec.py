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

Defaults: dim 64, 2 layers, 1 head, dropout 0.2, lr 3e-3; patience 10 because one
held-out item per user makes validation NDCG noisy, and a shorter patience stopped training
long before it converged (measurements: bench/RESULTS.md, "SASRec").
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.data import schema as S
from core.data.dataset import Interactions
from core.errors import ParameterError
from core.models._neural import LOOP_HELP, NeuralRecommender
from core.models.base import AT_LEAST_ONE, DIMENSION, FRACTION, Range
from core.models.space import Param, choice, float_param, int_param
from core.train import SOFTMAX_LOSSES, sampled_softmax, sampled_softmax_loss


class SASRec(NeuralRecommender):
    """Causal self-attention over recent items; next-item scores for the whole catalogue."""

    name: ClassVar[str] = "sasrec"
    PARAM_RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(("max_len", "layers", "heads", "negatives"), AT_LEAST_ONE),
        "dim": DIMENSION,
        "dropout": FRACTION,
        "loss": Range(choices=SOFTMAX_LOSSES),
    }
    PARAM_HELP: ClassVar[dict[str, str]] = {
        "dim": "Size of item vectors and of the Transformer.",
        "max_len": "How many of the user's most recent items the model reads.",
        "layers": "Transformer blocks.",
        "heads": "Attention heads per block (must divide dim).",
        "dropout": "Dropout on embeddings, attention and feed-forward layers.",
        "loss": "auto, full (softmax over every item) or sampled (softmax over negatives).",
        "negatives": "Items sampled per batch for the sampled softmax.",
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

    @property
    def sampled_(self) -> bool:
        return sampled_softmax(self.loss, self.n_items_)

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
        windows = _windows(train, int(self.max_len))  # (W, max_len + 1), -1 = padding
        windows[windows < 0] = self.n_items_  # the padding code
        return (torch.as_tensor(windows, device=self.device),)

    def _loss(self, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
        (windows,) = batch  # (B, L + 1)
        inputs, targets = windows[:, :-1], windows[:, 1:]  # (B, L) each
        real = inputs != self.n_items_  # a real input implies a real target (left padding)
        hidden = self.net_(inputs)[real]  # (N, d)
        targets = targets[real]  # (N,)
        items = self.net_.items.weight[: self.n_items_]  # (I, d)
        if not self.sampled_:
            return F.cross_entropy((hidden @ items.T).float(), targets)  # (N, I) logits
        neg = torch.randint(
            0, self.n_items_, (int(self.negatives),), device=self.device, generator=gen
        )  # (n,) shared by the batch
        pos_logit = (hidden * items[targets]).sum(-1, keepdim=True)  # (N, 1)
        neg_logit = hidden @ items[neg].T  # (N, n)
        return sampled_softmax_loss(pos_logit, neg_logit, targets, neg)

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
            last = self.net_(self.seqs_[users])[:, -1]  # (B, d): output at the newest item
            table = self.net_.items.weight[: self.n_items_]  # (I, d)
            return last @ (table if items is None else table[items]).T  # (B, I)

    def score_histories(
        self,
        histories: list[np.ndarray],
        item_codes: Any,
        user_code: int,
        context: list[dict] | None = None,
    ) -> np.ndarray:
        """Next-item logits of `item_codes` after each history (time order), (N, m).

        For explanations: the masked sequence itself (its last `max_len` items, left-padded)
        goes through the network, so the full history gives exactly `score`.
        """
        items = self._items_or_all(item_codes)
        length = int(self.max_len)
        seqs = np.full((len(histories), length), self.n_items_, dtype=np.int64)  # padding code
        for row, history in enumerate(histories):
            tail = np.asarray(history, dtype=np.int64)[-length:]
            seqs[row, length - len(tail) :] = tail
        seqs_t = torch.from_numpy(seqs).to(self.device)  # (N, L)
        table = self.net_.items.weight[: self.n_items_][items]  # (m, d)
        with torch.inference_mode():
            out = [
                self.net_(seqs_t[lo : lo + 256])[:, -1] @ table.T for lo in range(0, len(seqs), 256)
            ]
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
        self.blocks = nn.ModuleList(_Block(dim, heads, p) for _ in range(layers))
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


class _Block(nn.Module):
    """Pre-norm Transformer block: causal self-attention, then a position-wise MLP."""

    def __init__(self, dim: int, heads: int, p: float) -> None:
        super().__init__()
        self.heads, self.p = heads, p
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Dropout(p), nn.Linear(dim, dim))
        self.drop = nn.Dropout(p)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(d, dim=-1)  # (B, L, d) each
        q, k, v = (t.view(b, length, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        att = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.p if self.training else 0.0
        )  # (B, h, L, d/h)
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(b, length, d)))
        return x + self.drop(self.mlp(self.norm2(x)))


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


def _windows(train: Interactions, max_len: int) -> np.ndarray:
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
