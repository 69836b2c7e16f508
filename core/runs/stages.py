"""What a staged job is doing now and how long it may still take, read from its progress.jsonl.

A staged job (the scenario leaderboard, transfer, tuning) writes two kinds of line through
the one job system: stage lines `{"stage", "step", "steps"}` (`core.runs.jobs.run_job`'s
`stage`) and, while a stage trains a neural model, that model's epoch lines — the same
`ProgressEvent` a training run writes (`epoch`, `epochs`, `eta_s`, …). `stage_status` turns
them into the line a person reads ("Stage 3 of 8: Training multiscenario (3 of 4) — epoch 4 of
at most 30") and an estimate of the time left made only of measured times:

- the current stage: the training loop's own estimate (seconds per epoch so far times the
  epochs left before the maximum; early stopping may end it sooner), else — for a stage
  without epochs — how long the same stage took in `previous`;
- the stages still to come: their durations in `previous` (the last finished job of the
  same kind and the same number of stages), scaled by how fast this job ran the stages both
  have finished (the machine's load changes).

Without a previous job there is no whole-job estimate, only the current stage's; nothing is
ever a made-up constant. `previous_durations` measures a finished job's stages.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from core.runs.store import RunStore, kind_of

#: what the page prints beside an estimate: where the number comes from
EPOCH_BASIS = "from this stage's epochs so far, assuming it runs to its maximum"
PREVIOUS_BASIS = "from the stage times of the last finished run, scaled to this run's speed"


def stage_status(
    record: dict,
    events: list[dict],
    previous: dict[int, float] | None = None,
    now: float | None = None,
) -> dict:
    """The current stage of a staged job and the estimated time left.

    Keys: number and total (1-based "stage k of n"; 0 before the first stage), stage (its
    text), detail ("epoch 4 of at most 30" or ""), line (the two together), fraction (stages
    done, plus the share of the current stage's epochs), stage_eta_s and eta_s (seconds, or
    None when nothing measured supports one), basis (where eta_s comes from), done (the
    finished stages' texts) and elapsed_s (since the first stage began).
    """
    now = time.time() if now is None else now
    staged = [e for e in events if e.get("stage")]
    finished = record.get("status") == "finished"
    if not staged:
        line = record.get("message") or ("Finished" if finished else "Starting…")
        out = _status(0, 0, line, "", 1.0 if finished else 0.0, [], 0.0)
        return {**out, "stage_eta_s": None, "eta_s": None, "stage_basis": None, "basis": None}
    current = staged[-1]
    step, steps = int(current.get("step", 0)), max(int(current.get("steps", 1)), 1)
    started = float(current.get("time", now))
    epochs = [e for e in events if e.get("epoch") and float(e.get("time", 0)) >= started]
    detail, share, stage_eta, stage_basis = "", 0.0, None, None
    if epochs:
        last = epochs[-1]
        detail = f"epoch {last['epoch']} of at most {last['epochs']}"
        share = min(last["epoch"] / max(last["epochs"], 1), 1.0)
        if last.get("eta_s") is not None:
            since = now - float(last.get("time", now))
            stage_eta, stage_basis = max(float(last["eta_s"]) - since, 0.0), EPOCH_BASIS
    durations = _durations(staged)
    ratio = _speed_ratio(durations, previous)
    if stage_eta is None and previous and step in previous:
        stage_eta = max(previous[step] * ratio - (now - started), 0.0)
        stage_basis = PREVIOUS_BASIS
    eta, basis = None, None
    later = range(step + 1, steps)
    if stage_eta is not None and (not later or (previous and all(s in previous for s in later))):
        eta = stage_eta + sum(previous[s] * ratio for s in later) if later else stage_eta
        basis = PREVIOUS_BASIS if later else stage_basis
    fraction = 1.0 if finished else min((step + share) / steps, 1.0)
    done = [e["stage"] for e in staged[:-1]]
    elapsed = now - float(staged[0].get("time", now))
    out = _status(step + 1, steps, current["stage"], detail, fraction, done, elapsed)
    if finished:
        stage_eta = eta = None
    estimates = {"stage_eta_s": stage_eta, "eta_s": eta}
    return {**out, **estimates, "stage_basis": stage_basis, "basis": basis}


def job_status(store: RunStore, run_id: str, log_lines: int = 5) -> dict:
    """`stage_status` of job `run_id` (its record refreshed: a dead process reads failed),
    estimated against the last finished job of its kind on its dataset with as many stages,
    plus `record` and `log` (the last `log_lines` lines of its job.log)."""
    record = store.read(run_id)
    events = store.progress(run_id)
    status = stage_status(record, events, _previous(store, record, events))
    return {**status, "record": record, "log": _tail(store.folder(run_id) / "job.log", log_lines)}


def last_times(store: RunStore, dataset: str, kind: str, **params) -> dict | None:
    """How long the newest finished `kind` job on `dataset` (with `params`, if given) took:
    {"total_s": its record's timings.total_s, "stages": [(stage text, seconds), …] longest
    first}; None when none finished."""
    for record in store.list(dataset, kind=kind):
        mine = record.get("params") or {}
        if record.get("status") != "finished":
            continue
        total = (record.get("timings") or {}).get("total_s")
        if total is None or not all(mine.get(k) == v for k, v in params.items()):
            continue
        events = store.progress(record["run_id"])
        names = {int(e.get("step", 0)): e["stage"] for e in events if e.get("stage")}
        took = previous_durations(events, _timestamp(record.get("finished_at")))
        ranked = sorted(((names[s], t) for s, t in took.items() if s in names), key=lambda x: -x[1])
        return {"total_s": float(total), "stages": ranked}
    return None


def previous_durations(events: list[dict], end: float | None) -> dict[int, float]:
    """Seconds each stage (by step) of a finished job took; its last stage ends at `end`
    (the job's finish time, seconds since the epoch)."""
    staged = [e for e in events if e.get("stage")]
    out = _durations(staged)
    if staged and end is not None:
        out[int(staged[-1].get("step", 0))] = max(end - float(staged[-1]["time"]), 0.0)
    return out


def format_seconds(seconds: float) -> str:
    """'45 s', '3 min 20 s', '1 h 5 min' — for estimates and measured durations."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs and minutes < 10 else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


# -- helpers ---------------------------------------------------------------------------------


def _previous(store: RunStore, record: dict, events: list[dict]) -> dict[int, float] | None:
    """Stage durations of the newest finished job like `record` (kind, dataset, number of
    stages; one with the same options preferred)."""
    steps = next((e.get("steps") for e in reversed(events) if e.get("stage")), None)
    if steps is None:
        return None
    finished = [
        other
        for other in store.list(record.get("dataset"), kind=kind_of(record))
        if other.get("status") == "finished" and other["run_id"] != record.get("run_id")
    ]
    # the same options first (a transfer's own scenario pair), newest first within each
    finished.sort(key=lambda other: other.get("params") != record.get("params"))
    for other in finished:
        theirs = store.progress(other["run_id"])
        same = [e for e in theirs if e.get("stage")]
        if same and same[-1].get("steps") == steps:
            return previous_durations(theirs, _timestamp(other.get("finished_at")))
    return None


def _timestamp(stamp: str | None) -> float | None:
    try:
        return datetime.fromisoformat(stamp).timestamp() if stamp else None
    except ValueError:
        return None


def _tail(path: Path, n: int) -> list[str]:
    """The last `n` non-empty lines of a log (only its end is read: logs grow)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 8192))
            text = handle.read().decode(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-n:]


def _durations(staged: list[dict]) -> dict[int, float]:
    """Seconds between each stage line and the next one, by step (the last is still open)."""
    out = {}
    for this, following in zip(staged, staged[1:], strict=False):
        out[int(this.get("step", 0))] = max(float(following["time"]) - float(this["time"]), 0.0)
    return out


def _speed_ratio(durations: dict[int, float], previous: dict[int, float] | None) -> float:
    """This run's time over the previous run's, on the stages both finished (1 if none)."""
    if not previous:
        return 1.0
    both = [s for s in durations if s in previous]
    mine, theirs = sum(durations[s] for s in both), sum(previous[s] for s in both)
    return mine / theirs if both and theirs > 1.0 and mine > 0 else 1.0


def _status(
    number: int, total: int, stage: str, detail: str, fraction: float, done: list, elapsed: float
) -> dict:
    line = f"Stage {number} of {total}: {stage}" if total else stage
    return {
        "number": number,
        "total": total,
        "stage": stage,
        "detail": detail,
        "line": f"{line} — {detail}" if detail else line,
        "fraction": fraction,
        "done": done,
        "elapsed_s": elapsed,
    }
