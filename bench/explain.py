"""Benchmark SHAP explanations: milliseconds per explanation for each model, CPU (and GPU).

Each available model is trained quickly on the shipped sample data (neural models for a
few epochs), then `core.explain.explainer.explain` explains the top recommendation of users whose
history holds at least `--min-history` distinct items (so 50 history features + the older
group, the permutation path, except item-kNN/EASE which use the closed form). shap's numba
kernels are compiled once first (`warm_up`, reported separately) and each explanation is
timed without the cache. Prints one JSON document on stdout; progress goes to stderr.

    .venv/bin/python bench/explain.py [--models ease sasrec] [--users 10] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core.data.dataset import Dataset
from core.data.split import split
from core.explain import explainer as E
from core.models import available, make_model, model_class
from core.runs.pipeline import LoadedRun

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--users", type=int, default=10, help="explanations timed per model")
    parser.add_argument("--epochs", type=int, default=3, help="epochs for neural models")
    parser.add_argument("--min-history", type=int, default=50)
    parser.add_argument("--max-history", type=int, default=50)
    args = parser.parse_args()

    dataset = Dataset.from_frames(
        "sample",
        pd.read_csv(SAMPLE / "interactions.csv"),
        pd.read_csv(SAMPLE / "items.csv"),
        pd.read_csv(SAMPLE / "users.csv"),
    )
    parts = split(dataset, "loo", 42)
    known = parts.known_for("test")
    distinct = np.diff(known.csr().indptr)
    users = np.flatnonzero(distinct >= args.min_history)[: args.users]
    _log(f"{len(users)} users with >= {args.min_history} distinct history items")
    warm_s = E.warm_up()
    _log(f"shap warm-up (numba compile) {warm_s:.1f}s")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    names = args.models or list(available())
    results = []
    for name in names:
        for device in devices:
            results.append(_measure(name, device, dataset, parts, users, args))
            _log(json.dumps(results[-1]))
    doc = {
        "environment": _environment(),
        "data": {"dataset": "sample", "n_users": dataset.n_users, "n_items": dataset.n_items},
        "warm_up_s": round(warm_s, 2),
        "results": results,
    }
    print(json.dumps(doc, indent=2))


def _measure(name, device, dataset, parts, users, args) -> dict:
    params: dict = {}
    defaults = model_class(name).default_params()
    if "device_choice" in defaults:
        params["device_choice"] = device
    if model_class(name).trains_with_loop and "epochs" in defaults:
        params["epochs"] = args.epochs
    start = time.perf_counter()
    model = make_model(name, **params).fit(parts.train, parts.valid)
    fit_s = time.perf_counter() - start
    model.set_history(parts.known_for("test"))
    loaded = LoadedRun({"run_id": None, "model": name}, dataset, parts, model)
    top, _ = model.recommend(users, 1, seed=parts.seed)
    times, methods, features, gaps = [], set(), [], []
    for user, item in zip(users, top[:, 0], strict=True):
        start = time.perf_counter()
        exp = E.explain(loaded, int(user), int(item), max_history=args.max_history)
        times.append((time.perf_counter() - start) * 1000)
        methods.add(exp.method)
        features.append(len(exp.contributions))
        gaps.append(abs(exp.total - exp.score) / max(1.0, abs(exp.score)))
    ms = np.asarray(times)
    return {
        "model": name,
        "device": device,
        "fit_s": round(fit_s, 2),
        "n_explanations": len(ms),
        "method": sorted(methods),
        "features_mean": float(np.mean(features)) if features else 0.0,
        "ms_median": round(float(np.median(ms)), 1) if len(ms) else None,
        "ms_p90": round(float(np.percentile(ms, 90)), 1) if len(ms) else None,
        "ms_max": round(float(ms.max()), 1) if len(ms) else None,
        "max_relative_additivity_gap": float(max(gaps)) if gaps else None,
    }


def _environment() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


if __name__ == "__main__":
    main()
