"""One process vs two (torchrun, DDP) per model on MovieLens-100k: epoch time, fit, NDCG@10.

    .venv/bin/python bench/distributed.py --path /tmp/ml100k/ml-100k.inter
    .venv/bin/python bench/distributed.py --path u.data --models bpr,sasrec,lightgcn --worlds 1,2
    .venv/bin/python bench/distributed.py --path u.data --device cuda --worlds 1,2,4   # NCCL

Each (model, world size) trains in fresh processes: world 1 is plain Python, world N is
`torchrun --standalone --nproc-per-node N` over this same script (`--worker`). Both run
through the one training loop (core.train) with a fixed number of epochs (patience = epochs,
so no early stop) and the same seed; rank 0 validates and scores the test split (full
ranking, train+valid excluded, as bench/train.py). On the CPU (gloo) the processes share the
machine's cores: world 1 uses every core, each of N ranks one (torchrun's OMP_NUM_THREADS=1),
so the same cores do the work either way; `--threads 1` gives world 1 one thread too (on a
loaded machine two intra-op threads per process can cost more than they bring). Peak RSS of
each rank shows what each rank replicates (LightGCN: the whole graph). Prints one JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from core import device as D  # noqa: E402
from core import distributed  # noqa: E402
from core.data.split import split  # noqa: E402
from core.eval.evaluate import evaluate  # noqa: E402
from core.models import make_model  # noqa: E402

#: per model: its settings for the bench (the rest are the model's defaults)
PARAMS = {
    "bpr": {"dim": 64, "batch_size": 1024, "lr": 0.005},
    "sasrec": {"dim": 64, "max_len": 50, "batch_size": 256, "lr": 0.003},
    "lightgcn": {"dim": 64, "batch_size": 2048, "lr": 0.005},
    "neumf": {"dim": 32, "batch_size": 1024},
}


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.worker:
        _worker(args)
        return
    results = []
    for model in [m for m in args.models.split(",") if m]:
        for world in [int(w) for w in args.worlds.split(",") if w]:
            row = _launch(args, model, world)
            print(f"{model} world {world}: {row}", file=sys.stderr, flush=True)
            results.append(row)
    report = {
        "data": args.path,
        "device": args.device,
        "epochs": args.epochs,
        "seed": args.seed,
        "threads": args.threads or None,
        "cpu_cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "results": results,
    }
    print(json.dumps(report, indent=2))


def _launch(args, model: str, world: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_dist_") as out:
        worker = [str(Path(__file__).resolve()), "--worker", "--out", out, "--model", model]
        worker += ["--path", args.path, "--epochs", str(args.epochs), "--seed", str(args.seed)]
        worker += ["--device", args.device]
        if world == 1:
            command = [sys.executable, *worker]
        else:
            command = distributed.torchrun_command(world, [])[:5] + worker
        env = dict(os.environ)
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        tick = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - tick
        if done.returncode != 0:
            return {"model": model, "world_size": world, "error": done.stderr[-2000:]}
        ranks = sorted(
            (json.loads(p.read_text()) for p in Path(out).glob("rank*.json")),
            key=lambda r: r["rank"],
        )
    lead = ranks[0]
    return {
        "model": model,
        "world_size": world,
        "backend": lead["backend"],
        "epochs_run": lead["epochs_run"],
        "epoch_s": round(lead["train_s"] / lead["epochs_run"], 3),
        "fit_s": round(lead["fit_s"], 2),
        "wall_s": round(wall, 1),  # with process start, data loading and the test scoring
        "test_ndcg@10": round(lead["ndcg@10"], 4),
        "rank_samples_per_s": lead["rank_samples_per_s"],
        "rank_peak_rss_mb": [r["peak_rss_mb"] for r in ranks],
        "rank_threads": [r["threads"] for r in ranks],
    }


def _worker(args) -> None:
    """One process (a rank under torchrun): fit, rank 0 scores the test split; rank<r>.json."""
    here = distributed.world()
    data = _ml100k(args.path)
    parts = split(data, "loo", seed=args.seed)
    params = {**PARAMS.get(args.model, {}), "epochs": args.epochs, "patience": args.epochs}
    model = make_model(args.model, **params, seed=args.seed, device_choice=args.device)
    model.fit(parts.train, parts.valid if here.leader else None)
    result = model.train_result_
    report = {
        "rank": here.rank,
        "backend": result.backend,
        "epochs_run": result.epochs_run,
        "fit_s": result.fit_s,
        "train_s": result.train_s,
        "rank_samples_per_s": result.rank_samples_per_s,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": torch.get_num_threads(),
        "device": str(D.pick_device(args.device)),
    }
    if here.leader:
        test = evaluate(model, parts, part="test", ks=(10,), beyond=False).metrics
        report["ndcg@10"] = float(test["ndcg@10"])
    (Path(args.out) / f"rank{here.rank}.json").write_text(json.dumps(report))
    distributed.leave()


def _ml100k(path: str):
    """MovieLens-100k through bench/train.py's loader (u.data or RecBole's .inter)."""
    spec = importlib.util.spec_from_file_location("bench_train", ROOT / "bench" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._load("ml100k", path)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--path", default="/tmp/ml100k/ml-100k.inter", help="u.data or .inter")
    p.add_argument("--models", default="bpr,sasrec,lightgcn")
    p.add_argument("--worlds", default="1,2", help="world sizes to compare, e.g. 1,2,4")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, a GPU per rank)")
    p.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of every process")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    return p


if __name__ == "__main__":
    main()
