"""User explorer page through AppTest on real pop and EASE runs on a slice of the sample."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.explain.explainer import explain
from core.runs.pipeline import load_run
from core.runs.store import RunStore
from dashboard import views_user as U
from tests import workspace_runs
from tests.helpers import plotly_values as _values


def _user_page(dataset: str | None = "sample") -> None:
    import streamlit as st

    from dashboard import shell
    from pages import user

    if dataset:
        st.session_state[shell.DATASET_KEY] = dataset
    user.render()


def _app(dataset: str | None = "sample") -> AppTest:
    return AppTest.from_function(_user_page, kwargs={"dataset": dataset}, default_timeout=90)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user_ws")
    return folder, workspace_runs.build(folder)


@pytest.fixture
def runs(built, home):
    workspace_runs.copy_into(built[0], home)
    return built[1]


class _Rows(HTMLParser):
    """The rows of a top list's HTML table: cell texts, and the hover text of the title."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self.cells: list[str] = []
        self.lines: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.cells = []
        elif tag == "td":
            self.lines = []
            if (hover := dict(attrs).get("title")) is not None:
                self.hover = hover
        elif tag == "div" and self.lines is not None:
            self.lines.append("")

    def handle_data(self, data):
        if self.lines is not None:
            self.lines[-1:] = [(self.lines[-1] if self.lines else "") + data]

    def handle_endtag(self, tag):
        if tag == "td":
            self.cells.append(self.lines)
            self.lines = None
        elif tag == "tr" and len(self.cells) == 3:
            (mark,), (score,), lines = self.cells
            title, category = (lines + [None])[:2]
            self.rows.append(
                {"#": mark, "score": float(score.replace(",", "")), "title": title,
                 "category": category, "hover": self.hover}
            )  # fmt: skip


def _top_lists(at: AppTest) -> list[pd.DataFrame]:
    """The top lists side by side, as shown (`views_user.list_html`), left to right."""
    tables = []
    for element in at.get("html"):
        if "Title · category" in element.proto.body:
            parser = _Rows()
            parser.feed(element.proto.body)
            tables.append(pd.DataFrame(parser.rows))
    return tables


def _figure(at: AppTest, title_start: str) -> dict:
    figs = [json.loads(e.proto.spec) for e in at.get("plotly_chart")]
    found = [f for f in figs if f["layout"]["title"]["text"].startswith(title_start)]
    assert len(found) == 1, [f["layout"]["title"]["text"] for f in figs]
    return found[0]


def _hit_user(home, runs) -> tuple[str, int]:
    """A user whose EASE top-10 holds their held-out item (so a hit must be marked)."""
    loaded = load_run(RunStore(home), runs["ease"])
    for code in range(loaded.dataset.n_users):
        held = U.held_out(loaded.split, code)
        table = U.top_list(loaded, code, 10, held=held)
        if table["hit"].any():
            return str(loaded.dataset.user_ids[code]), int(table.loc[table["hit"], "rank"].iloc[0])
    raise AssertionError("EASE hits nobody in its top 10")


