"""RecScope vs RecBole 1.2.1 on MovieLens-100k: NDCG@10, Recall@10 and fit time, one JSON.

Both sides read the same file (RecBole's own `dataset_example/ml-100k/ml-100k.inter`, every
rating a positive interaction), use their default hyperparameters and the same protocol:
full ranking with known items excluded; per-user random 80/10/10 for BPR, LightGCN and
EASE; leave-last-out by time for SASRec. RecBole runs in its own virtual environment as a
subprocess (`bench/recbole_side.py`); RecScope never imports it.

    .venv/bin/python bench/recbole_compare.py --side both --models BPR,LightGCN,EASE,SASRec
    .venv/bin/python bench/recbole_compare.py --side ours --recbole-results /tmp/recscope

`--seeds 2020,1,2` repeats both sides per seed (RecBole's seed; ours splits with it and
seeds the model with it) and adds the means: on ML-100k one seed's NDCG@10 moves by about
±0.004 for BPR, more than the gaps being compared. `--recbole-results DIR` reads finished
`recbole_<Model>.json` files instead of re-running
RecBole (its defaults train for up to 300 epochs). `--same-split DIR` also scores RecScope
on the exact rows of RecBole's random split (dumped by `recbole_side.py --dump-split DIR`;
RecBole draws the same split for BPR, LightGCN and EASE since it seeds before splitting).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.data.dataset import Dataset, Interactions  # noqa: E402
from core.data.split import Split, split  # noqa: E402
from core.eval.evaluate import evaluate  # noqa: E402
from core.models import make_model  # noqa: E402

MODELS = {"BPR": "bpr", "LightGCN": "lightgcn", "EASE": "ease", "SASRec": "sasrec"}
SEQUENTIAL = {"SASRec"}
DEFAULT_VENV_PYTHON = "/tmp/recscope/recbole-venv/bin/python"
SPLIT_SEED = 2020  # RecBole's default seed; the two RNGs still draw different rows


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        sys.exit(f"Unknown model '{unknown[0]}'; use a comma list of {', '.join(MODELS)}.")
    report: dict = {"machine": _machine(), "protocol": _protocol(), "models": {}}
    recbole: dict[tuple[str, int], dict] = {}
    if args.side in ("recbole", "both"):
        for name in models:
            for seed in (int(v) for v in args.seeds.split(",")):
                recbole[name, seed] = _recbole_result(name, args, seed)
    earlier = _earlier_ours(args.ours_results)
    dataset, frame = None, None
    if args.side in ("ours", "both") and not earlier:
        inter = Path(args.inter) if args.inter else _recbole_inter_path(args.recbole_python)
        frame = _read_inter(inter)
        report["data"] = {"file": str(inter), "rows": len(frame)}
        dataset = Dataset.from_frames("ml-100k", frame)
    seeds = [int(v) for v in args.seeds.split(",")]
    for name in models:
        rows = [_row(name, seed, args, recbole, earlier, dataset, frame) for seed in seeds]
        row = rows[0] if len(rows) == 1 else _over_seeds(dict(zip(seeds, rows, strict=True)))
        report["models"][name] = row
        print(f"{name}: {json.dumps(row.get('ratios'))}", file=sys.stderr, flush=True)
    print(json.dumps(report, indent=2))
    return 0


def _row(name: str, seed: int, args, recbole: dict, earlier: dict, dataset, frame) -> dict:
    """One model at one seed: RecBole's result, ours, and their ratios."""
    row: dict = {}
    if (name, seed) in recbole:
        row["recbole"] = recbole[name, seed]
    if args.side in ("ours", "both") and earlier:
        row.update(earlier.get(name, {"ours": {"error": "no earlier RecScope result"}}))
    elif args.side in ("ours", "both"):
        parts = split(dataset, "loo" if name in SEQUENTIAL else "random", seed)
        row["ours"] = _ours(name, parts, seed)
        if args.same_split and name not in SEQUENTIAL:
            exact = _recbole_split(dataset, frame, Path(args.same_split))
            row["ours_on_recbole_split"] = _ours(name, exact, seed)
    row.update(_ratios(row))
    return row


