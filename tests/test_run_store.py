"""The run store lists runs newest first, even runs created within the same second."""

from __future__ import annotations

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
