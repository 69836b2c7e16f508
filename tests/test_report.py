"""The HTML comparison report fits a page (issue 16): two tables, no all-empty columns."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from core.data.dataset import Dataset
from core.runs.store import RunStore
from core.storage import write_parquet
from dashboard.report import html_report
from tests.helpers import fake_run

LISTS = {0: [1, 2, 3], 1: [1, 2, 4], 2: [5]}


@pytest.fixture
def store(home):
    inter = pd.DataFrame(
        {"user_id": ["a", "b", "c"] * 4, "item_id": [f"i{j}" for j in range(12)], "timestamp": 1}
    )
    Dataset.from_frames("toy", inter).save(home)
    return RunStore(home)


def _tables(page: str) -> list[list[str]]:
    """The header cells of each table in the page."""
    return [
        re.findall(r"<th>(.*?)</th>", t, re.S) for t in re.findall(r"<table.*?</table>", page, re.S)
    ]


def _run(store, model: str, ndcg: float, **extra) -> str:
    metrics = {"ndcg@10": ndcg, "recall@10": ndcg * 2, "map@10": ndcg / 2, "auc": 0.8}
    metrics.update({"coverage@10": 0.3, "novelty@10": 3.0, **extra})  # no rmse: not measured
    return fake_run(store, model, metrics, LISTS)


def test_headline_and_beyond_tables_without_columns_no_run_measured(store):
    pop, ease = _run(store, "pop", 0.1), _run(store, "ease", 0.3)
    page = html_report(store, [pop, ease], k=10)
    tables = _tables(page)
    leaderboard, beyond = tables[0], tables[1]
    assert leaderboard == [
        "Run", "NDCG@10", "Recall@10", "MAP@10 (÷min(|T|,k), RecBole)", "AUC", "Fit time (s)",
    ]  # fmt: skip
    assert beyond == ["Run", "Coverage@10", "Novelty@10"]
    cells = "".join(re.findall(r"<table.*?</table>", page, re.S))
    assert "RMSE" not in cells and "nan" not in cells.lower()
    assert max(len(t) for t in tables) <= 11  # no 20-column table 1,862 px wide
    assert "white-space:normal" in page  # long metric names wrap in the header
    # runs are named by their labels in every table; the ids stay in the "Runs:" line
    assert "<td>ease</td>" in page and f"Runs: {pop}, {ease}." in page
    assert ["Run", "pop", "ease"] == tables[-1][:3]  # the overlap table


def test_a_metric_some_runs_lack_reads_a_dash(store):
    pop = _run(store, "pop", 0.1, rmse=1.1, mae=0.9)
    ease = _run(store, "ease", 0.3)
    page = html_report(store, [pop, ease], k=10)
    leaderboard = _tables(page)[0]
    assert leaderboard[-3:] == ["RMSE", "MAE", "Fit time (s)"]
    first = re.search(r"<tbody>(.*?)</tbody>", page, re.S).group(1)
    assert "<td>—</td>" in first and "NaN" not in first


def test_one_group_segments_get_a_sentence_not_a_chart(store):
    runs = []
    for model, score in (("pop", 0.1), ("ease", 0.3)):
        run_id = _run(store, model, score)
        seg = pd.DataFrame(
            {
                "segment_kind": ["all", "cold_user", "activity", "activity"],
                "segment": ["all users", "warm (>5)", "6-10", "11-20"],
                "n_users": [3, 3, 1, 2],
                "ndcg@10": [score, score, score / 2, score],
            }
        )
        write_parquet(store.folder(run_id) / "segments.parquet", seg)
        runs.append(run_id)
    page = html_report(store, runs, k=10)
    assert (
        "<p>All 3 test users are warm (&gt;5): no cold users (at most 5 known items) to "
        "compare with.</p>"
    ) in page
    assert "Cold and warm users" not in page and "By activity (known interactions)" in page
