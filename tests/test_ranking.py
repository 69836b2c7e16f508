"""The one ranking routine (core/eval/ranking.py): its tie rule and its exclusion rule.

Issue 10, item 2: torch.topk ordered equal scores differently for different k, so stored
and evaluated lists disagreed, and all-equal scores came back in code (= row) order.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from core.eval.ranking import (
    DeviceCsr,
    known_flat_indices,
    rank_users,
    shared_top_k,
    tie_keys,
    top_k,
)

N_USERS, N_ITEMS = 40, 30


def tied_scores(seed: int = 0) -> torch.Tensor:
    """(N_USERS, N_ITEMS) scores with many ties: whole numbers 0..3."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 4, size=(N_USERS, N_ITEMS)).astype(np.float32))


def users(n: int = N_USERS) -> torch.Tensor:
    return torch.arange(n)


def reference(scores: np.ndarray, user: int, k: int, seed: int, excluded=()) -> list[int]:
    """Slow reference: sort candidates by (score, tie key), both descending."""
    keys = tie_keys(torch.tensor([user]), scores.shape[0], seed)[0].numpy()
    cands = [j for j in range(scores.shape[0]) if j not in set(excluded)]
    return sorted(cands, key=lambda j: (-float(scores[j]), -int(keys[j])))[:k]


def test_matches_a_slow_lexicographic_sort():
    scores = tied_scores()
    items, values = top_k(scores, 12, users=users(), seed=5)
    for u in range(N_USERS):
        assert items[u].tolist() == reference(scores[u].numpy(), u, 12, 5)
        assert values[u].tolist() == scores[u, items[u]].tolist()


def test_top_5_is_a_prefix_of_top_20_for_every_user():
    scores = tied_scores(1)
    short, short_values = top_k(scores, 5, users=users(), seed=3)
    long, long_values = top_k(scores, 20, users=users(), seed=3)
    assert torch.equal(short, long[:, :5]) and torch.equal(short_values, long_values[:, :5])
    full, _ = top_k(scores, N_ITEMS, users=users(), seed=3)
    assert torch.equal(long, full[:, :20])
    # ties are really there, so the prefix property is not the trivial one
    assert (long_values[:, 4] == long_values[:, 5]).any()


def test_result_does_not_depend_on_batch_size_or_row_position():
    scores = tied_scores(2)
    known = sp.random(N_USERS, N_ITEMS, density=0.2, format="csr", random_state=0)
    wanted = np.array([3, 17, 0, 39, 17, 8])

    def score_fn(batch):
        return scores[torch.from_numpy(np.asarray(batch))]

    lists = [rank_users(score_fn, wanted, 10, known=known, seed=7, batch_size=bs) for bs in (1, 4)]
    lists.append(rank_users(score_fn, wanted, 10, known=known, seed=7))
    for items, values in lists[1:]:
        np.testing.assert_array_equal(items, lists[0][0])
        np.testing.assert_array_equal(values, lists[0][1])
    # a user's list is the same wherever the user sits in a batch (rows 1 and 4 are user 17)
    np.testing.assert_array_equal(lists[0][0][1], lists[0][0][4])


def test_all_equal_scores_are_not_returned_in_code_order():
    flat = torch.zeros((N_USERS, N_ITEMS))
    items, _ = top_k(flat, 10, users=users(), seed=0)
    code_order = list(range(10))
    assert all(row != code_order for row in items.tolist())
    # a pseudo-random order per user: users differ, and low codes are not favoured
    assert len({tuple(row) for row in items.tolist()}) == N_USERS
    mean_code = items.double().mean().item()
    assert abs(mean_code - (N_ITEMS - 1) / 2) < 2.0
    # fixed by the seed: the same seed gives the same lists, another seed other lists
    assert torch.equal(items, top_k(flat, 10, users=users(), seed=0)[0])
    assert not torch.equal(items, top_k(flat, 10, users=users(), seed=1)[0])


def test_excluded_items_never_come_back_and_short_lists_are_padded():
    scores = tied_scores(3)[:2]
    mask = torch.zeros_like(scores, dtype=torch.bool)
    mask[0, :25] = True  # user 0 has 5 candidates left
    mask[1, [2, 4]] = True
    items, values = top_k(scores, 8, users=torch.tensor([0, 1]), exclude=mask, seed=0)
    assert items[0, 5:].tolist() == [-1, -1, -1] and torch.isneginf(values[0, 5:]).all()
    assert set(items[0, :5].tolist()) == set(range(25, 30))
    assert not {2, 4} & set(items[1].tolist())
    # the same exclusion as flat indices (what the evaluator passes) gives the same lists
    flat = torch.nonzero(mask.view(-1)).view(-1)
    same, _ = top_k(scores, 8, users=torch.tensor([0, 1]), exclude=flat, seed=0)
    assert torch.equal(items, same)
    # a catalogue smaller than k: every row padded to k
    small, _ = top_k(scores[:, :3], 5, users=torch.tensor([0, 1]), seed=0)
    assert small.shape == (2, 5) and (small[:, 3:] == -1).all()


def test_non_finite_and_signed_zero_scores():
    scores = torch.tensor([[float("nan"), -0.0, float("-inf"), 0.0, 1.0, float("inf")]])
    exclude = torch.tensor([[False, False, False, False, True, False]])
    items, values = top_k(scores, 6, users=torch.tensor([0]), exclude=exclude, seed=0)
    order = items[0].tolist()
    # +inf first; the two zeros tie (either order); -inf and NaN (ranked as -inf) after
    # every finite score; the excluded item last, as -1
    assert order[0] == 5 and set(order[1:3]) == {1, 3} and set(order[3:5]) == {0, 2}
    assert order[5] == -1 and torch.isneginf(values[0, 5])
    keys = tie_keys(torch.tensor([0]), 6, 0)[0]
    assert order[1:3] == sorted([1, 3], key=lambda j: -int(keys[j]))


