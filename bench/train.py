"""Fit time, epochs, throughput, peak GPU memory and test NDCG/Recall@10 per model, one JSON.

    .venv/bin/python bench/train.py                       # the sample data, loo split
    .venv/bin/python bench/train.py --dataset ml100k --path ~/ml-100k/u.data
    .venv/bin/python bench/train.py --models bpr,sasrec --device cuda --param sasrec:epochs=20
    .venv/bin/python bench/train.py --models sasrec --profile sasrec   # what bounds a step

`--profile M` trains model M for one more epoch (no validation) under torch.profiler and
reports what limits it: wall time of the epoch against the time spent in torch ops on the
host and in kernels on the GPU, kernels per step and their mean length, and the top ops.
A GPU whose kernels fill a small share of the wall time waits on the host (Python, the
loop, kernel launches), not on arithmetic. Models that fail (e.g. a missing package) are
listed under "failed" with the one-line reason, and the others still run.

`--path` for ml100k takes MovieLens' tab-separated `u.data` (user, item, rating, time) or
RecBole's `ml-100k.inter`; every rating counts as an interaction. Protocol: full ranking,
known items excluded (train for valid, train+valid for test), early stopping on valid
NDCG@10. Models that are not in this build are skipped and listed under "skipped".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
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

MODELS = ("pop", "itemknn", "ease", "bpr", "neumf", "lightgcn", "sasrec", "bert4rec", "gru4rec")


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
    results, skipped, failed, profiles = {}, [m for m in wanted if m not in present], {}, {}
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
        "failed": failed,
        "profiles": profiles,
    }
    # profiles first (one epoch each), and --out rewritten after every step: a run cut short
    # by a time limit keeps what it measured
    for name in (m for m in args.profile.split(",") if m):
        profiles[name] = _profile(name, parts, device, args, overrides.get(name, {}))
        print(f"profile {name}: {profiles[name]}", file=sys.stderr, flush=True)
        _write(report, args.out)
    for name in (m for m in wanted if m in present):
        try:
            results[name] = _run(name, parts, device, args, overrides.get(name, {}))
        except Exception as exc:  # one broken model must not lose the others' numbers
            failed[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        print(f"{name}: {results.get(name) or failed[name]}", file=sys.stderr, flush=True)
        _write(report, args.out)
    print(_write(report, args.out))


def _write(report: dict, out: str | None) -> str:
    """The report as JSON (with the load average now), also written to `out` when given."""
    report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(report, indent=2)
    if out:
        Path(out).write_text(text + "\n")
    return text


def _run(name: str, parts, device: torch.device, args, extra: dict) -> dict:
    cls = model_class(name)
    params = dict(extra)
    if cls.trains_with_loop:
        params.setdefault("device_choice", device.type)
        params.setdefault("seed", args.seed)
    model = make_model(name, **params)
    D.reset_peak_memory(device)
    _sync(device)
    start = time.perf_counter()
    model.fit(parts.train, parts.valid)
    _sync(device)
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
        "peak_rss_mb_so_far": _peak_rss_mb(),  # the process's high-water mark (CPU memory)
        "ndcg@10": round(float(metrics["ndcg@10"]), 4),
        "recall@10": round(float(metrics["recall@10"]), 4),
        "device": device.type if cls.trains_with_loop else "cpu",
        "params": {k: v for k, v in model.get_params().items() if k in extra},
    }


def _profile(name: str, parts, device: torch.device, args, extra: dict) -> dict:
    """One epoch of `name` (no validation) under torch.profiler: where the step's time goes.

    host_ops_share: time in top-level torch ops on the host / wall time of the epoch (the
    rest is Python and the loop); kernel_share: time in GPU kernels / wall time (CUDA only;
    far below 1 means the GPU waits on the host). Steps are samples / batch_size.
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    if not model_class(name).trains_with_loop:
        return {"error": f"{name} does not train with the loop; nothing to profile"}
    params = {**extra, "epochs": 1, "device_choice": device.type, "seed": args.seed}
    model = make_model(name, **params)
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    _sync(device)
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        model.fit(parts.train)
        _sync(device)
    wall = time.perf_counter() - start
    result = model.train_result_
    samples = (result.samples_per_s or 0.0) * result.train_s
    steps = max(1, math.ceil(samples / model.get_params()["batch_size"]))
    events = prof.events()
    host = [e for e in events if e.device_type == DeviceType.CPU and e.cpu_parent is None]
    kernels = [e for e in events if e.device_type == DeviceType.CUDA]
    host_s = sum(e.cpu_time_total for e in host) / 1e6
    kernel_s = sum(e.time_range.elapsed_us() for e in kernels) / 1e6
    table = prof.key_averages()
    top_host = sorted(table, key=lambda e: e.self_cpu_time_total, reverse=True)[:6]
    out = {
        "wall_s": round(wall, 3),
        "train_s": round(result.train_s, 3),
        "steps": steps,
        "batch_size": model.get_params()["batch_size"],
        "ms_per_step": round(1e3 * result.train_s / steps, 3),
        "host_ops_share": round(host_s / wall, 3) if wall else None,
        "top_host_ops_ms": {e.key: round(e.self_cpu_time_total / 1e3, 1) for e in top_host},
    }
    if kernels:
        top_gpu = sorted(table, key=lambda e: e.self_device_time_total, reverse=True)[:6]
        out.update(
            kernel_share=round(kernel_s / wall, 3),
            kernels=len(kernels),
            kernels_per_step=round(len(kernels) / steps, 1),
            mean_kernel_us=round(1e6 * kernel_s / len(kernels), 1),
            top_kernels_ms={e.key: round(e.self_device_time_total / 1e3, 1) for e in top_gpu},
        )
    out["limit"] = _limit(out)
    return out


def _limit(p: dict) -> str:
    """One sentence on what bounds the step, from the profile's numbers."""
    if "kernel_share" in p:
        if p["kernel_share"] < 0.5:
            return (
                f"host-bound: GPU kernels fill {p['kernel_share']:.0%} of the epoch "
                f"({p['kernels_per_step']:.0f} kernels a step, {p['mean_kernel_us']:.0f} us "
                "each on average); Python, the loop and kernel launches set the pace, so a "
                "larger batch_size (or fewer, fused kernels) would use the GPU better"
            )
        return (
            f"GPU-bound: kernels fill {p['kernel_share']:.0%} of the epoch; the top kernels "
            "are where time goes"
        )
    top = next(iter(p["top_host_ops_ms"]), "?")
    return (
        f"CPU: torch ops take {p['host_ops_share']:.0%} of the epoch (the rest is Python and "
        f"the loop); the largest op is {top}"
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


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
    p.add_argument("--profile", default="", help="models to profile for one epoch, e.g. sasrec")
    p.add_argument("--out", help="also write the JSON document to this file")
    return p


if __name__ == "__main__":
    main()
