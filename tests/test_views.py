"""dashboard.views and dashboard.views_user: the sentences, run picks and user tables of the
Compare and User explorer pages, by hand."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from core.data.dataset import Dataset
from core.data.split import split
from core.errors import ParameterError
from core.models import make_model
from core.runs.pipeline import LoadedRun
from dashboard import views as V
from dashboard import views_user as U

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


def test_board_metrics_groups_in_display_order():
    columns = ["run_id", "model", "recall@10", "ndcg@10", "auc", "gini@10", "ndcg@5", "fit_s"]
    assert V.board_metrics(columns, 10) == {
        "accuracy": ["ndcg@10", "recall@10"],
        "plain": ["auc"],
        "beyond": ["gini@10"],
    }
    assert V.board_metrics(columns, 20) == {"accuracy": [], "plain": ["auc"], "beyond": []}


def test_default_runs_baseline_and_option():
    def rec(run_id, model, split="loo", seed=42, ndcg=None):
        metrics = {"test": {"ndcg@10": ndcg}} if ndcg is not None else {}
        return {"run_id": run_id, "model": model, "split": split, "seed": seed, "metrics": metrics}

    newest_first = [
        rec("e2", "ease", ndcg=0.31234),
        rec("p2", "pop", split="temporal"),  # another split: not preselected
        rec("e1", "ease"),  # an older ease: the newer one is picked
        rec("p1", "pop"),
        rec("k1", "itemknn", seed=7),  # another seed
        rec("b1", "bpr"),
    ]
    assert V.default_runs(newest_first, 3) == ["e2", "p1", "b1"]
    assert V.default_runs(newest_first, 2) == ["e2", "p1"]
    assert V.default_runs([], 3) == []
    assert V.default_baseline(newest_first[2:4]) == "e1"  # no scores: the first
    scored = [rec("e3", "ease", ndcg=0.3), rec("p3", "pop", ndcg=0.04), rec("b3", "bpr", ndcg=0.1)]
    assert V.default_baseline(scored) == "p3"  # the weakest run, whatever its model
    assert V.default_baseline(scored[::2]) == "b3"
    assert V.run_option(newest_first[0]) == "ease · e2 (loo split)"
    assert V.run_option(newest_first[0], with_score=True) == "ease · e2 (loo split) · NDCG@10 0.312"
    assert V.run_option(newest_first[1], with_score=True) == "pop · p2 (temporal split)"


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
    seg = U.user_segments(tiny, parts).set_index("user_id")
    assert seg.loc[["a", "b", "c"], "n_known"].tolist() == [3, 2, 2]
    assert seg.loc[["a", "b", "c"], "n_test"].tolist() == [1, 0, 0]  # c's test item is known
    assert seg.loc["a", "activity"] == "1-5"
    assert seg.loc["a", "cold_user"] == "cold (<=5 known)"
    assert seg.loc[["a", "b", "c"], "scenario"].tolist() == ["video", "shop", "video"]


def test_user_history_in_time_order_with_names_and_parts(tiny):
    parts = split(tiny, "loo")
    code = int(tiny.user_codes(["a"])[0])
    hist = U.user_history(tiny, parts, code)
    assert hist["title"].tolist() == ["Xanadu", "Yellow", "Zebra", "Wolf"]
    assert hist["part"].tolist() == ["train", "train", "valid", "test"]
    assert hist["category"].fillna("?").tolist() == ["Comedy", "?", "Drama", "Drama"]
    assert hist["scenario"].tolist() == ["video", "video", "shop", "video"]
    assert hist["time"].iloc[0] == pd.Timestamp("2023-11-14 22:13:20")
    assert U.held_out(parts, code).tolist() == tiny.item_codes(["w"]).tolist()
    assert U.held_out(parts, int(tiny.user_codes(["c"])[0])).tolist() == []
    with pytest.raises(ParameterError, match="User code 9 is outside 0..2"):
        U.user_history(tiny, parts, 9)


def test_top_list_marks_hits_and_drops_padding(tiny):
    parts = split(tiny, "loo")
    model = make_model("pop").fit(parts.train)
    model.set_history(parts.known_for("test"))
    loaded = LoadedRun({}, tiny, parts, model)
    a = int(tiny.user_codes(["a"])[0])
    held = U.held_out(parts, a)
    table = U.top_list(loaded, a, 3, held=held)
    # a knows x, y, z: only w is left to recommend, and it is the held-out item
    assert table["title"].tolist() == ["Wolf"]
    assert table["hit"].tolist() == [True]
    assert table["score"].tolist() == [0.0]  # w has no training interaction
    b = int(tiny.user_codes(["b"])[0])
    other = U.top_list(loaded, b, 2)
    assert other["title"].tolist() == ["Xanadu", "Wolf"]  # x: 2 training interactions
    assert other["score"].tolist() == [2.0, 0.0] and not other["hit"].any()


def test_as_time_units():
    assert U.as_time(np.array([T0]))[0] == np.datetime64("2023-11-14T22:13:20")
    assert U.as_time(np.array([T0 * 1000]))[0] == np.datetime64("2023-11-14T22:13:20")
    assert U.as_time(np.array([3, 4])).tolist() == [3, 4]
    assert U.as_time(np.array([T0]), has_timestamps=False).tolist() == [T0]


def test_finding_users_by_segment_and_id(tiny):
    seg = U.user_segments(tiny, split(tiny, "loo"))
    assert U.testable_users(seg) == ["a"]  # only a has a held-out item
    assert U.testable_users(seg[seg["user_id"] != "a"]) == ["b", "c"]  # none: everyone
    assert U.segment_kinds(seg) == ["activity", "cold_user", "scenario"]
    assert U.segment_counts(seg, "scenario").to_dict() == {"video": 1}
    assert U.segment_members(seg, "scenario", "video") == ["a"]
    assert U.segment_members(seg, "scenario", "shop") == []
    a = int(tiny.user_codes(["a"])[0])
    assert U.find_user(seg, " a ") == a
    assert U.find_user(seg, "nobody") is None
    facts = U.profile_facts(seg.iloc[a], n_held=1)
    assert facts[0] == ("Known interactions", "3", "Train + validation.")
    assert [f[1] for f in facts[1:]] == ["1", "1-5", "video"]
    assert U.attributes_line(tiny, a) == ""  # no user table


def test_list_view_marks_hits_and_counts_them():
    table = pd.DataFrame(
        {
            "rank": [1, 2, 3],
            "item_code": [7, 8, 9],
            "title": ["A", "B", "C"],
            "category": ["x", "y", None],
            "score": [0.9, 0.5, 0.1],
            "hit": [False, True, True],
        }
    )
    heading, shown = U.list_view(table, "ease")
    assert heading == "**ease** — 2 hits"
    assert shown["#"].tolist() == ["1", "2 ✔", "3 ✔"]
    # issue 16 point 6: the score before the title, so 5 narrow lists still show it
    assert list(shown.columns) == ["#", "score", "title", "category"]
    assert U.list_view(table.iloc[:2], "pop")[0] == "**pop** — 1 hit"
    rows = list(table.itertuples())
    assert [U.item_option(r) for r in rows[:2]] == ["#1 A", "#2 B (held out)"]


def test_explanation_sentence_and_fast_first(tiny):
    exp = SimpleNamespace(
        item_title="Wolf",
        score=0.75,
        base_value=1.0,
        contributions=pd.DataFrame({"value": [-0.25, 0.0], "item_code": [3, None]}),
        method="closed_form",
        seconds=0.01234,
        personal=True,
        model="ease",
    )
    assert U.explanation_sentence(exp, "ease") == (
        "**ease** scores “Wolf” **0.7500** for this user. Knowing none of the features below, "
        "it would score **1.0000** (the base value); together they take away **0.2500**. "
        "Each history item is its own feature (1 named; only items that together carry under "
        "5% of the total are grouped). (exact closed form, 0.01 s)"
    )
    flat = SimpleNamespace(**{**vars(exp), "score": 1.0, "method": "permutation"})
    flat.contributions = pd.DataFrame({"value": [0.0], "item_code": [4]})
    assert "None of this user's features moves" in U.explanation_sentence(flat, "knn")
    assert U.explanation_sentence(flat, "knn").endswith("(shap permutation estimate, 0.01 s)")
    # issue 16 point 9: a model with no per-user features says so in one sentence
    pop = SimpleNamespace(**{**vars(flat), "personal": False, "model": "pop", "score": 583.0})
    assert U.same_for_everyone(pop) and not U.same_for_everyone(exp)
    assert U.explanation_sentence(pop, "pop · run 1").startswith(
        "**pop · run 1** scores every user the same: its score for “Wolf” (**583**) does not "
        "depend on the user, and nothing in the user's history changes it"
    )
    parts = split(tiny, "loo")
    pop, knn = make_model("pop").fit(parts.train), make_model("itemknn").fit(parts.train)
    assert U.fast_first([pop, knn]) == 1  # item-kNN explains in closed form
    assert U.fast_first([pop]) == 0


def test_metrics_long_one_row_per_metric_with_whole_names():
    """Issue 16: the Runs page's 'All metrics' rows carry whole, readable metric names."""
    metrics = {
        "valid": {"ndcg@10": 0.2, "ndcg@5": 0.1, "auc": 0.8, "n_users": 30},
        "test": {"ndcg@10": 0.3, "map@10": 0.25, "precision@20": 0.05, "coverage@10": 0.4,
                 "ndcg@5": 0.15, "auc": 0.9, "n_users": 30, "custom": 1.0},
    }  # fmt: skip
    table = V.metrics_long(metrics)
    assert table["metric"].tolist() == [
        "NDCG@5",
        "NDCG@10",
        "Precision@20",
        "MAP@10 (÷min(|T|,k), RecBole)",
        "AUC",
        "Coverage@10",
        "custom",
    ]
    assert table["test"].tolist() == [0.15, 0.3, 0.05, 0.25, 0.9, 0.4, 1.0]
    valid = table["valid"].tolist()
    assert valid[:2] == [0.1, 0.2] and valid[4] == 0.8
    assert np.isnan(valid[2]) and np.isnan(valid[5])  # measured on the test split only
    assert V.metrics_long({}).empty


