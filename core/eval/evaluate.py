"""Full-ranking evaluation: every user is ranked against the whole catalogue, on the device.

Rules (DESIGN.md, "Evaluation rules"): no sampled metrics. Items a user is already known to
have interacted with are excluded from the ranking (set to -inf): training items when scoring
the validation part, training *and* validation items when scoring the test part
(`split.known_for(part)`). Truth is the part's items minus the known ones; users whose truth
is then empty (all their test items were already known, possible with random splits) are not
scored and are counted in `n_skipped`.

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
from core.errors import ParameterError
from core.eval import metrics as M
from core.eval.beyond import beyond_metrics, cold_item_recall, segment_table
from core.protocols import PredictsRatings

log = logging.getLogger(__name__)

KS = (5, 10, 20)
#: scores + sort buffers per batch stay within this many bytes
MEMORY_BUDGET_BYTES = 256 * 2**20
#: bytes per (user, item) cell in one batch: scores f32, sorted f32 + int64 indices, masks
_BYTES_PER_CELL = 24
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
    n_users: int = 0  # users scored
    n_skipped: int = 0  # users with truth in this part that were all already known
    notes: list[str] = field(default_factory=list)  # sentences for the UI (definitions)

    def summary(self) -> dict:
        """A JSON-ready record: metrics, counts and the sentences."""
        return {
            "part": self.part,
            "metrics": {k: _json_float(v) for k, v in self.metrics.items()},
            "n_users": self.n_users,
            "n_skipped": self.n_skipped,
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
) -> EvalResult:
    """Rank all items for every user with truth in `part` and compute every metric.

    Calls `model.set_history(split.known_for(part))` first, so the model scores from the
    same history whose items are excluded. `batch_size` (users per batch) defaults to what
    keeps one batch's scores and sort buffers within MEMORY_BUDGET_BYTES.
    """
    if part not in _EXCLUDED:
        raise ParameterError(f"Evaluation part '{part}' is unknown; use 'valid' or 'test'.")
    ks = _check_ks(ks)
    known = split.known_for(part)
    truth = split.part(part)
    model.set_history(known)
    truth_csr = _truth_minus_known(truth, known)
    n_truth_all = np.diff(truth_csr.indptr)
    users = np.flatnonzero(n_truth_all > 0)
    n_skipped = int(np.count_nonzero(np.diff(truth.csr().indptr) > 0) - len(users))
    known_csr = known.csr()
    n_known = np.diff(known_csr.indptr)[users]
    notes = []
    if n_skipped:
        notes.append(
            f"{n_skipped} users were not scored because all their {part} items were already "
            "known (excluded from ranking)."
        )
    if len(users) == 0:
        log.warning("no user has %s items left to rank (%d skipped)", part, n_skipped)
        notes.append(f"No user had {part} items left to rank, so there are no metrics.")
        return EvalResult(
            part=part,
            metrics={"n_users": 0.0},
            per_user=pd.DataFrame({S.USER: [], "n_truth": [], "n_known": []}, dtype=np.int64),
            segments=pd.DataFrame({"segment_kind": [], "segment": [], "n_users": []}),
            excluded=_EXCLUDED[part],
            top_items=np.zeros((0, max(ks)), dtype=np.int64),
            n_skipped=n_skipped,
            notes=notes,
        )
    ranked = _rank(model, users, truth_csr, known_csr, max(ks), batch_size, with_auc=True)
    hits, top, n_truth = ranked["hits"], ranked["top"], ranked["n_truth"]

    per_user = pd.DataFrame(
        {S.USER: users.astype(np.int64), "n_truth": n_truth_all[users], "n_known": n_known}
    )
    columns = {}
    for k in ks:
        columns.update(topk_columns(hits, n_truth, k))
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
        n_users=len(users),
        n_skipped=n_skipped,
        notes=notes,
    )


def ranking_metric(
    model,
    truth: Interactions,
    known: Interactions,
    *,
    k: int = 10,
    metric: str = "ndcg",
    max_users: int | None = None,
) -> float:
    """Mean of one top-k metric ('ndcg', 'recall', 'hit', 'mrr', 'map', 'precision' or 'auc').

    The fast path for early stopping: does NOT call `set_history` (the caller makes the
    model's history equal `known`), builds no tables. `max_users` scores a fixed random
    subset (seed 0) of the users with truth, for speed on large data. Returns 0.0 when no
    user has truth left after excluding known items.
    """
    if metric not in M.TOPK_METRICS and metric != "auc":
        allowed = ", ".join((*M.TOPK_METRICS, "auc"))
        raise ParameterError(f"Metric '{metric}' is unknown; use one of {allowed}.")
    k = _check_ks((k,))[0]
    truth_csr = _truth_minus_known(truth, known)
    users = np.flatnonzero(np.diff(truth_csr.indptr) > 0)
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(0).choice(users, size=int(max_users), replace=False))
    if len(users) == 0:
        return 0.0
    ranked = _rank(model, users, truth_csr, known.csr(), k, None, with_auc=metric == "auc")
    if metric == "auc":
        values = M.auc(ranked["below"], ranked["tied"], ranked["n_truth"], ranked["n_cand"])
    else:
        values = topk_columns(ranked["hits"], ranked["n_truth"], k)[f"{metric}@{k}"]
    return _nanmean(values.cpu().double().numpy())


def topk_columns(hits: torch.Tensor, n_truth: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    """The six top-k metrics at cut k, keyed `name@k`, each (U,)."""
    return {
        f"ndcg@{k}": M.ndcg(hits, n_truth, k=k),
        f"recall@{k}": M.recall(hits, n_truth, k=k),
        f"hit@{k}": M.hit_rate(hits, k=k),
        f"mrr@{k}": M.mrr(hits, k=k),
        f"map@{k}": M.average_precision(hits, n_truth, k=k),
        f"precision@{k}": M.precision(hits, k=k),
    }


def auto_batch_size(n_items: int, budget_bytes: int = MEMORY_BUDGET_BYTES) -> int:
    """Users per batch so that (B, n_items) scores and sort buffers fit the budget."""
    return max(1, budget_bytes // (max(1, n_items) * _BYTES_PER_CELL))


# -- the hot path ----------------------------------------------------------------------------


class _DeviceCsr:
    """A CSR matrix's indptr/indices on the device, to gather rows without host loops."""

    def __init__(self, mat: sp.csr_matrix, device: torch.device) -> None:
        self.indptr = torch.from_numpy(mat.indptr.astype(np.int64)).to(device)
        self.indices = torch.from_numpy(mat.indices.astype(np.int64)).to(device)
        self.n_cols = mat.shape[1]
        self.device = device

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

    def dense(self, rows: torch.Tensor) -> torch.Tensor:
        """(B, n_cols) bool, True at stored entries."""
        out = torch.zeros(len(rows) * self.n_cols, dtype=torch.bool, device=self.device)
        out[self.flat(rows)] = True
        return out.view(len(rows), self.n_cols)

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


def _rank(
    model,
    users: np.ndarray,
    truth_csr: sp.csr_matrix,
    known_csr: sp.csr_matrix,
    k_max: int,
    batch_size: int | None,
    *,
    with_auc: bool,
) -> dict[str, torch.Tensor]:
    """Score `users` in batches, exclude known items, take the top k_max, build hits.

    Returns tensors on the scores' device: hits (U, K) float, top (U, K) long (-1 where a
    user had fewer than K candidates), n_truth (U,), and with_auc: below, tied, n_cand (U,).
    """
    n_items = truth_csr.shape[1]
    k_eff = min(k_max, n_items)
    bs = int(batch_size) if batch_size else auto_batch_size(n_items)
    if bs < 1:
        raise ParameterError(f"batch_size must be a positive whole number; got {batch_size!r}.")
    out: dict[str, list[torch.Tensor]] = {}
    known_dev = truth_dev = None
    with torch.inference_mode():
        for start in range(0, len(users), bs):
            batch = torch.from_numpy(users[start : start + bs].astype(np.int64))
            raw = model.score(batch).float()  # (B, n_items)
            # only excluded items may be -inf, so "ran out of candidates" is unambiguous
            lowest = torch.finfo(raw.dtype).min
            scores = torch.nan_to_num(raw, nan=lowest, posinf=-lowest, neginf=lowest)
            if known_dev is None:
                known_dev = _DeviceCsr(known_csr, scores.device)
                truth_dev = _DeviceCsr(truth_csr, scores.device)
            rows = batch.to(scores.device)
            scores.view(-1).index_fill_(0, known_dev.flat(rows), float("-inf"))
            top = torch.topk(scores, k_eff, dim=1)  # (B, K)
            real = ~torch.isneginf(top.values)  # (B, K) False past the last candidate
            truth_mask = truth_dev.dense(rows)  # (B, n_items)
            hits = (truth_mask.gather(1, top.indices) & real).to(M.real_dtype(scores.device))
            parts = {
                "hits": hits,
                "top": torch.where(real, top.indices, -1),
                "n_truth": truth_dev.row_counts(rows),
            }
            if with_auc:
                n_known = known_dev.row_counts(rows)  # (B,)
                pos_items, pos_valid = truth_dev.padded(rows)
                below, tied = M.positive_rank_counts(scores, pos_items, pos_valid, n_known)
                parts.update(below=below, tied=tied, n_cand=n_items - n_known)
            for name, value in parts.items():
                out.setdefault(name, []).append(value)
    result = {name: torch.cat(values) for name, values in out.items()}
    if k_eff < k_max:  # catalogue smaller than K: pad the lists so every row has K ranks
        pad = k_max - k_eff
        result["hits"] = torch.nn.functional.pad(result["hits"], (0, pad), value=0.0)
        result["top"] = torch.nn.functional.pad(result["top"], (0, pad), value=-1)
    return result


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
    out = tuple(sorted({int(k) for k in ks}))
    if not out or out[0] < 1 or any(float(k) != int(k) for k in ks):
        raise ParameterError(f"Cut-offs k must be positive whole numbers; got {ks!r}.")
    return out


def _nanmean(values) -> float:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if len(arr) else float("nan")


def _json_float(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)
