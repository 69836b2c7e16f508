"""Selections stay put (issue 16, point 2): across page changes, in the URL, bad URLs ignored.

The app under test is the real sidebar and pages behind `st.navigation` with file pages, so
`AppTest.switch_page` changes pages as a browser does (Streamlit drops the state of every
widget the new page does not draw). Runs are pop and EASE on a slice of the sample data.
"""

from __future__ import annotations

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.data.dataset import Dataset
from core.runs.pipeline import new_run, train_run
from core.runs.store import RunStore
from tests import workspace_runs
from tests.test_page_user import _top_lists  # the lists as shown (an HTML table each)

PAGES = ("user", "train", "compare", "items", "runs")
MAIN = """
import streamlit as st
from core.runs.store import workspace_home
from dashboard import shell
pages = [st.Page(f"{{p}}_page.py", url_path=p) for p in {order!r}]
page = st.navigation(pages)
shell.register_pages(pages)
shell.sidebar(workspace_home())
page.run()
"""
PAGE = "from dashboard import shell\nfrom pages import {name}\nshell.guarded({name}.render)()\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("selection_ws")
    return folder, workspace_runs.build(folder)


@pytest.fixture
def runs(built, home):
    workspace_runs.copy_into(built[0], home)
    return built[1]


def _app(tmp_path, first: str = "user", **query) -> AppTest:
    """The app with `first` as the page that opens, `query` as the URL's parameters."""
    order = [first, *(p for p in PAGES if p != first)]
    for name in PAGES:
        (tmp_path / f"{name}_page.py").write_text(PAGE.format(name=name))
    main = tmp_path / "main.py"
    main.write_text(MAIN.format(order=order))
    at = AppTest.from_file(str(main), default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    return at


def _go(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"{page}_page.py").run()
    assert not at.exception
    return at


def _shown_user(at: AppTest) -> str:
    return at.subheader[0].value.removeprefix("User ")


def test_user_runs_k_and_models_survive_page_changes(runs, tmp_path):
    at = _app(tmp_path).run()
    assert not at.exception
    assert at.multiselect(key="user_runs").value == [runs["ease"], runs["pop"]]  # the default
    at.multiselect(key="user_runs").set_value([runs["ease"]])
    at.text_input(key="user_id").set_value("u13")
    at.radio(key="user_k").set_value(20).run()
    assert _shown_user(at) == "u13"
    assert at.query_params == {
        "dataset": "sample", "runs": runs["ease"], "user": "u13", "k": "20"
    }  # fmt: skip
    _go(at, "train")
    assert at.title[0].value == "Train"
    assert at.query_params == {"dataset": "sample", "models": ["pop", "ease"]}  # user's gone
    at.multiselect(key="train_models").set_value(["itemknn", "bpr"]).run()
    _go(at, "user")
    assert at.multiselect(key="user_runs").value == [runs["ease"]]
    assert at.text_input(key="user_id").value == "u13"
    assert _shown_user(at) == "u13"
    assert at.radio(key="user_k").value == 20
    heads = [m.value for m in at.markdown if m.value.startswith(("**ease** — ", "**pop** — "))]
    assert len(heads) == 1 and heads[0].startswith("**ease** — ")  # ease's list alone
    assert [len(t) for t in _top_lists(at)] == [20]  # ease's top 20
    assert at.query_params["user"] == "u13" and "models" not in at.query_params
    _go(at, "train")
    assert at.multiselect(key="train_models").value == ["itemknn", "bpr"]
    assert at.query_params["models"] == ["itemknn", "bpr"]


def test_compare_keeps_its_k_and_runs(runs, tmp_path):
    at = _app(tmp_path, first="compare").run()
    assert not at.exception
    assert sorted(at.multiselect(key="compare_runs").value) == sorted(runs.values())
    at.radio(key="compare_k").set_value(5).run()
    assert at.subheader[0].value == "Leaderboard"
    _go(at, "user")
    assert at.radio(key="user_k").value == 10  # Compare's K is Compare's own
    _go(at, "compare")
    assert at.radio(key="compare_k").value == 5
    assert sorted(at.multiselect(key="compare_runs").value) == sorted(runs.values())
    assert at.query_params["k"] == "5"


def test_a_link_opens_the_chosen_user_runs_and_k(runs, tmp_path):
    at = _app(tmp_path, user="u7", runs=[runs["ease"]], k="5", dataset="sample").run()
    assert not at.exception and not at.warning
    assert at.text_input(key="user_id").value == "u7"
    assert _shown_user(at) == "u7"
    assert at.multiselect(key="user_runs").value == [runs["ease"]]
    assert at.radio(key="user_k").value == 5
    assert [len(t) for t in _top_lists(at)] == [5]


def test_a_link_with_unknown_values_shows_the_defaults(runs, tmp_path):
    hostile = {
        "user": "**nobody** <b>x</b>",
        "runs": ["../../etc/passwd", "pop-does-not-exist"],
        "k": "7",
        "dataset": "../sample",
        "models": ["rm -rf", "ease"],
    }
    at = _app(tmp_path, **hostile).run()
    assert not at.exception and not at.error and not at.warning
    assert at.selectbox(key="dataset").value == "sample"
    assert at.text_input(key="user_id").value == "u1"  # the first user with a held-out item
    assert at.multiselect(key="user_runs").value == [runs["ease"], runs["pop"]]
    assert at.radio(key="user_k").value == 10
    assert at.query_params["user"] == "u1" and at.query_params["k"] == "10"
    assert at.query_params["dataset"] == "sample"
    assert "models" not in at.query_params  # not the User explorer's: dropped from its URL
    at = _app(tmp_path, first="train", models=hostile["models"]).run()
    assert not at.exception and not at.error
    assert at.multiselect(key="train_models").value == ["ease"]  # the unknown one dropped


def test_runs_page_opens_the_linked_run_details(runs, tmp_path):
    at = _app(tmp_path, first="runs", run=runs["pop"]).run()
    assert not at.exception
    assert at.selectbox(key="runs_detail").value == runs["pop"]  # not the newest (ease)
    at = _app(tmp_path, first="runs", run="../pop").run()
    assert not at.exception and not at.error
    assert at.selectbox(key="runs_detail").value == runs["ease"]
    assert at.query_params["run"] == runs["ease"]


def test_items_keeps_its_run_and_item_and_opens_them_from_a_link(planted_dataset, home, tmp_path):
    Dataset.from_frames("planted", _frame(planted_dataset)).save(home)
    store = RunStore(home)
    run_id = new_run(store, "planted", "pop")
    assert train_run(store, run_id)["status"] == "finished"
    at = _app(tmp_path, first="items").run()
    assert not at.exception
    assert at.selectbox(key="items_source").value == run_id
    at.selectbox(key="items_item").set_value(7).run()
    item_id = str(planted_dataset.item_ids[7])
    assert at.query_params["item"] == item_id and at.query_params["run"] == run_id
    _go(at, "train")
    assert "item" not in at.query_params
    _go(at, "items")
    assert at.selectbox(key="items_item").value == 7
    assert at.query_params["item"] == item_id
    at = _app(tmp_path, first="items", item=item_id, run=run_id).run()  # a new session
    assert at.selectbox(key="items_item").value == 7
    at = _app(tmp_path, first="items", item="no-such-item", run="../x").run()
    assert not at.exception and not at.warning
    assert at.selectbox(key="items_item").value != 7
    assert at.query_params["item"] != "no-such-item" and at.query_params["run"] == run_id


def _frame(dataset: Dataset) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": dataset.user_ids[dataset.interactions["user_code"]],
            "item_id": dataset.item_ids[dataset.interactions["item_code"]],
            "timestamp": dataset.interactions["timestamp"],
        }
    )
