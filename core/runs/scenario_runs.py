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

Progress goes through the one job system: each stage is a progress.jsonl line numbered over
the whole job ("stage k of n"), and while a stage trains a neural model its epochs are lines
too (`epoch_writer`), both also in job.log; `core.runs.stages` turns them into what the page
shows and a measured estimate of the time left. On a loaded CPU a job runs torch on one
thread (`core.device.threads_for_load`).

A job records its dataset's fingerprint like a training run; a job body, `result` and
`recommendations` refuse with one sentence when that dataset was replaced since (its codes
would name other users and items).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import pandas as pd

from core.data.dataset import Dataset
from core.data.split import split
from core.device import threads_for_load
from core.errors import ParameterError
from core.models import available, make_model
from core.protocols import ProgressEvent
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
    strategy_steps,
)
from core.scenarios.transfer import MS, check_pair, transfer_report
from core.storage import write_parquet

LEADERBOARD = "leaderboard"
TRANSFER = "transfer"
RECS = "recs.parquet"
LEADERBOARD_SPLIT = "loo"
_AGAIN = "run it again on the new data"
#: most epochs of a transfer's multiscenario model. Measured on the sample data
#: (bench/RESULTS.md, "Multi-scenario architectures"): its lift for users new to shop is the
#: same after 2 epochs (+0.066) as after 4 (+0.064), and in the transfer's own validation
#: part its NDCG@10 peaked at epoch 3 of 4 (0.2483, then 0.2479); its default 30 (and the
#: hybrid's 50), run in full for want of a validation part, made a transfer job take over 30
#: minutes on a loaded 2-core CPU (issue 16).
TRANSFER_EPOCHS = 4

log = logging.getLogger(__name__)


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
    include_hybrid: bool = False,
    device: str = "auto",
    epochs: int | None = None,
    multiscenario_params: dict | None = None,
) -> str:
    """Check the scenario pair and create a queued transfer job; returns its run id.

    The neural models stop early on the transfer's validation part; the multiscenario model
    trains at most TRANSFER_EPOCHS epochs, the hybrid its own maximum (`epochs` sets both).
    """
    ds = Dataset.load(store.home, dataset)
    check_pair(ds, source, target)
    capped = {"epochs": TRANSFER_EPOCHS}
    multi = model_params(
        "multiscenario",
        {**capped, **(multiscenario_params or {})},
        epochs=epochs,
        device=device,
        seed=seed,
    )
    make_model("multiscenario", **multi)
    hybrid = None
    if include_hybrid and "hybrid" in available():
        # not capped: on the sample data its validation NDCG@10 still rose at epoch 4
        # (0.2358 -> 0.2409) while the multiscenario model's had peaked at 3 (issue 16)
        hybrid = model_params("hybrid", None, epochs=epochs, device=device, seed=seed)
    params = {
        "source": source,
        "target": target,
        "ms": sorted({int(m) for m in ms}),
        "max_users": int(max_users),
        "include_hybrid": bool(include_hybrid),
        "multiscenario_params": multi,
        "hybrid_params": hybrid,
    }
    record = {"kind": TRANSFER, "dataset": dataset, "seed": int(seed), "device_request": device}
    record["dataset_fingerprint"] = ds.fingerprint
    return store.new_run({**record, "params": params})


def run_leaderboard(store: RunStore, run_id: str, stage: Stage) -> dict:
    """The leaderboard job body: `compare_strategies` on the loo split, stored."""
    record = store.read(run_id)
    p = record["params"]
    stage = _logged(stage)
    log.info("torch CPU threads: %d (load average %.1f)", threads_for_load(), os.getloadavg()[0])
    ds = run_dataset(store, record, verb="queued", fix=_AGAIN)
    steps = 1 + strategy_steps(top_k=TOP_K)  # the split, then compare_strategies' stages
    stage("Splitting the data (last interaction of each user is the test)", 0, steps)
    parts = split(ds, record.get("split", LEADERBOARD_SPLIT), seed=int(record["seed"]))
    results = compare_strategies(
        ds,
        parts,
        base=p["base"],
        base_params=p.get("base_params"),
        multiscenario_params=p.get("multiscenario_params"),
        catalogue=p["catalogue"],
        top_k=TOP_K,
        on_stage=lambda text, step, _: stage(text, step + 1, steps),
        on_progress=epoch_writer(store, run_id),
    )
    tops = [r.top for r in results.values() if r.top is not None]
    write_parquet(store.folder(run_id) / RECS, pd.concat(tops, ignore_index=True))
    return leaderboard_result(results, base=p["base"], catalogue=p["catalogue"])


def run_transfer(store: RunStore, run_id: str, stage: Stage) -> dict:
    """The transfer job body: `transfer_report` with the per-user profile cosines."""
    record = store.read(run_id)
    p = record["params"]
    stage = _logged(stage)
    log.info("torch CPU threads: %d (load average %.1f)", threads_for_load(), os.getloadavg()[0])
    return transfer_report(
        run_dataset(store, record, verb="queued", fix=_AGAIN),
        p["source"],
        p["target"],
        ms=tuple(p["ms"]),
        max_users=p["max_users"],
        seed=int(record["seed"]),
        include_hybrid=p["include_hybrid"],
        multiscenario_params=p.get("multiscenario_params"),
        hybrid_params=p.get("hybrid_params"),
        per_user_profiles=True,
        on_stage=stage,
        on_progress=epoch_writer(store, run_id),
    )


def epoch_writer(store: RunStore, run_id: str) -> Callable[[ProgressEvent], None]:
    """The `progress` callback a staged job gives the models it trains: each epoch becomes a
    line of the job's progress.jsonl (as for a training run; `core.runs.stages` reads it
    under the current stage) and a line of its log."""

    def write(event: ProgressEvent) -> None:
        store.append_progress(run_id, event.to_dict())
        loss = "" if event.loss is None else f", loss {event.loss:.4f}"
        log.info(
            "epoch %d of at most %d%s (%.1f s)", event.epoch, event.epochs, loss, event.elapsed_s
        )

    return write


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


def _logged(stage: Stage) -> Stage:
    """`stage` that also writes "stage k of n: …" to the job's log."""

    def both(text: str, step: int, steps: int) -> None:
        log.info("stage %d of %d: %s", step + 1, steps, text)
        stage(text, step, steps)

    return both


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts; NaN (a scenario without test users) becomes None."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
