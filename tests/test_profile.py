"""core.data.profile on a five-row dataset whose every number is computed by hand below."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.data import profile
from core.data.dataset import Dataset

DAY = 86_400
T0 = 1_699_920_000  # 2023-11-14 00:00:00 UTC


@pytest.fixture
def tiny() -> Dataset:
    """u1: i1 (web, 5), i2 (app, 3); u2: i1 (web, 4); u3: i1 (app, 5), i3 (app, 1); i4 cold."""
    inter = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u3", "u3"],
            "item_id": ["i1", "i2", "i1", "i1", "i3"],
            "timestamp": [T0 + 3600, T0 + DAY + 100, T0 + DAY + 5000, T0 + 2 * DAY, T0 + 40 * DAY],
            "rating": [5.0, 3.0, 4.0, 5.0, 1.0],
            "scenario": ["web", "app", "web", "app", "app"],
        }
    )
    items = pd.DataFrame(
        {
            "item_id": ["i1", "i2", "i3", "i4"],
            "title": ["Alien", "Brazil", "Casablanca", "Dune"],
            "category": ["scifi", "comedy", "drama", "scifi"],
        }
    )
    return Dataset.from_frames("tiny", inter, items)


def test_counts_and_sparsity(tiny):
    c = profile.counts(tiny)
    assert (c.users, c.items, c.interactions, c.pairs) == (3, 4, 5, 5)
    assert c.sparsity == pytest.approx(1 - 5 / 12)
    assert (c.active_users, c.active_items) == (3, 3)  # i4 is only in the item table


def test_item_activity_is_a_long_tail_with_zeros(tiny):
    table = profile.activity(tiny, "item")
    assert table["id"].tolist() == ["i1", "i2", "i3", "i4"]
    assert table["interactions"].tolist() == [3, 1, 1, 0]
    assert table["rank"].tolist() == [1, 2, 3, 4]
    assert table["cum_share"].tolist() == pytest.approx([0.6, 0.8, 1.0, 1.0])
    assert profile.top_share(table, 0.25) == pytest.approx(0.6)
    users = profile.activity(tiny, "user")
    assert dict(zip(users["id"], users["interactions"], strict=True)) == {
        "u1": 2,
        "u3": 2,
        "u2": 1,
    }
    with pytest.raises(ValueError):
        profile.activity(tiny, "scenario")


def test_rating_distribution(tiny):
    dist = profile.rating_distribution(tiny)
    assert dist["rating"].tolist() == [1.0, 3.0, 4.0, 5.0]
    assert dist["interactions"].tolist() == [1, 1, 1, 2]


def test_activity_over_time_by_day(tiny):
    over = profile.activity_over_time(tiny)
    days = over["period"].dt.strftime("%Y-%m-%d").tolist()
    assert days == ["2023-11-14", "2023-11-15", "2023-11-16", "2023-12-24"]
    assert over["interactions"].tolist() == [1, 2, 1, 1]
    assert over["active_users"].tolist() == [1, 2, 1, 1]


def test_milliseconds_read_as_the_same_dates(tiny):
    ms = Dataset.from_frames(
        "ms",
        pd.DataFrame({"user_id": ["a"], "item_id": ["x"], "timestamp": [(T0 + 3600) * 1000]}),
    )
    assert profile.time_values(ms).iloc[0] == pd.Timestamp("2023-11-14 01:00:00")


def test_sequence_numbers_are_binned_not_dated():
    inter = pd.DataFrame(
        {"user_id": list("aabbccddee"), "item_id": list("xyxyxyxyxy"), "timestamp": range(10)}
    )
    ds = Dataset.from_frames("seq", inter)
    assert profile.time_values(ds) is None
    over = profile.activity_over_time(ds, bins=5)
    assert over["period"].tolist() == [0, 2, 4, 6, 8]
    assert over["interactions"].tolist() == [2, 2, 2, 2, 2]
    assert over["active_users"].tolist() == [1, 1, 1, 1, 1]


def test_scenario_users_and_overlap(tiny):
    assert tiny.scenarios == ["app", "web"]
    per = profile.scenario_users(tiny)
    assert per["scenarios"].tolist() == [1, 2]
    assert per["users"].tolist() == [2, 1]  # u2, u3 in one; u1 in both
    overlap = profile.scenario_overlap(tiny)
    np.testing.assert_array_equal(overlap.to_numpy(), [[2, 1], [1, 2]])
    assert overlap.index.tolist() == ["app", "web"]
    sizes = profile.scenario_sizes(tiny)
    assert sizes.to_dict("list") == {
        "scenario": ["app", "web"],
        "interactions": [3, 2],
        "users": [2, 2],
        "items": [3, 1],
    }


def test_top_items_with_titles(tiny):
    top = profile.top_items(tiny, n=2)
    assert top["title"].tolist() == ["Alien", "Brazil"]  # tie i2/i3 keeps catalogue order
    assert top["category"].tolist() == ["scifi", "comedy"]
    assert top["interactions"].tolist() == [3, 1]
    assert top["users"].tolist() == [3, 1]


def test_optional_parts_are_none_when_absent():
    ds = Dataset.from_frames("plain", pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "x"]}))
    assert profile.rating_distribution(ds) is None
    assert profile.activity_over_time(ds) is None
    assert profile.scenario_users(ds) is None
    assert profile.scenario_overlap(ds) is None
    assert profile.scenario_sizes(ds) is None
    assert profile.top_items(ds)["title"].tolist() == ["x"]


def test_planted_dataset_profile(planted_dataset):
    c = profile.counts(planted_dataset)
    assert (c.users, c.items) == (120, 60)
    assert c.interactions == len(planted_dataset.interactions)
    users = profile.activity(planted_dataset, "user")
    # every planted user has 12 block items plus 1-2 noise items not already in the block
    assert users["interactions"].between(12, 14).all()


@pytest.mark.parametrize("table_cells", [profile._TABLE_CELLS, 0])  # marks table / sorted rows
@pytest.mark.parametrize("span_days", [20, 300, 3000])  # days, weeks, months
def test_distinct_counts_match_pandas_with_repeated_pairs(monkeypatch, table_cells, span_days):
    """Issue 15 item 7: distinct pairs are counted without hashing every row; the counts
    stay those of pandas, repeated (user, item) rows (a Dataset built in code) counted once."""
    monkeypatch.setattr(profile, "_TABLE_CELLS", table_cells)
    rng = np.random.default_rng(span_days)
    n = 4000
    inter = pd.DataFrame(
        {
            "user_id": rng.integers(0, 50, n).astype(str),
            "item_id": rng.integers(0, 30, n).astype(str),
            "timestamp": T0 + rng.integers(0, span_days * DAY, n),
        }
    )
    ds = Dataset.from_frames("dups", inter)
    frame = ds.interactions
    c = profile.counts(ds)
    assert c.interactions == n and c.pairs == len(
        frame[["user_code", "item_code"]].drop_duplicates()
    )
    assert c.pairs < n  # the data does repeat pairs
    freq = "M" if span_days > 730 else "W-SUN" if span_days > 90 else "D"
    period = pd.to_datetime(frame["timestamp"], unit="s").dt.to_period(freq).dt.start_time
    expected = pd.DataFrame({"period": period, "user": frame["user_code"]}).groupby("period")
    over = profile.activity_over_time(ds)
    assert over["period"].tolist() == expected.size().index.tolist()
    assert over["interactions"].tolist() == expected.size().tolist()
    assert over["active_users"].tolist() == expected["user"].nunique().tolist()
    top = profile.top_items(ds, n=5)
    per_item = frame.groupby("item_code")["user_code"].nunique()
    codes = ds.item_codes(top["item_id"].tolist())
    assert top["users"].tolist() == per_item.reindex(codes).tolist()


def test_runs_table_reads_headline_metrics_and_tolerates_gaps():
    records = [
        {
            "run_id": "ease-1",
            "model": "ease",
            "dataset": "sample",
            "split": "loo",
            "status": "finished",
            "created_at": "2026-11-25T10:00:00+00:00",
            "timings": {"fit_s": 1.5},
            "metrics": {"test": {"ndcg@10": 0.25, "recall@10": 0.5, "hit@10": 0.5}},
        },
        {"run_id": "bpr-2", "model": "bpr", "dataset": "sample", "status": "queued"},
    ]
    table = profile.runs_table(records)
    assert list(table.columns) == list(profile.RUN_COLUMNS)
    assert table["run"].tolist() == ["ease-1", "bpr-2"]
    assert table.loc[0, "ndcg@10"] == 0.25 and table.loc[0, "fit_s"] == 1.5
    assert table.loc[0, "created"] == pd.Timestamp("2026-11-25 10:00", tz="UTC")
    assert np.isnan(table.loc[1, "ndcg@10"]) and pd.isna(table.loc[1, "created"])
    assert profile.runs_table([]).empty
