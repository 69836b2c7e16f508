"""The run store: runs newest first (even within one second), job kinds, results, run ids."""

from __future__ import annotations

import threading

import pytest

from core.errors import RecScopeError
from core.runs.store import RunStore
from core.storage import read_json, write_json


def test_runs_created_in_one_burst_list_newest_first(home):
    store = RunStore(home)
    created = [store.new_run({"model": f"m{i}", "dataset": "d"}) for i in range(8)]
    assert [r["run_id"] for r in store.list("d")] == created[::-1]


def test_whole_second_stamps_of_older_records_still_sort(home):
    store = RunStore(home)
    old, new = store.new_run({"model": "a", "dataset": "d"}), store.new_run({"model": "b"})
    path = store.folder(old) / "run.json"
    record = read_json(path)
    write_json(path, {**record, "created_at": "2020-01-01T00:00:00+00:00"})
    broken = store.new_run({"model": "c", "dataset": "d"})
    path = store.folder(broken) / "run.json"
    write_json(path, {**read_json(path), "created_at": "not a time"})
    assert [r["run_id"] for r in store.list()] == [new, old, broken]


def test_lists_training_runs_unless_asked_for_every_kind(home):
    store = RunStore(home)
    train = store.new_run({"model": "pop", "dataset": "d"})
    job = store.new_run({"kind": "leaderboard", "dataset": "d"})
    path = store.folder(train) / "run.json"
    legacy = {k: v for k, v in read_json(path).items() if k != "kind"}  # before kinds existed
    write_json(path, legacy)
    assert [r["run_id"] for r in store.list("d")] == [train]
    assert [r["run_id"] for r in store.list("d", kind=None)] == [job, train]
    assert [r["run_id"] for r in store.list(kind="leaderboard")] == [job]
    assert job.startswith("leaderboard-") and store.read(job)["kind"] == "leaderboard"


def test_results_live_in_the_run_folder_and_run_ids_are_checked(home):
    store = RunStore(home)
    run_id = store.new_run({"kind": "transfer", "dataset": "d"})
    assert store.result(run_id) is None
    store.write_result(run_id, {"curves": []})
    assert store.result(run_id) == {"curves": []}
    assert (store.folder(run_id) / "result.json").exists()
    for bad in ("../../etc", "a/b", "..", ""):
        with pytest.raises(RecScopeError, match="not a run id"):
            store.read(bad)
    with pytest.raises(RecScopeError, match="kind 'nope' is unknown"):
        store.new_run({"kind": "nope"})


def test_threads_updating_one_record_lose_no_key(home):
    """The heartbeat thread and the job's own writes share run.json: every key survives."""
    store = RunStore(home)
    run_id = store.new_run({"model": "pop", "dataset": "d"})

    def write(tag: str) -> None:
        for i in range(100):
            store.update(run_id, **{f"{tag}{i}": i})

    threads = [threading.Thread(target=write, args=(tag,)) for tag in "xyz"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record = store.read(run_id)
    assert sum(1 for k in record if k[0] in "xyz" and k[1:].isdigit()) == 300


def test_edit_is_check_and_set_and_writes_only_changes(home):
    store = RunStore(home)
    run_id = store.new_run({"model": "pop", "dataset": "d"})
    path = store.folder(run_id) / "run.json"
    before = path.stat().st_mtime_ns
    with store.edit(run_id) as record:
        assert record["status"] == "queued"
    assert path.stat().st_mtime_ns == before and "updated_at" not in read_json(path)
    with pytest.raises(KeyError):
        with store.edit(run_id) as record:
            record["status"] = "running"
            raise KeyError("the body failed")
    assert store.read(run_id)["status"] == "queued"  # nothing written
    with store.edit(run_id) as record:
        record["status"] = "running"
    assert read_json(path)["status"] == "running" and read_json(path)["updated_at"]


def test_one_io_error_sentence_for_the_cli_and_for_a_failed_job():
    """core.storage.os_error_sentence is the only errno table: the CLI's form and a job's."""
    import errno

    from core.cli import error_sentence
    from core.storage import os_error_sentence

    full = OSError(errno.ENOSPC, "No space left on device", "/w/run.json")
    assert error_sentence(full) == (
        "/w/run.json: no space left on the device; free some disk space and run it again.",
        2,
    )
    assert os_error_sentence(full, "Training") == (
        "Training failed: could not write /w/run.json (no space left on the device); free "
        "some disk space and run it again."
    )
    odd = OSError(errno.EXDEV, "Invalid cross-device link.")
    assert os_error_sentence(odd, "The job") == (
        "The job failed: could not write a file in the workspace (invalid cross-device link); "
        "check the path and the disk, then run it again."
    )
    assert os_error_sentence(odd) == (
        "Invalid cross-device link; check the path and the disk, then run it again."
    )


def test_is_locked_tells_a_held_lock_and_a_dataset_being_ingested_keeps_its_name(home):
    import threading

    from core.data import stored
    from core.storage import file_lock, is_locked

    lock = home / ".x.lock"
    assert not is_locked(lock)
    held, release = threading.Event(), threading.Event()

    def hold():
        with stored.name_lock(home, "movies"), file_lock(lock):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        assert is_locked(lock)
        assert stored.free_name(home, "movies") == "movies-2"  # an ingest holds 'movies'
    finally:
        release.set()
        holder.join(10)
    assert not is_locked(lock)
    assert stored.free_name(home, "movies") == "movies"  # a lock file alone is no dataset
