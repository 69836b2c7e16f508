"""Faiss item index: recall of approximate kinds, exact paths agree, save/load, retrieval."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest
import scipy.sparse as sp
import torch

import core.retrieval.index as I
import core.retrieval.placement as P
from core.errors import ParameterError
from core.retrieval.index import (
    EXACT_MAX_CPU,
    ItemIndex,
    _choose_kind,
    exact_search_torch,
    layout,
    recall_at_k,
    retrieve,
)
from core.retrieval.similar import index_facts


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


def _cpu_shards(index, shards: int):
    """Stand-in for faiss.index_cpu_to_all_gpus(shard=True) in a faiss-cpu build, as faiss'
    GpuCloner does it: an IndexShards of copies; a filled flat index's rows split in order
    (successive ids), an IVF index's trained quantizer copied into each (ids kept)."""
    flat = isinstance(index, faiss.IndexFlat)
    assert flat or index.ntotal == 0, "the stand-in splits filled flat indexes only"
    out = faiss.IndexShards(index.d, False, flat)
    rows = index.reconstruct_n(0, index.ntotal) if flat else None
    for i in range(shards):
        part = faiss.IndexFlatIP(index.d) if flat else faiss.clone_index(index)
        if flat and index.ntotal:
            part.add(rows[index.ntotal * i // shards : index.ntotal * (i + 1) // shards])
        out.add_shard(part)
    return out


@pytest.fixture
def two_fake_gpus(monkeypatch):
    """A faiss-gpu build with 2 GPUs, simulated on the CPU: torch asks for 'cuda', faiss says
    it sees 2 GPUs, and the two GPU copies (one GPU, all GPUs sharded) are CPU indexes."""
    monkeypatch.setattr(P, "pick_device", lambda choice=None: torch.device(choice or "cuda"))
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 2)
    monkeypatch.setattr(P, "to_gpu", lambda index, dev: faiss.clone_index(index))
    calls = []
    monkeypatch.setattr(P, "to_gpus", lambda index, n: calls.append(n) or _cpu_shards(index, n))
    exact = I.exact_search_torch  # the recall oracle: torch on the CPU instead of cuda
    monkeypatch.setattr(I, "exact_search_torch", lambda b, q, k, dev: exact(b, q, k, "cpu"))
    return calls


def test_index_shards_over_two_gpus_and_searches_like_one_exact_index(two_fake_gpus, tmp_path):
    """Issue 13 item 3: more than one faiss GPU -> one shard per GPU, same answers."""
    rng = np.random.default_rng(8)
    base = _unit(rng.standard_normal((3_001, 32)))  # odd size: the shards differ by one row
    queries = _unit(rng.standard_normal((40, 32)))
    sharded = ItemIndex.build(base)  # auto: flat on the "GPUs"
    assert two_fake_gpus == [2]
    assert isinstance(sharded._index, faiss.IndexShards) and sharded._index.count() == 2
    assert [faiss.downcast_index(sharded._index.at(i)).ntotal for i in (0, 1)] == [1500, 1501]
    ids, scores = sharded.search(queries, 10)
    brute = np.argsort(-(queries @ base.T), axis=1)[:, :10]  # the unsharded exact answer
    np.testing.assert_array_equal(ids, brute)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ base.T, brute, 1), atol=1e-5)
    assert sharded.neighbors(2_999, 3)[0].tolist() == brute_neighbours(base, 2_999, 3)
    facts = index_facts(sharded)
    assert facts == {
        "type": "flat", "device": "cuda", "recall_at_k": 1.0, "backend": "faiss-gpu",
        "devices": ["cuda:0", "cuda:1"], "shards": 2, "layout": "2 shards over 2 GPUs",
    }  # fmt: skip
    sharded.save(tmp_path / "idx")  # a CPU copy on disk; loaded back over both GPUs
    again = ItemIndex.load(tmp_path / "idx")
    assert two_fake_gpus == [2, 2] and again.info.shards == 2
    np.testing.assert_array_equal(again.search(queries, 10)[0], brute)


def test_sharded_ivf_sets_nprobe_on_every_shard(two_fake_gpus, monkeypatch):
    points, queries = _clustered(20_000, 16, 200, seed=9)
    index = ItemIndex.build(points, kind="ivf", recall_k=10)
    shards = [faiss.downcast_index(index._index.at(i)) for i in range(index._index.count())]
    assert [s.ntotal for s in shards] == [10_000, 10_000]
    assert {s.nprobe for s in shards} == {index.info.params["nprobe"]} and len(shards) == 2
    assert index.info.recall_at_k >= 0.95 and index.info.shards == 2
    _, truth = faiss.knn(_unit(queries), _unit(points), 10, metric=faiss.METRIC_INNER_PRODUCT)
    assert recall_at_k(index.search(queries, 10)[0], truth) >= 0.95
    monkeypatch.setattr(I, "GPU_MAX_NPROBE", 2)  # faiss GPUs probe at most 2048 lists
    capped = ItemIndex.build(points, kind="ivf", recall_k=10, target_recall=1.01)
    assert capped.info.params["nprobe"] == 2 < capped.info.params["nlist"]


def test_placement_follows_the_gpus_faiss_sees(monkeypatch):
    monkeypatch.setattr(P, "pick_device", lambda choice=None: torch.device(choice or "cuda"))
    for gpus, asked, expected in [
        (4, None, ("cuda", "faiss-gpu", 4)),  # every GPU, sharded
        (4, "cuda:1", ("cuda", "faiss-gpu", 1)),  # one GPU named: that one alone
        (1, None, ("cuda", "faiss-gpu", 1)),
        (0, None, ("cuda", "torch", 0)),  # a faiss-cpu build next to a CUDA torch
        (4, "cpu", ("cpu", "faiss-cpu", 0)),
    ]:
        monkeypatch.setattr(faiss, "get_num_gpus", lambda n=gpus: n)
        dev, backend, n = P.placement(asked)
        assert (dev.type, backend, n) == expected
    # faiss has no GPU HNSW: an hnsw index leaves the GPUs for the CPU
    assert P.fallback("hnsw", torch.device("cuda"), "faiss-gpu", 4)[1:] == ("faiss-cpu", 0)
    cpu = ItemIndex.build(np.eye(4, dtype=np.float32), device="cpu").info
    assert (cpu.shards, cpu.devices, layout(cpu)) == (1, ["cpu"], "1 CPU index")


def brute_neighbours(base: np.ndarray, code: int, k: int) -> list[int]:
    order = np.argsort(-(base @ base[code]))
    return [int(i) for i in order if i != code][:k]
