"""The Tune page's sentences and tables: budget choices, trial table, the study's outcome.

Pure functions over tuning job records, their results (`core.runs.tuning.run_tune`) and
trial frames (`core.runs.tuning.trials_frame`); no Streamlit, tested here and through the
page's AppTest.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from core.runs.stages import format_seconds
from dashboard.views_train import HEADLINE

METRIC = "valid NDCG@10"
#: trial states as a person reads them (Optuna's names: COMPLETE, PRUNED, FAIL, RUNNING…)
STATES = {
    "COMPLETE": "finished",
    "PRUNED": "stopped early",
    "FAIL": "failed",
    "RUNNING": "running",
    "WAITING": "waiting",
}
STOPPED_BY = {
    "time": "the time budget ran out",
    "trials": "the number of trials was reached",
    "cancel": "it was cancelled",
}


def budget_args(minutes: float, trials: int) -> dict:
    """The page's budget inputs (0 = no limit) as `new_tune` keywords."""
    return {
        "budget_s": float(minutes) * 60 if minutes and minutes > 0 else None,
        "n_trials": int(trials) if trials and trials > 0 else None,
    }


def budget_phrase(budget_s: float | None, n_trials: int | None) -> str:
    """'10 min or 40 trials, whichever comes first' style text for a budget."""
    parts = []
    if budget_s:
        parts.append(format_seconds(budget_s))
    if n_trials:
        parts.append(f"{n_trials} trial{'s' if n_trials != 1 else ''}")
    if not parts:
        return "no budget"
    return parts[0] if len(parts) == 1 else f"{parts[0]} or {parts[1]}, whichever comes first"


def study_heading(record: Mapping) -> str:
    """One line naming the study on screen: model, split, seed, budget, status."""
    p = record.get("params") or {}
    study = p.get("study") or record["run_id"]
    resumed = "" if study == record["run_id"] else f" (resumed as run {record['run_id']})"
    return (
        f"Study {study}{resumed}: {p.get('model', record.get('model', '?'))} on the "
        f"{p.get('split', '?')} split, seed {p.get('seed', '?')}, budget "
        f"{budget_phrase(p.get('budget_s'), p.get('n_trials'))} — {record.get('status', '?')}."
    )


def trials_table(frame: pd.DataFrame) -> pd.DataFrame:
    """`trials_frame` as shown: newest first, states in words, the metric column named."""
    if frame.empty:
        return frame
    view = frame.sort_values("number", ascending=False).copy()
    view["state"] = view["state"].map(lambda s: STATES.get(str(s).upper(), str(s).lower()))
    for column in view.columns.drop(["number", "state", "value", "duration_s"], errors="ignore"):
        if view[column].dtype == object:  # e.g. EASE's default l2 'auto' beside numbers
            view[column] = view[column].map(lambda v: None if v is None else _number(v))
    return view.rename(
        columns={"number": "trial", "value": METRIC, "duration_s": "seconds"}
    ).reset_index(drop=True)


def trial_counts(frame: pd.DataFrame) -> dict:
    """How many trials are in each state (keys: finished, stopped early, failed, running…)."""
    if frame.empty:
        return {}
    return trials_table(frame)["state"].value_counts().to_dict()


def no_result_note(frame: pd.DataFrame) -> str | None:
    """A sentence when the study has nothing to show yet (no trial, or none finished)."""
    counts = trial_counts(frame)
    total = sum(counts.values())
    if total == 0:
        return "No trial has been recorded in this study yet."
    if counts.get("finished", 0) == 0:
        failed = counts.get("failed", 0)
        if failed == total:
            return (
                f"All {total} trial{'s' if total != 1 else ''} failed, so there is no best "
                "parameter set; the job log in the run folder says why."
            )
        return "No trial has finished yet; figures appear after the first one."
    return None


def budget_sentence(result: Mapping) -> str:
    """What the budget was, what was used and why the study stopped, in plain words."""
    b = result.get("budget") or {}
    used = format_seconds(b.get("elapsed_s") or 0.0)
    why = STOPPED_BY.get(b.get("stopped_by"), "it ended")
    n, pruned = int(result.get("n_trials", 0)), int(result.get("n_pruned", 0))
    failed = int(result.get("n_failed", 0))
    extra = f", {failed} failed" if failed else ""
    return (
        f"Budget {budget_phrase(b.get('budget_s'), b.get('n_trials'))}: used {used} for "
        f"{n} trial{'s' if n != 1 else ''} ({pruned} stopped early by the pruner{extra}); "
        f"it stopped because {why}."
    )


def best_sentence(result: Mapping) -> str:
    """Best validation score against the defaults' (trial 0 runs the defaults)."""
    best = result.get("best") or {}
    value = best.get("valid_ndcg@10")
    default = (result.get("default") or {}).get("valid_ndcg@10")
    if value is None:
        return "No trial finished, so there is no best parameter set."
    text = f"Best {METRIC} {value:.4f} (trial {best.get('trial', '?')})"
    if default is None:
        return text + "; the defaults did not finish a trial."
    if value > default:
        gain = f"{(value / default - 1) * 100:+.1f}%" if default > 0 else "up from 0"
        return text + f" against {default:.4f} with the defaults ({gain})."
    return text + f": no parameter set beat the defaults ({default:.4f}), so they are kept."


def params_table(params: Mapping) -> pd.DataFrame:
    """Best parameters as a two-column table (values as text: ints, floats and words mix)."""
    return pd.DataFrame({"parameter": list(params), "value": [_number(v) for v in params.values()]})


def best_test_table(metrics: Mapping) -> pd.DataFrame:
    """The best run's headline test metrics (the Train page's) as one row; all of them are
    on the Runs page."""
    test = dict((metrics or {}).get("test") or {})
    return pd.DataFrame([{m: test[m] for m in HEADLINE if m in test}])


def progress_line(record: Mapping, frame: pd.DataFrame) -> str:
    """Under the progress bar while a study runs: trials so far and the best so far."""
    counts = trial_counts(frame)
    done = sum(v for k, v in counts.items() if k != "running")
    best = frame.loc[frame["state"].astype(str).str.upper() == "COMPLETE", "value"]
    best_text = f" · best {METRIC} {best.max():.4f}" if not best.empty else ""
    pruned = counts.get("stopped early", 0)
    return f"{done} trial{'s' if done != 1 else ''} done ({pruned} stopped early){best_text}."


def _number(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
