"""Shared fixtures: a throw-away workspace, tiny data with a known answer, the sample data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data.dataset import Dataset

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty workspace; RECSCOPE_HOME points at it for the test's duration."""
    folder = tmp_path / "workspace"
    folder.mkdir()
    monkeypatch.setenv("RECSCOPE_HOME", str(folder))
    return folder


@pytest.fixture(scope="session")
def planted_dataset() -> Dataset:
    """Small data with a known answer: two user groups, each likes its own item block.

    120 users x 60 items. Users 0-59 interact with items 0-29, users 60-119 with 30-59,
    except a few popular 'noise' items everyone touched first (so the held-out last items of a
    leave-last-out split are in the user's block). Any collaborative model must rank
    the user's own block above the other block, and beat popularity.
    """
    rng = np.random.default_rng(7)
    rows = []
    for user in range(120):
        block = 0 if user < 60 else 30
        items = rng.choice(np.arange(block, block + 30), size=12, replace=False)
        for t, item in enumerate(items):
            rows.append((f"u{user}", f"i{item}", t))
        for t, item in enumerate(rng.choice([0, 1, 30, 31], size=2, replace=False)):
            rows.append((f"u{user}", f"i{item}", -10 + t))  # early: held-out items are in-block
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).drop_duplicates(
        ["user_id", "item_id"]
    )
    return Dataset.from_frames("planted", frame)


@pytest.fixture(scope="session")
def sample_dataset() -> Dataset:
    """The shipped sample data, read straight from sample_data/ (no ingest involved)."""
    inter = pd.read_csv(SAMPLE / "interactions.csv")
    items = pd.read_csv(SAMPLE / "items.csv")
    users = pd.read_csv(SAMPLE / "users.csv")
    return Dataset.from_frames("sample", inter, items, users)


@pytest.fixture(scope="session")
def sample_loo_baselines(sample_dataset):
    """The sample data's loo split, its known history for the test split, and the test
    NDCG@10 of EASE and BPR on their defaults — trained once for every test whose bar is
    beating them (the neural and the sequence models' sample-data tests)."""
    from core.data.split import split
    from core.eval.evaluate import ranking_metric
    from core.models import make_model

    data = split(sample_dataset, "loo", seed=42)
    known = data.known_for("test")
    scores = {}
    for name in ("ease", "bpr"):
        model = make_model(name).fit(data.train, data.valid)
        model.set_history(known)
        scores[name] = ranking_metric(model, data.test, known=known, k=10)
    return data, known, scores


@pytest.fixture(autouse=True)
def _fresh_app_caches():
    """Each test starts with empty Streamlit and explanation caches (no cross-test state).

    A GPU machine may lack streamlit and shap (bench/gpu_check.sh): the model tests need
    neither, so there is nothing to clear.
    """
    if importlib.util.find_spec("streamlit") and importlib.util.find_spec("shap"):
        import streamlit as st

        from core.explain import explainer as explain

        st.cache_data.clear()
        st.cache_resource.clear()
        explain.clear_cache()
    yield


@pytest.fixture
def one_torch_thread():
    """One intra-op torch thread for the test: on a busy 2-core machine two threads spin-wait
    and run several times slower. Modules that train use it with `pytest.mark.usefixtures`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
