"""Tuning under a budget (issue 12): trials per minute, share pruned, best vs defaults; one JSON.

    .venv/bin/python bench/tune.py --path /tmp/ml100k/ml-100k.inter --budget 10m
    .venv/bin/python bench/tune.py --cases sasrec:sample:loo --budget 30s --epochs 5   # smoke
    .venv/bin/python bench/tune.py --path … --budget 10m --device cuda                # a GPU

Cases (--cases MODEL:DATA:SPLIT,…; default below): bpr and lightgcn on MovieLens-100k with
the random split, sasrec on the shipped sample data with leave-last-out (a sequence model
predicts each user's next item; a random split would hide the order). Split seed 2020.

Each case runs, in a fresh workspace (--home, default a temporary folder):
1. the defaults as an ordinary run (core.runs.pipeline: new_run + train_run), the way
   `recscope train` does — valid and test NDCG@10, fit time;
2. a study through the real job body (core.runs.tuning.new_tune + run_tune under
   core.runs.jobs.run_job, i.e. the device lock) with the budget, then the best parameters
   trained as a run by the job itself — trials per minute, share pruned, best valid NDCG@10
   (the study's) and that run's test NDCG@10.
Trials are selected on validation only; test is scored once per run. `--path` takes RecBole's
`ml-100k.inter` or MovieLens' `u.data`; every rating counts as an interaction.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.train import _load  # noqa: E402
from core import device as D  # noqa: E402
from core.cli.parser import budget_seconds  # noqa: E402
from core.runs import tuning  # noqa: E402
from core.runs.jobs import run_job  # noqa: E402
from core.runs.pipeline import new_run, train_run  # noqa: E402
from core.runs.store import RunStore  # noqa: E402

CASES = "bpr:ml100k:random,lightgcn:ml100k:random,sasrec:sample:loo"


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    home = Path(args.home or tempfile.mkdtemp(prefix="recscope-tune-bench-"))
    store = RunStore(home)
    saved: set[str] = set()
    results = []
    for case in (c for c in args.cases.split(",") if c):
        model, data, split_method = case.split(":")
        if data not in saved:
            _load(data, args.path if data == "ml100k" else None).save(home)
            saved.add(data)
        results.append(_case(store, model, data, split_method, args))
        print(f"{case}: {results[-1]}", file=sys.stderr, flush=True)  # progress on stderr
    report = {
        "device": D.describe(D.pick_device(args.device)),
        "torch_threads": torch.get_num_threads(),
        "budget_s": args.budget,
        "n_trials": args.trials,
        "epochs": args.epochs,
        "seed": args.seed,
        "workspace": str(home),
        "cases": results,
    }
    print(json.dumps(report, indent=2))


def _case(store: RunStore, model: str, data: str, split_method: str, args) -> dict:
    common = {"split_method": split_method, "seed": args.seed, "device": args.device}
    tick = time.perf_counter()
    default_id = new_run(store, data, model, epochs=args.epochs, **common)
    default = train_run(store, default_id)
    default_s = time.perf_counter() - tick

    job = tuning.new_tune(
        store, data, model, budget_s=args.budget, n_trials=args.trials, epochs=args.epochs, **common
    )
    record = run_job(store, job, "tune", lambda stage: tuning.run_tune(store, job, stage))
    if record["status"] != "finished":
        return {"model": model, "dataset": data, "status": record["status"], **_error(record)}
    result = store.result(job)
    best_run = store.read(result["run_id"])
    minutes = result["budget"]["elapsed_s"] / 60
    ran = result["budget"]["trials_run"]
    return {
        "model": model,
        "dataset": data,
        "split": split_method,
        "study": job,
        "trials": ran,
        "trials_per_minute": round(ran / minutes, 2) if minutes > 0 else None,
        "pruned": result["n_pruned"],
        "failed": result["n_failed"],
        "share_pruned": round(result["n_pruned"] / ran, 3) if ran else None,
        "stopped_by": result["budget"]["stopped_by"],
        "search_s": result["budget"]["elapsed_s"],
        "job_total_s": (record.get("timings") or {}).get("total_s"),
        "best_trial": result["best"]["trial"],
        "best_params": result["best"]["params"],
        "valid_ndcg@10": {
            "defaults": _ndcg(default, "valid"),
            "defaults_trial": result["default"]["valid_ndcg@10"],
            "tuned": result["best"]["valid_ndcg@10"],
        },
        "test_ndcg@10": {"defaults": _ndcg(default, "test"), "tuned": _ndcg(best_run, "test")},
        "defaults_run_s": round(default_s, 2),
        "unexplored": result["unexplored"],
    }


def _ndcg(record: dict, part: str) -> float | None:
    value = (record.get("metrics") or {}).get(part, {}).get("ndcg@10")
    return None if value is None else round(float(value), 4)


def _error(record: dict) -> dict:
    return {"error": record.get("error")} if record.get("error") else {}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default=CASES, help="MODEL:DATA:SPLIT,… (DATA: ml100k | sample)")
    p.add_argument("--path", help="the ml100k file: RecBole's ml-100k.inter or u.data")
    p.add_argument("--budget", type=budget_seconds, default=600.0, help="per case: 600s, 10m")
    p.add_argument("--trials", type=int, default=None, help="also stop after this many trials")
    p.add_argument("--epochs", type=int, default=None, help="most epochs per run (default: model)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=2020, help="split and model seed")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--home", help="workspace folder (default: a new temporary one)")
    return p


if __name__ == "__main__":
    main()
