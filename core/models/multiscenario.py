"""Multi-scenario recommender: shared user/item representations, scenario-aware layers.

Two architectures, one parameter (`topology`): MMoE (Ma et al., "Modeling Task
Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts", KDD 2018; the
default) and PLE (Tang et al., "Progressive Layered Extraction (PLE): A Novel Multi-Task
Learning (MTL) Model for Personalized Recommendations", RecSys 2020).

The request is (user, scenario). The user is read from their *pooled* history over every
scenario, so interests seen in one scenario reach the others:

    h = mean(C[history]) + P(mean V[history]) + L_s[last item in scenario s] + Z[s]   # (B, d)

`topology="mmoe"` passes h through shared experts mixed by a softmax gate per scenario, then
a linear tower per scenario; `topology="ple"` through `levels` extraction levels of shared
experts and experts of each scenario, a gate per scenario mixing its own and the shared
experts and a shared gate feeding the next level's shared experts, then the tower
(core/models/_scenario_net.py `_PLE`). Both add the tower's output to h (towers start at
zero). A fixed interest term (a truncated SVD of the pooled user x item matrix, weighted per
scenario) carries interests across scenarios from the first epoch. The query scores every
item against shared item vectors, plus a per-scenario item bias started at the scenario's
log popularity: `score = q @ E.T + w[s] * (mean V[history]) @ V.T + b[s]`.

Why PLE as the second architecture rather than finishing STAR (Sheng et al., CIKM 2021):
transfer to a scenario new to the user is the point of this model, and it rests on the
additive path by which the pooled interests reach every scenario. PLE keeps that path (its
experts feed the same zero-started residual tower as MMoE's) and adds what MMoE lacks:
experts that belong to one scenario, and a second level. STAR's product weights
(shared ⊙ per-scenario) instead let the scenario layer override the pooled interests: the
partial STAR layer this file had (one star FC, shared ⊙ scenario LayerNorm affine, an
auxiliary net on the scenario id) ranked no better on the sample data (mean per-scenario
NDCG@10 after 2 epochs, loo: STAR 0.5555, MMoE 0.5577, PLE 0.5575) at 1.8x the fit time,
and earlier did not transfer (lift over a shop-only model for users new to shop: STAR
-0.008, MMoE +0.064); it was removed rather than kept as a half-STAR. PLE transfers as
MMoE does (same protocol, 2 epochs: PLE +0.065, MMoE +0.066) and ranks as well within a
scenario (paired per-scenario differences all within ±0.003, CIs spanning 0). Measurements:
bench/RESULTS.md, "Multi-scenario architectures". Other defaults: dim 64, 4 shared
experts (ple: per level, with 2 per scenario, 2 levels), 16 interest factors, scenario
dropout 0.5, lr 1e-2.

Training: each training interaction predicts its item from the user's history without it
(the item is taken out of the mean) and the item before it in the same scenario (not the
last item of any scenario: for a request in a scenario new to the user that item only adds
noise). With probability `scenario_dropout` an example hides the user's whole history in
its own scenario, as for a user new to it, so the model learns to recommend from the other
scenarios. Softmax cross-entropy over the whole catalogue, or over the batch's items plus
`negatives` sampled ones (`loss="sampled"`, or "auto" on a large catalogue:
`core.train.sampled_softmax`, the switch the sequence models use). Each batch sums only its
own users' histories (`_history_bags`), never the whole user x item matrix.
Without a scenario column the model is a single-scenario model (one scenario, code 0).

Files: the network is core/models/_scenario_net.py; how the model explains a score (masked
histories and the request scenario) is core/models/_scenario_explain.py.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import svds
from torch import nn

from core.data import schema as S
from core.data.dataset import Interactions
from core.errors import ParameterError
from core.models._neural import LOOP_HELP, NeuralRecommender
from core.models._scenario_explain import ScenarioExplanations
from core.models._scenario_net import ScenarioNet
from core.models.base import AT_LEAST_ONE, DIMENSION, FRACTION, Range, as_codes
from core.train import SOFTMAX_LOSSES, sampled_softmax

TOPOLOGIES = ("mmoe", "ple")


class MultiScenario(ScenarioExplanations, NeuralRecommender):
    """Scenario-aware recommender over a pooled cross-scenario history (MMoE or PLE)."""

    name: ClassVar[str] = "multiscenario"
    PARAM_RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(("experts", "scenario_experts", "levels", "negatives"), AT_LEAST_ONE),
        **dict.fromkeys(
            (
                "dim",
                "interest_dim",
            ),
            DIMENSION,
        ),
        "dropout": FRACTION,
        "scenario_dropout": FRACTION,
        "topology": Range(choices=TOPOLOGIES),
        "loss": Range(choices=SOFTMAX_LOSSES),
    }
    PARAM_HELP: ClassVar[dict[str, str]] = {
        "dim": "Size of the user, item and scenario vectors.",
        "topology": "mmoe (shared experts, a gate and a tower per scenario) or ple (levels of "
        "shared and per-scenario experts, progressive layered extraction).",
        "experts": "Number of shared experts (per level for ple).",
        "scenario_experts": "Experts of each scenario per level (ple only).",
        "levels": "Extraction levels (ple only).",
        "dropout": "Dropout on the user representation while training.",
        "scenario_dropout": "Share of training examples that hide the user's history in the "
        "example's scenario, so the model learns to recommend from the other scenarios.",
        "interest_dim": "Rank of the fixed cross-scenario interest factors (SVD of all "
        "interactions).",
        "loss": "auto, full (softmax over every item) or sampled (softmax over negatives).",
        "negatives": "Items sampled per batch for the sampled softmax.",
        **LOOP_HELP,
    }

    def __init__(
        self,
        dim: int = 64,
        topology: str = "mmoe",
        experts: int = 4,
        scenario_experts: int = 2,
        levels: int = 2,
        dropout: float = 0.1,
        loss: str = "auto",
        negatives: int = 2048,
        interest_dim: int = 16,
        scenario_dropout: float = 0.5,
        epochs: int = 30,
        batch_size: int = 1024,
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        patience: int = 3,
        eval_every: int = 1,
        device_choice: str | None = None,
        seed: int = 42,
    ) -> None:
        self.dim = dim
        self.topology = topology
        self.experts = experts
        self.scenario_experts = scenario_experts
        self.levels = levels
        self.dropout = dropout
        self.loss = loss
        self.negatives = negatives
        self.interest_dim = interest_dim
        self.scenario_dropout = scenario_dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.eval_every = eval_every
        self.device_choice = device_choice
        self.seed = seed

    # -- training ----------------------------------------------------------------------
    def _start_fit(self, train: Interactions) -> None:
        # before the history is read; data without scenarios is one scenario (code 0)
        self.n_scenarios_ = max(1, train.n_scenarios)
        super()._start_fit(train)

    def _build_net(self) -> nn.Module:
        return ScenarioNet(
            self.n_items_,
            self.n_scenarios_,
            int(self.dim),
            self.topology,
            int(self.experts),
            float(self.dropout),
            int(self.interest_dim),
            int(self.scenario_experts),
            int(self.levels),
        )

    def _train_tensors(self, train: Interactions) -> tuple[torch.Tensor, ...]:
        frame = train.ordered
        users = frame[S.USER].to_numpy(dtype=np.int64)
        items = frame[S.ITEM].to_numpy(dtype=np.int64)
        scen = np.minimum(train.ordered_scenarios, self.n_scenarios_ - 1)
        pad = self.n_items_
        prev_same = _previous_in_group(users * self.n_scenarios_ + scen, items, pad)
        dev = self.device
        # each (user, scenario)'s history as one run of a flat item array (`_history_bags`):
        # a batch sums only its own users' rows, never the whole user x item matrix
        keys = users * self.n_scenarios_ + scen
        order = np.argsort(keys, kind="stable")
        ptr = np.r_[0, np.cumsum(np.bincount(keys, minlength=train.n_users * self.n_scenarios_))]
        self.train_bag_items_ = torch.from_numpy(items[order]).to(dev)  # (n,)
        self.train_bag_ptr_ = torch.from_numpy(ptr).to(dev)  # (U * n_sc + 1,)
        counts = np.diff(ptr).reshape(train.n_users, self.n_scenarios_).astype(np.float32)
        self.train_counts_ = torch.from_numpy(counts).to(dev)  # (U, n_sc)
        share = np.bincount(items, minlength=pad) / max(1, len(items))  # the logQ correction's
        self.train_item_share_ = torch.from_numpy(share.astype(np.float32)).to(dev)  # (n_items,)
        self._init_bias(scen, items)
        self._init_interest(train.csr())
        factors = self.net_.interest.cpu().numpy()  # (n_items, k), fixed
        interest = np.zeros((train.n_users, self.n_scenarios_, factors.shape[1]), np.float32)
        for code in range(self.n_scenarios_):
            rows = scen == code
            mat = sp.csr_matrix(
                (np.ones(rows.sum(), np.float32), (users[rows], items[rows])),
                shape=(train.n_users, train.n_items),
            )
            interest[:, code] = mat @ factors
        self.train_interest_ = torch.from_numpy(interest).to(dev)
        # (U, n_sc, k) per-scenario sums of the interest factors
        arrays = (users, items, scen, prev_same)
        return tuple(torch.from_numpy(a).to(dev) for a in arrays)  # six (n,) tensors

    def _loss(self, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
        users, items, scen, prev_same = batch  # (B,) each
        net, pad = self.net_, self.n_items_
        table = net.bag.weight[:pad]  # (n_items, d)
        sums = self._history_bags(users, table)  # (B, n_sc, d)
        counts = self.train_counts_[users].clone()  # (B, n_sc)
        rows = torch.arange(len(users), device=users.device)
        # leave the target out of its own history
        sums = sums.index_put((rows, scen), -net.bag(items), accumulate=True)  # (B, n_sc, d)
        isums = self.train_interest_[users].index_put(
            (rows, scen), -net.interest[items], accumulate=True
        )  # (B, n_sc, k)
        counts[rows, scen] -= 1
        # scenario dropout: hide the example's own scenario, as for a user new to it
        cold = torch.rand(len(users), device=users.device, generator=gen) < float(
            self.scenario_dropout
        )  # (B,)
        keep = torch.ones_like(counts)
        keep[rows, scen] = (~cold).to(keep.dtype)
        denom = (counts * keep).sum(1).clamp(min=1)[:, None]  # (B, 1)
        bag = (sums * keep[:, :, None]).sum(1) / denom  # (B, d)
        interest = (isums * keep[:, :, None]).sum(1) / denom  # (B, k)
        prev_same = torch.where(cold, pad, prev_same)
        query = net.query(bag, interest, prev_same, scen)  # (B, d)
        if not sampled_softmax(self.loss, self.n_items_):
            logits = net.logits(query, interest, scen)  # (B, n_items)
            return F.cross_entropy(logits.float(), items)
        negs = torch.randint(0, pad, (int(self.negatives),), device=users.device, generator=gen)
        cand = torch.cat([items, negs])  # (B + N,) in-batch positives double as negatives
        # logQ correction (Yi et al., RecSys 2019): the in-batch candidates are drawn by
        # popularity, so without it the loss pushes popular items down; the expected number
        # of draws of each candidate is B x its share of the training rows + N / n_items.
        # Uncorrected, one epoch on the 10M set ranked at NDCG@10 0.0005 against pop's 0.0194
        drawn = len(items) * self.train_item_share_[cand] + len(negs) / pad  # (B + N,)
        logits = net.logits(query, interest, scen, cand) - drawn.log()[None, :]  # (B, B + N)
        target = torch.arange(len(items), device=users.device)
        return F.cross_entropy(logits.float(), target)

    def _history_bags(self, users: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Sums of `table` rows over each user's training items per scenario, (B, n_sc, d).

        Gathers only the batch's runs of the flat history (one per user and scenario), so a
        step costs the batch's history length, not the whole training matrix.
        """
        n_sc = self.n_scenarios_
        keys = (users[:, None] * n_sc + torch.arange(n_sc, device=users.device)).reshape(-1)
        starts = self.train_bag_ptr_[keys]  # (B * n_sc,)
        lengths = self.train_bag_ptr_[keys + 1] - starts
        offsets = torch.cumsum(lengths, 0) - lengths  # each bag's start in the gathered list
        total = int(lengths.sum())
        idx = torch.repeat_interleave(starts - offsets, lengths, output_size=total)
        idx = idx + torch.arange(total, device=users.device)  # (total,) flat positions
        bags = F.embedding_bag(self.train_bag_items_[idx], table, offsets, mode="sum")
        return bags.reshape(len(users), n_sc, -1)

    def _init_interest(self, csr: sp.csr_matrix) -> None:
        """Fixed interest factors: a truncated SVD of the pooled user x item matrix.

        Shared by every scenario, they carry interests across scenarios from the first
        epoch (on the sample data they alone rank a user's items in a new scenario far
        above its popularity list); scaled so a typical interest score has unit spread.
        """
        k = int(self.interest_dim)
        rank = min(k, min(csr.shape) - 1)
        factors = np.zeros((self.n_items_, k), dtype=np.float64)
        if rank >= 1 and csr.nnz:
            _, _, vt = svds(csr.astype(np.float64), k=rank, random_state=int(self.seed))
            factors[:, :rank] = vt.T
            counts = np.maximum(np.diff(csr.indptr), 1)
            sample = np.random.default_rng(0).permutation(csr.shape[0])[:1000]
            means = (sp.diags(1.0 / counts[sample]) @ csr[sample]) @ factors  # (<=1000, k)
            spread = float(np.std(means @ factors.T)) or 1.0
            factors /= np.sqrt(spread)
        with torch.no_grad():
            self.net_.interest.copy_(torch.from_numpy(factors.astype(np.float32)))

    def _init_bias(self, scen: np.ndarray, items: np.ndarray) -> None:
        """Start each scenario's item bias at its log popularity (smoothed)."""
        counts = np.zeros((self.n_scenarios_, self.n_items_), dtype=np.float64)
        np.add.at(counts, (scen, items), 1.0)
        logp = np.log((counts + 0.1) / (counts + 0.1).sum(1, keepdims=True))
        with torch.no_grad():
            self.net_.bias.copy_(torch.from_numpy(logp.astype(np.float32)))

    # -- history -----------------------------------------------------------------------
    def _history_changed(self, known: Interactions) -> None:
        """Per user: history mean matrix, last item per scenario, most recent scenario."""
        n_sc = getattr(self, "n_scenarios_", 1)
        pad = self.n_items_
        frame = known.ordered
        users = frame[S.USER].to_numpy(dtype=np.int64)
        items = frame[S.ITEM].to_numpy(dtype=np.int64)
        scen = np.minimum(known.ordered_scenarios, n_sc - 1)
        last_s = np.full((known.n_users, n_sc), pad, dtype=np.int64)
        last_s[users, scen] = items  # rows are in time order: the last write wins
        recent = np.zeros(known.n_users, dtype=np.int64)
        recent[users] = scen
        csr = known.csr()
        counts = np.maximum(np.diff(csr.indptr), 1).astype(np.float32)
        mean = sp.diags(1.0 / counts) @ csr  # rows sum to 1 (or 0 without history)
        dev = self.device
        self.ctx_adj_ = _sparse(sp.csr_matrix(mean, dtype=np.float32), dev)
        self.ctx_last_s_ = torch.from_numpy(last_s).to(dev)  # (U, n_sc)
        self.ctx_recent_ = torch.from_numpy(recent).to(dev)  # (U,)
        self._bag_cache = None
        self._known, self._pairs = known, None  # read lazily by explanations

    def _weights_changed(self) -> None:
        self._bag_cache = None

    def _context(self) -> None:
        if not hasattr(self, "ctx_last_s_"):  # loaded from disk: no history yet
            self._history_changed(_empty(self.n_users_, self.n_items_))

    # -- scoring -----------------------------------------------------------------------
    def score(self, user_codes: Any, item_codes: Any = None, scenario: Any = None) -> torch.Tensor:
        """Scores (B, n_items) or (B, len(item_codes)) for the request's scenario.

        `scenario`: None (each user's most recent scenario), one code for every user, or a
        code per user (B,).
        """
        users = self._users_on_device(user_codes)
        self._context()
        items = self._items_or_all(item_codes)
        scen = self._scenario_codes(users, scenario)  # (B,)
        net = self.net_
        with torch.inference_mode():
            if self._bag_cache is None:
                self._bag_cache = (
                    torch.sparse.mm(self.ctx_adj_, net.bag.weight[: self.n_items_]),
                    torch.sparse.mm(self.ctx_adj_, net.interest),
                )  # (U, d), (U, k)
            bag = self._bag_cache[0][users]  # (B, d)
            interest = self._bag_cache[1][users]  # (B, k)
            prev_same = self.ctx_last_s_[users, scen]  # (B,)
            query = net.query(bag, interest, prev_same, scen)  # (B, d)
            return net.logits(query, interest, scen, items)  # (B, n_items) or (B, I)

    def score_scenario(self, user_codes: Any, scenario_code: int) -> torch.Tensor:
        """Scores (B, n_items) for every user as if the request came from `scenario_code`."""
        return self.score(user_codes, None, int(scenario_code))

    def item_embeddings(self) -> np.ndarray:
        self._check_fitted()
        return self.net_.items.weight.detach().float().cpu().numpy()

    def _scenario_codes(self, users: torch.Tensor, scenario: Any) -> torch.Tensor:
        if scenario is None:
            return self.ctx_recent_[users]
        codes = as_codes(scenario).to(self.device)
        if codes.numel() == 1:
            codes = codes.expand(len(users))
        bad = (codes < 0) | (codes >= self.n_scenarios_)
        if bool(bad.any()) or len(codes) != len(users):
            raise ParameterError(
                f"Scenario codes must be 0..{self.n_scenarios_ - 1}, one or one per user; "
                f"got {scenario!r}."
            )
        return codes

    # -- state -------------------------------------------------------------------------
    def _set_state(self, state: dict[str, torch.Tensor]) -> None:
        self.n_scenarios_ = int(state["net.bias"].shape[0])
        super()._set_state(state)


def _previous_in_group(groups: np.ndarray, items: np.ndarray, pad: int) -> np.ndarray:
    """For rows in time order within user, the item of the previous row of the same group."""
    order = np.argsort(groups, kind="stable")  # keeps time order inside each group
    g, it = groups[order], items[order]
    prev_sorted = np.where(np.r_[False, g[1:] == g[:-1]], np.r_[pad, it[:-1]], pad)
    out = np.empty_like(items)
    out[order] = prev_sorted
    return out


def _sparse(mat: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    coo = mat.tocoo()
    idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float32))
    return (
        torch.sparse_coo_tensor(idx, values, mat.shape, check_invariants=False)
        .coalesce()
        .to(device)
    )


def _empty(n_users: int, n_items: int) -> Interactions:
    frame = pd.DataFrame(
        {
            S.USER: np.zeros(0, np.int32),
            S.ITEM: np.zeros(0, np.int32),
            S.TIMESTAMP: np.zeros(0, np.int64),
        }
    )
    return Interactions(frame, n_users, n_items)
