"""Cross-scenario interest transfer: does a user's source scenario predict their target one?

Protocol (`transfer_experiment`): test users are active in the source scenario (at least
`min_source` interactions) and have at least `max(ms) + min_truth` interactions in the
target. Every model is trained once, with *all* of the test users' target interactions
withheld; the neural ones stop early on a validation part, the last target interaction of
every other user with at least two there (also withheld). Then for each m in `ms` the test
users' first m target interactions (by time) join the known history (fold-in: the model
reads them at scoring time, as a deployed model meets a user who just arrived) and the rest
of their target history is the truth, ranked against the target scenario's catalogue
with `core.eval.evaluate`.

Models compared on the same users: `target_only` (the base model trained on the target
scenario alone; a user with no target history gets the target's popularity list),
`pooled` (the base model on everything, scenario ignored), `multiscenario` (told the
request is in the target) and `hybrid` (text two-tower, when that model is in the build).
The lift of each over `target_only` is the mean per-user NDCG@10 difference with a paired
bootstrap confidence interval (`core.eval.significance.paired_compare`).

Interest profiles (`interest_profiles`): each user's category shares per scenario, and the
cosine similarity of a user's source and target profiles against random pairs of users.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from core.data import schema as S
from core.data.dataset import Dataset, Interactions
from core.data.split import Split
from core.errors import ParameterError, RecScopeError
from core.eval.evaluate import evaluate
from core.eval.significance import paired_compare
from core.models import available
from core.protocols import ProgressFn
from core.scenarios.strategies import (
    DEFAULT_BASE,
    PerScenario,
    Pooled,
    ScenarioModelStrategy,
    StageFn,
    _quiet,
    _ScenarioView,
    scenario_catalogues,
)

log = logging.getLogger(__name__)

MS = (0, 1, 2, 5)
MODELS = ("target_only", "pooled", "multiscenario", "hybrid")
METRIC = "ndcg@10"


def transfer_experiment(
    dataset: Dataset,
    source: str,
    target: str,
    *,
    ms=MS,
    models=MODELS,
    base: str = DEFAULT_BASE,
    multiscenario_params: dict | None = None,
    hybrid_params: dict | None = None,
    max_users: int = 500,
    min_source: int = 3,
    min_truth: int = 2,
    n_boot: int = 1000,
    seed: int = 42,
    on_stage: StageFn | None = None,
    on_progress: ProgressFn | None = None,
    extra_steps: int = 0,
) -> dict:
    """Run the transfer protocol; a JSON-ready dict (see `transfer_report` for the keys).

    `on_stage` hears a stage per model trained and per m ranked (of `extra_steps` more that
    the caller reports after), `on_progress` the epochs of the neural models.
    """
    say = on_stage or _quiet
    src, tgt = check_pair(dataset, source, target)
    ms = sorted({int(m) for m in ms})
    if not ms or ms[0] < 0:
        raise ParameterError(f"m values must be whole numbers >= 0; got {ms!r}.")
    frame = dataset.all().ordered
    scen = frame[S.SCENARIO_CODE].to_numpy()
    n_src = np.bincount(frame[S.USER].to_numpy()[scen == src], minlength=dataset.n_users)
    n_tgt = np.bincount(frame[S.USER].to_numpy()[scen == tgt], minlength=dataset.n_users)
    eligible = np.flatnonzero((n_src >= min_source) & (n_tgt >= ms[-1] + min_truth))
    if len(eligible) < 10:
        raise RecScopeError(
            f"Only {len(eligible)} users are active in '{source}' (>= {min_source} "
            f"interactions) and have >= {ms[-1] + min_truth} in '{target}'; pick another pair "
            "or smaller m values."
        )
    rng = np.random.default_rng(seed)
    if len(eligible) > max_users:
        eligible = np.sort(rng.choice(eligible, size=max_users, replace=False))
    is_test = np.zeros(dataset.n_users, dtype=bool)
    is_test[eligible] = True
    held = is_test[frame[S.USER].to_numpy()] & (scen == tgt)  # rows withheld from training
    rank_in_target = frame[held].groupby(S.USER, sort=False).cumcount().to_numpy()
    checks = _validation_rows(frame, scen == tgt, is_test)
    train, valid = _part(dataset, frame[~held & ~checks]), _part(dataset, frame[checks])
    models = [m for m in models if m != "hybrid" or "hybrid" in available()]

    fitted, fit_s = {}, {}
    steps = len(models) + len(ms) + extra_steps
    for i, name in enumerate(models):
        say(f"Training {name} ({i + 1} of {len(models)})", i, steps)
        tick = time.perf_counter()
        params = (hybrid_params if name == "hybrid" else multiscenario_params) or {}
        fitted[name] = _fit(name, train, valid, base, params, on_progress, target=tgt)
        fit_s[name] = round(time.perf_counter() - tick, 3)
    mask = scenario_catalogues(dataset)[tgt]
    import torch  # local: only the scoring views need it

    curves, per_user = [], {}
    for j, m in enumerate(ms):
        say(f"Ranking the target with m = {m} known interactions", len(models) + j, steps)
        revealed = _part(dataset, frame[held].iloc[rank_in_target < m])
        truth = _part(dataset, frame[held].iloc[rank_in_target >= m])
        known = train.concat(revealed)
        one = Split("transfer", seed, known, _part(dataset, frame.iloc[:0]), truth)
        scores = {}
        for name, model in fitted.items():
            view = _ScenarioView(model, tgt, torch.from_numpy(mask))
            result = evaluate(view, one, part="test", ks=(10,), beyond=False)
            scores[name] = result.per_user.set_index(S.USER)[METRIC]
        per_user[m] = scores
        for name, values in scores.items():
            row = {"m": m, "model": name, METRIC: float(values.mean()), "n_users": len(values)}
            if name != "target_only":
                cmp = paired_compare(scores["target_only"], values, n_boot=n_boot, seed=seed)
                row.update(
                    lift=cmp["mean_diff"],
                    ci_low=cmp["ci_low"],
                    ci_high=cmp["ci_high"],
                    p_value=cmp["p_value"],
                )
            curves.append(row)
    return {
        "source": source,
        "target": target,
        "metric": METRIC,
        "base": base,
        "ms": ms,
        "models": models,
        "n_test_users": int(len(eligible)),
        "n_valid_users": int(checks.sum()),
        "fit_s": fit_s,
        "curves": curves,
        "protocol": (
            f"{len(eligible)} users active in '{source}' with >= {ms[-1] + min_truth} "
            f"interactions in '{target}'; models trained once without their '{target}' "
            f"history (the neural ones stop early on the last '{target}' interaction of "
            f"{int(checks.sum())} other users, held out); at each m their first m "
            f"'{target}' interactions are known and the rest is ranked against the "
            f"'{target}' catalogue; lift = mean per-user "
            f"{METRIC} minus target_only, 95% paired bootstrap CI."
        ),
    }


def interest_profiles(dataset: Dataset, by: str = S.CATEGORY) -> pd.DataFrame | None:
    """Long table user_code, scenario, <by value>, share: each user's mix per scenario.

    None when the items have no `by` column or the data has no scenarios.
    """
    if not dataset.has_scenarios or by not in dataset.items.columns:
        return None
    frame = dataset.interactions
    cats = dataset.items[by].astype(str).to_numpy()[frame[S.ITEM].to_numpy()]
    table = pd.DataFrame(
        {S.USER: frame[S.USER].to_numpy(), "scenario": frame[S.SCENARIO_CODE].to_numpy()}
    )
    table[by] = cats
    counts = table.groupby([S.USER, "scenario", by]).size().rename("n").reset_index()
    totals = counts.groupby([S.USER, "scenario"])["n"].transform("sum")
    counts["share"] = counts["n"] / totals
    counts["scenario"] = np.asarray(dataset.scenarios, dtype=object)[counts["scenario"]]
    return counts


def profile_similarity(
    dataset: Dataset, source: str, target: str, by: str = S.CATEGORY, seed: int = 0
) -> dict | None:
    """Mean cosine of the same user's source vs target profile, and of random user pairs."""
    profiles = interest_profiles(dataset, by)
    if profiles is None:
        return None
    src, tgt = check_pair(dataset, source, target)
    wide = profiles.pivot_table(
        index=[S.USER, "scenario"], columns=by, values="share", fill_value=0.0
    )
    try:
        a = wide.xs(dataset.scenarios[src], level="scenario")
        b = wide.xs(dataset.scenarios[tgt], level="scenario")
    except KeyError:
        return None
    both = a.index.intersection(b.index)
    if len(both) < 2:
        return None
    a, b = a.loc[both].to_numpy(), b.loc[both].to_numpy()
    same = _cosine(a, b)
    perm = np.random.default_rng(seed).permutation(len(both))
    perm = np.where(perm == np.arange(len(both)), np.roll(perm, 1), perm)  # no self-pairs
    random = _cosine(a, b[perm])
    return {
        "source": source,
        "target": target,
        "by": by,
        "n_users": int(len(both)),
        "same_user_cosine": float(same.mean()),
        "random_pair_cosine": float(random.mean()),
        "same_user": same.tolist(),
        "random_pairs": random.tolist(),
    }


