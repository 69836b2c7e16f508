"""Item-based k-nearest neighbours (Sarwar, Karypis, Konstan & Riedl, 2001, "Item-based
collaborative filtering recommendation algorithms"), cosine similarity with shrinkage.

    sim(i, j) = x_i · x_j / (‖x_i‖ ‖x_j‖ + shrink)      x_i = binary column of item i
    sim(j, j) = 0; for every target item j only its `k` most similar items i are kept
    score(u, j) = Σ_{i ∈ history(u)} sim(i, j)

Scores are exactly additive over the user's history items, so `history_contributions` is an
exact explanation (the SHAP code uses it as an oracle).

The fit never builds an item x item matrix, dense or whole: XᵀX is multiplied out sparse,
a chunk of target items at a time (chunks sized by their count of products, `_CHUNK_PRODUCTS`),
and each target keeps its k best entries before the next chunk, so memory is linear in
items x k (plus one chunk).

`ItemItemModel` holds what item-kNN and EASE share: score = x_u W with x_u the user's binary
history row and W an item x item weight matrix (W[i, j] = how much having i raises j).
W is a dense tensor up to `DENSE_MAX_ITEMS` items (n² floats: at most 64 MB, and a plain
matmul) and sparse beyond that (item-kNN keeps at most k entries per target): then scores are
summed from the rows of W that the users' history items select, never through a dense W.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from core.data.dataset import Interactions
from core.errors import UnknownIdError
from core.models._foldin import history_matrix
from core.models.base import AT_LEAST_ONE, NON_NEGATIVE, Range, RecommenderBase, as_codes
from core.models.space import Param, float_param, int_param
from core.protocols import ProgressFn
from core.train import raise_if_cancelled

#: above this many items, W is stored sparse (CSR) instead of dense (4096² float32 = 64 MB)
DENSE_MAX_ITEMS = 4096
#: products x_u,i · x_u,j summed in one chunk of the sparse XᵀX during fit (bounds its memory:
#: the chunk's entries are at most this many, ~16 bytes each while they are ranked)
_CHUNK_PRODUCTS = 2**24
#: (history item, target) pairs expanded at once when scoring with a sparse W
_SCORE_PAIRS = 2**23


class ItemItemModel(RecommenderBase):
    """score(u, j) = Σ_{i ∈ history(u)} W[i, j], computed on the model's device.

    Subclasses set `weights_` in `fit` through `_set_weights(W)`.
    Dense layout: `weights_` is W, shape (n_items, n_items).
    Sparse layout: `weights_` is Wᵀ as a CSR tensor (row j = the weights into target j), and
    `_w_rows` is W as CSR (row i = what history item i adds to each target) for scoring.
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
        if self.weights_.layout == torch.strided:
            x = self._history_rows(users)  # (B, n_items)
            w = self.weights_ if items is None else self.weights_[:, items]  # (n_items, m)
            return x @ w  # (B, m)
        out = self._sparse_scores(users)  # (B, n_items), contiguous
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

    def has_dense_weights(self) -> bool:
        """Whether `item_weights` is the dense (n_items, n_items) W, known without making it
        (re-ranking uses only a dense W; a large catalogue's weights are sparse)."""
        self._check_fitted()
        return self.weights_.layout == torch.strided

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

    def _sparse_scores(self, users: torch.Tensor) -> torch.Tensor:
        """Σ_{i ∈ history(u)} W[i, :] for each user, from the CSR rows of W, (B, n_items).

        Costs Σ_u Σ_{i ∈ history(u)} nnz(W[i]) additions (users' history x k), not B x nnz(W).
        """
        users = users.to(self.device)
        n = self.n_items_
        out = torch.zeros((len(users), n), device=self.device)
        crow, col, val = self._w_rows
        starts = self._hist_indptr[users]
        counts = self._hist_indptr[users + 1] - starts  # (B,)
        b_of = torch.repeat_interleave(torch.arange(len(users), device=self.device), counts)
        first = torch.cumsum(counts, 0) - counts
        pos = torch.arange(len(b_of), device=self.device) - first[b_of] + starts[b_of]
        hist = self._hist_indices[pos]  # the history items, flat, user b_of[·]
        widths = crow[hist + 1] - crow[hist]  # entries of W[i] per history item
        ends = torch.cumsum(widths, 0)
        flat = out.view(-1)
        lo = 0
        while lo < len(hist):  # slices of history items whose expansion fits _SCORE_PAIRS
            base = int(ends[lo - 1]) if lo else 0
            hi = max(lo + 1, int(torch.searchsorted(ends, base + _SCORE_PAIRS, right=True)))
            w = widths[lo:hi]
            owner = torch.repeat_interleave(torch.arange(lo, hi, device=self.device), w)
            offset = (
                torch.arange(len(owner), device=self.device) - (ends[lo:hi] - w - base)[owner - lo]
            )
            at = crow[hist[owner]] + offset
            flat.index_add_(0, b_of[owner] * n + col[at], val[at])
            lo = hi
        return out

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
            with quiet_sparse_beta():
                self.weights_ = wt.coalesce().to_sparse_csr()
            self._index_rows()

    def _index_rows(self) -> None:
        """`_w_rows` (crow, col, val) = W in CSR, from `weights_` = Wᵀ (sparse layout)."""
        wt = self.weights_
        rows = torch.repeat_interleave(
            torch.arange(self.n_items_, device=wt.device), torch.diff(wt.crow_indices())
        )  # target j of each stored entry
        src, dst = wt.col_indices(), rows  # W[src, dst] = value
        order = torch.argsort(src * self.n_items_ + dst)
        crow = torch.zeros(self.n_items_ + 1, dtype=torch.int64, device=wt.device)
        crow[1:] = torch.cumsum(torch.bincount(src, minlength=self.n_items_), 0)
        self._w_rows = (crow, dst[order], wt.values()[order])

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
            with quiet_sparse_beta():
                self.weights_ = torch.sparse_csr_tensor(
                    state["wt_crow"],
                    state["wt_col"],
                    state["wt_val"].float(),
                    size=size,
                    check_invariants=True,
                )
            self._index_rows()
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
        """Shrunk cosine similarity, top-k neighbours per target item, from sparse chunks."""
        self._check_params()
        self._start_fit(train)
        rows, cols, vals = top_k_cosine(train.csr(), min(int(self.k), self.n_items_), self.shrink)
        dev = self.device
        self._set_weights(
            torch.from_numpy(rows).to(dev),
            torch.from_numpy(cols).to(dev),
            torch.from_numpy(vals).to(dev),
        )
        return self


