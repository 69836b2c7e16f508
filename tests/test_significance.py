"""Paired comparison: identical inputs, a clear shift, alignment by user, bootstrap CI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import ParameterError
from core.eval.significance import bootstrap_mean_ci, compare_per_user, holm, paired_compare


def test_identical_inputs_give_zero_difference_and_p_one():
    values = pd.Series(np.random.default_rng(0).random(50), index=np.arange(50))
    out = paired_compare(values, values.copy())
    assert out["mean_diff"] == 0.0
    assert out["ci_low"] == 0.0 and out["ci_high"] == 0.0
    assert out["p_value"] == 1.0
    assert out["significant"] is False
    assert out["n_users"] == 50


def test_clear_shift_is_significant_and_ci_excludes_zero():
    rng = np.random.default_rng(1)
    a = pd.Series(rng.random(200), index=np.arange(200))
    b = a + 0.1 + rng.normal(0, 0.02, 200)
    out = paired_compare(a, b)
    assert out["mean_diff"] == pytest.approx((b - a).mean())
    assert out["p_value"] < 0.05 and out["significant"] is True
    assert 0 < out["ci_low"] < out["mean_diff"] < out["ci_high"]
    # the reverse comparison mirrors the interval
    back = paired_compare(b, a)
    assert back["ci_high"] < 0
    assert back["p_value"] == pytest.approx(out["p_value"])


def test_noise_without_shift_is_not_significant():
    rng = np.random.default_rng(2)
    a = pd.Series(rng.random(300))
    b = pd.Series(rng.permutation(a.to_numpy()))  # same distribution, no paired shift
    out = paired_compare(a, b)
    assert out["ci_low"] < 0 < out["ci_high"]
    assert out["significant"] is False


def test_alignment_is_by_user_code_inner_join():
    a = pd.Series([0.1, 0.2, 0.3], index=[1, 2, 3])
    b = pd.Series([0.9, 0.5, 0.4], index=[4, 3, 2])  # users 2 and 3 shared, other order
    out = paired_compare(a, b)
    # diffs: user 2: 0.4 - 0.2 = 0.2; user 3: 0.5 - 0.3 = 0.2
    assert out["n_users"] == 2
    assert out["mean_a"] == pytest.approx(0.25) and out["mean_b"] == pytest.approx(0.45)
    assert out["mean_diff"] == pytest.approx(0.2)


def test_compare_per_user_tables_and_unknown_metric():
    ta = pd.DataFrame({"user_code": [0, 1, 2], "ndcg@10": [0.0, 0.5, 1.0]})
    tb = pd.DataFrame({"user_code": [2, 1, 0], "ndcg@10": [1.0, 1.0, 1.0]})
    out = compare_per_user(ta, tb, "ndcg@10")
    assert out["metric"] == "ndcg@10" and out["mean_diff"] == pytest.approx(0.5)
    with pytest.raises(ParameterError, match="recall@10"):
        compare_per_user(ta, tb, "recall@10")
    with pytest.raises(ParameterError, match="share no users"):
        paired_compare(pd.Series([1.0], index=[0]), pd.Series([1.0], index=[1]))


def test_bootstrap_mean_ci_covers_mean_and_is_seeded():
    values = np.random.default_rng(3).normal(5.0, 1.0, 400)
    low, high = bootstrap_mean_ci(values, n_boot=1000)
    # standard error ~ 1/sqrt(400) = 0.05 -> 95% CI about mean +- 0.1
    assert low < values.mean() < high
    assert 0.15 < high - low < 0.25
    assert bootstrap_mean_ci(values, n_boot=1000) == (low, high)
    assert bootstrap_mean_ci([2.0]) == (2.0, 2.0)
    assert all(np.isnan(bootstrap_mean_ci([])))
    with pytest.raises(ParameterError, match="confidence"):
        bootstrap_mean_ci(values, confidence=95)


def test_holm_hand_values():
    # sorted 0.01, 0.02, 0.03, 0.5 (m = 4): 4 * 0.01 = 0.04; 3 * 0.02 = 0.06;
    # 2 * 0.03 = 0.06; 1 * 0.5 = 0.5; running maximum keeps them monotone
    adjusted = holm([0.03, 0.5, 0.01, 0.02])
    np.testing.assert_allclose(adjusted, [0.06, 0.5, 0.04, 0.06])
    # the running maximum matters: sorted 0.001, 0.02, 0.025 scale to 0.003, 0.04, 0.025,
    # and the last may not fall below the one before -> 0.04
    np.testing.assert_allclose(holm([0.02, 0.025, 0.001]), [0.04, 0.04, 0.003])
    # capped at 1; NaN stays NaN and does not count in m; one test is unchanged
    # (m = 2: 2 * 0.55 = 1.1 -> 1; 0.6 rises to the running maximum 1)
    np.testing.assert_allclose(holm([0.6, np.nan, 0.55]), [1.0, np.nan, 1.0])
    np.testing.assert_allclose(holm([0.6, np.nan, 0.4]), [0.8, np.nan, 0.8])
    assert holm([0.03]).tolist() == [0.03] and holm([]).size == 0
    # never below the unadjusted p, never above Bonferroni
    p = np.random.default_rng(3).random(12) ** 3
    assert (holm(p) >= p).all() and (holm(p) <= np.minimum(1, 12 * p) + 1e-15).all()
