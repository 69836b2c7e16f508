"""Tune page: search a model's hyperparameters under a budget and watch the trials arrive.

A study is a background job of the one job system (`core.runs.tuning`, kind "tune"): the
page starts, cancels and resumes it, and draws the trials and Optuna's figures from the
study database in the workspace, so a reload or a second browser session sees the same
study. When the budget is spent the best parameters are trained as an ordinary run.
"""

from __future__ import annotations

from functools import partial

import streamlit as st

from core.data.split import METHODS
from core.errors import RecScopeError
from core.runs import jobs, tuning, tuning_space
from core.runs.store import RunStore, workspace_home
from dashboard import charts_tune as C
from dashboard import job_panel, shell
from dashboard import views_tune as V
from dashboard.job_panel import POLL_S
from dashboard.text import md
from dashboard.views_train import SPLITS

KIND = "tune"
RESUMABLE = ("finished", "cancelled", "failed")
TABLE_HEIGHT = 320  # px: about eight trials, the rest scroll
FIGURES = "tune_figures"  # session key: (run id and trial states, the figures drawn for them)


def render() -> None:
    st.title("Tune")
    st.caption(
        "Search a model's hyperparameters on the active dataset within a time or trial budget. "
        "Trials are scored on the validation split only; unpromising ones are stopped early. "
        "The first trial uses the defaults, so the best is never worse than them on validation."
    )
    name = shell.active_dataset()
    if not name:
        st.info("Add a dataset on the Data page first.")
        return
    store = RunStore(workspace_home())
    newest = jobs.latest_job(store, name, KIND)
    budget = _form(store, name, newest)
    if newest is None:
        st.info(f"No study on {md(name)} yet: pick a model and a budget, then press Start.")
        return
    _study(store, name, newest, budget)


def _form(store: RunStore, name: str, newest: dict | None) -> dict:
    """The study settings and the Start button; returns the budget (for Resume too)."""
    models = tuning.tunable_models()
    last = (newest or {}).get("params") or {}  # a new session starts from the newest study
    left, mid, right = st.columns(3)
    model = left.selectbox(
        "Model", models, index=_index(models, last.get("model")), key="tune_model"
    )
    space = tuning_space.SPACES.get(model) or {}
    if space:
        searched = "; ".join(f"{name} {param.describe()}" for name, param in space.items())
        left.caption(md(f"Searches {searched}."))
    split = mid.selectbox(
        "Split", METHODS, index=_index(METHODS, last.get("split")), format_func=SPLITS.get,
        key="tune_split",
    )  # fmt: skip
    seed = mid.number_input("Seed", 0, 2**31 - 1, int(last.get("seed", 42)), key="tune_seed")
    minutes = right.number_input(
        "Minutes", 0.0, 24 * 60.0, 10.0, step=1.0, format="%g", key="tune_minutes",
        help="Wall-clock budget; 0 means no time limit (then set a number of trials).",
    )  # fmt: skip
    trials = right.number_input(
        "Trials", 0, 10_000, 0, key="tune_trials",
        help="At most this many trials; 0 means no limit (then set minutes).",
    )  # fmt: skip
    device = left.selectbox(
        "Device", ["auto", "cpu", "cuda"], key="tune_device", help="auto: the GPU if any."
    )
    budget = V.budget_args(minutes, trials)
    start = partial(
        tuning.new_tune, store, name, model, split_method=split, seed=int(seed), device=device,
        **budget,
    )  # fmt: skip
    _start_button(store, newest, start)
    return budget


def _start_button(store: RunStore, newest: dict | None, create) -> None:
    """Start a study (`create()` makes its job record); says how the last job ended."""
    status = (newest or {}).get("status")
    label = "Start tuning" if newest is None else "Start a new study"
    job_panel.launch_button(
        store, label, "tune_start", create, disabled=status in jobs.ACTIVE, primary=True
    )
    if status == "failed":
        st.error(f"The last tuning job failed: {md(newest.get('error') or 'no message')}")
    elif status == "cancelled":
        st.caption("The last tuning job was cancelled; its finished trials are kept.")


def _study(store: RunStore, name: str, record: dict, budget: dict) -> None:
    st.subheader("Study")
    if record.get("status") in jobs.ACTIVE:
        _live(store, record["run_id"])
        return
    st.caption(md(V.study_heading(record)))
    if record.get("status") in RESUMABLE:
        _resume(store, name, record, budget)
    study = (record.get("params") or {}).get("study") or record["run_id"]
    done = jobs.latest_job(store, name, KIND, finished=True, study=study)
    if done is not None:
        if done["run_id"] != record["run_id"]:
            st.caption(f"The result of this study's last finished job, {done['run_id']}:")
        _outcome(store, done)
    _trials(store, record["run_id"])


