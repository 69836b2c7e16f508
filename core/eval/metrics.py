"""Ranking, rating and beyond-accuracy metrics as pure functions over tensors.

Every top-K function takes `hits` (U, K) float, 1.0 where the item at rank r (0-based
column r) is relevant, and returns PER-USER values (U,); the evaluator averages them.
Tensors may live on any device; results stay there.

Edge case shared by all of them: users with an empty truth set (n_truth == 0) are
excluded by the evaluator before these functions are called (their recall/NDCG would be
0/0). The functions clamp denominators so such a row gives 0 instead of NaN, but callers
must not average those rows in.

Keys used by the evaluator are lower-case `name@k`: recall@k, precision@k, ndcg@k, hit@k,
mrr@k, map@k, map_trec@k, auc, rmse, mae, coverage@k, novelty@k, diversity@k, avg_pop@k,
tail_share@k, gini@k.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: up to this many positives per user, AUC counts by comparison passes instead of a sort
_COMPARE_MAX_POSITIVES = 4
#: the top-k metric names of `name@k` keys
TOPK_METRICS = ("recall", "precision", "ndcg", "hit", "mrr", "map", "map_trec")


def recall(hits: torch.Tensor, n_truth: torch.Tensor, *, k: int) -> torch.Tensor:
    """Recall@k = |relevant in top k| / |truth|.  (U, K), (U,) -> (U,)

    Denominator is the whole truth set (not min(n_truth, k)), as in RecBole, so a user
    with more than k relevant items cannot reach 1.
    """
    return hits[:, :k].sum(1) / n_truth.clamp(min=1).to(hits.dtype)


def precision(hits: torch.Tensor, *, k: int) -> torch.Tensor:
    """Precision@k = |relevant in top k| / k (k is the nominal cut even if fewer ranks exist)."""
    return hits[:, :k].sum(1) / float(k)


def hit_rate(hits: torch.Tensor, *, k: int) -> torch.Tensor:
    """Hit@k = 1 if any relevant item is in the top k, else 0."""
    return (hits[:, :k].sum(1) > 0).to(hits.dtype)


def ndcg(hits: torch.Tensor, n_truth: torch.Tensor, *, k: int) -> torch.Tensor:
    """NDCG@k with binary gains.

    DCG = sum_{r<k} hits[r] / log2(r + 2);  IDCG = sum_{r < min(n_truth, k)} 1 / log2(r + 2);
    NDCG = DCG / IDCG, in [0, 1]; 1 exactly when the first min(n_truth, k) ranks are hits.
    """
    h = hits[:, :k]
    disc = _discounts(k, hits.device, hits.dtype)  # (k,)
    dcg = (h * disc[: h.shape[1]]).sum(1)
    ideal_cum = torch.cumsum(disc, 0)  # ideal_cum[j] = IDCG with j + 1 relevant items
    n_ideal = n_truth.clamp(min=1, max=k).long() - 1
    return dcg / ideal_cum[n_ideal]


def mrr(hits: torch.Tensor, *, k: int) -> torch.Tensor:
    """MRR@k = 1 / (1-based rank of the first relevant item in the top k), 0 if none."""
    h = hits[:, :k]
    inv_rank = 1.0 / torch.arange(1, h.shape[1] + 1, device=h.device, dtype=h.dtype)
    if h.shape[1] == 0:
        return torch.zeros(h.shape[0], device=h.device, dtype=h.dtype)
    # 1/r decreases with r, so the max over hit ranks is the first hit
    return (h * inv_rank).max(1).values


def average_precision(hits: torch.Tensor, n_truth: torch.Tensor, *, k: int) -> torch.Tensor:
    """AP@k = sum_{r<k} P@(r+1) * hits[r] / min(n_truth, k)  (map@k is its mean over users).

    The RecBole convention: normalising by min(n_truth, k) makes a perfect top-k score 1
    even when n_truth > k. trec_eval divides by n_truth instead: `average_precision_trec`.
    """
    return _precision_sum(hits, k) / n_truth.clamp(min=1, max=k).to(hits.dtype)


def average_precision_trec(hits: torch.Tensor, n_truth: torch.Tensor, *, k: int) -> torch.Tensor:
    """AP@k = sum_{r<k} P@(r+1) * hits[r] / n_truth  (map_trec@k is its mean over users).

    The trec_eval (and ranx, pytrec_eval) convention: relevant items outside the top k
    count as missed, so a user with more than k relevant items cannot reach 1. Equal to
    `average_precision` whenever n_truth <= k (e.g. leave-one-out).
    """
    return _precision_sum(hits, k) / n_truth.clamp(min=1).to(hits.dtype)


def positive_rank_counts(
    scores: torch.Tensor,
    pos_items: torch.Tensor,
    pos_valid: torch.Tensor,
    n_excluded: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per user: how many candidates score strictly below / equal to each positive, summed.

    scores (B, n_items) with excluded (known) items already set to -inf; pos_items (B, P)
    item codes of the positives, padded; pos_valid (B, P) bool, False on padding.
    Returns (n_below, n_tied), each (B,): n_below sums over positives the candidates with a
    lower score; n_tied sums the *other* candidates with an equal score. -inf items are not
    candidates; `n_excluded` (B,) is their number per row when the caller knows it.
    Cost: one sort of (B, n_items) and a batched binary search, or 2P comparison passes
    when P is small.
    """
    pos_scores = scores.gather(1, pos_items)  # (B, P)
    if pos_items.shape[1] <= _COMPARE_MAX_POSITIVES:
        # few positives per user (leave-one-out): P comparison passes beat a full sort
        lt = torch.stack(
            [_count(scores < pos_scores[:, [j]]) for j in range(pos_items.shape[1])], 1
        )
        eq = torch.stack(
            [_count(scores == pos_scores[:, [j]]) for j in range(pos_items.shape[1])], 1
        )
        le = lt + eq  # (B, P)
    else:
        ordered = torch.sort(scores, dim=1).values  # (B, n_items) ascending
        lt = torch.searchsorted(ordered, pos_scores, right=False)  # (B, P) count < s
        le = torch.searchsorted(ordered, pos_scores, right=True)  # (B, P) count <= s
    if n_excluded is None:
        n_excluded = _count(torch.isneginf(scores))
    below = (lt - n_excluded.reshape(-1, 1)).clamp(min=0)
    tied = (le - lt - 1).clamp(min=0)
    below = torch.where(pos_valid, below, 0).sum(1)  # int64 sums stay exact on any device
    tied = torch.where(pos_valid, tied, 0).sum(1)
    dtype = real_dtype(scores.device)
    return below.to(dtype), tied.to(dtype)


