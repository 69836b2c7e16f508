"""EASE: Embarrassingly Shallow Autoencoders (Steck, 2019, "Embarrassingly Shallow
Autoencoders for Sparse Data", WWW '19).

A linear item-item model learned in closed form:

    P = (XᵀX + λI)⁻¹,   B = I − P · diagMat(1 / diag(P)),   i.e. B[i, j] = −P[i, j] / P[j, j],
    diag(B) = 0,        score(u, ·) = x_u B

with X the binary user x item training matrix and λ = `l2`.

`l2="auto"` (the default) picks λ from `L2_GRID` by validation NDCG@10 when `fit` gets a
validation part (one Cholesky solve per candidate; the Gram matrix is built once), and uses
RecBole's default of 250 without one, because no fixed λ suits every data set (the best λ
differs between the sample data and MovieLens-100k: bench/RESULTS.md, "EASE"). Scores are
exactly additive over the user's history items (score(u, j) = Σ_{i ∈ history(u)} B[i, j]),
so `history_contributions` is an exact explanation.

`solver` says how P is found. "dense": the exact inverse of the dense Gram matrix (n_items²),
by Cholesky in float64 on the CPU and float32 on a GPU (λI keeps it well conditioned); refused
above `MAX_ITEMS`. "lowrank": the top-`rank` eigenpairs of XᵀX plus the exact diagonal of the
resulting P (core.models._ease_large), n_items x rank memory, for catalogues of any size.
"auto" (the default) is dense up to `MAX_ITEMS` and lowrank above; the one used is `solver_`
and is named in the run record's notes (`fit_notes`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from core.data.dataset import Interactions
from core.errors import RecScopeError
from core.eval.evaluate import ranking_metric
from core.models._ease_large import LowRankInverse, top_eigenpairs
from core.models.base import AT_LEAST_ONE, Range, as_codes
from core.models.itemknn import ItemItemModel, check_codes, quiet_sparse_beta
from core.models.space import Param, float_param
from core.protocols import ProgressEvent, ProgressFn
from core.train import raise_if_cancelled

#: largest catalogue EASE accepts: the solve holds three dense n x n matrices at once, in
#: float64 on the CPU that is 3 · 8 · n² bytes (9.6 GB at this limit; half that on a GPU)
MAX_ITEMS = 20_000
#: candidates tried by l2="auto"; FALLBACK_L2 without a validation part
L2_GRID = (50.0, 100.0, 250.0, 500.0, 1000.0)
FALLBACK_L2 = 250.0
SOLVERS = ("auto", "dense", "lowrank")
#: validation users (a fixed random subset) that judge each λ of a lowrank fit
L2_USERS = 10_000
#: target items per block when the lowrank solver writes out its weights (`item_weights`)
_WEIGHT_BLOCK = 512
#: weights kept per target by the lowrank solver's `item_weights` (the largest)
_WEIGHTS_KEPT = 100


class EASE(ItemItemModel):
    """Closed-form linear item-item autoencoder with a zero diagonal (Steck, 2019)."""

    name: ClassVar[str] = "ease"
    #: the low-rank solution when solver_ is "lowrank" (weights_ is then empty), else None
    _lowrank: LowRankInverse | None = None
    PARAM_RANGES: ClassVar[dict[str, Range]] = {
        "l2": Range(low=0, low_open=True, choices=("auto",)),
        "solver": Range(choices=SOLVERS),
        "rank": AT_LEAST_ONE,
    }
    PARAM_HELP: ClassVar[dict[str, str]] = {
        "l2": "L2 regularisation λ, or 'auto' to pick it on the validation split: larger "
        "values give smoother, more popularity-like recommendations.",
        "solver": "How the item matrix is inverted: 'dense' (exact, up to "
        f"{MAX_ITEMS:,} items), 'lowrank' (approximate, any catalogue size) or 'auto' (dense "
        "when it fits).",
        "rank": "Eigen-directions the lowrank solver keeps (more = closer to dense EASE, slower).",
        "device_choice": "Where the matrix is solved and scores computed: auto, cpu or cuda.",
    }

    #: what the tuner searches (core.models.space); the default 'auto' (the best of L2_GRID
    #: on validation) is the first trial, as it is
    SEARCH_SPACE: ClassVar[dict[str, Param]] = {"l2": float_param(1.0, 1e5, log=True)}

    def __init__(
        self,
        l2: float | str = "auto",
        solver: str = "auto",
        rank: int = 512,
        device_choice: str | None = None,
    ) -> None:
        self.l2 = l2
        self.solver = solver
        self.rank = rank
        self.device_choice = device_choice

    def fit(
        self,
        train: Interactions,
        valid: Interactions | None = None,
        progress: ProgressFn | None = None,
    ) -> EASE:
        """Solve B in closed form (choosing λ on `valid` when l2='auto')."""
        self._check_params()
        grid = self._l2_candidates(valid)
        solver = self.solver
        if solver == "auto":
            solver = "dense" if train.n_items <= MAX_ITEMS else "lowrank"
        if solver == "dense" and train.n_items > MAX_ITEMS:
            raise RecScopeError(
                f"EASE needs a dense {train.n_items} x {train.n_items} item matrix, above its "
                f"limit of {MAX_ITEMS} items; use solver=lowrank (or auto) for this catalogue, "
                "itemknn, or filter rare items."
            )
        self._start_fit(train)
        self.solver_ = solver
        self._lowrank = None
        x = train.csr()  # (n_users, n_items) binary
        if solver == "lowrank":
            vecs, vals = top_eigenpairs(x, self.rank)
            vectors = torch.from_numpy(vecs).to(self.device, torch.float32)
            values = torch.from_numpy(vals).to(self.device, torch.float64)
            solve = lambda l2: LowRankInverse(vectors, values, l2)  # noqa: E731
        else:
            dtype = torch.float64 if self.device.type == "cpu" else torch.float32
            gram = torch.from_numpy((x.T @ x).toarray()).to(self.device, dtype)  # (n, n)
            solve = lambda l2: _solve(gram, l2).float()  # noqa: E731
        # each λ of a lowrank fit is judged on a fixed sample of users: a full pass costs
        # users x rank x items multiply-adds (10^12 on 200k users, 50k items)
        tried_on = L2_USERS if solver == "lowrank" else None
        best = (-1.0, None, None)
        for step, l2 in enumerate(grid, start=1):
            raise_if_cancelled("during the EASE fit")  # a job's Cancel (SIGTERM), per λ
            self._set_solution(solve(l2))
            if len(grid) == 1:
                best = (0.0, l2, self._solution())
                break
            metric = ranking_metric(self, valid, known=train, k=10, max_users=tried_on)
            if progress:
                progress(
                    ProgressEvent(
                        epoch=step,
                        epochs=len(grid),
                        valid_metric=metric,
                        message=f"l2={l2:g}",
                        param="λ",
                        param_value=float(l2),
                    )
                )
            if metric > best[0]:
                best = (metric, l2, self._solution())
        _, self.l2_, solution = best
        self._set_solution(solution)
        return self

    def fit_notes(self) -> list[str]:
        """Sentences for the run record: which solver was used and why."""
        self._check_fitted()
        if self.solver_ == "dense":
            return [f"EASE solved exactly (solver=dense) for {self.n_items_:,} items."]
        why = (
            f"the catalogue of {self.n_items_:,} items is above the dense limit of {MAX_ITEMS:,}"
            if self.solver == "auto"
            else "solver=lowrank was asked for"
        )
        return [
            f"EASE used the low-rank solver (solver=lowrank, rank {self._lowrank.vectors.shape[1]}"
            f") because {why}: an approximation of dense EASE."
        ]

    # -- the low-rank solver (core.models._ease_large) --------------------------------
    def _set_solution(self, solution: torch.Tensor | LowRankInverse) -> None:
        if isinstance(solution, LowRankInverse):
            self._lowrank = solution
            self.weights_ = torch.zeros(0, device=self.device)  # no n x n matrix
        else:
            self._lowrank = None
            self.weights_ = solution

    def _solution(self) -> torch.Tensor | LowRankInverse:
        return self._lowrank if self._lowrank is not None else self.weights_

    def score(self, user_codes: Any, item_codes: Any = None) -> torch.Tensor:
        """x_u B for the users' current histories, (B, n_items) or (B, len(item_codes))."""
        if self._lowrank is None:
            return super().score(user_codes, item_codes)
        users = as_codes(user_codes)
        check_codes(users, self.n_users_, "user")
        items = self._items_or_all(item_codes)
        if items is not None:
            check_codes(items, self.n_items_, "item")
        users = users.to(self.device)
        starts = self._hist_indptr[users]
        ends = self._hist_indptr[users + 1]
        counts = ends - starts
        b_of = torch.repeat_interleave(torch.arange(len(users), device=self.device), counts)
        first = torch.cumsum(counts, 0) - counts
        hist = self._hist_indices[
            torch.arange(len(b_of), device=self.device) - first[b_of] + starts[b_of]
        ]
        low = self._lowrank
        xv = F.embedding_bag(hist, low.vectors, first, mode="sum")  # (B, r) = x V
        out = low.scores(xv)
        out[b_of, hist] += low.seen_offset()[hist]
        return out if items is None else out[:, items]

    def _column(self, item: int) -> torch.Tensor:
        if self._lowrank is None:
            return super()._column(item)
        return self._lowrank.column(item)

    def has_dense_weights(self) -> bool:
        """Dense W with the dense solver; the lowrank solver's weights are sparse and costly
        to make (n_items² x rank multiply-adds), so callers ask this first."""
        self._check_fitted()
        return self._lowrank is None

    def item_weights(self) -> torch.Tensor:
        """Dense W (solver=dense); Wᵀ as sparse CSR holding each target's `_WEIGHTS_KEPT`
        largest weights (solver=lowrank: the whole W would be n_items² floats)."""
        self._check_fitted()
        if self._lowrank is None:
            return self.weights_
        n, keep = self.n_items_, min(_WEIGHTS_KEPT, self.n_items_)
        rows, cols, vals = [], [], []
        for start in range(0, n, _WEIGHT_BLOCK):
            stop = min(n, start + _WEIGHT_BLOCK)
            top = torch.topk(self._lowrank.block(start, stop), keep, dim=0)  # (keep, b)
            rows.append(top.indices.reshape(-1))
            cols.append(torch.arange(start, stop, device=self.device).expand(keep, -1).reshape(-1))
            vals.append(top.values.reshape(-1))
        wt = torch.sparse_coo_tensor(
            torch.stack([torch.cat(cols), torch.cat(rows)]), torch.cat(vals), (n, n)
        )
        with quiet_sparse_beta():
            return wt.coalesce().to_sparse_csr()

    def _state(self) -> dict[str, torch.Tensor]:
        if self._lowrank is None:
            return super()._state()
        low = self._lowrank
        return {
            "lr_vectors": low.vectors,
            "lr_values": low.values,
            "lr_l2": torch.tensor([low.l2], dtype=torch.float64),
        }

    def _set_state(self, state: dict[str, torch.Tensor]) -> None:
        if "lr_vectors" not in state:
            self.solver_ = "dense"
            self._lowrank = None
            super()._set_state(state)
            return
        self.solver_ = "lowrank"
        super()._set_state({"weights": torch.zeros(0)})
        low = LowRankInverse(
            state["lr_vectors"].float(), state["lr_values"].double(), float(state["lr_l2"][0])
        )
        self._set_solution(low)

    def _l2_candidates(self, valid: Interactions | None) -> tuple[float, ...]:
        if self.l2 == "auto":
            return L2_GRID if valid is not None and len(valid) else (FALLBACK_L2,)
        return (float(self.l2),)  # a number above 0 (PARAM_RANGES, checked by fit)


def _solve(gram: torch.Tensor, l2: float) -> torch.Tensor:
    """B = I − P / diag(P) with P = (G + λI)⁻¹, diag(B) = 0; `gram` is left unchanged."""
    reg = gram.clone()
    reg.diagonal().add_(float(l2))
    try:
        chol = torch.linalg.cholesky(reg)
    except torch.linalg.LinAlgError:
        raise RecScopeError(
            f"EASE could not invert its item matrix with l2={l2!r}; use a larger l2 "
            "(e.g. 10x) to make it better conditioned."
        ) from None
    del reg
    # cholesky_solve against I, not cholesky_inverse: the latter is ~5x slower on CPU builds
    eye = torch.eye(chol.shape[0], dtype=gram.dtype, device=gram.device)
    b = torch.cholesky_solve(eye, chol)  # (n, n) = P = (XᵀX + λI)⁻¹
    del chol, eye
    b.div_(-b.diagonal().clone().unsqueeze(0))  # in place: B[i, j] = −P[i, j] / P[j, j]
    b.diagonal().zero_()
    return b
