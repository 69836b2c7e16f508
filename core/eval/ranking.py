"""The one ranking routine: top-k items per user, known items excluded, ties broken by a rule.

Every ranked list RecScope shows or scores comes from `top_k` — `recommend`, the evaluator,
the stored `recs.parquet`, re-ranking pools and the scenario leaderboard — so the list a user
sees is the list that was scored.

Tie rule. Items with equal scores are ordered by a pseudo-random key fixed per
(seed, user, item) before k is chosen, so
- the top-k for any k is the first k of the top-(k + 1): k = 10 is a prefix of k = 50;
- equal scores are not ordered by item code, so a user whose scores are all equal (no known
  history under a temporal split) gets a random list, not the lowest codes in order — which
  would follow the file's row order and make the metrics depend on it;
- the same seed gives the same lists on every call, device and batch size. Callers pass the
  run's seed (the split's), so the evaluator, `recommend` and recs.parquet agree.

What it cannot promise: the key is a function of the codes, and codes follow the ids' first
appearance in the file. The same data in another row order therefore draws another (equally
random) order among equal scores: metrics of a model without ties do not move, those of a
model with ties (popularity, users with no history) agree in expectation, not bit for bit.
No deterministic rule can do better, since equal-scored items differ only by code or name.

How: a float32 score maps to an int32 that sorts the same way (the IEEE-754 sign trick); it
fills the high 32 bits of an int64 whose low 31 bits are the tie key, and `torch.topk` over
the int64 is an exact lexicographic (score, key) top-k. Excluded items get the lowest int64,
below any real score (also -inf or NaN ones), and come back as -1.

Fast path (`rank_block`), the same lists: building those int64 keys for every (user, item)
cell costs ~40 integer operations per cell, far more than the ranking itself. So the block
is first copied once to float32 with NaN -> -inf and the excluded items set to -inf (in
place at their sparse indices), `torch.topk` on the floats keeps k + _MARGIN candidates,
and the keys are built for those candidates only. That is exact for every row whose k-th
best value is finite and above the last candidate's (then every item tied with the k-th
is a candidate); other rows (ties running past the margin, fewer than k finite candidates)
are ranked by the full keys as before.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch

from core.errors import ParameterError

#: int64 key of an excluded item: below every real (score, tie) key
_EXCLUDED = torch.iinfo(torch.int64).min
_LOW31 = 0x7FFFFFFF
#: candidates kept past k by the float pre-selection, so ties at the cut resolve exactly
_MARGIN = 32


class RankedBlock(NamedTuple):
    """`rank_block`'s result: the lists and the masked float block they were taken from."""

    items: torch.Tensor  # (B, k) int64 item codes, -1 past the last candidate
    scores: torch.Tensor  # (B, k) float32 scores of those items, -inf past the last
    masked: torch.Tensor  # (B, n) float32: scores, +-inf clamped to finite, NaN/excluded -inf


