"""Train-and-evaluate a run end to end, and load a finished run back.

The CLI (`recscope train`), background jobs and the benchmarks all go through
`train_run`, so a run made anywhere has the same record, files and metrics.

Under torchrun (`recscope train --nproc N`, core.distributed) every rank calls `train_rank`:
rank 0 runs `train_run` (it alone writes the record, progress, model and tables), the other
ranks fit the same model on their share of the batches and write nothing. A closed-form
model is not data-parallel: it is fitted once, on rank 0, and the record says so.

A run records the fingerprint of the dataset it was made on (`dataset_fingerprint`); a run
whose dataset was replaced since is refused with one sentence (`run_dataset`,
`check_dataset`) instead of being trained, loaded or queried on data it never saw.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core import device as dev
from core import distributed
from core.data import schema as S
from core.data.dataset import Dataset
from core.data.split import Split, split
from core.data.stored import current_fingerprint, dataset_dir, ingested_on
from core.errors import RecScopeError
from core.eval.evaluate import KS, EvalResult, evaluate
from core.models import make_model, model_class
from core.models.base import RecommenderBase
from core.protocols import ProgressEvent
from core.runs.store import RunStore, now_iso, recording_outcome, refuse_unless_queued
from core.storage import write_parquet
from core.train import raise_if_cancelled

log = logging.getLogger(__name__)

#: (dataset, split) pairs kept for `load_run`, keyed by workspace, dataset name and
#: fingerprint, split method and seed (`_dataset_and_split`)
SPLITS_KEPT = 2
_SPLITS: OrderedDict[tuple, tuple[Dataset, Split]] = OrderedDict()
_SPLITS_LOCK = threading.Lock()

RECS_K = 50  # recommendations kept per user in recs.parquet


class DatasetChangedError(RecScopeError):
    """The run's dataset was replaced after the run was made; it must be made again."""


@dataclass
class LoadedRun:
    """A finished run back in memory: its record, data, split and fitted model.

    `folder` is the run's folder in the store (indexes are kept there); None in memory.
    """

    record: dict
    dataset: Dataset
    split: Split
    model: RecommenderBase
    folder: Path | None = None


def model_params(
    name: str, params: dict | None, *, epochs: int | None, device: str | None, seed: int
) -> dict:
    """User params plus the run-level options (epochs, device, seed) the model accepts."""
    accepted = model_class(name).default_params()
    merged = dict(params or {})
    if epochs is not None and "epochs" in accepted:
        merged["epochs"] = int(epochs)
    if "device_choice" in accepted and device not in (None, "auto"):
        merged["device_choice"] = device
    if "seed" in accepted:
        merged.setdefault("seed", seed)
    return merged


def new_run(
    store: RunStore,
    dataset: str,
    model: str,
    *,
    split_method: str = "loo",
    seed: int = 42,
    device: str | None = None,
    epochs: int | None = None,
    params: dict | None = None,
    nproc: int = 1,
) -> str:
    """Validate the request and create a queued run record; returns its id.

    `nproc` > 1: the job trains on that many processes under torchrun (core.runs.jobs).
    """
    ds = Dataset.load(store.home, dataset)  # fails early and clearly on an unknown dataset
    merged = model_params(model, params, epochs=epochs, device=device, seed=seed)
    make_model(model, **merged)  # unknown or bad parameters fail before a run exists
    return store.new_run(
        {
            "dataset": dataset,
            "dataset_fingerprint": ds.fingerprint,
            "model": model,
            "split": split_method,
            "seed": seed,
            "params": merged,
            "device_request": device or "auto",
            **({"nproc": int(nproc)} if nproc > 1 else {}),
        }
    )


