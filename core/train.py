"""The one training loop every neural model shares (closed-form models never come here).

A model hands the loop three things and the loop does the rest:

- `net_`: the `nn.Module` whose parameters AdamW optimises;
- `tensors`: a tuple of equally long tensors already on the device (e.g. user and item codes
  of the training pairs, or one row per training sequence); each epoch they are permuted on
  the device and sliced into batches, so no DataLoader and no per-sample Python runs;
- `model._loss(batch, gen) -> Tensor`: the scalar loss of one batch (a tuple of slices);
  `gen` is a device generator for negative sampling (see `sample_negatives`). The losses
models share live here too: `bpr_loss` and `sampled_softmax_loss`.

`model._weights_changed()` drops caches derived from the weights (LightGCN's
propagated embeddings); the loop calls it after every epoch and after restoring weights.

Validation: every `eval_every` epochs the loop computes NDCG@10 on `valid` with the
training interactions as known history (`core.eval.evaluate.ranking_metric`) and keeps a copy
of the best weights; after `patience` epochs without improvement it stops, and in any case
it ends with the best weights restored.

Cancel: pass `cancel` (a `threading.Event`, or a callable returning True to stop); it is
checked before every batch, and training then raises `core.errors.CancelledError`. The
process-wide flag (`request_cancel`, set by a job's SIGTERM handler, core.runs.jobs) is
checked there too, so a signal stops training at a batch boundary, never in the middle of
an optimiser step or a file write. A `progress` callback may also raise `CancelledError`
itself; it propagates unchanged.

Distributed (under torchrun, core.distributed; nothing changes with one process): the loop
joins the process group (gloo on CPUs, NCCL on GPUs, each rank on its own GPU) and
wraps the loss in `DistributedDataParallel`, so the gradients are averaged over the ranks
before every optimiser step. Each epoch's permutation is drawn from the same seed on every
rank and split by rank (strided, padded so every rank takes the same number of steps);
`batch_size` stays the examples per optimiser step over all ranks (each rank takes
ceil(batch_size / world size)), so one and N processes make about the same number of steps
per epoch (equal when the world size divides batch_size and n; a few fewer otherwise).
Negatives are sampled per rank from seed + rank. Rank 0 alone validates, reports progress
and keeps the best weights; its early-stopping decision, and a cancel seen on any rank
(checked every CANCEL_EVERY batches and at the end of each epoch), are shared so every
rank stops at the same step; at the end rank 0's weights are copied to every rank.
Models whose loss needs the whole catalogue graph (LightGCN) replicate it on each rank.

Sparse updates (opt-in, per embedding table): a model that builds an `nn.Embedding` with
`sparse=True` gets that table updated by a row-wise Adam over the rows its batch looked up
(`Optimizers`; moments kept per row, "lazy Adam"); every other parameter stays with AdamW as
before, so a model that declares nothing trains exactly as it always did. Why: AdamW over a
whole table touches every row at every step (dense gradient zeroed and filled, two moment
tensors, the update); with 200k users + 50k items x 128 a BPR step took 354 ms of CPU, the
row-wise one 27.5 ms (one thread, loaded machine; bench/RESULTS.md, "Sparse updates").
A small table (at most DENSE_GRAD_CELLS) takes a dense gradient instead, whose nonzero rows
get the same row-wise update: on MovieLens-100k, building and coalescing the sparse gradient
cost more than summing into the whole (1,682 x 128) table.
`weight_decay` on such a table is applied to the batch's rows only (decoupled, lr x decay,
just before the Adam step), so a row is regularised when it is used; an L2 term on the
batch's vectors in `_loss` (BPR's and LightGCN's `reg`, as RecBole) is the other way. A
table must be looked up through the module (`emb(codes)`), never `emb.weight[codes]`, for
its gradient to be sparse. Under torchrun the tables are switched to dense gradients
(NCCL has no sparse all-reduce) and everything goes through AdamW.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from core import distributed
from core.data.dataset import Interactions
from core.device import autocast, generator
from core.errors import CancelledError
from core.eval.evaluate import ranking_metric
from core.protocols import LoopTrainable, ProgressEvent, ProgressFn

log = logging.getLogger(__name__)

CancelFlag = threading.Event | Callable[[], bool] | None
#: softmax losses of the next-item models: over every item, over sampled negatives, or
#: "auto" (sampled above AUTO_SAMPLED_ITEMS items, where the full softmax gets expensive)
SOFTMAX_LOSSES = ("auto", "full", "sampled")
#: 20,000 like EASE's dense limit: on a 50,000-item catalogue a SASRec batch (256 windows)
#: cost ~6 CPU s with the full softmax against 1.8 s sampled, 80% of it in the softmax
#: (profiled at 50k items, issue 15); MovieLens-1M's 3.7k items stay on the full softmax
AUTO_SAMPLED_ITEMS = 20_000
#: user x item cells up to which the training pairs are kept as a bool mask (64 MB) rather
#: than sorted keys (`known_keys`): MovieLens-20M's 138k x 27k would be 3.7 GB, so it searches
DENSE_KNOWN_KEYS = 1 << 26
#: a sparse table of at most this many cells gets a dense gradient (`Optimizers`): summing
#: a batch's rows into it costs less than building and coalescing a sparse one (4 MB;
#: MovieLens-100k's and -1M's tables are below it, the 10M set's 200k x 128 far above)
DENSE_GRAD_CELLS = 1 << 20
#: under torchrun, the ranks agree on a cancel every this many batches (one tiny collective)
CANCEL_EVERY = 8
#: set when this process was asked to stop (a job's SIGTERM): every loop checks it
_PROCESS_CANCEL = threading.Event()


def request_cancel() -> None:
    """Ask this process's training (and job stages) to stop at the next batch boundary.

    Safe to call from a signal handler: it only sets a flag.
    """
    _PROCESS_CANCEL.set()


def cancel_requested() -> bool:
    """True once `request_cancel` was called (until `clear_cancel`)."""
    return _PROCESS_CANCEL.is_set()


def clear_cancel() -> None:
    """Forget a cancel request (a job ended; an in-process caller goes on)."""
    _PROCESS_CANCEL.clear()


def raise_if_cancelled(where: str = "") -> None:
    """Raise `CancelledError` if this process was asked to stop; `where` ends the message."""
    if _PROCESS_CANCEL.is_set():
        raise CancelledError("Cancelled" + (f" {where}" if where else "") + "; nothing saved.")


@dataclass(frozen=True)
class TrainConfig:
    """Loop settings; every neural model takes these as hyperparameters."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    patience: int = 5
    eval_every: int = 1
    seed: int = 42


