"""Tune page (issue 12) through AppTest: no study yet, Start makes a queued tune job, a
finished study's trials, figures and best run, a running study redrawn live, Resume, a
second session seeing the same study, and a sentence (never a traceback) for a study with
no trials, only failed trials or a missing database."""

from __future__ import annotations

import json
import subprocess

import optuna
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.runs import jobs, liveness, tuning, tuning_study
from core.runs.store import RunStore
from dashboard import views_tune as V
from dashboard.text import WORD_JOINER


def _page(dataset: str | None = None) -> None:
    import streamlit as st

    from dashboard import shell
    from pages import tune

    if dataset:
        st.session_state[shell.DATASET_KEY] = dataset
    tune.render()


def _app(dataset: str | None = "planted") -> AppTest:
    return AppTest.from_function(_page, kwargs={"dataset": dataset}, default_timeout=120)


def _texts(at: AppTest) -> str:
    kinds = ("info", "warning", "error", "caption", "markdown")
    text = "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))
    # shown strings go through dashboard.text.md: backslash escapes, a word joiner after '@'
    return text.replace("\\", "").replace(WORD_JOINER, "")


def _table(at: AppTest, column: str) -> pd.DataFrame:
    """The first table on the page with `column` (AppTest's dataframes carry no key)."""
    return next(df.value for df in at.dataframe if column in df.value.columns)


def _figures(at: AppTest) -> dict[str, dict]:
    """The page's Plotly figures by title (AppTest keeps each one's JSON spec)."""
    specs = [json.loads(e.proto.spec) for e in at.get("plotly_chart")]
    return {s["layout"]["title"]["text"]: s for s in specs}


def _study(store: RunStore, model: str = "ease", n_trials: int = 5, **kw) -> str:
    """A finished study run in this process (what `recscope tune --run-id` does)."""
    run_id = tuning.new_tune(store, "planted", model, n_trials=n_trials, budget_s=None, **kw)
    jobs.run_job(store, run_id, "tune", lambda stage: tuning.run_tune(store, run_id, stage))
    return run_id


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def planted_home(home, planted_dataset):
    planted_dataset.save(home)
    return home


def test_without_dataset_asks_for_one(home):
    at = _app(None).run()
    assert not at.exception and at.info[0].value == "Add a dataset on the Data page first."


def test_no_study_yet_says_so_and_offers_the_tunable_models(planted_home):
    at = _app().run()
    assert not at.exception
    assert at.info[0].value == (
        "No study on planted yet: pick a model and a budget, then press Start."
    )
    assert list(at.selectbox(key="tune_model").options) == tuning.tunable_models()
    assert "pop" not in tuning.tunable_models()
    assert at.button(key="tune_start").label == "Start tuning"
    at.selectbox(key="tune_model").set_value("ease").run()
    assert "Searches l2 1–100000 (log)." in _texts(at)
    assert len(at.dataframe) == 0 and not at.get("plotly_chart")


def test_start_creates_a_queued_tune_job(planted_home, monkeypatch):
    started = []
    monkeypatch.setattr(jobs, "start_job", lambda store, run_id: started.append(run_id) or 0)
    at = _app().run()
    at.selectbox(key="tune_model").set_value("ease")
    at.number_input(key="tune_minutes").set_value(0.0)
    at.number_input(key="tune_trials").set_value(7)
    at.button(key="tune_start").click().run()
    assert not at.exception
    (record,) = [RunStore(planted_home).read(r) for r in started]
    assert (record["kind"], record["dataset"], record["status"]) == ("tune", "planted", "queued")
    p = record["params"]
    assert (p["model"], p["n_trials"], p["budget_s"], p["split"]) == ("ease", 7, None, "loo")
    assert p["study"] == record["run_id"]


def test_start_without_any_budget_is_one_sentence(planted_home, monkeypatch):
    monkeypatch.setattr(jobs, "start_job", lambda store, run_id: pytest.fail("started"))
    at = _app().run()
    at.number_input(key="tune_minutes").set_value(0.0)
    at.button(key="tune_start").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "budget" in at.error[0].value
    assert RunStore(planted_home).list("planted", kind="tune") == []


