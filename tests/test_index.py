"""Faiss item index: recall of approximate kinds, exact paths agree, save/load, retrieval."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from core.errors import ParameterError
from core.retrieval.index import (
    EXACT_MAX_CPU,
    ItemIndex,
    _choose_kind,
    exact_search_torch,
    recall_at_k,
    retrieve,
)


def _clustered(n: int, d: int, clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` points around `clusters` Gaussian centres, plus 300 held-out queries from them."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    points = centres[rng.integers(0, clusters, n)]
    points += 0.3 * rng.standard_normal((n, d)).astype(np.float32)
    queries = centres[rng.integers(0, clusters, 300)]
    queries += 0.3 * rng.standard_normal((300, d)).astype(np.float32)
    return points, queries


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def clustered_100k():
    """100k clustered 64-d vectors, held-out queries and their exact top-10 (faiss.knn)."""
    points, queries = _clustered(100_000, 64, 1_000, seed=3)
    _, truth = faiss.knn(_unit(queries), _unit(points), 10, metric=faiss.METRIC_INNER_PRODUCT)
    return points, queries, truth


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_index_keeps_recall_at_10_on_100k_clustered_vectors(clustered_100k, kind):
    points, queries, truth = clustered_100k
    index = ItemIndex.build(points, kind=kind, device="cpu", seed=0)
    ids, scores = index.search(queries, 10)
    assert index.info.type == kind and index.info.n == 100_000 and index.info.dim == 64
    assert ids.shape == (300, 10) and scores.shape == (300, 10)
    assert recall_at_k(ids, truth) >= 0.95  # held-out queries, not the tuning sample
    assert index.info.recall_at_k >= 0.95 and index.info.k == 10
    setting = "nprobe" if kind == "ivf" else "ef_search"
    assert index.info.params[setting] >= 1
    if kind == "ivf":  # nlist ~ 4 sqrt(n) and far fewer lists probed than exist
        assert index.info.params["nlist"] == round(4 * np.sqrt(100_000))
        assert index.info.params["nprobe"] < index.info.params["nlist"]


def test_exact_faiss_and_exact_torch_agree_on_cpu():
    rng = np.random.default_rng(1)
    base = _unit(rng.standard_normal((5_000, 32)))
    queries = _unit(rng.standard_normal((50, 32)))
    index = ItemIndex.build(base, kind="flat", device="cpu")
    ids_f, scores_f = index.search(queries, 10)
    ids_t, scores_t = exact_search_torch(base, queries, 10, "cpu")
    np.testing.assert_array_equal(ids_f, ids_t)
    np.testing.assert_allclose(scores_f, scores_t, atol=1e-5)
    brute = np.argsort(-(queries @ base.T), axis=1)[:, :10]  # numpy oracle
    np.testing.assert_array_equal(ids_f, brute)
    assert index.info.type == "flat" and index.info.recall_at_k == 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_torch_cuda_exact_search_matches_cpu_faiss():
    rng = np.random.default_rng(2)
    base = _unit(rng.standard_normal((20_000, 64)))
    queries = _unit(rng.standard_normal((100, 64)))
    cpu = ItemIndex.build(base, kind="flat", device="cpu")
    ids_c, scores_c = cpu.search(queries, 10)
    ids_g, scores_g = exact_search_torch(base, queries, 10, "cuda")
    np.testing.assert_array_equal(ids_g, ids_c)
    np.testing.assert_allclose(scores_g, scores_c, atol=1e-5)
    gpu = ItemIndex.build(base, kind="flat", device="cuda")
    assert gpu.info.device == "cuda"
    ids_i, scores_i = gpu.search(queries, 10)
    np.testing.assert_array_equal(ids_i, ids_c)
    np.testing.assert_allclose(scores_i, scores_c, atol=1e-4)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_save_then_load_returns_identical_search_results(tmp_path, kind):
    points, queries = _clustered(4_000, 16, 40, seed=4)
    index = ItemIndex.build(points, kind=kind, device="cpu")
    before = index.search(queries, 5)
    index.save(tmp_path / "idx")
    sidecar = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert sidecar["type"] == kind and sidecar["n"] == 4_000 and sidecar["dim"] == 16
    assert sidecar["recall_at_k"] == index.info.recall_at_k and "build_s" in sidecar
    loaded = ItemIndex.load(tmp_path / "idx", device="cpu")
    after = loaded.search(queries, 5)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    assert loaded.info.params == index.info.params
    assert list((tmp_path / "idx").glob("*.tmp")) == []


def test_neighbors_exclude_the_item_itself():
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((200, 8)).astype(np.float32)
    vectors[17] = vectors[5] + 0.01  # item 17 is item 5's planted twin
    index = ItemIndex.build(vectors, device="cpu")
    ids, scores = index.neighbors(5, 4)
    assert ids.shape == (4,) and 5 not in ids
    assert ids[0] == 17 and scores[0] > 0.99
    assert np.all(np.diff(scores) <= 1e-6)  # best first
    all_ids, _ = index.neighbors(5, 500)  # k past the catalogue: every other item once
    assert sorted(all_ids.tolist()) == [i for i in range(200) if i != 5]


def test_auto_kind_follows_catalogue_size_and_device():
    assert _choose_kind("auto", 1_000, "faiss-cpu") == "flat"
    assert _choose_kind("auto", EXACT_MAX_CPU, "faiss-cpu") == "flat"
    assert _choose_kind("auto", EXACT_MAX_CPU + 1, "faiss-cpu") == "ivf"
    assert _choose_kind("auto", 1_000_000, "torch") == "flat"  # GPU scans stay exact
    assert _choose_kind("auto", 20_000_000, "faiss-gpu") == "ivf"
    assert _choose_kind("hnsw", 10, "faiss-cpu") == "hnsw"  # an explicit kind is kept
    assert ItemIndex.build(np.eye(6, dtype=np.float32), device="cpu").info.type == "flat"
    with pytest.raises(ParameterError, match="'annoy' is unknown"):
        _choose_kind("annoy", 10, "faiss-cpu")


def test_retrieve_skips_seen_items_and_pads_when_catalogue_runs_out():
    items = np.array([[1, 0], [0.9, 0.1], [0.8, 0.2], [0, 1], [-1, 0]], dtype=np.float32)
    index = ItemIndex.build(items, kind="flat", device="cpu", normalize=False)
    users = np.array([[1, 0], [0, 1]], dtype=np.float32)
    seen = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [0, 0, 0, 1, 1]], dtype=np.float32))
    ids, scores = retrieve(index, users, 2, exclude=seen)
    np.testing.assert_array_equal(ids, [[2, 3], [2, 1]])
    np.testing.assert_allclose(scores, [[0.8, 0.0], [0.2, 0.1]], atol=1e-6)
    ids, scores = retrieve(index, users[:1], 4, exclude=seen[:1])  # only 3 unseen items
    np.testing.assert_array_equal(ids, [[2, 3, 4, -1]])
    assert scores[0, 3] == -np.inf
    with pytest.raises(ParameterError, match="exclude has shape"):
        retrieve(index, users, 2, exclude=seen[:1])


def test_recall_at_k_hand_values_and_bad_input():
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 9, 1], [-1, -1, 5, 0]])
    assert recall_at_k(found, truth) == pytest.approx((3 / 4 + 1 / 4) / 2)
    index = ItemIndex.build(np.eye(4, dtype=np.float32), device="cpu")
    with pytest.raises(ParameterError, match="3 dimensions"):
        index.search(np.ones((1, 3), np.float32), 2)
    with pytest.raises(ParameterError, match="Item code 4"):
        index.neighbors(4, 2)


def test_ivf_probes_enough_lists_for_long_result_lists():
    points, queries = _clustered(4_000, 16, 40, seed=6)
    index = ItemIndex.build(points, kind="ivf", device="cpu")
    per_list = 4_000 / index.info.params["nlist"]
    assert index.info.params["nprobe"] * per_list < 300  # the tuned probe alone is too short
    ids, _ = index.search(queries[:20], 300)
    assert (ids >= 0).all() and all(len(set(row)) == 300 for row in ids.tolist())
