"""Similar items: run neighbours (index and item-item), text neighbours, search, map, retrieval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from core.data.dataset import Dataset
from core.errors import RecScopeError
from core.retrieval import similar
from core.retrieval.embedding_map import embedding_map, item_facts, main_scenario, project_2d
from core.retrieval.index import ItemIndex
from core.runs.pipeline import LoadedRun, load_run, new_run, train_run
from core.runs.queries import similar_run
from core.runs.store import RunStore


class _Stub:
    """A fitted model reduced to what similar.py reads: vectors, history, user vectors."""

    name = "stub"

    def __init__(self, items: np.ndarray, users: np.ndarray, history: sp.csr_matrix):
        self._items, self._users, self.history_ = items, users, history
        self.device = torch.device("cpu")

    def item_embeddings(self) -> np.ndarray:
        return self._items

    def user_vectors(self, codes) -> torch.Tensor:
        return torch.as_tensor(self._users[np.asarray(codes)])


def _tiny_dataset() -> Dataset:
    titles = ["Red apple", "Green apple", "Blue whale", "Grey whale", "Apple pie"]
    items = pd.DataFrame(
        {
            "item_id": [f"i{j}" for j in range(5)],
            "title": titles,
            "category": ["Fruit", "Fruit", "Sea", "Sea", "Food"],
        }
    )
    inter = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "b", "c", "c", "c"],
            "item_id": ["i0", "i1", "i2", "i3", "i0", "i4", "i0"],
            "scenario": ["shop", "shop", "sea", "sea", "shop", "web", "web"],
        }
    )
    return Dataset.from_frames("tiny", inter, items)


def _stub_run(home, dataset: Dataset, model) -> LoadedRun:
    run_id = RunStore(home).new_run({"model": model.name, "dataset": dataset.name})
    folder = RunStore(home).folder(run_id)
    return LoadedRun({"run_id": run_id, "model": model.name}, dataset, None, model, folder)


# item vectors: 0 and 1 point the same way, 2 and 3 the other way, 4 in between
VECTORS = np.array([[1, 0.1], [1, 0.2], [0.1, 1], [0.2, 1], [1, 1]], dtype=np.float32)


def test_index_neighbours_follow_the_contract_and_are_saved_once(home, monkeypatch):
    ds = _tiny_dataset()
    model = _Stub(VECTORS, VECTORS, sp.csr_matrix((ds.n_users, ds.n_items)))
    loaded = _stub_run(home, ds, model)
    answer = similar.similar_items(loaded, 0, 2)
    assert answer["item_id"] == "i0"
    assert [n["item_id"] for n in answer["neighbors"]] == ["i1", "i4"]  # cosine order
    cos01 = VECTORS[0] @ VECTORS[1] / np.linalg.norm(VECTORS[0]) / np.linalg.norm(VECTORS[1])
    assert answer["neighbors"][0]["score"] == pytest.approx(cos01, abs=1e-5)
    assert answer["neighbors"][0]["title"] == "Green apple"
    assert answer["index"] == {
        "type": "flat", "device": "cpu", "recall_at_k": 1.0, "backend": "faiss-cpu",
        "devices": ["cpu"], "shards": 1, "layout": "1 CPU index",
    }  # fmt: skip
    folder = RunStore(home).folder(loaded.record["run_id"]) / "index"
    assert (folder / "index.faiss").exists() and (folder / "index.json").exists()

    def no_build(*args, **kwargs):
        raise AssertionError("the saved index must be loaded, not rebuilt")

    monkeypatch.setattr(ItemIndex, "build", no_build)
    again = similar.similar_items(loaded, 2, 1)
    assert [n["item_id"] for n in again["neighbors"]] == ["i3"]


def test_item_item_models_and_pop(home, planted_dataset):
    planted_dataset.save(home)
    store = RunStore(home)
    ids = {}
    for model in ("ease", "pop"):
        ids[model] = new_run(store, "planted", model)
        train_run(store, ids[model])
    answer = similar_run(store, ids["ease"], "i3", k=5)
    assert answer["item_id"] == "i3"
    assert answer["index"]["type"] == similar.ITEM_ITEM
    assert len(answer["neighbors"]) == 5
    block = {f"i{j}" for j in range(30)}  # the planted block of i3
    noise = {"i0", "i1", "i30", "i31"}  # touched by every user: similar to everything
    assert {n["item_id"] for n in answer["neighbors"]} - noise <= block
    scores = [n["score"] for n in answer["neighbors"]]
    assert scores == sorted(scores, reverse=True)
    assert "i3" not in {n["item_id"] for n in answer["neighbors"]}
    assert not (store.folder(ids["ease"]) / "index").exists()  # nothing to index
    with pytest.raises(RecScopeError, match="neither item embeddings nor item-item"):
        similar.similar_items(load_run(store, ids["pop"]), 0, 5)
    with pytest.raises(RecScopeError, match="not in dataset"):
        similar_run(store, ids["ease"], "no-such-item")


def test_text_neighbors_pair_near_identical_titles(home):
    ds = _tiny_dataset()
    ds.save(home)
    answer = similar.text_neighbors(ds, 2, 1)  # "Blue whale"
    assert [n["item_id"] for n in answer["neighbors"]] == ["i3"]  # "Grey whale"
    assert answer["index"]["type"] == "flat"
    assert list(home.glob("datasets/tiny/text_index_*/index.faiss"))  # kept for next time


def test_find_items_substring_then_fuzzy_then_popular():
    titles = np.array(["The Secret Skillet (Ep. 1)", "Apex Yoga Mat", "Secret Garden", "Zed"])
    pop = np.array([5, 50, 10, 1])
    assert similar.find_items(titles, "secret", pop).tolist() == [2, 0]  # by popularity
    assert similar.find_items(titles, "skilet", pop).tolist() == [0]  # one letter missing
    assert similar.find_items(titles, "", pop, limit=2).tolist() == [1, 2]
    assert similar.find_items(titles, "qqqq", pop).tolist() == []


def test_embedding_map_pca_separates_the_two_directions():
    ds = _tiny_dataset()
    table, method = embedding_map(VECTORS, ds, method="pca")
    assert method == "pca"
    assert list(table.columns[:2]) == ["x", "y"]
    assert {"item_code", "title", "category", "popularity", "scenario"} <= set(table.columns)
    # items 0,1 and 2,3 lie on opposite sides along the first axis; 4 between them
    x = table["x"].to_numpy()
    assert np.sign(x[0]) == np.sign(x[1]) != np.sign(x[2]) == np.sign(x[3])
    assert abs(x[4]) < min(abs(x[:4]))
    assert table["popularity"].tolist() == [3, 1, 1, 1, 1]
    # i0: shop twice, web once -> shop; i4 only web
    assert main_scenario(ds).tolist() == ["shop", "shop", "sea", "sea", "web"]
    assert project_2d(VECTORS, "pca")[0].shape == (5, 2)
    assert item_facts(ds)["category"].tolist() == ["Fruit", "Fruit", "Sea", "Sea", "Food"]


def test_retrieval_through_the_index_matches_brute_force(home, monkeypatch):
    """User -> item retrieval via the inner-product index equals exact top-k, and a second
    call reuses the saved index (speed is measured in bench/index.py, not here)."""
    rng = np.random.default_rng(0)
    n_items, n_users, dim = 20_000, 64, 32
    items = rng.normal(size=(n_items, dim)).astype(np.float32)
    users = rng.normal(size=(n_users, dim)).astype(np.float32)
    seen = sp.random(n_users, n_items, density=0.001, format="csr", random_state=0)
    frame = pd.DataFrame({"user_id": ["u"] * n_items, "item_id": np.arange(n_items)})
    ds = Dataset.from_frames("big", frame)
    loaded = _stub_run(home, ds, _Stub(items, users, seen))
    out = similar.retrieve_for_users(loaded, np.arange(n_users), k=10)
    scores = users @ items.T
    scores[seen.nonzero()] = -np.inf
    expected = np.argsort(-scores, axis=1)[:, :10]
    np.testing.assert_array_equal(out["items"], expected)
    best = np.take_along_axis(scores, expected, axis=1)
    np.testing.assert_allclose(out["scores"], best, rtol=1e-4, atol=1e-4)

    def no_build(*args, **kwargs):
        raise AssertionError("the saved index must be loaded, not rebuilt")

    monkeypatch.setattr(ItemIndex, "build", no_build)
    again = similar.retrieve_for_users(loaded, np.arange(n_users), k=10)
    np.testing.assert_array_equal(again["items"], out["items"])
    assert again["index"] == out["index"]
