"""Train page through AppTest: starting real background runs, live progress, cancel."""

from __future__ import annotations

import json
import time

from streamlit.testing.v1 import AppTest

from core.runs import jobs
from core.runs.store import RunStore
from dashboard import views_train as VT
from dashboard.text import md
from tests.helpers import hold_cpu

#: the plan's table (dashboard.views_plan), shown above Start whenever models are chosen
PLAN_COLUMNS = ["model", "memory", "time", "verdict"]


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
    table = at.dataframe[-1].value  # the results; the plan's table is first
    assert sorted(table["model"]) == ["ease", "pop"]
    ease = table.set_index("model").loc["ease", "ndcg@10"]
    pop = table.set_index("model").loc["pop", "ndcg@10"]
    assert ease > pop
    assert any("Finished in" in p.proto.text for p in at.get("progress"))
    # issue 16: readable metric names as on the Runs page, fit seconds to one decimal
    columns = json.loads(at.dataframe[-1].proto.columns)
    assert columns["ndcg@10"]["label"] == "NDCG@10" and columns["hit@10"]["label"] == "Hit rate@10"
    assert columns["fit (s)"]["label"] == "Fit (s)" and columns["model"]["hidden"] is True
    assert columns["fit (s)"]["type_config"]["format"] == "%.1f"


def test_running_job_shows_and_cancels(home, planted_dataset):
    """Issue 16: Cancel leaves the card on the page saying "cancelled" (no toast), until
    Dismiss takes it off."""
    planted_dataset.save(home)
    store = RunStore(home)
    # a queued job stays active: another holder owns the cpu's closed-form slot
    with hold_cpu(store, closed_form=True):
        at = _app().run()
        at.multiselect(key="train_models").set_value(["pop"])
        at.selectbox(key="train_device").set_value("cpu")
        at.button(key="train_start").click().run()
        run_id = at.session_state["train_started"][0]
        _wait_for_message(store, run_id)
        at.run()
        assert any(run_id in m.value for m in at.markdown)
        assert _bar_text(at, run_id) == (
            "1st in line for cpu (closed-form models): waiting for it to be free."
        )
        at.button(key=f"cancel_{run_id}").click().run()
        assert not at.exception and not at.toast
        record = _wait(store, [run_id], timeout=90)[0]
    assert record["status"] == "cancelled"
    at.run()
    assert _card_heads(at) == [f"**pop** · `{run_id}` · cancelled"]
    assert [w.value for w in at.warning] == ["Cancelled before it started; nothing was trained."]
    at.button(key=f"dismiss_{run_id}").click().run()
    assert not _card_heads(at) and store.read(run_id)["dismissed_at"]
    assert at.caption[-1].value == "No training in progress for this dataset."


def _wait_for_message(store: RunStore, run_id: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not store.read(run_id).get("message") and time.monotonic() < deadline:
        time.sleep(0.3)


def _card_heads(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("**")]


def _bar_text(at: AppTest, run_id: str) -> str:
    heads = _card_heads(at)
    index = next(i for i, h in enumerate(heads) if run_id in h)
    return at.get("progress")[index].proto.text


def _ended_runs(store: RunStore) -> dict[str, str]:
    """A finished, a failed and a cancelled run of 'planted', as their jobs leave them, plus
    an EASE still trying λ values and a finished run of two days ago."""
    ids = {}
    for model, status in [
        ("pop", "finished"),
        ("bpr", "failed"),
        ("lightgcn", "cancelled"),
        ("ease", "running"),
        ("itemknn", "finished"),
    ]:
        run_id = store.new_run({"dataset": "planted", "model": model, "split": "loo", "seed": 1})
        store.update(run_id, status=status, started_at="2026-01-01T00:00:00+00:00")
        ids[model] = run_id
    store.update(
        ids["pop"], metrics={"test": {"ndcg@10": 0.25, "recall@10": 0.5}}, timings={"fit_s": 0.5}
    )
    store.update(ids["bpr"], error="Training failed with an unexpected ValueError: bad batch.")
    for epoch in (1, 2, 3):
        store.append_progress(
            ids["lightgcn"], {"epoch": epoch, "epochs": 50, "loss": 1.0 / epoch, "elapsed_s": epoch}
        )
    for step, (l2, metric) in enumerate([(50.0, 0.3), (100.0, 0.34), (250.0, 0.33)], start=1):
        store.append_progress(
            ids["ease"],
            {"epoch": step, "epochs": 5, "valid_metric": metric, "param": "λ", "param_value": l2},
        )
    store.update(ids["itemknn"], created_at="2020-01-01T00:00:00+00:00")
    return ids


def test_ended_runs_stay_with_their_outcome_across_sessions_until_dismissed(home, planted_dataset):
    """Issue 16: after a reload (a new session) the Train page still shows the runs of the last
    hours with how they ended; Dismiss all finished takes the ended ones off for every session."""
    planted_dataset.save(home)
    store = RunStore(home)
    ids = _ended_runs(store)
    at = _app().run()  # a new session: it started none of them
    assert not at.exception
    heads = _card_heads(at)
    assert [h.split(" · ")[-1] for h in heads] == ["running", "cancelled", "failed", "finished"]
    assert not any(ids["itemknn"] in h for h in heads)  # two days old: not recent
    assert (
        _bar_text(at, ids["ease"]) == "Trying λ 3 of 5 (λ = 250) · best validation ndcg@10 0.3400"
    )
    assert [e.value for e in at.error] == [  # shown as plain text (markdown escaped)
        md("Training failed with an unexpected ValueError: bad batch.")
    ]
    assert [w.value for w in at.warning] == [
        "Cancelled after epoch 3 of at most 50; nothing was saved."
    ]
    table = at.dataframe[-1].value  # the results; the plan's table is first
    assert table["run"].tolist() == [ids["pop"]] and table["ndcg@10"].tolist() == [0.25]
    assert VT.QUEUE_NOTE.format(hours=24) in [c.value for c in at.caption]
    at.button(key="train_dismiss_all").click().run()
    again = _app().run()  # dismissals hold for every session
    for page in (at, again):
        assert [h.split(" · ")[-1] for h in _card_heads(page)] == ["running"]
        assert [list(d.value.columns) for d in page.dataframe] == [PLAN_COLUMNS]  # no results
    assert store.read(ids["ease"]).get("dismissed_at") is None  # a running run stays
    store.update(ids["ease"], cancel_requested=True)  # asked; the process has not stopped yet
    at.run()
    assert _bar_text(at, ids["ease"]) == "Cancelling — it stops at the next batch."
    again = at.button(key=f"cancel_{ids['ease']}")
    assert again.label == "Cancel again" and again.help == VT.CANCEL_AGAIN


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
