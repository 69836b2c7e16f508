"""Long- and short-term interest profiles: category shares of histories, windows and lists.

Per user, over the item categories:
- long-term shares: the whole known history (train + valid, what the model saw at test);
- recent shares: the last `recent` known interactions by time (file order when the data had
  no timestamps: `Dataset.has_timestamps`);
- held-out shares: the test items not already known (the evaluator's truth);
- list shares: a run's stored top-K (recs.parquet; nothing is re-scored).

An item with several categories splits its weight evenly over them (1/n each); an item with
no category carries no weight, and a user whose counted items have none has no shares (left
out of every mean, and counted in `n_users` only where defined). Each interaction counts
once, so a re-watched item counts as often as it was watched.

Drift = total variation distance between two share vectors, TV(p, q) = ½ Σ_g |p_g − q_g|,
in [0, 1]: the share of interest that would have to move to another category to turn one
mix into the other. It is chosen over Jensen–Shannon because it reads as a share, is
symmetric, and is finite and exact when a category is missing on one side.

Calibration (Steck, "Calibrated recommendations", RecSys 2018), in nats:
    C_KL(p, q) = Σ_g p_g · ln(p_g / q̃_g),   q̃ = (1 − α) q + α p,   α = ALPHA = 0.01,
with q the list's shares (every one of the top-K counts equally) and p the target: the
held-out shares (does the list match where the user went next?) or, as in Steck, the
long-term history shares. Mixing α·p into q keeps it finite when the list misses a
category (then it is at most ln(1/α) ≈ 4.61); 0 means the list has exactly the target's mix.
Lower is better.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.data import schema as S
from core.data.dataset import Dataset, Interactions
from core.data.ingest.columns import norm
from core.data.split import Split
from core.errors import ParameterError, RecScopeError

#: interactions in the recent window by default
RECENT = 10
#: Steck's smoothing: q̃ = (1 − α) q + α p
ALPHA = 0.01
#: item-table columns (normalised names) that may hold an item's full category list, the
#: one ingest cut `category` from (core.data.ingest.columns.load_items keeps its first entry)
LIST_COLUMNS = ("genres", "genre", "categories", "classes", "class")
_NO_CATEGORY = ("", "(no genres listed)")


class NoCategoriesError(RecScopeError):
    """The dataset's items carry no categories, so there are no interest profiles."""


@dataclass(frozen=True)
class InterestProfiles:
    """Category shares per user; every matrix is (n_users, n_categories) CSR, rows sum to 1
    (or are empty where the user has nothing with a category).

    `item_weights` is (n_items, n_categories): 1/n on each of an item's n categories.
    `held_out` is None without a split. `n_long`, `n_recent` (n_users,) count the
    interactions behind each row and `n_held` the distinct held-out items (with or without
    a category).
    """

    categories: tuple[str, ...]
    item_weights: sp.csr_matrix
    long_term: sp.csr_matrix
    recent: sp.csr_matrix
    held_out: sp.csr_matrix | None
    n_long: np.ndarray
    n_recent: np.ndarray
    n_held: np.ndarray
    window: int
    by_time: bool
    source: str


def category_weights(items: pd.DataFrame) -> tuple[sp.csr_matrix, tuple[str, ...], str]:
    """(n_items, n_categories) weights, category names (sorted) and a sentence on the source.

    The full list comes from the column ingest cut `category` from (a LIST_COLUMNS column
    whose first entry is `category` on every item that has one, split on '|' when any value
    holds one, else on spaces); otherwise each item has its one `category`.
    """
    if S.CATEGORY not in items.columns or items[S.CATEGORY].notna().sum() == 0:
        raise NoCategoriesError(
            "The items of this dataset have no category, so there are no interest profiles; "
            "ingest an item table with a category or genre column to see them."
        )
    first = items[S.CATEGORY].astype("string")
    lists, source = _category_lists(items, first)
    rows = np.repeat(np.arange(len(lists)), [len(v) for v in lists])
    flat = pd.Series([c for v in lists for c in v], dtype=object)
    codes, names = pd.factorize(flat, sort=True)
    counts = np.bincount(rows, minlength=len(items)).astype(np.float64)
    weights = sp.csr_matrix(
        (1.0 / counts[rows], (rows, codes)), shape=(len(items), len(names)), dtype=np.float64
    )
    return weights, tuple(str(n) for n in names), source


