"""How long each registered model takes to train with its defaults: one JSON document.

    .venv/bin/python bench/model_times.py --threads 1                  # the sample data, loo
    .venv/bin/python bench/model_times.py --dataset ml100k --path /tmp/rb/ml-100k.inter \
        --models pop,itemknn,ease,bpr --threads 1 --out /tmp/times_ml100k.json

Every model in the registry (`core.models.available()`, or `--models`) is trained with its
default parameters on the loo split and evaluated on the test split, one after the other in
this process, through bench/train.py's `_run` (the same fit and full-ranking evaluation as
the rest of the benchmarks). Per model it reports fit and evaluation seconds, epochs run,
test NDCG@10 and the 1-minute load average before and after, because on a shared machine
the load says how far a time is from a quiet run: a time measured under load is an upper
bound. The README's table of training times comes from this script. `--out` is rewritten
after every model, so a run cut short keeps what it measured; a model that fails is listed
under "failed" with its one-line reason and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from train import _load, _run  # noqa: E402  (bench/train.py: one fit-and-evaluate routine)

from core import device as D  # noqa: E402
from core.data.split import split  # noqa: E402
from core.models import available  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = _load(args.dataset, args.path)
    parts = split(data, "loo", seed=args.seed)
    device = D.pick_device(args.device)
    present = available()
    wanted = [m for m in args.models.split(",") if m] if args.models else present
    report = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "device": D.describe(device),
            "torch_threads": torch.get_num_threads(),
        },
        "dataset": {
            "name": args.dataset,
            "users": data.n_users,
            "items": data.n_items,
            "interactions": len(data.interactions),
            "split": "loo",
        },
        "models": {},
        "skipped": [m for m in wanted if m not in present],
        "failed": {},
    }
    for name in (m for m in wanted if m in present):
        before = _load_average()
        start, cpu = time.perf_counter(), time.process_time()
        try:
            result = _run(name, parts, device, args, {})
        except Exception as exc:  # one broken model must not lose the others' numbers
            report["failed"][name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            result = None
        if result is not None:
            report["models"][name] = {
                "fit_s": result["fit_s"],
                "eval_s": result["eval_s"],
                "epochs": result["epochs_run"],
                "best_epoch": result["best_epoch"],
                "ndcg@10": result["ndcg@10"],
                "load_before": before,
                "load_after": _load_average(),
                "wall_s": round(time.perf_counter() - start, 1),
                # CPU seconds of this process (fit + eval): with one torch thread about the
                # wall time a quiet machine would show, and much less inflated by load
                "cpu_s": round(time.process_time() - cpu, 1),
            }
        print(f"{name}: {report['models'].get(name) or report['failed'][name]}", file=sys.stderr)
        _write(report, args.out)
    print(_write(report, args.out))


def _load_average() -> float:
    """The 1-minute load average (how many processes wanted a core, on average)."""
    return round(os.getloadavg()[0], 2)


def _write(report: dict, out: str | None) -> str:
    text = json.dumps(report, indent=2)
    if out:
        Path(out).write_text(text + "\n")
    return text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=("sample", "ml100k"), default="sample")
    p.add_argument("--path", help="sample_data folder, or the ml100k u.data / .inter file")
    p.add_argument("--models", default="", help="comma-separated (default: every registered)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    p.add_argument("--out", help="also write the JSON document to this file")
    return p


if __name__ == "__main__":
    main()
