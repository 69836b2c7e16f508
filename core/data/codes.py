"""How ids become codes: a canonical order of id strings, and a fixed hash of code pairs.

Codes follow the ids themselves (natural order), never the order rows came in, so the same
data in any row order gets the same codes, splits and ties (DESIGN.md, "Evaluation rules").
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

_DIGITS = re.compile(r"(\d+)")


def pair_hash(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random int64 in [0, 2^31) per (user code, item code) pair, (n,)."""
    low = 0x7FFFFFFF
    h = (np.asarray(users, dtype=np.int64) * 73856093) ^ (
        np.asarray(items, dtype=np.int64) * 19349663
    )
    h &= low
    for _ in range(3):  # integer mixing rounds; every product stays below 2^63
        h = ((h ^ (h >> 16)) * 0x45D9F3B) & low
    return h ^ (h >> 16)


def canonical_order(ids: np.ndarray) -> np.ndarray:
    """Indices that sort id strings naturally: digit runs by value ('u2' < 'u10'), then text.

    All-numeric ids sort by number (vectorised); others by a natural key per id.
    """
    ids = np.asarray(ids, dtype=object)
    if len(ids) == 0:
        return np.zeros(0, dtype=np.int64)
    text = ids.astype(str)
    numbers = pd.to_numeric(pd.Series(text), errors="coerce").to_numpy(dtype=np.float64)
    if not np.isnan(numbers).any():
        return np.lexsort((text, numbers)).astype(np.int64)
    keys = [_natural_key(t) for t in text]
    return np.asarray(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


def _natural_key(text: str) -> tuple:
    parts = _DIGITS.split(text)
    return (tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts), text)
