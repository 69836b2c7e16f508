"""Scenarios page through AppTest: nothing-to-compare messages, tiny-scenario note, the
leaderboard and transfer results of finished jobs in the run store, a running job's stage,
and the buttons launch jobs through the one job launcher."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.data import schema as S
from core.data.dataset import Dataset
from core.errors import RecScopeError
from core.runs import jobs
from core.runs import scenario_runs as sr
from core.runs.store import RunStore
from pages import scenarios


def _page(dataset: str | None = None) -> None:
    import streamlit as st

    from dashboard import shell
    from pages import scenarios

    if dataset:
        st.session_state[shell.DATASET_KEY] = dataset
    scenarios.render()


def _app(dataset: str | None) -> AppTest:
    return AppTest.from_function(_page, kwargs={"dataset": dataset}, default_timeout=60)


def _scenario_data(name: str = "multi", tiny: int = 4) -> Dataset:
    """Two real scenarios (app, web) with two tastes, plus a tiny 'kiosk' scenario."""
    rng = np.random.default_rng(11)
    rows = []
    for u in range(60):
        half = 0 if u < 30 else 10
        for t, scen in enumerate(["app", "web"] * 5):
            rows.append((f"u{u}", f"{scen[0]}{half + rng.integers(0, 10)}", u * 100 + t, scen))
    rows += [(f"u{j}", f"k{j}", 10_000 + j, "kiosk") for j in range(tiny)]
    frame = pd.DataFrame(rows, columns=[S.USER_ID, S.ITEM_ID, S.TIMESTAMP, S.SCENARIO])
    return Dataset.from_frames(name, frame.drop_duplicates([S.USER_ID, S.ITEM_ID]))


def _texts(at: AppTest) -> str:
    parts = [
        e.value
        for kind in ("info", "warning", "error", "caption", "markdown")
        for e in getattr(at, kind)
    ]
    return "\n".join(str(p) for p in parts)


def test_no_scenario_column_says_nothing_to_compare(home, planted_dataset):
    planted_dataset.save(home)
    at = _app("planted").run()
    assert not at.exception
    assert "no scenario column" in at.info[0].value
    assert "nothing to compare" in at.info[0].value
    assert len(at.dataframe) == 0


def test_one_scenario_says_nothing_to_compare(home):
    frame = pd.DataFrame(
        {S.USER_ID: ["a", "b", "c"], S.ITEM_ID: ["x", "y", "x"], S.SCENARIO: ["web"] * 3}
    )
    Dataset.from_frames("single", frame).save(home)
    at = _app("single").run()
    assert not at.exception
    assert "one scenario" in at.info[0].value


def test_without_dataset_asks_for_one(home):
    at = _app(None).run()
    assert not at.exception and "Data page" in at.info[0].value


def _paired_table(at: AppTest) -> pd.DataFrame:
    """The paired-differences table: strategy and one text column per scenario."""
    return next(
        df.value
        for df in at.dataframe
        if list(df.value.columns) == ["strategy", "app", "kiosk", "web"]
    )


def _run_here(store: RunStore, run_id: str, body) -> None:
    """Run a job body in this process (what `recscope … --run-id` does in the child)."""
    kind = store.read(run_id)["kind"]
    jobs.run_job(store, run_id, kind, lambda stage: body(store, run_id, stage))


def test_leaderboard_transfer_and_user_view_from_finished_jobs(home):
    torch.set_num_threads(1)
    _scenario_data().save(home)
    store = RunStore(home)
    fast = {"epochs": 1, "batch_size": 256}
    board_id = sr.new_leaderboard(store, "multi", multiscenario_params=fast)
    _run_here(store, board_id, sr.run_leaderboard)
    failing = sr.new_transfer(store, "multi", "app", "kiosk", ms=(0,))
    with pytest.raises(RecScopeError, match="Only"):  # too few kiosk users: the job fails
        _run_here(store, failing, sr.run_transfer)
    at = _app("multi").run()
    assert not at.exception
    text = _texts(at)
    assert "kiosk has fewer than" in text  # the tiny-scenario note
    # issue 16: how long it takes is the last run's measured time and its longest stages
    assert re.search(r"The last leaderboard on this dataset took \d+ s \(measured — most", text)
    assert "No transfer measurement has run on this dataset yet" in text
    board = next(
        df.value
        for df in at.dataframe
        if "Mean over scenarios" in str(df.value.columns) or "mean" in df.value.columns
    )
    mmoe = "One model that knows the scenario (multiscenario, MMoE)"
    ple = "One model that knows the scenario (multiscenario, PLE)"
    assert set(board["strategy"]) == {
        mmoe,
        ple,
        "One model for everything (pooled)",
        "One model per scenario",
    }
    assert {"app", "kiosk", "web", "mean"} <= set(board.columns)
    assert at.button(key="sc_train").label == "Retrain"
    # issue 14: both architectures against the pooled model, paired CIs per scenario
    stored = pd.DataFrame(sr.result(store, board_id)["paired"])
    paired = _paired_table(at).set_index("strategy")
    assert at.selectbox(key="sc_baseline").value == "pooled"
    assert set(paired.index) == {mmoe, ple, "One model per scenario"}
    assert list(paired.columns) == ["app", "kiosk", "web"]
    cell = re.compile(r"^[+-]\d\.\d{4} \([+-]\d\.\d{4} to [+-]\d\.\d{4}\)( \*)?$")
    assert all(cell.match(v) for v in paired.to_numpy().ravel()), paired
    row = stored.query("baseline == 'pooled' and strategy == 'multiscenario_ple'")
    app = row.set_index("scenario").loc["app"]
    assert paired.loc[ple, "app"].startswith(
        f"{app['mean_diff']:+.4f} ({app['ci_low']:+.4f} to {app['ci_high']:+.4f})"
    )
    assert app["ci_low"] <= app["mean_diff"] <= app["ci_high"] and app["n_users"] > 0
    assert "significant after Holm" in _texts(at)
    at.selectbox(key="sc_baseline").set_value("multiscenario").run()  # PLE against MMoE
    paired = _paired_table(at)
    assert (
        not at.exception and mmoe not in set(paired["strategy"]) and ple in set(paired["strategy"])
    )
    # user view: history and recommendations per scenario side by side
    # issue 16: one full-width table per scenario (narrow side-by-side tables cut the
    # category column off): history beside what comes next, each with its category
    assert at.radio(key="sc_user_strategy").label == "Recommendations from"
    assert scenarios.NO_RECS not in _texts(at)
    side = [df.value for df in at.dataframe if "Recommended next" in df.value.columns]
    assert len(side) == 3 and list(side[0].columns) == ["Recent history", "Recommended next"]
    at.selectbox(key="sc_user").set_value("u10").run()  # u10 never used the kiosk
    assert not at.exception and "Never active here." in _texts(at)
    at.selectbox(key="sc_target").set_value("kiosk").run()
    assert not at.exception
    assert any("Only" in e.value and "kiosk" in e.value for e in at.error)


def test_buttons_launch_jobs_in_the_run_store(home, monkeypatch):
    _scenario_data().save(home)
    started = []
    monkeypatch.setattr(jobs, "start_job", lambda store, run_id: started.append(run_id) or 0)
    at = _app("multi").run()
    assert "Press the button" in _texts(at)
    # issue 16 point 9: no strategy picker before any strategy is trained, a sentence instead
    assert [r.label for r in at.radio] == [] and scenarios.NO_RECS in _texts(at)
    at.button(key="sc_train").click().run()
    at.button(key="sc_transfer").click().run()
    assert not at.exception
    records = [RunStore(home).read(r) for r in started]
    assert [(r["kind"], r["dataset"], r["status"]) for r in records] == [
        ("leaderboard", "multi", "queued"),
        ("transfer", "multi", "queued"),
    ]
    assert records[1]["params"]["source"] == "app" and records[1]["params"]["target"] == "kiosk"
    # issue 16: the slowest model of a transfer is left out unless asked for
    assert records[1]["params"]["include_hybrid"] is False


def _fake_stages(store: RunStore, run_id: str, lines: list[tuple[float, dict]]) -> None:
    """Progress lines at given times, as a job's stages and epochs would write them."""
    path = store.folder(run_id) / "progress.jsonl"
    text = "".join(json.dumps({"time": t, **event}) + "\n" for t, event in lines)
    path.write_text(text, encoding="utf-8")


