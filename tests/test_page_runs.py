"""Runs page through Streamlit's AppTest: the empty state and a run written via RunStore."""

from __future__ import annotations

import json
import subprocess

import pytest
from streamlit.testing.v1 import AppTest

from core.runs import liveness
from core.runs.store import RunStore
from dashboard.text import md


def _runs_page(dataset: str | None = None) -> None:
    import streamlit as st

    from dashboard import shell
    from pages import runs

    if dataset:
        st.session_state[shell.DATASET_KEY] = dataset
    runs.render()


def _app(dataset: str | None = None) -> AppTest:
    return AppTest.from_function(_runs_page, kwargs={"dataset": dataset}, default_timeout=30)


def _fake_run(store: RunStore, dataset: str, model: str, ndcg: float, status="finished") -> str:
    run_id = store.new_run({"dataset": dataset, "model": model, "split": "loo", "seed": 1})
    metrics = {"test": {"ndcg@10": ndcg, "recall@10": 0.5, "hit@10": 0.625}} if ndcg else {}
    store.update(
        run_id,
        status=status,
        metrics=metrics,
        timings={"fit_s": 2.5},
        params={"reg": 100.0},
    )
    return run_id


def test_empty_state_says_how_to_get_runs(home):
    at = _app().run()
    assert not at.exception
    assert at.title[0].value == "Runs"
    assert len(at.info) == 1
    assert at.info[0].value.startswith("No runs yet — train one from the Train page")
    assert "recscope train" in at.info[0].value
    assert len(at.dataframe) == 0


def test_lists_a_run_with_its_headline_metrics(home):
    store = RunStore(home)
    run_id = _fake_run(store, "sample", "ease", 0.3125)
    at = _app().run()
    assert not at.exception
    table = at.dataframe[0].value
    assert table["run"].tolist() == [run_id]
    row = table.iloc[0]
    assert (row["model"], row["dataset"], row["split"], row["status"]) == (
        "ease",
        "sample",
        "loo",
        "finished",
    )
    assert row["ndcg@10"] == pytest.approx(0.3125)
    assert row["recall@10"] == pytest.approx(0.5)
    assert row["hit@10"] == pytest.approx(0.625)
    assert row["fit_s"] == pytest.approx(2.5)
    assert "1 finished" in [c.value for c in at.caption]
    # the details expander shows the record of the selected run
    assert at.selectbox(key="runs_detail").value == run_id
    assert at.json[0].value == '{"reg": 100.0}'


def test_filter_by_dataset(home):
    store = RunStore(home)
    _fake_run(store, "sample", "ease", 0.3)
    other = _fake_run(store, "movies", "pop", 0.1)
    _fake_run(store, "movies", "bpr", None, status="running")
    at = _app(dataset="movies").run()  # the active dataset is the default filter
    assert not at.exception
    assert at.selectbox(key="runs_dataset_filter").value == "movies"
    table = at.dataframe[0].value
    assert sorted(table["model"]) == ["bpr", "pop"]
    assert table.loc[table["run"] == other, "ndcg@10"].item() == "0.1000"  # text: bpr has "—"
    at.selectbox(key="runs_dataset_filter").set_value("All datasets").run()
    assert sorted(at.dataframe[0].value["dataset"]) == ["movies", "movies", "sample"]


def test_missing_values_read_a_dash_and_all_metrics_have_whole_names(home):
    """Issue 16: no raw "None" (a running run has no metrics yet), the bar chart puts the best
    run first, and 'All metrics' names each metric whole ("Precision@10", not "precisio")."""
    store = RunStore(home)
    low = _fake_run(store, "sample", "pop", 0.1)
    high = _fake_run(store, "sample", "ease", 0.4)
    store.update(
        high,
        metrics={
            "test": {"ndcg@10": 0.4, "recall@10": 0.5, "hit@10": 0.625, "precision@10": 0.05,
                     "coverage@10": 0.3, "n_users": 8},
            "valid": {"ndcg@10": 0.35, "precision@10": 0.04},
        },
    )  # fmt: skip
    running = store.new_run({"dataset": "sample", "model": "bpr", "split": "loo", "seed": 1})
    store.update(running, status="running")  # no metrics nor timings yet
    at = _app().run()
    assert not at.exception
    table = at.dataframe[0].value.set_index("run")
    assert table.loc[running, ["ndcg@10", "recall@10", "hit@10", "fit_s"]].tolist() == ["—"] * 4
    assert table.loc[high, "ndcg@10"] == "0.4000" and table.loc[low, "fit_s"] == "2.5"
    assert not table.isna().any(axis=None)
    bars = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    assert list(bars["y"]) == [high, low]  # best first, the running run has no bar
    at.selectbox(key="runs_detail").set_value(high).run()
    metrics = at.dataframe[1].value  # test has every value: still numbers
    assert metrics.to_dict("records") == [
        {"metric": "NDCG@10", "test": 0.4, "valid": "0.3500"},
        {"metric": "Recall@10", "test": 0.5, "valid": "—"},
        {"metric": "Precision@10", "test": 0.05, "valid": "0.0400"},
        {"metric": "Hit rate@10", "test": 0.625, "valid": "—"},
        {"metric": "Coverage@10", "test": 0.3, "valid": "—"},
    ]
    assert any(c.value.startswith("Measured over 8 test users.") for c in at.caption)


def _failing_page(kind: str) -> None:
    import streamlit as st

    from core.errors import RecScopeError
    from dashboard import shell

    def render() -> None:
        st.write("before")
        if kind == "ours":
            raise RecScopeError("Run 'x' is queued, not finished; wait for it to finish.")
        raise KeyError("metrics")

    shell.guarded(render, "showing the runs")()
    st.write("after")  # the app around a failing page keeps running


