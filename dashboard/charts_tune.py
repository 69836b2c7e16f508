"""The Tune page's figures: Optuna's own Plotly plots (`optuna.visualization`) of a study.

Each function takes an `optuna.Study` (read from the workspace's study database) and returns
`(figure, None)` or `(None, sentence)` when the study cannot draw it yet — no finished trial,
one trial where importances need two, a search space where nothing varied — so the page
shows a sentence, never Optuna's warning or exception. No Streamlit calls here.
"""

from __future__ import annotations

import logging

import optuna
import plotly.graph_objects as go
from optuna.importance import FanovaImportanceEvaluator
from optuna.trial import TrialState
from optuna.visualization import (
    plot_intermediate_values,
    plot_optimization_history,
    plot_parallel_coordinate,
    plot_param_importances,
    plot_slice,
)

from dashboard.charts import epoch_ticks

log = logging.getLogger(__name__)

METRIC = "valid NDCG@10"
TITLES = {
    "history": "Validation NDCG@10 of each trial, and the best so far",
    "importance": "Which parameters mattered (fANOVA importance)",
    "slice": "Validation NDCG@10 against each parameter",
    "parallel": "Every finished trial's parameters and score",
    "curves": "Validation NDCG@10 per epoch (stopped-early trials end sooner)",
}
Figure = tuple[go.Figure | None, str | None]


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def history(study: optuna.Study) -> Figure:
    if not finished_trials(study):
        return None, "The history appears once the first trial has finished."
    fig = plot_optimization_history(study, target_name=METRIC)
    return _titled(fig, "history"), None


def importance(study: optuna.Study) -> Figure:
    done = finished_trials(study)
    if len(done) < 2:
        return None, "Parameter importances need at least two finished trials."
    if not _varied(done):
        return None, (
            "Parameter importances need parameters that took more than one value; every "
            "finished trial used the same settings."
        )
    try:
        fig = plot_param_importances(
            study, evaluator=FanovaImportanceEvaluator(seed=0), target_name=METRIC
        )
    except (ValueError, RuntimeError) as err:  # e.g. all trials scored the same
        log.info("no parameter importances: %s", err)
        fig = None
    if fig is None or not fig.data:  # Optuna uses only trials that set every parameter
        return None, (
            "Parameter importances cannot be computed from these trials yet: they need at "
            "least two finished trials that set the same parameters (the defaults trial may "
            "leave some at their built-in value)."
        )
    fig.update_traces(textposition="auto")  # Optuna's labels sit outside and get clipped
    return _titled(fig, "importance"), None


def slices(study: optuna.Study) -> Figure:
    done = finished_trials(study)
    if not done:
        return None, "The slice plot appears once the first trial has finished."
    if not any(t.params for t in done):
        return None, "This model has no parameters to plot."
    return _titled(plot_slice(study, target_name=METRIC), "slice"), None


def parallel(study: optuna.Study) -> Figure:
    done = finished_trials(study)
    if len(done) < 2 or not _varied(done):
        return None, "Parallel coordinates need at least two finished trials that differ."
    return _titled(plot_parallel_coordinate(study, target_name=METRIC), "parallel"), None


def curves(study: optuna.Study) -> Figure:
    trials = study.get_trials(deepcopy=False)
    if not any(t.intermediate_values for t in trials):
        return None, (
            "No trial reported a score per epoch (closed-form models are fitted once, so "
            "nothing is stopped early)."
        )
    fig = plot_intermediate_values(study)
    last = max(max(t.intermediate_values, default=1) for t in trials)
    fig.update_layout(yaxis_title=METRIC, xaxis_title="epoch")
    fig.update_xaxes(**epoch_ticks(last))  # whole epochs, not plotly's "1 1 2 2"
    return _titled(fig, "curves"), None


ALL = {
    "history": history,
    "importance": importance,
    "slice": slices,
    "parallel": parallel,
    "curves": curves,
}


def _varied(trials: list[optuna.trial.FrozenTrial]) -> bool:
    """True when at least one parameter took two different values across `trials`."""
    names = {name for t in trials for name in t.params}
    return any(len({repr(t.params.get(name)) for t in trials}) > 1 for name in names)


def _titled(fig: go.Figure, which: str) -> go.Figure:
    fig.update_layout(title=TITLES[which])
    return fig
