"""Similar items: neighbours of an item under a trained run, and neighbours by item text.

A run's neighbours come from a Faiss index over the model's `item_embeddings()` (built once
and saved in `<run>/index/`), or from the model's own item-item similarities (item-kNN,
EASE) when it has no embeddings. Text neighbours come from an index over the language-model
embeddings of the items' titles and texts, saved beside the dataset's text cache.

Every answer follows the CLI contract of `recscope similar --json`:
`{"item_id", "neighbors": [{"item_id", "title", "score"}, ...],
"index": {"type", "device", "recall_at_k", ...}}` (the index facts: `index_facts`).
"""

from __future__ import annotations

import difflib
import logging
import time

import numpy as np
import pandas as pd

from core.data import schema as S
from core.data import text
from core.data.dataset import Dataset
from core.errors import RecScopeError
from core.eval.ranking import check_k
from core.protocols import SimilarItems, UserVectors
from core.retrieval.index import ItemIndex, layout, retrieve

log = logging.getLogger(__name__)

ITEM_ITEM = "item-item similarity"  # index type shown when the model's own weights are used
INDEX_DIR = "index"  # cosine index of a run's item embeddings (neighbours)
MIPS_DIR = "index_mips"  # raw inner-product index of the same vectors (user retrieval)
FUZZY_MAX = 50_000  # titles compared one by one for fuzzy search, at most


def run_index(loaded, *, mips: bool = False) -> ItemIndex | None:
    """The run's item index, loaded from `<run>/index/` or built and saved there once.

    `loaded` is a loaded run (`core.runs.pipeline.LoadedRun`): its model, dataset and
    `folder` (None for a run that lives only in memory: the index is built, not kept).
    None when the model has no item embeddings. `mips=True` gives the raw inner-product
    index (the model's own dot product) used to retrieve items for users.
    """
    folder = None if loaded.folder is None else loaded.folder / (MIPS_DIR if mips else INDEX_DIR)
    n_items = loaded.dataset.n_items
    if folder is not None and (folder / "index.json").exists():
        try:
            index = ItemIndex.load(folder)
            if index.info.n == n_items:
                return index
        except (OSError, RuntimeError, RecScopeError, TypeError, KeyError) as exc:
            log.warning("rebuilding the unreadable index in %s: %s", folder, exc)
    vectors = loaded.model.item_embeddings()
    if vectors is None:
        return None
    index = ItemIndex.build(vectors, normalize=not mips)
    if folder is not None:
        index.save(folder)
    return index


def similar_items(loaded, item_code: int, k: int) -> dict:
    """The `k` items most similar to `item_code` under the run `loaded` (CLI contract)."""
    model, dataset = loaded.model, loaded.dataset
    code = _check_code(dataset, item_code)
    k = _check_neighbours_k(dataset, k)
    index = run_index(loaded)
    if index is not None:
        codes, scores = index.neighbors(code, k)
        facts = index_facts(index)
    elif isinstance(model, SimilarItems):
        codes, scores = model.similar_items(code, k)
        facts = {"type": ITEM_ITEM, "device": model.device.type, "recall_at_k": 1.0}
    else:
        raise RecScopeError(
            f"Run '{loaded.record['run_id']}' uses model '{model.name}', which has neither item "
            "embeddings nor item-item similarities, so it cannot list similar items; pick a run "
            "of another model (e.g. ease, itemknn, bpr or hybrid)."
        )
    return _answer(dataset, code, codes, scores, facts)


def text_index(dataset: Dataset, device: str | None = None) -> ItemIndex:
    """A cosine index over the items' text embeddings, saved beside the text cache."""
    emb = text.item_text_embeddings(dataset, device)  # raises when there is no text
    cache = text.cache_path(dataset, text.item_texts(dataset))
    if cache is None:  # an in-memory dataset: nowhere to keep the index
        return ItemIndex.build(emb)
    folder = cache.parent / cache.stem.replace("text_emb_", "text_index_")
    if (folder / "index.json").exists():
        try:
            index = ItemIndex.load(folder)
            if index.info.n == dataset.n_items:
                return index
        except (OSError, RuntimeError, RecScopeError, TypeError, KeyError) as exc:
            log.warning("rebuilding the unreadable text index in %s: %s", folder, exc)
    index = ItemIndex.build(emb)
    index.save(folder)
    return index


def text_neighbors(
    dataset: Dataset, item_code: int, k: int, index: ItemIndex | None = None
) -> dict:
    """The `k` items whose title/text reads most like `item_code`'s (CLI contract shape)."""
    code = _check_code(dataset, item_code)
    k = _check_neighbours_k(dataset, k)
    index = index or text_index(dataset)
    codes, scores = index.neighbors(code, k)
    return _answer(dataset, code, codes, scores, index_facts(index))


