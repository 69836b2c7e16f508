"""The Train page's sentences and tables: device, split choices, progress, results.

Pure functions over run records and progress summaries (no Streamlit), tested here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

#: the Split box's options, short enough to read whole in a third of the page
SPLITS = {"loo": "Leave last out", "temporal": "Temporal (last 10%)", "random": "Random 80/10/10"}
SPLIT_HELP = (
    "Leave last out: each user's last item is the test, the one before it validation. "
    "Temporal: the last 10% of all interactions by time are the test. "
    "Random: 80/10/10 of each user's interactions."
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
    """The line under a run's progress bar (`summary`: `core.runs.jobs.progress_summary`)."""
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
    epochs = summary["epochs"]
    parts = [f"Epoch {summary['epoch']} of at most {epochs}" if epochs else "Fitting"]
    if int(record.get("nproc") or 1) > 1:
        parts.append(f"on {record['nproc']} processes")
    if summary["loss"] is not None:
        parts.append(f"loss {summary['loss']:.4f}")
    if summary["best_metric"] is not None:
        parts.append(f"best validation {summary['metric_name']} {summary['best_metric']:.4f}")
    if summary["eta_s"] is not None:
        parts.append(f"about {summary['eta_s']:.0f} s left")
    return " · ".join(parts)


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