@dataclass
class TrainResult:
    """What happened: epochs run, where the best validation score was, throughput."""

    epochs_run: int = 0
    best_epoch: int | None = None
    best_metric: float | None = None
    fit_s: float = 0.0
    #: of fit_s, the time spent in the epochs' batches (validation and reporting excluded)
    train_s: float = 0.0
    samples_per_s: float | None = None
    events: list[ProgressEvent] = field(default_factory=list)
    #: processes that trained together (1 without torchrun) and their backend (gloo, nccl)
    world_size: int = 1
    backend: str | None = None
    #: samples per second of each rank's own share, in rank order (gathered to every rank)
    rank_samples_per_s: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "best_metric": self.best_metric,
            "fit_s": round(self.fit_s, 3),
            "train_s": round(self.train_s, 3),
            "samples_per_s": self.samples_per_s,
            "world_size": self.world_size,
            "backend": self.backend,
            "rank_samples_per_s": self.rank_samples_per_s,
        }


def run_training(
    model: LoopTrainable,
    tensors: Sequence[torch.Tensor],
    config: TrainConfig,
    *,
    train: Interactions,
    valid: Interactions | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFlag = None,
) -> TrainResult:
    """Train `model.net_` on `tensors` (all on the model's device) and return what happened.

    Under torchrun every rank calls this with the same arguments (see the module docstring);
    `valid` and `progress` matter on rank 0 only.
    """
    device = model.device
    net: torch.nn.Module = model.net_
    n = int(tensors[0].shape[0])
    assert all(int(t.shape[0]) == n for t in tensors), "training tensors must align"
    here = distributed.join(device)
    gen = generator(device, config.seed)  # the epoch permutations: the same on every rank
    neg_gen = gen if not here.distributed else generator(device, config.seed + here.rank)
    # before DDP wraps the net: under torchrun the sparse tables turn dense first
    optimizer = Optimizers(net, config, dense_only=here.distributed)
    step = _step_fn(model, net, neg_gen, here)
    batch_size = math.ceil(config.batch_size / here.size)  # per rank: same global batch
    stop = _cancel_check(cancel)
    use_valid = here.leader and valid is not None and len(valid) > 0
    result = TrainResult(world_size=here.size, backend=distributed.backend())
    best_state: dict[str, torch.Tensor] | None = None
    train_time = 0.0
    start = time.perf_counter()
    share = n if not here.distributed else math.ceil(n / here.size)  # samples of this rank

    for epoch in range(1, config.epochs + 1):
        net.train()
        tick = time.perf_counter()
        order = torch.randperm(n, device=device, generator=gen)  # (n,)
        if here.distributed:
            order = distributed.shard(order, here)  # (share,)
        total = torch.zeros((), device=device)  # summed on the device: no sync per batch
        for number, lo in enumerate(range(0, share, batch_size)):
            if _stopping(stop, here, number, device):
                raise CancelledError(f"Training was cancelled at epoch {epoch}; nothing saved.")
            idx = order[lo : lo + batch_size]
            batch = tuple(t[idx] for t in tensors)
            with autocast(device):
                loss = step(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.detach().float() * len(idx)
        if here.distributed:
            total = distributed.total(total)[0]  # over every rank's share
        mean_loss = float(total) / (share * here.size)  # one sync per epoch
        if not math.isfinite(mean_loss):
            log.warning("%s: loss became %s at epoch %d", type(model).__name__, mean_loss, epoch)
        train_time += time.perf_counter() - tick
        model._weights_changed()
        net.eval()

        metric = None
        if use_valid and (epoch % config.eval_every == 0 or epoch == config.epochs):
            metric = _validate(model, valid, train)
            if result.best_metric is None or metric > result.best_metric:
                result.best_metric, result.best_epoch = metric, epoch
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        result.epochs_run = epoch
        elapsed = time.perf_counter() - start
        done_early = (
            use_valid
            and result.best_epoch is not None
            and epoch - result.best_epoch >= config.patience
        )
        remaining = 0 if done_early else config.epochs - epoch
        event = ProgressEvent(
            epoch=epoch,
            epochs=config.epochs,
            loss=mean_loss,
            valid_metric=metric,
            samples_per_s=n * epoch / train_time if train_time > 0 else None,
            elapsed_s=elapsed,
            eta_s=elapsed / epoch * remaining,
            best_epoch=result.best_epoch,
            message="early stop: no improvement" if done_early else "",
        )
        if here.leader:
            result.events.append(event)
        cancelled = None
        if progress is not None and here.leader:
            try:
                progress(event)
            except CancelledError as err:
                if not here.distributed:
                    raise
                cancelled = err  # raised below, once every rank knows
        if here.distributed:
            # rank 0's early stop and any rank's cancel end the training of every rank here
            cancel_now = cancelled is not None or stop()
            done_early = distributed.any_rank(done_early, device)
            if distributed.any_rank(cancel_now, device):
                raise cancelled or CancelledError(
                    f"Training was cancelled at epoch {epoch}; nothing saved."
                )
        if done_early:
            break

    if best_state is not None:
        net.load_state_dict(best_state)
        model._weights_changed()
    if here.distributed:
        distributed.broadcast_module(net)  # rank 0's (best) weights on every rank
        model._weights_changed()
    net.eval()
    result.fit_s = time.perf_counter() - start
    result.train_s = train_time
    result.samples_per_s = n * result.epochs_run / train_time if train_time > 0 else None
    own = share * result.epochs_run / train_time if train_time > 0 else 0.0
    if here.distributed:
        result.rank_samples_per_s = [
            round(v[0], 1) for v in distributed.gather_floats([own], device)
        ]
    else:
        result.rank_samples_per_s = [round(own, 1)]
    return result


class Optimizers:
    """AdamW over the dense parameters of `net`, a row-wise Adam over its sparse tables.

    See the module docstring ("Sparse updates"). The row-wise Adam is Adam restricted to
    the unique rows of the batch (moments of the other rows untouched), written here with
    index_select / index_copy_: torch.optim.SparseAdam does the same arithmetic but on the
    CPU it still ran whole-table ops (mul, add, sparse_mask) and saved only a third of a
    dense step. `dense_only` turns the sparse tables dense (their `sparse` flag off) and
    optimises everything with AdamW, as before the hook.
    """

    BETAS = (0.9, 0.999)
    EPS = 1e-8

    def __init__(self, net: torch.nn.Module, config: TrainConfig, *, dense_only: bool = False):
        tables = sparse_tables(net)
        if dense_only:
            for table in tables:
                table.sparse = False
            tables = []
        for table in tables:  # small tables: a dense gradient, still updated row by row
            table.sparse = table.weight.numel() > DENSE_GRAD_CELLS
        self.sparse = [t.weight for t in tables]
        self.lr, self.decay = float(config.lr), float(config.lr) * float(config.weight_decay)
        self.moments = [(torch.zeros_like(w), torch.zeros_like(w)) for w in self.sparse]
        self.steps = 0
        chosen = {id(p) for p in self.sparse}
        dense = [p for p in net.parameters() if id(p) not in chosen]
        self.parts: list[torch.optim.Optimizer] = []
        if dense or not self.sparse:
            self.parts.append(
                torch.optim.AdamW(dense, lr=config.lr, weight_decay=config.weight_decay)
            )

    def zero_grad(self) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=True)
        for weight in self.sparse:
            weight.grad = None

    def step(self) -> None:
        for part in self.parts:
            part.step()
        if not self.sparse:
            return
        self.steps += 1
        (b1, b2), t = self.BETAS, self.steps
        scale = self.lr * math.sqrt(1 - b2**t) / (1 - b1**t)  # Adam's bias corrections
        with torch.no_grad():
            for weight, (avg, avg_sq) in zip(self.sparse, self.moments, strict=True):
                if weight.grad is None:
                    continue
                rows, values = _batch_rows(weight.grad)  # (r,), (r, d)
                m = avg.index_select(0, rows).mul_(b1).add_(values, alpha=1 - b1)
                v = avg_sq.index_select(0, rows).mul_(b2).addcmul_(values, values, value=1 - b2)
                avg.index_copy_(0, rows, m)
                avg_sq.index_copy_(0, rows, v)
                old = weight.index_select(0, rows)
                if self.decay > 0:
                    old.mul_(1.0 - self.decay)
                denom = v.sqrt_().add_(self.EPS * math.sqrt(1 - b2**t))
                weight.index_copy_(0, rows, old.addcdiv_(m, denom, value=-scale))