def interest_profiles(
    dataset: Dataset, split: Split | None = None, *, recent: int = RECENT
) -> InterestProfiles:
    """Long-term, recent and held-out category shares of every user.

    With a split, the history is what is known at test (train + valid) and the held-out
    items are the test items not already known; without one, the history is every
    interaction and there are no held-out shares.
    """
    if isinstance(recent, bool) or not isinstance(recent, (int, np.integer)) or recent < 1:
        raise ParameterError(f"recent must be a whole number of interactions >= 1; got {recent!r}.")
    weights, names, source = category_weights(dataset.items)
    known = split.known_for("test") if split is not None else dataset.all()
    counts = _count_matrix(known.users, known.items, known)
    window = known.sequences(int(recent))  # (n_users, recent), -1 padded on the left
    users, cols = np.nonzero(window >= 0)
    recent_counts = _count_matrix(users, window[users, cols], known)
    held, n_held = None, np.zeros(known.n_users, dtype=np.int64)
    if split is not None:
        truth = _truth(split)
        held = _shares(truth, weights)
        n_held = np.diff(truth.indptr).astype(np.int64)
    return InterestProfiles(
        categories=names,
        item_weights=weights,
        long_term=_shares(counts, weights),
        recent=_shares(recent_counts, weights),
        held_out=held,
        n_long=np.asarray(counts.sum(1)).ravel().astype(np.int64),
        n_recent=np.asarray(recent_counts.sum(1)).ravel().astype(np.int64),
        n_held=n_held,
        window=int(recent),
        by_time=dataset.has_timestamps,
        source=source,
    )


def list_shares(profiles: InterestProfiles, recs: pd.DataFrame, k: int) -> sp.csr_matrix:
    """(n_users, n_categories) shares of each user's top-k in `recs` (user_code, rank,
    item_code; a run's recs.parquet); users without a list have an empty row."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ParameterError(f"k must be a positive whole number; got {k!r}.")
    top = recs.loc[recs["rank"] <= int(k)]
    n_users, n_items = profiles.long_term.shape[0], profiles.item_weights.shape[0]
    counts = sp.csr_matrix(
        (np.ones(len(top)), (top[S.USER].to_numpy(), top[S.ITEM].to_numpy())),
        shape=(n_users, n_items),
    )
    return _shares(counts, profiles.item_weights)


def total_variation(p: sp.csr_matrix, q: sp.csr_matrix) -> np.ndarray:
    """(n,) TV(p_u, q_u) = ½ Σ_g |p_ug − q_ug| per row; NaN where either row is empty."""
    tv = 0.5 * np.asarray(abs(p - q).sum(1)).ravel()
    return np.where(_defined(p) & _defined(q), tv, np.nan)


def calibration_kl(p: sp.csr_matrix, q: sp.csr_matrix, alpha: float = ALPHA) -> np.ndarray:
    """(n,) Steck's C_KL(p_u, q_u) = Σ_g p_ug ln(p_ug / ((1 − α) q_ug + α p_ug)) in nats.

    p is the target (held-out or history shares), q the list's; NaN where either row is
    empty. Terms with p_ug = 0 are 0; the result lies in [0, ln(1/α)].
    """
    if not 0.0 < float(alpha) < 1.0:
        raise ParameterError(f"alpha must lie strictly between 0 and 1; got {alpha!r}.")
    coo = p.tocoo()
    q_at = np.asarray(q.tocsr()[coo.row, coo.col]).ravel()
    terms = coo.data * np.log(coo.data / ((1.0 - alpha) * q_at + alpha * coo.data))
    kl = np.bincount(coo.row, weights=terms, minlength=p.shape[0])
    return np.where(_defined(p) & _defined(q), np.maximum(kl, 0.0), np.nan)


def calibration_table(
    profiles: InterestProfiles,
    lists: Mapping[str, pd.DataFrame],
    k: int = 10,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """One row per run ({run_id: recs}): how its top-k's category mix matches the users'.

    Columns: run_id; kl_held_out, kl_history (mean C_KL with p = held-out / long-term shares,
    q = the list's; lower is better); tv_recent, tv_long_term (mean TV of the list to the
    recent / long-term shares); closer_recent, closer_long_term (share of users whose list is
    strictly closer to their recent / long-term shares, among users whose two differ);
    n_users (test users with held-out, history and list shares). What a list with exactly
    the recent or long-term mix would score is `reference_kl`.
    """
    if profiles.held_out is None:
        raise ParameterError("calibration_table needs profiles made with a split (held-out).")
    rows = []
    for run_id, recs in lists.items():
        q = list_shares(profiles, recs, k)
        users = _test_users(profiles) & _defined(q)
        tv_recent = total_variation(q, profiles.recent)[users]
        tv_long = total_variation(q, profiles.long_term)[users]
        drifted = total_variation(profiles.recent, profiles.long_term)[users] > 0
        n_drifted = int(drifted.sum())
        rows.append(
            {
                "run_id": run_id,
                "kl_held_out": _mean(calibration_kl(profiles.held_out, q, alpha)[users]),
                "kl_history": _mean(calibration_kl(profiles.long_term, q, alpha)[users]),
                "tv_recent": _mean(tv_recent),
                "tv_long_term": _mean(tv_long),
                "closer_recent": _share(tv_recent[drifted] < tv_long[drifted], n_drifted),
                "closer_long_term": _share(tv_long[drifted] < tv_recent[drifted], n_drifted),
                "n_users": int(users.sum()),
            }
        )
    columns = ["run_id", "kl_held_out", "kl_history", "tv_recent", "tv_long_term"]
    return pd.DataFrame(rows, columns=[*columns, "closer_recent", "closer_long_term", "n_users"])


def reference_kl(profiles: InterestProfiles, alpha: float = ALPHA) -> dict[str, float]:
    """Mean C_KL(held-out ‖ recent) and C_KL(held-out ‖ long-term) over the test users: what
    a list with exactly the user's recent / long-term mix would score; plus the mean drift."""
    if profiles.held_out is None:
        raise ParameterError("reference_kl needs profiles made with a split (held-out).")
    users = _test_users(profiles)
    drift = total_variation(profiles.recent, profiles.long_term)
    return {
        "recent": _mean(calibration_kl(profiles.held_out, profiles.recent, alpha)[users]),
        "long_term": _mean(calibration_kl(profiles.held_out, profiles.long_term, alpha)[users]),
        "drift": _mean(drift[users]),
        "n_users": int(users.sum()),
    }


