"""The one place that decides the device, dtype/autocast and seeds.

Order: an explicit choice, else `RECSCOPE_DEVICE`, else cuda, then mps, then cpu. Under
torchrun (core.distributed) each rank trains on its own GPU: a plain "cuda" means
`cuda:LOCAL_RANK` (`LOCAL_RANK` is read here, and only here).
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path

import numpy as np
import torch

from core.errors import ParameterError

CHOICES = ("auto", "cpu", "cuda", "mps")


def pick_device(choice: str | None = None) -> torch.device:
    """Resolve 'auto'/'cpu'/'cuda'/'mps' (or None -> RECSCOPE_DEVICE, then auto)."""
    choice = (choice or os.environ.get("RECSCOPE_DEVICE") or "auto").lower()
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ParameterError(
                f"Device '{choice}' was asked for but no CUDA GPU is visible; use --device cpu "
                "or auto."
            )
        _enable_tf32()
        return _this_ranks_gpu(torch.device(choice))
    if choice == "mps":
        if not _mps_available():
            raise ParameterError("Device 'mps' was asked for but is not available; use cpu.")
        return torch.device("mps")
    if choice == "cpu":
        return torch.device("cpu")
    if choice != "auto":
        raise ParameterError(f"Device '{choice}' is unknown; use one of {', '.join(CHOICES)}.")
    if torch.cuda.is_available():
        _enable_tf32()
        return _this_ranks_gpu(torch.device("cuda"))
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def threads_for_load() -> int:
    """Set torch's CPU threads to one while the machine's load is at or above its cores, and
    return the number set (the default otherwise).

    Why: on a busy 2-core machine torch's intra-op pool spin-waits for its second thread. One
    multiscenario epoch on 20,000 sample interactions at load average ~17 (issue 16):
    1 thread 24-44 s wall / 3 s CPU; 2 threads 136 s wall / 21 s CPU.
    """
    if os.getloadavg()[0] >= (os.cpu_count() or 1):
        torch.set_num_threads(1)
    return torch.get_num_threads()


def gpu_count() -> int:
    """How many CUDA GPUs this process sees (0 without CUDA): `--nproc` on all of them."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def describe(device: torch.device) -> dict:
    """What a person should see about the device: kind, name, memory."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return {
            "type": "cuda",
            "name": props.name,
            "memory_gb": round(props.total_memory / 2**30, 1),
        }
    if device.type == "mps":
        return {"type": "mps", "name": "Apple GPU", "memory_gb": None}
    return {"type": "cpu", "name": f"CPU ({os.cpu_count()} cores)", "memory_gb": None}


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA GPUs that support it; a no-op elsewhere (fp32 on CPU)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a torch generator for sampling on the CPU."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def generator(device: torch.device, seed: int) -> torch.Generator:
    """A seeded generator that lives on `device` (sampling on the device needs one)."""
    return torch.Generator(device=device).manual_seed(seed)


def peak_memory_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return None


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def local_rank() -> int | None:
    """This process's rank on its machine under torchrun (`LOCAL_RANK`), else None."""
    text = os.environ.get("LOCAL_RANK")
    return int(text) if text and text.isdigit() else None


def _this_ranks_gpu(device: torch.device) -> torch.device:
    """`cuda` (no index) under torchrun is the rank's own GPU, cuda:LOCAL_RANK."""
    rank = local_rank()
    if device.index is not None or rank is None:
        return device
    if rank >= torch.cuda.device_count():
        raise ParameterError(
            f"Rank {rank} of this machine has no GPU of its own ({torch.cuda.device_count()} "
            "visible); start at most that many processes per machine (--nproc)."
        )
    return torch.device("cuda", rank)


def _enable_tf32() -> None:
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def available_memory_bytes(device: torch.device) -> int:
    """Memory a process may still use on `device`: free GPU memory on CUDA, else the smaller
    of the machine's MemAvailable and what the cgroup's (v2) limit leaves. The one reading
    of free memory: the plan (core.runs.plan) and the evaluator's block size use it."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    free = [meminfo_available()]
    room = _cgroup_room()
    if room is not None:
        free.append(room)
    return int(min(free))


def meminfo_available() -> int:
    """/proc/meminfo's MemAvailable in bytes (free pages where there is no /proc)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _cgroup_room() -> int | None:
    """What the cgroup (v2) memory limit leaves, or None without a limit."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(0, int(limit) - used)
