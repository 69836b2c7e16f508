"""dashboard.views: the sentences and user tables of the Compare and User pages, by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.data.dataset import Dataset
from core.data.split import split
from core.errors import ParameterError
from core.models import make_model
from core.runs.pipeline import LoadedRun
from dashboard import views as V

T0 = 1_700_000_000  # Unix seconds


def _row(diff, low, high, p, significant, n=3000, metric="ndcg@10") -> dict:
    return {
        "metric": metric,
        "mean_diff": diff,
        "ci_low": low,
        "ci_high": high,
        "p_value": p,
        "significant": significant,
        "n_users": n,
    }


def test_paired_sentence_significant_improvement():
    row = _row(0.1234, 0.1012, 0.1456, 1e-5, True)
    assert V.paired_sentence(row, "ease", "pop") == (
        "ease is better than pop for NDCG@10 by 0.12 (95% CI 0.10–0.15, p < 0.001, 3,000 users)."
    )


def test_paired_sentence_worse_small_and_lower_is_better():
    row = _row(-0.0034, -0.0051, -0.0012, 0.0042, True, n=120, metric="recall@10")
    assert V.paired_sentence(row, "bpr", "pop") == (
        "bpr is worse than pop for Recall@10 by 0.0034 "
        "(95% CI -0.0051 to -0.0012, p = 0.004, 120 users)."
    )
    rmse = _row(-0.05, -0.07, -0.03, 0.01, True, n=10, metric="rmse")
    assert V.paired_sentence(rmse, "ease", "pop").startswith("ease is better than pop for RMSE by")


def test_paired_sentence_not_significant():
    row = _row(0.004, -0.002, 0.01, 0.3, False, n=300)
    assert V.paired_sentence(row, "ease", "pop") == (
        "ease and pop are not clearly different for NDCG@10: the difference is +0.0040 "
        "(95% CI -0.0020 to 0.0100, p = 0.30, 300 users)."
    )


@pytest.mark.parametrize(
    "name, label",
    [("ndcg@10", "NDCG@10"), ("auc", "AUC"), ("tail_share@5", "Long-tail share@5"), ("x@3", "x@3")],
)
def test_metric_label(name, label):
    assert V.metric_label(name) == label


def test_format_p_and_run_labels():
    assert [V.format_p(p) for p in (0.0004, 0.0123, 0.4321)] == [
        "p < 0.001",
        "p = 0.012",
        "p = 0.43",
    ]
    records = [
        {"run_id": "e1", "model": "ease"},
        {"run_id": "p1", "model": "pop"},
        {"run_id": "e2", "model": "ease"},
    ]
    assert V.run_labels(records) == {"e1": "ease (e1)", "p1": "pop", "e2": "ease (e2)"}


@pytest.fixture
def tiny() -> Dataset:
    """a: x, y (video), z (shop), w (video) -> test w; b: 2 items (train only); c: test x known."""
    rows = [
        ("a", "x", T0, "video"),
        ("a", "y", T0 + 86400, "video"),
        ("a", "z", T0 + 2 * 86400, "shop"),
        ("a", "w", T0 + 3 * 86400, "video"),
        ("b", "y", T0, "shop"),
        ("b", "z", T0 + 60, "shop"),
        ("c", "x", T0, "video"),
        ("c", "y", T0 + 60, "video"),
        ("c", "x", T0 + 120, "video"),
    ]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "scenario"])
    items = pd.DataFrame(
        {
            "item_id": ["w", "x", "y", "z"],
            "title": ["Wolf", "Xanadu", "Yellow", "Zebra"],
            "category": ["Drama", "Comedy", None, "Drama"],
        }
    )
    return Dataset.from_frames("tiny", inter, items)


def test_user_segments_buckets_scenario_and_held_out_counts(tiny):
    parts = split(tiny, "loo")
    seg = V.user_segments(tiny, parts).set_index("user_id")
    assert seg.loc[["a", "b", "c"], "n_known"].tolist() == [3, 2, 2]
    assert seg.loc[["a", "b", "c"], "n_test"].tolist() == [1, 0, 0]  # c's test item is known
    assert seg.loc["a", "activity"] == "1-5"
    assert seg.loc["a", "cold_user"] == "cold (<=5 known)"
    assert seg.loc[["a", "b", "c"], "scenario"].tolist() == ["video", "shop", "video"]


def test_user_history_in_time_order_with_names_and_parts(tiny):
    parts = split(tiny, "loo")
    code = int(tiny.user_codes(["a"])[0])
    hist = V.user_history(tiny, parts, code)
    assert hist["title"].tolist() == ["Xanadu", "Yellow", "Zebra", "Wolf"]
    assert hist["part"].tolist() == ["train", "train", "valid", "test"]
    assert hist["category"].fillna("?").tolist() == ["Comedy", "?", "Drama", "Drama"]
    assert hist["scenario"].tolist() == ["video", "video", "shop", "video"]
    assert hist["time"].iloc[0] == pd.Timestamp("2023-11-14 22:13:20")
    assert V.held_out(parts, code).tolist() == tiny.item_codes(["w"]).tolist()
    assert V.held_out(parts, int(tiny.user_codes(["c"])[0])).tolist() == []
    with pytest.raises(ParameterError, match="User code 9 is outside 0..2"):
        V.user_history(tiny, parts, 9)


def test_top_list_marks_hits_and_drops_padding(tiny):
    parts = split(tiny, "loo")
    model = make_model("pop").fit(parts.train)
    model.set_history(parts.known_for("test"))
    loaded = LoadedRun({}, tiny, parts, model)
    a = int(tiny.user_codes(["a"])[0])
    held = V.held_out(parts, a)
    table = V.top_list(loaded, a, 3, held=held)
    # a knows x, y, z: only w is left to recommend, and it is the held-out item
    assert table["title"].tolist() == ["Wolf"]
    assert table["hit"].tolist() == [True]
    assert table["score"].tolist() == [0.0]  # w has no training interaction
    b = int(tiny.user_codes(["b"])[0])
    other = V.top_list(loaded, b, 2)
    assert other["title"].tolist() == ["Xanadu", "Wolf"]  # x: 2 training interactions
    assert other["score"].tolist() == [2.0, 0.0] and not other["hit"].any()


def test_as_time_units():
    assert V.as_time(np.array([T0]))[0] == np.datetime64("2023-11-14T22:13:20")
    assert V.as_time(np.array([T0 * 1000]))[0] == np.datetime64("2023-11-14T22:13:20")
    assert V.as_time(np.array([3, 4])).tolist() == [3, 4]
    assert V.as_time(np.array([T0]), has_timestamps=False).tolist() == [T0]
