"""Train/valid/test splits: `loo` (leave-last-out by time), `temporal` (global cut), `random`.

All are deterministic for a given seed. Ties in time are broken by row order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from core.data import schema as S
from core.data.dataset import Dataset, Interactions
from core.errors import ParameterError

METHODS = ("loo", "temporal", "random")


@dataclass(frozen=True)
class Split:
    method: str
    seed: int
    train: Interactions
    valid: Interactions
    test: Interactions

    def known_for(self, part: str) -> Interactions:
        """Interactions known when scoring `part`: train for valid, train+valid for test.

        The same object on every call, so its ordered views are computed once per split.
        """
        if part == "valid":
            return self.train
        if part == "test":
            return self._train_and_valid
        raise ParameterError(f"Split part '{part}' is unknown; use 'valid' or 'test'.")

    @cached_property
    def _train_and_valid(self) -> Interactions:
        return self.train.concat(self.valid)

    def part(self, name: str) -> Interactions:
        if name not in ("train", "valid", "test"):
            raise ParameterError(f"Split part '{name}' is unknown; use train, valid or test.")
        return getattr(self, name)


def split(dataset: Dataset, method: str = "loo", seed: int = 42) -> Split:
    """Split a dataset's interactions into train/valid/test by `method`."""
    frame = dataset.interactions.reset_index(drop=True)
    if method == "loo":
        parts = _leave_last_out(dataset.all().ordered)
    elif method == "temporal":
        parts = _temporal(frame)
    elif method == "random":
        parts = _random(frame, seed)
    else:
        raise ParameterError(f"Split '{method}' is unknown; use one of {', '.join(METHODS)}.")
    train, valid, test = (
        Interactions(p.reset_index(drop=True), dataset.n_users, dataset.n_items, dataset)
        for p in parts
    )
    return Split(method, seed, train, valid, test)


def _leave_last_out(order: pd.DataFrame):
    """Per user: last interaction to test, second-last to valid; users with <3 stay in train.

    `order` is the rows in `Interactions.ordered` order (by user, then time).
    """
    from_end = order.groupby(S.USER, sort=False).cumcount(ascending=False).to_numpy()
    sizes = order.groupby(S.USER, sort=False)[S.ITEM].transform("size").to_numpy()
    eligible = sizes >= 3
    test = order[eligible & (from_end == 0)]
    valid = order[eligible & (from_end == 1)]
    train = order[~eligible | (from_end >= 2)]
    return train, valid, test


def _temporal(frame: pd.DataFrame, valid_share: float = 0.1, test_share: float = 0.1):
    """Global time cut: the last 10% of interactions by time to test, the 10% before to valid."""
    order = frame.sort_values(S.TIMESTAMP, kind="stable")
    n = len(order)
    n_test = int(round(n * test_share))
    n_valid = int(round(n * valid_share))
    train = order.iloc[: n - n_test - n_valid]
    valid = order.iloc[n - n_test - n_valid : n - n_test]
    test = order.iloc[n - n_test :]
    return train, valid, test


def _random(frame: pd.DataFrame, seed: int):
    """Per user, a random 80/10/10 share, rounded as RecBole's RS split rounds.

    valid and test get floor(10% of n) each and train the rest; a user with fewer than 10
    interactions still gives one to test and then one to valid while train keeps at least
    one (RecBole's `_calcu_split_ids`), so the protocols match row counts exactly.
    """
    rng = np.random.default_rng(seed)
    shuffled = frame.iloc[rng.permutation(len(frame))]
    order = shuffled.sort_values(S.USER, kind="stable")
    pos = order.groupby(S.USER, sort=False).cumcount().to_numpy()
    sizes = order.groupby(S.USER, sort=False)[S.ITEM].transform("size").to_numpy()
    n_valid = np.floor(sizes * 0.1).astype(int)
    n_test = np.floor(sizes * 0.1).astype(int)
    n_train = sizes - n_valid - n_test
    # RecBole bumps a ratio whose share is below one row, last part first, while train > 1
    tiny = (sizes * 0.1 > 0) & (sizes * 0.1 < 1)
    bump_test = tiny & (n_train > 1)
    n_test = n_test + bump_test
    n_train = n_train - bump_test
    bump_valid = tiny & (n_train > 1)
    n_valid = n_valid + bump_valid
    n_train = n_train - bump_valid
    train = order[pos < n_train]
    valid = order[(pos >= n_train) & (pos < n_train + n_valid)]
    test = order[pos >= n_train + n_valid]
    return train, valid, test
