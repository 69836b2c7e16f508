"""The Items page's choices, tables and sentences (no Streamlit, so each is tested).

The neighbour answers themselves come from `core.retrieval.similar`; this module says what the
page shows of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from core.data import schema as S
from core.data.dataset import Dataset
from core.retrieval.index import layout
from core.retrieval.similar import ITEM_ITEM, find_items
from dashboard.text import md

TEXT_ONLY = "__text__"  # the source option "neighbours by item text, no run"
INDEX_KINDS = {"flat": "exact (flat)", "ivf": "IVF", "hnsw": "HNSW"}


MAP_BUTTON = "Draw the map (UMAP; the first one on a machine takes about a minute)"


TEXT_BUTTON = "Find neighbours by text meaning"


def text_button_note(n_items: int) -> str:
    """Under the text button: what a click costs (tens of seconds on a CPU, done once)."""
    return (
        f"Embeds the {n_items:,} item texts once (all-MiniLM-L6-v2, tens of seconds on a "
        "CPU); kept for next time."
    )


def map_waiting_note(n_items: int, text_only: bool) -> str:
    """Under the map button: what the map shows once drawn."""
    what = "text embeddings" if text_only else "item vectors of this run"
    return (
        f"The map places the {n_items:,} items' {what} in 2-D (UMAP, or PCA for tiny "
        "catalogues); it is drawn once and kept on disk."
    )


def source_options(runs: Sequence[Mapping], with_text: bool) -> tuple[list[str], dict, int]:
    """Where neighbours come from: (options, {option: label}, default index).

    Options are TEXT_ONLY (when the items have text) and the finished runs' ids; the run
    with the best test NDCG@10 is the default (the first listed among equals; runs without
    the metric last), the texts when there is no run.
    """
    options = ([TEXT_ONLY] if with_text else []) + [r["run_id"] for r in runs]
    labels = {r["run_id"]: f"{r['model']} · {r['run_id']}" for r in runs}
    labels[TEXT_ONLY] = "Text only (language-model embeddings of the item texts)"
    if not runs:
        return options, labels, 0
    best = max(range(len(runs)), key=lambda i: (_test_ndcg(runs[i]), -i))
    return options, labels, best + (1 if with_text else 0)


def color_options(dataset: Dataset, choices: Mapping[str, str]) -> list[str]:
    """The map's colourings that mean something here: no 'scenario' without scenarios."""
    return [c for c in choices if c != S.SCENARIO or dataset.has_scenarios]


def availability(name: str, has_runs: bool, with_text: bool) -> tuple[str | None, str | None]:
    """What the page says is missing: (info without runs, caption without item text)."""
    info = None
    if not has_runs:
        info = (
            f"No finished runs on '{md(name)}' yet — train one on the Train page to see a model's "
            "neighbours."
            + (" Meanwhile the neighbours below come from the item texts." if with_text else "")
        )
    caption = None
    if not with_text:
        caption = (
            f"Dataset '{md(name)}' has no item text (no title or text column), so neighbours by "
            "text are not available."
        )
    return info, caption


def item_choices(facts: pd.DataFrame, query: str, pinned: int | None = None) -> list[int]:
    """Item codes matching the search (`core.retrieval.similar.find_items`), with the item
    picked on the map (`pinned`) first when the search does not hold it."""
    matches = find_items(facts[S.TITLE].to_numpy(), query, facts["popularity"].to_numpy())
    matches = [int(c) for c in matches]
    return [pinned, *matches] if pinned is not None and pinned not in matches else matches


def clicked_item(event) -> int | None:
    """The item code of the point clicked on the map (a plotly selection event), or None."""
    points = ((event or {}).get("selection") or {}).get("points") or []
    if not points or not points[0].get("customdata"):
        return None
    return int(points[0]["customdata"][0])


def popularity_rank(facts: pd.DataFrame, code: int) -> int:
    """1 for the most used item; ties share the better rank."""
    pop = facts["popularity"].to_numpy()
    return int((pop > pop[code]).sum()) + 1


def card_facts(facts: pd.DataFrame, code: int) -> list[tuple[str, str, None]]:
    """The item card's numbers as (label, value, help): category, uses, popularity rank."""
    row = facts.iloc[code]
    rank = f"{popularity_rank(facts, code):,} of {len(facts):,}"
    facts_row = [
        ("Interactions", f"{int(row['popularity']):,}", None),
        ("Popularity rank", rank, None),
    ]
    if "genres" in facts.columns:  # every genre, in `card_line` (a metric would cut them)
        return facts_row
    return [("Category", md(row[S.CATEGORY]), None), *facts_row]  # st.metric: Markdown


