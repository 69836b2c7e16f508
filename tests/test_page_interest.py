"""The User explorer's interest section (issue 14, item 4) through AppTest, on real pop and
EASE runs trained on a slice of the sample data, plus its sentences."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.data.dataset import Dataset
from core.data.split import split
from core.eval import interest as I
from dashboard import views_interest as VI
from dashboard.text import md
from tests import workspace_runs
from tests.helpers import plotly_values as _values

USER = "u55"  # recent window 90% Science, long-term mostly Tech and Cooking (drift 0.87)


def _panel(home: str, dataset: str, run_ids: list, user_id: str) -> None:
    from pathlib import Path

    from dashboard.interest_panel import render_user_interests

    render_user_interests(Path(home), dataset, run_ids, user_id)


def _app(home, run_ids, user_id=USER, dataset="sample") -> AppTest:
    kwargs = {"home": str(home), "dataset": dataset, "run_ids": run_ids, "user_id": user_id}
    return AppTest.from_function(_panel, kwargs=kwargs, default_timeout=90)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("interest_ws")
    return folder, workspace_runs.build(folder)


@pytest.fixture
def runs(built, home):
    workspace_runs.copy_into(built[0], home)
    return built[1]


@pytest.fixture(scope="module")
def truth(built):
    """The profiles computed straight from core, to check what the panel shows."""
    ds = Dataset.load(built[0], "sample")
    profiles = I.interest_profiles(ds, split(ds, "loo", 42), recent=I.RECENT)
    return ds, profiles, int(ds.user_codes([USER])[0])


def _figures(at: AppTest) -> dict:
    figs = [json.loads(e.proto.spec) for e in at.get("plotly_chart")]
    return {f["layout"]["title"]["text"]: f for f in figs}


def test_panel_shows_shares_drift_and_what_each_run_follows(runs, home, truth):
    ds, profiles, code = truth
    ids = [runs["ease"], runs["pop"], "ease-19990101-000000-000000"]
    at = _app(home, ids).run()
    assert not at.exception and not at.error
    assert [s.value for s in at.subheader] == ["Long-term and recent interests"]
    assert at.caption[0].value == md(
        f"Left out of the interest profiles: There is no run '{ids[2]}' in {home / 'runs'}; "
        "`recscope runs` lists the runs."
    )
    figs = _figures(at)
    bars = figs["Category shares: long-term vs recent"]["data"]
    assert [b["name"] for b in bars] == [
        "Long-term (whole history)",
        "Recent (last 10)",
        "Held out (test)",
    ]
    shares = I.user_shares(profiles, code)
    assert _values(bars[0]["x"]) == [c.replace("&", "&amp;") for c in shares["category"]]
    assert _values(bars[1]["y"]) == pytest.approx(shares["recent"].tolist())
    recent = dict(zip(shares["category"], shares["recent"], strict=True))
    assert recent["Science"] == pytest.approx(0.9)  # the planted series the user is in
    drift = I.drift(profiles, code)
    assert drift == pytest.approx(0.8663, abs=1e-4)
    assert at.metric[0].value == f"{drift:.2f}" == "0.87"
    assert at.caption[1].value == (
        "Drift 0.87: 87% of the interest in the 10 most recent interactions would have to move "
        f"to other categories to match the whole history of {int(profiles.n_long[code])} (total "
        "variation distance: 0 = the same mix, 1 = no category in common)."
    )
    # each run's top 10 against the held-out shares, and in words which interests it follows
    lists = {r: pd.read_parquet(home / "runs" / r / "recs.parquet") for r in ids[:2]}
    run_shares, distances = I.user_run_shares(profiles, code, lists, 10)
    per_run = figs["Category shares of each top 10 next to the held-out items"]["data"]
    assert [b["name"] for b in per_run] == ["Held out (test)", "ease", "pop"]
    assert _values(per_run[1]["y"]) == pytest.approx(run_shares[runs["ease"]].tolist())
    sentences = [m.value.replace("\\", "") for m in at.markdown]  # drop Markdown escapes
    assert len(sentences) == 2
    for sentence, row in zip(sentences, distances.to_dict("records"), strict=True):
        match = re.fullmatch(
            r"(ease|pop)'s top 10 follows this user's (recent|long-term) interests \(distance "
            r"(\d\.\d\d) to them, (\d\.\d\d) to the (recent|long-term) ones\)\.",
            sentence,
        )
        assert match, sentence
        assert match.group(2) == row["follows"]
        near, far = sorted([row["tv_recent"], row["tv_long_term"]])
        assert float(match.group(3)) == pytest.approx(near, abs=0.005)
        assert float(match.group(4)) == pytest.approx(far, abs=0.005)
    table = at.dataframe[0].value
    assert table["run"].tolist() == ["ease", "pop"]
    assert table["kl_held_out"].tolist() == pytest.approx(distances["kl_held_out"].tolist())


def test_window_setting_and_no_runs(runs, home, truth):
    _, profiles, code = truth
    at = _app(home, []).run()
    assert not at.exception and not at.error
    assert at.caption[-1].value.endswith(
        "No finished run was given, so the history is every interaction in the data."
    )
    assert "Category shares of each top 10 next to the held-out items" not in _figures(at)
    at.number_input(key="interest_recent").set_value(500).run()
    assert at.metric[0].value == "0.00"
    assert re.fullmatch(
        r"This user has \d+ known interactions, no more than the recent window of 500, so "
        r"recent and long-term interests are the same \(drift 0\)\.",
        at.caption[0].value,
    )


def test_dataset_without_categories_says_so(home):
    inter = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["x", "y", "x"]})
    Dataset.from_frames("plain", inter).save(home)
    at = _app(home, ["missing"], user_id="a", dataset="plain").run()
    assert not at.exception and not at.error
    assert [i.value for i in at.info] == [
        "The items of this dataset have no category, so there are no interest profiles; "
        "ingest an item table with a category or genre column to see them."
    ]


def test_unknown_user_is_one_sentence(runs, home):
    at = _app(home, [runs["pop"]], user_id="nobody").run()
    assert not at.exception
    assert len(at.error) == 1 and "nobody" in at.error[0].value


def test_sentences():
    row = {"follows": "recent", "tv_recent": 0.21, "tv_long_term": 0.5}
    assert VI.follows_sentence(row, "gru4rec", 10) == (
        "gru4rec's top 10 follows this user's recent interests (distance 0.21 to them, 0.50 to "
        "the long-term ones)."
    )
    row = {"follows": "both", "tv_recent": 0.4, "tv_long_term": 0.4}
    assert VI.follows_sentence(row, "pop", 5) == (
        "pop's top 5 is as close to this user's recent interests as to their long-term ones "
        "(distance 0.40 to each)."
    )
    row = {"follows": "", "tv_recent": math.nan, "tv_long_term": math.nan}
    assert VI.follows_sentence(row, "pop", 5) == (
        "pop has no top 5 with a categorised item for this user."
    )
    assert VI.drift_sentence(0.25, 40, 10, by_time=False).startswith(
        "Drift 0.25: 25% of the interest in the last 10 interactions in file order (the data has "
        "no timestamps) would have to move"
    )
    shares = pd.DataFrame(
        {"category": ["A", "B"], "long_term": [0.8, 0.2], "recent": [0.1, 0.9], "held_out": [0, 1]}
    )
    assert VI.held_out_sentence(shares) == (
        "The held-out test items are closer to the recent interests (distance 0.10 to recent, "
        "0.80 to long-term)."
    )
    shares["recent"] = [0.797, 0.203]  # equal at the two decimals shown
    assert VI.held_out_sentence(shares) == (
        "The held-out test items are about as close to the recent interests as to the long-term "
        "ones (distance 0.80 to recent, 0.80 to long-term)."
    )