def test_finished_study_shows_trials_figures_best_run_and_budget(planted_home):
    store = RunStore(planted_home)
    run_id = _study(store, "itemknn", n_trials=5)
    result = store.result(run_id)
    at = _app().run()
    assert not at.exception, at.exception
    table = _table(at, "trial")
    assert len(table) == 5 and list(table["trial"]) == [4, 3, 2, 1, 0]  # newest first
    assert {"state", V.METRIC, "seconds", "k", "shrink"} <= set(table.columns)
    assert (table["k"].iloc[-1], table["shrink"].iloc[-1]) == (50, 0.0)  # trial 0: defaults
    assert table[V.METRIC].max() == pytest.approx(result["best"]["valid_ndcg@10"])
    figures = _figures(at)
    history = figures["Validation NDCG@10 of each trial, and the best so far"]
    traces = {t["name"]: t for t in history["data"]}
    assert {"valid NDCG@10", "Best Value"} <= set(traces)  # the trials and the best so far
    assert len(traces["valid NDCG@10"]["y"]) == result["n_trials"] - result["n_pruned"]
    assert max(traces["Best Value"]["y"]) == pytest.approx(result["best"]["valid_ndcg@10"])
    (bars,) = figures["Which parameters mattered (fANOVA importance)"]["data"]
    assert sorted(bars["y"]) == ["k", "shrink"]
    assert "Validation NDCG@10 against each parameter" in figures
    text = _texts(at)
    assert V.best_sentence(result) in text
    assert f"run `{result['run_id']}`" in text
    test_table = _table(at, "ndcg@10")
    assert test_table["ndcg@10"].iloc[0] == pytest.approx(result["metrics"]["test"]["ndcg@10"])
    best_run = store.read(result["run_id"])
    assert best_run["status"] == "finished" and best_run.get("tuned_from") == run_id
    assert "Budget 5 trials: used" in text and "the number of trials was reached" in text
    assert at.button(key="tune_resume").label == "Resume this study for 10 min"
    # issue 16: page links switch page in this tab and session (a Markdown link opened a new one)
    links = {link.proto.page: link.proto for link in at.get("page_link")}
    assert set(links) == {"compare", "runs"} and not any(p.external for p in links.values())
    assert links["runs"].label == "Every metric: open the Runs page"
    assert "](./" not in text


def test_second_session_and_resume_continue_the_same_study(planted_home, monkeypatch):
    store = RunStore(planted_home)
    first = _study(store, n_trials=3)
    one, two = _app().run(), _app().run()  # two browser sessions
    for at in (one, two):
        assert not at.exception
        assert len(_table(at, "trial")) == 3
        assert _table(at, "trial")["l2"].iloc[-1] == "auto"  # EASE's default l2, as text
        assert f"Study {first}: ease" in _texts(at)
        assert at.selectbox(key="tune_model").value == "ease"  # the form starts from the study
        assert "Parameter importances cannot be computed" in _texts(at)
    started = []
    monkeypatch.setattr(jobs, "start_job", lambda store, run_id: started.append(run_id) or 0)
    one.number_input(key="tune_minutes").set_value(0.0)
    one.number_input(key="tune_trials").set_value(2).run()
    one.button(key="tune_resume").click().run()
    assert not one.exception
    (second,) = started
    assert store.read(second)["params"]["study"] == first
    jobs.run_job(store, second, "tune", lambda stage: tuning.run_tune(store, second, stage))
    at = _app().run()  # a reload finds the newest job of the study: 3 + 2 trials
    assert not at.exception
    assert len(_table(at, "trial")) == 5
    assert f"Study {first} (resumed as run {second})" in _texts(at)


def test_a_running_study_shows_its_trials_live_and_a_cancel_button(planted_home):
    store = RunStore(planted_home)
    first = _study(store, n_trials=3)
    second = tuning.new_tune(store, "planted", "ease", n_trials=3, budget_s=None, resume=first)
    store.append_progress(second, {"stage": "trial 4/6 · best 0.1234", "step": 3, "steps": 6})
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        pid_start = liveness.process_start(proc.pid)
        store.update(second, status="running", pid=proc.pid, pid_start=pid_start)
        at = _app().run()
        assert not at.exception
        assert at.button(key="tune_start").disabled
        bar = at.get("progress")[0].proto
        assert bar.text.replace("\\", "") == "trial 4/6 · best 0.1234" and bar.value == 50
        assert at.button(key=f"cancel_{second}").label == "Cancel"
        assert len(_table(at, "trial")) == 3  # the finished trials, live
        assert "Validation NDCG@10 of each trial, and the best so far" in _figures(at)
    finally:
        proc.kill()
        proc.wait()


def test_a_study_without_trials_says_so(planted_home):
    store = RunStore(planted_home)
    run_id = tuning.new_tune(store, "planted", "ease", n_trials=3, budget_s=None)
    store.update(run_id, status="cancelled")
    at = _app().run()
    assert not at.exception
    text = _texts(at)
    assert "The last tuning job was cancelled; its finished trials are kept." in text
    assert "No trial has finished yet; figures appear after the first one." in text
    assert not at.get("plotly_chart")
    assert at.button(key="tune_resume").label.startswith("Resume this study")


