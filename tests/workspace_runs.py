"""A small workspace with real finished runs for the Compare and User page tests.

`build(folder)` writes a slice of the shipped sample data (titles, categories, scenarios,
user attributes) and trains pop and EASE on it through the real pipeline, once per test
module; `copy_into(source, home)` gives each test its own copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from core.data.dataset import Dataset
from core.runs.pipeline import new_run, train_run
from core.runs.store import RunStore

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
N_USERS = 250


def small_sample(name: str = "sample") -> Dataset:
    """The first N_USERS users of the sample data with the items they touched."""
    inter = pd.read_csv(SAMPLE / "interactions.csv")
    users = pd.read_csv(SAMPLE / "users.csv")
    keep = users["user_id"].head(N_USERS)
    inter = inter[inter["user_id"].isin(keep)]
    items = pd.read_csv(SAMPLE / "items.csv")
    items = items[items["item_id"].isin(inter["item_id"])]
    return Dataset.from_frames(name, inter, items, users[users["user_id"].isin(keep)])


def build(folder: Path, models=("pop", "ease"), split_method: str = "loo") -> dict[str, str]:
    """Save the small sample into `folder` and train `models`; returns {model: run_id}."""
    small_sample().save(folder)
    store = RunStore(folder)
    runs = {}
    for model in models:
        run_id = new_run(store, "sample", model, split_method=split_method)
        assert train_run(store, run_id)["status"] == "finished"
        runs[model] = run_id
    return runs


def copy_into(source: Path, home: Path) -> None:
    """Copy a built workspace into the test's own (empty) workspace folder."""
    shutil.copytree(source, home, dirs_exist_ok=True)
