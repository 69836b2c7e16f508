"""Item-based k-nearest neighbours (Sarwar, Karypis, Konstan & Riedl, 2001, "Item-based
collaborative filtering recommendation algorithms"), cosine similarity with shrinkage.

    sim(i, j) = x_i · x_j / (‖x_i‖ ‖x_j‖ + shrink)      x_i = binary column of item i
    sim(j, j) = 0; for every target item j only its `k` most similar items i are kept
    score(u, j) = Σ_{i ∈ history(u)} sim(i, j)

Scores are exactly additive over the user's history items, so `history_contributions` is an
exact explanation (the SHAP code uses it as an oracle).

`ItemItemModel` holds what item-kNN and EASE share: score = x_u W with x_u the user's binary
history row and W an item x item weight matrix (W[i, j] = how much having i raises j).
W is a dense tensor up to `DENSE_MAX_ITEMS` items (fast matmul, n² floats: 1.6 GB at 20k) and a
sparse CSR tensor beyond that (item-kNN keeps at most k entries per item, so it stays small).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch

from core.data.dataset import Interactions
from core.errors import UnknownIdError
from core.models._foldin import history_matrix
from core.models.base import AT_LEAST_ONE, NON_NEGATIVE, Range, RecommenderBase, as_codes
from core.models.space import Param, float_param, int_param
from core.protocols import ProgressFn

#: above this many items, W is stored sparse (CSR) instead of dense
DENSE_MAX_ITEMS = 20_000
#: cells of one dense similarity block computed at a time during fit (~256 MB of float32)
_BLOCK_CELLS = 2**26


class ItemItemModel(RecommenderBase):
    """score(u, j) = Σ_{i ∈ history(u)} W[i, j], computed on the model's device.

    Subclasses set `weights_` in `fit` through `_set_weights(W)`.
    Dense layout: `weights_` is W, shape (n_items, n_items).
    Sparse layout: `weights_` is Wᵀ as a CSR tensor (row j = the weights into target j).
    """

    weights_: torch.Tensor

    def score(self, user_codes: Any, item_codes: Any = None) -> torch.Tensor:
        """Scores from the current history, shape (B, n_items) or (B, len(item_codes))."""
        self._check_fitted()
        users = as_codes(user_codes)
        check_codes(users, self.n_users_, "user")
        items = self._items_or_all(item_codes)
        if items is not None:
            check_codes(items, self.n_items_, "item")
        x = self._history_rows(users)  # (B, n_items)
        if self.weights_.layout == torch.strided:
            w = self.weights_ if items is None else self.weights_[:, items]  # (n_items, m)
            return x @ w  # (B, m)
        out = torch.sparse.mm(self.weights_, x.T).T  # (B, n_items)
        return out if items is None else out[:, items]

    def history_contributions(self, user_code: int, item_code: int) -> dict[int, float]:
        """{history item code: W[i, item]} for every item in the user's current history.

        The values sum to `score(user, item)` exactly (up to float rounding).
        """
        self._check_fitted()
        check_codes(as_codes(user_code), self.n_users_, "user")
        check_codes(as_codes(item_code), self.n_items_, "item")
        history = self.history_[int(user_code)].indices
        column = self._column(int(item_code)).cpu().numpy()
        return {int(i): float(column[i]) for i in sorted(history)}

    def score_histories(
        self,
        histories: list[np.ndarray],
        item_codes: Any,
        user_code: int,
        context: list[dict] | None = None,
    ) -> np.ndarray:
        """Scores of `item_codes` if the user's history were each list: x_h W, (N, m).

        Exact and additive (the explainer's oracle); the user code only validates.
        """
        self._check_fitted()
        check_codes(as_codes(user_code), self.n_users_, "user")
        items = as_codes(item_codes)
        check_codes(items, self.n_items_, "item")
        union, x = history_matrix(histories, self.device, torch.float32)  # (U,), (N, U)
        w = torch.stack([self._column(int(i)) for i in items], 1)  # (n_items, m)
        return (x @ w[union]).double().cpu().numpy()  # (N, m)

    def similar_items(self, item_code: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Items whose presence in a history most raises `item_code`'s score: (codes, weights).

        Ranked by W[i, item_code] descending; only positive weights, at most k, never itself.
        """
        self._check_fitted()
        check_codes(as_codes(item_code), self.n_items_, "item")
        column = self._column(int(item_code)).clone()  # (n_items,)
        column[int(item_code)] = float("-inf")
        top = torch.topk(column, min(int(k), self.n_items_))
        keep = top.values > 0
        return top.indices[keep].cpu().numpy(), top.values[keep].cpu().numpy()

    def item_weights(self) -> torch.Tensor:
        """W: dense (n_items, n_items), or Wᵀ as a sparse CSR tensor (see the class docstring)."""
        self._check_fitted()
        return self.weights_

    # -- history (on the device) ---------------------------------------------------------
    def _history_changed(self, known: Interactions) -> None:
        h = self.history_
        self._hist_indptr = torch.from_numpy(h.indptr.astype(np.int64)).to(self.device)
        self._hist_indices = torch.from_numpy(h.indices.astype(np.int64)).to(self.device)

    def _history_rows(self, users: torch.Tensor) -> torch.Tensor:
        """Binary history rows for `users` as a dense (B, n_items) float tensor on the device."""
        users = users.to(self.device)
        starts = self._hist_indptr[users]
        counts = self._hist_indptr[users + 1] - starts  # (B,)
        rows = torch.repeat_interleave(torch.arange(len(users), device=self.device), counts)
        first = torch.cumsum(counts, 0) - counts  # where each user's run starts in the output
        offsets = torch.arange(len(rows), device=self.device) - first[rows] + starts[rows]
        x = torch.zeros((len(users), self.n_items_), device=self.device)
        x[rows, self._hist_indices[offsets]] = 1.0
        return x

    # -- weights -------------------------------------------------------------------------
    def _set_weights(self, rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor) -> None:
        """W[rows, cols] = vals (all other entries 0); layout chosen by catalogue size."""
        n = self.n_items_
        if n <= DENSE_MAX_ITEMS:
            w = torch.zeros((n, n), device=self.device)
            w[rows, cols] = vals.float()
            self.weights_ = w
        else:
            wt = torch.sparse_coo_tensor(
                torch.stack([cols, rows]), vals.float(), (n, n), check_invariants=True
            )
            with _quiet_sparse_beta():
                self.weights_ = wt.coalesce().to_sparse_csr()

    def _column(self, item: int) -> torch.Tensor:
        """W[:, item] as a dense (n_items,) tensor."""
        if self.weights_.layout == torch.strided:
            return self.weights_[:, item]
        crow = self.weights_.crow_indices()
        lo, hi = int(crow[item]), int(crow[item + 1])
        column = torch.zeros(self.n_items_, device=self.weights_.device)
        column[self.weights_.col_indices()[lo:hi]] = self.weights_.values()[lo:hi]
        return column

    def _state(self) -> dict[str, torch.Tensor]:
        if self.weights_.layout == torch.strided:
            return {"weights": self.weights_}
        w = self.weights_
        return {"wt_crow": w.crow_indices(), "wt_col": w.col_indices(), "wt_val": w.values()}

    def _set_state(self, state: dict[str, torch.Tensor]) -> None:
        if "weights" in state:
            self.weights_ = state["weights"].float()
        else:
            size = (self.n_items_, self.n_items_)
            with _quiet_sparse_beta():
                self.weights_ = torch.sparse_csr_tensor(
                    state["wt_crow"],
                    state["wt_col"],
                    state["wt_val"].float(),
                    size=size,
                    check_invariants=True,
                )
        empty = np.zeros(self.n_users_ + 1, dtype=np.int64)
        self._hist_indptr = torch.from_numpy(empty).to(self.device)
        self._hist_indices = torch.zeros(0, dtype=torch.int64, device=self.device)


class ItemKNN(ItemItemModel):
    """Item-kNN with shrunk cosine similarity; score = sum of similarities to history items."""

    name: ClassVar[str] = "itemknn"
    PARAM_RANGES: ClassVar[dict[str, Range]] = {"k": AT_LEAST_ONE, "shrink": NON_NEGATIVE}
    PARAM_HELP: ClassVar[dict[str, str]] = {
        "k": "How many most-similar items each item keeps as neighbours (more = smoother, "
        "fewer = more specific).",
        "shrink": "Damps similarities between rarely seen items (0 = plain cosine).",
        "device_choice": "Where scores are computed: auto, cpu or cuda.",
    }

    #: what the tuner searches (core.models.space)
    SEARCH_SPACE: ClassVar[dict[str, Param]] = {
        "k": int_param(10, 1000, log=True),
        "shrink": float_param(0.0, 500.0),
    }

    def __init__(self, k: int = 50, shrink: float = 0.0, device_choice: str | None = None) -> None:
        self.k = k
        self.shrink = shrink
        self.device_choice = device_choice

    def fit(
        self,
        train: Interactions,
        valid: Interactions | None = None,
        progress: ProgressFn | None = None,
    ) -> ItemKNN:
        """Shrunk cosine similarity, top-k neighbours per target item, in column blocks."""
        self._check_params()
        self._start_fit(train)
        x = train.csr()  # (n_users, n_items) binary, scipy
        xt = x.T.tocsr()  # (n_items, n_users)
        xc = x.tocsc()
        n = self.n_items_
        norms = torch.from_numpy(np.sqrt(np.asarray(x.sum(axis=0)).ravel())).float()
        norms = norms.to(self.device)  # (n_items,)
        keep = min(int(self.k), n)
        block = max(1, min(n, _BLOCK_CELLS // max(n, 1)))
        rows, cols, vals = [], [], []
        for start in range(0, n, block):
            stop = min(n, start + block)
            co = torch.from_numpy((xt @ xc[:, start:stop]).toarray()).float().to(self.device)
            denom = norms[:, None] * norms[None, start:stop] + float(self.shrink)  # (n, b)
            sim = torch.where(denom > 0, co / denom.clamp_min(1e-12), torch.zeros_like(co))
            local = torch.arange(stop - start, device=self.device)
            sim[start + local, local] = 0.0  # an item is not its own neighbour
            top = torch.topk(sim, keep, dim=0)  # (keep, b): best history items per target
            nonzero = top.values > 0
            rows.append(top.indices[nonzero])
            cols.append((start + local).expand(keep, -1)[nonzero])
            vals.append(top.values[nonzero])
        self._set_weights(torch.cat(rows), torch.cat(cols), torch.cat(vals))
        return self


def check_codes(codes: torch.Tensor, n: int, kind: str) -> None:
    """Codes outside [0, n) are a caller's mistake; say so instead of indexing garbage."""
    if len(codes) and (int(codes.min()) < 0 or int(codes.max()) >= n):
        bad = int(codes.min()) if int(codes.min()) < 0 else int(codes.max())
        raise UnknownIdError(
            f"The {kind} code {bad} is outside this model's range 0..{n - 1}; map ids to codes "
            "with the dataset the model was trained on."
        )


@contextlib.contextmanager
def _quiet_sparse_beta() -> Iterator[None]:
    """torch warns that sparse CSR is 'beta' on first use; what we use of it is supported."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        yield