def _over_seeds(rows: dict[int, dict]) -> dict:
    """Each seed's row, and per side the mean of the numbers the ratios use."""
    keys = ("ndcg@10", "recall@10", "fit_s", "fit_cpu_s")
    out: dict = {"seeds": {str(seed): row for seed, row in rows.items()}}
    for side in ("recbole", "ours"):
        found = [row[side] for row in rows.values() if side in row and "error" not in row[side]]
        if len(found) == len(rows):
            out[side] = {
                k: round(float(np.mean([r[k] for r in found if r.get(k) is not None])), 4)
                for k in keys
            }
            out[side]["spread_ndcg@10"] = [
                min(r["ndcg@10"] for r in found),
                max(r["ndcg@10"] for r in found),
            ]
    out.update(_ratios(out))
    return out


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=["ours", "recbole", "both"], default="both")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--recbole-python", default=DEFAULT_VENV_PYTHON)
    parser.add_argument("--recbole-results", default=None, help="folder of recbole_<M>.json")
    parser.add_argument("--recbole-workdir", default="/tmp/recscope/rb_work")
    parser.add_argument(
        "--ours-results",
        default=None,
        help="comma list of earlier JSON documents of this script to take RecScope's rows from",
    )
    parser.add_argument("--inter", default=None, help="ml-100k.inter (default: RecBole's copy)")
    parser.add_argument(
        "--seeds", default=str(SPLIT_SEED), help="comma list: both sides once per seed, and means"
    )
    parser.add_argument(
        "--same-split",
        default=None,
        metavar="DIR",
        help="also score ours on RecBole's exact random split (recbole_side.py --dump-split)",
    )
    return parser.parse_args(argv)


def _ours(name: str, parts: Split, seed: int) -> dict:
    """Fit RecScope's model with its default hyperparameters and score the test part."""
    model = make_model(MODELS[name], seed=seed)  # defaults only: no per-benchmark tuning
    started, cpu_started = time.perf_counter(), time.process_time()
    model.fit(parts.train, parts.valid, progress=lambda e: _log_epoch(name, e))
    fit_s, fit_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    started = time.perf_counter()
    result = evaluate(model, parts, "test", ks=(10,), beyond=False)
    eval_s = time.perf_counter() - started
    out = {
        "ndcg@10": float(result.metrics["ndcg@10"]),
        "recall@10": float(result.metrics["recall@10"]),
        "fit_s": round(fit_s, 3),
        "fit_cpu_s": round(fit_cpu_s, 3),
        "eval_s": round(eval_s, 3),
        "n_test_users": result.n_users,
        "split": parts.method,
        "sizes": [len(parts.train), len(parts.valid), len(parts.test)],
        "params": model.get_params(),
        "device": str(model.device),
        "torch_threads": torch.get_num_threads(),
    }
    trained = getattr(model, "train_result_", None)
    if trained is not None:
        out["epochs_run"] = getattr(trained, "epochs_run", None)
        out["best_epoch"] = getattr(trained, "best_epoch", None)
    return out


def _earlier_ours(paths: str | None) -> dict[str, dict]:
    """RecScope's rows (ours, ours_on_recbole_split) per model from earlier JSON outputs."""
    found: dict[str, dict] = {}
    for path in (paths or "").split(","):
        if path.strip():
            for name, row in json.loads(Path(path.strip()).read_text())["models"].items():
                keep = {k: v for k, v in row.items() if k.startswith("ours")}
                if keep:
                    found[name] = keep
    return found


def _log_epoch(name: str, event) -> None:
    """One stderr line per epoch, so a long background run can be watched."""
    metric = "-" if event.valid_metric is None else f"{event.valid_metric:.4f}"
    loss = "-" if event.loss is None else f"{event.loss:.4f}"
    line = f"{name} epoch {event.epoch}/{event.epochs} loss {loss} valid {metric} "
    print(line + f"elapsed {event.elapsed_s:.0f}s", file=sys.stderr, flush=True)


def _recbole_result(name: str, args, seed: int) -> dict:
    """RecBole's JSON for `name`: read from --recbole-results, else run it in its venv."""
    if args.recbole_results:
        path = Path(args.recbole_results) / f"recbole_{name}.json"
        text = path.read_text().strip() if path.exists() else ""
        if not text:
            return {"error": f"no finished RecBole result at {path}"}
        return _recbole_row(json.loads(text.splitlines()[-1]))
    command = [args.recbole_python, str(ROOT / "bench" / "recbole_side.py"), "--model", name]
    command += ["--workdir", f"{args.recbole_workdir}_{name}", "--seed", str(seed)]
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return _recbole_row(json.loads(done.stdout.strip().splitlines()[-1]))


