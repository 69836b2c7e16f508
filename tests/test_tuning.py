"""Tuning (issue 12): Optuna studies in the workspace's SQLite, pruned by the training loop,
budgeted, cancellable, resumable, selected on validation only, best trained as a run."""

from __future__ import annotations

import json
import time

import optuna
import pytest
from optuna.trial import TrialState

from core import train
from core.cli import main
from core.data.split import split
from core.errors import ParameterError, RecScopeError
from core.eval import evaluate as evaluate_mod
from core.runs import tuning, tuning_study
from core.runs.jobs import run_job
from core.runs.store import RunStore

#: bpr on the planted data: a few epochs, batches small enough for several steps each
BPR = {"batch_size": 256}


@pytest.fixture
def store(home, planted_dataset, monkeypatch) -> RunStore:
    planted_dataset.save(home)
    monkeypatch.setattr(tuning_study, "_STORAGES", {})  # each test opens its own database
    return RunStore(home)


def tune(store: RunStore, model: str, **options) -> tuple[str, dict]:
    """Create and run a tuning job in this process; (job id, final record)."""
    options.setdefault("budget_s", None)
    job = tuning.new_tune(store, "planted", model, device="cpu", **options)
    record = run_job(store, job, "tune", lambda stage: tuning.run_tune(store, job, stage), "cpu")
    return job, record


def test_tuned_best_is_no_worse_than_the_defaults_and_the_pruner_stopped_trials(store, monkeypatch):
    monkeypatch.setattr(tuning_study, "PRUNE_STARTUP_TRIALS", 2)
    monkeypatch.setattr(tuning_study, "PRUNE_WARMUP_EPOCHS", 1)
    job, record = tune(store, "bpr", n_trials=6, epochs=4, params=BPR)
    assert record["status"] == "finished", record.get("error")
    result = store.result(job)
    assert result["study"] == job and result["n_trials"] == 6
    assert result["n_pruned"] > 0
    assert result["n_complete"] + result["n_pruned"] + result["n_failed"] == 6
    assert result["default"]["trial"] == 0
    assert result["best"]["valid_ndcg@10"] >= result["default"]["valid_ndcg@10"]
    first = tuning.load_study(store, job).trials[0]  # the defaults, exactly
    assert tuning.trials_frame(store, job).iloc[0][["dim", "lr", "reg", "negatives"]].tolist() == [
        128,
        2e-3,
        0.0,
        4,
    ]
    assert first.params == {"dim": 128, "lr": 2e-3, "negatives": 4}  # reg 0 is off the log range
    # the best parameters became an ordinary finished run with test metrics
    run = store.read(result["run_id"])
    assert run["kind"] == "train" and run["status"] == "finished"
    assert run["tuned_from"] == job
    assert {k: run["params"][k] for k in result["best"]["params"]} == result["best"]["params"]
    assert run["params"]["epochs"] == 4 and run["params"]["batch_size"] == 256
    assert result["metrics"]["test"] == run["metrics"]["test"]
    assert run["metrics"]["valid"]["ndcg@10"] == pytest.approx(result["best"]["valid_ndcg@10"])
    assert store.read(job)["best_run_id"] == result["run_id"]


def test_trials_score_the_validation_part_only(store, planted_dataset, monkeypatch):
    parts = split(planted_dataset, "loo", 42)
    pairs = {name: _pairs(getattr(parts, name)) for name in ("valid", "test")}
    scored: list[tuple[str, set]] = []
    phase = ["trials"]
    real_truth, real_train_best = evaluate_mod._truth_minus_known, tuning._train_best

    def recording_truth(truth, known):
        scored.append((phase[0], _pairs(truth)))
        return real_truth(truth, known)

    def final(*args, **kwargs):
        phase[0] = "final run"
        return real_train_best(*args, **kwargs)

    monkeypatch.setattr(evaluate_mod, "_truth_minus_known", recording_truth)
    monkeypatch.setattr(tuning, "_train_best", final)
    job, record = tune(store, "itemknn", n_trials=4)
    assert record["status"] == "finished", record.get("error")
    during = [p for phase_name, p in scored if phase_name == "trials"]
    assert len(during) == 4  # one validation score per trial
    assert all(p == pairs["valid"] for p in during)
    assert pairs["test"] in [p for phase_name, p in scored if phase_name == "final run"]


