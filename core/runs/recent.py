"""The training runs the Train page keeps in view: recent ones, until the user dismisses them.

Why recent-and-not-dismissed rather than "started in this browser tab": a reload, a second
tab, a restart of the app or a run typed as `recscope train` all begin a new Streamlit
session, and the analyst still expects to find the runs they just started, with how each
ended (finished with its metrics, failed with the reason, cancelled). So the page shows every
training run of the dataset that is queued or running, created in the last RECENT_HOURS, or
started by this session — minus the ones dismissed. A dismissal is written into the run's
record (`dismissed_at`), so it holds for every session and disappears with the run; the Runs
page still lists every run.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from core.runs.liveness import ACTIVE
from core.runs.store import RunStore
from core.storage import now_iso

#: how long a finished, failed or cancelled run stays on the Train page unless dismissed
RECENT_HOURS = 24


def shown_runs(
    store: RunStore,
    dataset: str,
    started: Iterable[str] = (),
    hours: float = RECENT_HOURS,
    now: datetime | None = None,
) -> list[dict]:
    """Training runs of `dataset` to show, newest first (records refreshed by `RunStore.list`):
    active ones always; others created within `hours` or in `started`, unless dismissed."""
    since = (now or datetime.now(timezone.utc)) - timedelta(hours=hours)
    started = set(started)
    out = []
    for record in store.list(dataset=dataset):
        if record.get("unreadable"):
            continue  # the Runs page says why; it has no dataset to belong to here
        if record.get("status") in ACTIVE:
            out.append(record)
        elif not record.get("dismissed_at") and (
            record["run_id"] in started or _created(record) >= since
        ):
            out.append(record)
    return out


def dismiss(store: RunStore, run_ids: Iterable[str]) -> list[str]:
    """Take ended runs off the Train page for every session; returns the ids dismissed.

    A queued or running run is never dismissed (it has a Cancel button instead)."""
    done = []
    for run_id in run_ids:
        with store.edit(run_id) as record:
            if record.get("status") not in ACTIVE and not record.get("dismissed_at"):
                record["dismissed_at"] = now_iso()
                done.append(run_id)
    return done


def _created(record: dict) -> datetime:
    try:
        when = datetime.fromisoformat(record.get("created_at") or "")
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
