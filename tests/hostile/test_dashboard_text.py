"""User strings are shown as plain text everywhere in the dashboard (issue 11, item 6).

A title like HOSTILE must show as typed: no bold, no LaTeX, no HTML, no links. In Markdown
elements it is backslash-escaped (dashboard.text.md); in Plotly labels '<', '>' and '&'
become entities (dashboard.text.plot); the HTML report escapes it.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.data.dataset import Dataset
from core.runs.store import RunStore
from core.storage import write_parquet
from dashboard import charts_compare, views_data, views_items
from dashboard.report import html_report
from dashboard.text import WORD_JOINER, md, plot
from tests.helpers import fake_run

HOSTILE = "**bold** $x^2$ <b>x</b> https://evil.example [link](http://x)"
SCENARIO = "<i>web</i> :red[alarm] www.evil.example"


def test_md_escapes_every_markdown_construct():
    j = WORD_JOINER  # GFM autolinks decoded text: '://', 'www.' and '@' get a word joiner
    assert md(HOSTILE) == (
        rf"\*\*bold\*\* \$x^2\$ \<b\>x\<\/b\> https\:\/\/{j}evil\.example "
        rf"\[link\]\(http\:\/\/{j}x\)"
    )
    assert md(SCENARIO) == rf"\<i\>web\<\/i\> \:red\[alarm\] w{j}ww\.evil\.example"
    assert md("mail a@b.co") == rf"mail a\@{j}b\.co"
    # a line break cannot start a heading, a list or a quote; control characters go too
    assert md("a\n# b\r\n- c\x00\x1b> d") == r"a \# b \- c \> d"
    assert md(42) == "42"


def test_plot_escapes_the_html_plotly_renders():
    assert plot(HOSTILE) == (
        "**bold** $x^2$ &lt;b&gt;x&lt;/b&gt; https://evil.example [link](http://x)"
    )
    assert plot("a & <a href='javascript:x'>y</a>") == (
        "a &amp; &lt;a href='javascript:x'&gt;y&lt;/a&gt;"
    )


def test_sentences_escape_the_names_they_echo():
    assert views_data.name_taken("a_b", "a_b-2").startswith(r"A dataset named 'a\_b' already")
    assert views_items.availability("x_*y*", False, True)[0].startswith(
        r"No finished runs on 'x\_\*y\*' yet"
    )
    assert views_data.ingest_message([f"Created dataset '{HOSTILE}'."]) == (
        f"Created dataset '{md(HOSTILE)}'\\.\n"
    )


@pytest.fixture
def hostile_home(home, planted_dataset):
    """The planted data with hostile item titles, categories and a hostile scenario."""
    ids = planted_dataset.item_ids.astype(str)
    items = pd.DataFrame(
        {
            "item_id": ids,
            "title": [f"{HOSTILE} {i}" for i in ids],
            "category": ["<b>cat</b> $y$"] * len(ids),
        }
    )
    inter = pd.DataFrame(
        {
            "user_id": planted_dataset.user_ids[planted_dataset.interactions["user_code"]],
            "item_id": ids[planted_dataset.interactions["item_code"]],
            "timestamp": planted_dataset.interactions["timestamp"],
            "scenario": SCENARIO,
        }
    )
    Dataset.from_frames("hostile", inter, items).save(home)
    return home


def _items_page() -> None:
    import streamlit as st

    from dashboard import shell
    from pages import items

    st.session_state[shell.DATASET_KEY] = "hostile"
    items.render()


def test_items_page_shows_titles_and_scenarios_as_typed(hostile_home, monkeypatch):
    from core.retrieval import embedding_map

    monkeypatch.setattr(embedding_map, "umap_available", lambda: False)  # PCA: no numba compile
    at = AppTest.from_function(_items_page, default_timeout=180).run()
    assert not at.exception and not at.error
    at.button(key="items_map_asked_button").click().run()  # the map is drawn when asked
    assert not at.exception and not at.error
    picked = at.selectbox(key="items_item")
    shown = picked.format_func(picked.value)  # a selectbox option is plain text already
    title = shown.split("  ·  ")[0]
    assert title.startswith(HOSTILE)
    assert at.subheader[0].value == md(title)
    shown_facts = {m.label: m.value for m in at.metric}
    assert shown_facts["Category"] == md("<b>cat</b> $y$")  # st.metric renders Markdown too
    line = next(m.value for m in at.markdown if m.value.startswith("Item id"))
    assert md(SCENARIO) in line and SCENARIO not in line
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    hover = [t for spec in specs for trace in spec["data"] for t in trace.get("hovertext") or []]
    assert hover and all("<b>" not in t and "&lt;b&gt;x&lt;/b&gt;" in t for t in hover)
    text = json.dumps(specs)
    assert "<b>cat</b>" not in text and "&lt;b&gt;cat&lt;/b&gt;" in text


def test_html_report_escapes_a_hostile_segment(home):
    inter = pd.DataFrame({"user_id": ["a", "b"], "item_id": ["i0", "i1"], "timestamp": 1})
    Dataset.from_frames("toy", inter).save(home)
    store = RunStore(home)
    bad = "<script>alert(1)</script>"
    runs = []
    for model, score in (("pop", 0.1), ("ease", 0.3)):
        run_id = fake_run(store, model, {"ndcg@10": score}, {0: [1], 1: [0]})
        seg = pd.DataFrame(
            {
                "segment_kind": ["all", "scenario"],
                "segment": ["all users", bad],
                "n_users": [2, 2],
                "ndcg@10": [score, score],
            }
        )
        write_parquet(store.folder(run_id) / "segments.parquet", seg)
        runs.append(run_id)
    page = html_report(store, runs, k=10)
    assert bad not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the segments table
    figure = charts_compare.segment_bars(
        pd.DataFrame({"segment_kind": ["scenario"], "segment": [bad], "n_users": [2], "r": [0.5]}),
        "scenario",
        ["r"],
        {"r": "r"},
        "ndcg@10",
    )
    assert list(figure.data[0].x) == ["&lt;script&gt;alert(1)&lt;/script&gt;<br>2 users"]


def _user_page() -> None:
    import streamlit as st

    from dashboard import shell
    from pages import user

    st.session_state[shell.DATASET_KEY] = "hostile"
    user.render()


def test_user_page_shows_ids_titles_and_scenarios_as_typed(hostile_home):
    from core.runs.pipeline import new_run, train_run

    store = RunStore(hostile_home)
    assert train_run(store, new_run(store, "hostile", "ease"))["status"] == "finished"
    at = AppTest.from_function(_user_page, default_timeout=180).run()
    assert not at.exception and not at.error
    user_id = at.text_input(key="user_id").value
    assert at.subheader[0].value == f"User {md(user_id)}"
    shown_facts = {m.label: m.value for m in at.metric}
    assert shown_facts["Main scenario"] == md(SCENARIO)
    sentence = next(m.value for m in at.markdown if " scores “" in m.value)
    assert md(HOSTILE) in sentence and HOSTILE not in sentence
    specs = json.dumps([json.loads(c.proto.spec) for c in at.get("plotly_chart")])
    assert "<b>x</b>" not in specs and "&lt;b&gt;x&lt;/b&gt;" in specs
