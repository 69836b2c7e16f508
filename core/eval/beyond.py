"""Beyond-accuracy metrics of top-K lists and the per-segment table of an evaluation.

Popularity of an item = number of distinct users who interacted with it in the known
history (train for the validation part, train + valid for the test part), i.e. what the
model could have learnt from.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from core.data import schema as S
from core.data.dataset import Interactions
from core.data.split import Split
from core.eval import metrics as M

#: share of the catalogue, most popular first, that counts as the "head"
HEAD_SHARE = 0.2
ACTIVITY_BINS = (-1, 0, 5, 10, 20, 50, np.inf)
ACTIVITY_LABELS = ("0", "1-5", "6-10", "11-20", "21-50", "51+")
#: bytes the (users, K, d) embedding gather of the diversity metric may take per chunk
_DIVERSITY_BUDGET_BYTES = 128 * 2**20
#: an item with at most this many training interactions is "cold"; same bound for users
COLD_MAX = 5
#: the two segments of kind "history"
HAS_HISTORY, NO_HISTORY = "has known history", "no known history"


def popularity(known: Interactions) -> np.ndarray:
    """(n_items,) number of distinct users with a known interaction with each item."""
    mat = known.csr()
    return np.bincount(mat.indices, minlength=known.n_items).astype(np.int64)


def head_items(pop: np.ndarray, share: float = HEAD_SHARE) -> np.ndarray:
    """(n_items,) bool, True for the ceil(share * n_items) most popular items (ties by code)."""
    n_head = int(np.ceil(share * len(pop)))
    order = np.argsort(-pop, kind="stable")
    head = np.zeros(len(pop), dtype=bool)
    head[order[:n_head]] = True
    return head


def beyond_metrics(
    model, top: torch.Tensor, known: Interactions, truth: Interactions, ks
) -> tuple[dict[str, float], dict[str, np.ndarray], list[str]]:
    """Coverage, novelty, diversity, popularity bias and Gini of the top-k lists.

    top (U, K) item codes, -1 where a list ran out of candidates. Returns
    (global metrics, per-user columns, explanatory sentences).
    """
    device = top.device
    n_items = known.n_items
    pop = popularity(known)
    pop_t = torch.from_numpy(pop).to(device=device, dtype=M.real_dtype(device))
    # items nobody interacted with count as one user, so self-information stays finite
    share = torch.clamp(pop_t, min=1.0) / max(1, known.n_users)
    head = torch.from_numpy(head_items(pop)).to(device)
    basis, emb, cats = _diversity_basis(model, truth, device)
    notes = [
        "Popularity = number of users with a known interaction with the item; novelty = mean "
        "-log2(share of users who interacted with each recommended item).",
        f"Long tail = items outside the {HEAD_SHARE:.0%} most popular ({int(head.sum())} head "
        "items); tail_share = share of recommended items in the long tail.",
    ]
    if basis:
        notes.append(basis)
    metrics: dict[str, float] = {}
    per_user: dict[str, np.ndarray] = {}
    for k in ks:
        lists = top[:, :k]  # (U, k)
        valid = lists >= 0
        items = lists.clamp(min=0)
        counts = torch.bincount(lists[valid], minlength=n_items)
        metrics[f"coverage@{k}"] = float((counts > 0).sum()) / n_items
        metrics[f"gini@{k}"] = M.gini(counts)
        columns = {
            f"novelty@{k}": M.novelty(items, share, valid),
            f"avg_pop@{k}": M.masked_mean(pop_t[items], valid),
            f"tail_share@{k}": M.masked_mean((~head[items]).to(pop_t.dtype), valid),
        }
        if emb is not None or cats is not None:
            chunk = _diversity_chunk(k, emb.shape[1] if emb is not None else 1)
            columns[f"diversity@{k}"] = torch.cat(
                [
                    M.intra_list_diversity(
                        items[s : s + chunk],
                        embeddings=emb,
                        categories=cats,
                        valid=valid[s : s + chunk],
                    )
                    for s in range(0, len(items), chunk)
                ]
                or [torch.zeros(0, dtype=pop_t.dtype, device=device)]
            )
        for name, values in columns.items():
            arr = values.cpu().double().numpy()
            per_user[name] = arr
            finite = arr[~np.isnan(arr)]
            metrics[name] = float(finite.mean()) if len(finite) else float("nan")
    return metrics, per_user, notes


def cold_item_recall(
    top: torch.Tensor,
    hits: torch.Tensor,
    truth_rows: sp.csr_matrix,
    train: Interactions,
    ks: tuple[int, ...],
) -> dict[str, float]:
    """Recall on cold items only, pooled over users: cold hits in top k / cold truth items.

    An item is cold when it has at most COLD_MAX training interactions. NaN when no truth
    item is cold.
    """
    train_counts = np.bincount(train.items, minlength=truth_rows.shape[1])
    cold = torch.from_numpy(train_counts <= COLD_MAX).to(top.device)  # (n_items,)
    n_cold_truth = float(truth_rows[:, np.flatnonzero(train_counts <= COLD_MAX)].sum())
    cold_hits = hits * cold[top.clamp(min=0)]  # (U, K)
    out = {}
    for k in ks:
        found = float(cold_hits[:, :k].sum())
        out[f"cold_item_recall@{k}"] = found / n_cold_truth if n_cold_truth else float("nan")
    return out


def segment_table(
    per_user: pd.DataFrame, truth_rows: sp.csr_matrix, split: Split, truth: Interactions
) -> tuple[pd.DataFrame, list[str]]:
    """Mean per-user metrics by segment; each segment kind partitions the scored users.

    Kinds: all; history (whether the user has any known interaction: users without one,
    possible under a temporal cut, are scored from no information and get the tie rule's
    random order, so they are shown apart); activity (number of known interactions);
    cold_user (<= 5 known);
    cold_item (whether the user's truth holds an item with <= 5 training interactions);
    scenario (most frequent scenario of the user's interactions in this part; ties go to
    the first scenario in the dataset's order), when the data has scenarios.
    """
    metric_cols = [c for c in per_user.columns if c not in (S.USER, "n_truth", "n_known")]
    labels = pd.DataFrame(index=per_user.index)
    labels["all"] = "all users"
    labels["history"] = np.where(per_user["n_known"] > 0, HAS_HISTORY, NO_HISTORY)
    labels["activity"] = pd.cut(
        per_user["n_known"], bins=list(ACTIVITY_BINS), labels=list(ACTIVITY_LABELS)
    ).astype(str)
    labels["cold_user"] = np.where(
        per_user["n_known"] <= COLD_MAX, f"cold (<={COLD_MAX} known)", f"warm (>{COLD_MAX})"
    )
    train_counts = np.bincount(split.train.items, minlength=truth_rows.shape[1])
    cold_items = np.flatnonzero(train_counts <= COLD_MAX)
    has_cold = np.asarray(truth_rows[:, cold_items].sum(1)).ravel() > 0
    labels["cold_item"] = np.where(has_cold, "has a cold test item", "no cold test item")
    notes = [
        f"Cold users have at most {COLD_MAX} known interactions; the cold_item segment holds "
        f"users whose truth includes an item with at most {COLD_MAX} training interactions "
        "(cold_item_recall@k counts hits on those items only)."
    ]
    scenario = _user_scenario(per_user[S.USER].to_numpy(), truth)
    if scenario is not None:
        labels["scenario"] = scenario
    frames = []
    for kind in labels.columns:
        grouped = per_user[metric_cols].groupby(labels[kind].to_numpy(), sort=True)
        table = grouped.mean()
        table.insert(0, "n_users", grouped.size())
        table.insert(0, "segment", table.index.astype(str))
        table.insert(0, "segment_kind", kind)
        frames.append(table.reset_index(drop=True))
    segments = pd.concat(frames, ignore_index=True)
    order = {label: i for i, label in enumerate(ACTIVITY_LABELS)}
    segments["_o"] = [
        order.get(s, 0) if k == "activity" else 0
        for k, s in zip(segments["segment_kind"], segments["segment"], strict=True)
    ]
    kind_order = {k: i for i, k in enumerate(labels.columns)}
    segments["_k"] = segments["segment_kind"].map(kind_order)
    segments = segments.sort_values(["_k", "_o"], kind="stable").drop(columns=["_o", "_k"])
    return segments.reset_index(drop=True), notes


def _user_scenario(users: np.ndarray, truth: Interactions) -> np.ndarray | None:
    """Scenario name per user: the most frequent among their interactions in `truth`."""
    dataset = truth.dataset
    if S.SCENARIO_CODE not in truth.frame.columns or dataset is None or not dataset.scenarios:
        return None
    counts = truth.frame.groupby([S.USER, S.SCENARIO_CODE]).size().rename("n").reset_index()
    counts = counts.sort_values([S.USER, "n", S.SCENARIO_CODE], ascending=[True, False, True])
    top = counts.drop_duplicates(S.USER).set_index(S.USER)[S.SCENARIO_CODE]
    names = np.asarray(dataset.scenarios, dtype=object)
    codes = top.reindex(users).to_numpy()
    return names[codes.astype(np.int64)]


def _diversity_chunk(k: int, dim: int) -> int:
    """Users per chunk so one chunk's (users, k, dim) gather (and its temporaries, ~3 float64
    copies) stays within _DIVERSITY_BUDGET_BYTES."""
    return max(1, _DIVERSITY_BUDGET_BYTES // (max(1, k) * max(1, dim) * 8 * 3))


def _diversity_basis(model, truth: Interactions, device: torch.device):
    """(sentence, embeddings or None, category codes or None) for intra-list diversity."""
    emb = model.item_embeddings()
    if emb is not None:
        emb_t = torch.as_tensor(np.asarray(emb), dtype=torch.float32, device=device)
        sentence = "Diversity = 1 - mean pairwise cosine similarity of the model's item embeddings."
        return sentence, emb_t, None
    dataset = truth.dataset
    if dataset is not None and S.CATEGORY in dataset.items.columns:
        cat = dataset.items[S.CATEGORY].astype(object)
        codes, _ = pd.factorize(cat, use_na_sentinel=True)  # missing -> -1, one shared group
        cats = torch.from_numpy(codes.astype(np.int64)).to(device)
        sentence = "Diversity = share of recommended item pairs with different categories."
        return sentence, None, cats
    return "", None, None
