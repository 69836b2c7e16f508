"""Codes follow the ids, not the row order (issue 10: results must not change with row order)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.data.codes import canonical_order, pair_hash
from core.data.dataset import Dataset
from core.data.split import split


def test_natural_order_of_ids() -> None:
    ids = np.array(["u10", "u2", "u1", "a", "u02", "b3"], dtype=object)
    assert ids[canonical_order(ids)].tolist() == ["a", "b3", "u1", "u02", "u2", "u10"]
    numbers = np.array(["10", "2", "1", "007"], dtype=object)
    assert numbers[canonical_order(numbers)].tolist() == ["1", "2", "007", "10"]


def test_pair_hash_is_fixed_and_spread() -> None:
    users, items = np.repeat(np.arange(50), 40), np.tile(np.arange(40), 50)
    h = pair_hash(users, items)
    assert np.array_equal(h, pair_hash(users, items))
    assert h.min() >= 0 and h.max() < 2**31
    assert len(np.unique(h)) == len(h)  # 2,000 pairs, no collision


def test_same_rows_in_another_order_give_the_same_codes_and_split() -> None:
    """Every user rates 6 items in one second: which one loo holds out must not follow the row
    order, nor always be the highest item id of the group."""
    rng = np.random.default_rng(0)
    rows = [
        (f"u{u}", f"i{i}", 100 if j >= 2 else j)
        for u in range(40)
        for j, i in enumerate(rng.choice(30, size=8, replace=False))
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    a = Dataset.from_frames("a", frame)
    b = Dataset.from_frames("b", frame.sample(frac=1.0, random_state=3))
    assert np.array_equal(a.item_ids, b.item_ids) and np.array_equal(a.user_ids, b.user_ids)
    test_a, test_b = split(a, "loo", seed=1).test.frame, split(b, "loo", seed=1).test.frame
    key = ["user_code", "item_code"]
    assert test_a.sort_values(key)[key].to_numpy().tolist() == (
        test_b.sort_values(key)[key].to_numpy().tolist()
    )
    # the held-out item of a one-second group is not simply its highest code
    last = frame[frame["timestamp"] == 100].groupby("user_id")["item_id"]
    highest = last.agg(lambda s: max(s, key=lambda x: int(x[1:])))
    held = dict(zip(a.user_ids[test_a["user_code"]], a.item_ids[test_a["item_code"]], strict=True))
    assert sum(held[u] == highest[u] for u in highest.index) < 0.5 * len(highest)
