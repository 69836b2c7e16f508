"""Per-scenario NDCG@10 / Recall@10 and fit time of each multi-scenario strategy, one JSON.

    .venv/bin/python bench/scenarios.py                          # sample data, CPU (and GPU)
    .venv/bin/python bench/scenarios.py --base sasrec --epochs 10 --threads 1

Strategies (core/scenarios.py): one `--base` model per scenario, one pooled `--base` model,
and the multiscenario model. Protocol: loo split; each scenario's test interactions ranked
against that scenario's items (`--catalogue all`: every item); training and validation items
excluded; the mean is over scenarios. The multiscenario model runs on the CPU and, when
CUDA is present, again on the GPU. `--transfer SOURCE:TARGET` adds the transfer curves.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.data.dataset import Dataset  # noqa: E402
from core.data.split import split  # noqa: E402
from core.scenarios.strategies import (  # noqa: E402
    evaluate_by_scenario,
    make_strategy,
)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sample = ROOT / "sample_data"
    ds = Dataset.from_frames(
        "sample",
        pd.read_csv(sample / "interactions.csv"),
        pd.read_csv(sample / "items.csv"),
        pd.read_csv(sample / "users.csv"),
    )
    parts = split(ds, "loo", seed=args.seed)
    runs = [("per_scenario", "cpu"), ("pooled", "cpu"), ("multiscenario", "cpu")]
    if torch.cuda.is_available():
        runs.append(("multiscenario", "cuda"))
    out = {"machine": _machine(), "protocol": _protocol(args), "strategies": {}}
    for name, device in runs:
        params = {"device_choice": device}
        if name == "multiscenario":
            params.update(epochs=args.epochs, topology=args.topology)
        elif args.base not in ("ease", "itemknn", "pop"):
            params.update(epochs=args.epochs)
        strategy = make_strategy(name, args.base, **params)
        tick = time.perf_counter()
        strategy.fit(parts.train, parts.valid)
        fit_s = time.perf_counter() - tick
        tick = time.perf_counter()
        res = evaluate_by_scenario(strategy, parts, catalogue=args.catalogue)
        table = res.table.set_index("scenario")
        key = name if device == "cpu" else f"{name}@{device}"
        out["strategies"][key] = {
            "ndcg@10": {s: round(float(v), 4) for s, v in table["ndcg@10"].items()},
            "recall@10": {s: round(float(v), 4) for s, v in table["recall@10"].items()},
            "mean_ndcg@10": round(res.mean("ndcg@10"), 4),
            "mean_recall@10": round(res.mean("recall@10"), 4),
            "fit_s": round(fit_s, 2),
            "eval_s": round(time.perf_counter() - tick, 2),
            "device": device,
            "epochs_run": _epochs(strategy),
        }
    if args.transfer:
        from core.scenarios.transfer import transfer_experiment

        source, target = args.transfer.split(":")
        out["transfer"] = transfer_experiment(
            ds, source, target, multiscenario_params={"epochs": args.epochs}
        )
    print(json.dumps(out, indent=2))


def _epochs(strategy) -> int | None:
    model = getattr(strategy, "model_", None)
    result = getattr(model, "train_result_", None)
    return result.epochs_run if result is not None else None


def _machine() -> dict:
    return {
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }


def _protocol(args) -> dict:
    return {
        "data": "sample_data (3 scenarios)",
        "split": f"loo, seed {args.seed}",
        "catalogue": args.catalogue,
        "base": args.base,
        "multiscenario": {"epochs": args.epochs, "topology": args.topology},
        "metric": "test ndcg@10 / recall@10 per scenario; mean = plain mean over scenarios",
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="ease", help="model of the reference strategies")
    p.add_argument("--epochs", type=int, default=30, help="most epochs of neural models")
    p.add_argument("--topology", default="mmoe", choices=("mmoe", "star"))
    p.add_argument("--catalogue", default="scenario", choices=("scenario", "all"))
    p.add_argument("--transfer", default=None, help="SOURCE:TARGET, e.g. video_feed:shop")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--seed", type=int, default=42)
    return p


if __name__ == "__main__":
    main()
