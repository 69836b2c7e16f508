"""Where an item index lives: faiss on the GPUs (one, or all of them in shards), torch on a GPU
faiss cannot use, or faiss on the CPU; and the faiss calls that copy an index to the GPUs.

More than one GPU seen by faiss, and no single GPU named ("cuda:1"): the index is split over
all of them with faiss' own cloner (`index_cpu_to_all_gpus`, `shard=True`), an `IndexShards`
with one shard per GPU that faiss searches in parallel and merges. These are the only calls
into faiss' GPU API (tests/test_index.py stands them in with CPU indexes).
"""

from __future__ import annotations

import functools

import faiss
import torch

from core.device import pick_device


def placement(device: str | None) -> tuple[torch.device, str, int]:
    """Where searches run: (device, backend, GPUs faiss uses).

    faiss on its GPUs (all of them, sharded, unless one GPU was named: "cuda:1"), torch on a
    GPU faiss cannot use, or faiss on the CPU (0 GPUs).
    """
    dev = pick_device(device)
    gpus = faiss.get_num_gpus() if dev.type == "cuda" else 0
    if gpus > 0:
        return dev, "faiss-gpu", gpus if dev.index is None else 1
    if dev.type != "cpu":
        return dev, "torch", 0
    return dev, "faiss-cpu", 0


def fallback(
    kind: str, dev: torch.device, backend: str, gpus: int
) -> tuple[torch.device, str, int]:
    """Approximate kinds need faiss, and faiss has no GPU HNSW: those run on the CPU."""
    if (kind != "flat" and backend == "torch") or (kind == "hnsw" and backend == "faiss-gpu"):
        return torch.device("cpu"), "faiss-cpu", 0
    return dev, backend, gpus


def devices(dev: torch.device, backend: str, shards: int) -> list[str]:
    """The devices holding the index: one per shard on GPUs, else the one device."""
    if backend == "faiss-gpu" and shards > 1:
        return [f"cuda:{i}" for i in range(shards)]
    if dev.type == "cuda":
        return [f"cuda:{dev.index if dev.index is not None else torch.cuda.current_device()}"]
    return [dev.type]


def to_gpu(index, dev: torch.device):
    """A copy of a faiss CPU index on GPU `dev`."""
    gpu = dev.index if dev.index is not None else torch.cuda.current_device()
    return faiss.index_cpu_to_gpu(_gpu_resources(), gpu, index)


def to_gpus(index, shards: int):
    """A copy of a faiss CPU index split over GPUs 0..shards-1: an IndexShards, one shard per
    GPU (flat: contiguous rows; IVF: every shard has the coarse quantizer, ids kept)."""
    options = faiss.GpuMultipleClonerOptions()
    options.shard = True
    return faiss.index_cpu_to_all_gpus(index, co=options, ngpu=shards)


@functools.lru_cache(maxsize=1)
def _gpu_resources():
    """One set of faiss GPU resources (scratch memory, streams) per process."""
    return faiss.StandardGpuResources()
