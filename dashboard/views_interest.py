"""Interest profiles for the pages: which runs can be used, their lists, and the sentences.

Pure functions over the run store and `core.eval.interest` (no Streamlit), so every sentence
a product manager reads ("ease's top 10 follows this user's long-term interests …") is tested
here; `dashboard.interest_panel` and the Compare page only lay them out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from core.errors import RecScopeError
from core.eval import interest as I
from core.runs.pipeline import check_dataset
from core.runs.store import RunStore

#: the Steck formula as the pages show it (core.eval.interest's module docstring)
KL_FORMULA = (
    "C_KL(p, q) = Σ_g p(g) · ln(p(g) / q̃(g)) with q̃ = (1 − α)·q + α·p and α = "
    f"{I.ALPHA:g} (Steck, RecSys 2018), in nats"
)
#: what the two calibration targets are, as the Compare page says it
CALIBRATION_CAPTION = (
    "How well each model's top-{k} matches the category mix of each test user: {formula}, "
    "where q is the list's category shares (each listed item counts the same; an item with "
    "several categories splits its weight evenly) and p is the target — the user's held-out "
    "test items (where they went next) or their whole known history (Steck's calibration). "
    "Averaged over the users with both; lower is better, 0 is a list with exactly the "
    "target's mix, ln(1/α) ≈ {worst:.2f} a list with none of its categories."
)


def calibration_caption(k: int) -> str:
    """The Compare page's caption under the calibration table: formula, targets, direction."""
    return CALIBRATION_CAPTION.format(k=k, formula=KL_FORMULA, worst=math.log(1 / I.ALPHA)) + (
        f" Closer to recent / long-term: share of the test users whose top-{k} mix is nearer "
        "(total variation) to their recent than to their long-term mix, or the other way, "
        "among users whose two mixes differ; a short window is a noisier target, so lists "
        "tend to sit nearer the long-term mix."
    )


def usable_runs(
    store: RunStore, dataset: str, run_ids: Sequence[str]
) -> tuple[list[dict], list[str]]:
    """The finished runs of `dataset` sharing the first usable run's split, and one sentence
    per run that was left out (missing, unfinished, another dataset or split, data replaced).
    """
    records, notes = [], []
    for run_id in run_ids:
        try:
            record = store.read(run_id)
            if record.get("status") != "finished":
                raise RecScopeError(f"Run '{run_id}' is {record.get('status')}, not finished.")
            if record.get("dataset") != dataset:
                raise RecScopeError(
                    f"Run '{run_id}' was trained on '{record.get('dataset')}', not '{dataset}'."
                )
            check_dataset(store, record)
        except RecScopeError as err:
            notes.append(f"Left out of the interest profiles: {str(err).rstrip('.')}.")
            continue
        if records and _split_of(record) != _split_of(records[0]):
            notes.append(
                f"Run '{run_id}' uses the {_split_name(record)}, not the "
                f"{_split_name(records[0])} of '{records[0]['run_id']}'; it is left out of the "
                "interest profiles."
            )
            continue
        records.append(record)
    return records, notes


def drift_sentence(drift: float, n_long: int, window: int, by_time: bool) -> str:
    """One line on the drift number: what it measures and, when it cannot move, why."""
    window_text = (
        f"the {window} most recent interactions"
        if by_time
        else f"the last {window} interactions in file order (the data has no timestamps)"
    )
    if math.isnan(drift):
        return "This user has no known interaction with a categorised item, so there is no drift."
    if n_long <= window:
        return (
            f"This user has {n_long} known interactions, no more than the recent window of "
            f"{window}, so recent and long-term interests are the same (drift 0)."
        )
    return (
        f"Drift {drift:.2f}: {drift:.0%} of the interest in {window_text} would have to move "
        f"to other categories to match the whole history of {n_long} "
        "(total variation distance: 0 = the same mix, 1 = no category in common)."
    )


def follows_sentence(row: Mapping, run: str, k: int) -> str:
    """'ease's top 10 follows this user's long-term interests (distance 0.33 to them, 0.56 to
    the recent ones).' for one row of `core.eval.interest.user_run_shares`' distances."""
    follows, recent, long = row["follows"], row["tv_recent"], row["tv_long_term"]
    if not follows:
        return f"{run} has no top {k} with a categorised item for this user."
    if follows == "both":
        return (
            f"{run}'s top {k} is as close to this user's recent interests as to their "
            f"long-term ones (distance {recent:.2f} to each)."
        )
    near, far = (recent, long) if follows == "recent" else (long, recent)
    other = "long-term" if follows == "recent" else "recent"
    return (
        f"{run}'s top {k} follows this user's {follows} interests (distance {near:.2f} to "
        f"them, {far:.2f} to the {other} ones)."
    )


def held_out_sentence(shares: pd.DataFrame) -> str:
    """Where the held-out items lie: closer to the recent or the long-term shares (TV)."""
    if shares.empty or shares["held_out"].isna().all() or shares["held_out"].sum() == 0:
        return "This user has no held-out test item with a category."
    held = shares["held_out"].fillna(0)
    to_recent = 0.5 * float((held - shares["recent"]).abs().sum())
    to_long = 0.5 * float((held - shares["long_term"]).abs().sum())
    if round(to_recent, 2) == round(to_long, 2):
        where = "about as close to the recent interests as to the long-term ones"
    else:
        where = (
            "closer to the recent interests"
            if to_recent < to_long
            else "closer to the long-term interests"
        )
    return (
        f"The held-out test items are {where} (distance {to_recent:.2f} to recent, "
        f"{to_long:.2f} to long-term)."
    )


def calibration_view(table: pd.DataFrame, labels: Mapping) -> pd.DataFrame:
    """`core.eval.interest.calibration_table` with run names, for the Compare page's table."""
    return pd.DataFrame(
        {
            "run": [labels.get(r, r) for r in table["run_id"]],
            "kl_held_out": table["kl_held_out"],
            "kl_history": table["kl_history"],
            "closer_recent": table["closer_recent"],
            "closer_long_term": table["closer_long_term"],
            "n_users": table["n_users"],
        }
    )


def reference_sentence(ref: Mapping, window: int) -> str:
    """What a list with exactly the user's own mix would score (the yardstick for the KLs)."""
    return (
        f"Yardstick: a list with exactly each user's long-term mix would score "
        f"{ref['long_term']:.3f} against the held-out items, one with the mix of their last "
        f"{window} interactions {ref['recent']:.3f}; the mean drift between the two is "
        f"{ref['drift']:.2f} ({ref['n_users']:,} test users)."
    )


def _split_name(record: Mapping) -> str:
    method, seed = _split_of(record)
    return f"{method} split" + (f" (seed {seed})" if seed is not None else "")


def _split_of(record: Mapping) -> tuple:
    method = record.get("split")
    return (method, int(record.get("seed", 0)) if method == "random" else None)
