"""A start button and a live progress panel for a background job of the run store.

Pages that run staged jobs (the Scenarios page's leaderboard and transfer) use it: the
button creates the job record and launches it through `core.runs.jobs`; while the job is
queued or running a fragment polls its record and progress.jsonl every few seconds, shows
the current stage and offers Cancel; when it ends the whole page reruns with the result.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from core.errors import RecScopeError
from core.runs import jobs
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


@st.fragment(run_every=POLL_S)
def _poll(store: RunStore, run_id: str) -> None:
    record = store.read(run_id)  # refreshed: a dead process reads as failed
    if record.get("status") not in jobs.ACTIVE:
        st.rerun()  # the whole page redraws with the result
    summary = jobs.stage_summary(record, store.progress(run_id))
    st.progress(summary["fraction"], text=summary["stage"] or "Starting…")
    done = summary["stages"][:-1]
    if done:
        st.caption("Done: " + " · ".join(done))
    if st.button("Cancel", key=f"cancel_{run_id}"):
        jobs.cancel_job(store, run_id)