@pytest.mark.parametrize("model", ["ease", "pop"])
def test_one_users_list_and_hits_read_only_that_users_rows(runs, home, model, monkeypatch):
    """Issue 15 item 7: a rerun of the explorer reads one user's rows, not the whole split
    (at 10M rows the held-out join took 4.7 s and the known-item matrix 0.3 s per run on
    every rerun); the hits and the top list equal those read from the whole split."""
    from core.data.dataset import Interactions
    from core.eval.rerank import recommend_reranked

    loaded = load_run(RunStore(home), runs[model])
    users = range(loaded.dataset.n_users)
    known = loaded.split.known_for("test").frame[["user_code", "item_code"]].drop_duplicates()
    joined = loaded.split.test.frame[["user_code", "item_code"]].merge(
        known, how="left", indicator=True
    )
    whole = joined.loc[
        joined["_merge"] == "left_only", ["user_code", "item_code"]
    ].drop_duplicates()
    pd.testing.assert_frame_equal(U._held_out_frame(loaded.split), whole)
    held = [np.unique(whole.loc[whole["user_code"] == u, "item_code"].to_numpy()) for u in users]
    lists = recommend_reranked(loaded, list(users), 10)  # (U, 10) from the whole split
    sizes, real = [], Interactions.csr

    def counted(self, values=None):
        sizes.append(len(self.frame))
        return real(self, values)

    monkeypatch.setattr(Interactions, "csr", counted)
    for u in users:
        assert U.held_out(loaded.split, u).tolist() == held[u].tolist()
        table = U.top_list(loaded, u, 10, held=held[u])
        assert table["item_code"].tolist() == [c for c in lists[u] if c >= 0]
        assert table["hit"].tolist() == [c in set(held[u].tolist()) for c in table["item_code"]]
    most = np.bincount(loaded.split.known_for("test").users).max()
    # never the whole split's matrix: one user's known rows at a time, or none at all (the
    # re-ranking reads the asked users' rows without a matrix of every user)
    assert all(size <= most for size in sizes)
    assert len(loaded.split.known_for("test").frame) > most  # so the bound can be broken


def test_held_out_drops_known_pairs_and_repeats_in_test_order():
    from core.data.dataset import Interactions
    from core.data.split import Split

    def part(pairs):
        frame = pd.DataFrame(pairs, columns=["user_code", "item_code"], dtype=np.int32)
        return Interactions(frame, 3, 5)

    test = [(0, 1), (0, 4), (0, 4), (1, 0), (2, 3), (2, 2)]
    parts = Split("random", 0, part([(0, 1), (1, 2)]), part([(2, 3)]), part(test))
    frame = U._held_out_frame(parts)
    assert frame.index.tolist() == [1, 3, 5]  # (0, 1) and (2, 3) known, (0, 4) once
    assert list(zip(frame["user_code"], frame["item_code"], strict=True)) == [
        (0, 4),
        (1, 0),
        (2, 2),
    ]
    assert [U.held_out(parts, u).tolist() for u in range(3)] == [[4], [0], [2]]


def test_history_lists_hits_and_waterfall(runs, home):
    user_id, hit_rank = _hit_user(home, runs)
    at = _app().run()
    at.text_input(key="user_id").set_value(user_id).run()
    assert not at.exception
    assert not at.error and not at.warning
    assert at.subheader[0].value == f"User {user_id}"
    loaded = load_run(RunStore(home), runs["ease"])
    code = int(loaded.dataset.user_codes([user_id])[0])
    history = U.user_history(loaded.dataset, loaded.split, code)
    # the history: a timeline with every interaction, the table newest first, the test item
    timeline = _figure(at, "History over time")
    assert sum(len(_values(t["x"])) for t in timeline["data"]) == len(history)
    table = at.dataframe[0].value
    assert table["title"].tolist() == history["title"].tolist()[::-1]
    assert set(table["part"]) == {"train", "valid", "test"}
    assert (
        at.dataframe[1].value["title"].tolist()
        == history.loc[history["part"] == "test", "title"].tolist()
    )
    # both lists side by side, the held-out item marked where EASE ranks it
    ease_list, pop_list = _top_lists(at)
    assert len(ease_list) == len(pop_list) == 10
    assert ease_list["#"].tolist()[hit_rank - 1] == f"{hit_rank} ✔"
    assert ease_list["#"].str.endswith("✔").sum() == 1
    pop_hits = int(pop_list["#"].str.endswith("✔").sum())
    # each title cell shows title and category, both whole on hover (issue 16 point 6)
    shown = U.top_list(loaded, code, 10, held=U.held_out(loaded.split, code))
    assert ease_list["title"].tolist() == shown["title"].tolist()
    assert ease_list["category"].tolist() == shown["category"].tolist()
    assert (ease_list["hover"] == shown["title"] + " · " + shown["category"]).all()
    heads = [m.value for m in at.markdown if m.value.startswith(("**ease** — ", "**pop** — "))]
    assert heads == ["**ease** — 1 hit", f"**pop** — {pop_hits} hit{'s' if pop_hits != 1 else ''}"]
    # click the held-out item: its SHAP waterfall adds up to the score shown in words
    assert at.selectbox(key="user_explain_run").value == runs["ease"]
    item_code = int(U.top_list(loaded, code, 10).loc[hit_rank - 1, "item_code"])
    at.selectbox(key="user_explain_item").set_value(item_code).run()
    assert not at.exception
    (text,) = [m.value for m in at.markdown if "(the base value)" in m.value]
    score, base = (float(x) for x in re.findall(r"\*\*(-?\d+\.\d{4})\*\*", text)[:2])
    shown_score = ease_list["score"].tolist()[hit_rank - 1]
    assert score == pytest.approx(shown_score, abs=5e-4)  # shown with 3 decimals
    water = _figure(at, "From the base value to the score")["data"][0]
    measures, x = water["measure"], _values(water["x"])
    assert measures[0] == "absolute" and measures[-1] == "total"
    assert x[0] == pytest.approx(base, abs=1e-4)
    assert sum(x[:-1]) == pytest.approx(score, abs=1e-4)  # base + Σ contributions = score
    assert x[-1] == pytest.approx(score, abs=1e-4)
    exp = explain(loaded, code, item_code, max_history=20)
    assert exp.base_value + exp.contributions["value"].sum() == pytest.approx(exp.score)
    assert any(label.startswith(("bought", "watched", "read")) for label in water["y"])
    bar = _figure(at, "What moved the score")["data"][0]
    assert len(_values(bar["x"])) == min(10, len(exp.contributions))


