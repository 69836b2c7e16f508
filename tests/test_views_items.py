"""dashboard.views_items: what the Items page shows of items, neighbours and indexes, by hand."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from core.data.dataset import Dataset
from core.retrieval.embedding_map import item_facts
from core.retrieval.similar import ITEM_ITEM
from dashboard import views_items as VI


@pytest.fixture
def shop() -> Dataset:
    """x: 3 uses (2 shop, 1 video), y: 2 (video), z: 1 (shop), w: none in a scenario of its own."""
    rows = [
        ("a", "x", 1, "shop"),
        ("b", "x", 2, "shop"),
        ("c", "x", 3, "video"),
        ("a", "y", 4, "video"),
        ("b", "y", 5, "video"),
        ("c", "z", 6, "shop"),
    ]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "scenario"])
    items = pd.DataFrame(
        {
            "item_id": ["x", "y", "z", "w"],
            "title": ["Yoga mat", "Sourdough starter", "Yoga blocks", "Harbor map"],
            "category": ["Sport", "Food", "Sport", "Travel"],
            "text": ["A mat.", None, "Two blocks.", "Old map."],
        }
    )
    return Dataset.from_frames("shop", inter, items)


def _code(ds: Dataset, item_id: str) -> int:
    return int(ds.item_codes([item_id])[0])


def test_source_options_default_to_the_newest_run():
    runs = [{"run_id": "r2", "model": "ease"}, {"run_id": "r1", "model": "pop"}]
    options, labels, default = VI.source_options(runs, with_text=True)
    assert options == [VI.TEXT_ONLY, "r2", "r1"] and default == 1
    assert labels["r2"] == "ease · r2" and labels[VI.TEXT_ONLY].startswith("Text only")
    assert VI.source_options(runs, with_text=False)[::2] == (["r2", "r1"], 0)
    assert VI.source_options([], with_text=True)[::2] == ([VI.TEXT_ONLY], 0)


def test_source_options_default_to_the_best_test_ndcg():
    """Issue 16 point 9: Items opens on the run with the best NDCG@10, not the newest."""
    runs = [
        {"run_id": "sas", "model": "sasrec", "metrics": {"test": {"ndcg@10": 0.041}}},
        {"run_id": "ease", "model": "ease", "metrics": {"test": {"ndcg@10": 0.073}}},
        {"run_id": "bad", "model": "bpr", "metrics": {"test": {"ndcg@10": float("nan")}}},
        {"run_id": "pop", "model": "pop", "metrics": {"test": {"ndcg@10": 0.037}}},
    ]
    options, _, default = VI.source_options(runs, with_text=True)
    assert options[default] == "ease"
    assert VI.source_options(runs, with_text=False)[2] == 1


def test_map_colours_offer_scenario_only_with_scenarios(planted_dataset, sample_dataset):
    from dashboard.charts_items import COLOR_BY

    assert VI.color_options(planted_dataset, COLOR_BY) == ["category", "popularity"]
    assert VI.color_options(sample_dataset, COLOR_BY) == ["category", "popularity", "scenario"]


def test_availability_says_what_is_missing():
    runs_info, text_note = VI.availability("shop", has_runs=False, with_text=True)
    assert runs_info.startswith("No finished runs on 'shop' yet")
    assert runs_info.endswith("Meanwhile the neighbours below come from the item texts.")
    assert text_note is None
    runs_info, text_note = VI.availability("shop", has_runs=True, with_text=False)
    assert runs_info is None
    assert text_note.startswith("Dataset 'shop' has no item text")


def test_map_click_and_search_choices(shop):
    facts = item_facts(shop)
    assert VI.clicked_item({"selection": {"points": [{"customdata": [3, "x"]}]}}) == 3
    assert VI.clicked_item({"selection": {"points": []}}) is None
    assert VI.clicked_item({"selection": {"points": [{"x": 1}]}}) is None
    assert VI.clicked_item(None) is None
    x, y, z, w = (_code(shop, i) for i in "xyzw")
    yoga = VI.item_choices(facts, "yoga")
    assert sorted(yoga) == sorted([x, z])
    assert VI.item_choices(facts, "yoga", pinned=w) == [w, *yoga]  # a map pick stays first
    assert VI.item_choices(facts, "yoga", pinned=x) == yoga


def test_item_card_facts_scenarios_and_text(shop):
    facts = item_facts(shop)
    x, y, z, w = (_code(shop, i) for i in "xyzw")
    assert VI.card_facts(facts, x) == [
        ("Category", "Sport", None),
        ("Interactions", "3", None),
        ("Popularity rank", "1 of 4", None),
    ]
    assert [VI.popularity_rank(facts, c) for c in (y, z, w)] == [2, 3, 4]
    assert VI.item_scenarios(shop, x) == "shop (2), video (1)"
    assert VI.item_scenarios(shop, w) == "none yet"
    assert VI.item_text(shop, x) == "A mat." and VI.item_text(shop, y) is None


def test_index_notes_and_neighbour_codes(shop):
    info = SimpleNamespace(type="hnsw", device="cpu", n=1862, dim=64, build_s=0.123, k=10)
    info.recall_at_k, info.shards, info.devices = 0.9876, 1, ["cpu"]
    info.params = {"backend": "faiss-cpu"}
    index = SimpleNamespace(info=info)
    line = (
        "Faiss index: HNSW · 1 CPU index · 1,862 items × 64 dims · built in 0.12 s · recall@10 "
        "0.988 against exact search"
    )
    assert VI.index_sentence(info) == line
    sharded = SimpleNamespace(**{**vars(info), "type": "flat", "device": "cuda", "shards": 2})
    sharded.devices, sharded.params = ["cuda:0", "cuda:1"], {"backend": "faiss-gpu"}
    assert VI.index_sentence(sharded).startswith(
        "Faiss index: exact (flat) · 2 shards over 2 GPUs (cuda:0, cuda:1) · 1,862 items"
    )
    one_gpu = SimpleNamespace(**{**vars(sharded), "shards": 1, "devices": ["cuda:0"]})
    assert "· 1 GPU index (cuda:0) ·" in VI.index_sentence(one_gpu)
    assert (
        VI.text_neighbours_note(index) == line + " · all-MiniLM-L6-v2 embeddings of title + text."
    )
    flat = {"index": {"type": "flat"}}
    assert VI.run_neighbours_note("bpr", flat, index) == line
    weights = {"index": {"type": ITEM_ITEM}}
    assert VI.run_neighbours_note("ease", weights, None).startswith("ease has no item vectors")
    answer = {"neighbors": [{"item_id": "z"}, {"item_id": "y"}]}
    assert VI.neighbour_codes(shop, answer) == [_code(shop, "z"), _code(shop, "y")]


def test_retrieval_table_drops_padding(shop):
    z, y = _code(shop, "z"), _code(shop, "y")
    out = {
        "items": np.array([[z, y, -1]]),
        "scores": np.array([[2.5, 1.5, -np.inf]]),
        "latency_ms": 0.123,
        "index": {"type": "flat", "device": "cpu"},
    }
    table = VI.retrieval_table(shop, out)
    assert table.to_dict("list") == {
        "rank": [1, 2],
        "title": ["Yoga blocks", "Sourdough starter"],
        "score": [2.5, 1.5],
    }
    sentence = VI.retrieval_sentence(out, 12.3)
    assert sentence.startswith("Index search 0.12 ms for this user (12 ms with the user tower)")
    assert "inner-product index flat on cpu" in sentence


def test_buttons_say_what_the_slow_parts_cost():
    """Issue 16 point 10: the text embedding and the map wait for a click that says the cost."""
    assert VI.TEXT_BUTTON == "Find neighbours by text meaning"
    assert VI.text_button_note(1682).startswith("Embeds the 1,682 item texts once")
    assert VI.text_button_note(1682).endswith("kept for next time.")
    assert VI.MAP_BUTTON == "Draw the map (UMAP; the first one on a machine takes about a minute)"
    assert "60 items' text embeddings in 2-D" in VI.map_waiting_note(60, text_only=True)
    assert "items' item vectors of this run" in VI.map_waiting_note(60, text_only=False)
