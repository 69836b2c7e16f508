"""Side features for the hybrid model: attribute codes, item text vectors, history windows.

Kept apart from the network so each piece is a plain function of the data (and testable).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from core.data import schema as S
from core.data import text
from core.data.dataset import Dataset, Interactions

log = logging.getLogger(__name__)

TEXT_DIM = 32  # principal components of the text vectors the hybrid keeps
PCA_SAMPLE = 50_000  # rows the text PCA is fitted on
MAX_CARDINALITY = 10_000  # more distinct values than this is an id, not an attribute
_NOT_ATTRIBUTES = {S.ITEM_ID, S.USER_ID, S.TITLE, S.TEXT}


def categorical_columns(table: pd.DataFrame | None, n: int) -> list[str]:
    """Columns of an item/user table that look like categories (few distinct values).

    Text-like, float and id-like columns (a distinct value for most rows) are left out.
    """
    if table is None or len(table) == 0:
        return []
    limit = min(MAX_CARDINALITY, max(50, n // 2))
    chosen = []
    for name in table.columns:
        col = table[name]
        if name in _NOT_ATTRIBUTES or pd.api.types.is_float_dtype(col):
            continue
        if 2 <= col.nunique(dropna=True) <= limit:
            chosen.append(name)
    return chosen


def categorical_codes(
    table: pd.DataFrame | None, n: int, key: str, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes (n, F) int64 of the categorical columns (0 = missing) and cardinalities (F,)."""
    columns = categorical_columns(table, n)
    codes = np.zeros((n, len(columns)), dtype=np.int64)
    cards = np.zeros(len(columns), dtype=np.int64)
    for j, name in enumerate(columns):
        values, uniques = pd.factorize(table[name])
        rows = min(n, len(values))
        codes[:rows, j] = values[:rows] + 1  # -1 (missing) -> 0
        cards[j] = len(uniques) + 1
    if columns:
        log.info("%s attributes used: %s", key.removesuffix("_id"), ", ".join(columns))
    return torch.as_tensor(codes, device=device), torch.as_tensor(cards, device=device)


def text_matrix(dataset: Dataset | None, device: str | None = None) -> np.ndarray | None:
    """Item text embeddings (n_items, 384), or None when the data has no item text.

    Cached beside the dataset when it is stored (`Dataset.folder`); else embedded directly.
    """
    if dataset is None or not text.has_item_text(dataset):
        return None
    return text.item_text_embeddings(dataset, device)


def reduce_text(emb: np.ndarray, k: int = TEXT_DIM, seed: int = 0) -> np.ndarray:
    """Language-model vectors (n, D) -> their top-k principal components, unit rows (n, k).

    Smaller to store and to compare (the model matches every candidate against every
    history item); the PCA is fitted on at most PCA_SAMPLE rows.
    """
    x = np.asarray(emb, dtype=np.float32)
    k = min(k, x.shape[1], max(1, x.shape[0] - 1))
    rows = x
    if len(x) > PCA_SAMPLE:
        rows = x[np.random.default_rng(seed).choice(len(x), PCA_SAMPLE, replace=False)]
    mean = rows.mean(axis=0)
    _, _, vt = np.linalg.svd(rows - mean, full_matrices=False)  # vt (min(n, D), D)
    out = (x - mean) @ vt[:k].T  # (n, k)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.ascontiguousarray(out / np.where(norms > 0, norms, 1.0), dtype=np.float32)


def history_index(train: Interactions, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Training interactions sorted by (user, time), for windows of earlier items.

    Returns rows (n,), users (n,), items (n,), scenarios (n,) and start (n,): the row where
    each interaction's user begins, so rows start..row-1 are the user's earlier items.
    """
    frame = train.ordered
    users = frame[S.USER].to_numpy().astype(np.int64)
    items = frame[S.ITEM].to_numpy().astype(np.int64)
    scen = train.ordered_scenarios
    first = np.r_[True, users[1:] != users[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(users)), 0))
    return tuple(
        torch.as_tensor(a, device=device)
        for a in (np.arange(len(users)), users, items, scen, start)
    )


def pair_scenarios(
    users: np.ndarray, items: np.ndarray, scen: np.ndarray, n_users: int, n_items: int
) -> sp.csr_matrix:
    """(user, item) -> scenario code + 1 of the pair's latest row; rows in time order.

    What an explanation needs to put a masked history back in its scenarios: the features
    name items, and the data contract keeps one row per user-item pair (ingest collapses
    repeats), so the pair gives the scenario. 0 means "no such pair".
    """
    key = users.astype(np.int64) * n_items + items.astype(np.int64)
    last = ~pd.Series(key).duplicated(keep="last").to_numpy()
    mat = sp.csr_matrix(
        ((scen[last] + 1).astype(np.int64), (users[last], items[last])),
        shape=(n_users, n_items),
    )
    mat.sort_indices()
    return mat


def history_scenarios(
    lookup: sp.csr_matrix, user_code: int, histories: list[np.ndarray], missing: int
) -> list[np.ndarray]:
    """Scenario codes of each history's items (one array per history) via `pair_scenarios`.

    One lookup for all histories together: an explanation scores ~1000 masked histories.
    """
    histories = [np.asarray(h, dtype=np.int64) for h in histories]
    if not histories:
        return []
    events = np.concatenate(histories)
    row = lookup[int(user_code)]
    idx, data = row.indices, row.data
    codes = np.full(len(events), missing, dtype=np.int64)
    if len(idx):
        pos = np.minimum(np.searchsorted(idx, events), len(idx) - 1)
        found = idx[pos] == events
        codes[found] = data[pos[found]] - 1
    return np.split(codes, np.cumsum([len(h) for h in histories])[:-1])
