"""The Items map's projection (issue 16 point 9): UMAP by default, PCA only where UMAP cannot
run, saying which drew it; a drawn map is kept on disk. UMAP itself is replaced by a stub
here (its numba kernels compile for tens of seconds); the page test draws a real one."""

from __future__ import annotations

import sys
import types

import numpy as np
import pandas as pd
import pytest

from core.data.dataset import Dataset
from core.retrieval import embedding_map as EM


class _FakeUMAP:
    calls = 0

    def __init__(self, **kwargs):
        assert kwargs["n_components"] == 2 and kwargs["metric"] == "cosine"

    def fit_transform(self, x):
        _FakeUMAP.calls += 1
        return np.column_stack([np.arange(len(x)), -np.arange(len(x))]).astype(float)


@pytest.fixture
def fake_umap(monkeypatch):
    _FakeUMAP.calls = 0
    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=_FakeUMAP))
    monkeypatch.setattr(EM, "umap_available", lambda: True)


def _dataset(n: int) -> Dataset:
    ids = [f"i{j}" for j in range(n)]
    inter = pd.DataFrame({"user_id": ["u"] * n, "item_id": ids})
    items = pd.DataFrame({"item_id": ids, "title": [f"Item {j}" for j in range(n)]})
    return Dataset.from_frames("m", inter, items)


def test_umap_by_default_pca_for_few_items_or_a_broken_import(fake_umap, monkeypatch):
    vectors = np.random.default_rng(0).normal(size=(EM.UMAP_MIN, 4))
    xy, used = EM.project_2d(vectors)
    assert used == "umap" and xy[:, 0].tolist() == list(range(EM.UMAP_MIN))
    few = vectors[: EM.UMAP_MIN - 1]
    assert EM.project_2d(few)[1] == "pca"
    assert EM.method_note("pca", len(few)) == (
        f"{len(few)} items projected with PCA (UMAP needs at least {EM.UMAP_MIN} items)."
    )
    assert EM.method_note("umap", 1682) == "1,682 items projected with UMAP (cosine distances)."
    monkeypatch.setitem(sys.modules, "umap", None)  # installed but cannot be imported
    assert EM.project_2d(vectors)[1] == "pca"
    assert EM.method_note("pca", 20).endswith("(UMAP could not be imported).")


def test_a_drawn_map_is_kept_on_disk_and_read_back(fake_umap, tmp_path):
    ds = _dataset(20)
    vectors = np.random.default_rng(1).normal(size=(20, 4)).astype(np.float32)
    assert not EM.map_stored(vectors, tmp_path) and not EM.map_stored(vectors, None)
    table, used = EM.stored_map(vectors, ds, tmp_path)
    assert used == "umap" and _FakeUMAP.calls == 1 and (tmp_path / EM.MAP_FILE).exists()
    assert EM.map_stored(vectors, tmp_path) and not EM.map_stored(vectors + 1, tmp_path)
    again, used2 = EM.stored_map(vectors, ds, tmp_path)
    assert _FakeUMAP.calls == 1 and used2 == "umap"  # read back, not projected again
    pd.testing.assert_frame_equal(again, table)
    EM.stored_map(vectors + 1, ds, tmp_path)  # other vectors: drawn afresh
    assert _FakeUMAP.calls == 2
