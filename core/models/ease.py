"""EASE: Embarrassingly Shallow Autoencoders (Steck, 2019, "Embarrassingly Shallow
Autoencoders for Sparse Data", WWW '19).

A linear item-item model learned in closed form:

    P = (XᵀX + λI)⁻¹,   B = I − P · diagMat(1 / diag(P)),   i.e. B[i, j] = −P[i, j] / P[j, j],
    diag(B) = 0,        score(u, ·) = x_u B

with X the binary user x item training matrix and λ = `l2`. Scores are exactly additive over
the user's history items (score(u, j) = Σ_{i ∈ history(u)} B[i, j]), so
`history_contributions` is an exact explanation.

The Gram matrix is dense (n_items²), so catalogues above `MAX_ITEMS` are refused; item-kNN
handles those. The inverse is solved by Cholesky in float64 on the CPU and float32 on a GPU
(λI keeps the matrix well conditioned).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from core.dataset import Interactions
from core.errors import RecScopeError
from core.models.base import ProgressFn, check_positive
from core.models.itemknn import ItemItemModel

#: largest catalogue EASE accepts: the solve holds three dense n x n matrices at once, in
#: float64 on the CPU that is 3 · 8 · n² bytes (9.6 GB at this limit; half that on a GPU)
MAX_ITEMS = 20_000


class EASE(ItemItemModel):
    """Closed-form linear item-item autoencoder with a zero diagonal (Steck, 2019)."""

    name: ClassVar[str] = "ease"
    PARAM_HELP: ClassVar[dict[str, str]] = {
        "l2": "L2 regularisation λ: larger values give smoother, more popularity-like "
        "recommendations; smaller values fit the data more closely.",
        "device_choice": "Where the matrix is solved and scores computed: auto, cpu or cuda.",
    }

    def __init__(self, l2: float = 100.0, device_choice: str | None = None) -> None:
        self.l2 = l2
        self.device_choice = device_choice

    def fit(
        self,
        train: Interactions,
        valid: Interactions | None = None,
        progress: ProgressFn | None = None,
    ) -> EASE:
        """Solve B in closed form; refuses catalogues larger than `MAX_ITEMS`."""
        check_positive("l2", self.l2)
        if train.n_items > MAX_ITEMS:
            raise RecScopeError(
                f"EASE needs a dense {train.n_items} x {train.n_items} item matrix, above its "
                f"limit of {MAX_ITEMS} items; use itemknn for this catalogue or filter rare items."
            )
        self._start_fit(train)
        dtype = torch.float64 if self.device.type == "cpu" else torch.float32
        x = train.csr()  # (n_users, n_items) binary
        gram = torch.from_numpy((x.T @ x).toarray()).to(self.device, dtype)  # (n, n)
        gram.diagonal().add_(float(self.l2))
        try:
            chol = torch.linalg.cholesky(gram)
        except torch.linalg.LinAlgError:
            raise RecScopeError(
                f"EASE could not invert its item matrix with l2={self.l2!r}; use a larger l2 "
                "(e.g. 10x) to make it better conditioned."
            ) from None
        del gram
        # cholesky_solve against I, not cholesky_inverse: the latter is ~5x slower on CPU builds
        eye = torch.eye(chol.shape[0], dtype=dtype, device=self.device)
        b = torch.cholesky_solve(eye, chol)  # (n, n) = P = (XᵀX + λI)⁻¹
        del chol, eye
        b.div_(-b.diagonal().clone().unsqueeze(0))  # in place: B[i, j] = −P[i, j] / P[j, j]
        b.diagonal().zero_()
        self.weights_ = b.float()
        return self
