"""Multi-scenario strategies and per-scenario evaluation.

The question a product team asks: one model per scenario, one model for everything, or one
model that knows the scenario? The three answers are strategies run by the same code:

- `per_scenario`: one `base` model per scenario trained on that scenario's interactions
  alone; it scores a user from their history in that scenario only (a user never seen in
  a scenario gets that scenario's most popular items);
- `pooled`: one `base` model on every interaction, ignoring the scenario;
- `multiscenario`: the scenario-aware model (`core.models.multiscenario`), told the scenario
  of the request, with its MMoE layer; `multiscenario_ple`: the same model with its PLE
  layer (`topology="ple"`), so the two architectures are compared on the same users.

Evaluation per scenario: each scenario's test interactions are ranked against that
scenario's catalogue (items with any interaction there; `catalogue="scenario"`) or the whole
catalogue (`catalogue="all"`), with `core.eval.evaluate.evaluate` and its usual exclusion rule
(training and validation items excluded). The summary is the plain mean over scenarios,
so a small scenario counts as much as a big one.

`compare_strategies` also returns each user's top-k per scenario (`scenario_top_lists`),
ranked by `core.eval.ranking.rank_users`, the one ranking routine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from core.data import schema as S
from core.data.dataset import Dataset, Interactions, scenario_codes
from core.data.split import Split
from core.errors import ParameterError
from core.eval.evaluate import evaluate
from core.eval.ranking import rank_users
from core.models import make_model
from core.models.base import as_codes
from core.protocols import ProgressFn, ScenarioAware

log = logging.getLogger(__name__)

#: the default model last (its stage ends a leaderboard job: tests/test_jobs.py reads it)
STRATEGIES = ("per_scenario", "pooled", "multiscenario_ple", "multiscenario")
#: the scenario-aware strategies and the `topology` of the multiscenario model each one uses
ARCHITECTURES = {"multiscenario": "mmoe", "multiscenario_ple": "ple"}
CATALOGUES = ("scenario", "all")
#: a scenario with fewer training interactions than this gets popularity, not its own model
MIN_SCENARIO_INTERACTIONS = 50
#: score given to items outside the requested scenario's catalogue (finite: the evaluator
#: reserves -inf for excluded items)
OUTSIDE = -1e9
DEFAULT_BASE = "ease"
#: length of the stored per-scenario lists (the Scenarios page shows them per user)
TOP_K = 10
#: `on_stage(text, step, steps)`: what a long call is doing now, for a progress display
StageFn = Callable[[str, int, int], None]


def scenario_catalogues(dataset: Dataset) -> np.ndarray:
    """(n_scenarios, n_items) bool: items with any interaction in each scenario."""
    n_sc = max(1, len(dataset.scenarios))
    out = np.zeros((n_sc, dataset.n_items), dtype=bool)
    frame = dataset.interactions
    if not dataset.has_scenarios:
        out[0, frame[S.ITEM].to_numpy()] = True
        return out
    out[frame[S.SCENARIO_CODE].to_numpy(), frame[S.ITEM].to_numpy()] = True
    return out


def in_scenario(part: Interactions, scenario: int) -> Interactions:
    """The rows of `part` that happened in `scenario` (same code space)."""
    frame = part.frame[scenario_codes(part.frame) == scenario].reset_index(drop=True)
    return Interactions(frame, part.n_users, part.n_items, part.dataset)


class PerScenario:
    """One `base` model per scenario, each trained on its scenario's interactions alone."""

    strategy = "per_scenario"

    def __init__(self, base: str = DEFAULT_BASE, *, only: int | None = None, **params: Any) -> None:
        self.base = base
        self.only = only  # one scenario code: the others are never asked (transfer's target)
        self.params = params
        self.notes: list[str] = []

    def fit(
        self,
        train: Interactions,
        valid: Interactions | None = None,
        progress: ProgressFn | None = None,
    ) -> PerScenario:
        """One model per scenario (`progress`: epoch events of a neural base, each in turn)."""
        scenarios = _scenario_names(train)
        self.n_items_ = train.n_items
        self.models_: dict[int, Any] = {}
        self.popularity_: dict[int, torch.Tensor] = {}
        for code, name in enumerate(scenarios):
            if self.only is not None and code != self.only:
                continue
            part = in_scenario(train, code)
            counts = np.bincount(part.items, minlength=train.n_items).astype(np.float32)
            self.popularity_[code] = torch.from_numpy(counts / max(1.0, counts.max()))
            if len(part) < MIN_SCENARIO_INTERACTIONS:
                self.notes.append(
                    f"Scenario '{name}' has only {len(part)} training interactions, fewer "
                    f"than {MIN_SCENARIO_INTERACTIONS}: its own model is its popularity list."
                )
                continue
            v = in_scenario(valid, code) if valid is not None else None
            model = make_model(self.base, **self.params)
            self.models_[code] = model.fit(part, v, progress=_epochs_only(model, progress))
        self.set_history(train)
        return self

    def set_history(self, known: Interactions) -> None:
        self.has_history_: dict[int, np.ndarray] = {}
        for code in self.popularity_:
            part = in_scenario(known, code)
            self.has_history_[code] = np.bincount(part.users, minlength=known.n_users) > 0
            if code in self.models_:
                self.models_[code].set_history(part)

    def score_scenario(self, user_codes: Any, scenario: int) -> torch.Tensor:
        """(B, n_items): the scenario's own model; its popularity for users new to it."""
        users = as_codes(user_codes)
        pop = self.popularity_[scenario]
        if scenario not in self.models_:
            return pop.expand(len(users), -1).clone()
        scores = self.models_[scenario].score(users).float().cpu()  # (B, n_items)
        fresh = torch.from_numpy(~self.has_history_[scenario][users.numpy()])  # (B,)
        scores[fresh] = pop
        return scores