def test_a_cancelled_resume_still_shows_the_study_result(planted_home):
    store = RunStore(planted_home)
    first = _study(store, n_trials=2)
    second = tuning.new_tune(store, "planted", "ease", n_trials=2, budget_s=None, resume=first)
    store.update(second, status="cancelled")
    at = _app().run()
    assert not at.exception
    text = _texts(at)
    assert "The last tuning job was cancelled; its finished trials are kept." in text
    assert f"The result of this study's last finished job, {first}:" in text
    best_run = store.result(first)["run_id"]
    assert f"run `{best_run}`" in text
    assert list(_table(at, "ndcg@10").columns) == [
        "ndcg@10", "recall@10", "hit@10", "mrr@10", "coverage@10", "novelty@10"
    ]  # fmt: skip


def test_a_study_whose_trials_all_failed_says_so(planted_home):
    store = RunStore(planted_home)
    run_id = tuning.new_tune(store, "planted", "ease", n_trials=2, budget_s=None)
    study = tuning.load_study(store, run_id)
    for _ in range(2):
        study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    store.update(run_id, status="failed", error="The last 2 trials failed, so tuning stopped.")
    at = _app().run()
    assert not at.exception
    assert list(_table(at, "trial")["state"]) == ["failed", "failed"]
    assert (
        "All 2 trials failed, so there is no best parameter set; the job log in the run folder "
        "says why." in [e.value for e in at.info]
    )
    assert "The last tuning job failed: The last 2 trials failed" in _texts(at)
    assert not at.get("plotly_chart")


def test_a_missing_study_database_is_one_sentence(planted_home, monkeypatch):
    store = RunStore(planted_home)
    run_id = _study(store, n_trials=2)
    (planted_home / "studies" / "studies.db").unlink()
    monkeypatch.setattr(tuning_study, "_STORAGES", {})  # as after an app restart: no engine
    at = _app().run()
    assert not at.exception
    (note,) = [e.value for e in at.info if "Study" in e.value]
    assert note.replace("\\", "").startswith(f"Study {run_id} is not in ")
    assert "start a new study" in note
    assert not at.get("plotly_chart") and at.button(key="tune_resume")


def test_no_result_notes():
    def frame(*states):
        return pd.DataFrame(
            {"number": range(len(states)), "state": states, "value": 0.1, "duration_s": 1.0}
        )

    assert V.no_result_note(frame()) == "No trial has been recorded in this study yet."
    assert V.no_result_note(frame("FAIL", "FAIL")) == (
        "All 2 trials failed, so there is no best parameter set; the job log in the run folder "
        "says why."
    )
    assert V.no_result_note(frame("RUNNING")).startswith("No trial has finished yet")
    assert V.no_result_note(frame("COMPLETE", "PRUNED")) is None


def test_importances_need_two_finished_trials_that_differ():
    from dashboard import charts_tune as C

    study = optuna.create_study(direction="maximize")
    assert C.importance(study) == (None, "Parameter importances need at least two finished trials.")
    assert C.history(study)[0] is None
    for _ in range(2):
        study.enqueue_trial({"k": 5})
        study.optimize(lambda t: t.suggest_int("k", 1, 10) / 10, n_trials=1)
    fig, note = C.importance(study)
    assert fig is None and note.startswith("Parameter importances need parameters that took")
    study.optimize(lambda t: t.suggest_int("k", 1, 10) / 10, n_trials=3)
    fig, note = C.importance(study)
    assert note is None and fig.layout.title.text == C.TITLES["importance"]
    fig, _ = C.history(study)
    assert len(fig.data[0].y) == 5


def test_importances_of_trials_that_set_different_parameters_are_a_sentence():
    """EASE's defaults trial keeps l2='auto' (not a searched value): Optuna then draws an
    empty importance chart from two searched trials; the page says why instead."""
    from dashboard import charts_tune as C

    study = optuna.create_study(direction="maximize")
    study.optimize(lambda t: 0.2, n_trials=1)
    study.optimize(lambda t: t.suggest_float("l2", 1, 1e5, log=True) / 1e5, n_trials=2)
    fig, note = C.importance(study)
    assert fig is None and note.startswith("Parameter importances cannot be computed")


def test_durations_read_as_everywhere_else_in_the_app():
    """One time formatter (core.runs.stages.format_seconds) for budgets, used time and the
    job's stage line — the Tune page had its own ('2 min' for 90 s), tuning another ('1m 30s')."""
    from core.runs.stages import format_seconds

    assert V.budget_phrase(90, 20) == "1 min 30 s or 20 trials, whichever comes first"
    assert V.budget_phrase(600, None) == "10 min" == format_seconds(600)
    result = {"budget": {"elapsed_s": 133.4, "budget_s": 600, "stopped_by": "time"}}
    assert V.budget_sentence(result).startswith("Budget 10 min: used 2 min 13 s for 0 trials")

    class _Study:
        def get_trials(self, deepcopy=False):
            return []

    text, done, total = tuning._progress(_Study(), 6, 40, 95.0, 600.0)
    assert text == "trial 7/40 · 1 min 35 s of 10 min" and (done, total) == (158, 1000)
