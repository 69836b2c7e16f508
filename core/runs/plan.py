"""Plan before training: how much memory and time a model will take on a data set and a
device, what this machine has, and whether to start (issue 15).

`plan_model(home, dataset, model, params, device=...)` is the one call the Train page and
`recscope train` (`--dry-run`) ask. It reads the data set's sizes from its small record (no
table is loaded), prices the model with its family's formulas (`core.runs.plan_costs`) and
turns work into seconds with rates measured on the device in about a second, once per
process (`device_rates`). A model whose estimated peak is above the memory available, or
that refuses the data whatever the memory (EASE above its dense limit), gets the verdict
"refused" and a sentence with the numbers and an alternative; `refuse(plan)` raises it
before a run record exists.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from core.data.dataset import dataset_summary, list_datasets
from core.device import available_memory_bytes, pick_device
from core.errors import RecScopeError
from core.eval.evaluate import KS
from core.eval.ranking import top_k
from core.models import make_model, model_class
from core.names import check_dataset_name
from core.runs.pipeline import model_params
from core.runs.plan_costs import Cost, Shape, cost, score_block_bytes
from core.runs.stages import format_seconds

#: resident memory of a recscope process before it holds any data (python, torch, pandas,
#: scipy): 462 MB measured for pop on MovieLens-100k (data included), rounded
BASE_BYTES = 450 * 2**20
#: resident bytes per interaction while a run holds the data set, its split and CSR views:
#: pop on the 10M set peaked at 1.44 GB after loading, splitting and fitting (~100 B a row
#: above the process itself; one measurement, load ~17)
DATA_BYTES_PER_ROW = 110
#: below this share of the available memory a plan "fits"; up to all of it, "tight"
COMFORT = 0.8
VERDICTS = ("fits", "tight", "refused")
TIME_BASIS = {
    "cpu": "CPU seconds of one core: on a machine busy with other work the wall time is longer",
    "cuda": "wall seconds on the GPU",
}
#: CPU seconds an evaluation takes whatever its size (segments, beyond-accuracy metrics):
#: the valid + test evaluation of MovieLens-100k (3.2M cells) took 0.24-0.59 s of CPU
EVAL_FIXED_S = 0.4
#: a whole evaluation's cost per scored cell against the ranking routine's alone (the
#: probe): the truth mask, the exclusion and fresh score blocks (page faults) come on top.
#: Pop, valid + test of 20,000 users x 49,937 items of the 10M set: 37.7 s CPU measured
#: (the evaluation being rewritten for issue 15 at the time) against 9.2 s from the probe.
EVAL_CELL_FACTOR = 4.0
#: CPU seconds per known entry and per listed candidate of a shared-scores evaluation (pop):
#: 12.9 and 14.7 CPU s for the two parts of the 10M set (2e7 of them each), issue 15
SHARED_ENTRY_S = 6.5e-7


@dataclass(frozen=True)
class Plan:
    """The estimate for one (dataset, model, params, device), in bytes and seconds."""

    dataset: str
    model: str
    device: str
    n_users: int
    n_items: int
    n_train: int
    memory: dict  # bytes by part: process, data, parameters, optimizer, activations, …
    peak_bytes: int
    available_bytes: int
    epoch_s: float
    epochs: int
    fit_s: float
    eval_s: float
    verdict: str  # one of VERDICTS
    sentence: str
    alternative: str
    time_basis: str  # what the seconds mean (CPU seconds of one core, or GPU wall time)

    @property
    def refused(self) -> bool:
        return self.verdict == "refused"

    def to_dict(self) -> dict:
        return {"kind": "plan", **asdict(self), "time_s": round(self.fit_s + self.eval_s, 1)}


def plan_model(
    home: Path,
    dataset: str,
    model: str,
    params: Mapping | None = None,
    *,
    device: str | None = None,
    epochs: int | None = None,
    split_method: str = "loo",
    seed: int = 42,
) -> Plan:
    """The plan for training `model` with `params` on `dataset` (see the module docstring)."""
    check_dataset_name(dataset)  # the one rule: a hostile name is refused as such
    if dataset not in list_datasets(home):
        known = ", ".join(list_datasets(home)) or "none yet"
        raise RecScopeError(
            f"There is no dataset named '{dataset}' (known: {known}); ingest one first."
        )
    meta = dataset_summary(home, dataset)
    users, items, rows = int(meta["n_users"]), int(meta["n_items"]), int(meta["n_interactions"])
    shape = Shape(users, items, _train_rows(rows, users, split_method))
    merged = model_params(model, dict(params or {}), epochs=epochs, device=device, seed=seed)
    make_model(model, **merged)  # unknown or bad parameters: the sentence new_run would give
    where = pick_device(device)
    c = cost(model, shape, {**model_class(model).default_params(), **merged})
    memory = _memory(c, shape, rows, where)
    peak = sum(memory.values())
    available = available_bytes(where)
    rates = device_rates(str(where), _width(items))
    shared = hasattr(model_class(model), "catalogue_scores")  # UserIndependentScores (pop)
    epoch_s, eval_pass_s = _epoch_seconds(c, rates), _eval_pass_seconds(c, shape, rates, shared)
    validations = c.validations if c.validations is not None else c.epochs * c.validates
    fit_s = c.epochs * epoch_s + validations * c.validation_share * eval_pass_s
    verdict = _verdict(c, peak, available)
    plan = Plan(
        dataset=dataset,
        model=model,
        device=str(where),
        n_users=users,
        n_items=items,
        n_train=shape.n_train,
        memory=memory,
        peak_bytes=peak,
        available_bytes=available,
        epoch_s=round(epoch_s, 3),
        epochs=c.epochs,
        fit_s=round(fit_s, 1),
        eval_s=round(2 * eval_pass_s, 1),  # the validation and the test split
        verdict=verdict,
        sentence="",
        alternative=c.alternative,
        time_basis=TIME_BASIS["cuda" if where.type == "cuda" else "cpu"],
    )
    return _with_sentence(plan, c)


def refuse(plan: Plan) -> None:
    """Raise the plan's sentence when it is refused (before a run record exists)."""
    if plan.refused:
        raise RecScopeError(plan.sentence)


