"""Paired comparison of two models on the same users: bootstrap CI and Wilcoxon test.

Both models must have been evaluated on the same split; per-user values are aligned by
user_code (inner join), so each user contributes one difference b - a; mean_diff > 0
means model B scores higher on that metric. Several comparisons against one baseline are
corrected for multiplicity with `holm` (Holm 1979, step-down Bonferroni).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from core.data import schema as S
from core.errors import ParameterError

#: bootstrap resamples drawn per chunk are limited to this many index cells (memory)
_CELLS_PER_CHUNK = 4_000_000


def bootstrap_mean_ci(
    values, *, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval (low, high) of the mean of `values`.

    Resamples users with replacement `n_boot` times (vectorised in chunks). NaN values are
    dropped first; no values give (nan, nan); one value gives (v, v).
    """
    _check_options(n_boot, confidence)
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot, dtype=np.float64)
    chunk = max(1, _CELLS_PER_CHUNK // len(x))
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        idx = rng.integers(0, len(x), size=(size, len(x)))  # (size, n)
        means[start : start + size] = x[idx].mean(1)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def paired_compare(
    a: pd.Series,
    b: pd.Series,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Compare per-user values of model A and model B (Series indexed by user_code).

    Returns mean_a, mean_b, mean_diff (= mean of b - a over the shared users), ci_low /
    ci_high (percentile bootstrap of the mean difference), p_value (two-sided Wilcoxon
    signed-rank test; 1.0 when every difference is zero), n_users and significant
    (p_value < 1 - confidence). Users missing from either side, or NaN on either, are left
    out.
    """
    _check_options(n_boot, confidence)
    joined = pd.concat(
        [pd.Series(a, dtype=np.float64).rename("a"), pd.Series(b, dtype=np.float64).rename("b")],
        axis=1,
        join="inner",
    ).dropna()
    va, vb = joined["a"].to_numpy(), joined["b"].to_numpy()
    diff = vb - va
    n = len(diff)
    if n == 0:
        raise ParameterError(
            "The two result tables share no users (0 after aligning by user_code); compare "
            "runs evaluated on the same dataset and split."
        )
    low, high = bootstrap_mean_ci(diff, n_boot=n_boot, confidence=confidence, seed=seed)
    p_value = _wilcoxon_p(diff)
    return {
        "mean_a": float(va.mean()),
        "mean_b": float(vb.mean()),
        "mean_diff": float(diff.mean()),
        "ci_low": low,
        "ci_high": high,
        "p_value": p_value,
        "n_users": n,
        "significant": bool(p_value < 1.0 - confidence),
    }


def holm(p_values) -> np.ndarray:
    """Holm-adjusted p-values of m tests, in the order given.

    Sort ascending p_(1) <= ... <= p_(m); adjusted p_(i) = max over j <= i of
    min(1, (m - j + 1) p_(j)). Rejecting where adjusted p < alpha keeps the family-wise
    error rate at alpha for any dependence between the tests. NaN p-values stay NaN and do
    not count in m; one test is returned unchanged.
    """
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    scaled = (m - np.arange(m)) * p[order]  # (m - j + 1) p_(j) for j = 1..m
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def compare_per_user(
    per_user_a: pd.DataFrame, per_user_b: pd.DataFrame, metric: str, **options
) -> dict:
    """`paired_compare` on one metric column of two `EvalResult.per_user` tables."""
    for name, table in (("A", per_user_a), ("B", per_user_b)):
        if metric not in table.columns:
            allowed = ", ".join(c for c in table.columns if c not in (S.USER, "n_known"))
            raise ParameterError(
                f"Metric '{metric}' is not in model {name}'s per-user results; use one of "
                f"{allowed}."
            )
    a = per_user_a.set_index(S.USER)[metric]
    b = per_user_b.set_index(S.USER)[metric]
    return {"metric": metric, **paired_compare(a, b, **options)}


def _wilcoxon_p(diff: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value; zero differences are dropped ('wilcox')."""
    if not np.any(diff != 0):
        return 1.0
    result = stats.wilcoxon(diff, zero_method="wilcox", alternative="two-sided")
    p = float(result.pvalue)
    return 1.0 if np.isnan(p) else p


def _check_options(n_boot: int, confidence: float) -> None:
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ParameterError(f"n_boot must be a positive whole number; got {n_boot!r}.")
    if not 0.0 < confidence < 1.0:
        raise ParameterError(f"confidence must be between 0 and 1 (e.g. 0.95); got {confidence!r}.")
