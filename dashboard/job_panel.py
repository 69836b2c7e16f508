"""A start button and a live progress panel for a background job of the run store.

Pages that run staged jobs (the Scenarios page's leaderboard and transfer) use it: the
button creates the job record and launches it through `core.runs.jobs`; while the job is
queued or running a fragment polls its record and progress.jsonl every few seconds, shows
"Stage k of n: …" with a measured estimate of the time left (core.runs.stages) and the last
log lines, and offers Cancel; when it ends the whole page reruns with the result.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from core.errors import RecScopeError
from core.runs import jobs, stages
from core.runs.store import RunStore
from dashboard.text import md

POLL_S = 3


def launch_button(
    store: RunStore,
    label: str,
    key: str,
    create: Callable[[], str],
    *,
    disabled: bool = False,
    primary: bool = False,
) -> None:
    """A button that creates a job's record (`create()`) and launches it; a refusal is shown
    as its sentence. Every page starts its jobs through this."""
    kind = "primary" if primary else "secondary"
    if st.button(label, disabled=disabled, key=key, type=kind):
        try:
            jobs.start_job(store, create())
        except RecScopeError as err:
            st.error(md(err))
        else:
            st.rerun()


def job_controls(
    store: RunStore,
    record: dict | None,
    label: str,
    key: str,
    create: Callable[[], str],
    *,
    primary: bool = False,
) -> None:
    """The button that starts a job (`create()` makes its record) and its newest job's state."""
    active = record is not None and record.get("status") in jobs.ACTIVE
    launch_button(store, label, key, create, disabled=active, primary=primary)
    if active:
        _poll(store, record["run_id"])
    elif record is not None and record.get("status") == "failed":
        st.error(f"The last run failed: {md(record.get('error') or 'no message')}")
    elif record is not None and record.get("status") == "cancelled":
        st.caption("The last run was cancelled.")


def stage_lines(status: dict) -> None:
    """A staged job's live state (`core.runs.stages.job_status`): "Stage k of n: …" on a
    progress bar, the estimated time left and where it comes from, the stages done, and the
    last lines of its log."""
    record = status["record"]
    line = status["line"] if status["total"] else (record.get("message") or "Starting…")
    st.progress(status["fraction"], text=md(line))
    st.caption(md(_estimate(status)))
    if status["done"]:
        st.caption("Done: " + " · ".join(md(s) for s in status["done"]))
    if status["log"]:
        st.code("\n".join(status["log"]), language=None)


@st.fragment(run_every=POLL_S)
def _poll(store: RunStore, run_id: str) -> None:
    status = stages.job_status(store, run_id)  # refreshed: a dead process reads as failed
    if status["record"].get("status") not in jobs.ACTIVE:
        st.rerun()  # the whole page redraws with the result
    stage_lines(status)
    if st.button("Cancel", key=f"cancel_{run_id}"):
        jobs.cancel_job(store, run_id)


def _estimate(status: dict) -> str:
    """The time-left sentence: a measured estimate and its basis, or why there is none."""
    if status["record"].get("status") == "queued":
        return "Queued: it starts when the device is free."
    if not status["total"]:
        return "Starting…"
    ran = f"Running for {stages.format_seconds(status['elapsed_s'])}."
    if status["eta_s"] is not None:
        left = stages.format_seconds(status["eta_s"])
        return f"{ran} About {left} left — an estimate {status['basis']}."
    if status["stage_eta_s"] is not None:
        left = stages.format_seconds(status["stage_eta_s"])
        return (
            f"{ran} About {left} left in this stage — an estimate {status['stage_basis']}; "
            "no earlier run of this job on this data to estimate the stages after it."
        )
    return (
        f"{ran} No estimate yet: nothing in this stage has been timed so far, and no earlier "
        "run of this job on this data has finished to go by."
    )
