"""Run comparison: leaderboard, segments, overlap and comparability on hand-made runs; the
paired test on real runs of the sample data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import RecScopeError
from core.eval import compare as C
from core.runs.pipeline import new_run, train_run
from core.runs.store import RunStore
from core.storage import write_parquet
from dashboard import views as V
from tests.helpers import fake_run


@pytest.fixture
def toy(home):
    store = RunStore(home)
    a = fake_run(
        store,
        "pop",
        {"ndcg@10": 0.1, "recall@10": 0.2, "ndcg@5": 0.05, "auc": 0.7, "novelty@10": 3.0},
        {0: [1, 2, 3], 1: [1, 2, 4]},
    )
    b = fake_run(
        store,
        "ease",
        {"ndcg@10": 0.3, "recall@10": 0.4, "ndcg@5": 0.2, "auc": 0.9, "novelty@10": 5.0},
        {0: [3, 4, 5], 1: [1, 2, 4], 2: [9]},
    )
    return store, a, b


def test_leaderboard_keeps_metrics_at_k_sorted_by_ndcg(toy):
    store, a, b = toy
    table = C.leaderboard(C.load_records(store, [a, b]), k=10)
    assert list(table["run_id"]) == [b, a]
    assert {"ndcg@10", "recall@10", "auc", "novelty@10"} <= set(table.columns)
    assert "ndcg@5" not in table.columns
    assert table.loc[0, "recall@10"] == pytest.approx(0.4)
    points = C.accuracy_novelty(C.load_records(store, [a, b]), k=10)
    assert points.set_index("run_id").loc[a, "novelty@10"] == pytest.approx(3.0)


def test_overlap_is_mean_jaccard_over_shared_users(toy):
    store, a, b = toy
    table = C.overlap(store, [a, b], k=3)
    # user 0: {1,2,3} vs {3,4,5} -> 1/5; user 1: identical -> 1; user 2 only in b (left out)
    assert table.loc[a, b] == pytest.approx((0.2 + 1.0) / 2)
    assert table.loc[b, a] == table.loc[a, b] and table.loc[a, a] == 1.0
    # at k=1: user 0: {1} vs {3} -> 0; user 1: {1} vs {1} -> 1
    assert C.overlap(store, [a, b], k=1).loc[a, b] == pytest.approx(0.5)


def test_segment_table_has_one_column_per_run(toy):
    store, a, b = toy
    table = C.segment_table(store, [a, b], "ndcg@10")
    row = table.set_index(["segment_kind", "segment"]).loc[("activity", "1-5")]
    assert row[a] == pytest.approx(0.05) and row[b] == pytest.approx(0.15)
    with pytest.raises(RecScopeError, match="not in the segments"):
        C.segment_table(store, [a, b], "nope@10")


def test_runs_on_other_data_or_splits_are_refused(toy):
    store, a, b = toy
    other = fake_run(store, "ease", {"ndcg@10": 0.3}, {0: [1]}, split="temporal")
    with pytest.raises(RecScopeError, match="differ in split"):
        C.check_comparable(C.load_records(store, [a, other]))
    elsewhere = fake_run(store, "ease", {"ndcg@10": 0.3}, {0: [1]}, dataset="other")
    with pytest.raises(RecScopeError, match="differ in dataset"):
        C.overlap(store, [a, elsewhere], k=3)
    r1 = fake_run(store, "ease", {"ndcg@10": 0.3}, {0: [1]}, split="random", seed=1)
    r2 = fake_run(store, "ease", {"ndcg@10": 0.3}, {0: [1]}, split="random", seed=2)
    with pytest.raises(RecScopeError, match="different seeds"):
        C.check_comparable(C.load_records(store, [r1, r2]))
    store.update(b, status="failed")
    with pytest.raises(RecScopeError, match="not finished"):
        C.leaderboard(C.load_records(store, [a, b]))


def test_paired_test_finds_ease_better_than_pop_on_sample_data(home, sample_dataset):
    sample_dataset.save(home)
    store = RunStore(home)
    pop = new_run(store, "sample", "pop")
    ease = new_run(store, "sample", "ease")
    train_run(store, pop)
    train_run(store, ease)
    table = C.paired_table(store, [ease], "ndcg@10", baseline_run=pop)
    row = table.iloc[0]
    assert row["run_id"] == ease and row["baseline"] == pop
    assert row["mean_diff"] > 0 and row["ci_low"] > 0
    assert row["p_value"] < 0.05 and bool(row["significant"])
    assert row["mean_run"] == pytest.approx(store.read(ease)["metrics"]["test"]["ndcg@10"])
    overlap = C.overlap(store, [pop, ease], k=10).loc[pop, ease]
    assert 0.0 <= overlap < 0.5  # a personalised model's lists are mostly not the top sellers
    seg = C.segment_table(store, [pop, ease], "ndcg@10")
    allrow = seg[seg.segment_kind == "all"].iloc[0]
    assert allrow[ease] > allrow[pop]
    assert np.isfinite(seg[ease]).all()


def test_paired_table_holm_corrects_several_runs_against_one_baseline(home):
    """Issue 10, item 2b: three runs against one baseline, p-values Holm-adjusted."""
    store = RunStore(home)
    users = list(range(40))
    base = fake_run(store, "pop", {"ndcg@10": 0.1}, {u: [1] for u in users})
    noise = np.random.default_rng(1).normal(0, 0.1, len(users))  # the same for every run
    # Wilcoxon alone: clear p ~ 1e-11, weak p ~ 0.029, none p ~ 0.70; Holm doubles weak's
    shifts = {"clear": 0.2, "weak": 0.027, "none": 0.0}
    runs = {}
    for name, shift in shifts.items():
        runs[name] = fake_run(store, name, {"ndcg@10": 0.1}, {u: [1] for u in users})
        per_user = pd.read_parquet(store.folder(runs[name]) / "per_user.parquet")
        per_user["ndcg@10"] = 0.1 + shift + noise
        write_parquet(store.folder(runs[name]) / "per_user.parquet", per_user)
    table = C.paired_table(store, list(runs.values()), "ndcg@10", baseline_run=base)
    assert table["p_holm"].tolist() == pytest.approx(C.holm(table["p_value"]).tolist())
    assert (table["p_holm"] >= table["p_value"]).all()
    assert table["significant"].tolist() == (table["p_holm"] < 0.05).tolist()
    by_name = table.set_index("model")
    # the weak shift passes alone (p < 0.05) but not once corrected for three tests
    assert by_name.loc["weak", "p_value"] < 0.05 <= by_name.loc["weak", "p_holm"]
    assert bool(by_name.loc["clear", "significant"]) and not bool(
        by_name.loc["weak", "significant"]
    )
    # the page's sentence quotes the corrected p-value
    row = by_name.reset_index().iloc[list(by_name.index).index("weak")].to_dict()
    sentence = V.paired_sentence(row, "weak", "pop")
    assert sentence.startswith("weak and pop are not clearly different")
    assert f"Holm-adjusted {V.format_p(row['p_holm'])}" in sentence


def test_both_map_forms_are_labelled_with_their_convention():
    """Issue 10, item 2b: MAP@k is shown as RecBole computes it, the trec_eval form beside."""
    assert V.metric_label("map@10") == "MAP@10 (÷min(|T|,k), RecBole)"
    assert V.metric_label("map_trec@10") == "MAP@10 (÷|T|, trec_eval)"
    assert V.ACCURACY.index("map_trec") == V.ACCURACY.index("map") + 1
