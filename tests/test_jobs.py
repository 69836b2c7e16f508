"""The one job system: detached jobs of every kind (training, scenario leaderboard, transfer)
survive the caller, queue per device, cancel, and read as failed when their process dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from functools import partial

import numpy as np
import pandas as pd
import pytest

from core import train
from core.data import schema as S
from core.data.dataset import Dataset
from core.data.split import split
from core.errors import CancelledError, RecScopeError
from core.runs import jobs, liveness, queue
from core.runs import scenario_runs as sr
from core.runs.pipeline import new_run
from core.runs.store import RunStore
from core.scenarios.strategies import compare_strategies
from core.storage import now_iso
from tests.helpers import hold_cpu

FAST = {"epochs": 1, "batch_size": 256}


def wait_for(store: RunStore, run_id: str, statuses: tuple[str, ...], timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = store.read(run_id)
        if record["status"] in statuses:
            return record
        time.sleep(0.3)
    pytest.fail(f"run {run_id} did not reach {statuses}; last: {store.read(run_id)}")


@pytest.fixture
def store(home, planted_dataset) -> RunStore:
    planted_dataset.save(home)
    return RunStore(home)


def test_job_trains_in_the_background_and_records_metrics(store):
    run_id = new_run(store, "planted", "ease", device="cpu", params={"l2": 10.0})
    pid = jobs.start_job(store, run_id)
    assert pid > 0 and store.read(run_id)["pid"] == pid
    record = wait_for(store, run_id, ("finished", "failed"))
    assert record["status"] == "finished", record.get("error")
    assert record["metrics"]["test"]["ndcg@10"] > 0
    assert (store.folder(run_id) / "model" / "weights.pt").exists()
    assert (store.folder(run_id) / "recs.parquet").exists()


def test_second_job_on_a_busy_device_queues_then_cancels(store):
    run_id = new_run(store, "planted", "pop", device="cpu")
    with hold_cpu(store, closed_form=True):
        jobs.start_job(store, run_id)
        deadline = time.monotonic() + 90
        while "cpu" not in store.read(run_id).get("message", "") and time.monotonic() < deadline:
            time.sleep(0.3)
        record = store.read(run_id)
        assert record["status"] == "queued"
        assert record["message"] == (
            "1st in line for cpu (closed-form models): waiting for it to be free."
        )
        jobs.cancel_job(store, run_id)
        record = wait_for(store, run_id, ("cancelled", "failed"), timeout=60)
    assert record["status"] == "cancelled" and record["message"] == ""  # no stale place


def test_refresh_marks_a_vanished_process_failed(store):
    run_id = new_run(store, "planted", "pop", device="cpu")
    store.update(run_id, status="running", pid=999_999_999)
    record = store.read(run_id)
    assert record["status"] == "failed"
    assert record["error"].startswith("The training process stopped unexpectedly")


def scenario_data(name: str = "multi", scenarios=("app", "web")) -> Dataset:
    """Two scenarios with two tastes (60 users, 40 items): small enough for a job in seconds."""
    rng = np.random.default_rng(11)
    rows = []
    for u in range(60):
        half = 0 if u < 30 else 10
        for t, scen in enumerate(list(scenarios) * 5):
            item = f"{scenarios.index(scen)}-{half + rng.integers(0, 10)}"
            rows.append((f"u{u}", item, u * 100 + t, scen))
    frame = pd.DataFrame(rows, columns=[S.USER_ID, S.ITEM_ID, S.TIMESTAMP, S.SCENARIO])
    return Dataset.from_frames(name, frame.drop_duplicates([S.USER_ID, S.ITEM_ID]))


def test_leaderboard_job_through_the_launcher_equals_compare_strategies(home):
    """Issue 10: the code the Scenarios page runs is the code tested here."""
    scenario_data().save(home)
    store = RunStore(home)
    run_id = sr.new_leaderboard(store, "multi", multiscenario_params=FAST)
    jobs.start_job(store, run_id)
    record = wait_for(store, run_id, ("finished", "failed"))
    assert record["status"] == "finished", record.get("error")
    assert record["kind"] == "leaderboard" and record["timings"]["total_s"] > 0
    result = store.result(run_id)

    ds = Dataset.load(home, "multi")
    direct = compare_strategies(ds, split(ds, "loo", seed=42), multiscenario_params=FAST)
    expected = sr.leaderboard_result(direct, base="ease", catalogue="scenario")
    strip = [{k: v for k, v in row.items() if k != "fit_s"} for row in result["leaderboard"]]
    assert strip == [
        {k: v for k, v in row.items() if k != "fit_s"} for row in expected["leaderboard"]
    ]
    assert result["tables"] == expected["tables"] and result["notes"] == expected["notes"]
    recs = sr.recommendations(store, run_id)
    top = pd.concat([r.top for r in direct.values()], ignore_index=True)
    pd.testing.assert_frame_equal(recs, top, check_dtype=False)
    assert set(recs["rank"]) == set(range(1, 11)) and set(recs["scenario"]) == {"app", "web"}

    stages = [e["stage"] for e in store.progress(run_id) if e.get("stage")]  # not epoch lines
    # the multiscenario model trains last, whatever the number of strategies before it
    trained = [s for s in stages if s.startswith("Training ")]
    n = len(trained)
    assert trained[-1] == f"Training multiscenario ({n} of {n})" and n >= 3
    assert jobs.stage_summary(record, store.progress(run_id))["fraction"] == 1.0
    assert (store.folder(run_id) / "job.log").exists()
    # one store: listed with its kind, kept out of the training lists
    assert [r["run_id"] for r in store.list(kind=None)] == [run_id]
    assert store.list() == [] and store.list("multi", kind="leaderboard")[0]["run_id"] == run_id
    assert jobs.latest_job(store, "multi", "leaderboard", finished=True)["run_id"] == run_id


def test_a_killed_scenario_job_reads_as_failed(home):
    scenario_data().save(home)
    store = RunStore(home)
    run_id = sr.new_leaderboard(store, "multi", multiscenario_params={"epochs": 500})
    pid = jobs.start_job(store, run_id)
    os.killpg(os.getpgid(pid), signal.SIGKILL)
    record = wait_for(store, run_id, ("failed",), timeout=30)
    assert record["error"].startswith("The leaderboard process stopped unexpectedly")
    assert jobs.latest_job(store, "multi", "leaderboard")["status"] == "failed"
    assert jobs.latest_job(store, "multi", "leaderboard", finished=True) is None
    with pytest.raises(RecScopeError, match="is a leaderboard job, not a train job"):
        jobs.job_record(store, run_id, "train")  # `recscope train --run-id` refuses it


def test_a_running_scenario_job_cancels(home):
    scenario_data().save(home)
    store = RunStore(home)
    run_id = sr.new_leaderboard(store, "multi", multiscenario_params={"epochs": 500})
    jobs.start_job(store, run_id)
    deadline = time.monotonic() + 120
    while store.read(run_id)["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    jobs.cancel_job(store, run_id)
    record = wait_for(store, run_id, ("cancelled", "failed", "finished"), timeout=60)
    assert record["status"] == "cancelled", record.get("error")
    assert store.result(run_id) is None


def test_scenario_names_never_become_paths(home):
    """Scenario names are data: '../../x' creates nothing outside the workspace."""
    outside = home.parent
    before = {p for p in outside.rglob("*") if home not in p.parents and p != home}
    scenario_data("odd", ("../../x", "a/b")).save(home)
    store = RunStore(home)
    run_id = sr.new_leaderboard(store, "odd", multiscenario_params=FAST)
    jobs.run_job(store, run_id, "leaderboard", partial(sr.run_leaderboard, store, run_id))
    assert set(sr.recommendations(store, run_id)["scenario"]) == {"../../x", "a/b"}
    other = sr.new_transfer(
        store, "odd", "../../x", "a/b", ms=(0,), include_hybrid=False, multiscenario_params=FAST
    )
    jobs.run_job(store, other, "transfer", partial(sr.run_transfer, store, other))
    assert store.result(other)["target"] == "a/b" and store.read(other)["kind"] == "transfer"
    after = {p for p in outside.rglob("*") if home not in p.parents and p != home}
    assert after == before
    made = {p.relative_to(home).parts[0] for p in home.rglob("*")}
    assert made <= {"datasets", "runs", "locks"}
    for bad in ("../x", "..", "a/b", ""):
        with pytest.raises(RecScopeError, match="not a run id"):
            store.folder(bad)


def test_job_process_claims_the_run_beats_and_turns_sigterm_into_the_cancel_flag(
    store, monkeypatch
):
    monkeypatch.setattr(liveness, "HEARTBEAT_S", 0.05)
    run_id = store.new_run({"model": "pop", "dataset": "planted"})
    handler = signal.getsignal(signal.SIGTERM)
    with jobs.job_process(store, run_id):
        record = store.read(run_id)
        assert (record["pid"], record["pid_start"]) == (
            os.getpid(),
            liveness.process_start(os.getpid()),
        )
        first = record["heartbeat_at"]
        time.sleep(0.4)
        assert store.read(run_id)["heartbeat_at"] > first
        jobs.log.warning("stage one done")
        os.kill(os.getpid(), signal.SIGTERM)  # what Cancel sends: only a flag is set
        assert train.cancel_requested()
        with pytest.raises(CancelledError):
            train.raise_if_cancelled("at a boundary")
    # the body ended without an outcome: never left "running" by this living process
    record = store.read(run_id)
    assert record["status"] == "failed" and "without recording how" in record["error"]
    assert signal.getsignal(signal.SIGTERM) is handler and not train.cancel_requested()
    log = (store.folder(run_id) / "job.log").read_text()
    assert "WARNING core.runs.jobs: stage one done" in log


def test_a_claimed_run_refuses_a_second_process_and_a_cancelled_one_never_starts(store):
    run_id = store.new_run({"model": "pop", "dataset": "planted"})
    proc = subprocess.Popen(["sleep", "30"])
    try:
        store.update(
            run_id,
            status="running",
            pid=proc.pid,
            pid_start=liveness.process_start(proc.pid),
            host=liveness.host_name(),
        )
        with pytest.raises(RecScopeError, match=f"is already running in process {proc.pid}"):
            with jobs.job_process(store, run_id):
                pass
    finally:
        proc.kill()
        proc.wait()
    other = store.new_run({"model": "pop", "dataset": "planted"})
    assert jobs.cancel_job(store, other)["status"] == "cancelled"  # queued, no process
    with pytest.raises(CancelledError, match=f"Run {other} was cancelled before it started"):
        with jobs.job_process(store, other):
            pass


def test_a_second_cancel_after_the_grace_period_kills_a_stuck_job(store, monkeypatch):
    """A job stuck outside any batch boundary: the first Cancel asks (SIGTERM, ignored
    here), a later one kills it, and the next read says cancelled."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(15, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        run_id = store.new_run({"model": "pop", "dataset": "planted"})
        store.update(
            run_id,
            status="running",
            pid=proc.pid,
            pid_start=liveness.process_start(proc.pid),
            host=liveness.host_name(),
        )
        assert jobs.cancel_job(store, run_id)["cancel_requested"] is True
        time.sleep(0.3)
        assert proc.poll() is None and store.read(run_id)["status"] == "running"
        monkeypatch.setattr(jobs, "FORCE_AFTER_S", 0.0)
        jobs.cancel_job(store, run_id)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
    record = store.read(run_id)
    assert record["status"] == "cancelled" and record["finished_at"]


