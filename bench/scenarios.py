"""Per-scenario NDCG@10 / Recall@10 and fit time of each multi-scenario strategy, one JSON.

    .venv/bin/python bench/scenarios.py                          # sample data, CPU (and GPU)
    .venv/bin/python bench/scenarios.py --base sasrec --epochs 10 --threads 1
    .venv/bin/python bench/scenarios.py --epochs 30 --threads 1 --transfer video_feed:shop

Strategies (core/scenarios/strategies.py): one `--base` model per scenario, one pooled
`--base` model, and the multiscenario model with each of its architectures (`multiscenario`:
MMoE, `multiscenario_ple`: PLE). Protocol: loo split; each scenario's test interactions
ranked against that scenario's items (`--catalogue all`: every item); training and
validation items excluded; the mean is over scenarios. `paired` holds the per-scenario paired
NDCG@10 differences (bootstrap 95% CI, Holm) of PLE against MMoE and of both against pooled.
The multiscenario models run on the CPU and, when CUDA is present, again on the GPU.
`--transfer SOURCE:TARGET` adds, per architecture, the lift over a target-only model for
users new to the target (m = 0, 2).
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
from core.scenarios.paired import paired_by_scenario  # noqa: E402
from core.scenarios.strategies import (  # noqa: E402
    ARCHITECTURES,
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
    runs = [("per_scenario", "cpu"), ("pooled", "cpu")]
    runs += [(name, "cpu") for name in ARCHITECTURES]
    if torch.cuda.is_available():
        runs += [(name, "cuda") for name in ARCHITECTURES]
    out = {"machine": _machine(), "protocol": _protocol(args), "strategies": {}}
    results = {}
    for name, device in runs:
        params = {"device_choice": device}
        if name in ARCHITECTURES:
            params.update(epochs=args.epochs)
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
        res.fit_s = fit_s
        results[key] = res
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
    out["paired"] = [
        _rounded(row)
        for baseline, others in (("multiscenario", ["multiscenario_ple"]), ("pooled", None))
        for row in paired_by_scenario(_cpu(results, baseline, others), baseline).to_dict(
            orient="records"
        )
    ]
    if args.transfer:
        from core.scenarios.transfer import transfer_experiment

        source, target = args.transfer.split(":")
        out["transfer"] = {}
        for name, topology in ARCHITECTURES.items():
            report = transfer_experiment(
                ds,
                source,
                target,
                ms=(0, 2),
                models=("target_only", "multiscenario"),
                multiscenario_params={"epochs": args.epochs, "topology": topology},
                max_users=400,
            )
            out["transfer"][name] = [
                _rounded(r) for r in report["curves"] if r["model"] == "multiscenario"
            ]
    out["load_avg_1m_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(out, indent=2))


def _cpu(results: dict, baseline: str, others: list[str] | None) -> dict:
    """The CPU results of `baseline` and `others` (None: the architectures)."""
    names = [baseline, *(others if others is not None else list(ARCHITECTURES))]
    return {n: results[n] for n in names}


def _rounded(row: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}


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
        "multiscenario": {"epochs": args.epochs, "architectures": ARCHITECTURES},
        "metric": "test ndcg@10 / recall@10 per scenario; mean = plain mean over scenarios",
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="ease", help="model of the reference strategies")
    p.add_argument("--epochs", type=int, default=30, help="most epochs of neural models")
    p.add_argument("--catalogue", default="scenario", choices=("scenario", "all"))
    p.add_argument("--transfer", default=None, help="SOURCE:TARGET, e.g. video_feed:shop")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--seed", type=int, default=42)
    return p


if __name__ == "__main__":
    main()