def _recbole_row(raw: dict) -> dict:
    row = {"ndcg@10": raw["test"]["ndcg@10"], "recall@10": raw["test"]["recall@10"]}
    for key in ("fit_s", "fit_cpu_s", "data_s", "eval_s", "epochs_run", "best_epoch"):
        row[key] = raw.get(key)
    for key in ("stopped_by", "deadline_s", "device", "torch_threads", "config"):
        row[key] = raw.get(key)
    if "test_seen_excluded" in raw:
        row["seen_excluded"] = raw["test_seen_excluded"]
    return row


def _ratios(row: dict) -> dict:
    """ours / RecBole for accuracy (>1 = ours better) and RecBole / ours for fit time.

    `ratios` uses RecScope's own split, `ratios_same_split` RecBole's exact rows.
    """
    out = {}
    for key, ours_key in (("ratios", "ours"), ("ratios_same_split", "ours_on_recbole_split")):
        rb, ours = row.get("recbole"), row.get(ours_key)
        if not rb or not ours or "error" in rb or "error" in ours:
            continue
        base = rb.get("seen_excluded", rb)  # compare like with like: seen items excluded
        out[key] = {
            "ndcg@10": round(ours["ndcg@10"] / base["ndcg@10"], 4),
            "recall@10": round(ours["recall@10"] / base["recall@10"], 4),
            "fit_speedup": round(rb["fit_s"] / ours["fit_s"], 2),
            "fit_cpu_speedup": (
                round(rb["fit_cpu_s"] / ours["fit_cpu_s"], 2) if rb.get("fit_cpu_s") else None
            ),
            "recbole_reference": "seen_excluded" if "seen_excluded" in rb else "test",
        }
    return out


def _recbole_split(dataset: Dataset, frame: pd.DataFrame, folder: Path) -> Split:
    """RecBole's exact train/valid/test rows as a RecScope `Split` (same codes as `dataset`)."""
    stamps = frame.set_index(["user_id", "item_id"])["timestamp"]
    parts = []
    for name in ("train", "valid", "test"):
        rows = pd.read_csv(folder / f"{name}.csv", dtype=str)
        codes = pd.DataFrame(
            {
                "user_code": dataset.user_codes(rows["user_id"]).astype(np.int32),
                "item_code": dataset.item_codes(rows["item_id"]).astype(np.int32),
                "timestamp": stamps.loc[list(zip(rows["user_id"], rows["item_id"], strict=True))]
                .to_numpy()
                .astype(np.int64),
            }
        )
        parts.append(Interactions(codes, dataset.n_users, dataset.n_items, dataset))
    return Split("recbole-rs", SPLIT_SEED, *parts)


def _read_inter(path: Path) -> pd.DataFrame:
    """RecBole atomic file -> canonical user_id, item_id, rating, timestamp (ids as strings)."""
    raw = pd.read_csv(path, sep="\t", dtype=str)
    raw.columns = [c.split(":")[0] for c in raw.columns]
    return pd.DataFrame(
        {
            "user_id": raw["user_id"].astype(str),
            "item_id": raw["item_id"].astype(str),
            "rating": raw["rating"].astype(np.float32),
            "timestamp": raw["timestamp"].astype(float).astype(np.int64),
        }
    )


def _recbole_inter_path(python: str) -> Path:
    code = "import os, recbole; print(os.path.dirname(recbole.__file__))"
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
    where = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env)
    if where.returncode != 0:
        sys.exit(f"Cannot find RecBole with {python}; pass --inter PATH to ml-100k.inter.")
    return Path(where.stdout.strip()) / "dataset_example" / "ml-100k" / "ml-100k.inter"


def _machine() -> dict:
    return {
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "git_head": _git_head(),
        "source_sha1": _source_hashes(),  # model code is edited by others while this runs
    }


def _git_head() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True)
    return done.stdout.decode().strip()


def _source_hashes() -> dict[str, str]:
    files = ["core/train.py", "core/evaluate.py", "core/split.py", "core/models/_neural.py"]
    files += [f"core/models/{m}.py" for m in MODELS.values()]
    return {
        f: hashlib.sha1((ROOT / f).read_bytes()).hexdigest()[:10]
        for f in files
        if (ROOT / f).exists()
    }


def _protocol() -> dict:
    return {
        "data": "RecBole wheel dataset_example/ml-100k/ml-100k.inter; every rating positive",
        "general": "per-user random 80/10/10 (RecBole RS [0.8,0.1,0.1], RO, group_by user)",
        "sequential": "leave-last-out by time (RecBole LS valid_and_test, TO)",
        "ranking": "full; train items excluded on valid, train+valid on test",
        "metrics": "test NDCG@10, Recall@10; fit_s = training wall time incl. validation",
    }


if __name__ == "__main__":
    sys.exit(main())