def train_run(store: RunStore, run_id: str, progress: Callable[[dict], None] | None = None) -> dict:
    """Fit, evaluate and save the queued run `run_id`; returns the finished record.

    Status moves queued -> running -> finished | failed | cancelled; the record is
    updated atomically at each step, so a reader always sees a whole record.
    """
    store.read(run_id)  # a run whose process is gone is marked failed before it is judged
    with store.edit(run_id) as record:  # check-and-set: only a queued run starts
        refuse_unless_queued(record)
        record.update(status="running", started_at=now_iso())
    with recording_outcome(store, run_id, "Training"):
        return _train(store, run_id, record, progress)
    return store.read(run_id)  # cancelled


def train_rank(
    store: RunStore, run_id: str, progress: Callable[[dict], None] | None = None
) -> dict | None:
    """This torchrun rank's part of run `run_id`: rank 0 trains, evaluates and writes
    (`train_run`, its record returned); any other rank trains its share and returns None."""
    here = distributed.world()
    if here.leader:
        return train_run(store, run_id, progress)
    record = store.read(run_id)
    dataset = run_dataset(store, record, verb="queued", fix="start a new run on the new data")
    parts = split(dataset, record["split"], int(record["seed"]))
    model = make_model(record["model"], **record.get("params", {}))
    if not model.trains_with_loop:
        log.info("rank %d: %s", here.rank, closed_form_note(record["model"], here.size))
        return None
    dev.seed_everything(int(record["seed"]))
    model.fit(parts.train, None)  # rank 0 validates and decides when to stop
    log.info("rank %d of %d finished its share of run %s", here.rank, here.size, run_id)
    return None


def closed_form_note(model: str, world_size: int) -> str:
    """The sentence a closed-form run under torchrun records and logs."""
    return (
        f"{model} is fitted in closed form, not by the epoch loop, so it is not data-parallel: "
        f"it was fitted once, on rank 0, and the other {world_size - 1} process(es) had "
        "nothing to do."
    )


def load_run(store: RunStore, run_id: str, device: str | None = None) -> LoadedRun:
    """Load a finished run; the model's history is train+valid (what is known at test)."""
    record = store.read(run_id)
    if record.get("status") != "finished":
        raise RecScopeError(
            f"Run '{run_id}' is {record.get('status')}, not finished; only finished runs "
            "can be used for recommendations."
        )
    dataset, parts = _dataset_and_split(store, record)
    model = model_class(record["model"]).load(store.model_dir(run_id), device=device)
    model.set_history(parts.known_for("test"))
    return LoadedRun(record, dataset, parts, model, store.folder(run_id))


def _dataset_and_split(store: RunStore, record: dict) -> tuple[Dataset, Split]:
    """The run's dataset and split, shared by every run loaded on the same stored dataset,
    split method and seed (the last SPLITS_KEPT of them). Why: on the 10M set each
    `load_run` re-split the log (~8 s) and held its own copy of it and of the views the
    evaluator and explainers build on it; the User explorer and Compare load several runs
    of one dataset. The run's own fingerprint check (`run_dataset`) still decides."""
    try:
        stored = current_fingerprint(store.home, record["dataset"])
    except (OSError, ValueError):  # deleted or unreadable: run_dataset says which
        stored = None
    key = (str(store.home), record["dataset"], stored, record["split"], int(record["seed"]))
    with _SPLITS_LOCK:
        kept = _SPLITS.get(key)
        if kept is not None:
            _SPLITS.move_to_end(key)
    if kept is not None and record.get("dataset_fingerprint") == stored:
        return kept
    dataset = run_dataset(store, record)
    parts = split(dataset, record["split"], int(record["seed"]))
    if stored is not None and dataset.fingerprint == stored:
        with _SPLITS_LOCK:
            _SPLITS[key] = (dataset, parts)
            while len(_SPLITS) > SPLITS_KEPT:
                _SPLITS.popitem(last=False)
    return dataset, parts


