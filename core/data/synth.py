"""Synthetic multi-scenario data with planted structure: the generator behind sample_data/.

Three scenarios (video_feed, shop, articles) share one latent user interest model: each user
likes 2-3 categories (drawn from age band and region), in every scenario. Items carry
sequential rules: series episodes are watched in order and products are followed by their
accessory, so the *last* item predicts the next one. See sample_data/README.md for the full
description of what is planted and which tests rely on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.synth_vocab import (
    ADJECTIVES,
    ARTICLE_KINDS,
    BRANDS,
    CATEGORIES,
    CLIP_KINDS,
    SUFFIXES,
)
from core.errors import ParameterError

SCENARIOS = ("video_feed", "shop", "articles")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
REGIONS = ("north", "south", "east", "west", "central")
START_TS = 1_735_689_600  # 2025-01-01 00:00 UTC
SPAN_S = 182 * 86_400  # about six months

# Per-scenario shape: category popularity weights are drawn per scenario, Zipf steepness,
# and the chance that a chain (next episode / accessory / next part) is followed.
ZIPF = {"video_feed": 1.3, "shop": 1.1, "articles": 1.2}
FOLLOW = {"video_feed": 0.9, "shop": 0.85, "articles": 0.9}


@dataclass(frozen=True)
class SyntheticData:
    """Generated tables plus the planted ground truth (not written to the CSVs)."""

    interactions: pd.DataFrame  # user_id, item_id, timestamp, scenario (time-ordered)
    items: pd.DataFrame  # item_id, title, text, category, scenario, price_band, year
    users: pd.DataFrame  # user_id, age_band, region
    next_item: dict[str, str] = field(default_factory=dict)  # planted successor of an item
    favourites: dict[str, list[str]] = field(default_factory=dict)  # user -> categories

    def write(self, folder: str | Path) -> dict[str, Path]:
        """Write interactions.csv, items.csv and users.csv into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name in ("interactions", "items", "users"):
            paths[name] = folder / f"{name}.csv"
            getattr(self, name).to_csv(paths[name], index=False)
        return paths


def generate(
    n_users: int = 3000,
    seed: int = 42,
    mean_interactions: float = 38.0,
    catalogue_scale: float = 1.0,
) -> SyntheticData:
    """Generate the sample data; the same arguments always give the same tables."""
    if n_users < 10:
        raise ParameterError(f"n_users was {n_users}; use at least 10 users.")
    if not 0.1 <= catalogue_scale <= 5:
        raise ParameterError(f"catalogue_scale was {catalogue_scale}; use 0.1 to 5.")
    rng = np.random.default_rng(seed)
    items, successor, entry_weight = _catalogue(rng, catalogue_scale)
    users, pref, favourites = _users(rng, n_users)
    cats = list(CATEGORIES)
    cat_of = items["category"].map({c: i for i, c in enumerate(cats)}).to_numpy()
    scen_of = items["scenario"].map({s: i for i, s in enumerate(SCENARIOS)}).to_numpy()
    rows = _simulate(rng, pref, cat_of, scen_of, successor, entry_weight, mean_interactions)
    user_idx, item_idx, ts = rows
    ids = items["item_id"].to_numpy()
    inter = pd.DataFrame(
        {
            "user_id": users["user_id"].to_numpy()[user_idx],
            "item_id": ids[item_idx],
            "timestamp": ts,
            "scenario": np.asarray(SCENARIOS)[scen_of[item_idx]],
        }
    )
    inter = inter.sort_values(["timestamp", "user_id"], kind="stable").reset_index(drop=True)
    next_item = {ids[i]: ids[j] for i, j in enumerate(successor) if j >= 0}
    fav = {users["user_id"].iat[u]: [cats[c] for c in favourites[u]] for u in range(n_users)}
    return SyntheticData(inter, items, users, next_item, fav)


