"""SHAP explanations: additivity for every model, closed form = shap's exact explainer,
readable labels, context features, global importance and the run-level entry point."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.data.dataset import Dataset
from core.data.split import split
from core.explain.explainer import explain, global_importance
from core.explain.features import build_features, verb_for
from core.models import available, make_model, model_class
from core.models._foldin import ridge_fold_in
from core.models.ease import EASE
from core.runs.pipeline import LoadedRun, new_run, train_run
from core.runs.queries import explain_run
from core.runs.store import RunStore

#: fast settings per model: behaviour, not accuracy, is under test
FAST = {
    "bpr": {"epochs": 2, "dim": 16},
    "neumf": {"epochs": 2, "dim": 16, "layers": 2},
    "lightgcn": {"epochs": 2, "dim": 16},
    "sasrec": {"epochs": 2, "dim": 16, "max_len": 8, "dropout": 0.0},
}


def loaded_run(dataset: Dataset, name: str, run_id: str | None = None) -> LoadedRun:
    """A fitted model whose history is train+valid, as `load_run` gives it."""
    parts = split(dataset, "loo", 42)
    cls = model_class(name)
    quick = {"epochs": 2} if cls.trains_with_loop and "epochs" in cls.default_params() else {}
    params = FAST.get(name, quick)
    if "device_choice" in cls.default_params():
        params = {**params, "device_choice": "cpu"}
    model = make_model(name, **params).fit(parts.train, parts.valid)
    model.set_history(parts.known_for("test"))
    return LoadedRun({"run_id": run_id, "model": name}, dataset, parts, model)


@pytest.fixture(scope="module")
def runs(planted_dataset) -> dict[str, LoadedRun]:
    return {}


def get(runs: dict, dataset: Dataset, name: str) -> LoadedRun:
    if name not in runs:
        runs[name] = loaded_run(dataset, name)
    return runs[name]


@pytest.mark.parametrize("name", available())
@pytest.mark.parametrize("max_history", [4, 50])
def test_base_plus_contributions_equals_score(runs, planted_dataset, name, max_history):
    """Additivity for every model: exact explainer (5 features) and permutation/closed form."""
    lr = get(runs, planted_dataset, name)
    top, _ = lr.model.recommend([3, 70], 2)
    for user, item in [(3, int(top[0, 0])), (70, int(top[1, 1])), (70, 5)]:
        exp = explain(lr, user, item, max_history=max_history)
        score = float(lr.model.score([user], [item])[0, 0])
        assert exp.score == pytest.approx(score, rel=1e-6, abs=1e-6)
        assert exp.total == pytest.approx(score, rel=1e-4, abs=1e-5)
        assert not exp.notes
        n_hist = len(
            np.unique(lr.split.known_for("test").frame.query("user_code == @user").item_code)
        )
        if exp.method == "closed_form":  # one feature per item; only small ones grouped
            single = exp.contributions["item_code"].notna().sum()
            assert single >= min(n_hist, max_history)
            other = exp.contributions.query("feature == 'history:other'")
            assert single + int(other["label"].str.extract(r"^(\d+)")[0].astype(int).sum()) == (
                n_hist
            )
        else:
            assert len(exp.contributions) == min(n_hist, max_history) + (n_hist > max_history)


def test_every_model_can_score_a_masked_history():
    missing = [n for n in available() if not hasattr(model_class(n), "score_histories")]
    assert not missing, f"models without score_histories: {missing}"
    assert {"pop", "itemknn", "ease", "hybrid", "multiscenario"} <= set(available())


#: the context models on a slice of the sample data (attributes, scenarios, item text)
CONTEXT_FAST = {
    "hybrid": {"epochs": 1, "dim": 16, "max_len": 8, "device_choice": "cpu"},
    "multiscenario": {"epochs": 1, "dim": 16, "device_choice": "cpu"},
}


@pytest.fixture(scope="module")
def context_runs() -> dict[str, LoadedRun]:
    from tests.workspace_runs import small_sample

    ds = small_sample()
    parts = split(ds, "loo", 42)
    out = {}
    for name, params in CONTEXT_FAST.items():
        model = make_model(name, **params).fit(parts.train, parts.valid)
        model.set_history(parts.known_for("test"))
        out[name] = LoadedRun({"run_id": None, "model": name}, ds, parts, model)
    return out


@pytest.mark.parametrize("name", list(CONTEXT_FAST))
def test_context_features_add_up_and_read_as_the_data(context_runs, name):
    lr = context_runs[name]
    ds, model = lr.dataset, lr.model
    top, _ = model.recommend([3, 40], 2)
    cold = int(np.flatnonzero(np.bincount(lr.split.train.items, minlength=ds.n_items) == 0)[0])
    for user, item, max_history in [
        (3, int(top[0, 0]), 50),
        (40, int(top[1, 1]), 4),
        (40, cold, 8),
    ]:
        exp = explain(lr, user, item, max_history=max_history)
        assert exp.total == pytest.approx(exp.score, rel=1e-4, abs=1e-5)
        assert not exp.notes
        labels = exp.contributions.set_index("feature")["label"]
        if name == "hybrid":
            assert model.uses_text_
            title = ds.item_titles()[item]
            assert labels["item:text"] == f'item text: "{title}"'
            assert labels["item:category"] == f"item category: {ds.items['category'].iloc[item]}"
            assert labels["user:age_band"] == f"user age_band: {ds.users['age_band'].iloc[user]}"
        else:
            recent = lr.split.known_for("test").frame.query("user_code == @user")
            scen = int(recent.sort_values("timestamp")["scenario_code"].iloc[-1])
            assert labels["scenario"] == f"scenario: {ds.scenarios[scen]}"
            assert exp.contributions.set_index("feature").loc["scenario", "kind"] == "scenario"


def test_masked_scenario_is_the_mean_over_scenarios(context_runs):
    lr = context_runs["multiscenario"]
    model, user, item = lr.model, 12, 30
    events = build_features(lr.dataset, lr.split.known_for("test"), user, 50).events
    ((name, present, baseline, _),) = model.explain_context(user, item)
    both = model.score_histories(
        [events, events], [item], user, context=[{name: present}, {name: baseline}]
    )[:, 0]
    by_scenario = [
        float(model.score([user], [item], scenario=s)[0, 0]) for s in range(model.n_scenarios_)
    ]
    assert both[0] == pytest.approx(float(model.score([user], [item])[0, 0]), abs=1e-5)
    assert both[1] == pytest.approx(float(np.mean(by_scenario)), abs=1e-5)


def test_ease_closed_form_equals_shap_exact_and_weights(runs, planted_dataset):
    lr = get(runs, planted_dataset, "ease")
    user, item = 10, 12
    closed = explain(lr, user, item, max_history=7, method="closed_form", group=False)
    exact = explain(lr, user, item, max_history=7, method="exact")
    assert closed.method == "closed_form" and exact.method == "exact"
    a = closed.contributions.set_index("feature")["value"]
    b = exact.contributions.query("feature != 'history:older'").set_index("feature")["value"]
    b = b.reindex(a.index)
    assert closed.base_value == pytest.approx(0.0, abs=1e-7)
    assert exact.base_value == pytest.approx(0.0, abs=1e-6)
    # each single-item feature is that item's weight W[i, item] (the EASE formula)
    weights = lr.model.weights_[:, item].cpu().numpy()
    single = closed.contributions.dropna(subset=["item_code"])
    for row in single.itertuples():
        assert row.value == pytest.approx(float(weights[int(row.item_code)]), abs=1e-6)
    # closed form: one feature per history item; the items the exact explainer shows one by
    # one (the 7 most recent) have the same value in both
    history = np.unique(lr.model.history_[user].indices)
    assert sorted(single.item_code.astype(int)) == history.tolist()
    both = b.dropna().index
    assert len(both) == 7
    np.testing.assert_allclose(a[both].to_numpy(), b[both].to_numpy(), atol=1e-5)


@pytest.mark.parametrize("name", ["ease", "itemknn", "bpr", "lightgcn"])
def test_removing_the_top_positive_item_lowers_the_score(runs, planted_dataset, name):
    lr = get(runs, planted_dataset, name)
    top, _ = lr.model.recommend([20], 1)
    item = int(top[0, 0])
    exp = explain(lr, 20, item)
    best = exp.contributions.query("kind == 'history'").sort_values("value").iloc[-1]
    assert best.value > 0 and best.item_code is not None
    events = build_features(lr.dataset, lr.split.known_for("test"), 20, 50).events
    without = events[events != int(best.item_code)]
    full, reduced = lr.model.score_histories([events, without], np.array([item]), 20)[:, 0]
    assert full == pytest.approx(exp.score, rel=1e-5)
    assert reduced < full
    if name in ("ease", "itemknn"):  # additive: the drop is exactly the SHAP value
        assert full - reduced == pytest.approx(best.value, rel=1e-4)


def test_popularity_explanation_is_all_zero(runs, planted_dataset):
    lr = get(runs, planted_dataset, "pop")
    exp = explain(lr, 5, 0)
    assert exp.base_value == pytest.approx(exp.score)
    assert np.allclose(exp.contributions["value"], 0.0)
    assert exp.score == pytest.approx(float((lr.split.train.items == 0).sum()))
    assert exp.personal is False  # issue 16 point 9: said in a sentence, not zero bars
    assert explain(get(runs, planted_dataset, "ease"), 5, 0).personal is True


def test_labels_use_titles_scenario_verbs_and_ages():
    day = 86400
    inter = pd.DataFrame(
        {
            "user_id": ["u1"] * 3 + ["u2"] * 3,
            "item_id": ["m1", "b1", "m2", "m1", "m2", "b1"],
            "timestamp": [1_700_000_000, 1_700_000_000 + day, 1_700_000_000 + 4 * day] * 2,
            "scenario": ["video_feed", "shop", "video_feed"] * 2,
        }
    )
    items = pd.DataFrame({"item_id": ["m1", "m2", "b1"], "title": ["Alien", "Dune", "Kettle"]})
    ds = Dataset.from_frames("labels", inter, items)
    feats = build_features(ds, ds.all(), int(ds.user_codes(["u1"])[0]), 50)
    labels = feats.table.set_index("feature")["label"]
    assert labels["history:m2"] == 'watched "Dune" (latest)'
    assert labels["history:b1"] == 'bought "Kettle" (3 days before)'
    assert labels["history:m1"] == 'watched "Alien" (4 days before)'
    assert list(feats.table["position"]) == [0, 1, 2]
    assert verb_for("articles") == "read" and verb_for("misc") == "interacted with"
    short = build_features(ds, ds.all(), 0, 1)
    assert list(short.table["feature"]) == ["history:m2", "history:older"]
    assert short.table["label"].iloc[1] == "2 older items in the history"


class _ContextEASE(EASE):
    """EASE plus a declared user attribute worth exactly +1 when present (a test double)."""

    def explain_context(self, user_code, item_code):
        return [("user:region", "north", "unknown")]

    def score_histories(self, histories, item_codes, user_code, context=None):
        base = super().score_histories(histories, item_codes, user_code)
        if context is None:  # scoring outside an explanation: the user's real attributes
            return base + 1.0
        bonus = np.array([1.0 if c["user:region"] == "north" else 0.0 for c in context])
        return base + bonus[:, None]

    def score(self, user_codes, item_codes=None):
        return super().score(user_codes, item_codes) + 1.0


def test_model_declared_context_features_get_shap_values(planted_dataset):
    parts = split(planted_dataset, "loo", 42)
    model = _ContextEASE().fit(parts.train)
    model.set_history(parts.known_for("test"))
    lr = LoadedRun({"run_id": None, "model": "ease"}, planted_dataset, parts, model)
    for max_history in (4, 50):
        exp = explain(lr, 7, 3, max_history=max_history)
        row = exp.contributions.set_index("feature").loc["user:region"]
        assert row["kind"] == "user" and row["label"] == "user region: north"
        assert row["value"] == pytest.approx(1.0, abs=1e-6)
        assert exp.total == pytest.approx(exp.score, rel=1e-5)


def test_ridge_fold_in_matches_normal_equations():
    rng = np.random.default_rng(0)
    import torch

    vectors = torch.from_numpy(rng.normal(size=(6, 3)))
    got = ridge_fold_in(vectors, [np.array([0, 2, 5]), np.array([], dtype=np.int64)], reg=0.5)
    v = vectors.numpy()[[0, 2, 5]]
    want = np.linalg.solve(v.T @ v + 0.5 * np.eye(3), v.T @ np.ones(3))
    np.testing.assert_allclose(got[0].numpy(), want, atol=1e-10)
    np.testing.assert_allclose(got[1].numpy(), 0.0)


def test_global_importance_groups_and_shares(runs, planted_dataset):
    lr = get(runs, planted_dataset, "ease")
    table = global_importance(lr, n_users=6, seed=1)
    pos = table[table.group_kind == "position"]
    assert set(pos.group) <= {"most recent", "2-5 back", "6-20 back", "older"}
    assert pos["share"].sum() == pytest.approx(1.0)
    assert (table["n_explanations"] == 6).all()
    # hand check: the position groups add up to the mean total |SHAP| per explanation, and
    # "most recent" is the mean |SHAP| of each explanation's newest history item
    known = lr.split.known_for("test")
    active = np.flatnonzero(np.bincount(known.users, minlength=planted_dataset.n_users) > 0)
    users = np.sort(np.random.default_rng(1).choice(active, size=6, replace=False))
    top, _ = lr.model.recommend(users, 1)
    exps = [explain(lr, int(u), int(i)) for u, i in zip(users, top[:, 0], strict=True)]
    totals = [e.contributions["value"].abs().sum() for e in exps]
    assert pos["mean_abs_shap"].sum() == pytest.approx(float(np.mean(totals)), rel=1e-9)
    newest = [e.contributions.query("kind == 'history' and position == 0") for e in exps]
    assert all(len(n) == 1 for n in newest)
    recent = pos.set_index("group").loc["most recent", "mean_abs_shap"]
    want = np.mean([abs(n["value"].iloc[0]) for n in newest])
    assert want > 0 and recent == pytest.approx(want, rel=1e-9)


def test_explain_run_from_the_store_and_json_contract(home, planted_dataset):
    planted_dataset.save(home)
    store = RunStore(home)
    run_id = new_run(store, "planted", "ease")
    train_run(store, run_id)
    exp = explain_run(store, run_id, "u3", "i7")
    doc = exp.to_json()
    assert {"user_id", "item_id", "score", "base_value", "contributions"} <= set(doc)
    assert doc["user_id"] == "u3" and doc["item_id"] == "i7"
    total = doc["base_value"] + sum(c["value"] for c in doc["contributions"])
    assert total == pytest.approx(doc["score"], rel=1e-4, abs=1e-6)
    assert all({"feature", "value"} <= set(c) for c in doc["contributions"])
    assert explain_run(store, run_id, "u3", "i7") is exp  # cached per (run, user, item)
    with pytest.raises(Exception, match="not in dataset"):
        explain_run(store, run_id, "nobody", "i7")


def test_global_importance_by_category_with_older_items(sample_dataset):
    """Regression: the grouped older feature has no item code (None, never NaN)."""
    lr = loaded_run(sample_dataset, "ease")
    exp = explain(lr, 0, 1, max_history=3, method="permutation")  # recency features
    older = exp.contributions.query("feature == 'history:older'").iloc[0]
    assert older["item_code"] is None
    assert all(isinstance(c, int) for c in exp.contributions["item_code"].dropna())
    table = global_importance(lr, n_users=3, seed=0, max_history=3)
    cats = table[table.group_kind == "category"]
    assert len(cats) > 0 and cats["share"].sum() == pytest.approx(1.0)
    assert set(cats.group) <= set(sample_dataset.items["category"].astype(str))
    assert "older" in set(table[table.group_kind == "position"].group)


def test_group_small_keeps_the_large_items_and_groups_only_a_small_rest():
    """Issue 16 point 7: grouped history items must carry < SMALL_SHARE of Σ|value| together."""
    from core.explain.features import SMALL_SHARE, group_small

    n = 40
    table = pd.DataFrame(
        {
            "feature": [f"history:i{j}" for j in range(n)],
            "kind": "history",
            "label": [f'watched "i{j}"' for j in range(n)],
            "item_code": pd.Series(list(range(n)), dtype=object),
            "position": pd.Series(list(range(n)), dtype=object),
        }
    )
    values = np.r_[[1.0, -0.5, 0.25], np.full(n - 3, 0.001)]  # 37 tiny ones: 2.1% of the total
    out, got = group_small(table, values, keep=2)
    assert len(out) == 4 and got.sum() == pytest.approx(values.sum())
    assert out["feature"].tolist()[:3] == ["history:i0", "history:i1", "history:i2"]
    other = out.iloc[3]
    assert other["feature"] == "history:other" and other["item_code"] is None
    assert other["label"].startswith("37 other items in the history")
    assert got[3] == pytest.approx(0.037) and 0.037 / np.abs(values).sum() < SMALL_SHARE
    # a rest that is not small stays item by item: nothing is grouped
    flat = np.full(n, 0.1)  # each carries 2.5% of the total: over a 2% share
    out, got = group_small(table, flat, keep=5, share=0.02)
    assert len(out) == n and "history:other" not in set(out["feature"])
    out, got = group_small(table, np.r_[flat[:-1], 0.0], keep=5, share=0.02)  # the 0 alone
    assert out["label"].iloc[-1].startswith("1 other item in the history")


def test_ease_long_history_names_the_items_that_carry_the_score():
    """Issue 16 point 7: on ML-100k-like data a user with 250 items got one lumped feature
    ('251 older items', +0.521 of a 0.518 score); now the largest contribution is named."""
    rng = np.random.default_rng(3)
    n_items = 400
    pop = rng.zipf(1.3, n_items).astype(float)
    pop /= pop.sum()
    rows = []
    for user in range(200):
        size = 250 if user == 0 else int(rng.integers(20, 80))
        items = rng.choice(n_items, size=size, replace=False, p=pop)
        rows += [(f"u{user}", f"i{i}", t) for t, i in enumerate(items)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    lr = loaded_run(Dataset.from_frames("ml-like", frame), "ease")
    user = int(lr.dataset.user_codes(["u0"])[0])
    top, _ = lr.model.recommend([user], 1)
    item = int(top[0, 0])
    exp = explain(lr, user, item, max_history=20)
    table = exp.contributions
    assert exp.method == "closed_form"
    assert exp.total == pytest.approx(exp.score, abs=1e-5)
    weights = lr.model.weights_[:, item].cpu().numpy()
    history = np.unique(lr.model.history_[user].indices)
    assert len(history) >= 240
    biggest = int(history[np.argmax(np.abs(weights[history]))])
    named = table.dropna(subset=["item_code"])
    assert biggest in set(named["item_code"].astype(int))
    first = table.iloc[0]  # the table is in |value| order: the largest item leads, by name
    assert first["item_code"] == biggest and lr.dataset.item_titles()[biggest] in first["label"]
    assert first["value"] == pytest.approx(float(weights[biggest]), abs=1e-6)
    assert len(named) >= 20
    grouped = table.query("feature == 'history:other'")["value"].abs().sum()
    assert grouped < 0.05 * table["value"].abs().sum()
    assert "history:older" not in set(table["feature"])