def auc(
    n_below: torch.Tensor,
    n_tied: torch.Tensor,
    n_truth: torch.Tensor,
    n_candidates: torch.Tensor,
) -> torch.Tensor:
    """Per-user AUC over the full candidate list (all items not excluded).

    AUC = P(score(pos) > score(neg)) with ties counting 1/2, over all (positive, negative)
    pairs, where negatives are the candidates that are not positives. From the counts of
    `positive_rank_counts` (which compare each positive with every candidate, positives
    included): pairs of positives contribute exactly n_truth (n_truth - 1) / 2 in total, so
    AUC = (n_below + n_tied / 2 - P (P - 1) / 2) / (P * (n_candidates - P)), P = n_truth.
    Users with no negatives (every candidate is relevant) get NaN; the evaluator skips NaN.
    """
    p = n_truth.to(n_below.dtype)
    n_neg = n_candidates.to(n_below.dtype) - p
    num = n_below + 0.5 * n_tied - p * (p - 1) / 2
    den = p * n_neg
    out = num / den.clamp(min=1)
    return torch.where(den > 0, out, torch.full_like(out, float("nan")))


def rmse(pred: np.ndarray, target: np.ndarray) -> float:
    """Root mean squared error over all (user, item) pairs; NaN when there are none."""
    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    return float(np.sqrt(np.mean((pred - target) ** 2))) if len(pred) else float("nan")


