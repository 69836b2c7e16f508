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
- the same seed gives the same lists on every call, device and batch size.

How: a float32 score maps to an int32 that sorts the same way (the IEEE-754 sign trick); it
fills the high 32 bits of an int64 whose low 31 bits are the tie key, and one `torch.topk`
over the int64 is an exact lexicographic (score, key) top-k. Excluded items get the lowest
int64, below any real score (also -inf or NaN ones), and come back as -1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

#: int64 key of an excluded item: below every real (score, tie) key
_EXCLUDED = torch.iinfo(torch.int64).min
_LOW31 = 0x7FFFFFFF


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
    n_rows, n_items = scores.shape
    k = int(k)
    k_eff = min(k, n_items)
    keys = ranking_keys(scores, users, seed)  # (B, n) int64
    if exclude is not None:
        if exclude.dtype == torch.bool:
            keys = keys.masked_fill(exclude.to(keys.device), _EXCLUDED)
        else:
            keys.view(-1).index_fill_(0, exclude.to(keys.device), _EXCLUDED)
    top = torch.topk(keys, k_eff, dim=1)  # (B, k_eff)
    real = top.values != _EXCLUDED
    items = torch.where(real, top.indices, -1)
    values = scores.float().gather(1, top.indices).masked_fill(~real, float("-inf"))
    if k_eff < k:  # catalogue smaller than k: pad so every row has k ranks
        items = torch.nn.functional.pad(items, (0, k - k_eff), value=-1)
        values = torch.nn.functional.pad(values, (0, k - k_eff), value=float("-inf"))
    return items, values


def ranking_keys(scores: torch.Tensor, users: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """(B, n) int64 keys whose order is (score, tie key): see the module docstring."""
    s = torch.nan_to_num(scores.float(), nan=float("-inf"))  # (B, n) NaN ranks last
    bits = s.contiguous().view(torch.int32)
    ordered = bits ^ ((bits >> 31) & _LOW31)  # (B, n) int32, same order as the floats
    tie = tie_keys(users.to(scores.device), scores.shape[1], seed)  # (B, n) in [0, 2^31)
    return (ordered.to(torch.int64) << 32) | tie


def tie_keys(users: torch.Tensor, n_items: int, seed: int = 0) -> torch.Tensor:
    """(B, n_items) pseudo-random int64 keys in [0, 2^31), a fixed function of (seed, u, i)."""
    u = users.reshape(-1, 1).to(torch.int64) & _LOW31
    i = torch.arange(n_items, device=users.device, dtype=torch.int64).reshape(1, -1)
    h = (u * 73856093) ^ (i * 19349663) ^ ((int(seed) & _LOW31) * 83492791)
    h = h & _LOW31
    for _ in range(3):  # integer mixing rounds; every product stays below 2^63
        h = ((h ^ (h >> 16)) * 0x45D9F3B) & _LOW31
    return h ^ (h >> 16)


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
    items_out, scores_out = [], []
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
            items_out.append(items.cpu().numpy())
            scores_out.append(values.cpu().numpy())
    if not items_out:
        return np.zeros((0, int(k)), dtype=np.int64), np.zeros((0, int(k)), dtype=np.float32)
    return np.concatenate(items_out), np.concatenate(scores_out)


def known_flat_indices(
    known: sp.csr_matrix, rows: np.ndarray, n_items: int, device: torch.device
) -> torch.Tensor:
    """Linear indices into a (len(rows), n_items) block of the stored entries of `known[rows]`."""
    sub = known[np.asarray(rows, dtype=np.int64)]
    r, c = sub.nonzero()
    flat = r.astype(np.int64) * int(n_items) + c.astype(np.int64)
    return torch.from_numpy(flat).to(device)
