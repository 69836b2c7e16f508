"""Background jobs: detached training that survives the caller, queues per device, cancels."""

from __future__ import annotations

import time

import pytest

from core.runs import jobs
from core.runs.pipeline import new_run
from core.runs.store import RunStore


def wait_for(store: RunStore, run_id: str, statuses: tuple[str, ...], timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = jobs.refresh(store, store.read(run_id))
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
    with _hold_cpu(store):
        jobs.start_job(store, run_id)
        deadline = time.monotonic() + 90
        while "cpu" not in store.read(run_id).get("message", "") and time.monotonic() < deadline:
            time.sleep(0.3)
        record = store.read(run_id)
        assert record["status"] == "queued" and "Waiting for cpu" in record["message"]
        jobs.cancel_job(store, run_id)
        record = wait_for(store, run_id, ("cancelled", "failed"), timeout=60)
    assert record["status"] == "cancelled"


def test_refresh_marks_a_vanished_process_failed(store):
    run_id = new_run(store, "planted", "pop", device="cpu")
    store.update(run_id, status="running", pid=999_999_999)
    record = jobs.refresh(store, store.read(run_id))
    assert record["status"] == "failed"
    assert "stopped before finishing" in record["error"]


class _hold_cpu:
    """Hold the cpu device lock as another job would."""

    def __init__(self, store: RunStore) -> None:
        import fcntl

        self._fcntl = fcntl
        (store.home / "locks").mkdir(exist_ok=True)
        self.path = store.home / "locks" / "cpu.lock"

    def __enter__(self):
        self.handle = open(self.path, "w")
        self._fcntl.flock(self.handle, self._fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.handle.close()
