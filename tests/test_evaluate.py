"""Full-ranking evaluator: exclusion rules, hand-computed values, batching, segments."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from core.data.dataset import Dataset
from core.data.split import split
from core.errors import ParameterError
from core.eval.evaluate import evaluate, ranking_metric
from core.models.base import RecommenderBase
from core.models.pop import Popularity

INF = float("-inf")


class FixedScores(RecommenderBase):
    """Scores every user from a fixed (n_users, n_items) matrix; records history calls."""

    name = "fixed"

    def __init__(self, matrix=None, embeddings=None) -> None:
        self.matrix = matrix
        self.embeddings = embeddings
        self.history_calls = 0

    def fit(self, train, valid=None, progress=None):
        self._start_fit(train)
        self.history_calls = 0
        return self

    def set_history(self, known) -> None:
        super().set_history(known)
        self.history_calls += 1

    def score(self, user_codes, item_codes=None) -> torch.Tensor:
        users = torch.as_tensor(np.asarray(user_codes), dtype=torch.long)
        return torch.as_tensor(np.asarray(self.matrix), dtype=torch.float32)[users]

    def item_embeddings(self):
        return None if self.embeddings is None else np.asarray(self.embeddings, dtype=np.float32)

    def _state(self):
        return {}

    def _set_state(self, state) -> None:
        pass


class RatingModel(FixedScores):
    def predict_ratings(self, user_codes, item_codes) -> np.ndarray:
        return np.full(len(user_codes), 3.0)


@pytest.fixture
def tiny():
    """4 users x 6 items, leave-last-out by time.

    u0: i0 i1 | valid i2 | test i3        u1: i4 | valid i5 | test i0
    u2: i1 i2 (too few: train only)       u3: i0 | valid i1 | test i0 (already known)
    """
    rows = [
        ("u0", "i0", 0, 5.0, "app"),
        ("u0", "i1", 1, 5.0, "app"),
        ("u0", "i2", 2, 5.0, "web"),
        ("u0", "i3", 3, 4.0, "app"),
        ("u1", "i4", 0, 5.0, "web"),
        ("u1", "i5", 1, 5.0, "web"),
        ("u1", "i0", 2, 1.0, "web"),
        ("u2", "i1", 0, 5.0, "app"),
        ("u2", "i2", 1, 5.0, "app"),
        ("u3", "i0", 0, 5.0, "app"),
        ("u3", "i1", 1, 5.0, "app"),
        ("u3", "i0", 2, 5.0, "app"),
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating", "scenario"])
    items = pd.DataFrame(
        {"item_id": [f"i{j}" for j in range(6)], "category": ["a", "a", "b", "b", "a", None]}
    )
    ds = Dataset.from_frames("tiny", frame, items=items)
    parts = split(ds, "loo")
    scores = [
        [6, 5, 9, 2.5, 3, 2],  # u0: i2 (valid) scores highest; on test it must be excluded
        [2.5, 2.7, 3, 4, 5, 6],
        [1, 1, 1, 1, 1, 1],
        [9, 1, 1, 1, 1, 1],
    ]
    return ds, parts, scores


def test_test_part_excludes_train_and_valid_items_hand_values(tiny):
    ds, parts, scores = tiny
    model = FixedScores(scores).fit(parts.train)
    res = evaluate(model, parts, "test", ks=(2, 5))
    # history became train + valid (one call)
    # u0 3 + u1 2 + u2 2 + u3 2 distinct known pairs
    assert model.history_calls == 1 and model.history_.nnz == 9
    # u0 ranks i4 (3), i3 (2.5), i5 (2): i0, i1 (train) and i2 (valid) excluded; test i3 at 2
    # u1 ranks i3, i2, i1, i0 (i4 train, i5 valid excluded): test i0 at rank 4
    assert res.top_items.tolist() == [[4, 3, 5, -1, -1], [3, 2, 1, 0, -1]]
    assert res.per_user["user_code"].tolist() == [0, 1]
    pu = res.per_user.set_index("user_code")
    assert pu.loc[0, "ndcg@5"] == pytest.approx(1 / math.log2(3))
    assert pu.loc[1, "ndcg@5"] == pytest.approx(1 / math.log2(5))
    assert pu["mrr@5"].tolist() == pytest.approx([1 / 2, 1 / 4])
    assert pu["map@5"].tolist() == pytest.approx([1 / 2, 1 / 4])
    assert pu["precision@5"].tolist() == pytest.approx([0.2, 0.2])
    assert pu["hit@2"].tolist() == [1.0, 0.0] and pu["recall@2"].tolist() == [1.0, 0.0]
    # AUC: u0's i3 beats i5, loses to i4 -> 1/2; u1's i0 is last of 4 candidates -> 0
    assert pu["auc"].tolist() == pytest.approx([0.5, 0.0])
    m = res.metrics
    assert m["ndcg@5"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / 2)
    assert m["hit@2"] == pytest.approx(0.5) and m["auc"] == pytest.approx(0.25)
    assert pu["n_truth"].tolist() == [1, 1] and pu["n_known"].tolist() == [3, 2]
    # u3's only test item (i0) is already known: not scored, and said so
    assert res.n_users == 2 and res.n_skipped == 1
    assert res.excluded == "Excluded from ranking: each user's training and validation items."
    assert any("1 users were not scored" in note for note in res.notes)


def test_valid_part_excludes_only_training_items(tiny):
    ds, parts, scores = tiny
    model = FixedScores(scores).fit(parts.train)
    res = evaluate(model, parts, "valid", ks=(5,))
    # u0: valid i2 scores 9, first among non-train items; u1: valid i5 scores 6, first
    # u3: valid i1 ties the other candidates at 1 -> rank decided by topk, checked via AUC
    assert res.excluded == "Excluded from ranking: each user's training items."
    assert model.history_.nnz == len(parts.train)
    pu = res.per_user.set_index("user_code")
    assert pu.loc[0, "ndcg@5"] == 1.0 and pu.loc[1, "ndcg@5"] == 1.0
    # u3 knows i0; candidates i1..i5 all score 1: every pair with i1 is a tie -> AUC 1/2
    assert pu.loc[3, "auc"] == pytest.approx(0.5)


def test_beyond_accuracy_hand_values(tiny):
    ds, parts, scores = tiny
    res = evaluate(FixedScores(scores).fit(parts.train), parts, "test", ks=(2, 5))
    m = res.metrics
    # top-2 lists: u0 [i4, i3], u1 [i3, i2] -> items {2, 3, 4} of 6
    assert m["coverage@2"] == pytest.approx(0.5)
    # counts [0, 0, 1, 2, 1, 0] sorted [0,0,0,1,1,2]: (1*1 + 3*1 + 5*2) / (6 * 4) = 7/12
    assert m["gini@2"] == pytest.approx(7 / 12)
    # known popularity (distinct users, train+valid): i0 2, i1 3, i2 2, i3 0, i4 1, i5 1
    # avg_pop@2: u0 (1 + 0) / 2, u1 (0 + 2) / 2 -> 0.75
    assert m["avg_pop@2"] == pytest.approx(0.75)
    # share = max(pop, 1) / 4 users: i4, i3 -> 1/4 (2 bits), i2 -> 1/2 (1 bit)
    assert m["novelty@2"] == pytest.approx((2.0 + 1.5) / 2)
    # head = ceil(0.2 * 6) = 2 most popular: i1, then i0 (ties with i2 broken by code)
    # top-5: u0 [i4, i3, i5] all tail -> 1; u1 [i3, i2, i1, i0] -> 2 of 4 -> mean 0.75
    assert m["tail_share@5"] == pytest.approx(0.75)
    # category diversity: u0 a, b, missing -> all pairs differ = 1;
    # u1 b, b, a, a -> 4 of 6 pairs differ -> mean (1 + 2/3) / 2
    assert m["diversity@5"] == pytest.approx(5 / 6)
    assert any("different categories" in note for note in res.notes)
    # every item has <= 5 training interactions -> all test items cold; u0 hit at 2
    assert m["cold_item_recall@2"] == pytest.approx(0.5)
    assert m["cold_item_recall@5"] == pytest.approx(1.0)
    # the model has no predict_ratings -> no rating errors
    assert "rmse" not in m


def test_embedding_diversity_and_rating_errors(tiny):
    ds, parts, scores = tiny
    model = RatingModel(scores, embeddings=np.eye(6)).fit(parts.train)
    res = evaluate(model, parts, "test", ks=(5,))
    # orthogonal embeddings: every pair has cosine 0 -> diversity 1
    assert res.metrics["diversity@5"] == pytest.approx(1.0)
    assert any("embeddings" in note for note in res.notes)
    # test ratings 4 (u0), 1 (u1), 5 (u3) against 3: errors 1, -2, 2
    assert res.metrics["rmse"] == pytest.approx(math.sqrt(9 / 3))
    assert res.metrics["mae"] == pytest.approx(5 / 3)


def test_segments_partition_users_and_scenario(tiny):
    ds, parts, scores = tiny
    res = evaluate(FixedScores(scores).fit(parts.train), parts, "test", ks=(5,))
    seg = res.segments
    assert list(seg.columns[:3]) == ["segment_kind", "segment", "n_users"]
    kinds = {"all", "history", "activity", "cold_user", "cold_item", "scenario"}
    assert set(seg["segment_kind"]) == kinds
    for _kind, rows in seg.groupby("segment_kind"):
        assert rows["n_users"].sum() == res.n_users
    scen = seg[seg["segment_kind"] == "scenario"].set_index("segment")
    # u0's test interaction is on 'app', u1's on 'web'
    assert scen["n_users"].to_dict() == {"app": 1, "web": 1}
    assert scen.loc["app", "ndcg@5"] == pytest.approx(1 / math.log2(3))
    assert seg[seg["segment_kind"] == "activity"]["segment"].tolist() == ["1-5"]


def _reference(scores: np.ndarray, truth: set, known: set, k: int) -> tuple[float, float, float]:
    """Slow per-user NDCG@k, recall@k and AUC, written independently of core.eval.metrics."""
    cands = [j for j in range(len(scores)) if j not in known]
    ranked = sorted(cands, key=lambda j: -scores[j])[:k]
    dcg = sum(1 / math.log2(r + 2) for r, j in enumerate(ranked) if j in truth)
    idcg = sum(1 / math.log2(r + 2) for r in range(min(len(truth), k)))
    negs = [j for j in cands if j not in truth]
    wins = sum(
        (scores[p] > scores[q]) + 0.5 * (scores[p] == scores[q]) for p in truth for q in negs
    )
    auc = wins / (len(truth) * len(negs)) if negs else float("nan")
    return dcg / idcg, sum(j in truth for j in ranked) / len(truth), auc


def test_matches_slow_reference_and_batch_size_does_not_matter(planted_dataset):
    parts = split(planted_dataset, "random", seed=3)
    rng = np.random.default_rng(0)
    scores = rng.random((planted_dataset.n_users, planted_dataset.n_items))
    model = FixedScores(scores).fit(parts.train)
    full = evaluate(model, parts, "test")
    known = parts.known_for("test").csr().tolil().rows
    truth = parts.test.csr().tolil().rows
    for u in full.per_user["user_code"].head(25):
        ref = _reference(scores[u], set(truth[u]) - set(known[u]), set(known[u]), 10)
        pu = full.per_user.set_index("user_code").loc[u]
        assert pu["ndcg@10"] == pytest.approx(ref[0])
        assert pu["recall@10"] == pytest.approx(ref[1])
        assert pu["auc"] == pytest.approx(ref[2])
    for bs in (1, 7):
        other = evaluate(model, parts, "test", batch_size=bs)
        pd.testing.assert_frame_equal(other.per_user, full.per_user)
        assert np.array_equal(other.top_items, full.top_items)
        assert other.metrics == pytest.approx(full.metrics)


def test_ranking_metric_fast_path(tiny, planted_dataset):
    parts = split(planted_dataset, "loo")
    scores = np.random.default_rng(1).random((planted_dataset.n_users, planted_dataset.n_items))
    model = FixedScores(scores).fit(parts.train)
    res = evaluate(model, parts, "test")
    calls = model.history_calls
    known = parts.known_for("test")
    for metric in ("ndcg", "recall", "hit", "mrr", "map", "precision"):
        got = ranking_metric(model, parts.test, known, k=10, metric=metric)
        assert got == pytest.approx(res.metrics[f"{metric}@10"])
    assert ranking_metric(model, parts.test, known, metric="auc") == pytest.approx(
        res.metrics["auc"]
    )
    assert model.history_calls == calls  # the fast path never touches history
    # a subset of users gives a mean of those users' values
    sub = ranking_metric(model, parts.test, known, k=10, max_users=30)
    assert 0.0 <= sub <= 1.0 and sub != pytest.approx(res.metrics["ndcg@10"], abs=1e-12)
    with pytest.raises(ParameterError, match="Metric 'dcg'"):
        ranking_metric(model, parts.test, known, metric="dcg")


def test_bad_part_and_cutoffs(tiny):
    ds, parts, scores = tiny
    model = FixedScores(scores).fit(parts.train)
    with pytest.raises(ParameterError, match="'train'"):
        evaluate(model, parts, "train")
    with pytest.raises(ParameterError) as caught:
        evaluate(model, parts, "test", ks=(0, 5))
    assert str(caught.value) == "Cut-offs k must be positive whole numbers; got (0, 5)."
    with pytest.raises(ParameterError) as caught:  # above the catalogue (6 items; 20 allowed)
        evaluate(model, parts, "test", ks=(5, 30))
    assert str(caught.value) == "k must be between 1 and 20 (the number of items is 6); got 30."


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_scores_match_cpu(planted_dataset):
    class OnCuda(FixedScores):
        def score(self, user_codes, item_codes=None):
            return super().score(user_codes).cuda()

    parts = split(planted_dataset, "random", seed=3)
    scores = np.random.default_rng(0).random((planted_dataset.n_users, planted_dataset.n_items))
    cpu = evaluate(FixedScores(scores).fit(parts.train), parts, "test")
    gpu = evaluate(OnCuda(scores).fit(parts.train), parts, "test")
    assert np.array_equal(cpu.top_items, gpu.top_items)
    for name, value in cpu.metrics.items():
        assert gpu.metrics[name] == pytest.approx(value, rel=1e-6, abs=1e-9), name


def test_summary_is_strict_json_and_empty_part_gives_empty_result(tiny):
    import json

    ds, parts, scores = tiny
    res = evaluate(FixedScores(scores).fit(parts.train), parts, "test", ks=(5,))
    record = json.loads(json.dumps(res.summary(), allow_nan=False))
    assert record["n_users"] == 2 and record["n_skipped"] == 1
    assert record["metrics"]["ndcg@5"] == pytest.approx(res.metrics["ndcg@5"])
    # every user has fewer than 3 interactions -> leave-last-out puts nothing in test
    frame = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["x", "y", "x"]})
    small = Dataset.from_frames("small", frame)
    sparts = split(small, "loo")
    empty = evaluate(FixedScores(np.ones((2, 2))).fit(sparts.train), sparts, "test")
    assert empty.n_users == 0 and empty.metrics == {"n_users": 0.0}
    assert empty.per_user.empty and empty.top_items.shape == (0, 20)
    assert "no metrics" in empty.notes[-1]


def test_users_that_cannot_be_evaluated_are_counted_not_dropped(tiny):
    ds, parts, scores = tiny
    res = evaluate(FixedScores(scores).fit(parts.train), parts, "test", ks=(5,))
    # u0, u1 scored; u3's test item is already known (skipped); u2 has 2 interactions, so
    # leave-last-out gives it no test item (unevaluable); everyone scored has a history
    assert res.counts() == {"n_users": 2, "n_skipped": 1, "n_unevaluable": 1, "n_no_history": 0}
    assert sum(res.counts().values()) - res.n_no_history == ds.n_users
    assert any("1 users could not be evaluated" in n and "fewer than 3" in n for n in res.notes)
    assert res.summary()["n_unevaluable"] == 1


def no_history_split():
    """A temporal split where three users first appear in the test window.

    30 users with 8 early interactions each (t < 100) and 3 'new' users with 9 later ones
    each (t >= 1000): 267 rows, and the last round(26.7) = 27 by time are the test part.
    """
    rng = np.random.default_rng(4)
    rows = [
        (f"u{u}", f"i{j}", int(t))
        for u in range(30)
        for t, j in enumerate(rng.choice(40, 8, replace=False))
    ]
    rows += [
        (f"new{u}", f"i{j}", 1000 + t)
        for u in range(3)
        for t, j in enumerate(rng.choice(40, 9, replace=False))
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return split(Dataset.from_frames("newcomers", frame), "temporal", seed=11)


def test_users_without_history_are_their_own_segment_and_get_no_code_order():
    parts = no_history_split()
    known, test = parts.known_for("test"), parts.test
    expected = set(np.unique(test.users)) - set(np.unique(known.users))
    assert len(expected) == 3
    flat = np.zeros((parts.train.n_users, parts.train.n_items))  # every item ties
    res = evaluate(FixedScores(flat).fit(parts.train), parts, "test", ks=(5, 10))
    assert res.n_no_history == 3 and res.n_users == len(np.unique(test.users))
    seg = res.segments[res.segments["segment_kind"] == "history"].set_index("segment")
    assert seg.loc["no known history", "n_users"] == 3
    assert seg["n_users"].sum() == res.n_users
    assert any("no known history" in n for n in res.notes)
    # their lists are the tie rule's seeded order (the split's seed), not the codes in order
    rows = res.per_user.index[res.per_user["n_known"] == 0]
    assert all(res.top_items[r].tolist() != list(range(10)) for r in rows)
    again = evaluate(FixedScores(flat).fit(parts.train), parts, "test", ks=(10,))
    np.testing.assert_array_equal(again.top_items, res.top_items[:, :10])
    other = evaluate(FixedScores(flat).fit(parts.train), parts, "test", ks=(10,), seed=99)
    assert not np.array_equal(other.top_items, again.top_items)


def test_metrics_equal_an_independent_library(sample_dataset):
    """ranx recomputes every top-k metric from the evaluated lists (issue 10, item 2b)."""
    ranx = pytest.importorskip("ranx")
    from core.models import make_model

    parts = split(sample_dataset, "random", seed=5)  # several truth items per user
    model = make_model("ease").fit(parts.train)
    ks = (5, 10, 20)
    res = evaluate(model, parts, "test", ks=ks, beyond=False)
    truth = parts.test.csr() - parts.test.csr().multiply(parts.known_for("test").csr())
    truth.eliminate_zeros()
    users = res.per_user["user_code"].to_numpy()
    qrels = {f"u{u}": {f"i{j}": 1 for j in truth[u].indices} for u in users}
    kmax = max(ks)
    run = {
        f"u{u}": {f"i{j}": float(kmax - r) for r, j in enumerate(row) if j >= 0}
        for u, row in zip(users, res.top_items, strict=True)
    }
    assert max(len(t) for t in qrels.values()) > kmax  # map@k and map_trec@k differ here
    names = {"ndcg": "ndcg", "recall": "recall", "precision": "precision", "mrr": "mrr"}
    names.update(hit="hit_rate", map_trec="map")
    wanted = [f"{theirs}@{k}" for theirs in names.values() for k in ks]
    ranx_run = ranx.Run(run)
    ranx.evaluate(ranx.Qrels(qrels), ranx_run, wanted)
    n_truth = res.per_user["n_truth"].to_numpy()
    for ours, theirs in names.items():
        for k in ks:
            got = res.per_user[f"{ours}@{k}"].to_numpy()
            ref = np.array([ranx_run.scores[f"{theirs}@{k}"][f"u{u}"] for u in users])
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9, err_msg=f"{ours}@{k}")
            assert res.metrics[f"{ours}@{k}"] == pytest.approx(ref.mean(), abs=1e-9)
            if ours == "map_trec":  # RecBole's map@k: the same sum over min(|T|, k)
                recbole = ref * n_truth / np.minimum(n_truth, k)
                np.testing.assert_allclose(res.per_user[f"map@{k}"], recbole, atol=1e-9)
    assert res.metrics["map@20"] > res.metrics["map_trec@20"]


def test_training_time_metrics_and_stored_lists_equal_a_later_evaluation(home, planted_dataset):
    from core.runs.pipeline import load_run, new_run, train_run
    from core.runs.store import RunStore

    planted_dataset.save(home)
    store = RunStore(home)
    run_id = new_run(store, "planted", "pop", split_method="loo", seed=3)
    record = train_run(store, run_id)
    assert record["counts"]["test"] == {
        "n_users": 120,
        "n_skipped": 0,
        "n_unevaluable": 0,
        "n_no_history": 0,
    }
    loaded = load_run(store, run_id)
    again = evaluate(loaded.model, loaded.split, "test", ks=(10,))
    for name, value in again.metrics.items():
        assert record["metrics"]["test"][name] == pytest.approx(value, rel=0, abs=1e-12), name
    recs = pd.read_parquet(store.folder(run_id) / "recs.parquet")
    stored = recs[recs["rank"] <= 10].sort_values(["user_code", "rank"])
    stored = stored.groupby("user_code")["item_code"].apply(list)
    evaluated = dict(zip(again.per_user["user_code"], again.top_items.tolist(), strict=True))
    assert all(stored[u] == items for u, items in evaluated.items())


class TransposedScores(FixedScores):
    """Returns each score block as a non-contiguous view (a transposed matrix's rows), as a
    sparse-product model can."""

    def score(self, user_codes, item_codes=None) -> torch.Tensor:
        users = torch.as_tensor(np.asarray(user_codes), dtype=torch.long)
        by_item = torch.as_tensor(np.asarray(self.matrix), dtype=torch.float32).T.contiguous()
        return by_item[:, users].T  # (B, n_items), strides (1, B): not contiguous


def test_non_contiguous_score_blocks_evaluate_like_contiguous_ones(planted_dataset):
    """Issue 15: item-kNN crashed in the evaluator with "view size is not compatible with
    input tensor's size and stride" on a non-contiguous score block."""
    parts = split(planted_dataset, "random", seed=3)
    scores = np.random.default_rng(1).random((planted_dataset.n_users, planted_dataset.n_items))
    odd = TransposedScores(scores).fit(parts.train)
    assert not odd.score([0, 1]).is_contiguous()
    plain = evaluate(FixedScores(scores).fit(parts.train), parts, "test", batch_size=5)
    other = evaluate(odd, parts, "test", batch_size=5)
    assert np.isfinite(other.metrics["auc"])
    pd.testing.assert_frame_equal(other.per_user, plain.per_user)
    assert np.array_equal(other.top_items, plain.top_items)


def test_tied_and_non_finite_scores_match_a_brute_force_reference(planted_dataset):
    """Issue 15's fast path (float pre-selection, sparse exclusion and hits, AUC counted on
    the masked block) against the rules spelled out: many ties, and positives scored NaN,
    -inf, +inf or the lowest float (AUC ranks NaN and -inf as the lowest float)."""
    parts = split(planted_dataset, "loo")
    rng = np.random.default_rng(11)
    n_users, n_items = planted_dataset.n_users, planted_dataset.n_items
    scores = rng.integers(0, 3, size=(n_users, n_items)).astype(np.float32)
    special = [np.nan, -np.inf, np.inf, np.finfo(np.float32).min, -0.0]
    scores[rng.random(scores.shape) < 0.1] = rng.choice(special)
    truth = parts.test.csr().tolil().rows
    known = parts.known_for("test").csr().tolil().rows
    for u in range(0, n_users, 4):  # a quarter of the users: their positive is non-finite
        scores[u, truth[u]] = special[(u // 4) % 4]
    result = evaluate(FixedScores(scores).fit(parts.train), parts, "test", beyond=False)
    big = float(np.finfo(np.float32).max)
    auc_score = np.nan_to_num(scores, nan=-big, posinf=big, neginf=-big)
    per_user = result.per_user.set_index("user_code")
    for row, u in enumerate(result.per_user["user_code"]):
        pos = set(truth[u]) - set(known[u])
        negs = [j for j in range(n_items) if j not in pos and j not in set(known[u])]
        wins = sum(
            (auc_score[u, p] > auc_score[u, q]) + 0.5 * (auc_score[u, p] == auc_score[u, q])
            for p in pos
            for q in negs
        )
        assert per_user.loc[u, "auc"] == pytest.approx(wins / (len(pos) * len(negs)), abs=1e-12)
        top = result.top_items[row]
        hits = [int(j in pos) for j in top[:10]]
        assert per_user.loc[u, "hit@10"] == float(any(hits))
        assert per_user.loc[u, "mrr@10"] == pytest.approx(
            1.0 / (hits.index(1) + 1) if any(hits) else 0.0
        )
        assert not set(top.tolist()) & set(known[u])


class BlockPop(Popularity):
    """Popularity without the UserIndependentScores ability: the (users, items) block path."""

    catalogue_scores = None


def _tied_pop_dataset() -> Dataset:
    """400 users x 500 items, 8 random items each: counts 0..~20, tie groups at every cut."""
    rng = np.random.default_rng(3)
    rows = [
        (f"u{u}", f"i{j}", t)
        for u in range(400)
        for t, j in enumerate(rng.choice(500, size=8, replace=False))
    ]
    return Dataset.from_frames(
        "ties", pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    )


@pytest.mark.parametrize("data", ["sample", "ties"])
def test_shared_scores_path_equals_the_block_path(data, sample_dataset, monkeypatch):
    """Issue 15: pop's scores are the same for every user, so the evaluator ranks the
    catalogue once (no (users, items) block); every metric, the per-user table, the
    segments and the lists equal the block path's."""
    dataset = sample_dataset if data == "sample" else _tied_pop_dataset()
    for method in ("loo", "random"):
        parts = split(dataset, method, seed=5)
        block = {
            part: evaluate(BlockPop().fit(parts.train), parts, part, ks=(1, 5, 10, 20))
            for part in ("valid", "test")
        }
        with monkeypatch.context() as patch:  # the shared path never ranks a block
            patch.setattr("core.eval.evaluate.rank_block", None)
            if data == "ties":  # AUC's sorted-keys counting, not the comparison passes
                patch.setattr("core.eval.evaluate.SHARED_COMPARE_MAX_POSITIVES", 0)
            for part, expected in block.items():
                got = evaluate(Popularity().fit(parts.train), parts, part, ks=(1, 5, 10, 20))
                assert np.array_equal(got.top_items, expected.top_items)
                pd.testing.assert_frame_equal(got.per_user, expected.per_user, check_exact=True)
                pd.testing.assert_frame_equal(got.segments, expected.segments)
                assert got.metrics.keys() == expected.metrics.keys()
                for name, value in expected.metrics.items():
                    assert got.metrics[name] == pytest.approx(value, abs=1e-12, nan_ok=True)
                assert np.isfinite(got.metrics["auc"]) and got.counts() == expected.counts()