@st.fragment(run_every=POLL_S)
def _live(store: RunStore, run_id: str) -> None:
    """A running study: its stage, Cancel, the trials and figures, redrawn every few seconds."""
    record = store.read(run_id)
    if record.get("status") not in jobs.ACTIVE:
        st.rerun()  # the whole page redraws with the result
    st.caption(md(V.study_heading(record)))
    summary = jobs.stage_summary(record, store.progress(run_id))
    st.progress(summary["fraction"], text=md(summary["stage"] or "Starting…"))
    if st.button("Cancel", key=f"cancel_{run_id}", help="The running trial ends; none is lost."):
        jobs.cancel_job(store, run_id)
    _trials(store, run_id)


def _resume(store: RunStore, name: str, record: dict, budget: dict) -> None:
    p = record.get("params") or {}
    label = f"Resume this study for {V.budget_phrase(budget['budget_s'], budget['n_trials'])}"
    if not st.button(label, key="tune_resume", help="Continues the same study with new trials."):
        return
    try:
        run_id = tuning.new_tune(
            store, name, p["model"], split_method=p.get("split", "loo"),
            seed=int(p.get("seed", 42)), device=record.get("device_request", "auto"),
            resume=p.get("study") or record["run_id"], **budget,
        )  # fmt: skip
        jobs.start_job(store, run_id)
    except RecScopeError as err:
        st.error(md(err))
    else:
        st.rerun()


def _trials(store: RunStore, run_id: str) -> None:
    """The trials table and the figures, from the study database (works while it runs)."""
    try:
        frame = tuning.trials_frame(store, run_id)
    except RecScopeError as err:
        st.info(md(err))
        return
    note = V.no_result_note(frame)
    if not frame.empty:
        number = st.column_config.NumberColumn
        config = {V.METRIC: number(V.METRIC, format="%.4f"), "seconds": number(format="%.1f")}
        st.markdown(f"**Trials** · {md(V.progress_line({}, frame))}")
        table = V.trials_table(frame)
        height = min(36 * (len(table) + 1) + 2, TABLE_HEIGHT)
        st.dataframe(table, hide_index=True, column_config=config, height=height, key="tune_tab")
    if note:
        st.info(note)
    if frame.empty or V.trial_counts(frame).get("finished", 0) == 0:
        return
    _figures(store, run_id, frame)


def _figures(store: RunStore, run_id: str, frame) -> None:
    figures = _drawn(store, run_id, frame)
    left, right = st.columns(2)
    for column, which in ((left, "history"), (right, "importance")):
        _figure(column, which, figures, len(frame))
    left.caption("Trials stopped early are not drawn here; the per-epoch curves show them.")
    tabs = st.tabs(["Slice", "Parallel coordinates", "Per-epoch curves"])
    for tab, which in zip(tabs, ("slice", "parallel", "curves"), strict=True):
        _figure(tab, which, figures, len(frame))


def _drawn(store: RunStore, run_id: str, frame) -> dict:
    """Every figure of the study, redrawn only when a trial changed state (the live view
    polls every few seconds; fANOVA importances refit a forest each time)."""
    seen = tuple(zip(frame["number"], frame["state"].astype(str), strict=True))
    memo = st.session_state.get(FIGURES)
    if memo is None or memo[0] != (run_id, seen):
        study = tuning.load_study(store, run_id)
        memo = ((run_id, seen), {which: draw(study) for which, draw in C.ALL.items()})
        st.session_state[FIGURES] = memo
    return memo[1]


def _figure(where, which: str, figures: dict, n: int) -> None:
    fig, note = figures[which]
    with where:
        if fig is None:
            st.caption(note)
        else:
            st.plotly_chart(fig, width="stretch", key=f"tune_fig_{which}_{n}")


def _outcome(store: RunStore, record: dict) -> None:
    result = store.result(record["run_id"])
    model = (record.get("params") or {}).get("model") or record.get("model") or ""
    if not result:
        st.info("The study finished but its result is missing; resume it to train the best.")
        return
    st.subheader("Result")
    st.markdown(md(V.best_sentence(result)))
    left, right = st.columns([1, 2])
    with left:
        st.markdown("**Best parameters**")
        params = (result.get("best") or {}).get("params") or {}
        if params:
            st.dataframe(V.params_table(params), hide_index=True, key="tune_best_params")
        else:
            st.caption("The defaults were best.")
    with right:
        run_id = result.get("run_id")
        if run_id:
            st.markdown(f"**Trained with the best parameters** · run `{run_id}`")
            table = V.best_test_table(result.get("metrics") or {})
            config = {c: st.column_config.NumberColumn(format="%.4f") for c in table.columns}
            st.dataframe(table, hide_index=True, column_config=config, key="tune_best_test")
            st.markdown(
                f"It is an ordinary run: compare it with a run of {md(model)} trained with the "
                "defaults on the same split and seed (the Train page makes one)."
            )
            shell.page_link(
                "compare", "Compare it on the Compare page", ":material/compare_arrows:"
            )
            shell.page_link("runs", "Every metric: open the Runs page", ":material/history:")
    st.caption(md(V.budget_sentence(result)))
    if result.get("unexplored"):
        st.caption(md(result["unexplored"]))


def _index(options, value) -> int:
    """Position of `value` among `options` (0 when it is not one of them)."""
    options = list(options)
    return options.index(value) if value in options else 0
