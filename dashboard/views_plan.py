"""The Train page's plan: per chosen model its estimated peak memory, time and verdict
(`core.runs.plan`), and why Start is off. Pure functions (no Streamlit), tested."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from core.runs.plan import Plan, duration_text, memory_text

#: the verdict column's words
VERDICT_TEXT = {"fits": "Fits", "tight": "Tight", "refused": "Refused"}


def plan_table(plans: Sequence[Plan]) -> pd.DataFrame:
    """One row per model: model, peak memory, time to train and evaluate, verdict."""
    return pd.DataFrame(
        [
            {
                "model": p.model,
                "memory": memory_text(p.peak_bytes),
                "time": _time_text(p),
                "verdict": VERDICT_TEXT[p.verdict],
            }
            for p in plans
        ],
        columns=["model", "memory", "time", "verdict"],
    )


def memory_note(plans: Sequence[Plan]) -> str:
    """Where the estimates are compared: the device and the memory it has free now."""
    p = plans[0]
    gpu = p.device.startswith("cuda")
    where = "free on the GPU" if gpu else "available on this machine"
    return (
        f"Estimated before training: peak memory and time on the "
        f"{'GPU' if gpu else 'CPU (one core)'}, from each model's "
        f"size and a short measurement of this device; {memory_text(p.available_bytes)} "
        f"{where} now. Times are at most: early stopping often ends sooner."
    )


def start_block(plans: Sequence[Plan], errors: Mapping[str, str]) -> str | None:
    """Why Start is off (a refused model, or one whose plan failed), or None when it is on."""
    refused = [p.model for p in plans if p.refused] + list(errors)
    if not refused:
        return None
    names = ", ".join(refused)
    one = len(refused) == 1
    return (
        f"Start is off: {names} {'is' if one else 'are'} refused (see above). Remove "
        f"{'it' if one else 'them'} from Models, or change {'its' if one else 'their'} "
        "settings, to start."
    )


def _time_text(plan: Plan) -> str:
    return f"{duration_text(plan.fit_s)} + {duration_text(plan.eval_s)} evaluation"