def user_shares(profiles: InterestProfiles, user: int) -> pd.DataFrame:
    """One user's shares: category, long_term, recent, held_out (NaN without a split); only
    the categories where any of them is above 0, in the order of `profiles.categories`."""
    table = pd.DataFrame(
        {
            "category": list(profiles.categories),
            "long_term": _row(profiles.long_term, user),
            "recent": _row(profiles.recent, user),
            "held_out": (
                _row(profiles.held_out, user)
                if profiles.held_out is not None
                else np.full(len(profiles.categories), np.nan)
            ),
        }
    )
    shown = table[["long_term", "recent", "held_out"]].fillna(0).sum(axis=1) > 0
    return table[shown].reset_index(drop=True)


def user_run_shares(
    profiles: InterestProfiles, user: int, lists: Mapping[str, pd.DataFrame], k: int = 10
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One user against each run's top-k.

    Returns (shares, distances): shares has category then one column per run_id (NaN-free,
    0 where absent), only categories above 0 in a list or in the held-out items; distances
    has one row per run: run_id, tv_recent, tv_long_term, kl_held_out, kl_history, follows
    ('recent', 'long-term', 'both' when equally close, '' when the list has no category).
    """
    rows, columns = [], {"category": list(profiles.categories)}
    one = _one_user(profiles, user)
    for run_id, recs in lists.items():
        mine = recs.loc[recs[S.USER] == int(user)]
        q = list_shares(one, mine.assign(**{S.USER: 0}), k)
        columns[run_id] = _row(q, 0)
        tv_recent = float(total_variation(q, one.recent)[0])
        tv_long = float(total_variation(q, one.long_term)[0])
        kl_held = calibration_kl(one.held_out, q)[0] if one.held_out is not None else np.nan
        rows.append(
            {
                "run_id": run_id,
                "tv_recent": tv_recent,
                "tv_long_term": tv_long,
                "kl_held_out": float(kl_held),
                "kl_history": float(calibration_kl(one.long_term, q)[0]),
                "follows": _follows(tv_recent, tv_long),
            }
        )
    shares = pd.DataFrame(columns)
    held = _row(profiles.held_out, user) if profiles.held_out is not None else 0.0
    shown = (shares.drop(columns="category").sum(axis=1) > 0) | (held > 0)
    distances = pd.DataFrame(
        rows, columns=["run_id", "tv_recent", "tv_long_term", "kl_held_out", "kl_history"]
        + ["follows"],
    )  # fmt: skip
    return shares[shown].reset_index(drop=True), distances


def drift(profiles: InterestProfiles, user: int) -> float:
    """TV between the user's recent and long-term shares (NaN where either is empty)."""
    one = _one_user(profiles, user)
    return float(total_variation(one.recent, one.long_term)[0])


# -- helpers ---------------------------------------------------------------------------------


def _category_lists(items: pd.DataFrame, first: pd.Series) -> tuple[list[list[str]], str]:
    """Each item's categories, and where they came from (one sentence)."""
    has = first.notna().to_numpy()
    for column in items.columns:
        if column == S.CATEGORY or norm(column) not in LIST_COLUMNS:
            continue
        values = items[column].astype("string").fillna("")
        sep = "|" if values.str.contains("|", regex=False).any() else None
        split = [[c for c in str(v).split(sep) if c.strip() not in _NO_CATEGORY] for v in values]
        heads = np.array([v[0] if v else None for v in split], dtype=object)
        if np.array_equal(heads[has], first.to_numpy(dtype=object)[has]):
            multi = sum(len(v) > 1 for v in split)
            return split, (
                f"Categories come from the item table's '{column}' column; {multi:,} items have "
                "several, and each splits its weight evenly over them."
            )
    lists = [
        [str(c)] if ok else [] for c, ok in zip(first.to_numpy(dtype=object), has, strict=True)
    ]
    return lists, "Categories come from the item table's 'category' column (one per item)."


def _count_matrix(users: np.ndarray, items: np.ndarray, known: Interactions) -> sp.csr_matrix:
    """(n_users, n_items) number of interactions per pair (duplicates summed)."""
    return sp.csr_matrix(
        (np.ones(len(users)), (np.asarray(users), np.asarray(items))),
        shape=(known.n_users, known.n_items),
    )


def _shares(counts: sp.csr_matrix, weights: sp.csr_matrix) -> sp.csr_matrix:
    """Rows of counts @ weights, each scaled to sum to 1 (empty rows stay empty)."""
    mass = (counts @ weights).tocsr()
    total = np.asarray(mass.sum(1)).ravel()
    scale = np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)
    out = (sp.diags(scale) @ mass).tocsr()
    out.eliminate_zeros()
    return out


