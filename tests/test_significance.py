"""Paired comparison: identical inputs, a clear shift, alignment by user, bootstrap CI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import ParameterError
from core.eval.significance import bootstrap_mean_ci, compare_per_user, paired_compare


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