def test_a_job_on_another_host_is_cancelled_through_its_record(store, monkeypatch):
    """A shared workspace: the pid is another machine's, so nothing here is signalled; the
    job's heartbeat reads the request and sets its own cancel flag."""
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        run_id = store.new_run({"model": "pop", "dataset": "planted"})
        store.update(
            run_id, status="running", pid=sleeper.pid, host="elsewhere", heartbeat_at=now_iso()
        )
        assert jobs.cancel_job(store, run_id)["cancel_requested"] is True
        time.sleep(0.2)
        assert sleeper.poll() is None  # not signalled
        assert store.read(run_id)["status"] == "running"  # its heartbeat is fresh
    finally:
        sleeper.kill()
        sleeper.wait()
    monkeypatch.setattr(liveness, "HEARTBEAT_S", 0.05)
    mine = store.new_run({"model": "pop", "dataset": "planted"})
    with jobs.job_process(store, mine):
        store.update(mine, cancel_requested=True)  # what cancel_job on the other host wrote
        deadline = time.monotonic() + 5
        while not train.cancel_requested() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert train.cancel_requested()
        store.update(mine, status="cancelled")
    assert not train.cancel_requested()


def test_latest_job_refreshes_each_record_once_and_a_dead_one_reads_failed(store, monkeypatch):
    """`store.list` refreshes every record; latest_job adds no second pass."""
    for _ in range(3):
        store.new_run({"kind": "leaderboard", "dataset": "planted", "params": {"k": 10}})
    dead = store.new_run({"kind": "leaderboard", "dataset": "planted", "params": {"k": 10}})
    proc = subprocess.Popen(["true"])
    proc.wait()
    store.update(
        dead, status="running", pid=proc.pid, pid_start="boot:1", host=liveness.host_name()
    )
    calls = []
    real = RunStore.refresh
    monkeypatch.setattr(
        RunStore, "refresh", lambda self, r: calls.append(r["run_id"]) or real(self, r)
    )
    record = jobs.latest_job(store, "planted", "leaderboard", k=10)
    assert record["run_id"] == dead and record["status"] == "failed"
    assert sorted(calls) == sorted(r.name for r in store.root.iterdir())  # once each
    assert jobs.latest_job(store, "planted", "leaderboard", finished=True, k=10) is None


