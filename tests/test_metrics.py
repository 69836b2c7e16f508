"""Every metric against a value computed by hand (in the comments), plus properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.eval import metrics as M

L2, L3, L4 = math.log2(2), math.log2(3), math.log2(4)  # discounts of ranks 1, 2, 3


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def n(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64)


def test_recall_precision_hit_hand_values():
    hits = t([[0, 1, 0], [1, 1, 1], [0, 0, 0]])
    n_truth = n([2, 5, 1])
    # user 0: 1 of 2 relevant found; user 1: 3 of 5; user 2: none
    assert M.recall(hits, n_truth, k=3).tolist() == pytest.approx([0.5, 0.6, 0.0])
    # recall@1: only rank 1 counts -> user 1 has 1 of 5
    assert M.recall(hits, n_truth, k=1).tolist() == pytest.approx([0.0, 0.2, 0.0])
    assert M.precision(hits, k=3).tolist() == pytest.approx([1 / 3, 1.0, 0.0])
    assert M.precision(hits, k=2).tolist() == pytest.approx([0.5, 1.0, 0.0])
    assert M.hit_rate(hits, k=3).tolist() == [1.0, 1.0, 0.0]
    assert M.hit_rate(hits, k=1).tolist() == [0.0, 1.0, 0.0]


def test_ndcg_hand_values():
    # hits [0,1,0], 2 relevant: DCG = 1/log2(3); IDCG = 1/log2(2) + 1/log2(3)
    expected0 = (1 / L3) / (1 / L2 + 1 / L3)
    # hits [1,0,1], 1 relevant... cannot have 2 hits with 1 relevant; use 3 relevant:
    # DCG = 1 + 1/log2(4); IDCG = 1 + 1/log2(3) + 1/log2(4)
    expected1 = (1 + 1 / L4) / (1 + 1 / L3 + 1 / L4)
    hits = t([[0, 1, 0], [1, 0, 1]])
    got = M.ndcg(hits, n([2, 3]), k=3)
    assert got.tolist() == pytest.approx([expected0, expected1])
    # at k=1 the second user is a perfect list, the first has nothing
    assert M.ndcg(hits, n([2, 3]), k=1).tolist() == pytest.approx([0.0, 1.0])


def test_ndcg_idcg_uses_min_of_truth_and_k():
    # 5 relevant, top-2 both hits: IDCG@2 counts only 2 ideal positions -> NDCG = 1
    assert M.ndcg(t([[1, 1, 0]]), n([5]), k=2).item() == pytest.approx(1.0)
    assert M.ideal_dcg(5, 2) == pytest.approx(1 + 1 / L3)


def test_mrr_hand_values():
    hits = t([[0, 0, 1], [0, 1, 1], [1, 0, 0], [0, 0, 0]])
    # first hits at ranks 3, 2, 1 and none
    assert M.mrr(hits, k=3).tolist() == pytest.approx([1 / 3, 1 / 2, 1.0, 0.0])
    # at k=2 the first user's hit at rank 3 is cut off
    assert M.mrr(hits, k=2).tolist() == pytest.approx([0.0, 1 / 2, 1.0, 0.0])


def test_average_precision_hand_values():
    # hits [1,0,1], 2 relevant: P@1 = 1, P@3 = 2/3 -> AP = (1 + 2/3) / min(2, 3) = 5/6
    # hits [0,1,0], 4 relevant: P@2 = 1/2 -> AP = (1/2) / min(4, 3) = 1/6
    hits = t([[1, 0, 1], [0, 1, 0]])
    assert M.average_precision(hits, n([2, 4]), k=3).tolist() == pytest.approx([5 / 6, 1 / 6])


def test_average_precision_trec_divides_by_all_relevant_items():
    # trec_eval: same numerators, divided by |T|: (1 + 2/3) / 2 = 5/6 and (1/2) / 4 = 1/8
    hits = t([[1, 0, 1], [0, 1, 0]])
    assert M.average_precision_trec(hits, n([2, 4]), k=3).tolist() == pytest.approx([5 / 6, 1 / 8])
    # a perfect top 3 of 5 relevant items: RecBole's form gives 1, trec_eval's 3/5
    perfect = t([[1, 1, 1]])
    assert M.average_precision(perfect, n([5]), k=3).item() == pytest.approx(1.0)
    assert M.average_precision_trec(perfect, n([5]), k=3).item() == pytest.approx(3 / 5)
    # with |T| <= k (e.g. leave-one-out) the two forms are the same number
    gen = torch.Generator().manual_seed(1)
    few = (torch.rand((50, 10), generator=gen) < 0.2).double()
    n_truth = few.sum(1).long().clamp(min=1)
    torch.testing.assert_close(
        M.average_precision(few, n_truth, k=10), M.average_precision_trec(few, n_truth, k=10)
    )


def test_perfect_ranking_scores_one_everywhere():
    # 3 relevant items on the first 3 ranks of a 5-long list
    hits = t([[1, 1, 1, 0, 0]])
    nt = n([3])
    for k in (1, 2, 3, 5):
        assert M.ndcg(hits, nt, k=k).item() == pytest.approx(1.0)
        assert M.average_precision(hits, nt, k=k).item() == pytest.approx(1.0)
        assert M.hit_rate(hits, k=k).item() == 1.0
        assert M.mrr(hits, k=k).item() == 1.0
    assert M.recall(hits, nt, k=3).item() == pytest.approx(1.0)
    assert M.precision(hits, k=3).item() == pytest.approx(1.0)


def test_bounds_on_random_hits():
    gen = torch.Generator().manual_seed(0)
    hits = (torch.rand((200, 20), generator=gen) < 0.2).double()
    # truth at least the number of hits (a user cannot hit more than their truth)
    nt = hits.sum(1).long() + torch.randint(0, 4, (200,), generator=gen)
    nt = nt.clamp(min=1)
    for k in (5, 10, 20):
        for values in (
            M.ndcg(hits, nt, k=k),
            M.recall(hits, nt, k=k),
            M.precision(hits, k=k),
            M.mrr(hits, k=k),
            M.average_precision(hits, nt, k=k),
        ):
            assert values.min() >= 0 and values.max() <= 1 + 1e-12
    # recall and hit rate never decrease with k
    assert (M.recall(hits, nt, k=10) >= M.recall(hits, nt, k=5)).all()
    assert (M.hit_rate(hits, k=20) >= M.hit_rate(hits, k=10)).all()


def test_auc_from_scores_hand_value():
    # 6 items; item 5 is excluded (known, -inf). Candidates 0..4 with scores
    # [0.9, 0.1, 0.5, 0.5, 0.3]; positives {2, 4} -> negatives {0, 1, 3}.
    # pairs: pos 2 (0.5) vs 0.9 lose, 0.1 win, 0.5 tie -> 1.5
    #        pos 4 (0.3) vs 0.9 lose, 0.1 win, 0.5 lose -> 1
    # AUC = 2.5 / (2 * 3) = 5/12
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.5, 0.3, float("-inf")]])
    pos = torch.tensor([[2, 4, 0]])
    valid = torch.tensor([[True, True, False]])  # third slot is padding
    below, tied = M.positive_rank_counts(scores, pos, valid)
    # below: item 2 beats {0.1, 0.3} = 2, item 4 beats {0.1} = 1; tied: item 2 ties item 3
    assert below.tolist() == [3.0] and tied.tolist() == [1.0]
    got = M.auc(below, tied, n([2]), n([5]))
    assert got.item() == pytest.approx(5 / 12)


def test_auc_perfect_and_reversed_and_no_negatives():
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    pos = torch.tensor([[0, 1], [0, 1]])
    valid = torch.ones((2, 2), dtype=torch.bool)
    below, tied = M.positive_rank_counts(scores, pos, valid)
    assert M.auc(below, tied, n([2, 2]), n([4, 4])).tolist() == pytest.approx([1.0, 0.0])
    # every candidate is relevant -> no negatives -> undefined
    assert torch.isnan(M.auc(t([1.0]), t([0.0]), n([2]), n([2]))).all()


def test_rmse_mae():
    pred, target = np.array([3.0, 4.0, 1.0]), np.array([4.0, 4.0, 3.0])
    # errors -1, 0, -2: RMSE = sqrt(5/3), MAE = 1
    assert M.rmse(pred, target) == pytest.approx(math.sqrt(5 / 3))
    assert M.mae(pred, target) == pytest.approx(1.0)
    assert math.isnan(M.rmse(np.array([]), np.array([])))


def test_gini_hand_values():
    assert M.gini(np.array([5, 5, 5, 5])) == pytest.approx(0.0)
    # one of four items takes everything: (n - 1) / n = 3/4
    assert M.gini(np.array([0, 0, 0, 8])) == pytest.approx(0.75)
    # [1, 3] sorted: (2*1-2-1)*1 + (2*2-2-1)*3 = -1 + 3 = 2; / (2 * 4) = 1/4
    assert M.gini(torch.tensor([3, 1])) == pytest.approx(0.25)
    assert M.gini(np.zeros(3)) == 0.0


def test_novelty_hand_value_and_padding():
    share = torch.tensor([0.5, 0.25, 0.125], dtype=torch.float64)
    top = torch.tensor([[0, 1], [2, 0]])
    # -log2: 1, 2, 3 -> means (1+2)/2 = 1.5 and (3+1)/2 = 2
    assert M.novelty(top, share).tolist() == pytest.approx([1.5, 2.0])
    valid = torch.tensor([[True, False], [False, False]])
    got = M.novelty(top, share, valid)
    assert got[0].item() == pytest.approx(1.0) and math.isnan(got[1].item())


def test_intra_list_diversity_embeddings_and_categories():
    emb = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    top = torch.tensor([[0, 1, 2]])
    # cosines: (0,1) = 0, (0,2) = 1, (1,2) = 0 -> mean 1/3 -> diversity 2/3
    assert M.intra_list_diversity(top, embeddings=emb).item() == pytest.approx(2 / 3)
    cats = torch.tensor([0, 0, 1])
    # pairs (0,1) same, (0,2) differ, (1,2) differ -> 2/3
    assert M.intra_list_diversity(top, categories=cats).item() == pytest.approx(2 / 3)
    valid = torch.tensor([[True, True, False]])
    # only the pair (0,1) remains: same category -> 0
    assert M.intra_list_diversity(top, categories=cats, valid=valid).item() == 0.0
    one = torch.tensor([[True, False, False]])
    assert math.isnan(M.intra_list_diversity(top, categories=cats, valid=one).item())


@pytest.mark.parametrize("kind", ["embeddings", "categories"])
def test_intra_list_diversity_equals_the_pairwise_definition(kind):
    """The O(U K d) form equals the mean over all pairs (issue 11: no (U, K, K) tensor)."""
    gen = torch.Generator().manual_seed(3)
    top = torch.randint(0, 40, (9, 12), generator=gen)
    valid = torch.rand(9, 12, generator=gen) > 0.3
    valid[0] = False  # an empty list
    valid[1, 1:] = False  # one item: no pair
    emb = torch.randn(40, 6, generator=gen)
    emb[5] = 0.0  # a zero vector has cosine 0 with everything
    cats = torch.randint(-1, 4, (40,), generator=gen)  # -1: missing, one shared group
    option = {"embeddings": emb} if kind == "embeddings" else {"categories": cats}
    got = M.intra_list_diversity(top, valid=valid, **option)
    for u in range(9):
        idx = top[u][valid[u]].tolist()
        pairs = [(a, b) for i, a in enumerate(idx) for b in idx[i + 1 :]]
        if not pairs:
            assert math.isnan(got[u].item())
            continue
        if kind == "embeddings":
            unit = torch.nn.functional.normalize(emb.double(), dim=1)
            values = [1.0 - float(unit[a] @ unit[b]) for a, b in pairs]
        else:
            values = [float(cats[a] != cats[b]) for a, b in pairs]
        assert got[u].item() == pytest.approx(sum(values) / len(values), abs=1e-6)


@pytest.mark.parametrize("n_pos", [1, 3, 9])  # both the comparison path and the sort path
def test_positive_rank_counts_match_brute_force_with_ties(n_pos):
    gen = torch.Generator().manual_seed(n_pos)
    scores = torch.randint(0, 6, (5, 30), generator=gen).float()  # many ties
    scores[:, :4] = float("-inf")  # 4 excluded items per user
    pos = torch.stack([torch.randperm(26, generator=gen)[:n_pos] + 4 for _ in range(5)])
    valid = torch.ones_like(pos, dtype=torch.bool)
    valid[0, 1:] = False  # user 0 has a single positive, the rest is padding
    below, tied = M.positive_rank_counts(scores, pos, valid)
    got = M.auc(below, tied, valid.sum(1), torch.full((5,), 26))
    for u in range(5):
        p = set(pos[u][valid[u]].tolist())
        negs = [j for j in range(4, 30) if j not in p]
        wins = sum(
            float(scores[u, i] > scores[u, j]) + 0.5 * float(scores[u, i] == scores[u, j])
            for i in p
            for j in negs
        )
        assert got[u].item() == pytest.approx(wins / (len(p) * len(negs)))