def top_k_cosine(
    x: sp.csr_matrix, keep: int, shrink: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(history item i, target j, sim) for the `keep` best positive sim(i, j) of every target j.

    sim(i, j) = x_i · x_j / (‖x_i‖ ‖x_j‖ + shrink), i ≠ j, x the binary (n_users, n_items)
    matrix. XᵀX is multiplied out sparse for a chunk of targets at a time (at most
    `_CHUNK_PRODUCTS` products per chunk) and ranked per target before the next chunk, so
    memory is the chunk plus the kept items x keep entries. Ties keep the lower item code.
    """
    n = x.shape[1]
    xc = x.tocsc()
    norms = np.sqrt(np.asarray(x.sum(axis=0), dtype=np.float32).ravel())  # (n_items,)
    per_user = np.diff(x.indptr).astype(np.int64)
    products = np.asarray(xc.T @ per_user.astype(np.float64)).ravel()  # per target item
    ends = np.cumsum(products)
    rows, cols, vals = [], [], []
    start = 0
    while start < n:
        raise_if_cancelled("during the item-kNN fit")  # a job's Cancel (SIGTERM), per chunk
        base = ends[start - 1] if start else 0.0
        stop = max(start + 1, int(np.searchsorted(ends, base + _CHUNK_PRODUCTS, side="right")))
        stop = min(stop, n)
        co = (xc[:, start:stop].T @ x).tocsr()  # (targets, n_items) co-occurrence counts
        co.sort_indices()
        target = np.repeat(np.arange(start, stop), np.diff(co.indptr))
        item = co.indices.astype(np.int64)
        denom = norms[item] * norms[target] + np.float32(shrink)
        sim = np.where(denom > 0, co.data.astype(np.float32) / np.maximum(denom, 1e-12), 0)
        good = (sim > 0) & (item != target)  # positive, and an item is not its own neighbour
        target, item, sim = target[good], item[good], sim[good].astype(np.float32)
        order = np.lexsort((-sim, target))  # per target, best first (stable: lower item first)
        target, item, sim = target[order], item[order], sim[order]
        firsts = np.searchsorted(target, target, side="left")
        best = np.arange(len(target)) - firsts < keep
        rows.append(item[best])
        cols.append(target[best])
        vals.append(sim[best])
        start = stop
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def check_codes(codes: torch.Tensor, n: int, kind: str) -> None:
    """Codes outside [0, n) are a caller's mistake; say so instead of indexing garbage."""
    if len(codes) and (int(codes.min()) < 0 or int(codes.max()) >= n):
        bad = int(codes.min()) if int(codes.min()) < 0 else int(codes.max())
        raise UnknownIdError(
            f"The {kind} code {bad} is outside this model's range 0..{n - 1}; map ids to codes "
            "with the dataset the model was trained on."
        )


@contextlib.contextmanager
def quiet_sparse_beta() -> Iterator[None]:
    """torch warns that sparse CSR is 'beta' on first use; what we use of it is supported."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        yield
