"""Data profile of a dataset: the tables behind the Data page's charts, in plain pandas.

Everything here is a pure function of a `Dataset` (no Streamlit, no plotting), so every
number an analyst sees on the Data page is tested here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.data import schema as S
from core.data.dataset import Dataset

# Unix-time ranges used to tell seconds from milliseconds (years ~1973..2286).
_SECONDS = (1e8, 1e10)
_MILLIS = (1e11, 1e13)
_DAY = {"s": 86_400, "ms": 86_400_000}  # a day in each unit
#: largest (user x period) table of seen marks (bytes); past it, `_distinct`'s sorted buckets
_TABLE_CELLS = 64_000_000


@dataclass(frozen=True)
class Counts:
    """Headline sizes. `sparsity` = 1 - distinct (user, item) pairs / (users x items)."""

    users: int
    items: int
    interactions: int
    pairs: int
    sparsity: float
    active_users: int
    active_items: int


def counts(ds: Dataset) -> Counts:
    """Users/items in the catalogue, interactions, distinct pairs and sparsity."""
    frame = ds.interactions
    users, items = frame[S.USER].to_numpy(), frame[S.ITEM].to_numpy()
    pairs = _distinct(users, items, (ds.n_users, ds.n_items)).nnz
    cells = ds.n_users * ds.n_items
    return Counts(
        users=ds.n_users,
        items=ds.n_items,
        interactions=len(frame),
        pairs=pairs,
        sparsity=1.0 - pairs / cells if cells else 1.0,
        active_users=int(np.count_nonzero(np.bincount(users))),
        active_items=int(np.count_nonzero(np.bincount(items))),
    )


def activity(ds: Dataset, by: str = "user") -> pd.DataFrame:
    """Interactions per user (or item), most active first, zeros included.

    Columns: code, id, interactions, rank (1 = most active), cum_share (share of all
    interactions held by this entity and every more active one). The long tail reads off
    `cum_share`: e.g. the share of interactions held by the top 20% of items.
    """
    if by not in ("user", "item"):
        raise ValueError(f"by must be 'user' or 'item', got {by!r}")
    code_col, table, id_col = (
        (S.USER, ds.users, S.USER_ID) if by == "user" else (S.ITEM, ds.items, S.ITEM_ID)
    )
    n = len(table)
    per = np.bincount(ds.interactions[code_col].to_numpy(), minlength=n)  # (n,)
    order = np.argsort(-per, kind="stable")
    total = per.sum()
    out = pd.DataFrame(
        {
            "code": order,
            "id": table[id_col].to_numpy(dtype=object)[order],
            "interactions": per[order],
            "rank": np.arange(1, n + 1),
        }
    )
    out["cum_share"] = out["interactions"].cumsum() / total if total else 0.0
    return out


def top_share(table: pd.DataFrame, fraction: float) -> float:
    """Share of interactions held by the top `fraction` of an `activity` table (0 if empty)."""
    if len(table) == 0:
        return 0.0
    k = max(1, int(np.ceil(len(table) * fraction)))
    return float(table["cum_share"].iloc[k - 1])


def rating_distribution(ds: Dataset) -> pd.DataFrame | None:
    """Rows per distinct rating value (columns rating, interactions); None without ratings."""
    if not ds.has_ratings:
        return None
    values = ds.interactions[S.RATING]
    out = values.value_counts().sort_index().rename_axis("rating").reset_index(name="count")
    return out.rename(columns={"count": "interactions"})


def time_values(ds: Dataset) -> pd.Series | None:
    """Timestamps as datetimes when they look like Unix seconds or milliseconds.

    Returns None when the data has no timestamps or they are plain sequence numbers
    (then time can only be shown as order, see `activity_over_time`).
    """
    if not ds.has_timestamps or len(ds.interactions) == 0:
        return None
    ts = ds.interactions[S.TIMESTAMP]
    unit = _time_unit(float(ts.min()), float(ts.max()))
    return None if unit is None else pd.to_datetime(ts, unit=unit)


def activity_over_time(ds: Dataset, bins: int = 40) -> pd.DataFrame | None:
    """Interactions and distinct active users per period; None without timestamps.

    Columns: period, interactions, active_users. `period` is a datetime (the start of a
    day, week or month, picked from the time span) when timestamps are Unix time, else the
    first sequence number of one of `bins` equal-width bins.
    """
    if not ds.has_timestamps or len(ds.interactions) == 0:
        return None
    ts = ds.interactions[S.TIMESTAMP].to_numpy()
    unit = _time_unit(float(ts.min()), float(ts.max()))
    if unit is not None:  # integer days: datetime casts take ~0.06 s per million rows
        per_day = _DAY[unit]
        span = (int(ts.max()) - int(ts.min())) // per_day
        freq = "M" if span > 730 else "W" if span > 90 else "D"  # month, week or day
        days = ts.astype(np.int64, copy=False) // per_day  # (n_rows,) days since 1970
        number = _period_number(days, freq)  # (n_rows,) int64, consecutive periods
        first = int(number.min())
        index = number - first
        starts = _period_start(np.arange(first, int(number.max()) + 1), freq)
    else:
        edges = np.linspace(ts.min(), ts.max() + 1, bins + 1)
        index = np.searchsorted(edges, ts, side="right") - 1
        starts = edges[:-1].astype(np.int64)
    n = len(starts)
    users = ds.interactions[S.USER].to_numpy()
    out = pd.DataFrame(
        {
            "period": starts,
            "interactions": np.bincount(index, minlength=n),
            "active_users": _distinct_per_column(users, index, (ds.n_users, n)),
        }
    )
    return out[out["interactions"] > 0].reset_index(drop=True)


def scenario_users(ds: Dataset) -> pd.DataFrame | None:
    """How many users are active in exactly 1, 2, ... scenarios; None without scenarios.

    Columns: scenarios (count of distinct scenarios), users.
    """
    if not ds.has_scenarios:
        return None
    per_user = ds.interactions.groupby(S.USER)[S.SCENARIO_CODE].nunique()
    out = per_user.value_counts().sort_index()
    full = out.reindex(range(1, len(ds.scenarios) + 1), fill_value=0)
    return full.rename_axis("scenarios").reset_index(name="users")


def scenario_overlap(ds: Dataset) -> pd.DataFrame | None:
    """Scenario x scenario matrix of users active in both (diagonal: users in that one).

    Index and columns are the scenario names; None without scenarios.
    """
    if not ds.has_scenarios:
        return None
    pairs = ds.interactions[[S.USER, S.SCENARIO_CODE]].drop_duplicates()
    n_sc = len(ds.scenarios)
    member = np.zeros((ds.n_users, n_sc), dtype=np.int64)  # (n_users, n_scenarios)
    member[pairs[S.USER].to_numpy(), pairs[S.SCENARIO_CODE].to_numpy()] = 1
    both = member.T @ member  # (n_scenarios, n_scenarios)
    return pd.DataFrame(both, index=ds.scenarios, columns=ds.scenarios)


def scenario_sizes(ds: Dataset) -> pd.DataFrame | None:
    """Interactions, users and items per scenario; None without scenarios."""
    if not ds.has_scenarios:
        return None
    grouped = ds.interactions.groupby(S.SCENARIO_CODE)
    out = pd.DataFrame(
        {
            "interactions": grouped.size(),
            "users": grouped[S.USER].nunique(),
            "items": grouped[S.ITEM].nunique(),
        }
    ).reindex(range(len(ds.scenarios)), fill_value=0)
    out.insert(0, "scenario", ds.scenarios)
    return out.reset_index(drop=True)


def top_items(ds: Dataset, n: int = 20) -> pd.DataFrame:
    """The `n` items with the most interactions, with title (and category when known).

    Columns: item_id, title, [category], interactions, users. Ties keep catalogue order.
    """
    frame = ds.interactions
    items = frame[S.ITEM].to_numpy()
    per = np.bincount(items, minlength=ds.n_items)  # (n_items,)
    order = np.argsort(-per, kind="stable")[: min(n, ds.n_items)]
    # distinct users of the top items only: their rows, not every row
    rows = np.isin(items, order)
    pairs = _distinct(items[rows], frame[S.USER].to_numpy()[rows], (ds.n_items, ds.n_users))
    out = pd.DataFrame(
        {
            "item_id": ds.items[S.ITEM_ID].to_numpy(dtype=object)[order],
            "title": ds.item_titles()[order],
        }
    )
    if S.CATEGORY in ds.items.columns:
        out["category"] = ds.items[S.CATEGORY].astype(object).to_numpy()[order]
    out["interactions"] = per[order]
    out["users"] = np.diff(pairs.indptr)[order].astype(np.int64)
    return out


# --- the workspace's runs -------------------------------------------------------------------

HEADLINE = ("ndcg@10", "recall@10", "hit@10")
RUN_COLUMNS = ("run", "model", "dataset", "split", "status", "created", "fit_s", *HEADLINE)


def runs_table(records: list[dict], metrics: tuple[str, ...] = HEADLINE) -> pd.DataFrame:
    """One row per run record: who/what/when, fit seconds and the test `metrics`.

    Missing values (a run still queued, a failed run) are NaN/None, never an error, so a
    half-written workspace still lists. Row order follows `records`.
    """
    rows = []
    for rec in records:
        test = (rec.get("metrics") or {}).get("test") or {}
        row = {
            "run": rec.get("run_id"),
            "model": rec.get("model"),
            "dataset": rec.get("dataset"),
            "split": rec.get("split"),
            "status": rec.get("status"),
            "created": pd.to_datetime(rec.get("created_at"), utc=True, errors="coerce"),
            "fit_s": _number((rec.get("timings") or {}).get("fit_s")),
        }
        row.update({m: _number(test.get(m)) for m in metrics})
        rows.append(row)
    columns = [*RUN_COLUMNS[:7], *metrics]
    frame = pd.DataFrame(rows, columns=columns)
    frame["created"] = pd.to_datetime(frame["created"], utc=True)
    for col in ("fit_s", *metrics):
        frame[col] = frame[col].astype(float)
    return frame


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _distinct(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """One stored entry per distinct (row, col) pair, as a boolean CSR matrix of `shape`.

    Rows are bucketed in one linear pass and only each row's own entries are sorted, then
    repeats merged (scipy's COO -> CSR): at 10M pairs ~0.4 CPU s, against ~2 s for hashing
    every pair (pd.unique) and far more for np.unique. `nnz` counts the distinct pairs,
    `np.diff(indptr)` those per row, `bincount(indices)` those per column.
    """
    data = np.ones(len(rows), dtype=bool)  # repeats merge by logical or: never 0, never dropped
    out = sp.coo_matrix((data, (rows, cols)), shape=shape).tocsr()
    out.sum_duplicates()  # a no-op when tocsr has merged them already
    return out


def _distinct_per_column(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """How many distinct rows each column has among the (row, col) pairs, (shape[1],) int64.

    A table of seen marks when it is small (200k users x 40 months: 8 MB, ~0.05 s at 10M
    pairs), else `_distinct` (~0.6 s).
    """
    if shape[0] * shape[1] <= _TABLE_CELLS:
        seen = np.zeros(shape, dtype=bool)  # (rows, cols)
        seen[rows, cols] = True
        return seen.sum(axis=0, dtype=np.int64)
    return np.bincount(_distinct(rows, cols, shape).indices, minlength=shape[1])


def _time_unit(lo: float, hi: float) -> str | None:
    """'s' or 'ms' when timestamps in [lo, hi] look like Unix time, else None (sequence)."""
    for unit, (low, high) in (("s", _SECONDS), ("ms", _MILLIS)):
        if low <= lo and hi <= high:
            return unit
    return None


def _period_number(days: np.ndarray, freq: str) -> np.ndarray:
    """Months, weeks (Monday to Sunday) or days since 1970 of each day number (int64)."""
    if freq == "M":  # each day of the span's month, looked up: one cast per day, not per row
        first = int(days.min())
        month = np.arange(first, int(days.max()) + 1).astype("datetime64[D]")
        return month.astype("datetime64[M]").astype(np.int64)[days - first]
    return (days + 3) // 7 if freq == "W" else days  # 1970-01-01 was a Thursday


def _period_start(number: np.ndarray, freq: str) -> np.ndarray:
    """The first day of each period numbered by `_period_number`, as datetime64[ns]."""
    if freq == "M":
        return number.astype("datetime64[M]").astype("datetime64[ns]")
    days = number * 7 - 3 if freq == "W" else number
    return days.astype("datetime64[D]").astype("datetime64[ns]")
