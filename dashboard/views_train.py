"""The Train page's sentences and tables: device, split choices, progress, results.

Pure functions over run records and progress summaries (no Streamlit), tested here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from core.runs.jobs import FORCE_AFTER_S
from core.runs.stages import format_seconds

#: the Split box's options, short enough to read whole in a third of the page
SPLITS = {"loo": "Leave last out", "temporal": "Temporal (last 10%)", "random": "Random 80/10/10"}
SPLIT_HELP = (
    "Leave last out: each user's last item is the test, the one before it validation. "
    "Temporal: the last 10% of all interactions by time are the test. "
    "Random: 80/10/10 of each user's interactions."
)
#: under the Progress heading: how the queue works and how long a run stays on the page
QUEUE_NOTE = (
    "Runs wait for their device in the order they were started. Closed-form models (pop, "
    "itemknn, ease) fit in seconds to a minute, so they run beside a long neural training "
    "instead of waiting behind it. Runs of the last {hours} hours stay here with how they "
    "ended until you dismiss them."
)
#: the help of Cancel once a cancel was asked for (core.runs.jobs.cancel_job)
CANCEL_AGAIN = (
    f"The run stops at its next batch. If it is stuck, a second Cancel more than "
    f"{FORCE_AFTER_S:.0f} s after the first stops its process at once."
)
HEADLINE = ["ndcg@10", "recall@10", "hit@10", "mrr@10", "coverage@10", "novelty@10"]


def device_note(info: Mapping) -> tuple[bool, str]:
    """(on a GPU, the sentence) for `core.device.describe(pick_device())`."""
    if info["type"] == "cuda":
        return True, f"Neural models train on the GPU: {info['name']} ({info['memory_gb']} GB)."
    return False, f"No GPU found: models train on the {info['name']}. Small data trains fine."


def all_gpus_label(gpus: int) -> str | None:
    """The "all GPUs" choice when more than one GPU is visible (else None: nothing to offer)."""
    if gpus < 2:
        return None
    return f"All {gpus} GPUs: one process per GPU (torchrun), for the neural models"


def param_value(text: str) -> float | str:
    """A text hyperparameter as typed: a number when it reads as one (EASE's l2 '250' is
    250.0), else the stripped text ('auto')."""
    try:
        return float(text)
    except ValueError:
        return text.strip()


def progress_text(record: Mapping, summary: Mapping) -> str:
    """The line under a run's progress bar (`summary`: `core.runs.progress.progress_summary`)."""
    status = record.get("status")
    if status == "queued":
        return record.get("message") or "Queued — waiting to start."
    if status == "finished":
        fit = record.get("timings", {}).get("fit_s")
        world = int((record.get("distributed") or {}).get("world_size") or 1)
        on = f" on {world} processes" if world > 1 else ""
        return f"Finished in {fit:.1f} s of training{on}." if fit is not None else "Finished."
    if status in ("failed", "cancelled"):
        return status.capitalize() + "."
    if record.get("cancel_requested"):
        return "Cancelling — it stops at the next batch."
    epochs = summary["epochs"]
    if summary.get("search"):
        name = summary["search"]
        parts = [
            f"Trying {name} {summary['epoch']} of {epochs} ({name} = {summary['search_value']:g})"
        ]
    else:
        parts = [_epoch_text(summary["epoch"], epochs)]
    if int(record.get("nproc") or 1) > 1:
        parts.append(f"on {record['nproc']} processes")
    if summary["loss"] is not None:
        parts.append(f"loss {summary['loss']:.4f}")
    if summary["best_metric"] is not None:
        parts.append(f"best validation {summary['metric_name']} {summary['best_metric']:.4f}")
    if summary.get("eta_s") is not None:
        parts.append(eta_text(summary))
    return " · ".join(parts)


def _epoch_text(epoch: int, epochs: int) -> str:
    if not epochs:
        return "Fitting"
    if not epoch:
        return f"First epoch under way (at most {epochs})"
    return f"Epoch {epoch} of at most {epochs}"


def eta_text(summary: Mapping) -> str:
    """The time left, always said to be an estimate: "about 3 min left, estimated from 4 epochs".

    A range when early stopping may end the run before its last epoch ("about 40 s to 3 min
    left, …"): the soonest is no better validation score for `patience` epochs from now."""
    soonest, latest = summary["eta_s"], summary.get("eta_max_s") or summary["eta_s"]
    seen = summary.get("eta_epochs") or summary["epoch"]
    basis = f"estimated from {seen} epoch{'s' if seen != 1 else ''}"
    if format_seconds(soonest) != format_seconds(latest):
        patience = summary.get("patience")
        return (
            f"about {format_seconds(soonest)} to {format_seconds(latest)} left, {basis} "
            f"(it stops after {patience} epochs without a better validation score)"
        )
    return f"about {format_seconds(latest)} left, {basis}"


def ended_note(record: Mapping, summary: Mapping) -> str:
    """How a failed or cancelled run ended, in one sentence for its card."""
    if record.get("status") == "failed":
        return record.get("error") or "The run failed without an error message; see its job.log."
    if not record.get("started_at"):
        return "Cancelled before it started; nothing was trained."
    if summary.get("search"):
        return f"Cancelled while trying {summary['search']} values; nothing was saved."
    if summary.get("epoch"):
        return (
            f"Cancelled after epoch {summary['epoch']} of at most {summary['epochs']}; "
            "nothing was saved."
        )
    return "Cancelled before the first epoch ended; nothing was saved."


def results_table(records: Sequence[Mapping]) -> pd.DataFrame:
    """Finished runs' headline test metrics: model, run, HEADLINE metrics, fit (s)."""
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