def _catalogue(rng: np.random.Generator, scale: float):
    """Items of every scenario; returns the table, successor codes (-1 = none), entry weights.

    Entry weights are the Zipf popularity used when a user picks an item by interest; items
    reachable only through a chain (episode 2+, part 2+) have weight 0.
    """
    adjectives, brands, suffixes = ADJECTIVES.split("|"), BRANDS.split("|"), SUFFIXES.split("|")
    rows: list[dict] = []
    successor: list[int] = []
    weight: list[float] = []

    def add(scenario, cat, title, text, w, price="free", prev=None):
        if prev is not None:
            successor[prev] = len(rows)
        rows.append(
            dict(
                item_id=f"{scenario[0]}{len(rows) + 1}",
                title=title,
                text=text,
                category=cat,
                scenario=scenario,
                price_band=price,
                year=int(rng.integers(2015, 2026)),
            )
        )
        successor.append(-1)
        weight.append(w)
        return len(rows) - 1

    def n(base):  # unit counts scaled, at least 1
        return max(1, int(round(base * scale * rng.uniform(0.7, 1.3))))

    for cat, (desc, kw, nouns, products, accessories) in CATEGORIES.items():
        kws, titled = kw.split("|"), [k.title() for k in kw.split("|")]
        used: set[str] = set()
        # video_feed: series of 4-8 episodes + standalone clips
        for _ in range(n(7)):
            show = _fresh(rng, used, ["The {} {}"], adjectives, nouns.split("|"))
            w1, w2, w3 = rng.choice(kws, size=3, replace=False)
            prev = None
            for k in range(1, int(rng.integers(4, 9)) + 1):
                text = f"Episode {k} of {show}, a {desc} series about {w1}, {w2} and {w3}."
                w = 4.0 if k == 1 else 0.0
                prev = add("video_feed", cat, f"{show} (Ep. {k})", text, w, prev=prev)
        for _ in range(n(18)):
            title = _fresh(rng, used, ["{} {}"], titled, CLIP_KINDS.split("|"))
            w1, w2, w3 = _about(rng, kws, title)
            text = f"A short {desc} video on {w1} and {w2}, with a look at {w3}."
            add("video_feed", cat, title, text, 1.0)
        # shop: products, about 70% with their matching accessory bought right after
        for _ in range(n(30) if products else 0):
            j = int(rng.integers(len(products.split("|"))))
            product, acc = products.split("|")[j], accessories.split("|")[j]
            title = _fresh(rng, used, ["{} " + product + " {}"], brands, suffixes)
            w1, w2 = rng.choice(kws, size=2, replace=False)
            price = str(rng.choice(["budget", "mid", "premium"]))
            text = f"A {price} {desc} product: {title}, made for {w1} and {w2}."
            code = add("shop", cat, title, text, 1.0, price)
            if rng.random() < 0.8:
                text = f"{acc} for the {title}, a {desc} accessory for {w1} and {w2}."
                add("shop", cat, f"{acc} for {title}", text, 0.1, "budget", prev=code)
        # articles: multi-part guides (3-5 parts) + standalone articles
        for _ in range(n(5)):
            topic = _fresh(rng, used, ["The {} Guide to {}"], adjectives, titled)
            w1, w2, w3 = _about(rng, kws, topic)
            prev = None
            for k in range(1, int(rng.integers(3, 6)) + 1):
                text = f"Part {k} of a {desc} guide covering {w1}, {w2} and {w3}."
                w = 3.0 if k == 1 else 0.0
                prev = add("articles", cat, f"{topic}, Part {k}", text, w, prev=prev)
        for _ in range(n(28)):
            title = _fresh(rng, used, ARTICLE_KINDS.split("|"), titled)
            w1, w2, w3 = _about(rng, kws, title)
            text = f"An article about {w1}, {w2} and {w3} for {desc} readers."
            add("articles", cat, title, text, 1.0)
    table = pd.DataFrame(rows)
    return table, np.asarray(successor), _zipf_weights(rng, table, np.asarray(weight))


def _about(rng, keywords: list[str], title: str) -> list[str]:
    """Three keywords for an item's text, starting with the one its title names."""
    named = [k for k in keywords if k.title() in title][:1]
    others = [k for k in keywords if k not in named]
    return named + list(rng.choice(others, size=3 - len(named), replace=False))


def _fresh(rng, used: set[str], templates: list[str], *words: list[str]) -> str:
    """A title from a random template and words, not used yet in this category."""
    for attempt in range(60):
        title = str(rng.choice(templates)).format(*(rng.choice(w) for w in words)).strip()
        if attempt >= 50:  # catalogue larger than the vocabulary: number the duplicate
            title = f"{title} {len(used) + 1}"
        if title not in used:
            used.add(title)
            return title
    raise AssertionError("unreachable: numbered titles are unique")


def _zipf_weights(rng: np.random.Generator, items: pd.DataFrame, mult: np.ndarray) -> np.ndarray:
    """Entry weight = kind multiplier / rank^a, with a random rank within (scenario, category)."""
    out = np.zeros(len(items))
    for (scen, _), idx in items.groupby(["scenario", "category"], sort=True).indices.items():
        idx = idx[mult[idx] > 0]
        ranks = rng.permutation(len(idx)) + 1
        out[idx] = mult[idx] / ranks ** ZIPF[scen]
    return out


