"""What a training run's progress bar says: the epoch (or a closed-form model's try), the
share done, and the time left, estimated from the epochs observed and early stopping.

Pure functions over a run record and its progress.jsonl lines (core.protocols.ProgressEvent
as dicts); the Train page words them (dashboard.views_train).
"""

from __future__ import annotations

from core.errors import RecScopeError
from core.models import model_class


def progress_summary(record: dict, events: list[dict]) -> dict:
    """What a progress bar shows: epoch (or the try of a λ search), share done, the time left
    as estimated from the epochs seen so far, last loss and best metric.

    The estimate: `eta_s` and `eta_max_s` are the seconds the remaining epochs take at the
    mean epoch time observed so far (`elapsed_s / epoch`, validation included). `eta_max_s`
    runs to the last epoch; `eta_s` stops where early stopping would, `patience` epochs after
    the best validation epoch so far (the soonest it can stop; it moves on each time the
    score improves). Without validation the two are equal. `search` names the hyperparameter
    a closed-form model is trying (EASE's "λ"): `epoch`/`epochs` then count the tries.
    """
    last = events[-1] if events else {}
    epochs = last.get("epochs") or record.get("params", {}).get("epochs") or 0
    epoch = last.get("epoch", 0)
    done = record.get("status") == "finished"
    metrics = [e["valid_metric"] for e in events if e.get("valid_metric") is not None]
    search = last.get("param")
    patience = None if search else _patience(record)
    eta = None if done or search else _time_left(last, epoch, epochs, patience, bool(metrics))
    return {
        "epoch": epoch,
        "epochs": epochs,
        "fraction": 1.0 if done else (min(epoch / epochs, 1.0) if epochs else 0.0),
        "eta_s": eta and eta[0],
        "eta_max_s": eta and eta[1],
        "eta_epochs": epoch if eta else 0,
        "patience": patience,
        "loss": last.get("loss"),
        "best_metric": max(metrics) if metrics else None,
        "metric_name": last.get("metric_name", "ndcg@10"),
        "samples_per_s": last.get("samples_per_s"),
        "search": search,
        "search_value": last.get("param_value"),
    }


def _time_left(
    last: dict, epoch: int, epochs: int, patience: int | None, validated: bool
) -> tuple[float, float] | None:
    """(soonest, latest) seconds left, from the mean epoch time seen; None before an epoch."""
    elapsed = last.get("elapsed_s") or 0.0
    if epoch <= 0 or elapsed <= 0 or not epochs:
        return None
    per_epoch = elapsed / epoch
    if str(last.get("message", "")).startswith("early stop"):
        return 0.0, 0.0
    latest = max(epochs - epoch, 0)
    soonest = latest
    best = last.get("best_epoch")
    if validated and patience and best is not None:
        soonest = min(latest, max(int(best) + int(patience) - epoch, 0))
    return per_epoch * soonest, per_epoch * latest


def _patience(record: dict) -> int | None:
    """The run's early-stopping patience: its params, else its model's default (None: none)."""
    value = (record.get("params") or {}).get("patience")
    if value is None and record.get("model"):
        try:
            value = model_class(record["model"]).default_params().get("patience")
        except RecScopeError:
            return None
    return int(value) if value is not None else None
