"""Interest profiles (issue 14, item 4): shares, drift and calibration computed by hand.

Three users, items a (X), b (Y), c (X|Y: half to each), d (Z), e (no category), f (Y);
leave-last-out, so the last interaction is held out, the second-last is validation (known at
test).

u1: a a b c | d (valid) | f (test)   known a,a,b,c,d; recent(2) = c,d
u2: e a b | d (valid) | c (test)     known e,a,b,d (e has no category); recent(2) = b,d
u3: a b (fewer than 3: all train, no held-out item, not a test user)
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from core.data.dataset import Dataset
from core.data.ingest.ingest import ingest
from core.data.split import split
from core.errors import ParameterError, RecScopeError
from core.eval import interest as I

A = I.ALPHA


def _dataset(genres: bool = True, timestamps: bool = True) -> Dataset:
    rows = [("u1", i, t) for t, i in enumerate("aabcdf")]
    rows += [("u2", i, t) for t, i in enumerate("eabdc")]
    rows += [("u3", i, t) for t, i in enumerate("ab")]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    if not timestamps:
        inter = inter.drop(columns="timestamp")
    items = pd.DataFrame(
        {
            "item_id": list("abcdef"),
            "category": ["X", "Y", "X", "Z", None, "Y"],
            "genres": ["X", "Y", "X|Y", "Z", None, "Y"],
        }
    )
    if not genres:
        items = items.drop(columns="genres")
    return Dataset.from_frames("toy", inter, items)


@pytest.fixture(scope="module")
def toy():
    ds = _dataset()
    return ds, I.interest_profiles(ds, split(ds, "loo"), recent=2)


def _recs(ds: Dataset, lists: dict[str, str]) -> pd.DataFrame:
    rows = [
        (int(ds.user_codes([u])[0]), r + 1, int(ds.item_codes([i])[0]))
        for u, items in lists.items()
        for r, i in enumerate(items)
    ]
    return pd.DataFrame(rows, columns=["user_code", "rank", "item_code"])


def _shares(profiles, user_code: int) -> dict:
    table = I.user_shares(profiles, user_code).set_index("category")
    return {c: tuple(round(v, 12) for v in row) for c, row in table.iterrows()}


def test_category_weights_split_multi_category_items_evenly(toy):
    ds, profiles = toy
    assert profiles.categories == ("X", "Y", "Z")
    w = profiles.item_weights.toarray()[ds.item_codes(list("abcdef"))]
    assert w.tolist() == [[1, 0, 0], [0, 1, 0], [0.5, 0.5, 0], [0, 0, 1], [0, 0, 0], [0, 1, 0]]
    assert profiles.source == (
        "Categories come from the item table's 'genres' column; 1 items have several, and "
        "each splits its weight evenly over them."
    )
    weights, names, source = I.category_weights(_dataset(genres=False).items)
    assert names == ("X", "Y", "Z")
    assert weights.toarray()[2].tolist() == [1, 0, 0]  # c is X only without the genres list
    assert source == "Categories come from the item table's 'category' column (one per item)."


def test_long_term_recent_and_held_out_shares_by_hand(toy):
    ds, profiles = toy
    u1, u2, u3 = (int(c) for c in ds.user_codes(["u1", "u2", "u3"]))
    # u1 long: X = a + a + c/2 = 2.5, Y = b + c/2 = 1.5, Z = d = 1 (of 5)
    assert _shares(profiles, u1) == {
        "X": (0.5, 0.25, 0.0),
        "Y": (0.3, 0.25, 1.0),
        "Z": (0.2, 0.5, 0.0),
    }
    # u2: e carries no weight, so a, b, d share the long-term mass; held out c = X|Y
    third = round(1 / 3, 12)
    assert _shares(profiles, u2) == {
        "X": (third, 0.0, 0.5),
        "Y": (third, 0.5, 0.5),
        "Z": (third, 0.5, 0.0),
    }
    assert _shares(profiles, u3) == {"X": (0.5, 0.5, 0.0), "Y": (0.5, 0.5, 0.0)}
    assert profiles.n_long[[u1, u2, u3]].tolist() == [5, 4, 2]
    assert profiles.n_recent[[u1, u2, u3]].tolist() == [2, 2, 2]
    assert profiles.n_held[[u1, u2, u3]].tolist() == [1, 1, 0]
    assert profiles.by_time and profiles.window == 2


def test_drift_is_total_variation_by_hand(toy):
    ds, profiles = toy
    u1, u2, u3 = (int(c) for c in ds.user_codes(["u1", "u2", "u3"]))
    assert I.drift(profiles, u1) == pytest.approx(0.5 * (0.25 + 0.05 + 0.3))  # 0.3
    assert I.drift(profiles, u2) == pytest.approx(0.5 * (1 / 3 + 1 / 6 + 1 / 6))  # 1/3
    assert I.drift(profiles, u3) == 0.0  # two interactions: the window is the whole history


def test_calibration_table_by_hand(toy):
    ds, profiles = toy
    run_a = _recs(ds, {"u1": "bc", "u2": "ca", "u3": "cd"})  # u1 X .25 Y .75; u2 X .75 Y .25
    run_b = _recs(ds, {"u1": "ad", "u2": "ed"})  # u1 X .5 Z .5; u2 Z 1 (e has no category)
    table = I.calibration_table(profiles, {"A": run_a, "B": run_b}, k=2).set_index("run_id")

    def q_(q, p):  # Steck's smoothed list share
        return (1 - A) * q + A * p

    kl_a_u1 = math.log(1 / q_(0.75, 1.0))
    kl_a_u2 = 0.5 * math.log(0.5 / q_(0.75, 0.5)) + 0.5 * math.log(0.5 / q_(0.25, 0.5))
    assert table.loc["A", "kl_held_out"] == pytest.approx((kl_a_u1 + kl_a_u2) / 2)
    # B never lists the held-out categories: both users reach the bound ln(1/alpha)
    assert table.loc["B", "kl_held_out"] == pytest.approx(math.log(1 / A))
    hist_a_u1 = (
        0.5 * math.log(0.5 / q_(0.25, 0.5))
        + 0.3 * math.log(0.3 / q_(0.75, 0.3))
        + 0.2 * math.log(0.2 / q_(0.0, 0.2))
    )
    hist_a_u2 = sum((1 / 3) * math.log((1 / 3) / q_(q, 1 / 3)) for q in (0.75, 0.25, 0.0))
    assert table.loc["A", "kl_history"] == pytest.approx((hist_a_u1 + hist_a_u2) / 2)
    # TV of the lists to recent and long-term shares (u1, u2):
    # A: recent 0.5, 0.75; long 0.45, 5/12 -> both closer to the long-term interests
    # B: recent 0.25, 0.5; long 0.3, 2/3 -> both closer to the recent interests
    assert table.loc["A", "tv_recent"] == pytest.approx((0.5 + 0.75) / 2)
    assert table.loc["A", "tv_long_term"] == pytest.approx((0.45 + 5 / 12) / 2)
    assert table.loc["B", "tv_recent"] == pytest.approx((0.25 + 0.5) / 2)
    assert table.loc["B", "tv_long_term"] == pytest.approx((0.3 + 2 / 3) / 2)
    assert table[["closer_recent", "closer_long_term"]].to_dict("index") == {
        "A": {"closer_recent": 0.0, "closer_long_term": 1.0},
        "B": {"closer_recent": 1.0, "closer_long_term": 0.0},
    }
    assert table["n_users"].tolist() == [2, 2]  # u3 has no held-out item
    # cut at k=1, A lists b (Y) for u1 and c (X|Y) for u2: exactly the held-out mixes
    first = I.calibration_table(profiles, {"A": run_a}, k=1).iloc[0]
    assert first["kl_held_out"] == pytest.approx(0.0, abs=1e-12)
    assert first["kl_history"] > 0.1


def test_reference_scores_and_mean_drift(toy):
    _, profiles = toy
    ref = I.reference_kl(profiles)
    # u1: held out Y 1, recent Y .25; u2: held out X .5 Y .5, recent Y .5 Z .5
    u1 = math.log(1 / ((1 - A) * 0.25 + A))
    u2 = 0.5 * math.log(0.5 / (A * 0.5)) + 0.5 * math.log(0.5 / ((1 - A) * 0.5 + A * 0.5))
    assert ref["recent"] == pytest.approx((u1 + u2) / 2)
    u1 = math.log(1 / ((1 - A) * 0.3 + A))
    u2 = 2 * 0.5 * math.log(0.5 / ((1 - A) / 3 + A * 0.5))
    assert ref["long_term"] == pytest.approx((u1 + u2) / 2)
    assert ref["drift"] == pytest.approx((0.3 + 1 / 3) / 2)
    assert ref["n_users"] == 2


def test_one_user_against_each_run(toy):
    ds, profiles = toy
    u1 = int(ds.user_codes(["u1"])[0])
    lists = {"A": _recs(ds, {"u1": "bc"}), "B": _recs(ds, {"u1": "ad"})}
    shares, distances = I.user_run_shares(profiles, u1, lists, k=2)
    assert shares.set_index("category").to_dict("index") == {
        "X": {"A": 0.25, "B": 0.5},
        "Y": {"A": 0.75, "B": 0.0},  # Y is the held-out category
        "Z": {"A": 0.0, "B": 0.5},
    }
    d = distances.set_index("run_id")
    assert d["follows"].to_dict() == {"A": "long-term", "B": "recent"}
    assert d.loc["A", "tv_recent"] == pytest.approx(0.5)
    assert d.loc["A", "tv_long_term"] == pytest.approx(0.45)
    assert d.loc["A", "kl_held_out"] == pytest.approx(math.log(1 / ((1 - A) * 0.75 + A)))
    assert d.loc["B", "kl_held_out"] == pytest.approx(math.log(1 / A))
    # a user the run has no list for: no shares, nothing to follow
    _, none = I.user_run_shares(profiles, u1, {"C": _recs(ds, {"u2": "ab"})}, k=2)
    assert none["follows"].tolist() == [""] and np.isnan(none["tv_recent"].iloc[0])


def test_kl_is_zero_for_the_same_mix_and_bounded():
    p = sp.csr_matrix(np.array([[0.2, 0.8, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    q = sp.csr_matrix(np.array([[0.2, 0.8, 0.0], [0.0, 0.5, 0.5], [0.5, 0.5, 0.0]]))
    kl = I.calibration_kl(p, q)
    assert kl[0] == pytest.approx(0.0, abs=1e-12)
    assert kl[1] == pytest.approx(math.log(1 / A))  # the worst case
    assert np.isnan(kl[2])  # no target shares: undefined, left out of means
    tv = I.total_variation(p, q)
    assert tv[:2].tolist() == pytest.approx([0.0, 1.0]) and np.isnan(tv[2])
    with pytest.raises(ParameterError, match="alpha must lie strictly between 0 and 1; got 0"):
        I.calibration_kl(p, q, alpha=0)


def test_without_timestamps_the_window_is_file_order():
    ds = _dataset(timestamps=False)
    profiles = I.interest_profiles(ds, None, recent=2)
    assert not profiles.by_time and profiles.held_out is None
    u1 = int(ds.user_codes(["u1"])[0])
    # no split: the history is every row; the last two in file order are d, f
    table = I.user_shares(profiles, u1).set_index("category")
    assert table["recent"].to_dict() == {"X": 0.0, "Y": 0.5, "Z": 0.5}
    assert table["long_term"].to_dict() == pytest.approx({"X": 2.5 / 6, "Y": 2.5 / 6, "Z": 1 / 6})
    assert table["held_out"].isna().all()


def test_no_categories_and_bad_settings_are_one_sentence():
    ds = Dataset.from_frames("plain", pd.DataFrame({"user_id": ["u"], "item_id": ["i"]}))
    with pytest.raises(RecScopeError) as err:
        I.interest_profiles(ds)
    assert str(err.value) == (
        "The items of this dataset have no category, so there are no interest profiles; "
        "ingest an item table with a category or genre column to see them."
    )
    with pytest.raises(ParameterError, match=r"recent must be a whole number .* got 0\."):
        I.interest_profiles(_dataset(), recent=0)


def test_multi_category_items_through_ingest(tmp_path):
    """What ingest keeps: RecBole's `class:token_seq` (space-separated, as ML-100k's
    ml-100k.item) and a `genres` column split on '|' (as MovieLens' movies.csv)."""
    (tmp_path / "rb.inter").write_text(
        "user_id:token\titem_id:token\ttimestamp:float\n1\t1\t10\n1\t2\t20\n1\t3\t30\n"
    )
    (tmp_path / "rb.item").write_text(
        "item_id:token\tmovie_title:token_seq\tclass:token_seq\n"
        "1\tToy Story\tAnimation Children's Comedy\n2\tHeat\tAction\n3\tCasino\tCrime Drama\n"
    )
    home = tmp_path / "ws"
    ds, _ = ingest(tmp_path / "rb.inter", items=tmp_path / "rb.item", name="rb", home=home)
    weights, names, source = I.category_weights(ds.items)
    assert names == ("Action", "Animation", "Children's", "Comedy", "Crime", "Drama")
    rows = weights.toarray()[ds.item_codes(["1", "2", "3"])]
    third = 1 / 3
    expected = [[0, third, third, third, 0, 0], [1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0.5, 0.5]]
    assert np.allclose(rows, expected)
    assert source.startswith("Categories come from the item table's 'class' column; 2 items")

    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4,10\n1,2,5,20\n")
    (tmp_path / "movies.csv").write_text(
        "movieId,title,genres\n1,Toy Story,Animation|Children's\n2,Heat,(no genres listed)\n"
    )
    ds, _ = ingest(tmp_path / "ratings.csv", items=tmp_path / "movies.csv", name="ml", home=home)
    weights, names, source = I.category_weights(ds.items)
    assert names == ("Animation", "Children's")
    assert weights.toarray()[ds.item_codes(["1", "2"])].tolist() == [[0.5, 0.5], [0, 0]]
    assert source.startswith("Categories come from the item table's 'genres' column; 1 items")
