"""The sequence models on MovieLens-100k (issue 14): bert4rec, gru4rec and sasrec, one JSON.

Leave-last-out by time (the setup of `bench/recbole_compare.py` for SASRec: RecBole's
`ml-100k.inter`, every rating a positive, split seed 2020), full ranking, each model with its
defaults. Two conventions per model:

- `seen_excluded`: RecScope's protocol — the user's train and validation items are left out
  of the ranking (the evaluator's numbers);
- `seen_not_excluded`: every item is ranked, as RecBole reports its sequential models;
  compare these with RecBole 1.2.1's published ML-100k numbers (REPORTED below; RecBole is
  not installed here, so it is not re-run).

    .venv/bin/python bench/sequence.py --inter /tmp/ml100k/ml-100k.inter > /tmp/seq.json
    .venv/bin/python bench/sequence.py --models gru4rec --param gru4rec.lr=1e-3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.recbole_compare import SPLIT_SEED, _read_inter  # noqa: E402
from core.data.dataset import Dataset  # noqa: E402
from core.data.split import Split, split  # noqa: E402
from core.eval.evaluate import evaluate  # noqa: E402
from core.models import make_model  # noqa: E402

MODELS = ("bert4rec", "gru4rec", "sasrec")
#: RecBole 1.2.1 on ML-100k, leave-last-out, full ranking, seen items not excluded
REPORTED = {
    "bert4rec": {"ndcg@10": 0.0598, "hit@10": 0.1198},
    "gru4rec": {"ndcg@10": 0.0557, "hit@10": 0.1145},
}


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    frame = _read_inter(Path(args.inter))
    dataset = Dataset.from_frames("ml-100k", frame)
    parts = split(dataset, "loo", SPLIT_SEED)
    params = _params(args.param)
    report: dict = {
        "data": {"file": args.inter, "rows": len(frame), "sizes": _sizes(parts)},
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        },
        "models": {},
    }
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        row = _run(name, parts, params.get(name, {}))
        if name in REPORTED:
            row["recbole_reported"] = REPORTED[name]
        report["models"][name] = row
        print(f"{name}: {json.dumps(_short(row))}", file=sys.stderr, flush=True)
    report["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2))
    return 0


def _run(name: str, parts: Split, params: dict) -> dict:
    model = make_model(name, **params)
    started = time.perf_counter()
    model.fit(parts.train, parts.valid, progress=lambda e: _log_epoch(name, e))
    fit_s = time.perf_counter() - started
    result = evaluate(model, parts, "test", ks=(10,), beyond=False)  # sets the test history
    users = result.per_user["user_code"].to_numpy()
    return {
        "seen_excluded": {
            "ndcg@10": round(float(result.metrics["ndcg@10"]), 4),
            "hit@10": round(float(result.metrics["hit@10"]), 4),
        },
        "seen_not_excluded": _not_excluded(model, parts, users),
        "fit_s": round(fit_s, 1),
        "epochs_run": model.train_result_.epochs_run,
        "best_epoch": model.train_result_.best_epoch,
        "n_test_users": int(len(users)),
        "params": model.get_params(),
    }


def _not_excluded(model, parts: Split, users: np.ndarray) -> dict:
    """NDCG@10 and Hit@10 with every item ranked (one held-out item per user)."""
    truth = parts.test.csr()[users]  # (U, I), one item per user
    target = truth.indices[truth.indptr[:-1]]  # (U,)
    top, _ = model.recommend(users, 10, exclude_seen=False, seed=parts.seed)  # (U, 10)
    hit = top == target[:, None]
    rank = np.where(hit.any(1), hit.argmax(1), -1)
    gain = np.where(rank >= 0, 1.0 / np.log2(np.maximum(rank, 0) + 2.0), 0.0)
    return {"ndcg@10": round(float(gain.mean()), 4), "hit@10": round(float((rank >= 0).mean()), 4)}


def _params(pairs: list[str]) -> dict[str, dict]:
    """--param model.key=value (JSON values; plain strings otherwise)."""
    out: dict[str, dict] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        model, _, name = key.partition(".")
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        out.setdefault(model, {})[name] = parsed
    return out


def _sizes(parts: Split) -> list[int]:
    return [len(parts.train), len(parts.valid), len(parts.test)]


def _short(row: dict) -> dict:
    keep = ("seen_excluded", "seen_not_excluded", "fit_s", "epochs_run", "best_epoch")
    return {k: row[k] for k in keep}


def _log_epoch(name: str, event) -> None:
    metric = "-" if event.valid_metric is None else f"{event.valid_metric:.4f}"
    print(
        f"{name} epoch {event.epoch} loss {event.loss:.4f} valid {metric} "
        f"elapsed {event.elapsed_s:.0f}s",
        file=sys.stderr,
        flush=True,
    )


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inter", default="/tmp/ml100k/ml-100k.inter")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--param", action="append", default=[], help="model.key=value")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