def top_k(
    scores: torch.Tensor,
    k: int,
    *,
    users: torch.Tensor,
    exclude: torch.Tensor | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k item codes and scores of each row, highest first, by the module's tie rule.

    scores (B, n) on any device; users (B,) the rows' user codes (they seed the tie keys);
    exclude: None, a (B, n) bool mask, or 1-D linear indices into the (B, n) block of items
    that must not be ranked. Returns items (B, k) int64 and scores (B, k) float32; where a
    row has fewer than k candidates the rest is item -1 with score -inf.
    """
    ranked = rank_block(scores, k, users=users, exclude=exclude, seed=seed)
    return ranked.items, ranked.scores


def rank_block(
    scores: torch.Tensor,
    k: int,
    *,
    users: torch.Tensor,
    exclude: torch.Tensor | None = None,
    seed: int = 0,
) -> RankedBlock:
    """`top_k`'s lists, plus the masked float32 block (for callers that count over it).

    Same arguments and lists as `top_k`; see the module docstring for how it stays exact.
    """
    n_rows, n_items = scores.shape
    k = check_k(k)
    k_eff = min(k, n_items)
    users = users.to(scores.device)
    raw = scores.float()
    # (B, n) a copy, raw stays untouched; the float order of the keys: -inf -> lowest finite,
    # +inf -> highest; NaN and (below) excluded items -> -inf, beneath all of them
    masked = torch.nan_to_num(raw, nan=float("-inf"))
    if exclude is not None:
        exclude = exclude.to(scores.device)
        if exclude.dtype == torch.bool:
            masked.masked_fill_(exclude, float("-inf"))
        else:
            masked.view(-1).index_fill_(0, exclude, float("-inf"))
    n_cand = min(n_items, k_eff + _MARGIN)
    if n_rows == 0 or n_items == 0:
        items = torch.zeros((n_rows, k_eff), dtype=torch.int64, device=scores.device)
    else:
        values, cand = torch.topk(masked, n_cand, dim=1)  # (B, n_cand) float order only
        kth = values[:, k_eff - 1]  # (B,)
        exact = kth > float("-inf")
        if n_cand < n_items:  # every item tied with the k-th must be a candidate
            exact &= values[:, -1] < kth
        keys = _keys(raw.gather(1, cand), _tie_hash(users.reshape(-1, 1), cand, seed))
        keys.masked_fill_(values == float("-inf"), _EXCLUDED)  # excluded or NaN: below the k-th
        items = cand.gather(1, torch.topk(keys, k_eff, dim=1).indices)  # (B, k_eff)
        redo = torch.nonzero(~exact).reshape(-1)
        if len(redo):  # ties past the margin, or fewer than k finite candidates
            items[redo] = _top_k_full(
                raw[redo], k_eff, users[redo], _rows_of(exclude, redo, n_rows, n_items), seed
            )
    real = items >= 0
    values = raw.gather(1, items.clamp(min=0)).masked_fill(~real, float("-inf"))
    if k_eff < k:  # catalogue smaller than k: pad so every row has k ranks
        items = torch.nn.functional.pad(items, (0, k - k_eff), value=-1)
        values = torch.nn.functional.pad(values, (0, k - k_eff), value=float("-inf"))
    return RankedBlock(items, values, masked)


def _top_k_full(
    scores: torch.Tensor,
    k: int,
    users: torch.Tensor,
    exclude: torch.Tensor | None,
    seed: int,
) -> torch.Tensor:
    """(B, k) items by the int64 (score, tie key) of every cell: the rule's definition."""
    keys = ranking_keys(scores, users, seed)  # (B, n) int64
    if exclude is not None:
        if exclude.dtype == torch.bool:
            keys = keys.masked_fill(exclude, _EXCLUDED)
        else:
            keys.view(-1).index_fill_(0, exclude, _EXCLUDED)
    top = torch.topk(keys, k, dim=1)  # (B, k)
    return torch.where(top.values != _EXCLUDED, top.indices, -1)


def _rows_of(
    exclude: torch.Tensor | None, rows: torch.Tensor, n_rows: int, n_items: int
) -> torch.Tensor | None:
    """The exclusion of the block's `rows` only, in the same form (mask or linear indices)."""
    if exclude is None or exclude.dtype == torch.bool:
        return None if exclude is None else exclude[rows]
    new_row = torch.full((n_rows,), -1, dtype=torch.int64, device=exclude.device)
    new_row[rows] = torch.arange(len(rows), device=exclude.device)
    at = new_row[exclude // n_items]
    keep = at >= 0
    return at[keep] * n_items + exclude[keep] % n_items


def check_k(
    k: object, high: int | None = None, *, what: str = "the number of items", name: str = "k"
) -> int:
    """`k` as an int when it is a whole number in [1, high], else a one-sentence
    ParameterError, e.g. "k must be between 1 and 1,682 (the number of items); got 100000."

    `high` None: no upper bound; `what` says what the bound is.
    """
    whole = isinstance(k, numbers.Real) and not isinstance(k, (bool, np.bool_))
    whole = whole and np.isfinite(float(k)) and float(k).is_integer()
    if whole and 1 <= int(k) and (high is None or int(k) <= int(high)):
        return int(k)
    shown = str(int(k)) if whole else repr(k)
    if high is None:
        raise ParameterError(f"{name} must be a whole number of at least 1; got {shown}.")
    if int(high) < 1:
        raise ParameterError(f"{name} cannot be chosen: {what} is {int(high)}; got {shown}.")
    raise ParameterError(f"{name} must be between 1 and {int(high):,} ({what}); got {shown}.")


def ranking_keys(scores: torch.Tensor, users: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """(B, n) int64 keys whose order is (score, tie key): see the module docstring."""
    return _keys(scores, tie_keys(users.to(scores.device), scores.shape[1], seed))


def tie_keys(users: torch.Tensor, n_items: int, seed: int = 0) -> torch.Tensor:
    """(B, n_items) pseudo-random int64 keys in [0, 2^31), a fixed function of (seed, u, i)."""
    i = torch.arange(n_items, device=users.device, dtype=torch.int64).reshape(1, -1)
    return _tie_hash(users.reshape(-1, 1), i, seed)


def _keys(scores: torch.Tensor, ties: torch.Tensor) -> torch.Tensor:
    """int64 keys: the score's order in the high 32 bits, the tie key in the low 31."""
    # NaN ranks last; + 0.0 turns -0.0 into 0.0, so the two zeros tie as floats compare
    s = torch.nan_to_num(scores.float(), nan=float("-inf")) + 0.0  # (B, n)
    bits = s.contiguous().view(torch.int32)
    ordered = bits ^ ((bits >> 31) & _LOW31)  # (B, n) int32, same order as the floats
    keys = ordered.to(torch.int64)  # (B, n)
    keys <<= 32
    keys |= ties  # low bits in [0, 2^31)
    return keys


def _tie_hash(users: torch.Tensor, items: torch.Tensor, seed: int) -> torch.Tensor:
    """Tie keys in [0, 2^31) of user codes (B, 1) and item codes (1 or B, n), broadcast."""
    u = users.to(torch.int64) & _LOW31
    i = items.to(torch.int64)
    h = (u * 73856093) ^ (i * 19349663) ^ ((int(seed) & _LOW31) * 83492791)  # (B, n)
    h &= _LOW31
    for _ in range(3):  # integer mixing rounds, in place; every product stays below 2^63
        h ^= h >> 16
        h *= 0x45D9F3B
        h &= _LOW31
    h ^= h >> 16
    return h


def rank_users(
    score_fn: Callable[[np.ndarray], torch.Tensor],
    users: np.ndarray,
    k: int,
    *,
    known: sp.csr_matrix | None = None,
    seed: int = 0,
    batch_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (U, k) item codes and scores for `users`, scored in batches by `score_fn`.

    `score_fn(batch of user codes) -> (B, n_items)` scores; `known` (n_users, n_items) marks
    the items to exclude per user (None: exclude nothing). Same tie rule as `top_k`.
    """
    users = np.asarray(users, dtype=np.int64).reshape(-1)
    # filled in place, not kept per batch: small results allocated between the freed score
    # blocks pin them on the C heap (the evaluator's 22 GB on 200k x 50k, issue 15)
    items_out = np.full((len(users), int(k)), -1, dtype=np.int64)
    scores_out = np.full((len(users), int(k)), -np.inf, dtype=np.float32)
    with torch.inference_mode():
        for lo in range(0, len(users), int(batch_size)):
            batch = users[lo : lo + int(batch_size)]
            scores = score_fn(batch)  # (B, n_items)
            exclude = None
            if known is not None:
                exclude = known_flat_indices(known, batch, scores.shape[1], scores.device)
            items, values = top_k(
                scores,
                k,
                users=torch.from_numpy(batch).to(scores.device),
                exclude=exclude,
                seed=seed,
            )
            items_out[lo : lo + len(batch)] = items.cpu().numpy()
            scores_out[lo : lo + len(batch)] = values.cpu().numpy()
    return items_out, scores_out


def known_flat_indices(
    known: sp.csr_matrix, rows: np.ndarray, n_items: int, device: torch.device
) -> torch.Tensor:
    """Linear indices into a (len(rows), n_items) block of the stored entries of `known[rows]`."""
    sub = known[np.asarray(rows, dtype=np.int64)]
    r, c = sub.nonzero()
    flat = r.astype(np.int64) * int(n_items) + c.astype(np.int64)
    return torch.from_numpy(flat).to(device)


class DeviceCsr:
    """A CSR matrix's indptr/indices on the device, to gather rows without host loops.

    The evaluator keeps the known and the truth matrix this way for a whole evaluation:
    `flat` gives `top_k` its exclusion indices, `contains` and `padded` the truth per batch.
    """

    def __init__(self, mat: sp.csr_matrix, device: torch.device) -> None:
        self.indptr = torch.from_numpy(mat.indptr.astype(np.int64)).to(device)
        self.indices = torch.from_numpy(mat.indices.astype(np.int64)).to(device)
        self.n_cols = mat.shape[1]
        self.device = device
        self._sorted: torch.Tensor | None = None  # built by the first `contains`

    def row_counts(self, rows: torch.Tensor) -> torch.Tensor:
        """(B,) number of stored entries per row."""
        return self.indptr[rows + 1] - self.indptr[rows]

    def entries(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(batch row, column, first output slot of the row) of every stored entry of `rows`."""
        starts = self.indptr[rows]  # (B,)
        counts = self.indptr[rows + 1] - starts  # (B,)
        total = int(counts.sum())  # one sync; sizes the outputs below
        first = torch.cumsum(counts, 0) - counts  # (B,) where each row starts in the output
        batch_row = torch.repeat_interleave(
            torch.arange(len(rows), device=self.device), counts, output_size=total
        )
        shift = torch.repeat_interleave(starts - first, counts, output_size=total)
        src = torch.arange(total, device=self.device) + shift  # positions in self.indices
        return batch_row, self.indices[src], first

    def flat(self, rows: torch.Tensor) -> torch.Tensor:
        """Linear indices into a (B, n_cols) matrix of every stored entry of `rows`."""
        r, c, _ = self.entries(rows)
        return r * self.n_cols + c

    def contains(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """(B, K) bool: is (rows[b], cols[b, j]) a stored entry? A binary search per cell.

        cols < 0 (a list's padding) give False.
        """
        if self._sorted is None:  # row * n_cols + column of every entry, ascending
            rows_of = torch.repeat_interleave(
                torch.arange(len(self.indptr) - 1, device=self.device),
                self.indptr[1:] - self.indptr[:-1],
            )
            self._sorted = torch.sort(rows_of * self.n_cols + self.indices).values
        if self._sorted.numel() == 0:
            return torch.zeros(cols.shape, dtype=torch.bool, device=self.device)
        query = rows.reshape(-1, 1) * self.n_cols + cols.clamp(min=0)  # (B, K)
        at = torch.searchsorted(self._sorted, query).clamp(max=self._sorted.numel() - 1)
        return (self._sorted[at] == query) & (cols >= 0)

    def padded(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Columns of each row left-aligned in (B, P) with a (B, P) validity mask."""
        r, c, first = self.entries(rows)
        pos = torch.arange(len(r), device=self.device) - first[r]  # slot within the row
        width = int(pos.max().item()) + 1 if pos.numel() else 1
        items = torch.zeros((len(rows), width), dtype=torch.long, device=self.device)
        valid = torch.zeros((len(rows), width), dtype=torch.bool, device=self.device)
        items[r, pos] = c
        valid[r, pos] = True
        return items, valid


#: (users x candidates) cells per chunk of `shared_top_k` (its int64 keys and hashes)
_SHARED_CELLS = 2**21


def shared_top_k(
    scores: torch.Tensor, k: int, *, users: torch.Tensor, known: DeviceCsr, seed: int = 0
) -> torch.Tensor:
    """`top_k`'s (U, k) lists when every user has the same finite (n_items,) `scores`.

    The catalogue is sorted once. A user's candidates are the first k + |known| + _MARGIN
    items of that order, extended to the end of the tie group at the cut (every item scoring
    at least the cut's score), so after dropping the known items (via each item's position
    in the order, O(known)) the top k by the (score, tie key) rule among them is the rule's
    list. Users are taken in chunks of similar width: cost ~ users x (k + |known|), not
    users x n_items. Rows with fewer than k unknown items end in -1, as in `top_k`.
    """
    n_items = scores.shape[0]
    k = check_k(k)
    k_eff = min(k, n_items)
    device = scores.device
    raw = scores.float().reshape(-1)
    order = torch.argsort(raw, descending=True, stable=True)  # (n,) the global order
    ordered = raw[order]  # (n,) descending
    position = torch.empty_like(order)
    position[order] = torch.arange(n_items, device=device)  # item -> place in the order
    users = users.to(device)
    want = (known.row_counts(users) + k_eff + _MARGIN).clamp(max=n_items)  # (U,)
    cut = ordered[(want - 1).clamp(min=0)]
    # every item scoring >= the cut: the tie group at the cut is taken whole
    width = n_items - torch.searchsorted(ordered.flip(0).contiguous(), cut, right=False)
    by_width = torch.argsort(width, stable=True)
    widths = width[by_width].cpu().numpy()
    score_keys = _keys(
        ordered.reshape(1, -1), torch.zeros((1, 1), dtype=torch.int64, device=device)
    )
    out = torch.full((len(users), k_eff), -1, dtype=torch.int64, device=device)
    start = 0
    while start < len(users):
        end = min(len(users), start + max(1, _SHARED_CELLS // max(1, int(widths[start]))))
        end = min(end, start + max(1, _SHARED_CELLS // max(1, int(widths[end - 1]))))
        span = int(widths[end - 1])
        at = by_width[start:end]
        rows = users[at]  # (R,)
        keys = score_keys[:, :span] | _tie_hash(
            rows.reshape(-1, 1), order[:span].reshape(1, -1), seed
        )
        keys.masked_fill_(torch.arange(span, device=device) >= width[at].reshape(-1, 1), _EXCLUDED)
        r, c, _ = known.entries(rows)
        p = position[c]
        inside = p < span
        keys[r[inside], p[inside]] = _EXCLUDED  # the user's known items
        top = torch.topk(keys, k_eff, dim=1)
        out[at] = torch.where(top.values != _EXCLUDED, order[top.indices], -1)
        start = end
    if k_eff < k:
        out = torch.nn.functional.pad(out, (0, k - k_eff), value=-1)
    return out
