"""Item-text embeddings: offline model load, meaningful neighbours, disk cache, clear errors."""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest

from core.data import text
from core.data.dataset import Dataset
from core.errors import RecScopeError
from core.retrieval.index import ItemIndex

TITLES = [
    "Dune Part One",
    "Chocolate chip cookie recipe",
    "Filing your tax return",
    "Dune Part Two",
    "Marathon training plan for beginners",
    "Jazz piano improvisation lessons",
]


def _dataset(items: pd.DataFrame, name: str = "texts") -> Dataset:
    inter = pd.DataFrame({"user_id": ["u1"] * len(items), "item_id": items["item_id"]})
    return Dataset.from_frames(name, inter, items)


def _titled() -> Dataset:
    ids = [f"i{i}" for i in range(len(TITLES))]
    return _dataset(pd.DataFrame({"item_id": ids, "title": TITLES}))


def test_model_loads_offline_and_near_identical_titles_are_neighbours(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise OSError("network access during the text-model load")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(text, "_models", {})  # force a fresh load inside this test
    emb = text.embed_texts(TITLES, device="cpu")
    assert emb.shape == (6, text.DIM) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    index = ItemIndex.build(emb, device="cpu")
    assert index.neighbors(0, 1)[0][0] == 3  # "Dune Part One" -> "Dune Part Two"
    assert index.neighbors(3, 1)[0][0] == 0
    others = [1, 2, 4, 5]
    assert emb[0] @ emb[3] > max(emb[0] @ emb[j] for j in others) + 0.3


def test_item_texts_join_title_and_text_and_fall_back():
    items = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d"],
            "title": ["Alien", "Heat", None, None],
            "text": ["Space horror.", None, "A quiet film", None],
        }
    )
    data = _dataset(items)
    assert text.has_item_text(data)
    assert text.item_texts(data) == ["Alien. Space horror.", "Heat", "A quiet film", ""]
    only_text = _dataset(pd.DataFrame({"item_id": ["x"], "text": ["  padded  "]}))
    assert text.item_texts(only_text) == ["padded"]


def test_second_call_reads_the_disk_cache(home, monkeypatch):
    data = _titled()
    data.save(home)  # the cache lives in the dataset's folder
    assert not text.embeddings_cached(data)  # the Items page asks before embedding
    first = text.item_text_embeddings(data, device="cpu")
    assert text.embeddings_cached(data)
    files = sorted((home / "datasets" / "texts").glob("text_emb_*.npy"))
    assert len(files) == 1 and first.shape == (len(TITLES), text.DIM)
    assert list((home / "datasets" / "texts").glob("*.tmp")) == []

    def must_not_embed(*args, **kwargs):
        raise AssertionError("embedded again instead of reading the cache")

    monkeypatch.setattr(text, "embed_texts", must_not_embed)
    second = text.item_text_embeddings(data, device="cpu")
    np.testing.assert_array_equal(second, first)

    edited = _dataset(pd.DataFrame({"item_id": ["i0"], "title": ["Dune Messiah"]}))
    assert not text.embeddings_cached(edited)
    with pytest.raises(AssertionError, match="embedded again"):  # new texts -> new cache key
        text.item_text_embeddings(edited, device="cpu")


def test_dataset_without_item_text_gets_one_clear_error(home):
    bare = _dataset(pd.DataFrame({"item_id": ["a", "b"], "category": ["x", "y"]}), "bare")
    assert not text.has_item_text(bare)
    empty = _dataset(pd.DataFrame({"item_id": ["a"], "title": [None]}), "empty")
    assert not text.has_item_text(empty)
    with pytest.raises(RecScopeError, match="has no item text") as err:
        text.item_text_embeddings(bare)
    message = str(err.value)
    assert "'bare'" in message and "title" in message and message.count(".") == 1