def test_find_user_at_random_by_segment_and_unknown_id(runs):
    at = _app().run()
    assert not at.exception
    first = at.text_input(key="user_id").value
    assert first == "u1"  # the first user with a held-out item
    at.selectbox(key="user_seg_kind").set_value("scenario").run()
    at.selectbox(key="user_seg_value").set_value("shop").run()
    at.button(key="user_seg_pick").click().run()
    assert not at.exception
    picked = at.text_input(key="user_id").value
    assert at.subheader[0].value == f"User {picked}"
    assert at.metric[3].value == "shop"  # the user's main scenario
    at.button(key="user_random").click().run()
    assert at.subheader[0].value == f"User {at.text_input(key='user_id').value}"
    at.text_input(key="user_id").set_value("nobody").run()
    assert not at.exception
    assert at.warning[0].value.startswith("There is no user 'nobody' in dataset 'sample'")


def test_rerank_sliders_change_the_list(runs, home):
    at = _app().run()
    before = _top_lists(at)[0]
    at.slider(key="user_div").set_value(0.9).run()
    assert not at.exception
    after = _top_lists(at)[0]
    assert after["title"].tolist() != before["title"].tolist()
    # EASE has no embeddings, so similarity is the category: the list spreads over more
    assert after["category"].nunique() > before["category"].nunique()
    loaded = load_run(RunStore(home), runs["ease"])
    expected = U.top_list(loaded, 0, 10, diversity=0.9)
    assert after["title"].tolist() == expected["title"].tolist()


def test_tradeoff_curve_on_demand(runs):
    at = _app().run()
    assert not [f for f in at.get("plotly_chart") if "weight grows" in f.proto.spec]
    at.button(key="user_curve_go").click().run()
    assert not at.exception
    curve = _figure(at, "NDCG@10 as the diversity weight grows")
    assert _values(curve["data"][0]["customdata"])[:3] == [0.0, 0.1, 0.2]
    assert len(curve["data"]) == 3  # novelty, coverage, diversity panels


