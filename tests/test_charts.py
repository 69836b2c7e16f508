"""dashboard.charts: each figure carries the data it was given, a title and axis labels."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.data import profile
from dashboard import charts
from tests.helpers import plotly_values


def test_long_tail_is_log_scaled_and_labelled(planted_dataset):
    table = profile.activity(planted_dataset, "item")
    fig = charts.long_tail(table, "items")
    assert fig.layout.yaxis.type == "log"
    assert fig.layout.title.text == "Interactions per item (long tail)"
    assert fig.layout.xaxis.title.text == "Items ranked from most to least active"
    np.testing.assert_array_equal(fig.data[0].y, table["interactions"].to_numpy())
    assert list(fig.data[0].x) == list(range(1, 61))


def test_activity_over_time_has_two_series_and_date_axis():
    over = pd.DataFrame(
        {
            "period": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "interactions": [5, 7],
            "active_users": [2, 3],
        }
    )
    fig = charts.activity_over_time(over)
    assert [t.name for t in fig.data] == ["Interactions", "Active users"]
    assert list(fig.data[1].y) == [2, 3]
    assert fig.layout.xaxis.title.text == "Date"
    ordinal = charts.activity_over_time(over.assign(period=[0, 10]))
    assert ordinal.layout.xaxis.title.text.startswith("Position in the log")


def test_overlap_heatmap_keeps_matrix_and_names():
    matrix = pd.DataFrame([[2, 1], [1, 3]], index=["app", "web"], columns=["app", "web"])
    fig = charts.overlap_heatmap(matrix)
    heat = fig.data[0]
    assert list(heat.x) == ["app", "web"] and list(heat.y) == ["app", "web"]
    np.testing.assert_array_equal(np.asarray(heat.z), [[2, 1], [1, 3]])


def test_top_items_bar_separates_duplicate_titles():
    top = pd.DataFrame(
        {"item_id": ["a", "b", "c"], "title": ["Dune", "Dune", "Alien"], "interactions": [9, 5, 2]}
    )
    fig = charts.top_items_bar(top)
    assert list(fig.data[0].y) == ["Dune (a)", "Dune (b)", "Alien"]
    assert list(fig.data[0].x) == [9, 5, 2]
    assert fig.layout.yaxis.autorange == "reversed"  # most popular on top


def test_rating_and_scenario_bars():
    ratings = charts.rating_bar(pd.DataFrame({"rating": [1.0, 5.0], "interactions": [3, 4]}))
    assert list(ratings.data[0].x) == ["1", "5"] and list(ratings.data[0].y) == [3, 4]
    per = charts.scenario_users_bar(pd.DataFrame({"scenarios": [1, 2], "users": [10, 4]}))
    assert list(per.data[0].y) == [10, 4]
    assert per.layout.xaxis.title.text == "Scenarios a user is active in"


def test_metric_bar_skips_runs_without_the_metric():
    runs = pd.DataFrame(
        {"run": ["r1", "r2"], "model": ["ease", "bpr"], "ndcg@10": [0.3, float("nan")]}
    )
    fig = charts.metric_bar(runs, "ndcg@10")
    assert list(fig.data[0].y) == ["r1"] and list(fig.data[0].x) == [0.3]
    assert fig.layout.title.text == "Test NDCG@10 by run, best first"


def test_metric_bar_puts_the_best_run_first():
    """Issue 16: the Runs page's bars were in the order the runs were made."""
    runs = pd.DataFrame(
        {"run": ["r1", "r2", "r3"], "model": ["pop", "ease", "bpr"], "ndcg@10": [0.1, 0.4, 0.2]}
    )
    fig = charts.metric_bar(runs, "ndcg@10")
    assert list(fig.data[0].y) == ["r2", "r3", "r1"] and list(fig.data[0].x) == [0.4, 0.2, 0.1]
    assert fig.layout.yaxis.autorange == "reversed"  # the first bar on top
    errors = charts.metric_bar(runs.rename(columns={"ndcg@10": "rmse"}), "rmse")
    assert list(errors.data[0].y) == ["r1", "r3", "r2"]  # an error: the lowest is the best


def test_active_users_have_their_own_axis():
    """Issue 16: 943 users against 10,000 interactions lay flat along the bottom."""
    over = pd.DataFrame(
        {
            "period": [0, 10, 20],
            "interactions": [9000, 10000, 8000],
            "active_users": [900, 943, 700],
        }
    )
    fig = charts.activity_over_time(over)
    bars, line = fig.data
    assert (bars.yaxis or "y") == "y" and line.yaxis == "y2"
    assert fig.layout.yaxis2.overlaying == "y" and fig.layout.yaxis2.side == "right"
    assert fig.layout.yaxis2.tickmode == "auto"  # not synced to the left axis: "57.8"
    assert fig.layout.yaxis.title.text == "Interactions per period"
    assert fig.layout.yaxis2.title.text == "Active users per period"


def test_epoch_axes_have_whole_number_ticks():
    """Issue 16: a 5-epoch run's axis read "1 2 2 3 3 4 4 5 5" (fractional ticks, rounded)."""
    events = pd.DataFrame(
        {
            "epoch": [1, 2, 3, 4, 5],
            "loss": [0.9, 0.7, 0.6, 0.55, 0.5],
            "valid_metric": [0.1, 0.2, 0.25, 0.26, 0.26],
            "metric_name": "ndcg@10",
        }
    )
    axis = charts.training_curves(events).layout.xaxis
    assert (axis.tickmode, axis.tick0, axis.dtick, axis.tickformat) == ("linear", 1, 1, "d")
    assert axis.title.text == "Epoch"
    long = pd.DataFrame({"epoch": range(1, 181), "loss": 1.0, "metric_name": "ndcg@10"})
    assert charts.training_curves(long).layout.xaxis.dtick == 20  # 0, 20, ..., 180: 10 ticks
    assert [charts.epoch_ticks(n)["dtick"] for n in (10, 11, 50, 51, 1000)] == [1, 2, 5, 10, 100]


def test_a_lambda_search_is_drawn_against_lambda_not_epochs():
    """EASE's l2='auto' lines carry param "λ": the x axis is λ (log), the best one starred."""
    tries = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "epochs": 5,
            "valid_metric": [0.30, 0.34, 0.33],
            "metric_name": "ndcg@10",
            "param": "λ",
            "param_value": [50.0, 100.0, 250.0],
        }
    )
    fig = charts.training_curves(tries, title="ease")
    assert fig.layout.xaxis.title.text == "λ tried (log scale)"
    assert fig.layout.xaxis.type == "log" and list(fig.layout.xaxis.tickvals) == [50, 100, 250]
    assert list(fig.layout.xaxis.ticktext) == ["50", "100", "250"]
    assert fig.layout.yaxis.title.text == "Validation ndcg@10"
    line, best = fig.data
    assert plotly_values(line.x) == [50.0, 100.0, 250.0]
    assert plotly_values(best.x) == [100.0] and plotly_values(best.y) == [0.34]


def test_the_tune_pages_per_epoch_curves_have_whole_number_ticks():
    import optuna

    from dashboard import charts_tune

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for scores in ([0.1, 0.2, 0.25], [0.1, 0.15]):
        trial = study.ask()
        for epoch, score in enumerate(scores, start=1):
            trial.report(score, epoch)
        study.tell(trial, max(scores))
    fig, note = charts_tune.curves(study)
    assert note is None
    assert (fig.layout.xaxis.dtick, fig.layout.xaxis.tickformat) == (1, "d")