class Pooled:
    """One `base` model on every interaction; the scenario of the request is ignored."""

    strategy = "pooled"

    def __init__(self, base: str = DEFAULT_BASE, **params: Any) -> None:
        self.base = base
        self.params = params
        self.notes: list[str] = []

    def fit(
        self,
        train: Interactions,
        valid: Interactions | None = None,
        progress: ProgressFn | None = None,
    ) -> Pooled:
        model = make_model(self.base, **self.params)
        self.model_ = model.fit(train, valid, progress=_epochs_only(model, progress))
        return self

    def set_history(self, known: Interactions) -> None:
        self.model_.set_history(known)

    def score_scenario(self, user_codes: Any, scenario: int) -> torch.Tensor:
        return self.model_.score(as_codes(user_codes)).float().cpu()  # (B, n_items)


class ScenarioModelStrategy:
    """The multiscenario model (or any `ScenarioAware` model) as a strategy."""

    def __init__(
        self, model: str = "multiscenario", *, strategy: str = "multiscenario", **params: Any
    ) -> None:
        self.model_name = model
        self.strategy = strategy
        self.params = params
        self.notes: list[str] = []

    def fit(
        self,
        train: Interactions,
        valid: Interactions | None = None,
        progress: ProgressFn | None = None,
    ) -> ScenarioModelStrategy:
        model = make_model(self.model_name, **self.params)
        if not isinstance(model, ScenarioAware):
            raise ParameterError(
                f"Model '{self.model_name}' does not know the scenario of a request; use "
                "'multiscenario' for this strategy."
            )
        self.model_ = model.fit(train, valid, progress=_epochs_only(model, progress))
        return self

    def set_history(self, known: Interactions) -> None:
        self.model_.set_history(known)

    def score_scenario(self, user_codes: Any, scenario: int) -> torch.Tensor:
        return self.model_.score_scenario(as_codes(user_codes), scenario).float().cpu()


def make_strategy(name: str, base: str = DEFAULT_BASE, **params: Any):
    """A strategy object by name; `base` is the model the reference strategies use."""
    if name == "per_scenario":
        return PerScenario(base, **params)
    if name == "pooled":
        return Pooled(base, **params)
    if name == "multiscenario":
        return ScenarioModelStrategy("multiscenario", **params)
    if name == "multiscenario_ple":
        params = {**params, "topology": ARCHITECTURES[name]}
        return ScenarioModelStrategy("multiscenario", strategy=name, **params)
    raise ParameterError(f"Strategy '{name}' is unknown; use one of {', '.join(STRATEGIES)}.")


@dataclass
class ScenarioEval:
    """Per-scenario results of one strategy: a metric table and the per-user tables."""

    strategy: str
    table: pd.DataFrame  # scenario, n_users, ndcg@10, recall@10, ...
    per_user: dict[str, pd.DataFrame] = field(default_factory=dict)  # scenario -> per_user
    fit_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    #: strategy, scenario, user_code, rank, item_code (see `scenario_top_lists`), or None
    top: pd.DataFrame | None = None

    def mean(self, metric: str = "ndcg@10") -> float:
        """Plain average over scenarios with test users."""
        values = self.table[metric].dropna() if metric in self.table else pd.Series([])
        return float(values.mean()) if len(values) else float("nan")


