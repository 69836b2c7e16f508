"""Helpers shared by several test modules (test modules never import each other)."""

from __future__ import annotations

import base64
import fcntl

import numpy as np
import pandas as pd

from core.data import schema as S
from core.data.dataset import Dataset
from core.runs.store import RunStore
from core.storage import write_parquet


def fake_run(store: RunStore, model: str, metrics: dict, lists: dict, **record) -> str:
    """A finished run with the given test metrics and top lists {user_code: [items]}."""
    run_id = store.new_run({"dataset": "toy", "model": model, "split": "loo", "seed": 42, **record})
    store.update(run_id, status="finished", metrics={"test": metrics}, timings={"fit_s": 1.0})
    folder = store.folder(run_id)
    rows = [
        (u, r + 1, item, 1.0 / (r + 1))
        for u, items in lists.items()
        for r, item in enumerate(items)
    ]
    recs = pd.DataFrame(rows, columns=["user_code", "rank", "item_code", "score"])
    write_parquet(folder / "recs.parquet", recs)
    users = sorted(lists)
    per_user = pd.DataFrame(
        {
            "user_id": [f"u{u}" for u in users],
            "user_code": users,
            "n_truth": 1,
            "ndcg@10": [metrics["ndcg@10"]] * len(users),
        }
    )
    write_parquet(folder / "per_user.parquet", per_user)
    seg = pd.DataFrame(
        {
            "segment_kind": ["all", "activity", "activity"],
            "segment": ["all users", "1-5", "6-10"],
            "n_users": [len(users), 1, len(users) - 1],
            "ndcg@10": [metrics["ndcg@10"], metrics["ndcg@10"] / 2, metrics["ndcg@10"]],
        }
    )
    write_parquet(folder / "segments.parquet", seg)
    return run_id


class hold_cpu:
    """Hold the cpu device lock as another job would (closed_form: the lane of closed-form
    training, core.runs.queue, which does not wait for the other one)."""

    def __init__(self, store: RunStore, closed_form: bool = False) -> None:
        (store.home / "locks").mkdir(exist_ok=True)
        name = "cpu.closed-form.lock" if closed_form else "cpu.lock"
        self.path = store.home / "locks" / name

    def __enter__(self):
        self.handle = open(self.path, "w")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.handle.close()


def plotly_values(array) -> list:
    """Plotly writes numpy arrays as {'dtype', 'bdata'} (base64); plain lists stay lists."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def mirror_scenarios(n_users: int = 60) -> Dataset:
    """Two scenarios with the same two tastes: users 0-29 like A-items in both, others B; items
    of taste A are category "alpha", B "beta" (the transfer and scenario-job tests' data)."""
    rng = np.random.default_rng(5)
    rows = []
    for u in range(n_users):
        taste = "A" if u < n_users // 2 else "B"
        t = 0
        for scen in ("feed", "shop"):
            for j in rng.choice(8, size=7, replace=False):
                rows.append((f"u{u}", f"{scen}{taste}{j}", u * 100 + t, scen))
                t += 1
    items = pd.DataFrame({S.ITEM_ID: sorted({r[1] for r in rows})})
    items[S.CATEGORY] = np.where(items[S.ITEM_ID].str.contains("A"), "alpha", "beta")
    frame = pd.DataFrame(rows, columns=[S.USER_ID, S.ITEM_ID, S.TIMESTAMP, S.SCENARIO])
    return Dataset.from_frames("mirror", frame, items)
