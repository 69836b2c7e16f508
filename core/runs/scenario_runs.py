"""Scenario analyses as jobs of the one job system: the strategy leaderboard and transfer.

Like `core.runs.pipeline` for training, this module creates a job record (options checked
before it exists) and holds the job bodies that `recscope scenarios leaderboard` and
`recscope transfer` run through `core.runs.jobs.run_job`. The numbers are those of
`core.scenarios` unchanged — the leaderboard is `compare_strategies` (both architectures of
the multiscenario model, MMoE and PLE, beside the reference strategies) with
`core.scenarios.paired.paired_all` (each strategy against each other one, per scenario,
paired bootstrap CIs), the curves `transfer_report`; this module only stores them in the run
folder: result.json, and for the leaderboard recs.parquet (strategy, scenario, user_code,
rank, item_code). File names are fixed: no scenario name or other user string becomes a
path.

A job records its dataset's fingerprint like a training run; a job body, `result` and
`recommendations` refuse with one sentence when that dataset was replaced since (its codes
would name other users and items).
"""

from __future__ import annotations

import pandas as pd

from core.data.dataset import Dataset
from core.data.split import split
from core.errors import ParameterError
from core.models import make_model
from core.runs.jobs import Stage
from core.runs.pipeline import check_dataset, model_params, run_dataset
from core.runs.store import RunStore
from core.scenarios.paired import paired_all
from core.scenarios.strategies import (
    CATALOGUES,
    DEFAULT_BASE,
    TOP_K,
    ScenarioEval,
    compare_strategies,
    leaderboard,
)
from core.scenarios.transfer import MS, check_pair, transfer_report
from core.storage import write_parquet

LEADERBOARD = "leaderboard"
TRANSFER = "transfer"
RECS = "recs.parquet"
LEADERBOARD_SPLIT = "loo"
_AGAIN = "run it again on the new data"


def new_leaderboard(
    store: RunStore,
    dataset: str,
    *,
    base: str = DEFAULT_BASE,
    catalogue: str = "scenario",
    seed: int = 42,
    device: str = "auto",
    epochs: int | None = None,
    base_params: dict | None = None,
    multiscenario_params: dict | None = None,
) -> str:
    """Check the options and create a queued leaderboard job; returns its run id.

    `device` and `epochs` reach the models that accept them (as for a training run);
    `epochs` is the multiscenario model's.
    """
    ds = Dataset.load(store.home, dataset)
    if not ds.has_scenarios:
        raise ParameterError(
            f"Dataset '{dataset}' has no scenario column, so there are no scenarios to compare "
            "strategies in; ingest data with a scenario column."
        )
    if catalogue not in CATALOGUES:
        raise ParameterError(f"Catalogue '{catalogue}' is unknown; use 'scenario' or 'all'.")
    base_params = model_params(base, base_params, epochs=None, device=device, seed=seed)
    base_params.pop("seed", None)  # the reference models keep their own seed default
    multi = model_params(
        "multiscenario", multiscenario_params, epochs=epochs, device=device, seed=seed
    )
    make_model(base, **base_params)  # unknown model or parameter: its own message
    make_model("multiscenario", **multi)
    params = {
        "base": base,
        "catalogue": catalogue,
        "base_params": base_params,
        "multiscenario_params": multi,
    }
    record = {
        "kind": LEADERBOARD,
        "dataset": dataset,
        "dataset_fingerprint": ds.fingerprint,
        "split": LEADERBOARD_SPLIT,
        "seed": int(seed),
    }
    return store.new_run({**record, "params": params, "device_request": device})


def new_transfer(
    store: RunStore,
    dataset: str,
    source: str,
    target: str,
    *,
    ms=MS,
    max_users: int = 500,
    seed: int = 42,
    include_hybrid: bool = True,
    device: str = "auto",
    epochs: int | None = None,
    multiscenario_params: dict | None = None,
) -> str:
    """Check the scenario pair and create a queued transfer job; returns its run id."""
    ds = Dataset.load(store.home, dataset)
    check_pair(ds, source, target)
    multi = model_params(
        "multiscenario", multiscenario_params, epochs=epochs, device=device, seed=seed
    )
    make_model("multiscenario", **multi)
    params = {
        "source": source,
        "target": target,
        "ms": sorted({int(m) for m in ms}),
        "max_users": int(max_users),
        "include_hybrid": bool(include_hybrid),
        "multiscenario_params": multi,
    }
    record = {"kind": TRANSFER, "dataset": dataset, "seed": int(seed), "device_request": device}
    record["dataset_fingerprint"] = ds.fingerprint
    return store.new_run({**record, "params": params})


def run_leaderboard(store: RunStore, run_id: str, stage: Stage) -> dict:
    """The leaderboard job body: `compare_strategies` on the loo split, stored."""
    record = store.read(run_id)
    p = record["params"]
    ds = run_dataset(store, record, verb="queued", fix=_AGAIN)
    stage("Splitting the data (last interaction of each user is the test)", 0, 1)
    parts = split(ds, record.get("split", LEADERBOARD_SPLIT), seed=int(record["seed"]))
    results = compare_strategies(
        ds,
        parts,
        base=p["base"],
        base_params=p.get("base_params"),
        multiscenario_params=p.get("multiscenario_params"),
        catalogue=p["catalogue"],
        top_k=TOP_K,
        on_stage=stage,
    )
    tops = [r.top for r in results.values() if r.top is not None]
    write_parquet(store.folder(run_id) / RECS, pd.concat(tops, ignore_index=True))
    return leaderboard_result(results, base=p["base"], catalogue=p["catalogue"])


def run_transfer(store: RunStore, run_id: str, stage: Stage) -> dict:
    """The transfer job body: `transfer_report` with the per-user profile cosines."""
    record = store.read(run_id)
    p = record["params"]
    return transfer_report(
        run_dataset(store, record, verb="queued", fix=_AGAIN),
        p["source"],
        p["target"],
        ms=tuple(p["ms"]),
        max_users=p["max_users"],
        seed=int(record["seed"]),
        include_hybrid=p["include_hybrid"],
        multiscenario_params=p.get("multiscenario_params"),
        per_user_profiles=True,
        on_stage=stage,
    )


def leaderboard_result(
    results: dict[str, ScenarioEval], *, base: str, catalogue: str, split: str = "loo"
) -> dict:
    """The JSON-ready summary of `compare_strategies`: leaderboard rows, the per-scenario
    table of each strategy, the paired test NDCG@10 differences of every strategy against
    every other one per scenario (`paired`, rows of `core.scenarios.paired.COLUMNS`), notes,
    and the options that produced them."""
    return {
        "base": base,
        "catalogue": catalogue,
        "split": split,
        "leaderboard": _records(leaderboard(results)),
        "tables": {name: _records(r.table) for name, r in results.items()},
        "paired": _records(paired_all(results, "ndcg@10")),
        "notes": sorted({n for r in results.values() for n in r.notes}),
    }


def result(store: RunStore, run_id: str) -> dict | None:
    """The job's stored result (None before it has one); refused if its dataset changed."""
    check_dataset(store, store.read(run_id), verb="computed", fix=_AGAIN)
    return store.result(run_id)


def recommendations(store: RunStore, run_id: str) -> pd.DataFrame | None:
    """The leaderboard job's top lists (strategy, scenario, user_code, rank, item_code);
    refused if the dataset whose codes they hold was replaced since."""
    check_dataset(store, store.read(run_id), verb="computed", fix=_AGAIN)
    path = store.folder(run_id) / RECS
    return pd.read_parquet(path) if path.exists() else None


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts; NaN (a scenario without test users) becomes None."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
