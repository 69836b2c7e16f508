"""Labels, sentences and run selection shared by the Compare and User explorer pages.

Pure functions over run records, so the pages stay thin and every sentence a product
manager reads ("ease is better than pop for NDCG@10 by 0.12 …") is tested here. The User
explorer's tables are in `dashboard.views_user`, the Items page's in `dashboard.views_items`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from core.eval.beyond import COLD_MAX
from core.eval.compare import PLAIN_METRICS

#: readable names of metric families (keys are lower-case, as in run records)
METRIC_NAMES = {
    "ndcg": "NDCG",
    "recall": "Recall",
    "precision": "Precision",
    "hit": "Hit rate",
    "mrr": "MRR",
    "map": "MAP",
    "map_trec": "MAP",
    "auc": "AUC",
    "rmse": "RMSE",
    "mae": "MAE",
    "novelty": "Novelty",
    "coverage": "Coverage",
    "diversity": "Diversity",
    "avg_pop": "Avg popularity",
    "tail_share": "Long-tail share",
    "gini": "Gini",
    "cold_item_recall": "Cold-item recall",
}
ACCURACY = ("ndcg", "recall", "precision", "hit", "mrr", "map", "map_trec")
#: where tools differ, which convention a metric follows (said in its label)
CONVENTIONS = {"map": "÷min(|T|,k), RecBole", "map_trec": "÷|T|, trec_eval"}
BEYOND = ("coverage", "novelty", "diversity", "avg_pop", "tail_share", "gini")
#: metrics where a lower value is the better one
LOWER_IS_BETTER = ("rmse", "mae")
SEGMENT_KINDS = {"activity": "Activity", "cold_user": "Cold users", "scenario": "Scenario"}


#: the default baseline of paired tests (a default pick, not a decision about the model)
def metric_label(name: str) -> str:
    """'ndcg@10' -> 'NDCG@10', 'map@10' -> 'MAP@10 (÷min(|T|,k), RecBole)'; unknown names
    are returned unchanged."""
    family, _, k = str(name).partition("@")
    readable = METRIC_NAMES.get(family, family)
    label = f"{readable}@{k}" if k else readable
    return f"{label} ({CONVENTIONS[family]})" if family in CONVENTIONS else label


def run_labels(records: Sequence[Mapping]) -> dict[str, str]:
    """Short names for runs: the model name, plus the run id where two runs share a model."""
    models = [str(r.get("model", "run")) for r in records]
    return {
        r["run_id"]: m if models.count(m) == 1 else f"{m} ({r['run_id']})"
        for r, m in zip(records, models, strict=True)
    }


def run_option(record: Mapping, with_score: bool = False) -> str:
    """A run in a picker: 'ease · RUN_ID (loo split)', plus its test NDCG@10 when asked."""
    text = f"{record.get('model')} · {record['run_id']} ({record.get('split')} split)"
    ndcg = (record.get("metrics") or {}).get("test", {}).get("ndcg@10")
    if with_score and isinstance(ndcg, (int, float)):
        text += f" · NDCG@10 {ndcg:.3f}"
    return text


def default_runs(finished: Sequence[Mapping], limit: int) -> list[str]:
    """Run ids preselected in a picker: the newest run of each model (up to `limit`) that
    shares the newest run's split and seed, so the picks can be compared at once.

    `finished` is newest first (as `RunStore.list` returns it).
    """
    if not finished:
        return []
    newest, picked = finished[0], {}
    for rec in finished:
        same = (rec.get("split"), rec.get("seed")) == (newest.get("split"), newest.get("seed"))
        if same and rec.get("model") not in picked and len(picked) < limit:
            picked[rec.get("model")] = rec["run_id"]
    return list(picked.values())


def default_baseline(records: Sequence[Mapping]) -> str:
    """The run other runs are tested against by default: the one with the lowest test
    NDCG@10 (the bar every other model must clear — usually the popularity list), else the
    first run when none has that metric. Decided by the results, never by a model's name."""
    scored = [
        (float(r["metrics"]["test"]["ndcg@10"]), i)
        for i, r in enumerate(records)
        if (r.get("metrics") or {}).get("test", {}).get("ndcg@10") is not None
    ]
    return records[min(scored)[1]]["run_id"] if scored else records[0]["run_id"]


def board_metrics(board_columns, k: int) -> dict[str, list[str]]:
    """The metric columns of a `core.eval.compare.leaderboard`, grouped for display:
    {'accuracy': ['ndcg@k', …], 'plain': ['auc', …], 'beyond': ['coverage@k', …]}, each in
    the order of ACCURACY / PLAIN_METRICS / BEYOND and only those the board has."""
    have = set(board_columns)
    return {
        "accuracy": [f"{m}@{k}" for m in ACCURACY if f"{m}@{k}" in have],
        "plain": [m for m in PLAIN_METRICS if m in have],
        "beyond": [f"{m}@{k}" for m in BEYOND if f"{m}@{k}" in have],
    }


def board_columns(groups: Mapping[str, Sequence[str]]) -> tuple[list[str], list[str]]:
    """The Compare leaderboard's columns (`groups`: `board_metrics`): (in view, folded away).

    In view, what fits the page: the run, the top-k accuracy metrics (MAP as RecBole counts
    it) and the fit time. Folded away: MAP as trec_eval counts it, AUC and rating error, the
    beyond-accuracy metrics, the model and the run id (issue 16: one table of all of them
    ran past the page width)."""
    trec = [m for m in groups["accuracy"] if m.startswith("map_trec@")]
    accuracy = [m for m in groups["accuracy"] if m not in trec]
    rest = [*trec, *groups["plain"], *groups["beyond"]]
    return ["run", *accuracy, "fit_s"], ["run", *rest, "model", "run_id"]