def evaluate_by_scenario(
    strategy,
    split: Split,
    *,
    catalogue: str = "scenario",
    ks=(10,),
    part: str = "test",
) -> ScenarioEval:
    """Rank each scenario's `part` interactions with the strategy told that scenario."""
    if catalogue not in CATALOGUES:
        raise ParameterError(f"Catalogue '{catalogue}' is unknown; use 'scenario' or 'all'.")
    dataset = split.train.dataset
    names = _scenario_names(split.train)
    allowed = scenario_catalogues(dataset) if dataset is not None else None
    rows, per_user = [], {}
    for code, name in enumerate(names):
        truth = in_scenario(split.part(part), code)
        if len(truth) == 0:
            rows.append({"scenario": name, "n_users": 0})
            continue
        mask = None if catalogue == "all" or allowed is None else torch.from_numpy(allowed[code])
        view = _ScenarioView(strategy, code, mask)
        one = Split(split.method, split.seed, split.train, split.valid, truth)
        if part == "valid":
            one = Split(split.method, split.seed, split.train, truth, split.test)
        result = evaluate(view, one, part=part, ks=ks, beyond=False)
        per_user[name] = result.per_user
        row = {"scenario": name, "n_users": result.n_users}
        row.update({k: v for k, v in result.metrics.items() if "@" in k and "cold" not in k})
        rows.append(row)
    table = pd.DataFrame(rows)
    return ScenarioEval(strategy.strategy, table, per_user, notes=list(strategy.notes))


def compare_strategies(
    dataset: Dataset,
    split: Split,
    *,
    strategies=STRATEGIES,
    base: str = DEFAULT_BASE,
    base_params: dict | None = None,
    multiscenario_params: dict | None = None,
    catalogue: str = "scenario",
    top_k: int = TOP_K,
    on_stage: StageFn | None = None,
    on_progress: ProgressFn | None = None,
) -> dict[str, ScenarioEval]:
    """Fit every strategy on `split.train`, evaluate it per scenario on the test part, and
    (top_k > 0) rank every user's top `top_k` per scenario into `ScenarioEval.top`.

    Top lists break ties with the split's seed, so one call gives one set of lists.
    `on_stage` hears each of the `strategy_steps` stages, `on_progress` the epochs of the
    neural models while they train.
    """
    say = on_stage or _quiet
    steps = strategy_steps(strategies, top_k)
    step = 0
    out = {}
    for i, name in enumerate(strategies, 1):
        if name in ARCHITECTURES:  # each architecture row keeps its own topology
            params = {**(multiscenario_params or {}), "topology": ARCHITECTURES[name]}
        else:
            params = base_params or {}
        strategy = make_strategy(name, base, **params)
        say(f"Training {name} ({i} of {len(strategies)})", step, steps)
        tick = time.perf_counter()
        strategy.fit(split.train, split.valid, progress=on_progress)
        fit_s = time.perf_counter() - tick
        say(f"Evaluating {name} in each scenario", step + 1, steps)
        result = evaluate_by_scenario(strategy, split, catalogue=catalogue)
        result.fit_s = fit_s
        if top_k:
            say(f"Ranking the top {top_k} of {name} for every user", step + 2, steps)
            result.top = scenario_top_lists(strategy, dataset, split, top_k, seed=split.seed)
        step += 3 if top_k else 2
        out[name] = result
        log.info("%s: mean ndcg@10 %.4f (fit %.1fs)", name, result.mean(), fit_s)
    return out


def strategy_steps(strategies=STRATEGIES, top_k: int = TOP_K) -> int:
    """How many stages `compare_strategies` reports: train, evaluate (and rank) each one."""
    return len(strategies) * (3 if top_k else 2)


def scenario_top_lists(
    strategy, dataset: Dataset, split: Split, k: int = TOP_K, *, seed: int = 0
) -> pd.DataFrame:
    """Each user's top-k per scenario from their whole history (train + valid + test).

    Items outside the scenario's catalogue score OUTSIDE (below every item inside it), the
    user's known items are excluded. Rows: strategy, scenario, user_code, rank, item_code;
    users with no history are left out.
    """
    known = split.known_for("test").concat(split.test)
    strategy.set_history(known)
    csr = known.csr()
    allowed = torch.from_numpy(scenario_catalogues(dataset))  # (n_sc, n_items)
    users = np.flatnonzero(np.diff(csr.indptr) > 0)
    frames = []
    for code, name in enumerate(_scenario_names(split.train)):
        view = _ScenarioView(strategy, code, allowed[code])
        items, _ = rank_users(view.score, users, k, known=csr, seed=seed)  # (U, k)
        frame = pd.DataFrame(
            {
                "strategy": strategy.strategy,
                "scenario": name,
                "user_code": np.repeat(users, items.shape[1]),
                "rank": np.tile(np.arange(1, items.shape[1] + 1), len(users)),
                "item_code": items.reshape(-1),
            }
        )
        frames.append(frame[frame["item_code"] >= 0])  # a user with fewer than k candidates
    return pd.concat(frames, ignore_index=True)


