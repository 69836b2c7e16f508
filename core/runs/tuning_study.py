"""One study's database and one trial: the parts of tuning that talk to Optuna directly.

`storage` opens `<home>/studies/studies.db` (SQLite through Optuna's RDB storage, waiting up to
SQLITE_TIMEOUT_S for another process's lock); `open_study` loads a study with this job's
TPE sampler and MedianPruner (neither lives in the database); `run_trial` fits and scores
one trial and tells the study how it ended; `fail_orphans` fails the trials a dead process
left running. The job around them is `core.runs.tuning`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import optuna
from optuna.trial import Trial, TrialState

from core.errors import CancelledError, RecScopeError
from core.eval.evaluate import ranking_metric
from core.models import make_model
from core.protocols import ProgressEvent
from core.runs.store import RunStore
from core.runs.tuning_space import DEFAULTS_ATTR, FIXED_ATTR, suggest
from core.train import raise_if_cancelled

log = logging.getLogger(__name__)

STUDIES_DB = Path("studies") / "studies.db"  # DESIGN.md: studies/ holds Optuna's storage
METRIC = "valid_ndcg@10"
#: MedianPruner: trials that finish before any is pruned, and epochs before one may be
PRUNE_STARTUP_TRIALS = 3
PRUNE_WARMUP_EPOCHS = 2
#: TPE samples at random for this many trials before it models the good ones
TPE_STARTUP_TRIALS = 8
#: how long a read or write waits for SQLite's lock held by another process
SQLITE_TIMEOUT_S = 30
#: user attributes: why a trial stopped early besides the pruner (time budget, cancel,
#: its process ended), and a failed trial's error sentence
STOPPED_ATTR = "stopped"
ERROR_ATTR = "error"

_STORAGES: dict[str, optuna.storages.RDBStorage] = {}


class OutOfTime(Exception):
    """The time budget ran out during a trial (raised from the progress callback)."""


def run_trial(study, trial: Trial, model, searched, base, parts, deadline) -> bool:
    """Fit and score one trial and tell the study how it ended; False if it failed."""
    is_defaults = bool(trial.user_attrs.get(DEFAULTS_ATTR))
    fixed_now = trial.user_attrs.get(FIXED_ATTR, {})
    params = {k: suggest(trial, k, v) for k, v in searched.items() if k not in fixed_now}
    tick = time.perf_counter()
    reported = []

    def on_progress(event: ProgressEvent) -> None:
        if event.valid_metric is None:
            return
        # a closed-form model's search over a parameter (EASE's λ, event.param) is no step of
        # training: each try is its own solution, so it is no intermediate value to prune on
        epoch = event.param is None
        if epoch:
            reported.append(event.epoch)
            trial.report(float(event.valid_metric), int(event.epoch))
        if deadline is not None and not is_defaults and time.monotonic() >= deadline:
            raise OutOfTime
        if epoch and not is_defaults and trial.should_prune():
            raise optuna.TrialPruned

    try:
        fitted = make_model(model, **{**base, **fixed_now, **params})
        fitted.fit(parts.train, parts.valid, progress=on_progress)
        raise_if_cancelled(f"during trial {trial.number}")
        fitted.set_history(parts.known_for("valid"))
        value = ranking_metric(fitted, parts.valid, parts.known_for("valid"), k=10, seed=parts.seed)
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
        _log(trial, "pruned", tick)
        return True
    except OutOfTime:
        trial.set_user_attr(STOPPED_ATTR, "time budget")
        study.tell(trial, state=TrialState.PRUNED)
        _log(trial, "stopped by the time budget", tick)
        return True
    except CancelledError:
        trial.set_user_attr(STOPPED_ATTR, "cancelled")
        study.tell(trial, state=TrialState.PRUNED if reported else TrialState.FAIL)
        _log(trial, "cancelled", tick)
        raise
    except Exception as err:  # one bad combination (or OOM) must not end the study
        sentence = str(err) if isinstance(err, RecScopeError) else f"{type(err).__name__}: {err}"
        log.warning("trial %d failed: %s", trial.number, sentence)
        trial.set_user_attr(ERROR_ATTR, sentence)
        study.tell(trial, state=TrialState.FAIL)
        if is_defaults:
            raise RecScopeError(
                f"The trial with the defaults of model '{model}' failed, so tuning stopped: "
                f"{sentence.rstrip('.')}."
            ) from err
        return False
    study.tell(trial, value)
    _log(trial, f"{METRIC} {value:.4f}", tick)
    return True


def open_study(store: RunStore, name: str, *, seed: int) -> optuna.Study:
    """The study with this job's sampler and pruner (neither is stored in the database).

    The sampler's seed moves on with the trials already run, so a resumed study does not
    draw the first session's random trials again.
    """
    db = storage(store.home)
    try:
        n_before = len(db.get_all_trials(db.get_study_id_from_name(name)))
    except KeyError:
        raise RecScopeError(f"Study {name} is not in {store.home / STUDIES_DB}.") from None
    sampler = optuna.samplers.TPESampler(seed=seed + n_before, n_startup_trials=TPE_STARTUP_TRIALS)
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=PRUNE_STARTUP_TRIALS, n_warmup_steps=PRUNE_WARMUP_EPOCHS
    )
    return optuna.load_study(study_name=name, storage=db, sampler=sampler, pruner=pruner)


def fail_orphans(study: optuna.Study) -> None:
    """Trials left running by a job whose process died are failed (one job per study)."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, STOPPED_ATTR, "its process ended")
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)


def storage(home: Path) -> optuna.storages.RDBStorage:
    """The workspace's study database (one connection pool per process)."""
    path = Path(home) / STUDIES_DB
    key = str(path.resolve())
    if key not in _STORAGES:
        path.parent.mkdir(parents=True, exist_ok=True)
        _STORAGES[key] = optuna.storages.RDBStorage(
            f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
        )
    return _STORAGES[key]


def _log(trial: Trial, outcome: str, tick: float) -> None:
    log.info(
        "trial %d %s (%.1fs) %s", trial.number, outcome, time.perf_counter() - tick, trial.params
    )