@pytest.mark.parametrize(
    "kind, shown",
    [
        ("ours", md("Run 'x' is queued, not finished; wait for it to finish.")),
        (
            "bug",
            "Something went wrong while showing the runs; the details are in the server log "
            "(the terminal running Streamlit).",
        ),
    ],
)
def test_guard_shows_one_sentence_never_a_traceback(kind, shown, caplog):
    at = AppTest.from_function(_failing_page, kwargs={"kind": kind}).run()
    assert not at.exception
    assert [e.value for e in at.error] == [shown]  # ours: escaped, shown as written
    assert [m.value for m in at.markdown] == ["before", "after"]
    if kind == "bug":  # the traceback goes to the log, with what was being done
        assert "Unexpected error while showing the runs" in caplog.text
        assert "KeyError" in caplog.text


def _status(at: AppTest, run_id: str) -> str:
    table = at.dataframe[0].value
    return table.loc[table["run"] == run_id, "status"].item()


def test_a_killed_run_reads_failed_after_one_refresh(home):
    """Issue 11: kill -9 of a CLI run shows "failed" on the Runs page within one refresh."""
    store = RunStore(home)
    run_id = _fake_run(store, "sample", "bpr", None, status="running")
    proc = subprocess.Popen(["sleep", "60"])
    try:
        pid = proc.pid
        store.update(
            run_id, pid=pid, pid_start=liveness.process_start(pid), host=liveness.host_name()
        )
        at = _app().run()
        assert not at.exception
        assert _status(at, run_id) == "running"
    finally:
        proc.kill()  # SIGKILL: the run cannot record anything
        proc.wait()
    at = at.button(key="runs_refresh").click().run()
    assert not at.exception
    assert _status(at, run_id) == "failed"
    assert "1 failed" in [c.value for c in at.caption]
    assert store.read(run_id)["status"] == "failed"  # written back, so the CLI agrees
    assert [e.value for e in at.error] == [md(store.read(run_id)["error"])]
    assert "stopped unexpectedly" in at.error[0].value


def test_unreadable_run_records_are_listed_as_failed(home):
    """Issue 11: run.json holding valid JSON that is not an object, or a truncated one."""
    store = RunStore(home)
    good = _fake_run(store, "sample", "ease", 0.25)
    for run_id, text in (("train-list", "[1, 2]"), ("train-cut", '{"run_id": ')):
        (store.root / run_id).mkdir()
        (store.root / run_id / "run.json").write_text(text)
    at = _app(dataset="sample").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert sorted(table["run"]) == sorted([good, "train-list", "train-cut"])
    assert table.set_index("run")["status"].to_dict() == {
        good: "finished",
        "train-list": "failed",
        "train-cut": "failed",
    }
    assert "2 failed · 1 finished" in [c.value for c in at.caption]
    at.selectbox(key="runs_detail").set_value(good).run()
    assert not at.error and at.json[0].value == '{"reg": 100.0}'
    at.selectbox(key="runs_detail").set_value("train-cut").run()
    assert not at.exception
    assert len(at.json) == 0  # no parameters to show
    errors = {r["run_id"]: r.get("error") for r in store.list()}
    assert [e.value for e in at.error] == [md(errors["train-cut"])]
    assert errors["train-cut"].startswith("The record of run 'train-cut' (")
    at.selectbox(key="runs_detail").set_value("train-list").run()
    assert [e.value for e in at.error] == [md(errors["train-list"])]


def test_unreadable_record_does_not_break_the_model_pages(home, planted_dataset):
    """The User, Items and Compare pages skip placeholder records (they are not finished)."""
    planted_dataset.save(home)
    store = RunStore(home)
    (store.root / "train-list").mkdir()
    (store.root / "train-list" / "run.json").write_text(json.dumps([1, 2]))
    for page in ("user", "items", "compare"):
        at = _page_app(page).run()
        assert not at.exception, page
        assert not at.error, (page, [e.value for e in at.error])


def _render_page(page: str) -> None:
    import importlib

    import streamlit as st

    from dashboard import shell

    st.session_state[shell.DATASET_KEY] = "planted"
    importlib.import_module(f"pages.{page}").render()


def _page_app(page: str) -> AppTest:
    return AppTest.from_function(_render_page, kwargs={"page": page}, default_timeout=60)


def _train_page() -> None:
    import streamlit as st

    from dashboard import shell
    from pages import train

    st.session_state[shell.DATASET_KEY] = "planted"
    train.render()


def test_train_page_links_to_the_runs_page_in_the_same_tab(home, planted_dataset):
    """Issue 16: a Markdown link opened the Runs page in a new tab, a new session; a page link
    switches page in this one. The Split box's options are short enough to read whole."""
    from dashboard import views_train as VT

    planted_dataset.save(home)
    run_id = _fake_run(RunStore(home), "planted", "ease", 0.3)
    at = AppTest.from_function(_train_page, default_timeout=60)
    at.session_state["train_started"] = [run_id]  # this session started it
    at.run()
    assert not at.exception
    (link,) = at.get("page_link")
    assert link.proto.page == "runs" and not link.proto.external
    assert link.proto.label == "All runs, with every metric: open the Runs page"
    assert not [m for m in at.markdown if "](./runs)" in m.value]
    split = at.selectbox(key="train_split")
    assert split.options == ["Leave last out", "Temporal (last 10%)", "Random 80/10/10"]
    assert split.help == VT.SPLIT_HELP and "last item is the test" in split.help
