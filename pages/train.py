"""Train page: pick models, start background training jobs, watch them live."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import device as devices
from core.data.split import METHODS
from core.device import describe, pick_device
from core.errors import RecScopeError
from core.models import DESCRIPTIONS, available, model_class
from core.runs import jobs, recent
from core.runs.pipeline import new_run
from core.runs.plan import plan_model
from core.runs.progress import progress_summary
from core.runs.store import RunStore, workspace_home
from dashboard import charts, selection, shell, tables, widgets
from dashboard import views_plan as VP
from dashboard import views_train as VT
from dashboard.text import md

STARTED = "train_started"  # session key: run ids this session started


def render() -> None:
    st.title("Train")
    st.caption(
        "Train one or several models on the active dataset. Training runs in the background: "
        "reloading this page, closing the tab or restarting the app does not stop it."
    )
    name = shell.active_dataset()
    if not name:
        st.info("Add a dataset on the Data page first.")
        return
    store = RunStore(workspace_home())
    _device_banner()
    _form(store, name)
    _live(store, name)


def _device_banner() -> None:
    on_gpu, note = VT.device_note(describe(pick_device()))
    (st.success if on_gpu else st.info)(note)


def _form(store: RunStore, name: str) -> None:
    left, right = st.columns([2, 1])
    with left:
        models = selection.choice(  # kept across pages and in the URL (?models=)
            st.multiselect,
            "Models",
            available(),
            key="train_models",
            param="models",
            default=["pop", "ease"],
            help="Each model becomes one run; compare them afterwards on the Runs page.",
        )
        for model in models:
            st.caption(f"**{model}** — {DESCRIPTIONS.get(model, '')}")
    with right:
        split = st.selectbox(
            "Split", METHODS, format_func=VT.SPLITS.get, key="train_split", help=VT.SPLIT_HELP
        )
        seed = st.number_input("Seed", 0, 2**31 - 1, 42, key="train_seed")
        device = st.selectbox(
            "Device", ["auto", "cpu", "cuda"], key="train_device", help="auto: the GPU if any."
        )
        gpus = devices.gpu_count()
        label = VT.all_gpus_label(gpus) if device != "cpu" else None
        all_gpus = label is not None and st.checkbox(
            label,
            key="train_all_gpus",
            help="Closed-form models (pop, itemknn, ease) are fitted once either way.",
        )
    params = {model: widgets.param_inputs(model) for model in models}
    blocked = _plans(name, models, params, split, device)
    if blocked:
        st.caption(blocked)
    if st.button(
        "Start training",
        type="primary",
        disabled=not models or bool(blocked),
        key="train_start",
        help=blocked,
    ):
        started = st.session_state.setdefault(STARTED, [])
        for model in models:
            try:
                run_id = new_run(
                    store,
                    name,
                    model,
                    split_method=split,
                    seed=int(seed),
                    device=device,
                    params=params[model],
                    nproc=gpus if all_gpus and model_class(model).trains_with_loop else 1,
                )
            except RecScopeError as err:
                st.error(f"{model}: {md(err)}")
                continue
            jobs.start_job(store, run_id)
            started.append(run_id)
        st.toast(f"Started {len(models)} run(s).")


def _plans(name: str, models: list, params: dict, split: str, device: str) -> str | None:
    """Show each chosen model's plan (core.runs.plan) and return why Start is off, if it is."""
    plans, errors = [], {}
    for model in models:
        try:
            plans.append(
                plan_model(
                    workspace_home(), name, model, params[model], device=device, split_method=split
                )
            )
        except RecScopeError as err:
            errors[model] = str(err)
    if plans:
        st.dataframe(
            VP.plan_table(plans), hide_index=True, width="stretch", column_config=_plan_columns()
        )
        st.caption(VP.memory_note(plans))
    for plan in plans:
        show = {"refused": st.error, "tight": st.warning}.get(plan.verdict, st.caption)
        show(plan.sentence)
    for model, sentence in errors.items():
        st.error(f"{model}: {md(sentence)}")
    return VP.start_block(plans, errors)


def _plan_columns() -> dict:
    return {
        "model": st.column_config.TextColumn("Model"),
        "memory": st.column_config.TextColumn("Peak memory", help="Estimated before training"),
        "time": st.column_config.TextColumn("Time", help="Training (at most) + evaluation"),
        "verdict": st.column_config.TextColumn("Plan"),
    }


@st.fragment(run_every=2.0)
def _live(store: RunStore, name: str) -> None:
    """The dataset's queued and running jobs and its recent runs with how they ended (kept
    until dismissed: core.runs.recent says why), refreshed every 2 s."""
    records = recent.shown_runs(store, name, started=st.session_state.get(STARTED, []))
    if not records:
        st.caption("No training in progress for this dataset.")
        return
    st.subheader("Progress")
    st.caption(VT.QUEUE_NOTE.format(hours=recent.RECENT_HOURS))
    ended = [r["run_id"] for r in records if r.get("status") not in jobs.ACTIVE]
    if ended:
        st.button(
            "Dismiss all finished",
            key="train_dismiss_all",
            on_click=recent.dismiss,
            args=(store, ended),
            help="Takes the finished, failed and cancelled runs off this page (the Runs page "
            "keeps them).",
        )
    for record in records:
        _run_panel(store, record)
    finished = [r for r in records if r.get("status") == "finished"]
    if finished:
        st.subheader("Results on the test split")
        st.caption(finished[0].get("excluded", ""))
        table, config = tables.readable(VT.results_table(finished), _results_columns())
        st.dataframe(table, hide_index=True, width="stretch", column_config=config)
        shell.page_link(
            "runs", "All runs, with every metric: open the Runs page", ":material/history:"
        )


def _run_panel(store: RunStore, record: dict) -> None:
    run_id, status = record["run_id"], record.get("status")
    events = store.progress(run_id)
    summary = progress_summary(record, events)
    with st.container(border=True):
        head, button = st.columns([5, 1])
        head.markdown(f"**{record['model']}** · `{run_id}` · {status}")
        if status in jobs.ACTIVE:
            again = bool(record.get("cancel_requested"))
            button.button(
                "Cancel again" if again else "Cancel",
                key=f"cancel_{run_id}",
                on_click=jobs.cancel_job,
                args=(store, run_id),
                help=VT.CANCEL_AGAIN if again else None,
            )
        else:
            button.button(
                "Dismiss", key=f"dismiss_{run_id}", on_click=recent.dismiss, args=(store, [run_id])
            )
        st.progress(summary["fraction"], text=VT.progress_text(record, summary))
        if status == "failed":
            st.error(md(VT.ended_note(record, summary)))
        elif status == "cancelled":
            st.warning(VT.ended_note(record, summary))
        if len(events) > 1:
            st.plotly_chart(
                charts.training_curves(pd.DataFrame(events), title=f"{record['model']} curves"),
                width="stretch",
                key=f"curve_{run_id}_{len(events)}",
            )


def _results_columns() -> dict:
    """The results table's columns: metric names as on the Runs page, fit time to 0.1 s; the
    model column is hidden (the run id starts with it), so the table fits the page."""
    return {
        "model": None,
        "run": st.column_config.TextColumn("Run"),
        **widgets.metric_columns(VT.HEADLINE),
        "fit (s)": st.column_config.NumberColumn(
            "Fit (s)", format="%.1f", help="Seconds of training"
        ),
    }