def mae(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute error over all (user, item) pairs; NaN when there are none."""
    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    return float(np.mean(np.abs(pred - target))) if len(pred) else float("nan")


def gini(counts: torch.Tensor | np.ndarray) -> float:
    """Gini coefficient of non-negative counts (e.g. how often each item is recommended).

    G = sum_i (2 i - n - 1) x_(i) / (n * sum x), x sorted ascending, i = 1..n.
    0 when every item is recommended equally often; (n - 1) / n when one item takes all.
    All-zero counts give 0.
    """
    x = torch.as_tensor(counts).detach().cpu().to(torch.float64).flatten().sort().values
    n, total = x.numel(), float(x.sum())
    if n == 0 or total == 0.0:
        return 0.0
    i = torch.arange(1, n + 1, dtype=torch.float64, device=x.device)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def novelty(
    top_items: torch.Tensor, pop_share: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean self-information of each list: mean over its items of -log2(pop_share[item]).

    top_items (U, K) item codes; pop_share (n_items,) share of users who interacted with
    each item, in (0, 1] (the caller floors zero shares, see `beyond.popularity`);
    valid (U, K) bool marks real entries (lists shorter than K). Empty lists give NaN.
    """
    info = -torch.log2(pop_share.to(real_dtype(pop_share.device)))[top_items]  # (U, K)
    return masked_mean(info, valid)


def intra_list_diversity(
    top_items: torch.Tensor,
    *,
    embeddings: torch.Tensor | None = None,
    categories: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-list diversity over all unordered pairs of its items.

    With `embeddings` (n_items, d): 1 - mean pairwise cosine similarity (range [0, 2]).
    Else with `categories` (n_items,) integer codes: share of pairs whose categories differ.
    Lists with fewer than two valid items give NaN.

    Computed without the (U, K, K) pair tensor, in O(U K d) memory: over the n valid unit
    vectors v of a list, the sum of cosines of its n (n - 1) ordered pairs is
    |sum v|^2 - sum |v|^2, and the number of same-category ordered pairs is
    sum_c n_c^2 - n (n_c = the list's items in category c).
    """
    if valid is None:
        valid = torch.ones_like(top_items, dtype=torch.bool)
    dtype = real_dtype(top_items.device)
    n = valid.sum(1).to(dtype)  # (U,)
    n_pairs = n * (n - 1)  # ordered pairs
    if embeddings is not None:
        emb = torch.nn.functional.normalize(embeddings.to(torch.float32), dim=1).to(dtype)
        vecs = emb[top_items] * valid[:, :, None].to(dtype)  # (U, K, d), zero where invalid
        total = vecs.sum(1)  # (U, d)
        same = (total * total).sum(1) - (vecs * vecs).sum((1, 2))  # (U,) sum of pair cosines
    elif categories is not None:
        if top_items.numel() == 0:
            return torch.full((top_items.shape[0],), torch.nan, dtype=dtype, device=n.device)
        cats = categories[top_items]  # (U, K)
        # invalid entries get a code of their own: each is a run of one, matching nothing
        own = cats.max() + 1 + torch.arange(cats.numel(), device=cats.device).view_as(cats)
        cats = torch.where(valid, cats, own).sort(1).values.contiguous()  # (U, K)
        run = torch.searchsorted(cats, cats, right=True) - torch.searchsorted(cats, cats)
        n_invalid = cats.shape[1] - n  # (U,)
        squares = run.sum(1).to(dtype) - n_invalid  # (U,) sum_c n_c^2 over the valid entries
        differ = n_pairs - (squares - n)  # ordered pairs whose categories differ
        return torch.where(n_pairs > 0, differ / n_pairs.clamp(min=1), torch.nan)
    else:
        raise ValueError("intra_list_diversity needs embeddings or categories")
    return torch.where(n_pairs > 0, 1.0 - same / n_pairs.clamp(min=1), torch.nan)


def real_dtype(device: torch.device) -> torch.dtype:
    """float64 for exact averages, except on Apple GPUs (MPS has no float64)."""
    return torch.float32 if device.type == "mps" else torch.float64


def masked_mean(values: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Row means of (U, K) values over the entries where `valid` is True; NaN for none."""
    if valid is None:
        return values.mean(1)
    v = valid.to(values.dtype)
    n = v.sum(1)
    return torch.where(n > 0, (values * v).sum(1) / n.clamp(min=1), torch.nan)


def _precision_sum(hits: torch.Tensor, k: int) -> torch.Tensor:
    """(U,) sum over the hit ranks r < k of precision at r + 1: AP@k's numerator."""
    h = hits[:, :k]
    ranks = torch.arange(1, h.shape[1] + 1, device=h.device, dtype=h.dtype)
    return (torch.cumsum(h, 1) / ranks * h).sum(1)  # (U,)


def _count(mask: torch.Tensor) -> torch.Tensor:
    """Row counts of a (B, n) bool mask as int64 (int32 accumulation is much faster on CPU)."""
    return mask.sum(1, dtype=torch.int32).long()


def _discounts(k: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """1 / log2(r + 2) for ranks r = 0..k-1."""
    ranks = torch.arange(k, device=device, dtype=real_dtype(device))
    return (1.0 / torch.log2(ranks + 2.0)).to(dtype)


def ideal_dcg(n_truth: int, k: int) -> float:
    """IDCG for `n_truth` relevant items at cut k (a helper for tests and docs)."""
    return sum(1.0 / math.log2(r + 2) for r in range(min(n_truth, k)))
