"""Exports: recommendations round-trip through CSV/Parquet (core.runs.export) with formula
cells neutralised; the HTML comparison report (dashboard.report) is whole."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from core.data.dataset import Dataset
from core.errors import ParameterError
from core.runs.export import export_recs, neutralise_formulas, recs_table
from core.runs.store import RunStore
from dashboard.report import html_report
from tests.helpers import fake_run


@pytest.fixture
def toy(home):
    inter = pd.DataFrame(
        {"user_id": ["a", "b", "c"] * 4, "item_id": [f"i{j}" for j in range(12)], "timestamp": 1}
    )
    items = pd.DataFrame(
        {"item_id": [f"i{j}" for j in range(12)], "title": [f"Title, {j}" for j in range(12)]}
    )
    Dataset.from_frames("toy", inter, items).save(home)
    store = RunStore(home)
    pop = fake_run(
        store, "pop", {"ndcg@10": 0.1, "novelty@10": 2.0}, {0: [1, 2, 3], 1: [1, 2, 4], 2: [5]}
    )
    ease = fake_run(
        store, "ease", {"ndcg@10": 0.3, "novelty@10": 4.0}, {0: [3, 4, 5], 1: [1, 2, 4], 2: [6]}
    )
    return store, pop, ease


def test_recommendations_round_trip_through_csv_and_parquet(toy):
    store, pop, _ = toy
    table = recs_table(store, pop)
    assert list(table.columns) == ["user_id", "rank", "item_id", "title", "score"]
    first = table.iloc[0]
    assert (first.user_id, first.item_id, first.title, first["rank"]) == ("a", "i1", "Title, 1", 1)
    back = pd.read_csv(io.BytesIO(export_recs(store, pop, "csv")), dtype={"user_id": str})
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    back = pd.read_parquet(io.BytesIO(export_recs(store, pop, "parquet")))
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    assert len(recs_table(store, pop, k=1)) == 3
    with pytest.raises(ParameterError, match="csv, parquet"):
        export_recs(store, pop, "xlsx")


def test_csv_export_neutralises_formula_cells(home):
    inter = pd.DataFrame({"user_id": ["=cmd", "b"], "item_id": ["i0", "i1"], "timestamp": 1})
    items = pd.DataFrame({"item_id": ["i0", "i1"], "title": ['=HYPERLINK("x")', "-3 days"]})
    Dataset.from_frames("toy", inter, items).save(home)
    store = RunStore(home)
    run = fake_run(store, "pop", {"ndcg@10": 0.1}, {0: [1], 1: [0]})
    back = pd.read_csv(io.BytesIO(export_recs(store, run, "csv")), dtype=str)
    assert back["user_id"].tolist() == ["'=cmd", "b"]
    assert back["title"].tolist() == ["'-3 days", '\'=HYPERLINK("x")']
    raw = pd.read_parquet(io.BytesIO(export_recs(store, run, "parquet")))
    assert raw["user_id"].tolist() == ["=cmd", "b"]  # Parquet keeps values unchanged
    frame = pd.DataFrame({"t": ["+1", "ok", None, "@a"], "score": [-1.0, 2.0, 3.0, 4.0]})
    out = neutralise_formulas(frame)
    assert out["t"].fillna("").tolist() == ["'+1", "ok", "", "'@a"]
    assert out["score"].tolist() == [-1.0, 2.0, 3.0, 4.0]


def test_html_report_is_self_contained_with_runs_tables_and_plots(toy):
    store, pop, ease = toy
    page = html_report(store, [pop, ease], k=10)
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>")
    assert pop in page and ease in page
    assert 'class="plotly-graph-div"' in page
    assert page.count("plotly.js v") >= 1  # the library is inlined, not linked
    assert "<script src=" not in page  # nothing loaded from the network
    for heading in ("Leaderboard", "Paired tests", "Segments", "Overlap"):
        assert f"<h2>{heading}</h2>" in page
    assert f"Baseline: {pop}" in page  # pop is the default baseline
    assert "<th>NDCG@10</th>" in page  # readable metric names, as on the Compare page
    assert "Accuracy on the test split" in page  # drawn by the page's own chart functions
    with pytest.raises(ParameterError, match="not in these runs"):
        html_report(store, [pop, ease], metric="bogus@10")


def test_export_of_a_run_whose_dataset_was_replaced_is_refused(toy, home):
    """Same sizes, other ids: the stored codes would silently name the new data's items."""
    from core.runs.pipeline import DatasetChangedError

    store, pop, _ = toy
    fingerprint = Dataset.load(home, "toy").fingerprint
    store.update(pop, dataset_fingerprint=fingerprint)
    assert recs_table(store, pop)["item_id"].iloc[0] == "i1"
    inter = pd.DataFrame(
        {"user_id": ["a", "b", "c"] * 4, "item_id": [f"j{j}" for j in range(12)], "timestamp": 1}
    )
    Dataset.from_frames("toy", inter).save(home, replace=True)
    with pytest.raises(DatasetChangedError, match="before it was replaced"):
        recs_table(store, pop)
