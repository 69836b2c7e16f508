"""The network of the multiscenario model: embeddings, scenario layers (MMoE or PLE), logits.

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
        scenario_experts: int = 2,
        levels: int = 2,
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
        if topology == "ple":
            self.layer = _PLE(n_sc, dim, experts, scenario_experts, levels)
        else:
            self.layer = _MMoE(n_sc, dim, experts)
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
        # gather (B, I) bias cells directly: bias[scen] first would copy B whole rows
        out = query @ self.items(items).T + self.bias[scen[:, None], items[None, :]]  # (B, I)
        return out + (interest @ self.interest[items].T) * self.interest_weight[scen][:, None]


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


class _PLE(nn.Module):
    """Progressive layered extraction (Tang et al., RecSys 2020), one path per scenario.

    Each of `levels` extraction levels has `shared` experts and `own` experts per scenario.
    A request in scenario s keeps two representations: its scenario's (r_s) and the shared
    one (r_0). At each level the scenario's experts read r_s, the shared experts read r_0;
    the gate of scenario s (input r_s) mixes its own and the shared experts into the next
    r_s, and below the top level a shared gate (input r_0) mixes the same experts into the
    next r_0. The top r_s goes through the scenario's linear tower (zero-initialised, as
    the MMoE's) and is added to the input. A request reaches its own scenario's experts
    only, so the shared gate sees its scenario's and the shared experts (in the paper's
    multi-task form every task's experts feed it; here one request has one scenario).
    """

    def __init__(self, n_sc: int, dim: int, shared: int, own: int, levels: int) -> None:
        super().__init__()
        scale = dim**-0.5
        self.shared_w = nn.Parameter(torch.randn(levels, shared, dim, dim) * scale)
        self.shared_b = nn.Parameter(torch.zeros(levels, shared, dim))
        self.own_w = nn.Parameter(torch.randn(levels, n_sc, own, dim, dim) * scale)
        self.own_b = nn.Parameter(torch.zeros(levels, n_sc, own, dim))
        # zero gates: every level starts as the plain mean of its experts
        self.gates = nn.Parameter(torch.zeros(levels, n_sc, own + shared, dim))
        self.shared_gates = nn.Parameter(torch.zeros(max(levels - 1, 1), own + shared, dim))
        self.towers = nn.Parameter(torch.zeros(n_sc, dim, dim))
        self.levels = levels

    def forward(self, h: torch.Tensor, scen: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(len(h), device=h.device)
        r_s, r_0 = h, h  # (B, d) each
        for level in range(self.levels):
            own = torch.einsum("skod,bd->bsko", self.own_w[level], r_s)[rows, scen]  # (B, O, d)
            own = F.gelu(own + self.own_b[level][scen])
            shared = torch.einsum("kod,bd->bko", self.shared_w[level], r_0)  # (B, K, d)
            experts = torch.cat([own, F.gelu(shared + self.shared_b[level])], 1)  # (B, O+K, d)
            gate = torch.softmax(torch.einsum("bkd,bd->bk", self.gates[level][scen], r_s), -1)
            if level < self.levels - 1:
                g0 = torch.softmax(torch.einsum("kd,bd->bk", self.shared_gates[level], r_0), -1)
                r_0 = (g0[:, :, None] * experts).sum(1)  # (B, d)
            r_s = (gate[:, :, None] * experts).sum(1)  # (B, d)
        return h + torch.bmm(self.towers[scen], r_s[:, :, None])[:, :, 0]  # (B, d)