def _users(rng: np.random.Generator, n_users: int):
    """Users with age band and region; interests are 2-3 favourite categories.

    Favourites are drawn (Gumbel top-k) from logits = age effect + region effect + noise, so
    they correlate with the attributes. Returns the table, preferences (U, C) and favourites.
    """
    n_cat = len(CATEGORIES)
    age = rng.integers(0, len(AGE_BANDS), n_users)
    region = rng.integers(0, len(REGIONS), n_users)
    age_eff = rng.normal(0.0, 1.2, (len(AGE_BANDS), n_cat))
    region_eff = rng.normal(0.0, 0.8, (len(REGIONS), n_cat))
    logits = age_eff[age] + region_eff[region] + rng.normal(0.0, 0.8, (n_users, n_cat))
    k = rng.integers(2, 4, n_users)  # 2 or 3 favourites
    order = np.argsort(-(logits + rng.gumbel(size=logits.shape)), axis=1)
    pref = np.zeros((n_users, n_cat))
    favourites = []
    for u in range(n_users):
        fav = order[u, : k[u]]
        pref[u, fav] = 0.85 * rng.dirichlet(np.full(k[u], 2.0))
        favourites.append(fav.tolist())
    soft = np.exp(logits - logits.max(axis=1, keepdims=True))
    pref += 0.15 * soft / soft.sum(axis=1, keepdims=True)  # a little exploration
    users = pd.DataFrame(
        {
            "user_id": [f"u{u + 1}" for u in range(n_users)],
            "age_band": np.asarray(AGE_BANDS)[age],
            "region": np.asarray(REGIONS)[region],
        }
    )
    return users, pref, favourites


def _simulate(rng, pref, cat_of, scen_of, successor, entry_weight, mean_n):
    """Each user's timeline: chain steps (next episode/accessory/part) or interest draws.

    Returns (user index, item index, timestamp) arrays.
    """
    n_users, n_cat = pref.shape
    n_scen = len(SCENARIOS)
    groups = {}  # (scenario, category) -> (item codes, cumulative weights)
    avail = np.zeros((n_scen, n_cat))
    for s in range(n_scen):
        for c in range(n_cat):
            idx = np.flatnonzero((scen_of == s) & (cat_of == c) & (entry_weight > 0))
            if len(idx):
                cdf = np.cumsum(entry_weight[idx])
                groups[s, c] = (idx, cdf / cdf[-1])
                avail[s, c] = 1.0
    # scenario-specific category popularity: interests are shared, the mix is not
    mix = rng.dirichlet(np.full(n_cat, 2.0), n_scen) * avail
    mix /= mix.sum(axis=1, keepdims=True)
    cat_p = (0.8 * pref[:, None, :] + 0.2 * mix[None]) * avail[None]  # (U, S, C)
    cat_cdf = np.cumsum(cat_p / cat_p.sum(axis=2, keepdims=True), axis=2)
    follow = np.array([FOLLOW[s] for s in SCENARIOS])
    sizes = np.clip(np.round(rng.lognormal(np.log(mean_n * 0.75), 0.75, n_users)), 5, 400)
    users, items, stamps = [], [], []
    for u in range(n_users):
        n_active = rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3])
        active = rng.choice(n_scen, size=n_active, replace=False, p=[0.45, 0.3, 0.25])
        scen_w = np.zeros(n_scen)
        scen_w[active] = 0.1 + rng.dirichlet(np.full(n_active, 1.0))
        scen_w /= scen_w.sum()
        scen_cdf = np.cumsum(scen_w)
        s = min(int(np.searchsorted(scen_cdf, rng.random())), n_scen - 1)
        seen: set[int] = set()
        seq, gaps = [], []
        prev = -1
        while len(seq) < sizes[u]:
            nxt = successor[prev] if prev >= 0 else -1
            if nxt >= 0 and nxt not in seen and rng.random() < follow[scen_of[prev]]:
                item, gap = int(nxt), rng.exponential(900.0)
            else:
                if rng.random() < 0.5:  # switch scenario now and then
                    s = min(int(np.searchsorted(scen_cdf, rng.random())), n_scen - 1)
                item = _draw(rng, groups, cat_cdf[u, s], s, seen)
                if item < 0:
                    break
                gap = rng.exponential(86_400.0)
            seq.append(item)
            gaps.append(gap)
            seen.add(item)
            prev = item
        offset = rng.uniform(0, 0.5) * SPAN_S
        span = rng.uniform(0.3, 1.0) * (SPAN_S - offset)
        clock = np.cumsum(gaps)
        clock = np.floor(clock / clock[-1] * span).astype(np.int64) + np.arange(len(seq))
        users.append(np.full(len(seq), u))
        items.append(np.asarray(seq))
        stamps.append(START_TS + int(offset) + clock)
    return np.concatenate(users), np.concatenate(items), np.concatenate(stamps)


def _draw(rng, groups, cdf_c, s, seen) -> int:
    """An unseen item of scenario `s` by interest (category) then popularity; -1 if none."""
    for _ in range(30):
        c = min(int(np.searchsorted(cdf_c, rng.random())), len(cdf_c) - 1)
        if (s, c) not in groups:
            continue
        idx, cdf = groups[s, c]
        item = int(idx[min(int(np.searchsorted(cdf, rng.random())), len(idx) - 1)])
        if item not in seen:
            return item
    return -1
