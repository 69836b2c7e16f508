"""The network of the hybrid model: an item tower, a user tower and the text-match term.

Kept apart from `core/models/hybrid.py` (features, training data, scoring, explanations)
so each file reads in one sitting; see that module for the papers and the design.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class TwoTowers(nn.Module):
    """The two towers; vectors are mixed by small MLPs and compared by a dot product."""

    def __init__(
        self,
        n_items: int,
        dim: int,
        max_len: int,
        item_card: list[int],
        user_card: list[int],
        text_dim: int,
        n_scen: int,
        p: float,
    ) -> None:
        super().__init__()
        self.ids = nn.Embedding(n_items, dim)
        nn.init.normal_(self.ids.weight, std=dim**-0.5)
        self.item_fields = _Fields(item_card, dim)
        # a linear map keeps the language model's geometry: texts that read alike stay close,
        # so an unseen item lands near the items it resembles (an MLP here memorised items)
        self.text = nn.Linear(text_dim, dim) if text_dim else None
        self.match_weight = nn.Parameter(torch.tensor(5.0))  # softplus(5) ~ 5 logits per cos
        self.item_mix = _mlp((2 if item_card else 1) * dim, dim, p)
        self.positions = nn.Parameter(torch.randn(max_len, dim) * dim**-0.5)
        self.scenarios = nn.Embedding(n_scen + 1, dim, padding_idx=n_scen)
        self.query = nn.Parameter(torch.randn(dim) * dim**-0.5)
        self.user_fields = _Fields(user_card, dim)
        self.user_mix = _mlp((3 if user_card else 2) * dim, dim, p)

    def item_vector(
        self,
        codes: torch.Tensor,
        trust: torch.Tensor,
        cats: torch.Tensor,
        text: torch.Tensor | None,
    ) -> torch.Tensor:
        """Codes (N,), trust (N, 1) bool, cats (N, F), text (N, T) -> item vectors (N, d)."""
        parts = [self.ids(codes) * trust]  # untrusted ids contribute nothing
        if self.item_fields.size:
            parts.append(self.item_fields(cats))
        out = self.item_mix(torch.cat(parts, dim=-1))  # (N, d)
        if self.text is not None and text is not None:
            # added after the mix, not mixed with the id: the text term stays a linear
            # function of the text, which carries over to items never seen in training
            out = out + self.text(text)
        return out

    def user_vector(
        self,
        table: torch.Tensor,
        hist: torch.Tensor,
        scen: torch.Tensor,
        cats: torch.Tensor,
    ) -> torch.Tensor:
        """Item table rows (R, d), history rows (B, L) (zero row = pad), scenarios (B, L),
        user attribute codes (B, G) -> user vectors (B, d)."""
        real = hist != table.shape[0] - 1  # (B, L)
        items = table[hist]  # (B, L, d)
        h = items + (self.positions + self.scenarios(scen)) * real[..., None]  # (B, L, d)
        att = (h @ self.query) / h.shape[-1] ** 0.5  # (B, L)
        att = att.masked_fill(~real, float("-inf"))
        weights = torch.softmax(att, dim=1).nan_to_num(0.0)  # empty history -> zeros
        pooled = (weights[..., None] * h).sum(1)  # (B, d)
        parts = [pooled, items[:, -1]]  # newest item last (left padding)
        if self.user_fields.size:
            parts.append(self.user_fields(cats))
        return self.user_mix(torch.cat(parts, dim=-1))

    def text_match(
        self,
        text: torch.Tensor,
        hist: torch.Tensor,
        items: torch.Tensor | None = None,
        texts: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """How closely each candidate's text matches the user's most similar recent item.

        text (I, k) unit text vectors of every item; hist (B, L) item codes (pad = I), items
        (C,) or None for all -> (B, C): a learnt positive weight times max_j cos(text_j,
        text_item), 0 without history. A single user vector cannot express "like one of the
        items I had" (a max over the history), which is what finds the next episode of a
        series nobody has watched yet. `texts` (B, C, k) replaces the candidates' texts per
        row (explanations mask them).
        """
        n_items = text.shape[0]
        if texts is None:
            texts = text if items is None else text[items]  # (C, k)
        real = hist < n_items  # (B, L)
        hist_text = text[hist.clamp(max=n_items - 1)]  # (B, L, k)
        sims = hist_text @ texts.transpose(-1, -2)  # (B, L, C)
        sims = sims.masked_fill(~real[..., None], -1.0).amax(dim=1)  # (B, C)
        sims = torch.where(real.any(1, keepdim=True), sims, torch.zeros_like(sims))
        return F.softplus(self.match_weight) * sims


class _Fields(nn.Module):
    """Sum of one embedding per categorical column; code 0 of each column means missing."""

    def __init__(self, cards: list[int], dim: int) -> None:
        super().__init__()
        self.size = len(cards)
        offsets = np.r_[0, np.cumsum(cards)[:-1]] if cards else np.zeros(0)
        self.register_buffer("offsets", torch.as_tensor(offsets, dtype=torch.long))
        self.table = nn.Embedding(max(1, int(sum(cards))), dim)
        nn.init.normal_(self.table.weight, std=dim**-0.5)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.table(codes + self.offsets).sum(-2)  # (N, F) -> (N, d)


def _mlp(inp: int, dim: int, p: float) -> nn.Module:
    return nn.Sequential(nn.Linear(inp, dim), nn.GELU(), nn.Dropout(p), nn.Linear(dim, dim))
