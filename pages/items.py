"""Items page: find an item, see its neighbours under a trained run and by text, on a map."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import streamlit as st

from core.data import schema as S
from core.data.text import has_item_text
from core.errors import RecScopeError
from core.protocols import capabilities
from core.retrieval.similar import (
    ITEM_ITEM,
    find_items,
    neighbors_frame,
    retrieve_for_users,
    similar_items,
    text_neighbors,
)
from core.runs.store import RunStore, workspace_home
from dashboard import cache, charts_items, shell

TEXT_ONLY = "__text__"
SOURCE = "items_source"  # selectbox: run id or TEXT_ONLY
QUERY = "items_query"
ITEM = "items_item"  # selectbox of matching item codes: the selected item
PINNED = "items_pinned"  # an item picked on the map, kept among the options
MAP = "items_map"
K = 10


def render() -> None:
    st.title("Items")
    st.caption(
        "Find an item and see which items a trained model considers similar (nearest "
        "neighbours of its item vector in a Faiss index), next to the items whose title and "
        "description read most alike. Click a point on the map to open that item."
    )
    name = shell.active_dataset()
    if not name:
        st.info("Add a dataset on the Data page first.")
        return
    home = workspace_home()
    dataset = cache.dataset(home, name)
    facts = cache.item_facts(home, name)
    with_text = has_item_text(dataset)
    runs = [r for r in RunStore(home).list(name) if r.get("status") == "finished"]
    if not runs:
        st.info(
            f"No finished runs on '{name}' yet — train one on the Train page to see a model's "
            "neighbours."
            + (" Meanwhile the neighbours below come from the item texts." if with_text else "")
        )
    if not with_text:
        st.caption(
            f"Dataset '{name}' has no item text (no title or text column), so neighbours by "
            "text are not available."
        )
        if not runs:
            return
    source = _source_picker(runs, with_text)
    _take_map_click()
    code = _item_picker(facts)
    if code is None:
        return
    _item_card(dataset, facts, code)
    run_id = None if source == TEXT_ONLY else source
    left, right = st.columns(2) if run_id and with_text else (st.container(), None)
    neighbours: list[int] = []
    if run_id:
        with left, shell.guard("finding the run's neighbours"):
            neighbours = _run_neighbours(home, dataset, facts, run_id, code)
    text_box = right if run_id else left
    if with_text and text_box is not None:
        with text_box, shell.guard("finding the text neighbours"):
            found = _text_neighbours(home, dataset, facts, code)
            neighbours = neighbours or found
    with shell.guard("drawing the item map"):
        _map(home, name, run_id, code, neighbours)
    if run_id:
        with shell.guard("retrieving items for a user"):
            _retrieval(home, dataset, run_id)


def _source_picker(runs: list[dict], with_text: bool) -> str:
    options = ([TEXT_ONLY] if with_text else []) + [r["run_id"] for r in runs]
    labels = {r["run_id"]: f"{r['model']} · {r['run_id']}" for r in runs}
    labels[TEXT_ONLY] = "Text only (language-model embeddings of the item texts)"
    default = 1 if with_text and runs else 0
    if st.session_state.get(SOURCE) not in options:
        st.session_state.pop(SOURCE, None)
    return st.selectbox(
        "Neighbours from",
        options,
        index=default,
        format_func=labels.get,
        key=SOURCE,
        help="A trained run's item vectors, or the item texts alone (works without any run).",
    )


def _take_map_click() -> None:
    """A point clicked on the map (the last run's selection) becomes the selected item."""
    event = st.session_state.get(MAP)
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if not points or not points[0].get("customdata"):
        return
    code = int(points[0]["customdata"][0])
    if st.session_state.get("_items_last_click") != code:
        st.session_state["_items_last_click"] = code
        st.session_state[PINNED] = code
        st.session_state[ITEM] = code


def _item_picker(facts: pd.DataFrame) -> int | None:
    query = st.text_input(
        "Search an item by title",
        key=QUERY,
        placeholder="e.g. yoga mat, sourdough, harbor",
        help="Finds titles containing the words, then close spellings; empty: most popular.",
        on_change=lambda: st.session_state.pop(PINNED, None),
    )
    titles = facts[S.TITLE].to_numpy()
    matches = find_items(titles, query, facts["popularity"].to_numpy()).tolist()
    pinned = st.session_state.get(PINNED)
    if pinned is not None and pinned not in matches:
        matches = [pinned, *matches]
    if not matches:
        st.warning(f"No item title matches '{query}'; try fewer or other words.")
        return None
    if st.session_state.get(ITEM) not in matches:
        st.session_state[ITEM] = matches[0]
    return st.selectbox(
        f"Item ({len(matches)} shown)",
        matches,
        format_func=lambda c: f"{titles[c]}  ·  {facts[S.ITEM_ID].iat[c]}",
        key=ITEM,
    )


def _item_card(dataset, facts: pd.DataFrame, code: int) -> None:
    row = facts.iloc[code]
    with st.container(border=True):
        st.subheader(str(row[S.TITLE]))
        cols = st.columns(3)
        cols[0].metric("Category", str(row[S.CATEGORY]))
        cols[1].metric("Interactions", f"{int(row['popularity']):,}")
        cols[2].metric("Popularity rank", f"{_rank(facts, code):,} of {len(facts):,}")
        st.markdown(f"Item id `{row[S.ITEM_ID]}` · scenarios: {_scenarios(dataset, code)}")
        if S.TEXT in dataset.items.columns and pd.notna(dataset.items[S.TEXT].iat[code]):
            st.caption(str(dataset.items[S.TEXT].iat[code]))


def _rank(facts: pd.DataFrame, code: int) -> int:
    pop = facts["popularity"].to_numpy()
    return int((pop > pop[code]).sum()) + 1


def _scenarios(dataset, code: int) -> str:
    if not dataset.has_scenarios:
        return "—"
    inter = dataset.interactions
    counts = inter.loc[inter[S.ITEM] == code, S.SCENARIO_CODE].value_counts()
    if counts.empty:
        return "none yet"
    return ", ".join(f"{dataset.scenarios[int(s)]} ({n})" for s, n in counts.items())


def _run_neighbours(home, dataset, facts, run_id: str, code: int) -> list[int]:
    loaded = cache.loaded_run(home, run_id)
    st.markdown(f"**Neighbours under {loaded.record['model']}**")
    cache.run_index(home, run_id)  # built once per run and kept (cached + on disk)
    try:
        answer = similar_items(loaded, code, K)
    except RecScopeError as err:
        st.info(str(err))
        return []
    _neighbour_table(dataset, facts, answer)
    index = cache.run_index(home, run_id)
    if answer["index"]["type"] == ITEM_ITEM:
        st.caption(
            f"{loaded.record['model']} has no item vectors: these are its own item-item "
            "weights (exact), so there is no index and no map of this run."
        )
    else:
        st.caption(_facts_line(index))
    return [int(c) for c in dataset.item_codes([n[S.ITEM_ID] for n in answer["neighbors"]])]


def _text_neighbours(home, dataset, facts, code: int) -> list[int]:
    st.markdown("**Neighbours by text**")
    index = cache.text_index(home, dataset.name)
    answer = text_neighbors(dataset, code, K, index=index)
    _neighbour_table(dataset, facts, answer)
    st.caption(_facts_line(index) + " · all-MiniLM-L6-v2 embeddings of title + text.")
    return [int(c) for c in dataset.item_codes([n[S.ITEM_ID] for n in answer["neighbors"]])]


def _neighbour_table(dataset, facts, answer: dict) -> None:
    frame = neighbors_frame(dataset, answer, facts["popularity"].to_numpy())
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        # two tables share the page width: the id stays in the data (downloads), not on screen
        column_order=["rank", S.TITLE, "score", S.CATEGORY, "popularity"],
        column_config={
            "rank": st.column_config.NumberColumn("#", width="small"),
            S.ITEM_ID: st.column_config.TextColumn("Item id"),
            S.TITLE: st.column_config.TextColumn("Title", width="medium"),
            "score": st.column_config.NumberColumn(
                "Similarity",
                format="%.3f",
                width="small",
                help="Higher is closer: cosine in an index, the weight for item-item",
            ),
            S.CATEGORY: st.column_config.TextColumn("Category"),
            "popularity": st.column_config.NumberColumn(
                "Uses", format="%d", width="small", help="Interactions with the item"
            ),
        },
    )