def test_study_survives_a_new_store_and_resume_continues_it(store, home, monkeypatch):
    job, _ = tune(store, "itemknn", n_trials=3)
    first = store.result(job)
    assert first["budget"] == {
        "budget_s": None,
        "n_trials": 3,
        "trials_run": 3,
        "elapsed_s": first["budget"]["elapsed_s"],
        "stopped_by": "trials",
    }
    # another process: a new store, a new database connection
    monkeypatch.setattr(tuning_study, "_STORAGES", {})
    again = tuning.load_study(RunStore(home), job)
    assert [t.number for t in again.trials] == [0, 1, 2]
    assert all(t.state == TrialState.COMPLETE for t in again.trials)
    frame = tuning.trials_frame(RunStore(home), job)
    assert list(frame.columns) == ["number", "state", "value", "duration_s", "k", "shrink"]
    assert frame["state"].tolist() == ["complete"] * 3
    assert frame.loc[0, ["k", "shrink"]].tolist() == [50, 0.0]  # the defaults first

    second, record = run_resume(store, job, n_trials=2)
    assert record["status"] == "finished", record.get("error")
    result = store.result(second)
    assert result["study"] == job and result["n_trials"] == 5
    assert result["budget"]["trials_run"] == 2
    numbers = [t.number for t in tuning.load_study(store, second).trials]
    assert numbers == [0, 1, 2, 3, 4]
    assert (
        sum(bool(t.user_attrs.get("defaults")) for t in tuning.load_study(store, job).trials) == 1
    )
    assert result["best"]["valid_ndcg@10"] >= first["best"]["valid_ndcg@10"]


def run_resume(store: RunStore, study: str, **options) -> tuple[str, dict]:
    job = tuning.new_tune(store, None, None, resume=study, budget_s=None, **options)
    record = run_job(store, job, "tune", lambda stage: tuning.run_tune(store, job, stage), "cpu")
    return job, record


def test_time_budget_stops_after_the_defaults_trial(store):
    job, record = tune(store, "itemknn", budget_s=0.01)
    result = store.result(job)
    assert record["status"] == "finished"
    assert result["budget"]["stopped_by"] == "time" and result["n_trials"] == 1
    assert result["best"]["trial"] == result["default"]["trial"] == 0


def test_cancel_during_a_trial_keeps_it_and_the_study(store, home, monkeypatch):
    real_report = optuna.trial.Trial.report

    def report(self, value, step):
        real_report(self, value, step)
        if self.number == 1 and step == 2:
            train.request_cancel()  # what a job's SIGTERM does

    monkeypatch.setattr(optuna.trial.Trial, "report", report)
    job, record = tune(store, "bpr", n_trials=4, epochs=4, params=BPR)
    assert record["status"] == "cancelled"
    assert store.result(job) is None
    monkeypatch.setattr(tuning_study, "_STORAGES", {})
    trials = tuning.load_study(RunStore(home), job).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert trials[1].user_attrs["stopped"] == "cancelled"
    assert sorted(trials[1].intermediate_values) == [1, 2]
    assert not train.cancel_requested()


def test_a_trial_left_running_by_a_dead_process_is_failed_on_resume(store):
    job = tuning.new_tune(store, "planted", "itemknn", budget_s=None, n_trials=1)
    store.update(job, status="cancelled")  # its process is gone
    orphan = tuning.load_study(store, job).ask()  # the defaults trial, left running
    second, record = run_resume(store, job, n_trials=1)
    trials = tuning.load_study(store, second).trials
    assert record["status"] == "finished", record.get("error")
    assert trials[orphan.number].state == TrialState.FAIL
    assert trials[orphan.number].user_attrs["stopped"] == "its process ended"
    assert [t.state for t in trials[1:]] == [TrialState.COMPLETE]


