"""Chart builders of the Compare and User pages: the numbers drawn are the numbers given."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard import charts_compare as charts
from dashboard import charts_user as ucharts

LABELS = {"r-ease": "ease", "r-bpr": "bpr", "r-pop": "pop"}


def _contributions(values) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "feature": [f"history:i{i}" for i in range(len(values))],
            "kind": "history",
            "label": [f'watched "Film {i}" ({i + 1} days before)' for i in range(len(values))],
            "value": values,
        }
    )


def test_waterfall_bars_sum_to_the_score_with_the_rest_grouped():
    values = [0.5, -0.3, 0.05, 0.2, -0.01, 0.02]
    base = 0.1
    score = base + sum(values)  # 0.56
    fig = ucharts.shap_waterfall(_contributions(values), base, score, max_features=3)
    bars = fig.data[0]
    assert list(bars.measure) == [
        "absolute",
        "relative",
        "relative",
        "relative",
        "relative",
        "total",
    ]
    # largest |value| first, then the other three features as one bar
    assert list(bars.x[1:4]) == [0.5, -0.3, 0.2]
    assert bars.x[4] == pytest.approx(0.05 - 0.01 + 0.02)
    assert bars.y[4] == "3 other features<br>(each within ±0.05)"
    assert bars.y[0] == "Base value (nothing known)" and bars.y[-1] == "Score"
    assert sum(bars.x[:-1]) == pytest.approx(score)
    assert bars.x[-1] == pytest.approx(0.56)
    assert bars.text[1] == "+0.500" and bars.text[2] == "-0.300"


def test_waterfall_without_rest_and_repeated_labels_keeps_every_bar():
    table = _contributions([0.25, 0.25])
    table["label"] = ["same", "same"]
    fig = ucharts.shap_waterfall(table, 1.0, 1.5, max_features=10)
    assert list(fig.data[0].y) == ["Base value (nothing known)", "same", "same (2)", "Score"]
    assert sum(fig.data[0].x[:-1]) == pytest.approx(1.5)


def test_shap_bar_signs_colours_and_long_labels():
    table = _contributions([-0.4, 0.1, 0.3])
    table.loc[1, "label"] = "x" * 100
    fig = ucharts.shap_bar(table, max_features=2)
    bar = fig.data[0]
    assert list(bar.x) == [-0.4, 0.3]
    assert list(bar.marker.color) == [ucharts.NEGATIVE, ucharts.POSITIVE]
    wrapped = ucharts.shap_bar(table, max_features=3).data[0].y[2]
    lines = wrapped.split("<br>")
    assert len(lines) == ucharts.MAX_LINES and lines[-1].endswith("…")
    assert all(len(line) <= ucharts.WRAP for line in lines)
    # issue 16 point 9: plain decimals on the axis, never SI suffixes ('200p', '100µ')
    fig = ucharts.shap_bar(_contributions([2e-10, -1e-10]))
    assert fig.layout.xaxis.tickformat == ",.8~f"
    assert ucharts.tick_format([0.52, -0.1]) == ",.3~f" and ucharts.tick_format([0]) == ".1~f"


def _paired() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": ["r-ease", "r-bpr"],
            "metric": "ndcg@10",
            "mean_diff": [0.12, 0.004],
            "ci_low": [0.10, -0.002],
            "ci_high": [0.14, 0.01],
            "p_value": [1e-6, 0.3],
            "significant": [True, False],
        }
    )


def test_forest_has_one_row_per_run_with_its_interval():
    fig = charts.forest(_paired(), LABELS, "r-pop")
    dots = fig.data[0]
    assert list(dots.y) == ["ease", "bpr"]
    assert list(dots.x) == [0.12, 0.004]
    assert np.allclose(dots.error_x.array, [0.02, 0.006])
    assert np.allclose(dots.error_x.arrayminus, [0.02, 0.006])
    assert list(dots.marker.color) == [charts.ACCENT, "#999999"]  # grey: not significant
    assert fig.layout.title.text == "NDCG@10: difference to pop (95% CI)"


def test_segment_bars_one_trace_per_run_with_user_counts():
    segments = pd.DataFrame(
        {
            "segment_kind": ["all", "activity", "activity"],
            "segment": ["all users", "1-5", "6-10"],
            "n_users": [30, 10, 20],
            "r-ease": [0.3, 0.2, 0.35],
            "r-pop": [0.1, 0.15, 0.075],
        }
    )
    fig = charts.segment_bars(segments, "activity", ["r-ease", "r-pop"], LABELS, "ndcg@10")
    assert [t.name for t in fig.data] == ["ease", "pop"]
    assert list(fig.data[0].x) == ["1-5<br>10 users", "6-10<br>20 users"]
    assert list(fig.data[1].y) == [0.15, 0.075]
    assert fig.layout.yaxis.title.text == "NDCG@10"


def test_accuracy_bars_and_panels_follow_the_board():
    board = pd.DataFrame(
        {
            "run_id": ["r-ease", "r-pop"],
            "ndcg@10": [0.4, 0.05],
            "recall@10": [0.6, 0.1],
            "avg_pop@10": [200.0, 640.0],
        }
    )
    fig = charts.accuracy_bars(board, ["ndcg@10", "recall@10"], LABELS)
    assert [t.name for t in fig.data] == ["ease", "pop"]
    assert list(fig.data[0].x) == ["NDCG@10", "Recall@10"] and list(fig.data[1].y) == [0.05, 0.1]
    panels = charts.metric_panels(board, ["avg_pop@10", "gini@10"], LABELS, "t")
    assert len(panels.data) == 1  # gini@10 is not on the board
    assert list(panels.data[0].text) == ["200", "640"]


def test_history_timeline_marks_test_items_as_stars():
    history = pd.DataFrame(
        {
            "time": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-05"]),
            "title": ["A", "B", "C"],
            "category": ["Drama", "Drama", "Comedy"],
            "scenario": ["video", "shop", "video"],
            "part": ["train", "valid", "test"],
        }
    )
    fig = ucharts.history_timeline(history)
    by_name = {t.name: t for t in fig.data}
    assert sorted(by_name) == ["shop", "video"]
    assert list(by_name["video"].y) == ["Drama", "Comedy"]
    assert list(by_name["video"].marker.symbol) == ["circle", "star"]
    assert fig.layout.xaxis.title.text == "Date"


def test_tradeoff_panels_skip_a_missing_diversity():
    curve = pd.DataFrame(
        {
            "weight": [0.0, 0.5],
            "ndcg@10": [0.3, 0.25],
            "novelty@10": [4.0, 4.5],
            "coverage@10": [0.2, 0.3],
            "diversity@10": [np.nan, np.nan],
        }
    )
    fig = ucharts.tradeoff(curve, 10, "novelty")
    assert len(fig.data) == 2
    assert list(fig.data[0].x) == [4.0, 4.5] and list(fig.data[0].y) == [0.3, 0.25]
    assert list(fig.data[1].text) == ["0", "0.5"]
    flat = pd.DataFrame(
        {
            "weight": [0.0, 0.5, 0.6, 0.7],
            "ndcg@10": [0.3, 0.25, 0.25, 0.25],
            "novelty@10": [4.0, 4.5, 4.5, 4.5],
            "coverage@10": [0.2, 0.3, 0.3, 0.3],
            "diversity@10": [np.nan] * 4,
        }
    )
    assert list(ucharts.tradeoff(flat, 10, "novelty").data[0].text) == ["0", "0.5–0.7", "", ""]


def test_overlap_heatmap_and_importance_bar():
    table = pd.DataFrame([[1.0, 0.25], [0.25, 1.0]], index=["r-ease", "r-pop"])
    table.columns = table.index
    heat = charts.overlap_heatmap(table, LABELS, 10).data[0]
    assert list(heat.x) == ["ease", "pop"] and heat.z[0][1] == 0.25
    imp = pd.DataFrame(
        {
            "group_kind": ["position", "category"],
            "group": ["most recent", "Drama"],
            "mean_abs_shap": [0.3, 0.1],
            "share": [1.0, 1.0],
            "n_explanations": [30, 30],
        }
    )
    fig = ucharts.importance_bar(imp)
    assert list(fig.data[0].y) == ["history position: most recent", "history category: Drama"]
    assert "30 users" in fig.layout.title.text


def test_long_history_labels_keep_when_it_happened():
    table = _contributions([0.2])
    table.loc[0, "label"] = (
        'bought "Shoe Cleaner for Northwind Leather Sneakers Pro" (1 month before)'
    )
    fig = ucharts.shap_waterfall(table, 0.0, 0.2)
    # issue 16 point 6: wrapped, not cut to ~10 characters; the whole label on hover
    label = fig.data[0].y[1]
    assert label == 'bought "Shoe Cleaner for<br>Northwind Leather Sneakers…"<br>(1 month before)'
    assert fig.data[0].customdata[1] == table.loc[0, "label"]
    assert fig.layout.yaxis.automargin and fig.layout.xaxis.tickformat == ",.3~f"
    short = ucharts.shap_waterfall(_contributions([0.2]), 0.0, 0.2).data[0].y[1]
    assert short == 'watched "Film 0"<br>(1 days before)'


def test_activity_buckets_in_size_order():
    segments = pd.DataFrame(
        {
            "segment_kind": "activity",
            "segment": ["1-5", "11-20", "51+", "6-10"],  # the text order an outer merge leaves
            "n_users": [1, 3, 4, 2],
            "r-ease": [0.1, 0.3, 0.4, 0.2],
        }
    )
    fig = charts.segment_bars(segments, "activity", ["r-ease"], LABELS, "ndcg@10")
    assert [x.split("<br>")[0] for x in fig.data[0].x] == ["1-5", "6-10", "11-20", "51+"]
    assert list(fig.data[0].y) == [0.1, 0.2, 0.3, 0.4]


def _points(n: int) -> tuple[pd.DataFrame, dict]:
    ids = [f"r{i}" for i in range(n)]
    novelty = [2.0, 2.05, 2.1, 3.0, 3.02, 4.0, 4.1][:n]
    return (
        pd.DataFrame({"run_id": ids, "novelty@10": novelty[::-1], "ndcg@10": [0.1] * n}),
        {r: f"model {i}" for i, r in enumerate(ids)},
    )


def test_tradeoff_labels_alternate_above_and_below_and_go_to_the_legend_beyond_five():
    """Issue 16: runs with close novelty drew their names on top of each other."""
    points, labels = _points(4)
    fig = charts.accuracy_scatter(points, labels, "novelty@10", "ndcg@10")
    assert [t.name for t in fig.data] == list(labels.values())
    assert all(t.mode == "markers+text" for t in fig.data) and not fig.layout.showlegend
    by_x = sorted(fig.data, key=lambda t: t.x[0])
    positions = [t.textposition for t in by_x]
    assert positions == ["top center", "bottom center", "top center", "bottom center"]
    points, labels = _points(7)
    crowded = charts.accuracy_scatter(points, labels, "novelty@10", "ndcg@10")
    assert all(t.mode == "markers" for t in crowded.data)  # names on hover and in the legend
    assert crowded.layout.showlegend
    assert crowded.data[0].marker.color == charts.run_color(labels, "r0")


def test_calibration_legend_has_its_own_row_below_the_title():
    """Issue 16: the calibration chart's legend no longer overlaps its title: the title is
    pinned to the top of the figure and the legend sits in a row of its own above the plot."""
    from dashboard import charts_interest

    table = pd.DataFrame(
        {"run_id": ["r-ease", "r-pop"], "kl_held_out": [0.8, 1.2], "kl_history": [0.3, 0.9]}
    )
    fig = charts_interest.calibration_bars(table, LABELS, 10)
    title, legend = fig.layout.title, fig.layout.legend
    assert (title.yref, title.y, title.yanchor) == ("container", 1, "top")
    assert (legend.y, legend.yanchor, legend.xanchor) == (1.02, "bottom", "left")
    # the legend row (above the plot) starts below the title row (top of the figure)
    assert fig.layout.margin.t == charts_interest.TITLE_ROW + charts_interest.LEGEND_ROW >= 80
    assert [t.name for t in fig.data] == ["KL to held-out shares", "KL to history shares (Steck)"]