def leaderboard(results: dict[str, ScenarioEval], metric: str = "ndcg@10") -> pd.DataFrame:
    """Strategy x scenario table of `metric` plus the mean over scenarios and fit time."""
    rows = []
    for name, res in results.items():
        row = {"strategy": name}
        for _, r in res.table.iterrows():
            row[r["scenario"]] = r.get(metric, np.nan)
        row["mean"] = res.mean(metric)
        row["fit_s"] = res.fit_s
        rows.append(row)
    return pd.DataFrame(rows).sort_values("mean", ascending=False).reset_index(drop=True)


def item_overlap(dataset: Dataset) -> pd.DataFrame | None:
    """Scenario x scenario count of items with interactions in both (diagonal: in that one)."""
    if not dataset.has_scenarios:
        return None
    member = scenario_catalogues(dataset).astype(np.int64)  # (n_sc, n_items)
    both = member @ member.T
    return pd.DataFrame(both, index=dataset.scenarios, columns=dataset.scenarios)


def small_scenarios(dataset: Dataset, minimum: int = MIN_SCENARIO_INTERACTIONS) -> list[str]:
    """Scenarios with fewer than `minimum` interactions (too few for a model of their own)."""
    if not dataset.has_scenarios:
        return []
    sizes = np.bincount(scenario_codes(dataset.interactions), minlength=len(dataset.scenarios))
    return [name for name, n in zip(dataset.scenarios, sizes, strict=True) if n < minimum]


def user_history(dataset: Dataset, user_code: int, last: int = 10) -> dict[str, pd.DataFrame]:
    """Scenario -> the user's `last` most recent items there (item_code, title, when)."""
    frame = dataset.interactions
    mine = frame[frame[S.USER] == int(user_code)].sort_values(S.TIMESTAMP, ascending=False)
    titles = dataset.item_titles()
    out = {}
    for code, name in enumerate(dataset.scenarios or ["all"]):
        part = mine[scenario_codes(mine) == code].head(last)
        table = pd.DataFrame({"item_code": part[S.ITEM].to_numpy()})
        table["title"] = titles[table["item_code"].to_numpy()]
        if S.CATEGORY in dataset.items.columns:
            table["category"] = (
                dataset.items[S.CATEGORY].astype(str).to_numpy()[table["item_code"].to_numpy()]
            )
        out[name] = table
    return out


# -- helpers ---------------------------------------------------------------------------------


class _ScenarioView:
    """Looks like a model to `core.eval.evaluate`: scores one scenario, outside items at OUTSIDE."""

    def __init__(self, strategy, scenario: int, mask: torch.Tensor | None) -> None:
        self.strategy = strategy
        self.scenario = scenario
        self.mask = mask  # (n_items,) True inside the catalogue

    def set_history(self, known: Interactions) -> None:
        self.strategy.set_history(known)

    def score(self, user_codes: Any, item_codes: Any = None) -> torch.Tensor:
        scores = self.strategy.score_scenario(user_codes, self.scenario)  # (B, n_items)
        if self.mask is not None:
            scores = scores.masked_fill(~self.mask.to(scores.device), OUTSIDE)
        return scores.contiguous()

    def item_embeddings(self) -> None:
        """No item vectors of its own: diversity falls back to categories."""
        return None


def _epochs_only(model: Any, progress: ProgressFn | None) -> ProgressFn | None:
    """`progress` for a model trained by the epoch loop; None for a closed-form one (EASE's
    λ search is not epochs, and a stage line must not call it so)."""
    return progress if model.trains_with_loop else None


def _quiet(text: str, step: int, steps: int) -> None:
    """The default `on_stage`: say nothing."""


def _scenario_names(part: Interactions) -> list[str]:
    dataset = part.dataset
    if dataset is not None and dataset.has_scenarios:
        return list(dataset.scenarios)
    return ["all"]
