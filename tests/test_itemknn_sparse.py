"""Item-kNN: the sparse, chunked fit and sparse scoring against a dense reference (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.data.dataset import Interactions
from core.data.split import split
from core.models import itemknn as itemknn_module
from core.models.itemknn import ItemKNN


def dense_reference(x: np.ndarray, k: int, shrink: float) -> np.ndarray:
    """The old fit, written out densely: shrunk cosine, diagonal 0, k best positives per
    target column (ties: the lower item code first), float32 like the model."""
    x = x.astype(np.float32)
    co = x.T @ x
    norms = np.sqrt(x.sum(axis=0))
    denom = norms[:, None] * norms[None, :] + np.float32(shrink)
    sim = np.where(denom > 0, co / np.maximum(denom, 1e-12), 0).astype(np.float32)
    np.fill_diagonal(sim, 0.0)
    w = np.zeros_like(sim)
    for j in range(sim.shape[1]):
        best = np.argsort(-sim[:, j], kind="stable")[:k]
        best = best[sim[best, j] > 0]
        w[best, j] = sim[best, j]
    return w


@pytest.mark.parametrize(("k", "shrink"), [(5, 0.0), (12, 3.0)])
def test_chunked_sparse_fit_equals_dense_reference(planted_dataset, monkeypatch, k, shrink):
    data = planted_dataset.all()
    expected = dense_reference(data.csr().toarray(), k, shrink)
    whole = ItemKNN(k=k, shrink=shrink).fit(data)  # one chunk, dense layout (60 items)
    monkeypatch.setattr(itemknn_module, "_CHUNK_PRODUCTS", 200)  # ~20 chunks of targets
    monkeypatch.setattr(itemknn_module, "DENSE_MAX_ITEMS", 10)
    chunked = ItemKNN(k=k, shrink=shrink).fit(data)
    assert whole.weights_.layout == torch.strided
    np.testing.assert_array_equal(whole.weights_.cpu().numpy(), expected)
    assert chunked.weights_.layout == torch.sparse_csr
    # Wᵀ is stored: row j holds the weights into target j, at most k of them
    np.testing.assert_array_equal(chunked.weights_.to_dense().T.cpu().numpy(), expected)
    assert int(torch.diff(chunked.weights_.crow_indices()).max()) <= k
    assert chunked.weights_.values().numel() == int((expected > 0).sum())


def test_sparse_scores_equal_dense_and_are_contiguous(planted_dataset, monkeypatch) -> None:
    """The evaluator needs contiguous score blocks (issue 15: a `view` on the old transposed
    sparse product crashed it); the sparse layout ranks exactly as the dense one."""
    sp = split(planted_dataset, "loo")
    dense = ItemKNN(k=8).fit(sp.train)
    monkeypatch.setattr(itemknn_module, "DENSE_MAX_ITEMS", 10)
    monkeypatch.setattr(itemknn_module, "_SCORE_PAIRS", 37)  # many slices of history pairs
    sparse = ItemKNN(k=8).fit(sp.train)
    known = sp.known_for("test")
    for model in (dense, sparse):
        model.set_history(known)
    users = np.arange(planted_dataset.n_users)
    got = sparse.score(users)
    assert got.is_contiguous() and got.shape == (len(users), planted_dataset.n_items)
    torch.testing.assert_close(got, dense.score(users), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(sparse.score(users, [4, 40]), dense.score(users, [4, 40]))
    for seed in (0, 42):
        d_items, _ = dense.recommend(users, 10, seed=seed)
        s_items, _ = sparse.recommend(users, 10, seed=seed)
        np.testing.assert_array_equal(s_items, d_items)
    parts = sparse.history_contributions(70, 40)
    assert parts == pytest.approx(dense.history_contributions(70, 40))
    assert sum(parts.values()) == pytest.approx(float(got[70, 40]), rel=1e-6)
    for item in (3, 45):
        s_codes, s_vals = sparse.similar_items(item, 6)
        d_codes, d_vals = dense.similar_items(item, 6)
        assert s_codes.tolist() == d_codes.tolist()
        np.testing.assert_allclose(s_vals, d_vals)


def test_user_without_history_scores_zero(monkeypatch, planted_dataset) -> None:
    monkeypatch.setattr(itemknn_module, "DENSE_MAX_ITEMS", 10)
    sp = split(planted_dataset, "loo")
    model = ItemKNN(k=5).fit(sp.valid)  # users with one item; then an empty history
    model.set_history(Interactions(sp.valid.frame.iloc[:0], sp.valid.n_users, 60))
    assert float(model.score([0, 5]).abs().sum()) == 0.0
