"""Data page through Streamlit's AppTest: first start, upload + mapping, bad input, profile."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.data import profile
from core.data.dataset import Dataset, list_datasets
from core.data.ingest.ingest import ingest
from core.data.schema import ColumnMapping
from core.errors import IngestError
from dashboard import views_data as VD
from dashboard.text import md

APP = "../dashboard/app.py"
# user,movie,stars are inferred; 'when' is not, so the test maps it by hand.
GOOD = (
    "user,movie,stars,when,device\n"
    "u1,m1,5,1700000000,web\n"
    "u1,m2,2,1700000100,app\n"
    "u2,m1,4,1700086400,app\n"
    "u2,m1,4,1700086500,app\n"  # repeated pair: collapsed
    "u3,m3,1,1700172800,web\n"
    ",m2,3,1700172900,web\n"  # no user id: dropped
)
BAD = "user,movie,stars\nu1,m1,5\nu2,m2,five\nu3,m3,4\n"


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=120)


def _by_label(widgets, label: str):
    found = [w for w in widgets if w.label == label]
    assert len(found) == 1, [w.label for w in widgets]
    return found[0]


def _create(at: AppTest) -> AppTest:
    return _by_label(at.button, "Create dataset").click().run()


def test_first_start_ingests_the_sample(home):
    at = _app().run()
    assert not at.exception
    assert list_datasets(home) == ["sample"]
    assert at.info[0].value.startswith("Loaded the shipped sample data as dataset 'sample'")
    assert at.sidebar.selectbox(key="dataset").value == "sample"
    assert at.header[0].value == "Profile of 'sample'"
    assert at.subheader[0].value == "Scenarios"  # the sample has several scenarios
    # a second run does not ingest again and says nothing about it
    at.run()
    assert not [i for i in at.info if "sample data" in i.value]


def test_profile_of_planted_dataset(home, planted_dataset):
    planted_dataset.save(home)
    at = _app().run()
    assert not at.exception and not at.error
    assert list_datasets(home) == ["planted"]  # no sample ingest when data exists
    assert at.header[0].value == "Profile of 'planted'"
    c = profile.counts(planted_dataset)
    shown = {m.label: m.value for m in at.metric}
    assert shown == {
        "Users": "120",
        "Items": "60",
        "Interactions": f"{c.interactions:,}",
        "Sparsity": f"{c.sparsity:.2%}",
    }
    share = profile.top_share(profile.activity(planted_dataset, "user"), 0.1)
    captions = [x.value for x in at.caption]
    assert f"The most active 10% of users account for {share:.0%} of all interactions." in captions
    titles = _chart_titles(at)
    assert titles == [
        "Interactions per user (long tail)",
        "Interactions per item (long tail)",
        "Activity over time",
        "Top 20 items",
    ]  # no ratings and no scenarios in the planted data
    assert not at.subheader


def test_upload_map_and_create(home, planted_dataset, tmp_path):
    planted_dataset.save(home)
    at = _app().run()
    at.file_uploader(key="upload_main").set_value(("my ratings.csv", GOOD.encode(), "text/csv"))
    at.run()
    assert not at.exception and not at.error
    preview = at.dataframe[0].value
    assert list(preview.columns) == ["user", "movie", "stars", "when", "device"]
    assert len(preview) == 6
    assert preview["user"].iloc[-1] == "—"  # issue 16: an empty cell, never a raw "None"
    assert _by_label(at.selectbox, "User column").value == "user"
    assert _by_label(at.selectbox, "Item column").value == "movie"
    assert _by_label(at.selectbox, "Rating column").value == "stars"
    assert _by_label(at.selectbox, "Time column").value == "(none)"
    _by_label(at.selectbox, "Time column").set_value("when")
    _by_label(at.selectbox, "Scenario column").set_value("device")
    at.run()
    assert _by_label(at.text_input, "Dataset name").value == "my-ratings"
    _by_label(at.number_input, "Keep only ratings of at least (optional)").set_value(2.0)
    at = _create(at)
    assert not at.exception and not at.error
    # the report equals what ingest itself says for the same input
    mapping = ColumnMapping(
        user_id="user", item_id="movie", rating="stars", timestamp="when", scenario="device"
    )
    _, report = ingest(
        (GOOD.encode(), "my ratings.csv"),
        name="check",
        mapping=mapping,
        min_rating=2.0,
        home=tmp_path / "other",
    )
    lines = report.lines()
    assert any("no user id" in line for line in lines)  # the report explains the drop
    expected = [md("Created dataset 'my-ratings'."), "", *(f"- {md(line)}" for line in lines)]
    assert at.success[0].value == "\n".join(expected)
    assert at.sidebar.selectbox(key="dataset").value == "my-ratings"
    assert at.header[0].value == f"Profile of '{md('my-ratings')}'"
    # issue 16: the form starts empty after a create, not with the file just ingested under
    # a "name already exists" warning for the dataset just made
    assert not at.warning and "Dataset name" not in [t.label for t in at.text_input]
    assert "Choose a file to see a preview and map its columns." in [c.value for c in at.caption]
    stored = Dataset.load(home, "my-ratings")
    assert sorted(stored.scenarios) == ["app", "web"]
    # kept: u1-m1 (5), u1-m2 (2), u2-m1 (4, collapsed); u3-m3 (1) is below 2
    assert len(stored.interactions) == 3
    ratings = _charts(at)["Rating distribution"]["data"][0]
    assert ratings["x"] == ["2", "4", "5"]  # what was kept, not what was read


def test_bad_upload_shows_the_ingest_sentence(home, planted_dataset, tmp_path):
    planted_dataset.save(home)
    with pytest.raises(IngestError) as expected:
        ingest((BAD.encode(), "bad.csv"), name="bad", home=tmp_path / "other")
    at = _app().run()
    at.file_uploader(key="upload_main").set_value(("bad.csv", BAD.encode(), "text/csv"))
    at.run()
    at = _create(at)
    assert not at.exception
    assert [e.value for e in at.error] == [md(expected.value)]
    assert md("bad.csv") in at.error[0].value and "stars" in at.error[0].value
    assert list_datasets(home) == ["planted"]  # nothing half-written
    assert at.header[0].value == "Profile of 'planted'"  # the rest of the page still works


def test_missing_server_path_is_an_error_not_a_crash(home, planted_dataset, tmp_path):
    planted_dataset.save(home)
    at = _app().run()
    _by_label(at.radio, "Source").set_value("Path on the server")
    at.run()
    missing = home / "nope.csv"  # inside a data folder, so the reader says it is missing
    at.text_input(key="path_main").set_value(str(missing)).run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        md(f"file {missing}: the file does not exist — check the path and its spelling.")
    ]
    assert "Traceback" not in at.error[0].value


def _charts(at: AppTest) -> dict[str, dict]:
    """Plotly figure specs shown on the page, by title, in page order."""
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {spec["layout"]["title"]["text"]: spec for spec in specs}


def _chart_titles(at: AppTest) -> list[str]:
    return list(_charts(at))


def test_server_path_previews_twenty_rows_and_ingests(home, planted_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("RECSCOPE_DATA_DIRS", str(tmp_path))  # an extra data folder
    planted_dataset.save(home)
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id\n" + "".join(f"u{i % 7},i{i}\n" for i in range(50)))
    at = _app().run()
    _by_label(at.radio, "Source").set_value("Path on the server")
    at.run()
    at.text_input(key="path_main").set_value(str(path)).run()
    assert not at.exception and not at.error
    assert len(at.dataframe[0].value) == 20  # a preview reads only the first rows
    assert _by_label(at.text_input, "Dataset name").value == "events"
    at = _create(at)
    assert not at.exception and not at.error
    assert at.success[0].value.startswith(md("Created dataset 'events'."))
    stored = Dataset.load(home, "events")
    assert (stored.n_users, stored.n_items, len(stored.interactions)) == (7, 50, 50)


EVENTS = "user_id,item_id\n" + "".join(f"u{i % 5},i{i % 9}\n" for i in range(40))


def _upload(at: AppTest, name: str, text: str) -> AppTest:
    at.file_uploader(key="upload_main").set_value((name, text.encode(), "text/csv"))
    return at.run()


def test_upload_default_name_never_takes_a_stored_one(home, planted_dataset):
    """Issue 11: the default name of an upload is free ('planted' is stored: 'planted-2')."""
    planted_dataset.save(home)
    at = _upload(_app().run(), "planted.csv", EVENTS)
    assert not at.exception and not at.error and not at.warning
    assert _by_label(at.text_input, "Dataset name").value == "planted-2"
    at = _create(at)
    assert not at.exception and not at.error
    assert list_datasets(home) == ["planted", "planted-2"]
    assert len(Dataset.load(home, "planted").interactions) == len(planted_dataset.interactions)


def test_upload_default_name_is_the_layouts_name(home, planted_dataset):
    """Issue 16: u.data is MovieLens-100k's file, so its dataset is 'ml-100k' (not 'u'),
    still free of stored names; a RecBole ml-100k.inter is 'ml-100k' too."""
    planted_dataset.save(home)
    u_data = "".join(
        f"{u}\t{i}\t{1 + (u + i) % 5}\t{880000000 + u * 100 + i}\n"
        for u in (1, 2, 3)
        for i in range(1, 6)
    )
    at = _upload(_app().run(), "u.data", u_data)
    assert not at.exception and not at.error
    assert _by_label(at.text_input, "Dataset name").value == "ml-100k"
    Dataset.from_frames("ml-100k", pd.DataFrame({"user_id": ["a"], "item_id": ["b"]})).save(home)
    inter = "user_id:token\titem_id:token\n1\t2\n2\t3\n"
    at = _upload(_app().run(), "ml-100k.inter", inter)
    assert not at.exception and not at.error
    assert _by_label(at.text_input, "Dataset name").value == "ml-100k-2"


def test_a_taken_name_is_said_and_replaced_only_when_ticked(home, planted_dataset):
    planted_dataset.save(home)
    at = _upload(_app().run(), "events.csv", EVENTS)
    _by_label(at.text_input, "Dataset name").set_value("planted")
    at.run()
    taken = md("planted")
    assert [w.value for w in at.warning] == [VD.name_taken("planted", "planted-2")]
    assert VD.name_taken("planted", "planted-2") == (
        f"A dataset named '{taken}' already exists (no runs use it yet). Type another "
        f"name (for example '{md('planted-2')}') or tick 'Replace the existing dataset' to "
        "overwrite it on purpose."
    )
    box = _by_label(at.checkbox, f"Replace the existing dataset '{taken}'")
    assert box.value is False
    at = _create(at)  # not ticked: refused, nothing changes
    assert not at.exception
    assert [e.value for e in at.error] == [VD.name_taken("planted", "planted-2")]
    assert len(Dataset.load(home, "planted").interactions) == len(planted_dataset.interactions)
    _by_label(at.checkbox, f"Replace the existing dataset '{taken}'").check()
    at = _create(at.run())
    assert not at.exception and not at.error
    stored = Dataset.load(home, "planted")
    assert (stored.n_users, stored.n_items) == (5, 9)  # replaced on purpose
    assert list_datasets(home) == ["planted"]


def test_two_sessions_uploading_the_same_file_do_not_overwrite(home, planted_dataset):
    """Two browser sessions, same file name, same default: the second is refused."""
    planted_dataset.save(home)
    first = _upload(_app().run(), "events.csv", EVENTS)
    second = _upload(_app().run(), "events.csv", "user_id,item_id\nx1,y1\nx2,y2\n")
    assert _by_label(first.text_input, "Dataset name").value == "events"
    assert _by_label(second.text_input, "Dataset name").value == "events"
    first = _create(first)
    assert not first.exception and not first.error
    second = _create(second)
    assert not second.exception
    # the click's rerun already sees the first session's dataset: refused, with the choice
    assert [e.value for e in second.error] == [VD.name_taken("events", "events-2")]
    assert [w.value for w in second.warning] == [VD.name_taken("events", "events-2")]
    assert list_datasets(home) == ["events", "planted"]
    stored = Dataset.load(home, "events")
    assert (stored.n_users, stored.n_items) == (5, 9)  # the first session's data


AMBIGUOUS = "user_id,item_id,when\n" + "".join(
    f"u{i % 4},i{i},0{1 + i % 9}/0{1 + i % 7}/2024\n" for i in range(20)
)


def test_ambiguous_dates_are_refused_then_read_with_the_format_typed(home, planted_dataset):
    """Issue 11: every date reads both ways: the sentence, then the page's format field."""
    planted_dataset.save(home)
    at = _upload(_app().run(), "dates.csv", AMBIGUOUS)
    _by_label(at.selectbox, "Time column").set_value("when")
    at = _create(at.run())
    assert not at.exception
    shown = at.error[0].value.replace("\\", "")  # the page escapes Markdown in messages
    assert len(at.error) == 1 and "--date-format %d/%m/%Y (day first)" in shown
    assert list_datasets(home) == ["planted"]
    _by_label(at.text_input, "Timestamp format (optional)").set_value("%d/%m/%Y")
    at = _create(at.run())
    assert not at.exception and not at.error
    stored = Dataset.load(home, "dates")
    first = stored.interactions["timestamp"].min()
    assert first == int(pd.Timestamp("2024-01-01").timestamp())  # 01/01: day 1 of January
    # day-first the latest is 07/07/2024 (rows 6): month-first it would be in September
    last = stored.interactions["timestamp"].max()
    assert last == int(pd.Timestamp("2024-07-07").timestamp())


def test_a_guessed_encoding_is_noted_under_the_preview(home, planted_dataset):
    planted_dataset.save(home)
    text = "user_id,item_id\n" + "".join(f"u{i},caf\xe9{i}\n" for i in range(10))
    at = _app().run()
    at.file_uploader(key="upload_main").set_value(("latin.csv", text.encode("cp1252"), "text/csv"))
    at.run()
    assert not at.exception and not at.error
    notes = [c.value for c in at.caption if "The file is not UTF\\-8" in c.value]
    assert notes, [c.value for c in at.caption]