def transfer_report(
    dataset: Dataset,
    source: str,
    target: str,
    *,
    ms=MS,
    base: str = DEFAULT_BASE,
    max_users: int = 500,
    seed: int = 42,
    include_hybrid: bool = True,
    multiscenario_params: dict | None = None,
    hybrid_params: dict | None = None,
    per_user_profiles: bool = False,
    on_stage: StageFn | None = None,
    on_progress: ProgressFn | None = None,
) -> dict:
    """`recscope transfer --source S --target T --json`: the experiment plus profiles.

    Keys: source, target, metric, base, ms, models, n_test_users, fit_s, curves (rows m,
    model, ndcg@10, n_users, lift, ci_low, ci_high, p_value), protocol, profiles
    (same_user_cosine, random_pair_cosine, n_users, and with `per_user_profiles` the
    per-user cosines same_user and random_pairs; or null without categories).
    """
    models = MODELS if include_hybrid else tuple(m for m in MODELS if m != "hybrid")
    out = transfer_experiment(
        dataset,
        source,
        target,
        ms=ms,
        models=models,
        base=base,
        multiscenario_params=multiscenario_params,
        hybrid_params=hybrid_params,
        max_users=max_users,
        seed=seed,
        on_stage=on_stage,
        on_progress=on_progress,
        extra_steps=1,
    )
    steps = len(out["models"]) + len(out["ms"]) + 1
    (on_stage or _quiet)("Comparing each user's interests in the two scenarios", steps - 1, steps)
    sim = profile_similarity(dataset, source, target)
    if sim is not None and not per_user_profiles:
        sim = {k: v for k, v in sim.items() if k not in ("same_user", "random_pairs")}
    out["profiles"] = sim
    return out