def _queue_in_threads(store, run_ids, arrive_order, entered, release):
    """Each run waits for the cpu in a thread of its own, started in `arrive_order`; the first
    one to get the device holds it until `release` is set, the others leave at once."""

    def job(run_id):
        with jobs.device_slot(store, run_id, "cpu"):
            entered.append(run_id)
            if len(entered) == 1:
                release.wait(30)

    threads = {r: threading.Thread(target=job, args=(r,), daemon=True) for r in run_ids}
    for run_id in arrive_order:
        threads[run_id].start()
        time.sleep(0.1)
    return threads


def test_jobs_take_the_device_in_the_order_they_were_submitted(store):
    """Issue 16: three jobs submitted in the order A, B, C start in that order, although their
    processes (threads here, each polling the real lock and queue) reach the device as C, B."""
    a, b, c = (new_run(store, "planted", m, device="cpu") for m in ("lightgcn", "bpr", "neumf"))
    for run_id in (a, b, c):
        queue.submit(store, run_id)
    entered, release = [], threading.Event()
    threads = _queue_in_threads(store, [a, b, c], [a, c, b], entered, release)
    deadline = time.monotonic() + 30
    while "2nd" not in store.read(c).get("message", "") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert entered == [a]
    assert store.read(c)["message"] == "2nd in line for cpu, behind lightgcn (running) and bpr."
    assert store.read(b)["message"] == "1st in line for cpu, behind lightgcn (running)."
    release.set()
    for thread in threads.values():
        thread.join(30)
    assert entered == [a, b, c]
    assert json.loads((store.home / "locks" / "queue.json").read_text())["tickets"] == []


def test_closed_form_training_runs_beside_a_long_job_and_a_dead_ticket_is_dropped(store):
    """EASE does not wait behind a neural job on the same device (its own lane); a ticket whose
    run failed before reaching its device does not hold up the ones after it."""
    dead = new_run(store, "planted", "bpr", device="cpu")
    queue.submit(store, dead)  # its process never reaches the device
    ease = new_run(store, "planted", "ease", device="cpu")
    queue.submit(store, ease)
    store.update(dead, status="failed", error="gone")
    with hold_cpu(store):  # a long job holds the cpu
        tick = time.monotonic()
        with jobs.device_slot(store, ease, "cpu"):
            waited = time.monotonic() - tick
    assert waited < 5
    assert queue.lane_of(store.read(ease), "cpu") == "cpu closed-form"
    assert queue.lane_of(store.read(dead), "cuda") == "cuda:0"
