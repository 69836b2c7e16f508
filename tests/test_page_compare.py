"""Compare page through AppTest on real pop and EASE runs trained on a slice of the sample."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.data.dataset import Dataset
from core.data.split import split
from core.eval import compare as C
from core.eval import interest as I
from core.runs.pipeline import new_run, train_run
from core.runs.store import RunStore
from dashboard.text import md
from tests import workspace_runs
from tests.helpers import plotly_values as _values


def _compare_page(dataset: str | None = "sample") -> None:
    import streamlit as st

    from dashboard import shell
    from pages import compare

    if dataset:
        st.session_state[shell.DATASET_KEY] = dataset
    compare.render()


def _app(dataset: str | None = "sample") -> AppTest:
    return AppTest.from_function(_compare_page, kwargs={"dataset": dataset}, default_timeout=90)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare_ws")
    return folder, workspace_runs.build(folder)


@pytest.fixture
def runs(built, home):
    workspace_runs.copy_into(built[0], home)
    return built[1]


def _figures(at: AppTest) -> list[dict]:
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def _title(fig: dict) -> str:
    return fig["layout"]["title"]["text"]


def test_leaderboard_and_paired_sentence_say_ease_beats_pop(runs, home):
    at = _app().run()
    assert not at.exception
    assert not at.error and not at.warning
    assert sorted(at.multiselect(key="compare_runs").value) == sorted(runs.values())
    board = at.dataframe[0].value
    assert board["run"].tolist() == ["ease", "pop"]  # best NDCG@10 first
    # issue 16: the table in view fits the page (run, accuracy, fit time); the rest folds away
    assert board.columns[0] == "run" and board.columns[-1] == "fit_s"
    assert "coverage@10" not in board.columns and "map_trec@10" not in board.columns
    assert json.loads(at.dataframe[0].proto.columns)["map@10"]["label"] == "MAP@10"
    (more,) = [d for d in at.dataframe if "coverage@10" in d.value.columns]
    assert more.value.columns[0] == "run" and list(more.value.columns[-2:]) == ["model", "run_id"]
    assert json.loads(more.proto.columns)["coverage@10"]["label"] == "Coverage"
    assert at.expander[0].label.startswith("More columns: other metrics at K=10")
    store = RunStore(home)
    for model, run_id in runs.items():
        stored = store.read(run_id)["metrics"]["test"]["ndcg@10"]
        assert board.set_index("run").loc[model, "ndcg@10"] == pytest.approx(stored)
    # the paired test against the pop baseline, as a sentence a product manager can read
    paired = C.paired_table(store, [runs["ease"]], "ndcg@10", runs["pop"]).iloc[0]
    assert paired["significant"] and paired["mean_diff"] > 0.1
    (sentence,) = [s.value for s in at.success]
    match = re.fullmatch(
        r"ease is better than pop for NDCG@10 by (0\.\d+) \(95% CI (0\.\d+)–(0\.\d+), "
        r"p < 0\.001, 250 users\)\.",
        sentence,
    )
    assert match, sentence
    diff, low, high = (float(g) for g in match.groups())
    assert diff == pytest.approx(paired["mean_diff"], abs=0.005)
    assert low == pytest.approx(paired["ci_low"], abs=0.005)
    assert high == pytest.approx(paired["ci_high"], abs=0.005)
    assert low < diff < high
    figs = {_title(f): f for f in _figures(at)}
    forest = figs["NDCG@10: difference to pop (95% CI)"]
    assert _values(forest["data"][0]["y"]) == ["ease"]  # one row per compared run
    assert _values(forest["data"][0]["x"]) == [pytest.approx(paired["mean_diff"])]
    for title in ("By activity (known interactions)", "Cold and warm users", "By scenario"):
        assert [t["name"] for t in figs[title]["data"]] == ["ease", "pop"]
    heat = figs["Overlap of the top-10 lists (mean Jaccard@10)"]["data"][0]
    z = np.array(_values(heat["z"]))
    overlap = C.overlap(store, [runs["ease"], runs["pop"]], 10).to_numpy()
    assert np.allclose(z.reshape(2, 2), overlap) and overlap[0, 0] == 1.0 and overlap[0, 1] < 1.0
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == [
        "Recommendations (CSV)",
        "Recommendations (PARQUET)",
        "Comparison report (HTML, opens offline)",
    ]


def test_one_group_segment_is_a_sentence_and_no_raw_none(runs, home, monkeypatch):
    """Issue 16: data without cold users drew a one-group 'cold and warm' chart; a metric a
    run does not measure read a raw 'None' in the leaderboard."""
    from dashboard import cache

    real = cache.segments

    def warm_only(*args):
        table = real(*args)
        return table[~table["segment"].astype(str).str.startswith("cold (")]

    monkeypatch.setattr(cache, "segments", warm_only)
    store = RunStore(home)
    metrics = store.read(runs["pop"])["metrics"]
    metrics["test"].update(rmse=1.1, mae=0.9)  # pop has RMSE, EASE does not
    store.update(runs["pop"], metrics=metrics)
    at = _app().run()
    assert not at.exception
    titles = [_title(f) for f in _figures(at)]
    assert "Cold and warm users" not in titles and "By activity (known interactions)" in titles
    warm = cache.segments(home, (runs["ease"],), "ndcg@10")
    n_warm = int(warm.loc[warm["segment_kind"] == "cold_user", "n_users"].item())
    sentence = f"All {n_warm:,} test users are warm (>5): no cold users (at most 5 known items)"
    assert any(c.value.startswith(md(sentence)) for c in at.caption)
    board = at.dataframe[0].value.set_index("run")
    (more,) = [d.value.set_index("run") for d in at.dataframe if "rmse" in d.value.columns]
    assert more.loc["ease", "rmse"] == "—" and more.loc["pop", "rmse"] == "1.1000"
    assert not board.isna().any(axis=None) and not more.isna().any(axis=None)
    assert any(c.value.endswith("— marks a metric that run does not measure.") for c in at.caption)


def test_cut_off_and_metric_change_the_comparison(runs):
    at = _app().run()
    at.radio(key="compare_k").set_value(5).run()
    assert not at.exception
    board = at.dataframe[0].value
    assert "ndcg@5" in board.columns and "ndcg@10" not in board.columns
    at.selectbox(key="compare_metric").set_value("hit@5").run()
    assert at.success[0].value.startswith("ease is better than pop for Hit rate@5 by ")


def test_fewer_than_two_runs(built, home):
    workspace_runs.copy_into(built[0], home)
    store = RunStore(home)
    store.delete(built[1]["pop"])
    at = _app().run()
    assert not at.exception
    assert at.info[0].value.startswith(
        "Comparing needs at least two finished runs on 'sample'; there is 1."
    )
    assert len(at.dataframe) == 0


def test_runs_on_different_splits_are_not_comparable(runs, home):
    store = RunStore(home)
    other = new_run(store, "sample", "pop", split_method="random")
    train_run(store, other)
    at = _app().run()
    # by default only runs on the newest run's split are picked: here just one
    assert at.multiselect(key="compare_runs").value == [other]
    assert at.info[0].value == "Pick at least two runs to compare."
    at.multiselect(key="compare_runs").set_value([runs["ease"], other]).run()
    assert not at.exception
    (warning,) = [w.value for w in at.warning]
    assert warning.startswith("These runs cannot be compared: Runs ")
    assert md("differ in split ('loo' vs 'random')") in warning
    assert len(at.dataframe) == 0


def test_without_dataset_says_to_add_one(home):
    at = _app(dataset=None).run()
    assert not at.exception
    assert at.info[0].value.startswith("No dataset yet — add one on the Data page")


def test_calibration_section_matches_core_and_ease_beats_pop(runs, home):
    """Issue 14 item 4: per-model KL of the top-K category mix to the held-out and history
    mixes, the numbers core computes from the stored lists; EASE is far better calibrated."""
    at = _app().run()
    assert not at.exception and not at.error
    assert "Do the lists match the users' interests?" in [s.value for s in at.subheader]
    (table,) = [d.value for d in at.dataframe if "kl_held_out" in d.value.columns]
    assert table["run"].tolist() == ["ease", "pop"]  # the page's order: best NDCG@10 first
    ds = Dataset.load(home, "sample")
    profiles = I.interest_profiles(ds, split(ds, "loo", 42), recent=10)
    lists = {m: pd.read_parquet(home / "runs" / r / "recs.parquet") for m, r in runs.items()}
    core = I.calibration_table(profiles, lists, 10).set_index("run_id").loc[["ease", "pop"]]
    for column in ("kl_held_out", "kl_history", "closer_recent", "closer_long_term"):
        assert table[column].tolist() == pytest.approx(core[column].tolist())
    assert table["n_users"].tolist() == [250, 250]
    (shown,) = [d for d in at.dataframe if "kl_held_out" in d.value.columns]
    users = json.loads(shown.proto.columns)["n_users"]  # issue 16: "3,000", not "3000"
    assert (users["label"], users["type_config"]["format"]) == ("Users", "localized")
    ease, pop = table.set_index("run").loc["ease"], table.set_index("run").loc["pop"]
    assert pop["kl_held_out"] - ease["kl_held_out"] > 1.0
    assert pop["kl_history"] - ease["kl_history"] > 1.0
    figs = {_title(f): f for f in _figures(at)}
    bars = figs["Calibration of the top-10 category mix (KL, lower is better)"]["data"]
    assert [b["name"] for b in bars] == ["KL to held-out shares", "KL to history shares (Steck)"]
    assert _values(bars[0]["y"]) == pytest.approx(core["kl_held_out"].tolist())
    captions = [c.value for c in at.caption]
    (formula,) = [c for c in captions if c.startswith("How well each model's top-10")]
    assert "q̃ = (1 − α)·q + α·p and α = 0.01 (Steck, RecSys 2018)" in formula
    assert "lower is better" in formula
    ref = I.reference_kl(profiles)
    assert (
        f"a list with exactly each user's long-term mix would score {ref['long_term']:.3f}"
        in " ".join(captions)
    )
    # a longer recent window moves the recent-vs-long-term columns, not the KLs
    at.number_input(key="compare_recent").set_value(30).run()
    (wider,) = [d.value for d in at.dataframe if "kl_held_out" in d.value.columns]
    assert wider["kl_held_out"].tolist() == pytest.approx(table["kl_held_out"].tolist())
    assert wider["closer_recent"].tolist() != pytest.approx(table["closer_recent"].tolist())


def test_calibration_without_item_categories_is_one_sentence(home):
    rows = [(f"u{u}", f"i{(u + j) % 12}", j) for u in range(30) for j in range(6)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    Dataset.from_frames("plain", inter).save(home)
    store = RunStore(home)
    for model in ("pop", "ease"):
        assert train_run(store, new_run(store, "plain", model))["status"] == "finished"
    at = _app("plain").run()
    assert not at.exception and not at.error
    assert [i.value for i in at.info] == [
        "The items of this dataset have no category, so there are no interest profiles; "
        "ingest an item table with a category or genre column to see them."
    ]
    assert not [d for d in at.dataframe if "kl_held_out" in d.value.columns]
    # the rest of the page is still there
    assert "Overlap of the top-10 lists (mean Jaccard@10)" in [_title(f) for f in _figures(at)]