def test_global_importance_on_demand(runs):
    at = _app().run()
    at.selectbox(key="user_global_run").set_value(runs["ease"])
    at.button(key="user_global_go").click().run()
    assert not at.exception and not at.error
    bars = _figure(at, "Mean |SHAP| by feature group (30 users' top item)")["data"][0]
    groups = list(bars["y"])
    assert groups[0] == "history position: most recent"
    assert any(g.startswith("history category: ") for g in groups)
    x, shares = _values(bars["x"]), _values(bars["customdata"])
    position = [i for i, g in enumerate(groups) if g.startswith("history position: ")]
    assert sum(shares[i] for i in position) == pytest.approx(1.0)  # shares within a kind
    assert x[0] > 0  # the newest history item moves the top item's score


def test_without_runs_says_to_train(home, built):
    workspace_runs.small_sample().save(home)
    at = _app().run()
    assert not at.exception
    assert at.info[0].value == "No finished run on 'sample' yet — train a model on the Train page."
    assert len(at.dataframe) == 0


# -- the "what if" history editor (issue 14 item 5) ------------------------------------------


def _list_titles(at: AppTest, index: int = 0) -> list[str]:
    return _top_lists(at)[index]["title"].tolist()


def test_whatif_editor_add_remove_reset_change_the_list(runs, home):
    from core.explain.whatif import HistoryEdit, known_history, what_if
    from dashboard.whatif import search_items

    loaded = load_run(RunStore(home), runs["ease"])
    ds = loaded.dataset
    at = _app().run()
    user_id = at.text_input(key="user_id").value
    code = int(ds.user_codes([user_id])[0])
    history = known_history(loaded.split.known_for("test"), code)
    recorded = _list_titles(at)
    pop_before = _list_titles(at, 1)
    # which runs react, and why pop cannot
    assert "React to the edit: **ease**." in [m.value for m in at.markdown]
    assert any(c.value.startswith("pop: pop scores items the same whatever") for c in at.caption)
    # search by title, add the first match as the newest item
    # the first new item whose addition changes EASE's top 10 (most do; item 0 does not)
    target = next(
        int(c)
        for c in np.setdiff1d(np.arange(ds.n_items), history)
        if len(what_if(loaded.model, code, history, HistoryEdit(added=(int(c),)), 10).entered)
    )
    title = str(ds.item_titles()[target])
    at.text_input(key="user_whatif_search").set_value(title).run()
    assert at.selectbox(key="user_whatif_pick").options[0].startswith(title)
    # a new search picks its first match (the browser showed an empty pick: a keyed
    # selectbox keeps its old value when its options change)
    assert at.selectbox(key="user_whatif_pick").value == search_items(ds, title)[0]
    at.selectbox(key="user_whatif_pick").set_value(target).run()
    at.button(key="user_whatif_add").click().run()
    assert not at.exception and not at.error
    expected = what_if(loaded.model, code, history, HistoryEdit(added=(target,)), 10, seed=42)
    added = _top_lists(at)[0]
    assert [t.removeprefix("(new) ").strip() for t in added["title"]] == [
        str(ds.item_titles()[c]) for c in expected.items
    ]
    assert added["title"].str.startswith("(new) ").sum() == len(expected.entered) >= 1
    assert _list_titles(at, 1) == pop_before  # pop cannot react: its list stays
    assert f"Edited history: {len(history) + 1:,} items — added “{title}”." in [
        m.value for m in at.markdown
    ]
    changes = [m.value for m in at.markdown if re.match(r"\d+ entered: |Same items", m.value)]
    assert len(changes) == 1
    # remove the newest recorded item too: the list moves again
    newest = int(history[-1])
    at.selectbox(key="user_whatif_drop").set_value(newest).run()
    at.button(key="user_whatif_remove").click().run()
    both = what_if(loaded.model, code, history, HistoryEdit((target,), (newest,)), 10, seed=42)
    titles = [t.removeprefix("(new) ").strip() for t in _list_titles(at)]
    assert titles == [str(ds.item_titles()[c]) for c in both.items]
    assert titles != [t.removeprefix("(new) ").strip() for t in added["title"]]
    # the explanation follows the edited history: base + Σ = the edited score
    exp_text = [m.value for m in at.markdown if "(the base value)" in m.value]
    score = float(re.findall(r"\*\*(-?\d+\.\d{4})\*\*", exp_text[0])[0])
    chosen = int(at.selectbox(key="user_explain_item").value)
    rank = both.items.tolist().index(chosen)
    assert score == pytest.approx(float(both.scores[rank]), abs=1e-4)
    assert any(c.value.startswith("Explained on the edited history") for c in at.caption)
    water = _figure(at, "From the base value to the score")["data"][0]
    assert sum(_values(water["x"])[:-1]) == pytest.approx(score, abs=1e-4)
    # the edit survives a rerun (session state keyed by dataset and user), reset drops it
    at.run()
    assert [t.removeprefix("(new) ").strip() for t in _list_titles(at)] == titles
    at.button(key="user_whatif_reset").click().run()
    assert not at.exception
    assert _list_titles(at) == recorded
    assert f"Recorded history: {len(history):,} items, not edited." in [
        m.value for m in at.markdown
    ]


