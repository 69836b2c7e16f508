"""Splits: hand-checked row assignment for loo, temporal and random (RecBole's rounding)."""

from __future__ import annotations

import pandas as pd
import pytest

from core.data.dataset import Dataset
from core.data.split import split
from core.errors import ParameterError


def _dataset(sizes: dict[str, int]) -> Dataset:
    rows = [(u, f"i{t}", t * 10 + k) for k, (u, n) in enumerate(sizes.items()) for t in range(n)]
    return Dataset.from_frames("s", pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))


def _items(part, ds: Dataset, user: str) -> list[str]:
    code = ds.user_codes([user])[0]
    frame = part.frame[part.frame["user_code"] == code].sort_values("timestamp")
    return list(ds.item_ids[frame["item_code"]])


def test_loo_holds_out_the_last_two_by_time_and_keeps_short_users_in_train():
    ds = _dataset({"a": 5, "b": 2})
    parts = split(ds, "loo")
    assert _items(parts.test, ds, "a") == ["i4"] and _items(parts.valid, ds, "a") == ["i3"]
    assert _items(parts.train, ds, "a") == ["i0", "i1", "i2"]
    assert _items(parts.train, ds, "b") == ["i0", "i1"] and _items(parts.test, ds, "b") == []
    # known history: train for valid, train + valid for test
    assert len(parts.known_for("valid")) == 5 and len(parts.known_for("test")) == 6


def test_random_rounds_like_recbole():
    # 25 -> floor(2.5)=2 valid, 2 test, 21 train; 5 -> shares below one row are bumped to 1
    # (test first, then valid) while train keeps more than one: 3/1/1; 2 -> 1/0/1
    ds = _dataset({"a": 25, "b": 5, "c": 2})
    parts = split(ds, "random", seed=3)
    counts = {
        u: tuple(len(_items(p, ds, u)) for p in (parts.train, parts.valid, parts.test))
        for u in "abc"
    }
    assert counts == {"a": (21, 2, 2), "b": (3, 1, 1), "c": (1, 0, 1)}


def test_random_is_deterministic_by_seed_and_partitions_every_row():
    ds = _dataset({f"u{i}": 12 for i in range(30)})
    one, same, other = split(ds, "random", 1), split(ds, "random", 1), split(ds, "random", 2)
    assert one.test.frame.equals(same.test.frame)
    assert not one.test.frame.equals(other.test.frame)
    total = len(one.train) + len(one.valid) + len(one.test)
    assert total == len(ds.interactions)


def test_temporal_cuts_the_last_tenth_of_all_rows_by_time():
    ds = _dataset({f"u{i}": 10 for i in range(10)})
    parts = split(ds, "temporal")
    assert len(parts.test) == len(parts.valid) == 10
    assert parts.train.frame["timestamp"].max() < parts.valid.frame["timestamp"].min()
    assert parts.valid.frame["timestamp"].max() < parts.test.frame["timestamp"].min()


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ParameterError, match="'shuffle' is unknown"):
        split(_dataset({"a": 3}), "shuffle")
