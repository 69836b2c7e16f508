"""dashboard.views_data: the Data page's column form, dataset names and profile notes."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from core.data.ingest.columns import NO_COLUMN
from core.data.ingest.ingest import name_for_file
from dashboard import views_data as VD


def test_mapping_defaults_follow_what_ingest_infers():
    guess, options, index = VD.mapping_defaults(["user", "movie", "stars", "when", "device"], "csv")
    assert options == [VD.NONE, "user", "movie", "stars", "when", "device"]
    assert index == {"user_id": 1, "item_id": 2, "rating": 3, "timestamp": 0, "scenario": 0}
    assert (guess.user_id, guess.rating, guess.timestamp) == ("user", "stars", None)


def test_chosen_mapping_leaves_out_none_and_keeps_an_unused_weight():
    guess, _, _ = VD.mapping_defaults(["user_id", "item_id", "weight", "timestamp"], "csv")
    chosen = {
        "user_id": "user_id",
        "item_id": "item_id",
        "rating": VD.NONE,
        "timestamp": "timestamp",
        "scenario": VD.NONE,
    }
    mapping = VD.chosen_mapping(chosen, guess)
    assert (mapping.rating, mapping.scenario) == (NO_COLUMN, NO_COLUMN)  # not "infer it"
    assert (mapping.timestamp, mapping.weight) == ("timestamp", "weight")
    # the inferred weight column picked as the rating is not also the weight
    mapping = VD.chosen_mapping({**chosen, "rating": "weight"}, guess)
    assert (mapping.rating, mapping.weight) == ("weight", NO_COLUMN)


@pytest.mark.parametrize(
    "filename, name",
    [
        ("ratings (1).csv", "ratings-1"),
        ("/data/u.data", "ml-100k"),  # issue 16: the layout's name, not "u"
        ("u1.base", "ml-100k"),
        ("ratings.dat", "ml-1m"),
        ("ml-100k.inter", "ml-100k"),
        ("...csv", "dataset"),
        ("x" * 80 + ".csv", "x" * 64),
    ],
)
def test_dataset_name_from_a_file_name(filename, name):
    assert name_for_file(filename) == name  # the page suggests what ingest would name it


def test_ingest_message_and_profile_notes():
    lines = ["Created dataset 'd'.", "Read 6 rows.", "Dropped 1 row without a user."]
    assert VD.ingest_message(lines) == (
        "Created dataset 'd'\\.\n\n- Read 6 rows\\.\n- Dropped 1 row without a user\\."
    )
    # names and values from the file are shown as written, never as Markdown or a link
    shown = VD.ingest_message(["Created dataset '**x**'.", "Read rows from [a](http://x)."])
    assert shown == (
        "Created dataset '\\*\\*x\\*\\*'\\.\n\n"
        "- Read rows from \\[a\\]\\(http\\:\\/\\/\u2060x\\)\\."  # a word joiner: no autolink
    )
    counts = SimpleNamespace(active_items=1500, items=1862)
    assert VD.sparsity_note(counts).endswith("1,500 of 1,862 items have interactions.")
    # ten users; the top one (10%) holds 40% of the interactions, the top two items 70%
    table = pd.DataFrame({"cum_share": [0.4, 0.7, 0.8, 0.85, 0.9, 0.93, 0.96, 0.98, 0.99, 1.0]})
    assert VD.user_share_note(table) == (
        "The most active 10% of users account for 40% of all interactions."
    )
    assert VD.item_share_note(table).startswith("The 20% most popular items receive 70% of all")
    per_user = pd.DataFrame({"scenarios": [1, 2, 3], "users": [100, 1200, 30]})
    assert VD.multi_scenario_note(per_user).startswith("1,230 users are active in more than one")


def test_name_taken_mentions_runs_only_when_there_are_some():
    """Issue 16: a dataset nobody trained on is not said to have runs."""
    assert VD.name_taken("stars", "stars-2").startswith(
        "A dataset named 'stars' already exists (no runs use it yet). Type another name"
    )
    assert VD.name_taken("stars", "stars-2", runs=1).startswith(
        "A dataset named 'stars' already exists; 1 run was trained on it. Type"
    )
    assert VD.name_taken("stars", "stars-2", just_now=True, runs=1200).startswith(
        "A dataset named 'stars' was just created by someone else; 1,200 runs were trained on it."
    )
