"""Issue 16: long scenario jobs report their stages and epochs through the one job system
(progress.jsonl and job.log), and `core.runs.stages` turns them into "Stage k of n: … —
epoch e of at most E" with an estimate of the time left made of measured times only."""

from __future__ import annotations

import logging

import pytest

from core.runs import jobs, stages
from core.runs import scenario_runs as sr
from core.runs.store import RunStore
from tests.helpers import mirror_scenarios

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_transfer_job_writes_stages_and_epochs_that_read_as_stage_k_of_n(home, caplog):
    caplog.set_level(logging.INFO)  # as the CLI's logging does: job.log gets INFO lines
    mirror_scenarios().save(home)
    store = RunStore(home)
    run_id = sr.new_transfer(
        store,
        "mirror",
        "feed",
        "shop",
        ms=(0,),
        max_users=20,
        include_hybrid=False,
        multiscenario_params={"epochs": 2, "batch_size": 256, "patience": 5},
    )
    record = jobs.run_job(
        store, run_id, sr.TRANSFER, lambda stage: sr.run_transfer(store, run_id, stage)
    )
    assert record["status"] == "finished", record.get("error")
    events = store.progress(run_id)
    staged = [e for e in events if e.get("stage")]
    # 3 models trained, 1 m ranked, the profiles: 5 stages numbered 0..4 of 5
    assert [(e["step"], e["steps"]) for e in staged] == [(k, 5) for k in range(5)]
    assert staged[2]["stage"] == "Training multiscenario (3 of 3)"
    # the multiscenario model's epochs sit between its stage line and the next one
    t2, t3 = staged[2]["time"], staged[3]["time"]
    epochs = [e for e in events if e.get("epoch")]
    assert [e["epoch"] for e in epochs] == [1, 2] and all(t2 <= e["time"] <= t3 for e in epochs)
    # what the job panel shows at the moment of the first epoch line
    cut = events[: events.index(epochs[0]) + 1]
    live = stages.stage_status({"status": "running"}, cut, now=epochs[0]["time"])
    assert live["line"] == "Stage 3 of 5: Training multiscenario (3 of 3) — epoch 1 of at most 2"
    assert live["done"] == ["Training target_only (1 of 3)", "Training pooled (2 of 3)"]
    assert live["fraction"] == pytest.approx((2 + 0.5) / 5)
    # an estimate for this stage from its own epoch; none for the whole job (no earlier run)
    assert live["stage_eta_s"] == pytest.approx(epochs[0]["eta_s"]) and live["eta_s"] is None
    final = stages.stage_status(store.read(run_id), events)
    assert final["fraction"] == 1.0 and final["eta_s"] is None
    log = (store.folder(run_id) / "job.log").read_text()
    assert "stage 3 of 5: Training multiscenario (3 of 3)" in log
    assert "epoch 2 of at most 2" in log
    result = store.result(run_id)
    assert result["n_valid_users"] == 40  # the 40 users outside the test, one row each


def test_estimate_scales_the_last_runs_stage_times_to_this_runs_speed():
    previous = {0: 10.0, 1: 10.0, 2: 30.0, 3: 5.0}
    events = [
        {"time": 100.0, "stage": "a", "step": 0, "steps": 4},
        {"time": 120.0, "stage": "b", "step": 1, "steps": 4},  # 'a' took 20 s: half speed
        {"time": 140.0, "stage": "c", "step": 2, "steps": 4},
    ]
    status = stages.stage_status({"status": "running"}, events, previous, now=150.0)
    # 'c' took 30 s before: 60 s at this speed, 10 s gone; then 'd': 5 s -> 10 s
    assert status["stage_eta_s"] == pytest.approx(50.0)
    assert status["eta_s"] == pytest.approx(60.0)
    assert status["basis"] == stages.PREVIOUS_BASIS
    assert status["line"] == "Stage 3 of 4: c"
    assert stages.previous_durations(events, end=160.0) == {0: 20.0, 1: 20.0, 2: 20.0}
    assert stages.format_seconds(133) == "2 min 13 s" and stages.format_seconds(45) == "45 s"