def _facts_line(index) -> str:
    info = index.info
    kind = {"flat": "exact (flat)", "ivf": "IVF", "hnsw": "HNSW"}.get(info.type, info.type)
    return (
        f"Faiss index: {kind} on {info.device} · {info.n:,} items × {info.dim} dims · built "
        f"in {info.build_s:.2f} s · recall@{info.k} {info.recall_at_k:.3f} against exact search"
    )


def _map(home, name: str, run_id: str | None, code: int, neighbours: list[int]) -> None:
    if run_id and cache.run_index(home, run_id) is None:
        return  # no item vectors: said next to the neighbours
    if not run_id and not has_item_text(cache.dataset(home, name)):
        return
    table, method = cache.item_map(home, name, run_id)
    color_by = st.radio(
        "Colour the map by",
        list(charts_items.COLOR_BY),
        format_func=charts_items.COLOR_BY.get,
        horizontal=True,
        key="items_color",
    )
    what = "text embeddings" if run_id is None else "item vectors of this run"
    fig = charts_items.embedding_map(
        table,
        color_by,
        selected=code,
        neighbors=neighbours,
        title=f"Map of the {what} ({method.upper()} to 2-D)",
    )
    st.plotly_chart(fig, on_select="rerun", selection_mode="points", key=MAP, width="stretch")
    st.caption(
        f"{len(table):,} items projected with {method.upper()}; the star is the selected item, "
        "rings are its neighbours. Click a point to open that item."
    )


def _retrieval(home, dataset, run_id: str) -> None:
    loaded = cache.loaded_run(home, run_id)
    if not capabilities(loaded.model).user_retrieval:
        return
    with st.expander("Retrieve items for a user through the index"):
        user_id = st.text_input("User id", str(dataset.user_ids[0]), key="items_user")
        user = int(dataset.user_codes([user_id])[0])
        start = time.perf_counter()
        out = retrieve_for_users(loaded, [user], K)
        total_ms = (time.perf_counter() - start) * 1000
        items = out["items"][0][out["items"][0] >= 0]
        titles = dataset.item_titles()
        st.dataframe(
            pd.DataFrame(
                {
                    "rank": np.arange(1, len(items) + 1),
                    S.TITLE: titles[items],
                    "score": out["scores"][0][: len(items)],
                }
            ),
            hide_index=True,
            width="stretch",
        )
        st.caption(
            f"Index search {out['latency_ms']:.2f} ms for this user ({total_ms:.0f} ms with the "
            f"user tower); inner-product index {out['index']['type']} on "
            f"{out['index']['device']}, ranking by the two towers' dot product (candidate "
            "retrieval, without the text-match term of the full score). Items already in the "
            "user's history are skipped."
        )
