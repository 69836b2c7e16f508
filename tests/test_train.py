"""The shared training loop: loss falls, early stopping restores the best, cancel, seeds."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from core.data.dataset import Interactions
from core.data.split import split
from core.errors import CancelledError
from core.eval.evaluate import ranking_metric
from core.models.bpr import BPRMF
from core.train import known_keys, sample_negatives


@pytest.fixture(scope="module")
def planted_split(planted_dataset):
    return split(planted_dataset, "loo", seed=42)


def _bpr(**kw) -> BPRMF:
    params = {"dim": 16, "epochs": 8, "batch_size": 256, "lr": 0.02, "patience": 100}
    return BPRMF(**{**params, **kw})


def test_loss_falls_and_progress_events_are_sane(planted_split):
    events = []
    model = _bpr(epochs=6).fit(planted_split.train, planted_split.valid, progress=events.append)
    assert [e.epoch for e in events] == [1, 2, 3, 4, 5, 6]
    assert all(e.epochs == 6 for e in events)
    assert events[-1].loss < 0.7 * events[0].loss  # BPR starts near log(2) = 0.69
    assert all(0.0 <= e.valid_metric <= 1.0 for e in events)
    assert all(e.samples_per_s > 0 and e.elapsed_s > 0 for e in events)
    elapsed = [e.elapsed_s for e in events]
    assert elapsed == sorted(elapsed)
    assert events[-1].eta_s == 0.0 and events[0].eta_s > 0.0
    best = max(events, key=lambda e: e.valid_metric)
    assert events[-1].best_epoch == best.epoch
    assert model.train_result_.epochs_run == 6


def test_early_stopping_restores_the_best_weights(planted_split):
    # a learning rate this high overfits the tiny data within a few epochs
    events = []
    model = _bpr(epochs=30, lr=0.1, patience=3).fit(
        planted_split.train, planted_split.valid, progress=events.append
    )
    result = model.train_result_
    metrics = [e.valid_metric for e in events]
    assert result.epochs_run < 30, "patience must stop training early"
    assert result.epochs_run == result.best_epoch + 3
    assert result.best_metric == max(metrics)
    assert metrics[-1] < result.best_metric
    again = ranking_metric(model, planted_split.valid, known=planted_split.train, k=10)
    assert again == pytest.approx(result.best_metric, abs=1e-9)


def test_without_validation_all_epochs_run(planted_split):
    model = _bpr(epochs=3).fit(planted_split.train)
    assert model.train_result_.epochs_run == 3
    assert model.train_result_.best_epoch is None


@pytest.mark.parametrize("kind", ["event", "callable", "progress"])
def test_cancel_raises_cancelled_error(planted_split, kind):
    flag = threading.Event()
    seen = []

    def progress(event):
        seen.append(event.epoch)
        if kind == "progress":
            raise CancelledError("stop")
        flag.set()

    cancel = {"event": flag, "callable": flag.is_set, "progress": None}[kind]
    model = _bpr(epochs=50)
    with pytest.raises(CancelledError):
        model.fit(planted_split.train, planted_split.valid, progress=progress, cancel=cancel)
    assert seen == [1], "training must stop right after the flag is raised"


def test_same_seed_same_scores_and_other_seed_differs(planted_split):
    users = np.arange(10)
    a = _bpr(epochs=2, seed=3).fit(planted_split.train).score(users)
    b = _bpr(epochs=2, seed=3).fit(planted_split.train).score(users)
    c = _bpr(epochs=2, seed=4).fit(planted_split.train).score(users)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("mask_limit", [1 << 26, 0], ids=["mask", "sorted-keys"])
def test_negatives_avoid_known_items(monkeypatch, mask_limit):
    import pandas as pd

    from core import train as train_module

    # small catalogues keep the known pairs as a mask over every key, large ones as keys
    monkeypatch.setattr(train_module, "DENSE_KNOWN_KEYS", mask_limit)
    # user 0 knows items 0..8 of 10; uniform draws would hit a known item 90% of the time
    frame = pd.DataFrame(
        {"user_code": [0] * 9, "item_code": list(range(9)), "timestamp": list(range(9))}
    )
    train = Interactions(frame, 1, 10)
    known = known_keys(train, torch.device("cpu"))
    if mask_limit:
        assert known.dtype == torch.bool and known.nonzero().flatten().tolist() == list(range(9))
    else:
        assert known.tolist() == list(range(9))
    gen = torch.Generator().manual_seed(0)
    users = torch.zeros(2000, dtype=torch.int64)
    plain = sample_negatives(users, 10, 1, gen)
    cleaned = sample_negatives(users, 10, 1, gen, known, retries=3)
    assert plain.shape == cleaned.shape == (2000, 1)
    assert (plain != 9).float().mean() > 0.85
    # each retry keeps a known draw with p = 0.9, so about 0.9**4 = 66% remain after 3
    assert (cleaned != 9).float().mean() < 0.75
    assert int(cleaned.min()) >= 0 and int(cleaned.max()) <= 9


def test_the_process_cancel_flag_stops_training_at_a_batch_boundary(planted_split):
    """Issue 11: a job's SIGTERM only sets this flag; the loop raises at its next batch."""
    from core import train

    events = []
    train.request_cancel()
    try:
        assert train.cancel_requested()
        with pytest.raises(CancelledError, match="cancelled at epoch 1; nothing saved"):
            _bpr().fit(planted_split.train, planted_split.valid, progress=events.append)
        with pytest.raises(CancelledError, match="^Cancelled while waiting; nothing saved.$"):
            train.raise_if_cancelled("while waiting")
    finally:
        train.clear_cancel()
    assert events == [] and not train.cancel_requested()
    train.raise_if_cancelled()  # cleared: no error
    model = _bpr(epochs=1).fit(planted_split.train, planted_split.valid, cancel=lambda: False)
    assert model.train_result_.epochs_run == 1
