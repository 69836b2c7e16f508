"""Issue 11, "Silent overwrite": datasets are versions, never overwritten without asking.

Ingest under a taken name refuses with a sentence (CLI: --replace overwrites on purpose);
two ingests racing for one new name do not both win; a run remembers the fingerprint of
the data it was trained on and says so in one sentence when that data was replaced,
instead of an IndexError or answers about other users and items.
"""

from __future__ import annotations

import json
import re
import threading
from functools import partial

import pytest

from core.cli import main
from core.data import stored
from core.data.dataset import Dataset, DatasetExistsError, free_name, list_datasets
from core.data.ingest.ingest import ingest
from core.runs import jobs, queries
from core.runs import scenario_runs as sr
from core.runs.pipeline import DatasetChangedError, load_run, new_run, train_run
from core.runs.store import RunStore

DATE = r"\d{4}-\d\d-\d\d \d\d:\d\d UTC"


def _csv(n_users: int = 12, n_items: int = 9, shift: int = 0) -> bytes:
    """Five interactions per user; `shift` moves every item (same sizes, other content)."""
    rows = [
        f"u{u},i{(u * 3 + k + shift) % n_items},{k}\n" for u in range(n_users) for k in range(5)
    ]
    return ("user_id,item_id,timestamp\n" + "".join(rows)).encode()


def _changed(run_id: str) -> str:
    return (
        rf"Run {run_id} was trained on dataset 'x' before it was replaced on {DATE}; "
        r"retrain it on the new data\."
    )


def test_ingest_under_a_taken_name_refuses_and_keeps_the_data(home):
    first, _ = ingest((_csv(), "a.csv"), name="x", home=home)
    with pytest.raises(DatasetExistsError) as refused:
        ingest((_csv(20), "b.csv"), name="x", home=home)
    assert re.fullmatch(
        rf"A dataset named 'x' already exists \(60 interactions, ingested {DATE}\); choose "
        r"another --name or pass --replace to overwrite it\.",
        str(refused.value),
    )
    kept = Dataset.load(home, "x")
    assert len(kept.interactions) == 60 and kept.fingerprint == first.fingerprint
    # a name derived from the file name is checked too (at the save)
    ingest((_csv(), "y.csv"), home=home)
    with pytest.raises(DatasetExistsError, match="A dataset named 'y' already exists"):
        ingest((_csv(20), "y.csv"), home=home)
    replaced, _ = ingest((_csv(20), "b.csv"), name="x", replace=True, home=home)
    assert len(Dataset.load(home, "x").interactions) == 100
    assert replaced.fingerprint != first.fingerprint
    assert list_datasets(home) == ["x", "y"]  # no temp or lock file listed


