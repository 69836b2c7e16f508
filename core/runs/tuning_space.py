"""Search spaces as Optuna sees them: each model's `SEARCH_SPACE` (core.models.space).

`SPACES` maps a model name to its declared parameters; `search_space` refuses, with one
sentence, a model that declares nothing worth tuning (popularity) or no space at all.
`defaults_trial` splits a model's defaults into what the first trial enqueues (values
inside their ranges) and what it uses as it is (EASE's l2='auto', an L2 penalty of 0 on a
log scale); `trial_params` puts both back together for any finished trial; `unexplored`
says in one sentence which parts of the ranges no trial has tried.
"""

from __future__ import annotations

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, Trial, TrialState

from core.errors import ParameterError
from core.models import available, model_class
from core.models.space import Param

#: user attribute of the first trial: the defaults it used as they are (not searched)
FIXED_ATTR = "fixed"
#: user attribute marking the trial that ran the model's defaults
DEFAULTS_ATTR = "defaults"


def _declared() -> dict[str, dict[str, Param]]:
    spaces = {}
    for name in available():
        space = getattr(model_class(name), "SEARCH_SPACE", None)  # a declared class attribute
        if space is not None:
            spaces[name] = dict(space)
    return spaces


#: the search space of every model that declares one (popularity's is empty)
SPACES: dict[str, dict[str, Param]] = _declared()


def tunable_models() -> list[str]:
    """Models with at least one parameter to search, in the registry's order."""
    return [name for name, space in SPACES.items() if space]


def search_space(model: str) -> dict[str, Param]:
    """The parameters searched for `model`; a one-sentence refusal if there are none."""
    model_class(model)  # an unknown model: the registry's own sentence
    space = SPACES.get(model)
    if space is None:
        raise ParameterError(
            f"Model '{model}' declares no search space, so it cannot be tuned; tunable models "
            f"are {', '.join(tunable_models())}."
        )
    if not space:
        raise ParameterError(
            f"Model '{model}' has no hyperparameters worth tuning (it ranks items by their "
            f"counts); train it directly, or tune one of {', '.join(tunable_models())}."
        )
    return space


def distribution(param: Param) -> BaseDistribution:
    if param.kind == "choice":
        return CategoricalDistribution(param.choices)
    if param.kind == "int":
        return IntDistribution(int(param.low), int(param.high), log=param.log)
    return FloatDistribution(float(param.low), float(param.high), log=param.log)


def suggest(trial: Trial, name: str, param: Param):
    """The trial's value of one parameter (fixed when the trial was enqueued)."""
    if param.kind == "choice":
        return trial.suggest_categorical(name, list(param.choices))
    if param.kind == "int":
        return trial.suggest_int(name, int(param.low), int(param.high), log=param.log)
    return trial.suggest_float(name, float(param.low), float(param.high), log=param.log)


def defaults_trial(space: dict[str, Param], defaults: dict) -> tuple[dict, dict]:
    """(enqueued, fixed): the defaults inside their ranges, and those used as they are."""
    enqueued, fixed = {}, {}
    for name, param in space.items():
        value = defaults[name]
        (enqueued if param.contains(value) else fixed)[name] = value
    return enqueued, fixed


def enqueue_defaults(study: optuna.Study, space: dict[str, Param], defaults: dict) -> None:
    """Make the model's defaults the study's next trial."""
    enqueued, fixed = defaults_trial(space, defaults)
    study.enqueue_trial(enqueued, user_attrs={DEFAULTS_ATTR: True, FIXED_ATTR: fixed})


def trial_params(trial: FrozenTrial | Trial) -> dict:
    """Every searched parameter's value in `trial`: its suggestions plus fixed defaults."""
    return {**trial.user_attrs.get(FIXED_ATTR, {}), **trial.params}


def unexplored(space: dict[str, Param], trials: list[FrozenTrial]) -> str:
    """One sentence: how many trials searched the space and which range ends none tried."""
    tried = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    gaps = []
    for name, param in space.items():
        values = [t.params[name] for t in tried if name in t.params]
        if param.kind == "choice":
            missing = [str(c) for c in param.choices if c not in values]
            if missing:
                gaps.append(f"{name} = {', '.join(missing)}")
            continue
        if not values:
            gaps.append(f"{name} (any value in {param.describe()})")
            continue
        low, high = min(values), max(values)
        ends = []  # the untried stretches at either end of the range, named once
        if param.position(low) > 0.1:
            ends.append(f"{param.low:.3g}–{low:.3g}")
        if param.position(high) < 0.9:
            ends.append(f"{high:.3g}–{param.high:.3g}")
        if ends:
            gaps.append(f"{name} {' and '.join(ends)}")
    n = len(tried)
    head = (
        f"{n} trial{'' if n == 1 else 's'} searched {len(space)} "
        f"parameter{'' if len(space) == 1 else 's'}"
    )
    if not gaps:
        return (
            f"{head}; every range was tried near both ends, though not every combination "
            "(resume the study to look closer)."
        )
    return f"{head}; never tried: {'; '.join(gaps)} (resume the study to look there)."
