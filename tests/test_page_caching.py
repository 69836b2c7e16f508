"""Issue 15 point 7: pages compute what scans the interactions once per dataset version.

A rerun (or a second browser session) of the Data, Items and Scenarios pages reads the cache
instead of profiling again; the cache key is the dataset's content fingerprint, so replacing
the data recomputes; the Data page's profile reports its progress step by step.
"""

from __future__ import annotations

import pandas as pd
from streamlit.testing.v1 import AppTest

import core.scenarios.strategies as strategies
from core.data import profile
from core.data.dataset import Dataset
from dashboard import cache, charts
from dashboard import views_items as VI

APP = "../dashboard/app.py"


def _counting(monkeypatch, module, name: str) -> list:
    """Replace `module.name` by a wrapper that records each call; returns the record."""
    calls, real = [], getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def _page(page: str, dataset: str) -> None:
    import importlib

    import streamlit as st

    from dashboard import shell

    st.session_state[shell.DATASET_KEY] = dataset
    importlib.import_module(f"pages.{page}").render()


def _small(name: str, n_users: int) -> Dataset:
    rows = [(f"u{u}", f"i{(u + j) % 7}", j) for u in range(n_users) for j in range(3)]
    return Dataset.from_frames(
        name, pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    )


def test_data_profile_is_computed_once_across_reruns_and_sessions(
    home, planted_dataset, monkeypatch
):
    planted_dataset.save(home)
    counts = _counting(monkeypatch, profile, "counts")
    over_time = _counting(monkeypatch, profile, "activity_over_time")
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception and not at.error
    assert at.header[0].value == "Profile of 'planted'"
    at.run()  # a rerun of the same session
    second = AppTest.from_file(APP, default_timeout=120).run()  # another browser session
    assert {m.label: m.value for m in second.metric}["Users"] == "120"
    assert len(counts) == 1 and len(over_time) == 1


def test_profile_reports_each_step_before_computing_it(home, planted_dataset):
    planted_dataset.save(home)
    steps = []
    tables = cache.profile_tables(home, "planted", lambda done, what: steps.append((done, what)))
    assert tables["counts"].users == 120
    assert steps[0] == (0.0, "Loading the dataset…")
    assert [w for _, w in steps[1:]] == list(cache.PROFILE_PARTS.values())
    shares = [d for d, _ in steps]
    assert shares == sorted(shares) and shares[-1] < 1.0


def test_cache_key_is_the_fingerprint_and_follows_a_replaced_dataset(home):
    first = _small("shop", 10)
    first.save(home)
    key = cache.dataset_key(home, "shop")
    assert key == first.fingerprint
    assert cache.profile_tables(home, "shop")["counts"].users == 10
    _small("shop", 12).save(home, replace=True)
    assert cache.dataset_key(home, "shop") not in (key, None)
    assert cache.profile_tables(home, "shop")["counts"].users == 12  # not the cached 10


def test_items_card_scans_scenarios_once(home, sample_dataset, monkeypatch):
    sample_dataset.save(home)
    every = VI.scenario_counts(sample_dataset)
    calls = _counting(monkeypatch, VI, "scenario_counts")
    at = AppTest.from_function(_page, kwargs={"page": "items", "dataset": "sample"})
    at.run(timeout=180)
    assert not at.exception
    card = [m.value for m in at.markdown if m.value.startswith("Item id ")]
    code = int(at.selectbox(key="items_item").value)
    assert card[0].endswith(f"scenarios: {VI.item_scenarios(sample_dataset, code, every)}")
    at.run(timeout=180)
    assert len(calls) == 1


def test_scenarios_overview_is_computed_once(home, sample_dataset, monkeypatch):
    sample_dataset.save(home)
    calls = _counting(monkeypatch, strategies, "item_overlap")
    at = AppTest.from_function(_page, kwargs={"page": "scenarios", "dataset": "sample"})
    at.run(timeout=180)
    assert not at.exception
    assert at.subheader[0].value == "Scenarios at a glance"
    at.run(timeout=180)
    assert len(calls) == 1


def test_a_figure_is_built_once_per_distinct_table(planted_dataset):
    users = profile.activity(planted_dataset, "user")
    first = cache.figure(charts.long_tail, users, "users")
    assert cache.figure(charts.long_tail, users.copy(), "users") is first  # equal content
    other = cache.figure(charts.long_tail, users.head(5), "users")
    assert other is not first and len(other.data[0].x) == 5


def test_long_tail_draws_a_thinned_curve_with_both_ends():
    n = 200_000
    table = pd.DataFrame({"rank": range(1, n + 1), "interactions": range(n, 0, -1), "id": "u"})
    fig = charts.long_tail(table, "users")
    x = list(fig.data[0].x)
    assert len(x) <= 1000 and x[0] == 1 and x[-1] == n and x == sorted(x)
    assert x[:10] == list(range(1, 11))  # the head, where the tail bends, is kept whole
