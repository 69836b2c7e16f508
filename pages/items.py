"""Items page: find an item, see its neighbours under a trained run and by text, on a map."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from core.data import schema as S
from core.data.text import has_item_text
from core.errors import RecScopeError
from core.protocols import capabilities
from core.retrieval.embedding_map import method_note
from core.retrieval.similar import (
    retrieve_for_users,
    similar_items,
    text_neighbors,
)
from core.runs.store import RunStore, workspace_home
from dashboard import cache, charts_items, selection, shell, widgets
from dashboard import views_items as VI
from dashboard.text import md

SOURCE = "items_source"  # selectbox: run id or VI.TEXT_ONLY
QUERY = "items_query"
ITEM = "items_item"  # selectbox of matching item codes: the selected item
PINNED = "items_pinned"  # an item picked on the map, kept among the options
MAP = "items_map"
TEXT_ASKED = "items_text_asked"  # datasets whose text neighbours were asked for (button)
MAP_ASKED = "items_map_asked"  # runs (or TEXT_ONLY + dataset) whose map was asked for
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
    dataset, facts = cache.dataset(home, name), cache.item_facts(home, name)
    with_text = has_item_text(dataset)
    runs = [r for r in RunStore(home).list(name) if r.get("status") == "finished"]
    missing_runs, missing_text = VI.availability(name, bool(runs), with_text)
    if missing_runs:
        st.info(missing_runs)
    if missing_text:
        st.caption(missing_text)
    if not runs and not with_text:
        return
    options, labels, default = VI.source_options(runs, with_text)
    if st.session_state.get(SOURCE) not in options:
        st.session_state.pop(SOURCE, None)
    source = selection.choice(  # kept across pages and in the URL (?run=)
        st.selectbox, "Neighbours from", options, key=SOURCE, param="run",
        default=options[default], format_func=labels.get,
        help="A trained run's item vectors, or the item texts alone (works without any run).",
    )  # fmt: skip
    _take_map_click()
    code = _item_picker(facts)
    if code is None:
        return
    _item_card(home, dataset, facts, code)
    run_id = None if source == VI.TEXT_ONLY else source
    left, right = st.columns(2) if run_id and with_text else (st.container(), None)
    neighbours: list[int] = []
    if run_id:
        with left, shell.guard("finding the run's neighbours"):
            neighbours = _run_neighbours(home, dataset, facts, run_id, code)
    if with_text and (box := right if run_id else left) is not None:
        with box, shell.guard("finding the text neighbours"):
            st.markdown("**Neighbours by text**")
            found = _text_neighbours(home, dataset, facts, code)
            neighbours = neighbours or found
    with shell.guard("drawing the item map"):
        _map(home, name, run_id, code, neighbours, with_text)
    if run_id:
        with shell.guard("retrieving items for a user"):
            _retrieval(home, dataset, run_id)


def _take_map_click() -> None:
    """A point clicked on the map (the last run's selection) becomes the selected item."""
    code = VI.clicked_item(st.session_state.get(MAP))
    if code is not None and st.session_state.get("_items_last_click") != code:
        st.session_state["_items_last_click"] = code
        st.session_state[PINNED] = st.session_state[ITEM] = code


def _item_picker(facts: pd.DataFrame) -> int | None:
    query = st.text_input(
        "Search an item by title", key=QUERY, placeholder="e.g. yoga mat, sourdough, harbor",
        help="Finds titles containing the words, then close spellings; empty: most popular.",
        on_change=lambda: st.session_state.pop(PINNED, None),
    )  # fmt: skip
    titles, ids = facts[S.TITLE].to_numpy(), facts[S.ITEM_ID].astype(str)
    if ITEM not in st.session_state:  # first open, or back from another page: ?item= or kept
        selection.restore(ITEM, "item", None, decode=lambda t: _item_code(ids, t))
        if ITEM in st.session_state:
            st.session_state[PINNED] = st.session_state[ITEM]
    matches = VI.item_choices(facts, query, st.session_state.get(PINNED))
    if not matches:
        st.warning(f"No item title matches '{md(query)}'; try fewer or other words.")
        return None
    if st.session_state.get(ITEM) not in matches:
        st.session_state[ITEM] = matches[0]
    code = st.selectbox(
        f"Item ({len(matches)} shown)", matches, key=ITEM,
        format_func=lambda c: f"{titles[c]}  ·  {facts[S.ITEM_ID].iat[c]}",
    )  # fmt: skip
    selection.remember(ITEM, "item", code, encode=lambda c: ids.iat[c])
    return code


def _item_code(ids: pd.Series, item_id: str) -> int | None:
    """The code of the item with this id (row position in the item facts), None if unknown."""
    hits = (ids == item_id).to_numpy().nonzero()[0]
    return int(hits[0]) if len(hits) else None


def _item_card(home, dataset, facts: pd.DataFrame, code: int) -> None:
    row = facts.iloc[code]
    with st.container(border=True):
        st.subheader(md(row[S.TITLE]))
        widgets.metric_row(VI.card_facts(facts, code))
        counts = cache.item_scenario_counts(home, dataset.name) if dataset.has_scenarios else None
        st.markdown(VI.card_line(dataset, facts, code, counts))
        if text := VI.item_text(dataset, code):
            st.caption(md(text))
        if built := cache.text_source(home, dataset.name):  # made-up text is not a description
            st.caption(built)


def _asked(key: str, what: str, label: str, ready: bool, note: str) -> bool:
    """True when the expensive part `what` is to be shown: kept on disk already (`ready`),
    or asked for with the button `label` in this session (remembered across reruns; the
    click is taken before the rerun, so the button is gone once it was clicked)."""
    asked = st.session_state.setdefault(key, set())
    if ready or what in asked:
        return True
    st.button(label, key=f"{key}_button", on_click=asked.add, args=(what,))
    st.caption(note)
    return False


def _text_neighbours(home, dataset, facts, code: int) -> list[int]:
    """Neighbours by text, embedded only when kept on disk already or asked for."""
    if not _asked(TEXT_ASKED, dataset.name, VI.TEXT_BUTTON, cache.text_ready(home, dataset.name),
                  VI.text_button_note(dataset.n_items)):  # fmt: skip
        return []
    with st.spinner(f"Embedding {dataset.n_items:,} item texts with all-MiniLM-L6-v2…"):
        index = cache.text_index(home, dataset.name)
    answer = text_neighbors(dataset, code, K, index=index)
    return widgets.neighbours(
        dataset,
        facts,
        answer,
        VI.text_neighbours_note(index, cache.text_source(home, dataset.name)),
    )


def _run_neighbours(home, dataset, facts, run_id: str, code: int) -> list[int]:
    loaded = cache.loaded_run(home, run_id)
    model = loaded.record["model"]
    st.markdown(f"**Neighbours under {md(model)}**")
    index = cache.run_index(home, run_id)  # built once per run and kept (cached + on disk)
    try:
        answer = similar_items(loaded, code, K)
    except RecScopeError as err:
        st.info(md(err))
        return []
    return widgets.neighbours(dataset, facts, answer, VI.run_neighbours_note(model, answer, index))


def _map(home, name: str, run_id: str | None, code: int, neighbours: list, with_text: bool):
    if (run_id and cache.run_index(home, run_id) is None) or (not run_id and not with_text):
        return  # no item vectors (said next to the neighbours) or no texts to embed
    dataset = cache.dataset(home, name)
    ready = cache.map_ready(home, name, run_id)
    if not _asked(MAP_ASKED, run_id or f"{VI.TEXT_ONLY}{name}", VI.MAP_BUTTON, ready,
                  VI.map_waiting_note(dataset.n_items, run_id is None)):  # fmt: skip
        return
    colours = VI.color_options(dataset, charts_items.COLOR_BY)
    if st.session_state.get("items_color") not in colours:
        st.session_state.pop("items_color", None)
    color_by = st.radio(
        "Colour the map by", colours, format_func=charts_items.COLOR_BY.get,
        horizontal=True, key="items_color",
    )  # fmt: skip
    # the last part of the page: everything above is on screen while it is projected
    with st.spinner(
        f"Projecting {dataset.n_items:,} item vectors to 2-D with UMAP (the first map in a "
        "fresh server compiles UMAP: up to a minute on a busy CPU; kept on disk after)…"
    ):
        table, method = cache.item_map(home, name, run_id)
    what = "text embeddings" if run_id is None else "item vectors of this run"
    title = f"Map of the {what} ({method.upper()} to 2-D)"
    fig = charts_items.embedding_map(
        table, color_by, selected=code, neighbors=neighbours, title=title
    )
    st.plotly_chart(fig, on_select="rerun", selection_mode="points", key=MAP, width="stretch")
    st.caption(
        f"{method_note(method, len(table))} The star is the selected item, rings are its "
        "neighbours. Click a point to open that item."
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
        st.dataframe(VI.retrieval_table(dataset, out), hide_index=True, width="stretch")
        st.caption(VI.retrieval_sentence(out, total_ms))
