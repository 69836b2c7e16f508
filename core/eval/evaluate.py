"""Full-ranking evaluation: every user is ranked against the whole catalogue, on the device.

Rules (DESIGN.md, "Evaluation rules"): no sampled metrics. Items a user is already known to
have interacted with are excluded from the ranking: training items when scoring the
validation part, training *and* validation items when scoring the test part
(`split.known_for(part)`). Lists come from `core.eval.ranking.top_k`, the routine that also
makes `recommend` and the stored recs.parquet, with the same seeded tie rule (seed = the
split's seed, i.e. the run's), so the list a user sees is the list that was scored.

Which users count (all four numbers are in `EvalResult.counts()` and the run record):
- n_users: scored — truth is the part's items minus the known ones, and it is not empty.
- n_skipped: had items in the part, all already known (possible with random splits); not
  scored.
- n_unevaluable: no items in the part at all — under leave-last-out, users with fewer than
  3 interactions (they stay in training); under a temporal cut, users with nothing in the
  window. Not scored.
- n_no_history: scored users with no known interactions (possible under a temporal cut).
  Their scores carry no information, so their lists are the tie rule's random order; they
  stay in the averages and are their own segment ("history" in `segments`).

`evaluate` gives the full report (per-user table, segments, beyond-accuracy metrics);
`ranking_metric` is the fast path the training loop calls each epoch for early stopping.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from core.data import schema as S
from core.data.dataset import Interactions
from core.data.split import Split
from core.device import available_memory_bytes
from core.errors import ParameterError
from core.eval import metrics as M
from core.eval.beyond import beyond_metrics, cold_item_recall, segment_table
from core.eval.ranking import DeviceCsr, check_k, rank_block, shared_top_k
from core.protocols import PredictsRatings, UserIndependentScores

log = logging.getLogger(__name__)

KS = (5, 10, 20)
#: at most this many bytes per batch (scores and the ranking's buffers), whatever is free:
#: bigger blocks ranked no faster on a 2-core CPU (444 x 50k cells: copies ~2x slower per cell
#: than 128 x 50k, measured at nice 19 on a loaded machine)
MEMORY_BUDGET_BYTES = 128 * 2**20
#: the share of the free memory (MemAvailable, or free GPU memory) one batch may take
FREE_SHARE = 0.125
#: bytes the evaluator's (users, K) lists and their per-cut copies may take together
LIST_BUDGET_BYTES = 2 * 2**30
#: bytes per (user, rank) cell of those: top int64, hits float64, the beyond-accuracy masks,
#: gathers and per-cut slices
_BYTES_PER_LIST_CELL = 48
#: bytes per (user, item) cell in one batch: the model's scores (f32, or a float64 block and
#: its f32 copy), the masked f32 copy `ranking.rank_block` ranks, AUC's bool comparison
#: buffers; a sort for AUC (more than 4 positives per user) adds ~12 more, within the margin
_BYTES_PER_CELL = 24
#: shared scores (`_shared_auc_counts`): up to this many positives per user, one comparison
#: pass over the known entries per positive; more, one sort of the known entries' keys
SHARED_COMPARE_MAX_POSITIVES = 4
_EXCLUDED = {
    "valid": "Excluded from ranking: each user's training items.",
    "test": "Excluded from ranking: each user's training and validation items.",
}


@dataclass
class EvalResult:
    """Everything one evaluation produced. `per_user` rows follow `top_items` rows."""

    part: str
    metrics: dict[str, float]
    per_user: pd.DataFrame  # user_code, n_truth, n_known, then per-user metric columns
    segments: pd.DataFrame  # segment_kind, segment, n_users, then mean metric columns
    excluded: str  # which items were excluded from the ranking, as a sentence
    top_items: np.ndarray  # (U_eval, max K) top-ranked item codes; -1 where none was left
    #: (U_eval, max K) float32 scores of top_items (-inf where none was left): with
    #: `list_length` the stored recommendation lists come from this pass, not a new ranking
    top_scores: np.ndarray | None = None
    n_users: int = 0  # users scored
    n_skipped: int = 0  # users with truth in this part that were all already known
    n_unevaluable: int = 0  # users with no interaction in this part at all
    n_no_history: int = 0  # scored users with no known interaction
    notes: list[str] = field(default_factory=list)  # sentences for the UI (definitions)

    def counts(self) -> dict[str, int]:
        """Who was scored and who was not, and why (see the module docstring)."""
        return {
            "n_users": self.n_users,
            "n_skipped": self.n_skipped,
            "n_unevaluable": self.n_unevaluable,
            "n_no_history": self.n_no_history,
        }

    def summary(self) -> dict:
        """A JSON-ready record: metrics, counts and the sentences."""
        return {
            "part": self.part,
            "metrics": {k: _json_float(v) for k, v in self.metrics.items()},
            **self.counts(),
            "excluded": self.excluded,
            "notes": list(self.notes),
        }


def evaluate(
    model,
    split: Split,
    part: str = "test",
    ks=KS,
    batch_size: int | None = None,
    beyond: bool = True,
    *,
    seed: int | None = None,
    list_length: int | None = None,
) -> EvalResult:
    """Rank all items for every user with truth in `part` and compute every metric.

    Calls `model.set_history(split.known_for(part))` first, so the model scores from the
    same history whose items are excluded. `batch_size` (users per batch) defaults to what
    keeps one batch's scores and sort buffers within MEMORY_BUDGET_BYTES. `seed` seeds the
    tie rule of `core.eval.ranking`; None uses the split's seed (the run's seed), which is
    what the stored recommendation lists use too. A cut-off k above the catalogue (other
    than the standard KS) or above what LIST_BUDGET_BYTES holds for the scored users is a
    ParameterError naming the bound. `list_length` also keeps each scored user's first
    `list_length` items (capped at the catalogue) and their scores in `top_items` /
    `top_scores`: the run's stored lists, taken from this one ranking pass instead of a
    second scoring of every user (on a 10M-row log that pass cost as much as the evaluation).
    """
    if part not in _EXCLUDED:
        raise ParameterError(f"Evaluation part '{part}' is unknown; use 'valid' or 'test'.")
    ks = _check_ks(ks)
    seed = int(split.seed if seed is None else seed)
    known = split.known_for(part)
    truth = split.part(part)
    model.set_history(known)
    truth_csr = _truth_minus_known(truth, known)
    n_truth_all = np.diff(truth_csr.indptr)
    users = np.flatnonzero(n_truth_all > 0)
    ks = _bounded_ks(ks, truth.n_items, len(users))
    n_in_part = int(np.count_nonzero(np.diff(truth.csr().indptr) > 0))
    known_csr = known.csr()
    n_known = np.diff(known_csr.indptr)[users]
    counts = {
        "n_users": len(users),
        "n_skipped": n_in_part - len(users),
        "n_unevaluable": truth.n_users - n_in_part,
        "n_no_history": int(np.count_nonzero(n_known == 0)),
    }
    notes = _count_notes(part, split.method, **counts)
    if len(users) == 0:
        log.warning("no user has %s items left to rank (%s)", part, counts)
        notes.append(f"No user had {part} items left to rank, so there are no metrics.")
        return EvalResult(
            part=part,
            metrics={"n_users": 0.0},
            per_user=pd.DataFrame({S.USER: [], "n_truth": [], "n_known": []}, dtype=np.int64),
            segments=pd.DataFrame({"segment_kind": [], "segment": [], "n_users": []}),
            excluded=_EXCLUDED[part],
            top_items=np.zeros((0, max(ks)), dtype=np.int64),
            notes=notes,
            **counts,
        )
    # the stored lists ride along while they fit LIST_BUDGET_BYTES; past it (about 900k
    # scored users at 50) they are left to a second ranking pass (top_scores stays None)
    fits = LIST_BUDGET_BYTES // (max(1, len(users)) * _BYTES_PER_LIST_CELL)
    width = max(max(ks), min(int(list_length or 0), truth.n_items, fits))
    ranked = _rank(model, users, truth_csr, known_csr, width, batch_size, with_auc=True, seed=seed)
    hits, top, n_truth = ranked["hits"], ranked["top"], ranked["n_truth"]

    per_user = pd.DataFrame(
        {S.USER: users.astype(np.int64), "n_truth": n_truth_all[users], "n_known": n_known}
    )
    columns = {}
    for k in ks:
        columns.update(cut_columns(hits, n_truth, k))
    columns["auc"] = M.auc(ranked["below"], ranked["tied"], n_truth, ranked["n_cand"])
    for name, values in columns.items():
        per_user[name] = values.cpu().double().numpy()

    metrics = {name: _nanmean(per_user[name]) for name in columns}
    metrics.update(cold_item_recall(top, hits, truth_csr[users], split.train, ks))
    metrics.update(_rating_errors(model, truth))
    if beyond:
        extra, extra_per_user, extra_notes = beyond_metrics(model, top, known, truth, ks)
        metrics.update(extra)
        for name, values in extra_per_user.items():
            per_user[name] = values
        notes.extend(extra_notes)
    segments, segment_notes = segment_table(per_user, truth_csr[users], split, truth)
    notes.extend(segment_notes)
    metrics["n_users"] = float(len(users))
    return EvalResult(
        part=part,
        # undefined values (no cold items, no negatives) are left out so JSON stays valid
        metrics={k: v for k, v in metrics.items() if np.isfinite(v)},
        per_user=per_user,
        segments=segments,
        excluded=_EXCLUDED[part],
        top_items=top.cpu().numpy(),
        top_scores=ranked["scores"].float().cpu().numpy() if list_length else None,
        notes=notes,
        **counts,
    )


def ranking_metric(
    model,
    truth: Interactions,
    known: Interactions,
    *,
    k: int = 10,
    metric: str = "ndcg",
    max_users: int | None = None,
    seed: int = 0,
) -> float:
    """Mean of one top-k metric (a name of `metrics.TOPK_METRICS`, or 'auc').

    The fast path for early stopping: does NOT call `set_history` (the caller makes the
    model's history equal `known`), builds no tables. `max_users` scores a fixed random
    subset (seed 0) of the users with truth, for speed on large data; `seed` seeds the tie
    rule. Returns 0.0 when no user has truth left after excluding known items.
    """
    if metric not in M.TOPK_METRICS and metric != "auc":
        allowed = ", ".join((*M.TOPK_METRICS, "auc"))
        raise ParameterError(f"Metric '{metric}' is unknown; use one of {allowed}.")
    k = _check_ks((k,))[0]
    truth_csr = _truth_minus_known(truth, known)
    users = np.flatnonzero(np.diff(truth_csr.indptr) > 0)
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(0).choice(users, size=int(max_users), replace=False))
    k = _bounded_ks((k,), truth.n_items, len(users))[0]
    if len(users) == 0:
        return 0.0
    ranked = _rank(
        model, users, truth_csr, known.csr(), k, None, with_auc=metric == "auc", seed=seed
    )
    if metric == "auc":
        values = M.auc(ranked["below"], ranked["tied"], ranked["n_truth"], ranked["n_cand"])
    else:
        values = cut_columns(ranked["hits"], ranked["n_truth"], k)[f"{metric}@{k}"]
    return _nanmean(values.cpu().double().numpy())


def cut_columns(hits: torch.Tensor, n_truth: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    """The top-k metrics at cut k, keyed `name@k`, each (U,).

    map@k normalises by min(|T|, k) as RecBole does; map_trec@k by |T| as trec_eval does.
    """
    return {
        f"ndcg@{k}": M.ndcg(hits, n_truth, k=k),
        f"recall@{k}": M.recall(hits, n_truth, k=k),
        f"hit@{k}": M.hit_rate(hits, k=k),
        f"mrr@{k}": M.mrr(hits, k=k),
        f"map@{k}": M.average_precision(hits, n_truth, k=k),
        f"map_trec@{k}": M.average_precision_trec(hits, n_truth, k=k),
        f"precision@{k}": M.precision(hits, k=k),
    }


def auto_batch_size(
    n_items: int, budget_bytes: int = MEMORY_BUDGET_BYTES, device: torch.device | None = None
) -> int:
    """Users per batch so that one (B, n_items) block and its buffers fit the budget.

    With `device`, the budget is also at most FREE_SHARE of the memory free there now
    (free GPU memory on CUDA, MemAvailable otherwise), so a busy machine gets small blocks.
    """
    if device is not None:
        budget_bytes = min(budget_bytes, int(FREE_SHARE * available_memory_bytes(device)))
    return max(1, budget_bytes // (max(1, n_items) * _BYTES_PER_CELL))


# -- the hot path ----------------------------------------------------------------------------


def _rank(
    model,
    users: np.ndarray,
    truth_csr: sp.csr_matrix,
    known_csr: sp.csr_matrix,
    k_max: int,
    batch_size: int | None,
    *,
    with_auc: bool,
    seed: int,
) -> dict[str, torch.Tensor]:
    """Score `users` in batches and rank them with `ranking.top_k` (known items excluded).

    Returns tensors on the scores' device: hits (U, K) float, top (U, K) long (-1 where a
    user had fewer than K candidates), scores (U, K) float32 of those (-inf past the last),
    n_truth (U,), and with_auc: below, tied, n_cand (U,).
    """
    n_items = truth_csr.shape[1]
    fixed = int(batch_size) if batch_size else None
    if fixed is not None and fixed < 1:
        raise ParameterError(f"batch_size must be a positive whole number; got {batch_size!r}.")
    shared = _shared_scores(model, n_items)
    if shared is not None:  # the same scores for every user: rank the catalogue once
        return _rank_shared(
            shared, users, truth_csr, known_csr, k_max, with_auc=with_auc, seed=seed
        )
    out: dict[str, torch.Tensor] = {}
    known_dev = truth_dev = None
    device = torch.device("cpu")  # where the scores live, known after the first block
    start = 0
    with torch.inference_mode():
        while start < len(users):
            # each block sized on the memory free now where the scores live
            bs = fixed or auto_batch_size(n_items, device=device)
            batch = torch.from_numpy(users[start : start + bs].astype(np.int64))
            start += len(batch)
            # contiguous whatever the model returns (a transposed or sliced block would break
            # the flat exclusion below: issue 15's item-kNN crash on a 50k-item catalogue)
            scores = model.score(batch).contiguous()  # (B, n_items)
            if known_dev is None:
                known_dev = DeviceCsr(known_csr, scores.device)
                truth_dev = DeviceCsr(truth_csr, scores.device)
                device = scores.device
            rows = batch.to(scores.device)
            excluded = known_dev.flat(rows)  # linear indices into the (B, n_items) block
            # the lists of `top_k` (the same routine and tie rule) and the masked block
            ranked = rank_block(scores, k_max, users=rows, exclude=excluded, seed=seed)
            top = ranked.items  # (B, K), -1 past the last candidate
            hits = truth_dev.contains(rows, top) & (top >= 0)  # (B, K), no dense truth mask
            parts = {
                "hits": hits.to(M.real_dtype(scores.device)),
                "top": top,
                "scores": ranked.scores,
                "n_truth": truth_dev.row_counts(rows),
            }
            if with_auc:
                parts.update(_auc_counts(scores, ranked.masked, known_dev, truth_dev, rows))
            del scores, ranked
            # written into tensors made once for every user: small per-block results kept in
            # a list were interleaved with the freed score blocks on the C heap, which then
            # could not shrink (22 GB resident after ranking 200k users x 50k items)
            lo = start - len(batch)
            for name, value in parts.items():
                if name not in out:
                    out[name] = value.new_empty((len(users), *value.shape[1:]))
                out[name][lo:start] = value
    return out


def _shared_scores(model, n_items: int) -> torch.Tensor | None:
    """The model's one (n_items,) float32 score row when it declares UserIndependentScores
    and every score is finite above the lowest float (else None: the block path, whose
    NaN/inf rules then apply unchanged)."""
    if not isinstance(model, UserIndependentScores):
        return None
    with torch.inference_mode():
        scores = model.catalogue_scores().float().reshape(-1)
    if scores.numel() != n_items:
        return None
    ok = torch.isfinite(scores) & (scores > torch.finfo(torch.float32).min)
    return scores if bool(ok.all()) else None


def _rank_shared(
    scores: torch.Tensor,
    users: np.ndarray,
    truth_csr: sp.csr_matrix,
    known_csr: sp.csr_matrix,
    k_max: int,
    *,
    with_auc: bool,
    seed: int,
) -> dict[str, torch.Tensor]:
    """`_rank`'s tensors for scores shared by all users, without a (users, items) block.

    Lists from `ranking.shared_top_k`; AUC's counts from the sorted catalogue by binary
    search (items below / equal to each positive) minus the user's known items there.
    """
    device = scores.device
    with torch.inference_mode():
        known_dev = DeviceCsr(known_csr, device)
        truth_dev = DeviceCsr(truth_csr, device)
        rows = torch.from_numpy(users.astype(np.int64)).to(device)
        top = shared_top_k(scores, k_max, users=rows, known=known_dev, seed=seed)
        hits = truth_dev.contains(rows, top) & (top >= 0)
        listed = scores.float()[top.clamp(min=0)].masked_fill_(top < 0, float("-inf"))
        out = {
            "hits": hits.to(M.real_dtype(device)),
            "top": top,
            "scores": listed,  # (U, K) float32, -inf past the last candidate
            "n_truth": truth_dev.row_counts(rows),
        }
        if with_auc:
            ascending = torch.sort(scores).values
            parts = [
                _shared_auc_counts(scores, ascending, known_dev, truth_dev, rows[lo : lo + 8192])
                for lo in range(0, len(rows), 8192)
            ]
            for name in parts[0]:
                out[name] = torch.cat([part[name] for part in parts])
    return out


def _shared_auc_counts(scores, ascending, known_dev, truth_dev, rows) -> dict[str, torch.Tensor]:
    """`_auc_counts` for shared finite scores, without a (users, items) block.

    An item's level is the number of catalogue items scoring below it (binary search in
    `ascending`), so equal scores share a level. Per positive: the catalogue's items below /
    equal to it, minus the user's known items below / equal, counted by binary search in
    one sorted array of (row, level) keys of the known entries (O((known + P) log known)),
    or with few positives by comparing each known entry with them (O(known * P)).
    """
    n_known = known_dev.row_counts(rows)  # (B,)
    pos_items, pos_valid = truth_dev.padded(rows)
    values = scores[pos_items]  # (B, P)
    lt = torch.searchsorted(ascending, values, right=False)  # items scoring below: the level
    le = torch.searchsorted(ascending, values, right=True)
    r, c, _ = known_dev.entries(rows)
    if pos_items.shape[1] <= SHARED_COMPARE_MAX_POSITIVES:
        # few positives (leave-one-out): one comparison pass over the known entries each
        known_lt, known_le = torch.zeros_like(lt), torch.zeros_like(lt)
        known_scores = scores[c]
        for j in range(pos_items.shape[1]):
            value = values[r, j]
            known_lt[:, j].index_add_(0, r, (known_scores < value).long())
            known_le[:, j].index_add_(0, r, (known_scores <= value).long())
    else:  # one sorted array of (row, level) keys, a binary search per positive
        stride = scores.numel() + 1
        level = torch.searchsorted(ascending, scores[c], right=False)
        keys = torch.sort(r * stride + level).values
        base = torch.arange(len(rows), device=rows.device).reshape(-1, 1) * stride  # (B, 1)
        start = torch.searchsorted(keys, base, right=False)
        known_lt = torch.searchsorted(keys, base + lt, right=False) - start  # (B, P)
        known_le = torch.searchsorted(keys, base + lt, right=True) - start
    below = lt - known_lt  # candidates (unknown items) below the positive
    equal = le - lt - (known_le - known_lt)  # candidates equal to it, itself included
    below = torch.where(pos_valid, below, 0).sum(1)
    tied = torch.where(pos_valid, (equal - 1).clamp(min=0), 0).sum(1)
    dtype = M.real_dtype(scores.device)
    return {"below": below.to(dtype), "tied": tied.to(dtype), "n_cand": scores.numel() - n_known}


def _auc_counts(scores, masked, known_dev, truth_dev, rows) -> dict[str, torch.Tensor]:
    """AUC's counts for one batch: equal scores are ties (1/2), whatever the list order.

    AUC's rule ranks NaN and -inf scores as the lowest finite float and +inf as the highest,
    with only the excluded (known) items below them all. `masked` (from `rank_block`) orders
    every item the same way except NaN (-inf there, like the excluded), so for a positive
    above the lowest float its counts over `masked` are the rule's; the rare rows with a
    positive at the lowest float, -inf or NaN are counted on a copy made by the rule.
    """
    n_items = scores.shape[1]
    n_known = known_dev.row_counts(rows)  # (B,)
    pos_items, pos_valid = truth_dev.padded(rows)
    below, tied = M.positive_rank_counts(masked, pos_items, pos_valid, n_known)
    lowest = torch.finfo(torch.float32).min
    odd = torch.nonzero(((masked.gather(1, pos_items) <= lowest) & pos_valid).any(1))
    odd = odd.reshape(-1)
    if len(odd):
        s = torch.nan_to_num(scores[odd].float(), nan=lowest, posinf=-lowest, neginf=lowest)
        s.view(-1).index_fill_(0, known_dev.flat(rows[odd]), float("-inf"))
        below[odd], tied[odd] = M.positive_rank_counts(
            s, pos_items[odd], pos_valid[odd], n_known[odd]
        )
    return {"below": below, "tied": tied, "n_cand": n_items - n_known}


def _count_notes(
    part: str, method: str, *, n_users: int, n_skipped: int, n_unevaluable: int, n_no_history: int
) -> list[str]:
    """Sentences for the UI: who was not scored, and who was scored without a history."""
    notes = []
    if n_skipped:
        notes.append(
            f"{n_skipped} users were not scored because all their {part} items were already "
            "known (excluded from ranking)."
        )
    if n_unevaluable:
        why = " (leave-last-out keeps users with fewer than 3 interactions in training)"
        notes.append(
            f"{n_unevaluable} users could not be evaluated because they have no {part} "
            f"interactions{why if method == 'loo' else ''}."
        )
    if n_no_history:
        notes.append(
            f"{n_no_history} of the {n_users} scored users have no known history, so their "
            "lists are in the tie rule's random order; the 'history' segment shows them apart."
        )
    return notes


def _truth_minus_known(truth: Interactions, known: Interactions) -> sp.csr_matrix:
    """Binary (n_users, n_items) truth with every known (user, item) pair removed."""
    t = truth.csr()
    overlap = t.multiply(known.csr())
    if overlap.nnz:
        t = sp.csr_matrix(t - overlap)
        t.eliminate_zeros()
    t.sort_indices()
    return t


def _rating_errors(model, truth: Interactions) -> dict[str, float]:
    """RMSE/MAE on the part's rated pairs, when ratings exist and the model predicts them."""
    if S.RATING not in truth.frame.columns or not isinstance(model, PredictsRatings):
        return {}
    if len(truth) == 0:
        return {}
    predicted = model.predict_ratings(truth.users, truth.items)
    if predicted is None:
        return {}
    pred = np.asarray(predicted, dtype=np.float64)
    target = truth.frame[S.RATING].to_numpy(dtype=np.float64)
    return {"rmse": M.rmse(pred, target), "mae": M.mae(pred, target)}


