"""The synthetic sample data has the structure sample_data/README.md promises.

Shipped CSVs are checked for sizes and columns; the planted rules (series order, follow-ups,
shared interests, long tail, scenario mix) are checked on freshly generated data, and the
"last item predicts the next" property is checked with three tiny baselines on a loo split.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from core.data.split import split
from core.data.synth import SCENARIOS, SPAN_S, START_TS, generate
from core.data.synth_vocab import CATEGORIES
from core.errors import ParameterError

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture(scope="module")
def data():
    return generate(n_users=1500, seed=11)


def _transitions(inter: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(previous item, next item, next-is-user's-last) for consecutive pairs of each user."""
    order = inter.sort_values(["user_id", "timestamp"], kind="stable")
    users, items = order["user_id"].to_numpy(), order["item_id"].to_numpy()
    same = users[1:] == users[:-1]
    is_last = np.r_[users[1:] != users[:-1], True]
    return items[:-1][same], items[1:][same], is_last[1:][same]


def test_shipped_files_sizes_and_columns():
    files = {n: SAMPLE / f"{n}.csv" for n in ("interactions", "items", "users")}
    assert sum(p.stat().st_size for p in files.values()) < 5_000_000
    inter, items, users = (pd.read_csv(p) for p in files.values())
    assert list(inter.columns) == ["user_id", "item_id", "timestamp", "scenario"]
    assert list(items.columns)[:4] == ["item_id", "title", "text", "category"]
    assert {"scenario", "price_band", "year"} <= set(items.columns)
    assert list(users.columns) == ["user_id", "age_band", "region"]
    assert 100_000 <= len(inter) <= 150_000
    assert 1_500 <= len(items) <= 2_500
    assert 2_700 <= len(users) <= 3_300 and inter["user_id"].nunique() == len(users)
    assert 8 <= items["category"].nunique() <= 15
    assert sorted(inter["scenario"].unique()) == sorted(SCENARIOS)
    assert items["item_id"].is_unique and items["title"].is_unique
    assert not inter.duplicated(["user_id", "item_id"]).any()


def test_each_item_has_one_scenario_and_interactions_match_it(data):
    scen = data.items.set_index("item_id")["scenario"]
    assert data.items["item_id"].is_unique
    assert (
        data.interactions["scenario"].to_numpy() == scen.loc[data.interactions["item_id"]]
    ).all()
    # a category can live in several scenarios
    per_cat = data.items.groupby("category")["scenario"].nunique()
    assert (per_cat >= 2).all() and (per_cat == 3).sum() >= 8


def test_timestamps_cover_about_six_months(data):
    ts = data.interactions["timestamp"]
    assert ts.min() >= START_TS and ts.max() <= START_TS + SPAN_S
    assert ts.max() - ts.min() > 150 * 86_400


def test_next_episode_follows_episode_by_title(data):
    """After "Show (Ep. k)" the user's next item is "Show (Ep. k+1)" in >= 80% of cases."""
    title = data.items.set_index("item_id")["title"]
    prev, nxt, _ = _transitions(data.interactions)
    ep = re.compile(r"^(.*) \(Ep\. (\d+)\)$")
    last_ep = (
        data.items["title"]
        .str.extract(ep.pattern)
        .dropna()
        .groupby(0)[1]
        .apply(lambda s: s.astype(int).max())
    )
    follows, total = 0, 0
    for a, b in zip(title.loc[prev], title.loc[nxt], strict=True):
        m = ep.match(a)
        if not m or int(m[2]) == last_ep[m[1]]:
            continue
        total += 1
        follows += b == f"{m[1]} (Ep. {int(m[2]) + 1})"
    assert total > 1000
    assert follows / total >= 0.8


def test_planted_rules_cover_about_half_of_transitions(data):
    prev, nxt, is_last = _transitions(data.interactions)
    expected = pd.Series(data.next_item).reindex(prev).to_numpy()
    rule = expected == nxt
    has_rule = pd.notna(expected)
    assert rule[has_rule].mean() >= 0.8  # follow-up taken when one exists
    assert 0.45 <= rule.mean() <= 0.65
    assert 0.45 <= rule[is_last].mean() <= 0.65  # the loo test items are just as rich
    # follow-ups in the shop: product -> its own accessory, named after it
    title = data.items.set_index("item_id")["title"]
    shop = [(a, b) for a, b in data.next_item.items() if a.startswith("s")]
    assert len(shop) > 100
    assert all(title[b].endswith(f" for {title[a]}") for a, b in shop)


def _profiles(data) -> pd.DataFrame:
    """Per (user, scenario) category shares, for users with >= 5 interest items there."""
    frame = data.interactions.merge(data.items[["item_id", "category"]], on="item_id")
    counts = frame.groupby(["user_id", "scenario", "category"]).size().unstack(fill_value=0)
    counts = counts[counts.sum(axis=1) >= 5]
    return counts.div(counts.sum(axis=1), axis=0)


