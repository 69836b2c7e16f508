"""Re-ranking: MMR by hand, novelty ordering, and the trade-off curve on the sample data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.data.split import split
from core.errors import ParameterError
from core.eval.evaluate import evaluate
from core.eval.rerank import (
    ItemSimilarity,
    item_similarity,
    recommend_reranked,
    rerank,
    rerank_candidates,
    tradeoff_curve,
)
from core.models import make_model
from core.runs.pipeline import LoadedRun

CATS = ItemSimilarity("categories", categories=torch.tensor([0, 0, 1, 1, 2]))


def test_zero_weights_keep_the_model_order():
    scores = torch.tensor([[0.3, 0.9, -torch.inf, 0.5, 0.1], [1.0, 2.0, 3.0, 4.0, 5.0]])
    out = rerank(scores, 3)
    np.testing.assert_array_equal(out, [[1, 3, 0], [4, 3, 2]])
    # fewer candidates than k: padded with -1, never an excluded item
    np.testing.assert_array_equal(rerank(scores[:1], 5)[0], [1, 3, 0, 4, -1])


def test_zero_weights_break_ties_like_the_ranking_routine():
    from core.eval.ranking import top_k

    flat = torch.zeros((3, 12))  # every item ties: the order is the tie rule's alone
    users = torch.tensor([7, 2, 9])
    out = rerank(flat, 5, users=users, seed=4)
    expected, _ = top_k(flat, 5, users=users, seed=4)
    np.testing.assert_array_equal(out, expected.numpy())
    assert out[0].tolist() != list(range(5))


def test_mmr_step_by_hand():
    # rel = (s - 0.1) / 0.9 = [1, 0.889, 0]; λ = 0.5. Step 2: item 1 (same category as 0):
    # 0.5 * 0.889 - 0.5 * 1 = -0.056; item 2: 0.5 * 0 - 0.5 * 0 = 0 -> item 2 wins.
    items = torch.tensor([[0, 1, 2]])
    scores = torch.tensor([[1.0, 0.9, 0.1]])
    assert rerank_candidates(items, scores, 2, diversity=0.5, similarity=CATS).tolist() == [[0, 2]]
    # with a small weight relevance still wins: 0.9 * 0.889 - 0.1 * 1 > 0
    assert rerank_candidates(items, scores, 2, diversity=0.1, similarity=CATS).tolist() == [[0, 1]]


def test_novelty_weight_one_orders_by_self_information():
    items = torch.tensor([[0, 1, 2, 3]])
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    info = torch.tensor([0.1, 0.9, 0.5, 0.7, 0.0])
    out = rerank_candidates(items, scores, 4, novelty=1.0, info=info)
    assert out.tolist() == [[1, 3, 2, 0]]
    with pytest.raises(ParameterError, match="between 0 and 1"):
        rerank_candidates(items, scores, 2, novelty=1.5, info=info)
    with pytest.raises(ParameterError, match="similarity"):
        rerank_candidates(items, scores, 2, diversity=0.3)


@pytest.fixture(scope="module")
def sample_ease(sample_dataset) -> LoadedRun:
    parts = split(sample_dataset, "loo", 42)
    model = make_model("ease").fit(parts.train)
    model.set_history(parts.known_for("test"))
    return LoadedRun({"run_id": None, "model": "ease"}, sample_dataset, parts, model)


def test_curve_at_weight_zero_matches_the_evaluator(sample_ease):
    curve = tradeoff_curve(sample_ease, weights=[0.0], max_users=None)
    result = evaluate(sample_ease.model, sample_ease.split, "test", ks=(10,))
    row = curve.iloc[0]
    for name in ("ndcg@10", "novelty@10", "coverage@10", "diversity@10"):
        # one ranking routine and tie rule: the same lists, so the same numbers
        assert row[name] == pytest.approx(result.metrics[name], rel=1e-9), name


def test_diversity_weight_raises_intra_list_diversity_on_sample_data(sample_ease):
    curve = tradeoff_curve(sample_ease, weights=[0.0, 0.3, 0.7], max_users=400)
    div = curve["diversity@10"].to_numpy()
    assert div[1] > div[0] + 0.02 and div[2] > div[1]
    assert curve["ndcg@10"].iloc[0] >= curve["ndcg@10"].iloc[2]  # diversity costs accuracy
    novel = tradeoff_curve(sample_ease, weights=[0.0, 0.5], kind="novelty", max_users=400)
    assert novel["novelty@10"].iloc[1] > novel["novelty@10"].iloc[0]
    assert item_similarity(sample_ease.model, sample_ease.split.train).basis == "categories"


def test_recommend_reranked_is_the_model_top_k_at_zero(sample_ease):
    users = np.array([0, 5, 9])
    plain, _ = sample_ease.model.recommend(users, 10, seed=sample_ease.split.seed)
    np.testing.assert_array_equal(recommend_reranked(sample_ease, users, 10), plain)
    diverse = recommend_reranked(sample_ease, users, 10, diversity=0.8)
    cats = sample_ease.dataset.items["category"].to_numpy()
    assert all(len(set(cats[d])) >= len(set(cats[p])) for d, p in zip(diverse, plain, strict=True))


def test_similarity_falls_back_to_model_weights_then_co_occurrence(planted_dataset, monkeypatch):
    parts = split(planted_dataset, "loo", 42)  # no categories, no embeddings
    codes = torch.from_numpy(planted_dataset.item_codes(["i2", "i5", "i40"]))[None]  # (1, 3)
    knn = item_similarity(make_model("itemknn").fit(parts.train), parts.train)
    assert knn.basis == "item-item weights"
    pairs = knn.pairwise(codes)[0]  # (3, 3)
    assert torch.allclose(pairs, pairs.T) and float(pairs.min()) >= 0 and float(pairs.max()) <= 1
    assert pairs[0, 1] > pairs[0, 2]  # same planted block is more similar than the other block
    pop = item_similarity(make_model("pop").fit(parts.train), parts.train)
    assert pop.basis == "co-occurrence"
    # a model whose weights are sparse (the lowrank EASE) is not even asked for them
    lowrank = make_model("ease", solver="lowrank", rank=8, l2=20.0).fit(parts.train)
    assert not lowrank.has_dense_weights()
    monkeypatch.setattr(lowrank, "item_weights", lambda: pytest.fail("weights computed"))
    assert item_similarity(lowrank, parts.train).basis == "co-occurrence"
    pairs = pop.pairwise(codes)[0]
    assert pairs[0, 0] == pytest.approx(1.0, abs=1e-5) and pairs[0, 1] > pairs[0, 2]