def short_metric_label(name: str, with_k: bool = True) -> str:
    """A column header that fits a narrow column ('map@10' -> 'MAP@10', with_k=False:
    'coverage@10' -> 'Coverage' where K is named above the table); the convention of MAP
    only where both are shown ('map_trec@10' -> 'MAP (trec_eval)'). `metric_label` gives
    the full name, for the column's help."""
    family, _, k = str(name).partition("@")
    label = METRIC_NAMES.get(family, family) + (f"@{k}" if k and with_k else "")
    return f"{label} (trec_eval)" if family == "map_trec" else label


def metrics_long(metrics: Mapping[str, Mapping]) -> pd.DataFrame:
    """A run record's `metrics` ({"test": {...}, "valid": {...}}) as one row per metric.

    Columns: metric (its whole readable label, 'MAP@10 (÷min(|T|,k), RecBole)'), test, valid
    (NaN where that split lacks it). Rows follow ACCURACY, PLAIN_METRICS, BEYOND, then any
    other metric by name; within a family, by K. Counts (n_users) are not metrics: left out.
    """
    test, valid = metrics.get("test") or {}, metrics.get("valid") or {}
    order = {f: i for i, f in enumerate((*ACCURACY, *PLAIN_METRICS, *BEYOND))}

    def rank(key: str) -> tuple:
        family, _, k = key.partition("@")
        return (order.get(family, len(order)), family, int(k) if k.isdigit() else 0)

    keys = sorted({*test, *valid} - {"n_users"}, key=rank)
    return pd.DataFrame(
        {
            "metric": [metric_label(m) for m in keys],
            "test": [_float(test.get(m)) for m in keys],
            "valid": [_float(valid.get(m)) for m in keys],
        }
    )


def one_group_sentence(segments: pd.DataFrame, kind: str) -> str | None:
    """A sentence instead of a one-bar-group chart: None when `kind` has several groups.

    `segments` is `core.eval.compare.segment_table`. "All 943 test users are warm (>5): no
    cold users (at most 5 known items) to compare with." for a data set without cold users.
    """
    part = segments[segments["segment_kind"] == kind]
    if len(part) != 1:
        return None
    segment, n_users = str(part["segment"].iloc[0]), int(part["n_users"].iloc[0])
    if kind == "cold_user":
        cold = f"cold users (at most {COLD_MAX} known items)"
        other = f"warm users (more than {COLD_MAX})" if segment.startswith("cold") else cold
        return f"All {n_users:,} test users are {segment}: no {other} to compare with."
    what = SEGMENT_KINDS.get(kind, kind.replace("_", " ")).lower()
    return (
        f"All {n_users:,} test users are in one {what} group ({segment}), so there is no "
        f"breakdown by {what} to compare."
    )


def format_p(p: float) -> str:
    """'p < 0.001', 'p = 0.012', 'p = 0.43'."""
    if p is None or math.isnan(p):
        return "p not available"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def paired_sentence(row: Mapping, run: str, baseline: str, confidence: float = 0.95) -> str:
    """One plain sentence for a `core.eval.compare.paired_table` row.

    "ease is better than pop for NDCG@10 by 0.12 (95% CI 0.10–0.14, p < 0.001)." when the
    Wilcoxon test is significant, else that the difference is not clear. A row with a
    `p_holm` column quotes that Holm-adjusted p-value, and says so when the table held
    several comparisons (`n_compared` > 1; with one, Holm's p is the test's own).
    """
    metric = metric_label(row["metric"])
    diff, low, high = float(row["mean_diff"]), float(row["ci_low"]), float(row["ci_high"])
    digits = _digits(diff, low, high)
    dash = "–" if low >= 0 else " to "  # "0.10–0.14", but "-0.02 to 0.01"
    ci = f"{int(round(confidence * 100))}% CI {low:.{digits}f}{dash}{high:.{digits}f}"
    p = format_p(float(row["p_holm"] if "p_holm" in row else row["p_value"]))
    p = f"Holm-adjusted {p}" if int(row.get("n_compared", 1)) > 1 else p
    stats = f"({ci}, {p}, {int(row['n_users']):,} users)"
    if not bool(row["significant"]) or diff == 0:
        return (
            f"{run} and {baseline} are not clearly different for {metric}: the difference is "
            f"{diff:+.{digits}f} {stats}."
        )
    lower_better = str(row["metric"]).split("@")[0] in LOWER_IS_BETTER
    better = (diff > 0) != lower_better
    word = "better" if better else "worse"
    return f"{run} is {word} than {baseline} for {metric} by {abs(diff):.{digits}f} {stats}."


# -- helpers ---------------------------------------------------------------------------------


def _digits(diff: float, low: float, high: float) -> int:
    """Decimals that show the difference (or, when it is 0, the CI) with 2 significant digits."""
    mag = abs(diff) or max(abs(low), abs(high))
    if not mag or math.isnan(mag):
        return 2
    return int(min(6, max(2, 1 - math.floor(math.log10(mag)))))


def _float(value) -> float:
    """A metric value as a float; NaN when missing or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