def test_interests_are_shared_across_scenarios(data):
    """Same user's category profiles in two scenarios are far closer than two random users'."""
    prof = _profiles(data)
    rng = np.random.default_rng(0)
    same, rand = [], []
    a, b = SCENARIOS[0], SCENARIOS[2]
    left = prof.xs(a, level="scenario")
    right = prof.xs(b, level="scenario")
    both = left.index.intersection(right.index)
    assert len(both) > 100
    x, y = left.loc[both].to_numpy(), right.loc[both].to_numpy()
    cos = lambda p, q: (p * q).sum(1) / np.linalg.norm(p, axis=1) / np.linalg.norm(q, axis=1)  # noqa: E731
    same = cos(x, y).mean()
    rand = cos(x, y[rng.permutation(len(y))]).mean()
    assert same > rand + 0.25
    assert same > 1.8 * rand


def test_interests_depend_on_age_band(data):
    frame = data.interactions.merge(data.items[["item_id", "category"]], on="item_id")
    frame = frame.merge(data.users, on="user_id")
    mix = pd.crosstab(frame["age_band"], frame["category"], normalize="index")
    overall = frame["category"].value_counts(normalize=True)
    distance = 0.5 * (mix - overall).abs().sum(axis=1)  # total variation per age band
    assert distance.max() > 0.15


def test_scenarios_differ_in_category_mix_and_popularity(data):
    frame = data.interactions.merge(data.items[["item_id", "category"]], on="item_id")
    mix = pd.crosstab(frame["scenario"], frame["category"], normalize="index")
    tv = [0.5 * (mix.loc[a] - mix.loc[b]).abs().sum() for a in SCENARIOS for b in SCENARIOS]
    assert max(tv) > 0.1
    assert "Crime & Mystery" not in set(data.items.query("scenario == 'shop'")["category"])


def test_popularity_has_a_long_tail(data):
    counts = data.interactions["item_id"].value_counts()
    top = counts.iloc[: len(data.items) // 10].sum()
    assert top / len(data.interactions) > 0.40
    assert counts.min() < counts.median() / 3


def test_users_are_active_in_one_to_three_scenarios(data):
    n_scen = data.interactions.groupby("user_id")["scenario"].nunique()
    shares = n_scen.value_counts(normalize=True)
    assert all(shares.get(k, 0) > 0.1 for k in (1, 2, 3))
    per = data.interactions.groupby(["user_id", "scenario"]).size()
    assert (per <= 3).mean() > 0.05  # some users barely touch a scenario


def test_item_text_uses_its_category_words(data):
    for cat, text in zip(data.items["category"], data.items["text"], strict=True):
        words = CATEGORIES[cat][1].split("|")
        assert sum(w in text for w in words) >= 2, text


def test_generation_is_deterministic_for_a_seed():
    one, two = generate(n_users=120, seed=5), generate(n_users=120, seed=5)
    for name in ("interactions", "items", "users"):
        pd.testing.assert_frame_equal(getattr(one, name), getattr(two, name))
    other = generate(n_users=120, seed=6)
    assert not one.interactions.equals(other.interactions)


def test_bad_arguments_are_refused():
    with pytest.raises(ParameterError, match="n_users"):
        generate(n_users=3)
    with pytest.raises(ParameterError, match="catalogue_scale"):
        generate(n_users=100, catalogue_scale=0)


def test_last_item_beats_bag_of_items_beats_popularity(sample_dataset):
    """On the shipped data with a loo split: transitions >> item cosine kNN >> popularity."""
    parts = split(sample_dataset, "loo")
    known = parts.known_for("test")
    x = known.csr()  # (U, I)
    test = parts.test.frame
    users, target = test["user_code"].to_numpy(), test["item_code"].to_numpy()
    seen = x[users].toarray()  # (B, I)
    pop = np.asarray(x.sum(axis=0)).ravel()
    norms = np.sqrt(pop) + 1e-9
    cosine = (x.T @ x).toarray() / norms[:, None] / norms[None, :]
    np.fill_diagonal(cosine, 0.0)
    order = known.frame.sort_values(["user_code", "timestamp"], kind="stable")
    u, i = order["user_code"].to_numpy(), order["item_code"].to_numpy()
    same = u[1:] == u[:-1]
    n = sample_dataset.n_items
    trans = sp.csr_matrix((np.ones(same.sum()), (i[:-1][same], i[1:][same])), shape=(n, n))
    last = order.groupby("user_code")["item_code"].last().reindex(users).to_numpy()
    scores = {
        "pop": np.tile(pop, (len(users), 1)),
        "knn": seen @ cosine,
        "transition": trans[last].toarray() + 1e-6 * pop / pop.max(),
    }
    ndcg = {name: _ndcg10(s, seen, target) for name, s in scores.items()}
    assert ndcg["knn"] > 1.5 * ndcg["pop"]
    assert ndcg["transition"] > 1.5 * ndcg["knn"]


def _ndcg10(scores: np.ndarray, seen: np.ndarray, target: np.ndarray) -> float:
    scores = scores.astype(float)
    scores[seen > 0] = -np.inf  # full ranking without the known items
    rank = (scores > scores[np.arange(len(target)), target][:, None]).sum(axis=1)
    return float(np.where(rank < 10, 1.0 / np.log2(rank + 2), 0.0).mean())
