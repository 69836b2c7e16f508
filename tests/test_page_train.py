"""Train page through AppTest: starting real background runs, live progress, cancel."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

from core.runs import jobs
from core.runs.store import RunStore
from tests.helpers import hold_cpu


def _train_page(dataset: str | None = None) -> None:
    import streamlit as st

    from dashboard import shell
    from pages import train

    if dataset:
        st.session_state[shell.DATASET_KEY] = dataset
    train.render()


def _app(dataset: str | None = "planted") -> AppTest:
    return AppTest.from_function(_train_page, kwargs={"dataset": dataset}, default_timeout=60)


def _wait(store: RunStore, run_ids: list[str], timeout: float = 180) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = [store.read(r) for r in run_ids]
        if all(r["status"] not in jobs.ACTIVE for r in records):
            return records
        time.sleep(0.5)
    raise AssertionError(f"runs still active: {[store.read(r)['status'] for r in run_ids]}")


def test_without_dataset_says_to_add_one(home):
    at = _app(dataset=None).run()
    assert not at.exception
    assert "Data page" in at.info[0].value


def test_start_two_models_and_see_their_results(home, planted_dataset):
    planted_dataset.save(home)
    at = _app().run()
    assert not at.exception
    assert at.multiselect(key="train_models").value == ["pop", "ease"]
    assert "No GPU found" in at.info[0].value or "GPU" in at.success[0].value
    at.text_input(key="p_ease_l2").set_value("10")
    at.button(key="train_start").click().run()
    assert not at.exception
    store = RunStore(home)
    started = at.session_state["train_started"]
    assert len(started) == 2
    records = _wait(store, started)
    assert [r["status"] for r in records] == ["finished", "finished"]
    assert records[1]["params"]["l2"] == 10.0  # the changed setting reached the run
    at.run()  # the page reads the finished runs back from the run store
    table = at.dataframe[0].value
    assert sorted(table["model"]) == ["ease", "pop"]
    ease = table.set_index("model").loc["ease", "ndcg@10"]
    pop = table.set_index("model").loc["pop", "ndcg@10"]
    assert ease > pop
    assert any("Finished in" in p.proto.text for p in at.get("progress"))


def test_running_job_shows_and_cancels(home, planted_dataset):
    planted_dataset.save(home)
    store = RunStore(home)
    # a queued job stays active: another holder owns the cpu slot
    with hold_cpu(store):
        at = _app().run()
        at.multiselect(key="train_models").set_value(["pop"])
        at.selectbox(key="train_device").set_value("cpu")
        at.button(key="train_start").click().run()
        run_id = at.session_state["train_started"][0]
        at.run()
        assert any(run_id in m.value for m in at.markdown)
        at.button(key=f"cancel_{run_id}").click().run()
        assert not at.exception
        record = _wait(store, [run_id], timeout=90)[0]
    assert record["status"] == "cancelled"


def test_all_gpus_is_offered_past_one_gpu_and_reaches_the_neural_runs(
    home, planted_dataset, monkeypatch
):
    """Issue 13: with more than one GPU visible, "all GPUs" trains a neural model on every one
    (nproc in its record, for the launcher); a closed-form model still runs once."""
    planted_dataset.save(home)
    store = RunStore(home)
    monkeypatch.setattr("core.device.gpu_count", lambda: 1)
    at = _app().run()
    assert not at.exception and not at.checkbox  # one GPU: nothing to offer
    monkeypatch.setattr("core.device.gpu_count", lambda: 4)
    monkeypatch.setattr(jobs, "start_job", lambda store, run_id: 0)  # no GPUs here to use
    at = _app().run()
    box = at.checkbox(key="train_all_gpus")
    assert box.label == "All 4 GPUs: one process per GPU (torchrun), for the neural models"
    at.multiselect(key="train_models").set_value(["pop", "bpr"])
    box.check().run()
    at.button(key="train_start").click().run()
    assert not at.exception
    records = {store.read(r)["model"]: store.read(r) for r in at.session_state["train_started"]}
    assert records["bpr"]["nproc"] == 4 and "nproc" not in records["pop"]
    at.selectbox(key="train_device").set_value("cpu").run()
    assert not at.checkbox  # CPU processes are for the CLI (--nproc), not this choice