def _batch_rows(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows a step's gradient touches and their summed gradients: from a sparse
    gradient by coalescing (duplicate rows of the batch summed), from a small table's dense
    one as its nonzero rows (a row the batch used whose gradient is exactly zero is
    skipped; its Adam step would only decay the moments)."""
    if grad.is_sparse:
        grad = grad.coalesce()
        return grad.indices()[0], grad.values()
    rows = grad.ne(0).any(1).nonzero().squeeze(1)
    return rows, grad.index_select(0, rows)


def sparse_tables(net: torch.nn.Module) -> list[torch.nn.Embedding]:
    """The embedding tables of `net` that asked for sparse gradients (`sparse=True`)."""
    return [m for m in net.modules() if isinstance(m, torch.nn.Embedding) and m.sparse]


def sample_negatives(
    users: torch.Tensor,
    n_items: int,
    n: int,
    gen: torch.Generator,
    known: torch.Tensor | None = None,
    retries: int = 2,
) -> torch.Tensor:
    """Uniform negative items, shape (B, n), drawn on the device of `users` (B,).

    With `known` (the training pairs by key `user * n_items + item`, see `known_keys`)
    items the user already has are redrawn up to `retries` times; a few collisions may
    remain, which is harmless and far cheaper than exact rejection.
    """
    shape = (users.shape[0], n)
    neg = torch.randint(0, n_items, shape, device=users.device, generator=gen)  # (B, n)
    if known is None or known.numel() == 0:
        return neg
    for _ in range(retries):
        keys = users[:, None] * n_items + neg  # (B, n)
        if known.dtype == torch.bool:
            hit = known[keys]  # a mask over every key
        else:
            pos = torch.searchsorted(known, keys).clamp_(max=known.numel() - 1)
            hit = known[pos] == keys
        fresh = torch.randint(0, n_items, shape, device=users.device, generator=gen)
        neg = torch.where(hit, fresh, neg)
    return neg


def bpr_loss(u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Mean -log sigmoid(u·i − u·j) of users (B, d), positives (B, d), negatives (B, n, d).

    The negatives' dot products multiply and sum: `bmm` (here until session 9) looked
    cheaper, but its backward is a batch of rank-one products that ran 2-7x slower than
    this form's (2048 x 4 x 128: 11.7 vs 5.2 ms forward + backward, one thread). A fused
    autograd node from the tables to the loss (no nn.Embedding backward) was tried too:
    ~6% less CPU on MovieLens-100k, within the noise of a loaded machine, so not kept.
    """
    s_pos = (u * pos).sum(-1, keepdim=True)  # (B, 1)
    # float32 even under a GPU's bf16 autocast: as the positives' scores
    with torch.autocast(u.device.type, enabled=False):
        s_neg = (neg.float() * u.float().unsqueeze(1)).sum(-1)  # (B, n)
    return -F.logsigmoid(s_pos.float() - s_neg).mean()


def sampled_softmax(loss: str, n_items: int) -> bool:
    """Whether a softmax model trains with the sampled softmax: `loss` is one of
    SOFTMAX_LOSSES; "auto" samples above AUTO_SAMPLED_ITEMS items."""
    return loss == "sampled" or (loss == "auto" and n_items > AUTO_SAMPLED_ITEMS)


def sampled_softmax_loss(
    pos: torch.Tensor, neg: torch.Tensor, target: torch.Tensor, neg_codes: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy of each true item against negatives shared by the batch.

    pos (N, 1) logits of the true items `target` (N,); neg (N, n) logits of the sampled
    items `neg_codes` (n,). A sampled item that is the row's own target is masked out
    (-inf), so no row is pushed away from its own positive.
    """
    neg = neg.masked_fill(neg_codes[None, :] == target[:, None], float("-inf"))
    logits = torch.cat([pos, neg], dim=1).float()  # (N, 1 + n)
    return F.cross_entropy(logits, torch.zeros_like(target))


def known_keys(train: Interactions, device: torch.device) -> torch.Tensor:
    """The training pairs by key `user * n_items + item`, on `device`, for
    `sample_negatives`: a bool mask over every key when there are at most DENSE_KNOWN_KEYS
    of them, else the sorted int64 keys (searched). Why the mask: on MovieLens-100k the
    two searches per step were 1.5 of BPR's 13 CPU s (one thread); a mask is one gather."""
    keys = torch.from_numpy(train.pair_keys())
    cells = train.n_users * train.n_items
    if cells <= DENSE_KNOWN_KEYS:
        mask = torch.zeros(cells, dtype=torch.bool)
        mask[keys] = True
        return mask.to(device)
    return torch.unique(keys).to(device)  # sorted


def pair_tensors(train: Interactions, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """User and item codes of the training pairs as int64 tensors (n,) on `device`."""
    users = torch.from_numpy(train.users.astype(np.int64))  # astype copies: writable
    items = torch.from_numpy(train.items.astype(np.int64))
    return users.to(device), items.to(device)


def _validate(model, valid: Interactions, train: Interactions) -> float:
    with torch.inference_mode():
        return float(ranking_metric(model, valid, known=train, k=10))


def _step_fn(model, net: torch.nn.Module, gen: torch.Generator, here) -> Callable:
    """batch -> loss: the model's `_loss` itself with one process; under torchrun the same
    loss through DistributedDataParallel, whose backward averages the gradients over ranks."""
    if not here.distributed:
        return lambda batch: model._loss(batch, gen)
    from torch.nn.parallel import DistributedDataParallel

    device = model.device
    ddp = DistributedDataParallel(
        _LossOf(model, net, gen),
        device_ids=[device.index] if device.type == "cuda" else None,
        # a model may leave a parameter out of some batches (a scenario head, a side tower)
        find_unused_parameters=True,
    )
    return lambda batch: ddp(*batch)


class _LossOf(torch.nn.Module):
    """`forward(*batch)` is `model._loss(batch, gen)`, so DDP sees the loss computation.

    The models' losses call submodules of `net_` (not `net_.forward`); DDP needs a module
    whose forward runs the whole loss, and `net_` registered under it (its parameters are
    the ones DDP all-reduces; the optimiser holds the same tensors).
    """

    def __init__(self, model, net: torch.nn.Module, gen: torch.Generator) -> None:
        super().__init__()
        self.net = net
        self._model = model  # not a module: not registered
        self._gen = gen

    def forward(self, *batch: torch.Tensor) -> torch.Tensor:
        return self._model._loss(batch, self._gen)


def _stopping(stop: Callable[[], bool], here, number: int, device: torch.device) -> bool:
    """Whether to stop before batch `number`: every batch with one process; under torchrun
    every CANCEL_EVERY batches, agreed by all ranks (a rank alone must never stop)."""
    if not here.distributed:
        return stop()
    if number % CANCEL_EVERY:
        return False
    return distributed.any_rank(stop(), device)


def _cancel_check(cancel: CancelFlag) -> Callable[[], bool]:
    """The caller's flag or the process-wide one."""
    if cancel is None:
        return _PROCESS_CANCEL.is_set
    own = cancel.is_set if isinstance(cancel, threading.Event) else cancel
    return lambda: _PROCESS_CANCEL.is_set() or bool(own())