def test_a_running_job_shows_its_stage_and_disables_its_button(home):
    """Issue 16: the live line names the stage, its epoch and a measured estimate, and the
    job's last log lines are shown (progress records faked: nothing trains)."""
    _scenario_data().save(home)
    store = RunStore(home)
    now = time.time()
    # a finished leaderboard before it: 10 s for each of its 9 stages
    before = sr.new_leaderboard(store, "multi")
    old = [(now - 1000 + 10 * s, {"stage": f"Stage {s}", "step": s, "steps": 9}) for s in range(9)]
    _fake_stages(store, before, old)
    end = datetime.fromtimestamp(now - 1000 + 90, timezone.utc).isoformat()
    store.update(before, status="finished", finished_at=end)
    row = {"strategy": "pooled", "app": 0.2, "kiosk": None, "web": 0.3, "mean": 0.25, "fit_s": 1}
    store.write_result(before, {"leaderboard": [row], "tables": {}, "paired": [], "notes": []})
    run_id = sr.new_leaderboard(store, "multi")
    # this one ran its first 3 stages twice as slowly (20 s each) and is 5 s into stage 4
    mine = [(now - 65 + 20 * s, {"stage": f"Stage {s}", "step": s, "steps": 9}) for s in range(3)]
    mine.append((now - 5, {"stage": "Training pooled (2 of 3)", "step": 3, "steps": 9}))
    mine.append((now - 1, {"epoch": 3, "epochs": 20, "eta_s": 34.0, "loss": 1.5}))
    _fake_stages(store, run_id, mine)
    (store.folder(run_id) / "job.log").write_text("INFO x: stage 4 of 9\nINFO x: epoch 3\n")
    # a live process in its own session, naming the run as a job's command line does,
    # stands in for the job's process
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "--run-id", run_id],
        start_new_session=True,
    )
    try:
        store.update(run_id, status="running", pid=proc.pid)
        at = _app("multi").run()
        assert not at.exception
        assert at.button(key="sc_train").disabled
        progress = [e for e in at.get("progress")]
        text = progress[0].proto.text.replace("\\", "")
        assert text == "Stage 4 of 9: Training pooled (2 of 3) — epoch 3 of at most 20"
        assert progress[0].proto.value == 35  # 3 stages and 3/20 of the fourth, of 9
        # 33 s left in this stage (the loop's 34 s, 1 s ago), then 5 stages that took 10 s
        # each before, at this run's measured half speed: 33 + 5 x 20 = 133 s
        estimate = next(c.value for c in at.caption if "left" in c.value).replace("\\", "")
        found = re.search(
            r"About (\d) min (\d+) s left — an estimate from the stage times", estimate
        )
        assert found, estimate
        # (the page renders some seconds after the records were written: the stage's share
        # shrinks as time passes, never below the 100 s of the stages after it)
        assert 100 <= 60 * int(found[1]) + int(found[2]) <= 133
        assert "INFO x: epoch 3" in at.code[0].value
        assert at.button(key=f"cancel_{run_id}").label == "Cancel"
    finally:
        proc.kill()
        proc.wait()
    assert store.read(run_id)["status"] == "failed"  # its process died


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_transfer_chart_has_a_band_and_a_line_per_compared_model():
    from dashboard import charts_scenarios as C

    curves = pd.DataFrame(
        {
            "m": [0, 0, 0, 2, 2, 2],
            "model": ["target_only", "pooled", "multiscenario"] * 2,
            "ndcg@10": [0.3, 0.2, 0.4, 0.3, 0.35, 0.38],
            "lift": [np.nan, -0.1, 0.1, np.nan, 0.05, 0.08],
            "ci_low": [np.nan, -0.12, 0.08, np.nan, 0.03, 0.06],
            "ci_high": [np.nan, -0.08, 0.12, np.nan, 0.07, 0.1],
        }
    )
    fig = C.transfer_curves(curves, "shop")
    lines = [t for t in fig.data if t.showlegend is not False]
    assert [t.name for t in lines] == [C.LABELS["pooled"], C.LABELS["multiscenario"]]
    band = fig.data[2]  # multiscenario band: high values forward, low values back
    assert list(band.y) == [0.12, 0.1, 0.06, 0.08]
    assert list(lines[1].y) == [0.1, 0.08]
    assert "shop" in fig.layout.title.text
