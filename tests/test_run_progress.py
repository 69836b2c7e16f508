"""core.runs.progress: the progress bar's numbers, the time left estimated from observed epochs
and early stopping (issue 16: LightGCN said ~1,200 s left throughout and stopped at 545 s)."""

from __future__ import annotations

import pytest

from core.runs.progress import progress_summary
from dashboard import views_train as VT


def _events(elapsed: list[float], metrics: list[float | None], epochs: int = 20) -> list[dict]:
    """Epoch lines as core.train writes them: best_epoch is the best validation epoch so far."""
    out, best, best_epoch = [], None, None
    for epoch, (seconds, metric) in enumerate(zip(elapsed, metrics, strict=True), start=1):
        if metric is not None and (best is None or metric > best):
            best, best_epoch = metric, epoch
        out.append(
            {
                "epoch": epoch,
                "epochs": epochs,
                "loss": 1.0 / epoch,
                "valid_metric": metric,
                "elapsed_s": seconds,
                "best_epoch": best_epoch,
                "eta_s": seconds / epoch * (epochs - epoch),  # the loop's own: max epochs
                "message": "",
            }
        )
    return out


RUNNING = {"status": "running", "model": "bpr", "params": {"epochs": 20, "patience": 5}}


def test_time_left_comes_from_observed_epochs_and_patience():
    # 4 epochs in 40 s: 10 s each. Best at epoch 3, patience 5: it stops at epoch 8 at the
    # soonest (4 more epochs, 40 s) and at epoch 20 at the latest (16 more, 160 s).
    summary = progress_summary(RUNNING, _events([10, 20, 30, 40], [0.1, 0.2, 0.25, 0.24]))
    assert summary["eta_s"] == pytest.approx(40.0)
    assert summary["eta_max_s"] == pytest.approx(160.0)
    assert (summary["eta_epochs"], summary["patience"]) == (4, 5)
    assert VT.eta_text(summary) == (
        "about 40 s to 2 min 40 s left, estimated from 4 epochs "
        "(it stops after 5 epochs without a better validation score)"
    )


def test_time_left_near_the_last_epoch_and_without_validation():
    # 18 of 20 epochs in 90 s (5 s each), still improving: the last 2 epochs, 10 s either way
    summary = progress_summary(
        RUNNING, _events([5.0 * e for e in range(1, 19)], [0.1] * 17 + [0.3])
    )
    assert summary["eta_s"] == summary["eta_max_s"] == pytest.approx(10.0)
    assert VT.eta_text(summary) == "about 10 s left, estimated from 18 epochs"
    # no validation: no early stopping, the remaining 17 epochs at 6 s each
    summary = progress_summary(RUNNING, _events([6, 12, 18], [None, None, None]))
    assert summary["eta_s"] == summary["eta_max_s"] == pytest.approx(102.0)
    # the model's default patience when the run did not set one (bpr: 3)
    assert progress_summary({**RUNNING, "params": {}}, [])["patience"] == 3


def test_early_stop_and_finished_runs_have_nothing_left():
    events = _events([10, 20], [0.2, 0.1])
    events[-1]["message"] = "early stop: no improvement"
    assert progress_summary(RUNNING, events)["eta_s"] == 0.0
    finished = progress_summary({**RUNNING, "status": "finished"}, events)
    assert finished["eta_s"] is None and finished["fraction"] == 1.0


def test_a_lambda_search_is_a_search_not_epochs():
    """EASE's l2='auto' tries several λ: "Trying λ 3 of 5", not "Epoch 3 of at most 5"."""
    tries = [
        {"epoch": i, "epochs": 5, "valid_metric": m, "param": "λ", "param_value": v}
        for i, (v, m) in enumerate([(50.0, 0.30), (100.0, 0.34), (250.0, 0.33)], start=1)
    ]
    record = {"status": "running", "model": "ease", "params": {"l2": "auto"}}
    summary = progress_summary(record, tries)
    assert (summary["search"], summary["search_value"], summary["epoch"]) == ("λ", 250.0, 3)
    assert summary["eta_s"] is None and summary["fraction"] == pytest.approx(0.6)
    assert VT.progress_text(record, summary) == (
        "Trying λ 3 of 5 (λ = 250) · best validation ndcg@10 0.3400"
    )