def test_known_flat_indices_and_device_csr_agree():
    known = sp.random(N_USERS, N_ITEMS, density=0.3, format="csr", random_state=1)
    rows = np.array([5, 0, 33])
    host = known_flat_indices(known, rows, N_ITEMS, torch.device("cpu"))
    dev = DeviceCsr(known, torch.device("cpu"))
    assert sorted(host.tolist()) == sorted(dev.flat(torch.from_numpy(rows)).tolist())
    cols = torch.tensor([[-1] + list(range(N_ITEMS))] * len(rows))  # -1: a list's padding
    found = dev.contains(torch.from_numpy(rows), cols).numpy()
    assert not found[:, 0].any()
    np.testing.assert_array_equal(found[:, 1:], known[rows].toarray() != 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_lists_equal_cpu_lists():
    scores = tied_scores(4)
    cpu, _ = top_k(scores, 15, users=users(), seed=9)
    gpu, _ = top_k(scores.cuda(), 15, users=users().cuda(), seed=9)
    assert torch.equal(cpu, gpu.cpu())


def rule_reference(scores: np.ndarray, user: int, k: int, seed: int, excluded=()) -> list[int]:
    """The tie rule spelled out: NaN below -inf, -inf as the lowest float, +inf as the
    highest, -0.0 equal to 0.0, then the tie key; excluded items never come back."""
    keys = tie_keys(torch.tensor([user]), len(scores), seed)[0].numpy()
    big = float(np.finfo(np.float32).max)

    def key(j: int) -> tuple:
        x = float(scores[j])
        return (0, 0.0, 0) if np.isnan(x) else (1, min(max(x, -big), big) + 0.0, int(keys[j]))

    cands = [j for j in range(len(scores)) if j not in set(excluded)]
    ranked = sorted(cands, key=key, reverse=True)[:k]
    return ranked + [-1] * (k - len(ranked))


def test_float_preselection_equals_the_full_key_rule_on_heavy_ties(monkeypatch):
    """rank_block's float top-k + candidate keys (issue 15) gives the rule's lists exactly,
    also where ties run past its margin (those rows take the full-key path)."""
    from core.eval import ranking

    full_rows = []
    full = ranking._top_k_full
    monkeypatch.setattr(
        ranking, "_top_k_full", lambda s, *a: full_rows.append(len(s)) or full(s, *a)
    )
    rng = np.random.default_rng(3)
    n_users, n_items = 60, 200
    # few levels: most rows have more than the margin tied at the k-th score, some do not
    levels = rng.choice([2, 3, 50, 1000], size=(n_users, 1))
    scores = np.floor(rng.random((n_users, n_items)) * levels).astype(np.float32)
    special = [np.nan, np.inf, -np.inf, -0.0, np.finfo(np.float32).min]
    scores[rng.random(scores.shape) < 0.08] = rng.choice(special)
    scores[:3] = rng.choice(special, size=(3, n_items))  # rows of non-finite scores only
    mask = rng.random(scores.shape) < 0.3
    mask[3] = True  # a user with nothing left to rank
    for k in (1, 10, 40):
        for exclude in (torch.from_numpy(mask), torch.from_numpy(np.flatnonzero(mask))):
            items, values = top_k(
                torch.from_numpy(scores), k, users=users(n_users), exclude=exclude, seed=k
            )
            for u in range(n_users):
                want = rule_reference(scores[u], u, k, k, np.flatnonzero(mask[u]))
                assert items[u].tolist() == want, (k, u)
                got = values[u].numpy()
                real = np.asarray(want) >= 0
                np.testing.assert_array_equal(got[real], scores[u, np.asarray(want)[real]])
                assert np.isneginf(got[~real]).all()
    assert 0 < sum(full_rows) < 6 * n_users  # both paths were taken


@pytest.mark.parametrize("k", [1, 5, 20, 400])
def test_shared_scores_give_the_block_lists(k):
    """Issue 15: scores equal for every user (popularity) are ranked once; the lists equal
    `top_k` on the full block, also where the cut falls inside a tie group (counts 0..4 over
    300 items) and for users who know all but a few items (short lists, -1 padded)."""
    rng = np.random.default_rng(5)
    n_users, n_items = 60, 300
    row = torch.from_numpy(rng.integers(0, 5, size=n_items).astype(np.float32))
    known = sp.random(n_users, n_items, density=0.05, random_state=1, format="lil")
    known[0, 3:] = 1.0  # knows all but three items
    known[1, :] = 1.0  # knows everything
    known = sp.csr_matrix(known)
    known.data[:] = 1.0
    codes = torch.from_numpy(rng.permutation(1000)[:n_users])  # user codes seed the ties
    expected, _ = top_k(
        row.expand(n_users, -1).contiguous(),
        k,
        users=codes,
        exclude=torch.from_numpy(known.toarray().astype(bool)),
        seed=9,
    )
    by_code = sp.lil_matrix((1000, n_items))  # rows by user code, as the evaluator's
    by_code[codes.numpy()] = known
    by_code = DeviceCsr(sp.csr_matrix(by_code), row.device)
    got = shared_top_k(row, k, users=codes, known=by_code, seed=9)
    assert torch.equal(got, expected)
    assert (got[1] == -1).all() and (got[0, :3] >= 0).all() and (got[0, 3:] == -1).all()