def card_line(
    dataset: Dataset, facts: pd.DataFrame, code: int, counts: pd.DataFrame | None = None
) -> str:
    """'Item id 50 · genres: Action, Adventure, Sci-Fi · scenarios: shop (3)' (genres and
    scenarios only where the data has them; `counts`: `scenario_counts`, cached by the page)."""
    row = facts.iloc[code]
    parts = [f"Item id {md(row[S.ITEM_ID])}"]
    if "genres" in facts.columns:
        parts.append(f"genres: {md(row['genres'] or '—')}")
    if dataset.has_scenarios:
        parts.append(f"scenarios: {item_scenarios(dataset, code, counts)}")
    return " · ".join(parts)


def scenario_counts(dataset: Dataset) -> pd.DataFrame:
    """Interactions per (item_code, scenario_code) as columns item_code, scenario_code, n;
    sorted by item, then most used first: one pass over every interaction, so the page
    computes it once per dataset version (`dashboard.cache.item_scenario_counts`)."""
    if not dataset.has_scenarios:
        return pd.DataFrame({S.ITEM: [], S.SCENARIO_CODE: [], "n": []}, dtype=np.int64)
    inter = dataset.interactions
    sizes = inter.groupby([S.ITEM, S.SCENARIO_CODE], sort=False).size().reset_index(name="n")
    order = sizes.sort_values([S.ITEM, "n", S.SCENARIO_CODE], ascending=[True, False, True])
    return order.reset_index(drop=True)


def item_scenarios(dataset: Dataset, code: int, counts: pd.DataFrame | None = None) -> str:
    """'shop (12), articles (3)': where the item was used, most first ('—' without scenarios).
    `counts` is `scenario_counts(dataset)` (computed here when not given)."""
    if not dataset.has_scenarios:
        return "—"
    counts = scenario_counts(dataset) if counts is None else counts
    lo, hi = np.searchsorted(counts[S.ITEM].to_numpy(), [code, code + 1])
    rows = counts.iloc[lo:hi]
    if rows.empty:
        return "none yet"
    pairs = zip(rows[S.SCENARIO_CODE], rows["n"], strict=True)
    return ", ".join(f"{md(dataset.scenarios[int(s)])} ({int(n)})" for s, n in pairs)


def item_text(dataset: Dataset, code: int) -> str | None:
    """The item's description, None when it has none."""
    if S.TEXT not in dataset.items.columns:
        return None
    value = dataset.items[S.TEXT].iat[code]
    return None if pd.isna(value) else str(value)


def index_sentence(info) -> str:
    """One line on a Faiss index (`ItemIndex.info`): kind, where it lives (shards over GPUs,
    one GPU, the CPU), size, build time, recall."""
    kind = INDEX_KINDS.get(info.type, info.type)
    where = layout(info)
    if info.shards > 1:
        where += f" ({', '.join(info.devices)})"
    return (
        f"Faiss index: {kind} · {where} · {info.n:,} items × {info.dim} dims · built "
        f"in {info.build_s:.2f} s · recall@{info.k} {info.recall_at_k:.3f} against exact search"
    )


def run_neighbours_note(model: str, answer: Mapping, index) -> str:
    """Under a run's neighbours: its index, or that it has no item vectors (item-item)."""
    if answer["index"]["type"] == ITEM_ITEM:
        return (
            f"{model} has no item vectors: these are its own item-item weights (exact), so "
            "there is no index and no map of this run."
        )
    return index_sentence(index.info)


def text_neighbours_note(index, built: str | None = None) -> str:
    """Under the text neighbours: the index and the language model behind it, and where the
    text came from when it was built from other columns (`core.data.text.text_source`)."""
    note = f"{index_sentence(index.info)} · all-MiniLM-L6-v2 embeddings of title + text."
    return f"{note} {built}" if built else note


def neighbour_codes(dataset: Dataset, answer: Mapping) -> list[int]:
    """Item codes of a `similar_items` / `text_neighbors` answer, in rank order."""
    return [int(c) for c in dataset.item_codes([n[S.ITEM_ID] for n in answer["neighbors"]])]


def retrieval_table(dataset: Dataset, out: Mapping) -> pd.DataFrame:
    """The first user of a `retrieve_for_users` answer as rank, title, score (padding dropped)."""
    items = out["items"][0][out["items"][0] >= 0]
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(items) + 1),
            S.TITLE: dataset.item_titles()[items],
            "score": out["scores"][0][: len(items)],
        }
    )


def retrieval_sentence(out: Mapping, total_ms: float) -> str:
    """How the retrieved list was found and how long it took."""
    return (
        f"Index search {out['latency_ms']:.2f} ms for this user ({total_ms:.0f} ms with the "
        f"user tower); inner-product index {out['index']['type']} on "
        f"{out['index']['device']}, ranking by the two towers' dot product (candidate "
        "retrieval, without the text-match term of the full score). Items already in the "
        "user's history are skipped."
    )


def _test_ndcg(record: Mapping) -> float:
    """A run record's test NDCG@10 (-inf when it has none, so it is never the default)."""
    value = ((record.get("metrics") or {}).get("test") or {}).get("ndcg@10")
    try:
        return float(value) if value is not None and np.isfinite(float(value)) else -np.inf
    except (TypeError, ValueError):
        return -np.inf