def find_items(
    titles: np.ndarray, query: str, popularity: np.ndarray, limit: int = 50
) -> np.ndarray:
    """Item codes whose title matches `query`: substring matches (most popular first), then
    close fuzzy matches (difflib ratio >= 0.6 against the title or one of its words).

    An empty query gives the most popular items. Fuzzy matching is skipped above
    FUZZY_MAX titles, where it would take seconds per keystroke.
    """
    pop = np.asarray(popularity)
    q = (query or "").strip().lower()
    by_pop = np.argsort(-pop, kind="stable")
    if not q:
        return by_pop[:limit]
    lower = np.char.lower(np.asarray(titles, dtype=str))
    hit = np.char.find(lower, q) >= 0
    found = by_pop[hit[by_pop]][:limit].tolist()
    if len(found) < limit and len(lower) <= FUZZY_MAX:
        ratios = np.array([_fuzzy(q, t) for t in lower])
        ratios[hit] = 0.0
        close = [int(c) for c in np.argsort(-ratios, kind="stable") if ratios[c] >= 0.6]
        found += close[: limit - len(found)]
    return np.asarray(found, dtype=np.int64)


def index_facts(index: ItemIndex) -> dict:
    """The index facts of the CLI contract (type, device, recall_at_k) and where it lives:
    backend, devices, shards and `layout` in words ('2 shards over 2 GPUs', '1 CPU index')."""
    info = index.info
    return {
        "type": info.type,
        "device": info.device,
        "recall_at_k": float(info.recall_at_k),
        "backend": info.params.get("backend"),
        "devices": list(info.devices),
        "shards": int(info.shards),
        "layout": layout(info),
    }


def neighbors_frame(dataset: Dataset, answer: dict, popularity: np.ndarray) -> pd.DataFrame:
    """An answer's neighbours as a table with category and popularity, for display."""
    rows = answer["neighbors"]
    frame = pd.DataFrame(rows, columns=[S.ITEM_ID, S.TITLE, "score"])
    codes = dataset.item_codes(frame[S.ITEM_ID].to_numpy()) if len(frame) else np.zeros(0, int)
    if S.CATEGORY in dataset.items.columns:
        frame[S.CATEGORY] = dataset.items[S.CATEGORY].astype(object).to_numpy()[codes]
    frame["popularity"] = np.asarray(popularity)[codes].astype(np.int64)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    return frame


def retrieve_for_users(loaded, user_codes, k: int = 10) -> dict:
    """Top-k items per user through the run's inner-product index, with the latency.

    Only for models with user vectors (`UserVectors`) next to `item_embeddings()`; the
    user's known items (train + valid) are skipped. This is candidate retrieval by the dot
    product of the two towers: a model may add terms to its full score (the hybrid's text
    match), which a re-ranking stage over the retrieved items would apply. Returns items
    (U, k), scores (U, k), `latency_ms` (search time per user) and the index facts.
    """
    model = loaded.model
    if not isinstance(model, UserVectors):
        raise RecScopeError(
            f"Model '{model.name}' has no user vectors, so items cannot be retrieved for a user "
            "through the index; use a hybrid run, or the ranked recommendations of this run."
        )
    index = run_index(loaded, mips=True)
    users = np.atleast_1d(np.asarray(user_codes, dtype=np.int64))
    vectors = model.user_vectors(users).float().cpu().numpy()  # (U, d)
    start = time.perf_counter()
    items, scores = retrieve(index, vectors, k, exclude=model.history_[users])
    latency = (time.perf_counter() - start) * 1000 / max(1, len(users))
    return {
        "items": items,
        "scores": scores,
        "latency_ms": latency,
        "index": index_facts(index),
    }


def _answer(dataset: Dataset, code: int, codes, scores, facts: dict) -> dict:
    titles = dataset.item_titles()
    ids = dataset.item_ids
    keep = np.asarray(codes) >= 0  # approximate indexes pad with -1 when they run out
    neighbors = [
        {"item_id": str(ids[c]), "title": str(titles[c]), "score": round(float(s), 6)}
        for c, s in zip(np.asarray(codes)[keep], np.asarray(scores)[keep], strict=True)
    ]
    return {"item_id": str(ids[code]), "neighbors": neighbors, "index": facts}


def _fuzzy(query: str, title: str) -> float:
    """Best difflib ratio of the query against the whole title or any single word of it."""
    best = difflib.SequenceMatcher(None, query, title).ratio()
    for word in title.split():
        best = max(best, difflib.SequenceMatcher(None, query, word).ratio())
    return best


def _check_neighbours_k(dataset: Dataset, k: object) -> int:
    return check_k(k, dataset.n_items - 1, what="the number of other items")


def _check_code(dataset: Dataset, item_code: int) -> int:
    code = int(item_code)
    if not 0 <= code < dataset.n_items:
        raise RecScopeError(
            f"Item code {code} is not in dataset '{dataset.name}' (0..{dataset.n_items - 1}); "
            "pick an item of this dataset."
        )
    return code
