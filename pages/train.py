"""Train page: pick models, start background training jobs, watch them live."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.data.split import METHODS
from core.device import describe, pick_device
from core.errors import RecScopeError
from core.models import DESCRIPTIONS, available, model_class, param_specs
from core.runs import jobs
from core.runs.pipeline import new_run
from core.runs.store import RunStore, workspace_home
from dashboard import charts, shell

STARTED = "train_started"  # session key: run ids this session started
SPLITS = {
    "loo": "Leave last out — each user's last item is the test, the one before validation",
    "temporal": "Temporal — the last 10% of all interactions by time are the test",
    "random": "Random — 80/10/10 of each user's interactions",
}
HEADLINE = ["ndcg@10", "recall@10", "hit@10", "mrr@10", "coverage@10", "novelty@10"]


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
    info = describe(pick_device())
    if info["type"] == "cuda":
        st.success(f"Neural models train on the GPU: {info['name']} ({info['memory_gb']} GB).")
    else:
        st.info(f"No GPU found: models train on the {info['name']}. Small data trains fine.")


def _form(store: RunStore, name: str) -> None:
    left, right = st.columns([2, 1])
    with left:
        models = st.multiselect(
            "Models",
            available(),
            default=["pop", "ease"],
            key="train_models",
            help="Each model becomes one run; compare them afterwards on the Runs page.",
        )
        for model in models:
            st.caption(f"**{model}** — {DESCRIPTIONS.get(model, '')}")
    with right:
        split = st.selectbox("Split", METHODS, format_func=lambda m: SPLITS[m], key="train_split")
        seed = st.number_input("Seed", 0, 2**31 - 1, 42, key="train_seed")
        device = st.selectbox(
            "Device", ["auto", "cpu", "cuda"], key="train_device", help="auto: the GPU if any."
        )
    params = {model: _param_inputs(model) for model in models}
    if st.button("Start training", type="primary", disabled=not models, key="train_start"):
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
                )
            except RecScopeError as err:
                st.error(f"{model}: {err}")
                continue
            jobs.start_job(store, run_id)
            started.append(run_id)
        st.toast(f"Started {len(models)} run(s).")


def _param_inputs(model: str) -> dict:
    """Widgets for a model's hyperparameters; returns only the values changed from defaults."""
    changed = {}
    specs = param_specs(model)
    if not specs:
        return changed
    with st.expander(f"{model} settings"):
        if model_class(model).trains_with_loop:
            epochs = model_class(model).default_params().get("epochs")
            value = st.number_input(
                "epochs",
                1,
                10_000,
                int(epochs),
                key=f"p_{model}_epochs",
                help="Upper bound; early stopping usually ends training sooner.",
            )
            if value != epochs:
                changed["epochs"] = int(value)
        for spec in specs:
            key = f"p_{model}_{spec.name}"
            if spec.kind is bool:
                value = st.checkbox(spec.name, spec.default, key=key, help=spec.help)
            elif spec.kind is int:
                value = int(st.number_input(spec.name, value=spec.default, key=key, help=spec.help))
            elif spec.kind is float:
                value = st.number_input(
                    spec.name, value=float(spec.default), key=key, help=spec.help, format="%g"
                )
            else:  # e.g. EASE's l2 ("auto" or a number): a typed number is passed as one
                value = _number_or_text(
                    st.text_input(spec.name, spec.default, key=key, help=spec.help)
                )
            if value != spec.default:
                changed[spec.name] = value
    return changed


def _number_or_text(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value.strip()


@st.fragment(run_every=2.0)
def _live(store: RunStore, name: str) -> None:
    """Active runs of this dataset and the ones this session started, refreshed every 2 s."""
    mine = set(st.session_state.get(STARTED, []))
    records = [
        jobs.refresh(store, r)
        for r in store.list(dataset=name)
        if r.get("status") in jobs.ACTIVE or r["run_id"] in mine
    ]
    if not records:
        st.caption("No training in progress for this dataset.")
        return
    st.subheader("Progress")
    for record in records:
        _run_panel(store, record)
    finished = [r for r in records if r.get("status") == "finished"]
    if finished:
        st.subheader("Results on the test split")
        st.caption(finished[0].get("excluded", ""))
        st.dataframe(_results_table(finished), hide_index=True, width="stretch")
        st.markdown("All runs, with every metric: [open the Runs page](./runs)")


def _run_panel(store: RunStore, record: dict) -> None:
    run_id, status = record["run_id"], record.get("status")
    events = store.progress(run_id)
    summary = jobs.progress_summary(record, events)
    with st.container(border=True):
        head, button = st.columns([5, 1])
        head.markdown(f"**{record['model']}** · `{run_id}` · {status}")
        if status in jobs.ACTIVE and button.button("Cancel", key=f"cancel_{run_id}"):
            jobs.cancel_job(store, run_id)
            st.toast(f"Cancelling {run_id}…")
        st.progress(summary["fraction"], text=_progress_text(record, summary))
        if status == "failed":
            st.error(record.get("error") or "The run failed.")
        if len(events) > 1:
            st.plotly_chart(
                charts.training_curves(pd.DataFrame(events), title=f"{record['model']} curves"),
                width="stretch",
                key=f"curve_{run_id}_{len(events)}",
            )


def _progress_text(record: dict, summary: dict) -> str:
    status = record.get("status")
    if status == "queued":
        return record.get("message") or "Queued — waiting to start."
    if status == "finished":
        fit = record.get("timings", {}).get("fit_s")
        return f"Finished in {fit:.1f} s of training." if fit is not None else "Finished."
    if status in ("failed", "cancelled"):
        return status.capitalize() + "."
    parts = []
    if summary["epochs"]:
        parts.append(f"Epoch {summary['epoch']} of at most {summary['epochs']}")
    else:
        parts.append("Fitting")
    if summary["loss"] is not None:
        parts.append(f"loss {summary['loss']:.4f}")
    if summary["best_metric"] is not None:
        parts.append(f"best validation {summary['metric_name']} {summary['best_metric']:.4f}")
    if summary["eta_s"] is not None:
        parts.append(f"about {summary['eta_s']:.0f} s left")
    return " · ".join(parts)


def _results_table(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        test = r.get("metrics", {}).get("test", {})
        rows.append(
            {
                "model": r["model"],
                "run": r["run_id"],
                **{m: test.get(m) for m in HEADLINE},
                "fit (s)": r.get("timings", {}).get("fit_s"),
            }
        )
    return pd.DataFrame(rows)
