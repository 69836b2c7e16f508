"""The Data page's choices and sentences: column mapping from the form, names, profile notes.

Pure functions (no Streamlit), so what the page decides and says is tested here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from core.data.ingest.columns import NO_COLUMN
from core.data.ingest.ingest import infer_mapping
from core.data.profile import top_share
from core.data.schema import ColumnMapping
from dashboard.text import md

NONE = "(none)"  # the selectbox option "this file has no such column"
FIELDS = {  # mapping field -> label; user and item are required
    "user_id": "User column",
    "item_id": "Item column",
    "rating": "Rating column",
    "timestamp": "Time column",
    "scenario": "Scenario column",
}


def mapping_defaults(columns: Sequence[str], detected: str) -> tuple[ColumnMapping, list, dict]:
    """What the column form starts from: (inferred mapping, options, {field: default index}).

    Options are NONE and the file's columns; each field defaults to what ingest would infer.
    """
    guess = infer_mapping(list(columns), detected)
    options = [NONE, *columns]
    index = {}
    for field in FIELDS:
        default = getattr(guess, field)
        index[field] = options.index(default) if default in options else 0
    return guess, options, index


def chosen_mapping(chosen: Mapping[str, str], guess: ColumnMapping) -> ColumnMapping:
    """The mapping the form says: NONE becomes NO_COLUMN ("leave this field out"; None would
    mean "use the inferred one"), and the inferred weight column is kept unless it was
    picked for another field."""
    picked = {k: (NO_COLUMN if v == NONE else v) for k, v in chosen.items()}
    weight = guess.weight if guess.weight and guess.weight not in picked.values() else NO_COLUMN
    return ColumnMapping(**picked, weight=weight, extra=guess.extra)


def data_dirs_note(folders: Sequence[Path]) -> str:
    """Under the server-path fields: which folders the server reads (and how to add one)."""
    listed = ", ".join(f"`{f}`" for f in folders)
    return (
        f"Only files inside these folders can be read: {listed}. Start the server with "
        "RECSCOPE_DATA_DIRS=/one/folder:/another to add more."
    )


def name_taken(name: str, free: str, just_now: bool = False, runs: int = 0) -> str:
    """Said when the chosen dataset name is taken (`just_now`: by another session, after the
    page was drawn): pick the free name or replace on purpose. `runs` (the stored runs and
    jobs on that dataset) are mentioned only when there are some (issue 16)."""
    when = "was just created by someone else" if just_now else "already exists"
    used = (
        f"; {runs:,} run{'s were' if runs != 1 else ' was'} trained on it"
        if runs
        else " (no runs use it yet)"
    )
    return (
        f"A dataset named '{md(name)}' {when}{used}. Type another "
        f"name (for example '{md(free)}') or tick 'Replace the existing dataset' to overwrite "
        "it on purpose."
    )


def ingest_message(lines: Sequence[str]) -> str:
    """The ingest report as one Markdown message: the first line, then the rest as a list
    (each line shown as written: it names files, columns and values from the upload)."""
    return "\n".join([md(lines[0]), "", *(f"- {md(line)}" for line in lines[1:])])


def sparsity_note(counts) -> str:
    """Under the headline counts (`core.data.profile.counts`)."""
    return (
        "Sparsity is the share of user-item pairs that never interacted; recommendation data "
        f"is usually above 99%. {counts.active_items:,} of {counts.items:,} items have "
        "interactions."
    )


def user_share_note(users: pd.DataFrame) -> str:
    """Under the users' long tail (`core.data.profile.activity`)."""
    return (
        f"The most active 10% of users account for {top_share(users, 0.1):.0%} of all interactions."
    )


def item_share_note(items: pd.DataFrame) -> str:
    """Under the items' long tail: the popularity bias."""
    return (
        f"The 20% most popular items receive {top_share(items, 0.2):.0%} of all interactions "
        "— the popularity bias a model must overcome."
    )


def multi_scenario_note(per_user: pd.DataFrame) -> str:
    """Under the users-per-scenario-count bar (`core.data.profile.scenario_users`)."""
    multi = int(per_user.loc[per_user["scenarios"] > 1, "users"].sum())
    return (
        f"{multi:,} users are active in more than one scenario — the users whose interests "
        "can transfer across scenarios."
    )