def run_dataset(
    store: RunStore, record: dict, *, verb: str = "trained", fix: str = "retrain it on the new data"
) -> Dataset:
    """The dataset of run `record`, loaded; `DatasetChangedError` if it was replaced since.

    The run's `dataset_fingerprint` must match; a record from before fingerprints is
    checked by its catalogue sizes (what would otherwise end in an IndexError).
    """
    dataset = Dataset.load(store.home, record["dataset"])
    made = record.get("dataset_fingerprint")
    sizes = record.get("sizes") or {}
    if (made is not None and made != dataset.fingerprint) or (
        made is None
        and sizes
        and (sizes.get("n_users"), sizes.get("n_items")) != (dataset.n_users, dataset.n_items)
    ):
        raise _changed(store, record, verb, fix)
    return dataset


def check_dataset(
    store: RunStore, record: dict, *, verb: str = "trained", fix: str = "retrain it on the new data"
) -> None:
    """`run_dataset`'s check without loading the tables (reads dataset.json), for results and
    cached runs; records without a fingerprint pass (their sizes are checked on load)."""
    made, name = record.get("dataset_fingerprint"), record["dataset"]
    if made is None:
        return
    if not (dataset_dir(store.home, name) / "dataset.json").exists():
        Dataset.load(store.home, name)  # raises the "no dataset named …" sentence
    if current_fingerprint(store.home, name) != made:
        raise _changed(store, record, verb, fix)


def recommendations_table(loaded: LoadedRun, user_codes: np.ndarray, k: int) -> pd.DataFrame:
    """Top-k per user with ids, titles and scores (history = train+valid excluded).

    The run's seed breaks ties, so these are the lists the evaluator scored (and stored).
    """
    user_codes = np.atleast_1d(np.asarray(user_codes, dtype=np.int64))
    items, scores = loaded.model.recommend(user_codes, k, seed=loaded.split.seed)
    ds = loaded.dataset
    titles = ds.item_titles()
    users = np.repeat(user_codes, items.shape[1])
    ranks = np.tile(np.arange(1, items.shape[1] + 1), len(user_codes))
    items, scores = items.ravel(), scores.ravel()
    real = items >= 0  # a user who knows almost the whole catalogue has a shorter list
    return pd.DataFrame(
        {
            S.USER_ID: ds.user_ids[users[real]],
            "rank": ranks[real],
            S.ITEM_ID: ds.item_ids[items[real]],
            S.TITLE: titles[items[real]],
            "score": scores[real].astype(np.float64),
        }
    )


def _changed(store: RunStore, record: dict, verb: str, fix: str) -> DatasetChangedError:
    name = record["dataset"]
    when = ingested_on(dataset_dir(store.home, name))
    return DatasetChangedError(
        f"Run {record.get('run_id')} was {verb} on dataset '{name}' before it was replaced "
        f"on {when}; {fix}."
    )


def _train(store: RunStore, run_id: str, record: dict, progress) -> dict:
    dataset = run_dataset(store, record, verb="queued", fix="start a new run on the new data")
    parts = split(dataset, record["split"], int(record["seed"]))
    model = make_model(record["model"], **record.get("params", {}))
    device = model._resolve_device()
    dev.seed_everything(int(record["seed"]))
    dev.reset_peak_memory(device)
    # a record made without new_run gets the fingerprint of the data it is trained on
    store.update(run_id, device=dev.describe(device), dataset_fingerprint=dataset.fingerprint)

    def on_progress(event: ProgressEvent) -> None:
        data = event.to_dict()
        store.append_progress(run_id, data)
        if progress:
            progress(data)

    started = time.perf_counter()
    model.fit(parts.train, parts.valid, progress=on_progress)
    fit_s = time.perf_counter() - started
    # a Cancel during a closed-form fit or the evaluation is acted on between the phases
    raise_if_cancelled("after fitting")
    model.save(store.model_dir(run_id))

    started = time.perf_counter()
    valid = evaluate(model, parts, "valid", beyond=False)
    test = evaluate(model, parts, "test", list_length=RECS_K)  # recs.parquet's lists too
    eval_s = time.perf_counter() - started
    raise_if_cancelled("after evaluating")
    _save_tables(store.folder(run_id), dataset, model, test, seed=parts.seed)
    return store.update(
        run_id,
        **_distributed_facts(model),
        status="finished",
        finished_at=now_iso(),
        metrics={"valid": valid.metrics, "test": test.metrics},
        excluded=test.excluded,
        notes=[*model.fit_notes(), *test.notes],
        # who was scored, and who was not and why (core.eval.evaluate's module docstring)
        counts={"valid": valid.counts(), "test": test.counts()},
        timings={"fit_s": round(fit_s, 3), "eval_s": round(eval_s, 3)},
        peak_memory_mb=dev.peak_memory_mb(device),
        sizes={
            "n_users": dataset.n_users,
            "n_items": dataset.n_items,
            "train": len(parts.train),
            "valid": len(parts.valid),
            "test": len(parts.test),
        },
    )