@pytest.mark.parametrize(
    ("model", "options", "sentence"),
    [
        (
            "pop",
            {},
            "Model 'pop' has no hyperparameters worth tuning (it ranks items by their counts); "
            "train it directly, or tune one of itemknn, ease, bpr, neumf, lightgcn, sasrec, "
            "bert4rec, gru4rec.",
        ),
        (
            "hybrid",
            {},
            "Model 'hybrid' declares no search space, so it cannot be tuned; tunable models are "
            "itemknn, ease, bpr, neumf, lightgcn, sasrec, bert4rec, gru4rec.",
        ),
        (
            "ease",
            {"budget_s": None, "n_trials": None},
            "Tuning needs a budget: a time (--budget 10m) or a number of trials (--trials 40), "
            "or both.",
        ),
        (
            "ease",
            {"budget_s": 0},
            "Time budget 0 is not a positive number of seconds; give e.g. 600, 600s, 10m or 1h.",
        ),
        (
            "ease",
            {"n_trials": 0},
            "Trial budget 0 is not a whole number of at least 1.",
        ),
    ],
)
def test_refused_before_a_job_exists(store, model, options, sentence):
    with pytest.raises(ParameterError) as err:
        tuning.new_tune(store, "planted", model, **options)
    assert str(err.value) == sentence
    assert store.list(kind=None) == []
    assert not (store.home / "studies" / "studies.db").exists()


def test_resume_refuses_an_unknown_study(store):
    with pytest.raises(RecScopeError, match="There is no study named 'tune-x'"):
        tuning.new_tune(store, None, None, resume="tune-x")


