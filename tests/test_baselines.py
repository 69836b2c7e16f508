"""Hand-computed checks of the classical baselines: popularity, item-kNN and EASE."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from core.data.dataset import Dataset, Interactions
from core.data.split import split
from core.errors import ParameterError, RecScopeError
from core.eval.evaluate import evaluate
from core.models import ease as ease_module
from core.models import itemknn as itemknn_module
from core.models.ease import EASE
from core.models.itemknn import ItemKNN
from core.models.pop import Popularity


def tiny(pairs: list[tuple[int, int]], n_users: int, n_items: int, ratings=None) -> Interactions:
    """Interactions straight from (user_code, item_code) pairs."""
    frame = pd.DataFrame(
        {
            "user_code": np.array([u for u, _ in pairs], dtype=np.int32),
            "item_code": np.array([i for _, i in pairs], dtype=np.int32),
            "timestamp": np.arange(len(pairs), dtype=np.int64),
        }
    )
    if ratings is not None:
        frame["rating"] = np.asarray(ratings, dtype=np.float32)
    return Interactions(frame, n_users, n_items)


# 3 users x 3 items: u0 {0, 1}, u1 {0, 1, 2}, u2 {1, 2}
THREE = [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 1), (2, 2)]


# -- popularity ---------------------------------------------------------------------------
def test_pop_counts_interactions_per_item() -> None:
    model = Popularity().fit(tiny(THREE + [(2, 1)], n_users=3, n_items=4))
    scores = model.score([0, 1, 2]).cpu()
    expected = torch.tensor([2.0, 4.0, 2.0, 0.0])  # item 1 has a repeated interaction
    for row in scores:
        torch.testing.assert_close(row, expected)
    codes, values = model.recommend([0], k=2, exclude_seen=False)
    assert codes[0].tolist() == [1, 0] or codes[0].tolist() == [1, 2]
    assert values[0].tolist() == [4.0, 2.0]
    assert model.item_embeddings() is None


def test_pop_damped_item_mean_ratings() -> None:
    pairs = [(0, 0), (1, 0), (0, 1), (2, 1)]
    model = Popularity(shrinkage=2.0).fit(tiny(pairs, 3, 3, ratings=[5, 3, 1, 2]))
    mu = (5 + 3 + 1 + 2) / 4
    expected = [(8 + 2 * mu) / 4, (3 + 2 * mu) / 4, mu]  # item 2 has no rating: global mean
    got = model.predict_ratings([1, 1, 2], [0, 1, 2])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    plain = Popularity(shrinkage=0.0).fit(tiny(pairs, 3, 3, ratings=[5, 3, 1, 2]))
    np.testing.assert_allclose(plain.predict_ratings([0, 0], [0, 1]), [4.0, 1.5], rtol=1e-6)


def test_pop_without_ratings_predicts_no_ratings() -> None:
    model = Popularity().fit(tiny(THREE, 3, 3))
    assert not model.predicts_ratings
    assert model.predict_ratings([0], [0]) is None


def test_pop_ratings_reach_the_evaluator(planted_dataset) -> None:
    frame = planted_dataset.interactions.copy()
    frame["rating"] = (1 + frame["item_code"] % 5).astype(np.float32)  # item j always rated
    ds = Dataset("rated", frame, planted_dataset.items, planted_dataset.users)
    sp = split(ds, "loo")
    model = Popularity(shrinkage=0.0).fit(sp.train)
    metrics = evaluate(model, sp, part="test").metrics
    # each item's ratings are constant, so the plain item mean predicts every seen item exactly
    seen = np.isin(sp.test.items, sp.train.items)
    assert seen.all() and metrics["rmse"] == pytest.approx(0.0, abs=1e-6)
    damped = Popularity(shrinkage=5.0).fit(sp.train)
    pred = damped.predict_ratings(sp.test.users, sp.test.items)
    rmse = float(np.sqrt(np.mean((pred - sp.test.frame["rating"].to_numpy()) ** 2)))
    assert rmse > 0.1
    assert evaluate(damped, sp, part="test").metrics["rmse"] == pytest.approx(rmse, rel=1e-5)


# -- item-kNN -----------------------------------------------------------------------------
def knn_three_expected(shrink: float) -> np.ndarray:
    """Hand-computed sims of THREE: norms √2, √3, √2; co-counts (0,1)=2, (0,2)=1, (1,2)=2."""
    s01 = 2 / (math.sqrt(2) * math.sqrt(3) + shrink)
    s02 = 1 / (2 + shrink)
    s12 = 2 / (math.sqrt(3) * math.sqrt(2) + shrink)
    return np.array([[0, s01, s02], [s01, 0, s12], [s02, s12, 0]])


def test_itemknn_similarity_by_hand() -> None:
    sim = knn_three_expected(shrink=1.0)
    model = ItemKNN(k=2, shrink=1.0).fit(tiny(THREE, 3, 3))
    np.testing.assert_allclose(model.weights_.cpu().numpy(), sim, rtol=1e-6)
    # score(u, j) = Σ over history items of sim(i, j): u0 has {0, 1}
    expected = np.array([sim[0] + sim[1], sim.sum(0), sim[1] + sim[2]])
    np.testing.assert_allclose(model.score([0, 1, 2]).cpu().numpy(), expected, rtol=1e-6)
    codes, values = model.similar_items(0, k=5)
    assert codes.tolist() == [1, 2]
    np.testing.assert_allclose(values, [sim[0, 1], sim[0, 2]], rtol=1e-6)


def test_itemknn_keeps_top_k_neighbours_per_target() -> None:
    sim = knn_three_expected(shrink=1.0)
    model = ItemKNN(k=1, shrink=1.0).fit(tiny(THREE, 3, 3))
    w = model.weights_.cpu().numpy()
    # target 0 keeps only its best neighbour 1, target 2 keeps 1; target 1 has a tie (0 and 2)
    assert w[1, 0] == pytest.approx(sim[1, 0]) and w[2, 0] == 0
    assert w[1, 2] == pytest.approx(sim[1, 2]) and w[0, 2] == 0
    assert (w > 0).sum(axis=0).tolist() == [1, 1, 1]


def test_itemknn_sparse_layout_matches_dense(monkeypatch, planted_dataset, tmp_path) -> None:
    data = planted_dataset.all()
    dense = ItemKNN(k=5).fit(data)  # fitted before the limit is lowered
    monkeypatch.setattr(itemknn_module, "DENSE_MAX_ITEMS", 10)
    sparse = ItemKNN(k=5).fit(data)
    assert dense.weights_.layout == torch.strided and sparse.weights_.layout == torch.sparse_csr
    users = np.arange(20)
    torch.testing.assert_close(sparse.score(users), dense.score(users), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sparse.score(users, [3, 7]), dense.score(users, [3, 7]))
    assert sparse.history_contributions(4, 7) == pytest.approx(dense.history_contributions(4, 7))
    assert sparse.similar_items(3, 5)[0].tolist() == dense.similar_items(3, 5)[0].tolist()
    sparse.save(tmp_path / "knn")
    loaded = ItemKNN.load(tmp_path / "knn")
    loaded.set_history(data)
    assert loaded.weights_.layout == torch.sparse_csr
    torch.testing.assert_close(loaded.score(users), sparse.score(users))


# -- EASE ---------------------------------------------------------------------------------
def test_ease_matches_numpy_closed_form() -> None:
    rng = np.random.default_rng(3)
    x = (rng.random((9, 6)) < 0.45).astype(np.float64)
    x[0, :] = 0
    x[0, 2] = 1  # every user has at least one item
    pairs = [(int(u), int(i)) for u, i in zip(*np.nonzero(x), strict=True)]
    model = EASE(l2=0.7, device_choice="cpu").fit(tiny(pairs, 9, 6))
    p = np.linalg.inv(x.T @ x + 0.7 * np.eye(6))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    np.testing.assert_allclose(model.weights_.cpu().numpy(), b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.score(np.arange(9)).cpu().numpy(), x @ b, atol=1e-5)


def test_ease_refuses_catalogues_too_large(monkeypatch) -> None:
    monkeypatch.setattr(ease_module, "MAX_ITEMS", 2)
    with pytest.raises(RecScopeError, match=r"3 x 3 .* limit of 2 items"):
        EASE(solver="dense").fit(tiny(THREE, 3, 3))  # solver=auto goes lowrank instead


# -- shared behaviour of the additive models ----------------------------------------------
@pytest.mark.parametrize("cls", [ItemKNN, EASE])
def test_history_contributions_sum_to_score(cls, planted_dataset) -> None:
    sp = split(planted_dataset, "loo")
    model = cls().fit(sp.train)
    model.set_history(sp.known_for("test"))
    known = sp.known_for("test").csr()
    for user, item in [(0, 5), (70, 40), (70, 3), (119, 0)]:
        parts = model.history_contributions(user, item)
        assert sorted(parts) == sorted(known[user].indices.tolist())
        total = float(model.score([user], [item])[0, 0])
        assert sum(parts.values()) == pytest.approx(total, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("cls", [ItemKNN, EASE])
def test_set_history_changes_scores(cls, planted_dataset) -> None:
    sp = split(planted_dataset, "loo")
    model = cls().fit(sp.train)
    users = np.arange(120)
    before = model.score(users).cpu()
    model.set_history(sp.known_for("test"))
    after = model.score(users).cpu()
    # the valid item joins each history: scores move by exactly that item's row of W
    valid = sp.valid.frame.set_index("user_code")["item_code"]
    w = model.weights_.cpu() if model.weights_.layout == torch.strided else None
    assert w is not None
    expected = before.clone()
    for user, item in valid.items():
        expected[user] += w[item]
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(after, before)


def test_similar_items_stay_in_block(planted_dataset) -> None:
    data = planted_dataset.all()
    first = set(planted_dataset.item_codes([f"i{j}" for j in range(30)]).tolist())
    for model in (ItemKNN().fit(data), EASE().fit(data)):
        codes, values = model.similar_items(int(planted_dataset.item_codes(["i10"])[0]), k=10)
        assert len(codes) == 10 and (np.diff(values) <= 0).all()
        assert sum(c in first for c in codes.tolist()) >= 9


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (ItemKNN, {"k": 0}),
        (ItemKNN, {"k": 2.5}),
        (ItemKNN, {"shrink": -1}),
        (EASE, {"l2": 0}),
        (EASE, {"l2": "big"}),
        (Popularity, {"shrinkage": -3}),
    ],
)
def test_invalid_parameters_rejected_at_fit(cls, params) -> None:
    name = next(iter(params))
    with pytest.raises(ParameterError, match=name):
        cls(**params).fit(tiny(THREE, 3, 3))


# -- GPU ----------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(
    "make", [lambda d: ItemKNN(device_choice=d), lambda d: EASE(device_choice=d)]
)
def test_gpu_scores_match_cpu(make, planted_dataset) -> None:
    sp = split(planted_dataset, "loo")
    users = np.arange(120)
    cpu, gpu = make("cpu").fit(sp.train), make("cuda").fit(sp.train)
    for model in (cpu, gpu):
        model.set_history(sp.known_for("test"))
    assert gpu.score(users).device.type == "cuda"
    torch.testing.assert_close(gpu.score(users).cpu(), cpu.score(users), rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_itemknn_sparse_on_gpu_matches_dense_on_cpu(planted_dataset, monkeypatch) -> None:
    sp = split(planted_dataset, "loo")
    users = np.arange(120)
    dense = ItemKNN(device_choice="cpu").fit(sp.train)  # fitted before the limit is lowered
    monkeypatch.setattr(itemknn_module, "DENSE_MAX_ITEMS", 10)  # the sparse path on the GPU
    sparse = ItemKNN(device_choice="cuda").fit(sp.train)
    assert dense.weights_.layout == torch.strided and sparse.weights_.layout == torch.sparse_csr
    for model in (dense, sparse):
        model.set_history(sp.known_for("test"))
    torch.testing.assert_close(sparse.score(users).cpu(), dense.score(users), rtol=1e-4, atol=1e-5)


# -- the shipped sample data --------------------------------------------------------------
def test_neighbourhood_models_beat_pop_on_sample_data(sample_dataset) -> None:
    """Measured (loo, seed 42, test): pop 0.035, itemknn 0.238, ease 0.390 NDCG@10."""
    from core.eval.evaluate import ranking_metric

    sp = split(sample_dataset, "loo", seed=42)
    known = sp.known_for("test")
    ndcg = {}
    for model in (Popularity(), ItemKNN(), EASE()):
        model.fit(sp.train)
        model.set_history(known)
        ndcg[model.name] = ranking_metric(model, sp.test, known, k=10, metric="ndcg")
    assert ndcg["pop"] > 0.01  # popularity is a real baseline, not a broken one
    for name in ("itemknn", "ease"):
        assert ndcg[name] >= 1.5 * ndcg["pop"], f"{name} {ndcg[name]:.4f} vs pop {ndcg['pop']:.4f}"
