"""Paired comparison of scenario strategies, scenario by scenario.

Every strategy of `compare_strategies` is evaluated on the same test users of each scenario,
so two strategies can be compared user by user there: the mean per-user difference of a
metric with a bootstrap confidence interval and a Wilcoxon p-value
(`core.eval.significance.compare_per_user`), Holm-corrected over the rows that share a
baseline (every other strategy in every scenario). Nothing is retrained: it reads the
per-user tables of `ScenarioEval`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.errors import ParameterError
from core.eval.significance import compare_per_user, holm
from core.scenarios.strategies import ScenarioEval

COLUMNS = (
    "baseline",
    "strategy",
    "scenario",
    "metric",
    "mean_baseline",
    "mean_strategy",
    "mean_diff",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "significant",
    "n_users",
)


def paired_by_scenario(
    results: dict[str, ScenarioEval],
    baseline: str,
    metric: str = "ndcg@10",
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Each other strategy against `baseline` in each scenario (rows in `COLUMNS` order).

    mean_diff = mean over the scenario's shared test users of strategy − baseline; ci_low /
    ci_high its percentile bootstrap interval (not adjusted); p_holm the Holm-adjusted
    p-value over the table's rows; significant = p_holm < 1 − confidence. A scenario
    without test users is left out.
    """
    if baseline not in results:
        raise ParameterError(
            f"Baseline strategy '{baseline}' is not among the results; use one of "
            f"{', '.join(results)}."
        )
    base = results[baseline]
    rows = []
    for name, res in results.items():
        if name == baseline:
            continue
        for scenario, table in base.per_user.items():
            other = res.per_user.get(scenario)
            if other is None or table.empty or other.empty:
                continue
            out = compare_per_user(
                table, other, metric, confidence=confidence, n_boot=n_boot, seed=seed
            )
            rows.append(
                {
                    "baseline": baseline,
                    "strategy": name,
                    "scenario": scenario,
                    "metric": metric,
                    "mean_baseline": out["mean_a"],
                    "mean_strategy": out["mean_b"],
                    "mean_diff": out["mean_diff"],
                    "ci_low": out["ci_low"],
                    "ci_high": out["ci_high"],
                    "p_value": out["p_value"],
                    "n_users": out["n_users"],
                }
            )
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table["p_holm"] = holm(table["p_value"].to_numpy(dtype=np.float64))
    table["significant"] = (table["p_holm"] < 1.0 - confidence).astype(bool)
    return table[list(COLUMNS)]


def paired_all(results: dict[str, ScenarioEval], metric: str = "ndcg@10") -> pd.DataFrame:
    """`paired_by_scenario` against every strategy in turn, concatenated (for storage)."""
    tables = [paired_by_scenario(results, name, metric) for name in results]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=COLUMNS)