def test_cli_prints_the_result_and_refuses_a_bad_budget(store, capsys):
    code = main(["tune", "--dataset", "planted", "--model", "ease", "--trials", "2", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "finished" and result["study"] == result["job_id"]
    assert result["n_trials"] == 2 and result["n_pruned"] == 0
    assert set(result["best"]) == {"params", "valid_ndcg@10", "trial"}
    assert set(result["best"]["params"]) == {"l2"}
    assert (
        result["metrics"]["test"]["ndcg@10"]
        == store.read(result["run_id"])["metrics"]["test"]["ndcg@10"]
    )
    assert result["budget"]["stopped_by"] == "trials" and result["unexplored"].startswith(
        "2 trials searched 1 parameter"
    )

    code = main(["tune", "--resume", result["study"], "--trials", "1", "--json"])
    out, err = capsys.readouterr()
    resumed = json.loads(out)
    assert code == 0, err
    assert resumed["study"] == result["study"] and resumed["job_id"] != result["job_id"]
    assert resumed["n_trials"] == 3 and resumed["budget"]["trials_run"] == 1

    code = main(["tune", "--dataset", "planted", "--model", "ease", "--budget", "10 minutes?"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err == (
        "error: recscope tune: argument --budget: '10 minutes?' is not a time budget; use "
        "seconds above 0 (600), 600s, 10m or 1h; see `recscope tune --help`.\n"
    )


def test_budget_text_in_seconds():
    from core.cli.parser import budget_seconds

    assert [budget_seconds(t) for t in ("600", "600s", "10m", "1.5h", " 90 S")] == [
        600.0,
        600.0,
        600.0,
        5400.0,
        90.0,
    ]


def _pairs(part) -> set:
    frame = part.frame
    return set(zip(frame["user_code"].tolist(), frame["item_code"].tolist(), strict=True))


def test_a_detached_tuning_job_runs_through_the_one_job_system(store):
    from core.runs import jobs

    job = tuning.new_tune(store, "planted", "ease", device="cpu", budget_s=None, n_trials=2)
    assert jobs.COMMANDS[store.read(job)["kind"]] == ("tune",)
    jobs.start_job(store, job)
    deadline = time.monotonic() + 120
    while store.read(job)["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.3)
    record = store.read(job)
    assert record["status"] == "finished", record.get("error")
    result = store.result(job)
    assert result["n_trials"] == 2 and store.read(result["run_id"])["status"] == "finished"
    stages = [e["stage"] for e in store.progress(job) if e.get("stage")]
    assert stages[:2] == ["trial 1/2", f"trial 2/2 · best {result['default']['valid_ndcg@10']:.4f}"]
    assert stages[-1].startswith("Training the best parameters (trial ")


def test_cancel_of_a_detached_job_mid_trial_while_another_session_reads_the_study(store, home):
    from core.runs import jobs

    long_trials = {**BPR, "patience": 1000}  # no early stop: each trial runs all its epochs
    job = tuning.new_tune(
        store, "planted", "bpr", device="cpu", budget_s=None, n_trials=3, epochs=500,
        params=long_trials,
    )  # fmt: skip
    jobs.start_job(store, job)
    deadline = time.monotonic() + 120
    reader = RunStore(home)  # a second session: its own store, reading while the job runs
    while time.monotonic() < deadline:
        frame = tuning.trials_frame(reader, job)
        epochs = tuning.load_study(reader, job).trials[0].intermediate_values
        if len(epochs) >= 2:
            break
        time.sleep(0.3)
    assert frame.loc[0, "state"] == "running" and len(epochs) >= 2
    jobs.cancel_job(store, job)
    while store.read(job)["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.3)
    assert store.read(job)["status"] == "cancelled"
    trial = tuning.load_study(reader, job).trials[0]
    assert trial.state == TrialState.PRUNED and trial.user_attrs["stopped"] == "cancelled"
    assert tuning.trials_frame(reader, job)["state"].tolist() == ["pruned"]


def test_a_trial_running_when_the_time_is_up_stops_at_its_next_epoch(store, monkeypatch):
    real = tuning.run_trial

    def out_of_time_in_trial_1(study, trial, *args):
        if trial.number == 1:  # the budget runs out while trial 1 trains
            args = (*args[:-1], time.monotonic() - 1)
        return real(study, trial, *args)

    monkeypatch.setattr(tuning, "run_trial", out_of_time_in_trial_1)
    job, record = tune(store, "bpr", n_trials=2, epochs=3, params=BPR)
    assert record["status"] == "finished", record.get("error")
    trials = tuning.load_study(store, job).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert trials[1].user_attrs["stopped"] == "time budget"
    assert list(trials[1].intermediate_values) == [1]  # stopped after its first epoch
    assert len(trials[0].intermediate_values) == 3  # the defaults always run to the end


def test_unexplored_names_each_parameter_once_with_both_untried_ends():
    from optuna.distributions import FloatDistribution, IntDistribution

    from core.models.space import float_param, int_param
    from core.runs.tuning_space import unexplored

    space = {"lr": float_param(1e-4, 1e-1, log=True), "dim": int_param(16, 256)}
    dists = {"lr": FloatDistribution(1e-4, 1e-1, log=True), "dim": IntDistribution(16, 256)}
    trials = [
        optuna.trial.create_trial(params=p, distributions=dists, value=0.1)
        for p in ({"lr": 1e-3, "dim": 20}, {"lr": 1e-2, "dim": 250})
    ]
    assert unexplored(space, trials) == (
        "2 trials searched 2 parameters; never tried: lr 0.0001–0.001 and 0.01–0.1 "
        "(resume the study to look there)."
    )


def test_eases_lambda_tries_are_not_reported_to_optuna_as_epochs(store):
    """Issue 16: the defaults trial of EASE (l2='auto') searches λ and reported each try as
    an 'epoch' intermediate value; a try is its own closed-form solution, not a training step,
    so nothing is reported and the pruner never judges it."""
    job, record = tune(store, "ease", n_trials=2)
    assert record["status"] == "finished", record.get("error")
    trials = tuning.load_study(store, job).trials
    assert trials[0].params == {} or "l2" not in trials[0].params  # the defaults: λ searched
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert [dict(t.intermediate_values) for t in trials] == [{}, {}]