def _distributed_facts(model) -> dict:
    """What the record says about processes: `distributed` {world_size, backend,
    rank_samples_per_s} for a loop-trained model, a note for a closed-form one under torchrun,
    nothing for a one-process closed-form fit."""
    here = distributed.world()
    if model.trains_with_loop:
        trained = model.train_result_
        facts = {
            "world_size": trained.world_size,
            "backend": trained.backend,
            "rank_samples_per_s": trained.rank_samples_per_s,
        }
        return {"distributed": facts}
    if here.distributed:
        note = closed_form_note(model.name, here.size)
        log.info("%s", note)
        return {"distributed": {"world_size": 1, "backend": None, "note": note}}
    return {}


def _save_tables(folder: Path, dataset: Dataset, model, test: EvalResult, *, seed: int) -> None:
    """Per-user metrics, segments and top-K recommendations for every user.

    recs.parquet holds the first RECS_K items of each user's list, without the -1 padding
    of users with fewer candidates. The test evaluation ranked them already (`list_length`,
    same routine, history and tie seed): those lists are kept as they were scored, and only
    the users it did not score (no test items left) are ranked here.
    """
    per_user = test.per_user.copy()
    per_user.insert(0, S.USER_ID, dataset.user_ids[per_user[S.USER].to_numpy()])
    write_parquet(folder / "per_user.parquet", per_user)
    write_parquet(folder / "segments.parquet", test.segments)
    k = min(RECS_K, dataset.n_items)
    scored = test.per_user[S.USER].to_numpy(dtype=np.int64)
    chunks = []
    if test.top_scores is not None and test.top_items.shape[1] >= k:
        chunks.append(_recs_chunk(scored, test.top_items[:, :k], test.top_scores[:, :k]))
    else:  # an evaluation without the lists: rank everyone here
        scored = scored[:0]
    rest = np.setdiff1d(np.arange(dataset.n_users), scored)
    for start in range(0, len(rest), 2048):
        batch = rest[start : start + 2048]
        items, scores = model.recommend(batch, k, seed=seed)
        chunks.append(_recs_chunk(batch, items, scores))
    recs = pd.concat(chunks, ignore_index=True).sort_values([S.USER, "rank"], kind="stable")
    write_parquet(folder / "recs.parquet", recs.reset_index(drop=True))


def _recs_chunk(users: np.ndarray, items: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """recs.parquet's rows for `users` and their (U, k) lists, padding (-1) dropped."""
    chunk = pd.DataFrame(
        {
            S.USER: np.repeat(users, items.shape[1]).astype(np.int32),
            "rank": np.tile(np.arange(1, items.shape[1] + 1), len(users)).astype(np.int16),
            S.ITEM: items.ravel().astype(np.int32),
            "score": scores.ravel().astype(np.float32),
        }
    )
    return chunk[chunk[S.ITEM] >= 0]


__all__ = [
    "KS",
    "DatasetChangedError",
    "LoadedRun",
    "check_dataset",
    "load_run",
    "model_params",
    "new_run",
    "recommendations_table",
    "closed_form_note",
    "run_dataset",
    "train_rank",
    "train_run",
]