def test_one_group_sentence_replaces_a_one_group_chart():
    """Issue 16: ML-100k has no cold users, so 'cold and warm' is one group: a sentence."""
    table = pd.DataFrame(
        {
            "segment_kind": ["all", "activity", "activity", "cold_user", "scenario"],
            "segment": ["all users", "21-50", "51+", "warm (>5)", "shop"],
            "n_users": [943, 392, 551, 943, 943],
        }
    )
    assert V.one_group_sentence(table, "activity") is None  # two groups: drawn
    assert V.one_group_sentence(table, "cold_user") == (
        "All 943 test users are warm (>5): no cold users (at most 5 known items) to compare with."
    )
    assert V.one_group_sentence(table, "scenario") == (
        "All 943 test users are in one scenario group (shop), so there is no breakdown by "
        "scenario to compare."
    )
    assert V.one_group_sentence(table, "absent") is None


def test_leaderboard_columns_in_view_fit_and_the_rest_fold_away():
    """Issue 16: the Compare leaderboard ran past the page; accuracy and fit time stay."""
    groups = V.board_metrics(["ndcg@10", "map@10", "map_trec@10", "auc", "coverage@10"], 10)
    main, more = V.board_columns(groups)
    assert main == ["run", "ndcg@10", "map@10", "fit_s"]
    assert more == ["run", "map_trec@10", "auc", "coverage@10", "model", "run_id"]
    assert V.short_metric_label("map@10") == "MAP@10"
    assert V.short_metric_label("map_trec@10", with_k=False) == "MAP (trec_eval)"
    assert V.short_metric_label("avg_pop@10", with_k=False) == "Avg popularity"
    assert V.short_metric_label("auc") == "AUC"
