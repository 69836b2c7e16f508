"""The network of the multiscenario model: embeddings, scenario layers (MMoE or STAR), logits.

Kept apart from `core/models/multiscenario.py` (data handling, training, scoring) so each
file reads in one sitting; see that module for the papers and the design.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ScenarioNet(nn.Module):
    """Embeddings, the scenario-aware layer and the per-scenario item bias."""

    def __init__(
        self,
        n_items: int,
        n_sc: int,
        dim: int,
        topology: str,
        experts: int,
        dropout: float,
        interest_dim: int,
    ) -> None:
        super().__init__()
        self.items = nn.Embedding(n_items, dim)  # output item vectors E
        self.bag = nn.Embedding(n_items + 1, dim, padding_idx=n_items)  # history items C
        self.last_s = nn.Embedding(n_items + 1, dim, padding_idx=n_items)  # last in scenario
        self.scen = nn.Embedding(n_sc, dim)
        self.bias = nn.Parameter(torch.zeros(n_sc, n_items))
        self.register_buffer("interest", torch.zeros(n_items, interest_dim))  # fixed factors
        self.interest_in = nn.Linear(interest_dim, dim, bias=False)
        self.interest_weight = nn.Parameter(torch.ones(n_sc))  # per-scenario trust in it
        self.drop = nn.Dropout(dropout)
        self.layer = _Star(n_sc, dim) if topology == "star" else _MMoE(n_sc, dim, experts)
        for emb in (self.items, self.bag, self.last_s, self.scen):
            nn.init.normal_(emb.weight, std=0.05)
        for emb in (self.bag, self.last_s):
            with torch.no_grad():
                emb.weight[-1].zero_()

    def query(
        self,
        bag: torch.Tensor,
        interest: torch.Tensor,
        prev_same: torch.Tensor,
        scen: torch.Tensor,
    ) -> torch.Tensor:
        h = bag + self.interest_in(interest) + self.last_s(prev_same)  # (B, d)
        return self.layer(self.drop(h + self.scen(scen)), scen)  # (B, d)

    def logits(
        self,
        query: torch.Tensor,
        interest: torch.Tensor,
        scen: torch.Tensor,
        items: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """query . E + interest . V * w[s] + b[s], shape (B, n_items) or (B, len(items))."""
        if items is None:
            out = query @ self.items.weight.T + self.bias[scen]  # (B, n_items)
            return out + (interest @ self.interest.T) * self.interest_weight[scen][:, None]
        out = query @ self.items(items).T + self.bias[scen][:, items]  # (B, I)
        return out + (interest @ self.interest[items].T) * self.interest_weight[scen][:, None]


class _Star(nn.Module):
    """Partitioned norm + FC with weight shared ⊙ per-scenario + auxiliary scenario bias."""

    def __init__(self, n_sc: int, dim: int) -> None:
        super().__init__()
        self.norm_shared = nn.Parameter(torch.ones(2, dim))  # scale, shift (shift row 0-ed)
        self.norm_scen = nn.Parameter(torch.ones(n_sc, 2, dim))
        with torch.no_grad():
            self.norm_shared[1].zero_()
            self.norm_scen[:, 1].zero_()
        self.w_shared = nn.Parameter(torch.randn(dim, dim) / dim**0.5)
        self.w_scen = nn.Parameter(torch.ones(n_sc, dim, dim))
        self.b_shared = nn.Parameter(torch.zeros(dim))
        self.b_scen = nn.Parameter(torch.zeros(n_sc, dim))
        self.aux = nn.Sequential(nn.Linear(n_sc, dim), nn.Tanh(), nn.Linear(dim, dim))
        self.n_sc = n_sc

    def forward(self, h: torch.Tensor, scen: torch.Tensor) -> torch.Tensor:
        z = F.layer_norm(h, h.shape[-1:])  # (B, d)
        scale = self.norm_shared[0] * self.norm_scen[scen, 0]  # (B, d)
        shift = self.norm_shared[1] + self.norm_scen[scen, 1]  # (B, d)
        z = z * scale + shift
        w = self.w_shared * self.w_scen[scen]  # (B, d, d)
        out = torch.bmm(w, z[:, :, None])[:, :, 0] + self.b_shared + self.b_scen[scen]  # (B, d)
        aux = self.aux(F.one_hot(scen, self.n_sc).to(h.dtype))  # (B, d)
        return h + F.gelu(out) + aux  # residual keeps the pooled interests


class _MMoE(nn.Module):
    """Shared experts, a softmax gate per scenario and a linear tower per scenario."""

    def __init__(self, n_sc: int, dim: int, experts: int) -> None:
        super().__init__()
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, dim), nn.GELU()) for _ in range(experts)
        )
        self.gates = nn.Parameter(torch.zeros(n_sc, experts, dim))
        # zero towers: training starts from popularity + interest factors, not from noise
        self.towers = nn.Parameter(torch.zeros(n_sc, dim, dim))

    def forward(self, h: torch.Tensor, scen: torch.Tensor) -> torch.Tensor:
        outs = torch.stack([e(h) for e in self.experts], 1)  # (B, K, d)
        gate = torch.softmax(torch.einsum("bkd,bd->bk", self.gates[scen], h), -1)  # (B, K)
        mixed = (gate[:, :, None] * outs).sum(1)  # (B, d)
        return h + torch.bmm(self.towers[scen], mixed[:, :, None])[:, :, 0]  # (B, d)
