"""Benchmark the "what if" editor: milliseconds per list update for a 50-item history.

Each model is trained on the shipped sample data (neural models for `--epochs` epochs, with
their default sizes: the update's cost depends on the network, not on how long it trained).
For `--users` users with at least `--history` known items, the history is cut to its last
`--history` items and one new item is added as the newest; a list update is what the User
explorer does per run on every edit: `core.explain.whatif.what_if` (the model's
`score_histories` fold-in of the edited and the recorded history over the whole catalogue,
then the one ranking routine, k=10). Each update is timed `--repeats` times after one warm-up
call. Prints one JSON document on stdout; progress goes to stderr.

    .venv/bin/python bench/whatif.py [--models sasrec bert4rec gru4rec] [--users 20] [--threads 1]
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
from core.explain.whatif import HistoryEdit, known_history, what_if
from core.models import available, make_model, model_class

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
DEFAULT_MODELS = ("sasrec", "bert4rec", "gru4rec", "ease", "bpr")
BUDGET_MS = 300.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--users", type=int, default=20, help="users timed per model")
    parser.add_argument("--history", type=int, default=50, help="items in the edited history")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per user")
    parser.add_argument("--epochs", type=int, default=1, help="epochs for neural models")
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch threads while timing (default: torch's own); on a shared, loaded CPU 1 "
        "thread avoids the pool's spin-waits (measured: ~3 ms of CPU per SASRec update "
        "with 1 thread against ~85 ms with 2 at load 12)",
    )  # fmt: skip
    args = parser.parse_args()
    load_before = os.getloadavg()
    ds = Dataset.from_frames(
        "sample",
        pd.read_csv(SAMPLE / "interactions.csv"),
        pd.read_csv(SAMPLE / "items.csv"),
        pd.read_csv(SAMPLE / "users.csv"),
    )
    data = split(ds, "loo", seed=42)
    known = data.known_for("test")
    counts = np.bincount(known.users, minlength=ds.n_users)
    users = np.flatnonzero(counts >= args.history)[: args.users]
    rows = []
    for name in args.models:
        if name not in available():
            print(f"{name}: not in this build, skipped", file=sys.stderr)
            continue
        params = {"epochs": args.epochs} if model_class(name).trains_with_loop else {}
        started = time.perf_counter()
        model = make_model(name, **params).fit(data.train, data.valid)
        model.set_history(known)
        fit_s = time.perf_counter() - started
        threads = torch.get_num_threads()
        if args.threads:
            torch.set_num_threads(args.threads)
        times = []
        for user in users:
            history = known_history(known, int(user))[-args.history :]
            new = int(np.setdiff1d(np.arange(ds.n_items), history)[int(user) % 100])
            edit = HistoryEdit(added=(new,))
            what_if(model, int(user), history, edit, 10, seed=42)  # warm-up
            for _ in range(args.repeats):
                t = time.perf_counter()
                what_if(model, int(user), history, edit, 10, seed=42)
                times.append((time.perf_counter() - t) * 1000)
        torch.set_num_threads(threads)
        ms = np.asarray(times)
        row = {
            "model": name,
            "fit_s": round(fit_s, 1),
            "updates": len(ms),
            "median_ms": round(float(np.median(ms)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "max_ms": round(float(ms.max()), 1),
            "under_budget": bool(np.percentile(ms, 95) < BUDGET_MS),
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    print(
        json.dumps(
            {
                "bench": "whatif",
                "history_items": args.history,
                "n_items": ds.n_items,
                "users": len(users),
                "budget_ms": BUDGET_MS,
                "device": "cpu",
                "torch_threads": args.threads or torch.get_num_threads(),
                "cpu": platform.processor() or platform.machine(),
                "load_average_start": [round(x, 2) for x in load_before],
                "load_average_end": [round(x, 2) for x in os.getloadavg()],
                "models": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