def test_cli_ingest_refuses_a_taken_name_and_replace_overwrites(home, tmp_path, capsys):
    path = tmp_path / "a.csv"
    path.write_bytes(_csv())
    assert main(["ingest", str(path), "--name", "x", "--json"]) == 0
    capsys.readouterr()
    path.write_bytes(_csv(20))
    assert main(["ingest", str(path), "--name", "x", "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert re.fullmatch(
        rf"error: A dataset named 'x' already exists \(60 interactions, ingested {DATE}\); "
        r"choose another --name or pass --replace to overwrite it\.\n",
        err.splitlines(keepends=True)[-1],
    )
    assert main(["ingest", str(path), "--name", "x", "--replace", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_interactions"] == 100


def test_free_name_counts_up_past_taken_names(home):
    assert free_name(home, "x") == "x"
    ingest((_csv(), "a.csv"), name="x", home=home)
    assert free_name(home, "x") == "x-2"
    ingest((_csv(), "a.csv"), name="x-2", home=home)
    assert free_name(home, "x") == "x-3"
    assert free_name(home, "my data.csv") == "my-data.csv"  # free text becomes a valid name
    long = "a" * 64
    ingest((_csv(), "a.csv"), name=long, home=home)
    assert free_name(home, long) == "a" * 62 + "-2"  # still at most 64 characters


def test_two_ingests_racing_for_one_new_name_do_not_both_win(home):
    """Both start before either has saved; the name's lock lets one win, the other refuses."""
    start = threading.Barrier(2)
    outcome: dict[int, str] = {}

    def one(n_users: int) -> None:
        start.wait()
        try:
            ingest((_csv(n_users), "a.csv"), name="x", home=home)
            outcome[n_users] = "saved"
        except DatasetExistsError:
            outcome[n_users] = "refused"

    threads = [threading.Thread(target=one, args=(n,)) for n in (12, 20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcome.values()) == ["refused", "saved"]
    winner = next(n for n, what in outcome.items() if what == "saved")
    assert len(Dataset.load(home, "x").interactions) == 5 * winner


def test_fingerprint_is_stored_once_and_computed_for_older_datasets(home):
    ds, _ = ingest((_csv(), "a.csv"), name="x", home=home)
    meta_path = stored.dataset_dir(home, "x") / "dataset.json"
    meta = json.loads(meta_path.read_text())
    assert meta["fingerprint"] == ds.fingerprint == stored.fingerprint(ds.folder)
    assert len(ds.fingerprint) == 64
    # the same content ingested again has the same fingerprint: existing runs stay valid
    again, _ = ingest((_csv(), "other-name.csv"), name="x", replace=True, home=home)
    assert again.fingerprint == ds.fingerprint
    # a dataset.json from before fingerprints: computed from the files, same value
    meta = json.loads(meta_path.read_text())
    del meta["fingerprint"], meta["ingested_at"]
    meta_path.write_text(json.dumps(meta))
    assert Dataset.load(home, "x").fingerprint == ds.fingerprint
    assert stored.current_fingerprint(home, "x") == ds.fingerprint


@pytest.mark.parametrize("model", ["pop", "ease"])
def test_a_run_whose_dataset_was_replaced_says_so(home, model, capsys):
    ingest((_csv(), "a.csv"), name="x", home=home)
    store = RunStore(home)
    run_id = new_run(store, "x", model)
    assert train_run(store, run_id)["status"] == "finished"
    assert store.read(run_id)["dataset_fingerprint"] == Dataset.load(home, "x").fingerprint
    load_run(store, run_id)  # the same data: loads
    # identical content replaced: still the same data, still loads
    ingest((_csv(), "a.csv"), name="x", replace=True, home=home)
    load_run(store, run_id)
    # other content, other sizes
    ingest((_csv(20, 11), "a.csv"), name="x", replace=True, home=home)
    with pytest.raises(DatasetChangedError, match=_changed(run_id)):
        load_run(store, run_id)
    # other content, same sizes (would answer wrongly rather than fail)
    ingest((_csv(shift=1), "a.csv"), name="x", replace=True, home=home)
    now = Dataset.load(home, "x")
    assert (now.n_users, now.n_items, len(now.interactions)) == (12, 9, 60)
    with pytest.raises(DatasetChangedError, match=_changed(run_id)):
        load_run(store, run_id)
    assert main(["recommend", run_id, "--user", "u1", "--json"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert re.fullmatch("error: " + _changed(run_id), err)


def test_runs_of_one_dataset_share_its_split_until_the_data_is_replaced(home):
    """load_run keeps the (dataset, split) of a dataset, method and seed: two runs share
    one split (the 10M set took ~8 s to split per run), and a replaced dataset is still
    refused by each run's fingerprint, never answered from the kept split."""
    ingest((_csv(), "a.csv"), name="x", home=home)
    store = RunStore(home)
    first, second = new_run(store, "x", "pop"), new_run(store, "x", "pop")
    other_seed = new_run(store, "x", "pop", split_method="random", seed=5)
    for run_id in (first, second, other_seed):
        assert train_run(store, run_id)["status"] == "finished"
    a, b, c = load_run(store, first), load_run(store, second), load_run(store, other_seed)
    assert a.split is b.split and a.dataset is b.dataset
    assert c.split is not a.split and c.split.method == "random"
    ingest((_csv(shift=1), "a.csv"), name="x", replace=True, home=home)
    with pytest.raises(DatasetChangedError, match=_changed(first)):
        load_run(store, first)
    fresh = new_run(store, "x", "pop")
    assert train_run(store, fresh)["status"] == "finished"
    assert load_run(store, fresh).split is not a.split  # the new data's own split


def test_queries_on_a_run_whose_dataset_was_replaced_say_so(home):
    """`recscope explain` / `similar` keep loaded runs: a kept copy is not used after a replace."""
    ingest((_csv(), "a.csv"), name="x", home=home)
    store = RunStore(home)
    run_id = new_run(store, "x", "ease")
    train_run(store, run_id)
    before = queries.explain_run(store, run_id, "u1", "i1")  # kept from here on
    assert queries.similar_run(store, run_id, "i1", k=3)["item_id"] == "i1"
    ingest((_csv(), "a.csv"), name="x", replace=True, home=home)  # same content: still fine
    assert queries.explain_run(store, run_id, "u1", "i1").score == before.score
    ingest((_csv(shift=1), "a.csv"), name="x", replace=True, home=home)
    with pytest.raises(DatasetChangedError, match=_changed(run_id)):
        queries.explain_run(store, run_id, "u1", "i1")
    with pytest.raises(DatasetChangedError, match=_changed(run_id)):
        queries.similar_run(store, run_id, "i1", k=3)


def test_a_queued_run_whose_dataset_was_replaced_fails_with_the_sentence(home):
    ingest((_csv(), "a.csv"), name="x", home=home)
    store = RunStore(home)
    run_id = new_run(store, "x", "pop")
    ingest((_csv(shift=1), "a.csv"), name="x", replace=True, home=home)
    with pytest.raises(DatasetChangedError):
        train_run(store, run_id)
    record = store.read(run_id)
    assert record["status"] == "failed"
    assert re.fullmatch(
        rf"Run {run_id} was queued on dataset 'x' before it was replaced on {DATE}; start a "
        r"new run on the new data\.",
        record["error"],
    )


def test_a_run_from_before_fingerprints_is_checked_by_its_sizes(home):
    ingest((_csv(), "a.csv"), name="x", home=home)
    store = RunStore(home)
    run_id = new_run(store, "x", "pop")
    train_run(store, run_id)
    record_path = store.folder(run_id) / "run.json"
    record = json.loads(record_path.read_text())
    del record["dataset_fingerprint"]
    record_path.write_text(json.dumps(record))
    load_run(store, run_id)
    ingest((_csv(20, 11), "a.csv"), name="x", replace=True, home=home)
    with pytest.raises(DatasetChangedError, match=_changed(run_id)):
        load_run(store, run_id)  # not "unexpected IndexError"


def test_scenario_results_of_a_replaced_dataset_are_refused(home):
    ingest((_csv(), "a.csv"), name="x", home=home)
    store = RunStore(home)
    fingerprint = Dataset.load(home, "x").fingerprint
    run_id = store.new_run(
        {"kind": sr.LEADERBOARD, "dataset": "x", "dataset_fingerprint": fingerprint}
    )
    store.write_result(run_id, {"leaderboard": []})
    assert sr.result(store, run_id) == {"leaderboard": []}
    assert sr.recommendations(store, run_id) is None
    ingest((_csv(shift=1), "a.csv"), name="x", replace=True, home=home)
    sentence = (
        rf"Run {run_id} was computed on dataset 'x' before it was replaced on {DATE}; run it "
        r"again on the new data\."
    )
    with pytest.raises(DatasetChangedError, match=sentence):
        sr.result(store, run_id)
    with pytest.raises(DatasetChangedError, match=sentence):
        sr.recommendations(store, run_id)


def test_a_queued_scenario_job_whose_dataset_was_replaced_fails_with_the_sentence(home):
    rows = [f"u{u},i{(u + k) % 6},{k},{'ab'[k % 2]}\n" for u in range(12) for k in range(4)]
    upload = ("user_id,item_id,timestamp,scenario\n" + "".join(rows)).encode()
    ingest((upload, "s.csv"), name="x", home=home)
    store = RunStore(home)
    run_id = sr.new_leaderboard(store, "x", multiscenario_params={"epochs": 1})
    ingest((upload.replace(b"i1,", b"i7,"), "s.csv"), name="x", replace=True, home=home)
    with pytest.raises(DatasetChangedError):
        jobs.run_job(store, run_id, "leaderboard", partial(sr.run_leaderboard, store, run_id))
    record = store.read(run_id)
    assert record["status"] == "failed"
    assert re.fullmatch(
        rf"Run {run_id} was queued on dataset 'x' before it was replaced on {DATE}; run it "
        r"again on the new data\.",
        record["error"],
    )
    assert store.result(run_id) is None
