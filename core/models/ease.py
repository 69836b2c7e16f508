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

The Gram matrix is dense (n_items²), so catalogues above `MAX_ITEMS` are refused; item-kNN
handles those. The inverse is solved by Cholesky in float64 on the CPU and float32 on a GPU
(λI keeps the matrix well conditioned).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from core.data.dataset import Interactions
from core.errors import RecScopeError
from core.eval.evaluate import ranking_metric
from core.models.base import Range
from core.models.itemknn import ItemItemModel
from core.models.space import Param, float_param
from core.protocols import ProgressEvent, ProgressFn

#: largest catalogue EASE accepts: the solve holds three dense n x n matrices at once, in
#: float64 on the CPU that is 3 · 8 · n² bytes (9.6 GB at this limit; half that on a GPU)
MAX_ITEMS = 20_000
#: candidates tried by l2="auto"; FALLBACK_L2 without a validation part
L2_GRID = (50.0, 100.0, 250.0, 500.0, 1000.0)
FALLBACK_L2 = 250.0


class EASE(ItemItemModel):
    """Closed-form linear item-item autoencoder with a zero diagonal (Steck, 2019)."""

    name: ClassVar[str] = "ease"
    PARAM_RANGES: ClassVar[dict[str, Range]] = {
        "l2": Range(low=0, low_open=True, choices=("auto",))
    }
    PARAM_HELP: ClassVar[dict[str, str]] = {
        "l2": "L2 regularisation λ, or 'auto' to pick it on the validation split: larger "
        "values give smoother, more popularity-like recommendations.",
        "device_choice": "Where the matrix is solved and scores computed: auto, cpu or cuda.",
    }

    #: what the tuner searches (core.models.space); the default 'auto' (the best of L2_GRID
    #: on validation) is the first trial, as it is
    SEARCH_SPACE: ClassVar[dict[str, Param]] = {"l2": float_param(1.0, 1e5, log=True)}

    def __init__(self, l2: float | str = "auto", device_choice: str | None = None) -> None:
        self.l2 = l2
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
        if train.n_items > MAX_ITEMS:
            raise RecScopeError(
                f"EASE needs a dense {train.n_items} x {train.n_items} item matrix, above its "
                f"limit of {MAX_ITEMS} items; use itemknn for this catalogue or filter rare items."
            )
        self._start_fit(train)
        dtype = torch.float64 if self.device.type == "cpu" else torch.float32
        x = train.csr()  # (n_users, n_items) binary
        gram = torch.from_numpy((x.T @ x).toarray()).to(self.device, dtype)  # (n, n)
        best = (-1.0, None, None)
        for step, l2 in enumerate(grid, start=1):
            self.weights_ = _solve(gram, l2).float()
            if len(grid) == 1:
                best = (0.0, l2, self.weights_)
                break
            metric = ranking_metric(self, valid, known=train, k=10)
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
                best = (metric, l2, self.weights_)
        _, self.l2_, self.weights_ = best
        return self

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