def test_interest_profile_section_sits_on_the_explorer(runs, home):
    """The User explorer shows the user's long-term vs recent shares and each run's list mix."""
    at = _app().run()
    assert not at.exception and not at.error
    assert "Long-term and recent interests" in [s.value for s in at.subheader]
    titles = [json.loads(e.proto.spec)["layout"]["title"]["text"] for e in at.get("plotly_chart")]
    assert "Category shares: long-term vs recent" in titles
    assert any(t.startswith("Category shares of each top 10") for t in titles)
    assert "Drift (total variation)" in [m.label for m in at.metric]
    follows = [m.value for m in at.markdown if "'s top 10 follows this user's" in m.value]
    assert len(follows) == 2  # one sentence per chosen run (ease and pop)


def test_pop_explanation_is_one_sentence_not_zero_bars(runs):
    """Issue 16 point 9: pop's SHAP view drew 21 zero bars on a '0 100p 200p' axis."""
    at = _app().run()
    at.selectbox(key="user_explain_run").set_value(runs["pop"]).run()
    assert not at.exception
    (info,) = [i.value for i in at.info if "scores every user the same" in i.value]
    assert "nothing in the user's history changes it" in info
    titles = [json.loads(e.proto.spec)["layout"]["title"]["text"] for e in at.get("plotly_chart")]
    assert not any(t.startswith(("From the base value", "What moved the score")) for t in titles)
    at.selectbox(key="user_explain_run").set_value(runs["ease"]).run()
    water = _figure(at, "From the base value to the score")
    assert water["layout"]["xaxis"]["tickformat"].endswith("~f")  # no SI suffixes


def test_top_list_html_cuts_long_text_and_shows_it_whole_on_hover():
    """Issue 16 point 6: with up to 5 lists side by side the table keeps its fixed '#' and
    score columns, cuts title and category with '…' (CSS) and carries both whole in the cell's
    hover text; strings are escaped; a missing category is no line, never 'None'."""
    long = 'A <b>very</b> long title that cannot fit a fifth of the page & more "quoted"'
    table = pd.DataFrame(
        {"rank": [1, 2], "title": [long, "Short"], "category": ["Home & Garden", None],
         "score": [898.0, 0.29157], "hit": [False, True]}
    )  # fmt: skip
    _, shown = U.list_view(table, "pop")
    body = U.list_html(shown)
    assert "table-layout:fixed" in body and "text-overflow:ellipsis" in body
    assert "<b>" not in body and "None" not in body and "nan" not in body
    parser = _Rows()
    parser.feed(body)
    rows = pd.DataFrame(parser.rows)
    assert rows["#"].tolist() == ["1", f"2 {U.HIT}"]
    assert rows["score"].tolist() == [898.0, 0.292]
    assert rows["title"].tolist() == [long, "Short"]
    assert rows["category"].iloc[0] == "Home & Garden" and pd.isna(rows["category"].iloc[1])
    assert rows["hover"].tolist() == [f"{long} · Home & Garden", "Short"]