def available_bytes(device: torch.device) -> int:
    """Memory this process may still use on `device` (core.device.available_memory_bytes)."""
    return available_memory_bytes(device)


@functools.lru_cache(maxsize=8)
def device_rates(device: str, n_items: int = 32_768) -> dict[str, float]:
    """Rates measured on `device` in well under a second of its time: matmul flop/s, memory
    bytes/s, sparse multiply-adds/s and the ranking routine's seconds per scored cell on a
    block `n_items` wide (its cost per cell depends on the width). On the CPU they are rates
    of one core in CPU time (`_best`), so a busy machine gives the same numbers."""
    where = torch.device(device)
    a = torch.randn(256, 256, device=where)
    flops = 2 * 256**3 / _best(lambda: a @ a, where)
    big = torch.empty(4 * 2**20, device=where)
    bandwidth = 2 * big.numel() * 4 / _best(lambda: big.add_(1.0), where)
    n, nnz = 20_000, 100_000
    idx = torch.randint(0, n, (2, nnz), device=where)
    ones = torch.ones(nnz, device=where)
    adj = torch.sparse_coo_tensor(idx, ones, (n, n), check_invariants=False).coalesce()
    dense = torch.randn(n, 16, device=where)
    sparse = nnz * 16 / _best(lambda: torch.sparse.mm(adj, dense), where)
    width = max(64, min(int(n_items), 65_536))
    scores = torch.rand(max(1, 2**17 // width), width, device=where)
    users = torch.arange(scores.shape[0], device=where)
    rank_s = _best(lambda: top_k(scores, 20, users=users), where) / scores.numel()
    return {"flops": flops, "bandwidth": bandwidth, "sparse": sparse, "rank_cell_s": rank_s}


def duration_text(seconds: float) -> str:
    """'under 1 s', '45 s', '3 min 20 s' (`core.runs.stages.format_seconds` above a second)."""
    return "under 1 s" if seconds < 1 else format_seconds(seconds)


def memory_text(n_bytes: float) -> str:
    """'1.2 GB', '340 MB'."""
    if n_bytes >= 2**30:
        return f"{n_bytes / 2**30:.1f} GB"
    return f"{n_bytes / 2**20:.0f} MB"


# -- helpers ---------------------------------------------------------------------------------


def _width(n_items: int) -> int:
    """The probe's block width: the catalogue's, rounded up to a power of two (few probes)."""
    return 1 << max(6, min(16, (max(1, n_items) - 1).bit_length()))


def _train_rows(rows: int, users: int, split_method: str) -> int:
    """Training interactions: leave-last-out keeps all but two per user, the others ~80%."""
    if split_method == "loo":
        return max(rows - 2 * users, rows // 2)
    return int(rows * 0.8)


def _memory(c: Cost, shape: Shape, rows: int, device: torch.device) -> dict[str, int]:
    """Bytes by part at the peak on `device`: the fit's transient parts and the evaluator's
    score block do not coexist, so only the largest of them counts. On a GPU: what the GPU
    holds (the training pairs, not the host's copy of the data set)."""
    transient = {
        "activations": c.activations,
        "working": c.working,
        "score_block": score_block_bytes(shape),
    }
    largest = max(transient, key=transient.get)
    on_gpu = device.type == "cuda"  # the process and the tables stay in host memory
    parts = {
        "process": 0 if on_gpu else BASE_BYTES,
        "data": 16 * shape.n_train if on_gpu else DATA_BYTES_PER_ROW * rows,
        "parameters": c.parameters,
        "optimizer": c.optimizer,
        "training_data": c.held,  # sequence models: training rows and views (fit and eval)
        largest: transient[largest],
    }
    return {k: int(v) for k, v in parts.items() if v}


def _epoch_seconds(c: Cost, rates: Mapping[str, float]) -> float:
    work = c.flops / rates["flops"] + c.traffic / rates["bandwidth"] + c.sparse / rates["sparse"]
    return work + c.overhead_s


def _eval_pass_seconds(
    c: Cost, shape: Shape, rates: Mapping[str, float], shared: bool = False
) -> float:
    """One full-ranking pass over every user: scoring plus the ranking routine per cell. A
    model whose scores are the same for every user is ranked once (core.eval.ranking
    .shared_top_k): its pass costs per known entry and per listed candidate instead."""
    if shared:
        listed = shape.n_train + shape.n_users * (max(KS) + 32)
        return EVAL_FIXED_S / 2 + listed * SHARED_ENTRY_S
    cells = shape.n_users * shape.n_items
    per_cell = EVAL_CELL_FACTOR * rates["rank_cell_s"] + c.score_flops / rates["flops"]
    return EVAL_FIXED_S / 2 + cells * per_cell


def _verdict(c: Cost, peak: int, available: int) -> str:
    if c.limit or peak > available:
        return "refused"
    return "fits" if peak <= COMFORT * available else "tight"


def _with_sentence(plan: Plan, c: Cost) -> Plan:
    need, have = memory_text(plan.peak_bytes), memory_text(plan.available_bytes)
    where = "free on the GPU" if plan.device.startswith("cuda") else "available"
    if c.limit:
        text = (
            f"{plan.model} is refused: {c.limit} (about {need} at its peak, {have} {where}); "
            f"{plan.alternative}."
        )
    elif plan.refused:
        text = (
            f"{plan.model} is refused: it needs about {need} at its peak ({_largest(plan)}) "
            f"but {have} is {where}; try {plan.alternative}, or filter rare items."
        )
    else:
        epochs = ""
        if plan.epochs > 1:  # a closed-form model's "epochs" are its λ tries (EASE's grid)
            loop = model_class(plan.model).trains_with_loop
            epochs = f" (at most {plan.epochs} epochs)" if loop else f" ({plan.epochs} λ tried)"
        text = (
            f"{plan.model} should fit: about {need} of the {have} {where}; "
            f"{_about(plan.fit_s)} to train{epochs} and {_about(plan.eval_s)} to evaluate."
        )
        if plan.verdict == "tight":
            text += f" Memory is tight: close other programs, or try {plan.alternative}."
    return Plan(**{**asdict(plan), "sentence": text})


def _about(seconds: float) -> str:
    return duration_text(seconds) if seconds < 1 else f"about {duration_text(seconds)}"


def _largest(plan: Plan) -> str:
    part = max(plan.memory, key=plan.memory.get)
    return f"{part.replace('_', ' ')} {memory_text(plan.memory[part])}"


def _best(fn, device: torch.device, repeats: int = 3) -> float:
    """The fastest of `repeats` timed calls after one warm-up, in seconds (at least 1 µs).

    On the CPU: the calling thread's CPU time with one torch thread, so other programs on a
    busy machine do not inflate it; estimates are then for one core. On a GPU: wall time."""
    cpu = device.type == "cpu"
    threads = torch.get_num_threads()
    clock = time.thread_time if cpu else time.perf_counter
    if cpu:
        torch.set_num_threads(1)
    try:
        fn()
        best = float("inf")
        for _ in range(repeats):
            if not cpu:
                torch.cuda.synchronize(device)
            tick = clock()
            fn()
            if not cpu:
                torch.cuda.synchronize(device)
            best = min(best, clock() - tick)
    finally:
        torch.set_num_threads(threads)
    return max(best, 1e-6)
