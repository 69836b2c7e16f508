"""Benchmark the item index: build time, single-query latency, batched throughput, recall@10.

Data: clustered Gaussian vectors (d=64, one cluster per ~100 items), like item embeddings.
For every size and device it builds the exact index and the approximate kinds, then
measures on held-out queries against exact search. Prints one JSON document on stdout;
progress goes to stderr.

    .venv/bin/python bench/index.py [--sizes 10000 100000 1000000] [--kinds flat ivf hnsw]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import faiss
import numpy as np
import torch

from core.retrieval.index import ItemIndex, _choose_kind, layout, recall_at_k
from core.retrieval.placement import placement


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--kinds", nargs="+", default=["flat", "ivf", "hnsw"])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--single", type=int, default=200, help="single queries timed")
    parser.add_argument("--batch", type=int, default=1000, help="queries in the batched run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = []
    for n in args.sizes:
        base, queries = _clustered(n, args.dim, max(n // 100, 10), args.batch, args.seed)
        _, truth = faiss.knn(_unit(queries), _unit(base), 10, metric=faiss.METRIC_INNER_PRODUCT)
        for device in devices:
            backend = placement(device)[1]
            auto = _choose_kind("auto", n, backend)
            for kind in args.kinds:
                _log(f"n={n} device={device} kind={kind} ...")
                row = _measure(base, queries, truth, kind, device, args.single)
                row.update(n=n, dim=args.dim, auto_choice=auto, chosen=kind == auto)
                results.append(row)
                _log(f"  {json.dumps(row)}")
    print(json.dumps({"environment": _environment(), "results": results}, indent=2))


def _measure(base, queries, truth, kind, device, n_single) -> dict:
    start = time.perf_counter()
    index = ItemIndex.build(base, kind=kind, device=device, recall_k=10, seed=0)
    total_build = time.perf_counter() - start
    single = []
    for q in queries[:n_single]:
        t = time.perf_counter()
        index.search(q[None, :], 10)
        single.append(time.perf_counter() - t)
    t = time.perf_counter()
    ids, _ = index.search(queries, 10)
    batched = time.perf_counter() - t
    info = index.info
    return {
        "kind": kind,
        "device": info.device,
        "backend": info.params.get("backend"),
        "layout": layout(info),  # e.g. "2 shards over 2 GPUs"
        "shards": info.shards,
        "build_s": info.build_s,
        "build_with_tuning_s": round(total_build, 3),
        "latency_ms_p50": round(1e3 * float(np.percentile(single, 50)), 3),
        "latency_ms_p99": round(1e3 * float(np.percentile(single, 99)), 3),
        "batched_qps": round(len(queries) / batched, 1),
        "recall_at_10_heldout": round(recall_at_k(ids, truth), 4),
        "recall_at_10_stored": info.recall_at_k,
        "params": {k: v for k, v in info.params.items() if k not in ("backend", "normalized")},
    }


def _clustered(n: int, d: int, clusters: int, n_queries: int, seed: int):
    """`n` points and `n_queries` held-out queries around `clusters` Gaussian centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    base = centres[rng.integers(0, clusters, n)]
    base += 0.3 * rng.standard_normal((n, d), dtype=np.float32)
    queries = centres[rng.integers(0, clusters, n_queries)]
    queries += 0.3 * rng.standard_normal((n_queries, d), dtype=np.float32)
    return base, queries


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _environment() -> dict:
    return {
        "python": platform.python_version(),
        "faiss": faiss.__version__,
        "faiss_gpus": faiss.get_num_gpus(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpu_count": os.cpu_count(),
        "faiss_threads": faiss.omp_get_max_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
