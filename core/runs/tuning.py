"""Tune a model under a budget: an Optuna study as a job of the one job system.

`new_tune` checks the request and creates a queued "tune" job (and, for a new study, the
study itself, with the model's defaults enqueued as its first trial); `run_tune` is the job
body that `recscope tune --run-id RUN` runs through `core.runs.jobs.run_job`, under the
device lock. The study lives in SQLite at `<home>/studies/studies.db` (Optuna's RDB
storage), named after the first job's run id, so any process — a page reloaded, an app
restarted, a second browser session — reads the same trials (`load_study`,
`trials_frame`), and `new_tune(resume=STUDY)` continues it under a new job.

Each trial fits the model on the split's train part and scores NDCG@10 on its valid part
only: trials get the split with its test part emptied, so none can score it. Neural
models report validation NDCG@10 per epoch from the training loop to a MedianPruner
(`trial.report` / `should_prune`; a pruned trial stops at that epoch); closed-form models
fit once per trial. The sampler is TPE, seeded. The defaults are the first trial, so the
best never scores below them on validation.

The budget is a wall-clock time and/or a number of trials (this job's). A trial still
running when the time is up stops at its next epoch (pruned, noted "time budget"); the
defaults trial always finishes. Cancel ends the running trial as pruned (or failed, if it
reported nothing yet), never lost, and the job as cancelled. After the study, the best
parameters are trained as an ordinary training run (`tuned_from` = the study), with test
metrics, shown on Runs and Compare like any run.

Only one job tunes a study at a time (`new_tune` refuses a second), so a trial left
"running" in the database when a job starts belonged to a process that died: it is marked
failed. The search spaces are `core.runs.tuning_space`; the database and the body of one
trial are `core.runs.tuning_study`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace

import optuna
import pandas as pd
from optuna.trial import TrialState

from core.data.dataset import Dataset, Interactions
from core.data.split import METHODS, split
from core.errors import ParameterError, RecScopeError
from core.models import make_model, model_class
from core.runs import liveness
from core.runs.jobs import Stage, job_record
from core.runs.liveness import ACTIVE
from core.runs.pipeline import model_params, new_run, run_dataset, train_run
from core.runs.stages import format_seconds
from core.runs.store import RunStore
from core.runs.tuning_space import (
    DEFAULTS_ATTR,
    enqueue_defaults,
    search_space,
    trial_params,
    tunable_models,
    unexplored,
)
from core.runs.tuning_study import (
    ERROR_ATTR,
    METRIC,
    STUDIES_DB,
    fail_orphans,
    open_study,
    run_trial,
    storage,
)
from core.storage import now_iso
from core.train import raise_if_cancelled

log = logging.getLogger(__name__)

TUNE = "tune"
#: the time budget when none (and no trial count) is given
DEFAULT_BUDGET_S = 600.0
#: a study whose trials fail this many times in a row stops with the last error
MAX_FAILURES_IN_A_ROW = 5

__all__ = [
    "load_study",
    "new_tune",
    "run_tune",
    "study_name",
    "trials_frame",
    "tunable_models",
]


def new_tune(
    store: RunStore,
    dataset: str | None,
    model: str | None,
    *,
    split_method: str = "loo",
    seed: int = 42,
    budget_s: float | None = DEFAULT_BUDGET_S,
    n_trials: int | None = None,
    device: str = "auto",
    resume: str | None = None,
    epochs: int | None = None,
    params: dict | None = None,
) -> str:
    """Check the request and create a queued tuning job; returns its run id.

    A new study is named after this run id and gets the model's defaults as its first
    trial. `resume=STUDY` continues that study (its dataset, model, split, seed, epochs and
    fixed params; `dataset` and `model` may then be None) with this call's budget and
    device. `params` are fixed values (not searched); `epochs` caps each neural trial.
    """
    budget_s, n_trials = check_budget(budget_s, n_trials)
    if resume is not None:
        origin = _resumable(store, resume)
        for what, asked in (("dataset", dataset), ("model", model)):
            value = origin[what]
            if asked not in (None, value):
                raise ParameterError(
                    f"Study {resume} tunes {what} '{value}', not '{asked}'; leave out --{what} "
                    "to resume it, or start a new study."
                )
        dataset, model, split_method = origin["dataset"], origin["model"], origin["split"]
        seed, epochs, params = origin["seed"], origin.get("epochs"), origin.get("fixed")
    if not dataset or not model:
        raise ParameterError("Tuning needs a dataset and a model (or --resume STUDY).")
    ds = Dataset.load(store.home, dataset)
    space = search_space(model)
    if split_method not in METHODS:
        raise ParameterError(f"Split '{split_method}' is unknown; use one of {', '.join(METHODS)}.")
    fixed = dict(params or {})
    make_model(model, **model_params(model, fixed, epochs=epochs, device=device, seed=seed))
    if resume is not None and origin["fingerprint"] != ds.fingerprint:
        raise RecScopeError(
            f"Study {resume} was tuned on dataset '{dataset}' before it was replaced; start a "
            "new study on the new data."
        )
    settings = {
        "model": model,
        "split": split_method,
        "seed": int(seed),
        "budget_s": budget_s,
        "n_trials": n_trials,
        "study": resume,
        "epochs": epochs,
        "fixed": fixed,
    }
    record = {
        "kind": TUNE,
        "dataset": dataset,
        "dataset_fingerprint": ds.fingerprint,
        "model": model,
        "split": split_method,
        "seed": int(seed),
        "device_request": device,
    }
    run_id = store.new_run({**record, "params": settings})
    if resume is None:
        try:
            study = optuna.create_study(
                study_name=run_id, storage=storage(store.home), direction="maximize"
            )
            attrs = {"dataset": dataset, "fingerprint": ds.fingerprint, **settings}
            for key in ("model", "split", "seed", "epochs", "fixed", "dataset", "fingerprint"):
                study.set_user_attr(key, attrs[key])
            searched = {k: v for k, v in space.items() if k not in fixed}
            defaults = model_params(model, fixed, epochs=epochs, device=device, seed=seed)
            enqueue_defaults(study, searched, {**_class_defaults(model), **defaults})
        except Exception:
            store.delete(run_id)
            raise
        store.update(run_id, params={**settings, "study": run_id})
    return run_id


def check_budget(budget_s: float | None, n_trials: int | None) -> tuple[float | None, int | None]:
    """The budget as (seconds or None, trials or None); one sentence if it is unusable."""
    if budget_s is None and n_trials is None:
        raise ParameterError(
            "Tuning needs a budget: a time (--budget 10m) or a number of trials (--trials 40), "
            "or both."
        )
    if budget_s is not None:
        ok = isinstance(budget_s, (int, float)) and not isinstance(budget_s, bool)
        if not ok or not math.isfinite(budget_s) or budget_s <= 0:
            raise ParameterError(
                f"Time budget {budget_s!r} is not a positive number of seconds; give e.g. 600, "
                "600s, 10m or 1h."
            )
        budget_s = float(budget_s)
    if n_trials is not None and (
        isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1
    ):
        raise ParameterError(f"Trial budget {n_trials!r} is not a whole number of at least 1.")
    return budget_s, n_trials


def run_tune(store: RunStore, run_id: str, stage: Stage) -> dict:
    """The tuning job body: the study under its budget, then the best parameters as a run."""
    record = job_record(store, run_id, TUNE)
    p = record["params"]
    model, name = p["model"], p["study"]
    ds = run_dataset(store, record, verb="queued", fix="start a new study on the new data")
    parts = split(ds, p["split"], int(p["seed"]))
    if len(parts.valid) == 0:
        raise RecScopeError(
            f"The {p['split']} split of dataset '{ds.name}' has no validation interactions, so "
            "there is nothing to tune on; use another split or a dataset with more history."
        )
    # the trials' split: no test rows at all, so no trial can score them
    tuning_parts = replace(parts, test=_empty(parts.test))
    space = search_space(model)
    fixed = dict(p.get("fixed") or {})
    searched = {k: v for k, v in space.items() if k not in fixed}
    base = model_params(
        model, fixed, epochs=p.get("epochs"), device=record.get("device_request"), seed=p["seed"]
    )
    study = open_study(store, name, seed=int(p["seed"]))
    fail_orphans(study)

    budget_s, n_trials = p.get("budget_s"), p.get("n_trials")
    started = time.monotonic()
    deadline = None if budget_s is None else started + budget_s
    done = failures = 0
    stopped_by = None
    while stopped_by is None:
        if n_trials is not None and done >= n_trials:
            stopped_by = "trials"
        elif deadline is not None and time.monotonic() >= deadline:
            stopped_by = "time"
        else:
            stage(*_progress(study, done, n_trials, time.monotonic() - started, budget_s))
            trial = study.ask()
            ok = run_trial(study, trial, model, searched, base, tuning_parts, deadline)
            done += 1
            failures = 0 if ok else failures + 1
            if failures >= MAX_FAILURES_IN_A_ROW:
                error = study.trials[-1].user_attrs.get(ERROR_ATTR, "")
                raise RecScopeError(
                    f"The last {failures} trials failed, so tuning stopped; the last said: "
                    f"{error.rstrip('.')}."
                )
    elapsed = time.monotonic() - started
    trials = study.get_trials(deepcopy=False)
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    if not completed:
        raise RecScopeError(
            f"No trial of study {name} finished within the budget; give a larger budget "
            f"(--budget) or resume the study."
        )
    best = study.best_trial
    best_params = trial_params(best)
    default = next((t for t in completed if t.user_attrs.get(DEFAULTS_ATTR)), None)
    stage(f"Training the best parameters (trial {best.number}) as a run", 1, 1)
    best_run = _train_best(store, record, {**fixed, **best_params}, name)
    store.update(run_id, best_run_id=best_run["run_id"])
    return {
        "study": name,
        "dataset": record["dataset"],
        "model": model,
        "split": p["split"],
        "n_trials": sum(t.state.is_finished() for t in trials),
        "n_complete": len(completed),
        "n_pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "n_failed": sum(t.state == TrialState.FAIL for t in trials),
        "best": {"params": best_params, METRIC: best.value, "trial": best.number},
        "default": {METRIC: default.value if default else None, "trial": _number(default)},
        "run_id": best_run["run_id"],
        "metrics": {"valid": best_run["metrics"]["valid"], "test": best_run["metrics"]["test"]},
        "budget": {
            "budget_s": budget_s,
            "n_trials": n_trials,
            "trials_run": done,
            "elapsed_s": round(elapsed, 3),
            "stopped_by": stopped_by,
        },
        "unexplored": unexplored(searched, trials),
    }


def load_study(store: RunStore, run_id: str) -> optuna.Study:
    """The study of tuning job `run_id` (any job of it), read from the database; safe to
    call while the job runs."""
    name = study_name(store, run_id)
    try:
        return optuna.load_study(study_name=name, storage=storage(store.home))
    except KeyError:
        raise RecScopeError(
            f"Study {name} is not in {store.home / STUDIES_DB}; its database was removed or "
            "replaced, so start a new study."
        ) from None


def study_name(store: RunStore, run_id: str) -> str:
    """The study a tuning job works on (the first job's run id)."""
    record = job_record(store, run_id, TUNE)
    return (record.get("params") or {}).get("study") or run_id


def trials_frame(store: RunStore, run_id: str) -> pd.DataFrame:
    """The study's trials, by number: number, state, value (validation NDCG@10; a pruned
    trial's last reported one), duration_s, then one column per searched parameter."""
    study = load_study(store, run_id)
    names = list(search_space(study.user_attrs["model"]))
    rows = []
    for t in study.get_trials(deepcopy=False):
        duration = t.duration.total_seconds() if t.duration is not None else None
        rows.append(
            {
                "number": t.number,
                "state": t.state.name.lower(),
                "value": t.value,
                "duration_s": duration,
                **{k: trial_params(t).get(k) for k in names},
            }
        )
    columns = ["number", "state", "value", "duration_s", *names]
    return pd.DataFrame(rows, columns=columns).sort_values("number", ignore_index=True)


# -- helpers --------------------------------------------------------------------------


def _train_best(store: RunStore, record: dict, params: dict, study: str) -> dict:
    """Train `params` as an ordinary run in this process (the job holds the device lock)."""
    p = record["params"]
    run_id = new_run(
        store,
        record["dataset"],
        p["model"],
        split_method=p["split"],
        seed=int(p["seed"]),
        device=record.get("device_request"),
        epochs=p.get("epochs"),
        params=params,
    )
    # this process trains it: a kill reads as failed at once (core.runs.liveness)
    store.update(run_id, tuned_from=study, **liveness.this_process(), heartbeat_at=now_iso())

    def on_progress(event: dict) -> None:
        raise_if_cancelled(f"while training the best parameters (run {run_id})")

    done = train_run(store, run_id, progress=on_progress)
    if done.get("status") != "finished":
        raise_if_cancelled("while training the best parameters")
        raise RecScopeError(f"The run with the best parameters ({run_id}) did not finish.")
    return done


def _resumable(store: RunStore, name: str) -> dict:
    """The settings of study `name`, which no live job may be tuning now."""
    db = storage(store.home)
    try:
        attrs = db.get_study_user_attrs(db.get_study_id_from_name(name))
    except KeyError:
        raise RecScopeError(
            f"There is no study named '{name}'; `recscope runs --kind tune` lists the tuning "
            "jobs, and a study is named after its first one."
        ) from None
    for other in store.list(kind=TUNE):
        if other.get("status") in ACTIVE and (other.get("params") or {}).get("study") == name:
            raise RecScopeError(
                f"Study {name} is being tuned by job {other['run_id']} ({other['status']}); wait "
                "for it to end or cancel it, then resume."
            )
    return attrs


def _progress(study, done: int, n_trials, elapsed: float, budget_s) -> tuple[str, int, int]:
    """`stage` arguments: "trial 7/40 · best 0.1234", the share of the budget used."""
    number = done + 1
    text = f"trial {number}/{n_trials}" if n_trials else f"trial {number}"
    if budget_s:
        text += f" · {format_seconds(elapsed)} of {format_seconds(budget_s)}"
    completed = [t.value for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    text += f" · best {max(completed):.4f}" if completed else ""
    shares = [done / n_trials if n_trials else 0.0, elapsed / budget_s if budget_s else 0.0]
    return text, int(1000 * min(max(shares), 1.0)), 1000


def _class_defaults(model: str) -> dict:
    return model_class(model).default_params()


def _empty(part: Interactions) -> Interactions:
    return Interactions(part.frame.iloc[:0].copy(), part.n_users, part.n_items, part.dataset)


def _number(trial) -> int | None:
    return None if trial is None else trial.number
