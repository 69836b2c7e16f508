"""The device queue: jobs take a device in the order they were submitted (first come, first served).

A job computes only while it holds its device's lock (a `flock` on `locks/<device>.lock`, which
the kernel releases when the process dies). Before, every waiting job polled that lock and
whichever polled first after a release won: a 3 s EASE could wait behind a 9 min LightGCN
started after it. Now each job takes a numbered ticket in `locks/queue.json` when it is
submitted (`submit`, called by `core.runs.jobs.start_job` before the process exists, so the
order is the order of the clicks, not of the processes' start-up) or, for a job started another
way (`recscope train` in a shell), when it reaches its device (`device_slot`). A waiting job
tries the lock only when no older ticket of its lane is still waiting — including tickets
whose process has not yet said which device it needs (their lane is unknown; they arrive within
seconds). A ticket whose run is no longer queued or running (finished, failed, cancelled, its
process gone: `RunStore.read` refreshes) is dropped by whoever reads the queue next.

Lanes: closed-form training (models that do not train through the epoch loop: pop, itemknn,
EASE) has a lane of its own on each device, so it runs beside one long neural job instead of
waiting minutes behind it. Their fits take seconds to a minute and need no optimiser state, so
sharing the device briefly slows the long job little; two closed-form fits still queue, and
two long jobs still queue. The catch is memory: EASE on a large catalogue on the same GPU as a
neural job needs both to fit (EASE refuses catalogues above its MAX_ITEMS).
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator

from core.errors import RecScopeError
from core.models import model_class
from core.runs.liveness import ACTIVE
from core.runs.store import TRAIN, RunStore, kind_of
from core.storage import file_lock, read_json, write_json
from core.train import raise_if_cancelled

#: how often a waiting job looks at the queue (and at the cancel flag)
POLL_S = 0.2
#: the lane suffix of closed-form training on a device
QUICK = "closed-form"


def submit(store: RunStore, run_id: str) -> int:
    """Give run `run_id` a ticket (its place in every device's queue); returns its number.

    Idempotent: a run that already has a ticket keeps it."""
    label = _label(store.read(run_id))
    with _queue(store) as queue:
        mine = [t for t in queue["tickets"] if t["run_id"] == run_id]
        if mine:
            return mine[0]["ticket"]
        return _new_ticket(queue, run_id, label, None)["ticket"]


def lane_of(record: dict, device_key: str) -> str:
    """The queue a job waits in on `device_key`: the device, or its closed-form lane."""
    device_key = "cuda:0" if device_key == "cuda" else device_key  # one lock per GPU
    model = record.get("model")
    if kind_of(record) == TRAIN and model and not _loop_trained(model):
        return f"{device_key} {QUICK}"
    return device_key


@contextlib.contextmanager
def device_slot(store: RunStore, run_id: str, device_key: str) -> Iterator[None]:
    """Wait for this run's turn on `device_key`, hold the device while inside, then leave.

    Meanwhile the record says "queued" with the run's place ("2nd in line for cpu, behind
    lightgcn (running)"). The wait polls, so a cancel (SIGTERM sets the flag) ends it with
    `CancelledError`; the ticket is given up however the job ends.
    """
    record = store.read(run_id)
    lane = lane_of(record, device_key)
    path = store.home / "locks" / (lane.replace(":", "_").replace(" ", ".") + ".lock")
    path.parent.mkdir(exist_ok=True)
    label, said = _label(record), None
    try:
        with open(path, "w") as handle:
            try:
                while True:
                    raise_if_cancelled(f"while waiting for {device_key}")
                    with _queue(store) as queue:
                        _prune(store, queue, keep=run_id)
                        mine = _arrive(queue, run_id, label, lane)
                        ahead = _ahead(queue, mine)
                        holder = _holder(queue, lane, run_id)
                        if not ahead and _try_lock(handle):
                            mine["holding"] = True
                            break
                    names = [t["label"] for t in ahead]
                    text = place_sentence(len(ahead) + 1, lane, holder, names)
                    if text != said:
                        store.update(run_id, status="queued", message=text)
                        said = text
                    time.sleep(POLL_S)
            finally:  # started or cancelled: the place in line is no longer news
                if said is not None:
                    store.update(run_id, message="")
            yield
    finally:
        _leave(store, run_id, lane)


def place_sentence(place: int, lane: str, holder: str | None, ahead: list[str]) -> str:
    """ "2nd in line for cpu, behind lightgcn (running) and bpr." — a queued job's place."""
    device, _, quick = lane.partition(" ")
    where = f"{device} ({QUICK} models)" if quick else device
    names = ([f"{holder} (running)"] if holder else []) + ahead
    if not names:
        return f"{_ordinal(place)} in line for {where}: waiting for it to be free."
    behind = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"{_ordinal(place)} in line for {where}, behind {behind}."


def _queue_path(store: RunStore):
    return store.home / "locks" / "queue.json"


@contextlib.contextmanager
def _queue(store: RunStore) -> Iterator[dict]:
    """The queue file, read and written back under its lock."""
    path = _queue_path(store)
    path.parent.mkdir(exist_ok=True)
    with file_lock(path.with_suffix(".json.lock")):
        try:
            queue = read_json(path)
        except (OSError, ValueError):  # none yet, or unreadable: start afresh
            queue = {}
        queue.setdefault("next", 1)
        queue.setdefault("tickets", [])
        before = repr(queue)
        yield queue
        if repr(queue) != before:
            write_json(path, queue)


def _new_ticket(queue: dict, run_id: str, label: str, lane: str | None) -> dict:
    same = [t["ticket"] for t in queue["tickets"] if t["run_id"] == run_id]
    number = min(same) if same else queue["next"]  # a run's second device keeps its place
    queue["next"] = max(queue["next"], number + 1)
    ticket = {"ticket": number, "run_id": run_id, "label": label, "lane": lane, "holding": False}
    queue["tickets"].append(ticket)
    return ticket


def _arrive(queue: dict, run_id: str, label: str, lane: str) -> dict:
    """This run's ticket for `lane`: its submitted ticket gets the lane, or a new one."""
    for ticket in queue["tickets"]:
        if ticket["run_id"] == run_id and ticket["lane"] == lane:
            return ticket
    for ticket in queue["tickets"]:
        if ticket["run_id"] == run_id and ticket["lane"] is None:
            ticket["lane"] = lane
            return ticket
    return _new_ticket(queue, run_id, label, lane)


def _ahead(queue: dict, mine: dict) -> list[dict]:
    """Older tickets still waiting in `mine`'s lane, or whose lane is not known yet."""
    return sorted(
        (
            t
            for t in queue["tickets"]
            if t["ticket"] < mine["ticket"]
            and not t["holding"]
            and t["run_id"] != mine["run_id"]
            and t["lane"] in (None, mine["lane"])
        ),
        key=lambda t: t["ticket"],
    )


def _holder(queue: dict, lane: str, run_id: str) -> str | None:
    for ticket in queue["tickets"]:
        if ticket["holding"] and ticket["lane"] == lane and ticket["run_id"] != run_id:
            return ticket["label"]
    return None


def _prune(store: RunStore, queue: dict, keep: str) -> None:
    """Drop the tickets of runs that are no longer queued or running (or no longer exist)."""
    alive = {keep}
    for run_id in {t["run_id"] for t in queue["tickets"]} - alive:
        try:
            if store.read(run_id).get("status") in ACTIVE:
                alive.add(run_id)
        except RecScopeError:
            pass  # deleted, or its record unreadable: it will never take its turn
    queue["tickets"] = [t for t in queue["tickets"] if t["run_id"] in alive]


def _leave(store: RunStore, run_id: str, lane: str) -> None:
    try:
        with _queue(store) as queue:
            queue["tickets"] = [
                t for t in queue["tickets"] if not (t["run_id"] == run_id and t["lane"] == lane)
            ]
    except (OSError, RecScopeError):  # the next reader prunes it: the run is no longer active
        pass


def _try_lock(handle) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _label(record: dict) -> str:
    """How a place sentence names a job: its model, or its kind (e.g. "leaderboard")."""
    kind = kind_of(record)
    model = record.get("model") or (record.get("params") or {}).get("model")
    if kind == TRAIN:
        return str(model or "a training run")
    return f"{kind} of {model}" if model else kind


def _loop_trained(model: str) -> bool:
    try:
        return bool(model_class(model).trains_with_loop)
    except (KeyError, RecScopeError):  # an unknown model fails later, with its own sentence
        return True


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