def _truth(split: Split) -> sp.csr_matrix:
    """Binary (n_users, n_items) test items not already known (the evaluator's truth)."""
    test = split.test.csr()
    known = split.known_for("test").csr()
    truth = (test - test.multiply(known)).tocsr()
    truth.eliminate_zeros()
    return truth


def _defined(shares: sp.csr_matrix) -> np.ndarray:
    return np.diff(shares.tocsr().indptr) > 0


def _test_users(profiles: InterestProfiles) -> np.ndarray:
    return _defined(profiles.held_out) & _defined(profiles.long_term)


def _one_user(profiles: InterestProfiles, user: int) -> InterestProfiles:
    """The profiles cut to one user (row 0), for per-user calls."""
    if not 0 <= int(user) < profiles.long_term.shape[0]:
        raise ParameterError(f"User code {user} is outside 0..{profiles.long_term.shape[0] - 1}.")
    u = int(user)
    held = profiles.held_out[u] if profiles.held_out is not None else None
    return InterestProfiles(
        profiles.categories, profiles.item_weights, profiles.long_term[u], profiles.recent[u],
        held, profiles.n_long[u : u + 1], profiles.n_recent[u : u + 1], profiles.n_held[u : u + 1],
        profiles.window, profiles.by_time, profiles.source,
    )  # fmt: skip


def _row(shares: sp.csr_matrix, user: int) -> np.ndarray:
    return shares[int(user)].toarray().ravel()


def _follows(tv_recent: float, tv_long: float) -> str:
    if np.isnan(tv_recent) or np.isnan(tv_long):
        return ""
    if np.isclose(tv_recent, tv_long, atol=1e-9):
        return "both"
    return "recent" if tv_recent < tv_long else "long-term"


def _mean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def _share(flags: np.ndarray, n: int) -> float:
    return float(flags.sum()) / n if n else float("nan")
