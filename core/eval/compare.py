"""Side-by-side comparison of finished runs on the same dataset and split.

Everything reads what a run stored: run.json metrics, per_user.parquet (paired tests),
segments.parquet (per-segment means) and recs.parquet (list overlap). Nothing is retrained
or re-evaluated, so a comparison is as fast as reading a few Parquet files.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from core.data import schema as S
from core.errors import ParameterError, RecScopeError
from core.eval.significance import compare_per_user, holm

#: metrics with no cut-off that the leaderboard shows beside the @k ones
PLAIN_METRICS = ("auc", "rmse", "mae")


def load_records(store, run_ids: Sequence[str]) -> list[dict]:
    """run.json of each run, in the order given."""
    return [store.read(run_id) for run_id in run_ids]


def check_comparable(records: Sequence[dict]) -> None:
    """Raise a RecScopeError unless all runs are finished and share dataset and split."""
    if not records:
        raise RecScopeError("No runs were given to compare; pick at least one finished run.")
    for rec in records:
        if rec.get("status") != "finished":
            raise RecScopeError(
                f"Run '{rec.get('run_id')}' is {rec.get('status')}, not finished; compare "
                "finished runs only."
            )
    first = records[0]
    for rec in records[1:]:
        for key in ("dataset", "split"):
            if rec.get(key) != first.get(key):
                raise RecScopeError(
                    f"Runs '{first.get('run_id')}' and '{rec.get('run_id')}' differ in {key} "
                    f"('{first.get(key)}' vs '{rec.get(key)}'); compare runs trained on the same "
                    "dataset and split."
                )
        if first.get("split") == "random" and rec.get("seed") != first.get("seed"):
            raise RecScopeError(
                f"Runs '{first.get('run_id')}' and '{rec.get('run_id')}' use random splits with "
                f"different seeds ({first.get('seed')} vs {rec.get('seed')}), so their test users "
                "differ; compare runs with the same seed."
            )


def leaderboard(records: Sequence[dict], k: int = 10) -> pd.DataFrame:
    """One row per run: run_id, model, every test metric at cut-off k (plus AUC/RMSE/MAE).

    Sorted by ndcg@k, best first; a metric a run lacks is NaN.
    """
    check_comparable(records)
    rows = []
    for rec in records:
        test = (rec.get("metrics") or {}).get("test") or {}
        row = {"run_id": rec["run_id"], "model": rec.get("model", "")}
        for name, value in test.items():
            if name.endswith(f"@{k}") or name in PLAIN_METRICS:
                row[name] = float(value)
        row["fit_s"] = (rec.get("timings") or {}).get("fit_s", np.nan)
        rows.append(row)
    table = pd.DataFrame(rows)
    key = f"ndcg@{k}"
    if key in table.columns:
        table = table.sort_values(key, ascending=False, kind="stable")
    return table.reset_index(drop=True)


def accuracy_novelty(records: Sequence[dict], k: int = 10) -> pd.DataFrame:
    """Points for an accuracy/novelty scatter: run_id, model, ndcg@k, novelty@k, coverage@k."""
    table = leaderboard(records, k)
    cols = ["run_id", "model"] + [
        c for c in (f"ndcg@{k}", f"novelty@{k}", f"coverage@{k}", f"diversity@{k}") if c in table
    ]
    return table[cols].reset_index(drop=True)


def segment_table(store, run_ids: Sequence[str], metric: str) -> pd.DataFrame:
    """segment_kind, segment, n_users, then one column per run with its mean `metric`."""
    check_comparable(load_records(store, run_ids))
    merged = None
    for run_id in run_ids:
        seg = pd.read_parquet(store.folder(run_id) / "segments.parquet")
        if metric not in seg.columns:
            allowed = ", ".join(c for c in seg.columns if c not in ("segment_kind", "segment"))
            raise ParameterError(
                f"Metric '{metric}' is not in the segments of run '{run_id}'; use one of {allowed}."
            )
        part = seg[["segment_kind", "segment", "n_users", metric]].rename(columns={metric: run_id})
        if merged is None:
            merged = part
        else:
            merged = merged.merge(
                part.drop(columns="n_users"),
                on=["segment_kind", "segment"],
                how="outer",
                sort=False,
            )
    return merged.reset_index(drop=True)


def paired_table(
    store,
    run_ids: Sequence[str],
    metric: str,
    baseline_run: str,
    **options,
) -> pd.DataFrame:
    """Each run against `baseline_run` on the same users: bootstrap CI + Wilcoxon p-value.

    Rows: run_id, model, baseline, metric, mean_baseline, mean_run, mean_diff (run − baseline),
    ci_low, ci_high, p_value (one test's), p_holm (Holm-adjusted over the table's rows, since
    every row tests against the same baseline), significant (p_holm < 1 − confidence),
    n_users, n_compared (the table's number of rows, Holm's m). `options` go to
    `compare_per_user`. The confidence intervals are not adjusted.
    """
    ids = list(dict.fromkeys([baseline_run, *run_ids]))
    records = {r["run_id"]: r for r in load_records(store, ids)}
    check_comparable(list(records.values()))
    base = _per_user(store, baseline_run)
    rows = []
    for run_id in ids[1:]:
        result = compare_per_user(base, _per_user(store, run_id), metric, **options)
        rows.append(
            {
                "run_id": run_id,
                "model": records[run_id].get("model", ""),
                "baseline": baseline_run,
                "metric": metric,
                "mean_baseline": result["mean_a"],
                "mean_run": result["mean_b"],
                "mean_diff": result["mean_diff"],
                "ci_low": result["ci_low"],
                "ci_high": result["ci_high"],
                "p_value": result["p_value"],
                "n_users": result["n_users"],
            }
        )
    columns = ["run_id", "model", "baseline", "metric", "mean_baseline", "mean_run"]
    columns += ["mean_diff", "ci_low", "ci_high", "p_value", "p_holm", "significant", "n_users"]
    table = pd.DataFrame(rows, columns=columns)
    table["n_compared"] = len(table)
    table["p_holm"] = holm(table["p_value"].to_numpy(dtype=np.float64))
    alpha = 1.0 - float(options.get("confidence", 0.95))
    table["significant"] = (table["p_holm"] < alpha).astype(bool)
    return table


def overlap(store, run_ids: Sequence[str], k: int = 10) -> pd.DataFrame:
    """Mean Jaccard@k of the runs' top-k lists over the users both runs listed (square table).

    J(a, b) = |A ∩ B| / |A ∪ B| per user, averaged; 1 on the diagonal.
    """
    check_comparable(load_records(store, run_ids))
    if int(k) < 1:
        raise ParameterError(f"k must be a positive whole number; got {k!r}.")
    lists = {run_id: recs_top(store, run_id, k) for run_id in run_ids}
    out = pd.DataFrame(np.eye(len(run_ids)), index=list(run_ids), columns=list(run_ids))
    for i, a in enumerate(run_ids):
        for b in run_ids[i + 1 :]:
            value = mean_jaccard(lists[a], lists[b])
            out.loc[a, b] = out.loc[b, a] = value
    return out


def stored_lists(store, run_id: str) -> pd.DataFrame:
    """user_code, rank, item_code of a run's stored top lists (recs.parquet)."""
    return pd.read_parquet(store.folder(run_id) / "recs.parquet", columns=[S.USER, "rank", S.ITEM])


def recs_top(store, run_id: str, k: int) -> pd.DataFrame:
    """user_code, item_code of each user's top-k stored recommendations."""
    recs = stored_lists(store, run_id)
    return recs.loc[recs["rank"] <= int(k), [S.USER, S.ITEM]]


def mean_jaccard(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Mean per-user Jaccard of two (user_code, item_code) list tables, shared users only."""
    size_a = a.groupby(S.USER).size().rename("na")
    size_b = b.groupby(S.USER).size().rename("nb")
    sizes = pd.concat([size_a, size_b], axis=1, join="inner")
    if sizes.empty:
        return float("nan")
    common = a.merge(b, on=[S.USER, S.ITEM]).groupby(S.USER).size()
    inter = common.reindex(sizes.index, fill_value=0).to_numpy(dtype=np.float64)
    union = sizes["na"].to_numpy() + sizes["nb"].to_numpy() - inter
    return float(np.mean(np.where(union > 0, inter / np.maximum(union, 1), 1.0)))


def _per_user(store, run_id: str) -> pd.DataFrame:
    return pd.read_parquet(store.folder(run_id) / "per_user.parquet")
