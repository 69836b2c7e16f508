"""Fit time, epochs, throughput, peak GPU memory and test NDCG/Recall@10 per model, one JSON.

    .venv/bin/python bench/train.py                       # the sample data, loo split
    .venv/bin/python bench/train.py --dataset ml100k --path ~/ml-100k/u.data
    .venv/bin/python bench/train.py --models bpr,sasrec --device cuda --param sasrec:epochs=20

`--path` for ml100k takes MovieLens' tab-separated `u.data` (user, item, rating, time) or
RecBole's `ml-100k.inter`; every rating counts as an interaction. Protocol: full ranking,
known items excluded (train for valid, train+valid for test), early stopping on valid
NDCG@10. Models that are not in this build are skipped and listed under "skipped".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import device as D  # noqa: E402
from core.data.dataset import Dataset  # noqa: E402
from core.data.split import split  # noqa: E402
from core.eval.evaluate import evaluate  # noqa: E402
from core.models import available, make_model, model_class  # noqa: E402

MODELS = ("pop", "itemknn", "ease", "bpr", "neumf", "lightgcn", "sasrec")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = _load(args.dataset, args.path)
    parts = split(data, args.split, seed=args.seed)
    device = D.pick_device(args.device)
    overrides = _overrides(args.param)
    wanted = [m for m in args.models.split(",") if m]
    present = set(available())
    results, skipped = {}, [m for m in wanted if m not in present]
    for name in (m for m in wanted if m in present):
        results[name] = _run(name, parts, device, args, overrides.get(name, {}))
        print(f"{name}: {results[name]}", file=sys.stderr, flush=True)  # progress on stderr
    report = {
        "dataset": {
            "name": args.dataset,
            "users": data.n_users,
            "items": data.n_items,
            "interactions": len(data.interactions),
            "split": args.split,
        },
        "device": D.describe(device),
        "torch_threads": torch.get_num_threads(),
        "models": results,
        "skipped": skipped,
    }
    print(json.dumps(report, indent=2))


def _run(name: str, parts, device: torch.device, args, extra: dict) -> dict:
    cls = model_class(name)
    params = dict(extra)
    if cls.trains_with_loop:
        params.setdefault("device_choice", device.type)
        params.setdefault("seed", args.seed)
    model = make_model(name, **params)
    D.reset_peak_memory(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    model.fit(parts.train, parts.valid)
    if device.type == "cuda":
        torch.cuda.synchronize()
    fit_s = time.perf_counter() - start
    peak = D.peak_memory_mb(device) if cls.trains_with_loop else None
    result = getattr(model, "train_result_", None)
    tick = time.perf_counter()
    metrics = evaluate(model, parts, part="test", ks=(10,), beyond=False).metrics
    return {
        "fit_s": round(fit_s, 2),
        "eval_s": round(time.perf_counter() - tick, 2),
        "epochs_run": result.epochs_run if result else None,
        "best_epoch": result.best_epoch if result else None,
        "samples_per_s": round(result.samples_per_s) if result and result.samples_per_s else None,
        "peak_gpu_mb": round(peak, 1) if peak is not None else None,
        "ndcg@10": round(float(metrics["ndcg@10"]), 4),
        "recall@10": round(float(metrics["recall@10"]), 4),
        "device": device.type if cls.trains_with_loop else "cpu",
        "params": {k: v for k, v in model.get_params().items() if k in extra},
    }


def _load(name: str, path: str | None) -> Dataset:
    if name == "sample":
        folder = Path(path) if path else ROOT / "sample_data"
        return Dataset.from_frames(
            "sample",
            pd.read_csv(folder / "interactions.csv"),
            pd.read_csv(folder / "items.csv"),
            pd.read_csv(folder / "users.csv"),
        )
    if not path:
        raise SystemExit("--dataset ml100k needs --path to u.data or ml-100k.inter")
    first = Path(path).read_text().split("\n", 1)[0]
    if ":token" in first:  # RecBole atomic file with a typed header
        frame = pd.read_csv(path, sep="\t")
        frame.columns = [c.split(":")[0] for c in frame.columns]
    else:
        names = ["user_id", "item_id", "rating", "timestamp"]
        frame = pd.read_csv(path, sep="\t", names=names)
    frame = frame[["user_id", "item_id", "timestamp"]].astype({"timestamp": "int64"})
    return Dataset.from_frames("ml100k", frame)


def _overrides(pairs: list[str]) -> dict[str, dict]:
    """'model:key=value' -> {model: {key: value}}; values parsed as JSON when they parse."""
    out: dict[str, dict] = {}
    for pair in pairs:
        model, _, assignment = pair.partition(":")
        key, _, raw = assignment.partition("=")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(model, {})[key] = value
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=("sample", "ml100k"), default="sample")
    p.add_argument("--path", help="sample_data folder, or the ml100k u.data / .inter file")
    p.add_argument("--split", choices=("loo", "temporal", "random"), default="loo")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--param", action="append", default=[], help="model:key=value, repeatable")
    return p


if __name__ == "__main__":
    main()