def check_pair(dataset: Dataset, source: str, target: str) -> tuple[int, int]:
    """The scenario codes of `source` and `target`, or a clear error naming what is allowed."""
    if not dataset.has_scenarios or len(dataset.scenarios) < 2:
        raise RecScopeError(
            f"Dataset '{dataset.name}' has fewer than two scenarios, so there is nothing to "
            "transfer between; ingest data with a scenario column."
        )
    for value in (source, target):
        if value not in dataset.scenarios:
            raise ParameterError(
                f"Scenario '{value}' is not in dataset '{dataset.name}'; use one of "
                f"{', '.join(dataset.scenarios)}."
            )
    if source == target:
        raise ParameterError(f"Source and target are both '{source}'; pick two scenarios.")
    return dataset.scenarios.index(source), dataset.scenarios.index(target)


# -- helpers ---------------------------------------------------------------------------------


def _part(dataset: Dataset, frame: pd.DataFrame) -> Interactions:
    return Interactions(frame.reset_index(drop=True), dataset.n_users, dataset.n_items, dataset)


def _validation_rows(frame: pd.DataFrame, in_target: np.ndarray, is_test: np.ndarray):
    """(rows,) bool: the last target interaction of every user outside the test who has at
    least two there — the validation part on which the neural models stop early (without
    one they always ran their maximum epochs: 30 and 50, most of a transfer job's time)."""
    users = frame[S.USER].to_numpy()
    candidates = in_target & ~is_test[users]
    count = np.bincount(users[candidates], minlength=len(is_test))
    order = frame[candidates].groupby(S.USER, sort=False).cumcount().to_numpy()  # time order
    out = np.zeros(len(frame), dtype=bool)
    out[np.flatnonzero(candidates)] = (order == count[users[candidates]] - 1) & (
        count[users[candidates]] >= 2
    )
    return out


def _fit(
    name: str,
    train: Interactions,
    valid: Interactions,
    base: str,
    params: dict,
    progress: ProgressFn | None = None,
    *,
    target: int,
):
    """A fitted strategy object with `score_scenario` (`params`: the neural model's). Only
    the neural models see `valid` (early stopping); EASE would spend it on a λ search the
    transfer never asked for."""
    if name == "target_only":  # its target model saw the target's interactions alone
        return PerScenario(base, only=target).fit(train, progress=progress)
    if name == "pooled":
        return Pooled(base).fit(train, progress=progress)
    if name == "multiscenario":
        model = ScenarioModelStrategy("multiscenario", **params)
        return model.fit(train, valid, progress=progress)
    if name == "hybrid":
        return _Unaware("hybrid", **params).fit(train, valid, progress=progress)
    raise ParameterError(f"Transfer model '{name}' is unknown; use one of {', '.join(MODELS)}.")


class _Unaware(Pooled):
    """A registry model, the scenario ignored (e.g. hybrid)."""

    def __init__(self, model: str, **params) -> None:
        super().__init__(model, **params)
        self.strategy = model


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    num = (a * b).sum(1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(den > 0, num / np.maximum(den, 1e-12), 0.0)