def _check_ks(ks) -> tuple[int, ...]:
    """Sorted distinct cut-offs, each a whole number >= 1 (the bounds come later)."""
    try:
        values = list(ks)
    except TypeError:
        values = [ks]
    try:
        return tuple(sorted({check_k(k) for k in values or [None]}))
    except ParameterError:
        raise ParameterError(f"Cut-offs k must be positive whole numbers; got {ks!r}.") from None


def _bounded_ks(ks: tuple[int, ...], n_items: int, n_users: int) -> tuple[int, ...]:
    """Refuse cut-offs above what can be ranked or held in memory, with a sentence.

    The standard cut-offs (KS) are always allowed, also on a catalogue smaller than 20 (the
    lists are padded); any other k must be at most the number of items, and the (users, k)
    lists must fit LIST_BUDGET_BYTES.
    """
    high, what = max(n_items, max(KS)), f"the number of items is {n_items:,}"
    if n_items >= max(KS):
        what = "the number of items"
    fits = LIST_BUDGET_BYTES // (max(1, n_users) * _BYTES_PER_LIST_CELL)
    if fits < high:
        high = max(max(KS), fits)
        what = f"the lists of {n_users:,} users must fit in memory"
    for k in ks:
        check_k(k, high, what=what)
    return ks


def _nanmean(values) -> float:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if len(arr) else float("nan")


def _json_float(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)
