"""Training on several processes with PyTorch's own engine: torchrun, a process group, DDP.

`recscope train … --nproc N` (core.cli) starts `torchrun --standalone --nproc-per-node N`
(`torchrun_command`); every process torchrun starts (a *rank*) runs the same pipeline and the
one training loop (core.train), which joins the process group here (`join`) from torchrun's
environment: `RANK`, `WORLD_SIZE` (read here, and only here) and `LOCAL_RANK` (read by
core.device, which gives each rank its GPU `cuda:LOCAL_RANK`). The backend is NCCL on CUDA
and gloo on CPUs. Several machines run the command of `multinode_command` on each machine.

Without torchrun (`WORLD_SIZE` unset or 1) nothing here does anything: `world()` is rank 0 of
1 and training is exactly the one-process loop.

This module sits in the base layer: it imports nothing of ours but the error family.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import shlex
import signal
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from core.errors import ParameterError

log = logging.getLogger(__name__)

#: the port several machines meet on unless told otherwise (torchrun's default)
DEFAULT_PORT = 29500
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
# loaded once here, so a forked child (a preexec_fn) only calls prctl and takes no lock
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


@dataclass(frozen=True)
class World:
    """Where this process stands: its global rank among `size` processes."""

    rank: int = 0
    size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def leader(self) -> bool:
        """Rank 0: the one rank that validates, reports progress and writes files."""
        return self.rank == 0


def world() -> World:
    """This process's rank and world size from torchrun's environment (rank 0 of 1 without)."""
    try:
        size = int(os.environ.get("WORLD_SIZE") or 1)
        rank = int(os.environ.get("RANK") or 0)
    except ValueError:
        return World()
    return World(rank=rank, size=size) if size > 1 else World()


def backend_for(device: torch.device) -> str:
    """The collective backend for `device`: NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def join(device: torch.device) -> World:
    """Join torchrun's process group (once per process) for training on `device`.

    A no-op returning rank 0 of 1 without torchrun. On CUDA, `device` is this rank's own GPU
    (core.device.pick_device gives `cuda:LOCAL_RANK`).
    """
    here = world()
    if not here.distributed:
        return here
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend_for(device))
        log.info("rank %d of %d joined (%s)", here.rank, here.size, backend_for(device))
    return here


def backend() -> str | None:
    """The backend of the joined process group, or None (one process)."""
    return str(dist.get_backend()) if dist.is_initialized() else None


def leave() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is True on at least one (a collective: all ranks call)."""
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def total(value: torch.Tensor) -> torch.Tensor:
    """The sum of a tensor over all ranks (a collective), returned on every rank."""
    value = value.detach().clone().reshape(-1).float()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def gather_floats(values: list[float], device: torch.device) -> list[list[float]]:
    """Every rank's `values` (same length on each rank), in rank order, on every rank."""
    mine = torch.tensor(values, dtype=torch.float64, device=device)
    everyone = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, mine)
    return [t.cpu().tolist() for t in everyone]


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers into every rank's `module` (in place)."""
    with torch.no_grad():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def shard(order: torch.Tensor, here: World) -> torch.Tensor:
    """This rank's strided share of an epoch's permutation `order` (n,), shape (ceil(n/W),).

    The permutation is padded by repeating its start so that every rank gets the same
    number of samples, hence the same number of steps: a rank with one step more would wait
    forever in DDP's gradient all-reduce.
    """
    n = int(order.shape[0])
    per_rank = math.ceil(n / here.size)
    padded = order.repeat(math.ceil(per_rank * here.size / n))[: per_rank * here.size]
    return padded[here.rank :: here.size]


def share_text(text: str, device: torch.device) -> str:
    """Rank 0's `text` (a run id) on every rank (a collective: all ranks call it)."""
    data = torch.tensor(list(text.encode()), dtype=torch.uint8, device=device)
    size = torch.tensor([data.numel()], dtype=torch.int64, device=device)
    dist.broadcast(size, src=0)
    if data.numel() != int(size.item()):
        data = torch.zeros(int(size.item()), dtype=torch.uint8, device=device)
    dist.broadcast(data, src=0)
    return bytes(data.cpu().tolist()).decode()


def check_nproc(nproc: int, device: torch.device) -> None:
    """A clear error when `nproc` GPU processes are asked for but fewer GPUs are visible."""
    if device.type != "cuda" or nproc <= 1:
        return
    if device.index is not None:  # every rank would land on that one GPU (NCCL refuses)
        raise ParameterError(
            f"--nproc {nproc} puts one process on each of GPUs 0..{nproc - 1}, so it cannot "
            f"be combined with --device {device}; pass --device cuda (or hide GPUs with "
            "CUDA_VISIBLE_DEVICES)."
        )
    visible = torch.cuda.device_count()
    if nproc > visible:
        raise ParameterError(
            f"--nproc {nproc} asks for {nproc} GPUs but {visible} are visible; use --nproc "
            f"{visible} or fewer, or --device cpu to train {nproc} CPU processes."
        )


def torchrun_command(nproc: int, args: list[str]) -> list[str]:
    """`python -m torch.distributed.run --standalone --nproc-per-node N -m core.cli ARGS`.

    The interpreter is this one (sys.executable), so the ranks run in the same environment.
    """
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={int(nproc)}",
        "-m",
        "core.cli",
        *args,
    ]


def multinode_command(
    nproc: int, args: list[str], *, nnodes: int = 2, endpoint: str = f"HOST:{DEFAULT_PORT}"
) -> str:
    """The shell command each of `nnodes` machines runs (NODE_RANK 0 on the `endpoint` host)."""
    parts = [
        "torchrun",
        f"--nnodes={int(nnodes)}",
        "--node-rank=$NODE_RANK",
        f"--nproc-per-node={int(nproc)}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={endpoint}",
        "-m",
        "core.cli",
        *args,
    ]
    return " ".join(p if p.startswith("--node-rank") else shlex.quote(p) for p in parts)


def die_with_parent() -> None:
    """Ask the kernel to stop this process when its parent dies (Linux; elsewhere nothing).

    torchrun starts every rank in a session of its own, so a SIGKILL of the launcher's group
    would not reach the ranks; with this, a rank whose launcher is killed is killed too and
    no orphan rank keeps a GPU (or a CPU) busy. Used as a `preexec_fn` and by every rank.
    """
    if _LIBC is None:
        return
    try:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except AttributeError:  # no prctl: the launcher's SIGTERM still reaches the ranks
        return
    if os.getppid() == 1:  # the parent died before the request was made
        os._exit(1)
