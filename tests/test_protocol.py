"""The one behaviour suite every registered model runs (a model joins by being present).

Data with a known answer (`planted_dataset`): two user groups, each likes its own item block.
Each model must recover that structure, beat popularity, score batches like single users,
exclude seen items, survive save -> load, and follow the parameter and not-fitted rules; the
lists it stores are the lists the evaluator scored, and its metrics do not depend on the
file's row order or on the ids' names (issue 10, item 8).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from core.data.dataset import Dataset
from core.data.split import Split, split
from core.errors import NotFittedError, ParameterError
from core.eval.evaluate import evaluate
from core.models import available, make_model, model_class
from core.protocols import ExplainsHistory, Recommender
from core.runs.pipeline import RECS_K, _save_tables

MODELS = available()
#: neural models train briefly here; the suite checks behaviour, not peak accuracy
NEURAL_EPOCHS = 20


def suite_params(name: str) -> dict:
    """Constructor arguments used for `name` in this suite.

    A model class may declare `SUITE_PARAMS` (a dict, e.g. {"epochs": 50}) to train quickly
    yet well enough on the planted data; otherwise neural models get `NEURAL_EPOCHS` epochs
    and the others their defaults.
    """
    cls = model_class(name)
    declared = getattr(cls, "SUITE_PARAMS", None)
    if declared is not None:
        return dict(declared)
    if cls.trains_with_loop and "epochs" in cls.default_params():
        return {"epochs": NEURAL_EPOCHS}
    return {}


@pytest.fixture(scope="module")
def planted_split(planted_dataset: Dataset) -> Split:
    """Leave-last-out split of the planted data whose held-out items are block items.

    The fixture's popular 'noise' items come first in each user's timeline, so the test
    item is the user's last block item (timestamp 11), a test of structure, not popularity.
    """
    parts = split(planted_dataset, "loo", seed=42)
    assert (parts.test.frame["timestamp"] == 11).all()
    return parts


@pytest.fixture(scope="module", params=MODELS)
def fitted(request, planted_split: Split):
    """(name, model) fitted once per model on the planted training part."""
    name = request.param
    model = make_model(name, **suite_params(name))
    assert model.fit(planted_split.train) is model, "fit must return self"
    return name, model


@pytest.fixture(scope="module")
def pop_ndcg(planted_split: Split) -> float:
    pop = make_model("pop").fit(planted_split.train)
    return evaluate(pop, planted_split, part="test").metrics["ndcg@10"]


def _blocks(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Item codes of block 0 (i0..i29) and block 1 (i30..i59)."""
    first = dataset.item_codes([f"i{j}" for j in range(30)])
    second = dataset.item_codes([f"i{j}" for j in range(30, 60)])
    return first, second


def test_recovers_planted_blocks(fitted, planted_split: Split) -> None:
    name, model = fitted
    if name == "pop":
        pytest.skip("popularity ignores the user by design")
    dataset = planted_split.train.dataset
    model.set_history(planted_split.train)
    users = dataset.user_codes([f"u{u}" for u in range(120)])
    scores = model.score(users).float().cpu().numpy()  # (120, n_items)
    seen = planted_split.train.csr()[users].toarray() > 0
    first, second = _blocks(dataset)
    failures = []
    for row, user in enumerate(range(120)):
        own, other = (first, second) if user < 60 else (second, first)
        own_unseen = own[~seen[row, own]]
        other_unseen = other[~seen[row, other]]
        if scores[row, own_unseen].mean() <= scores[row, other_unseen].mean():
            failures.append(user)
    assert failures == [], f"{name}: own block not preferred for users {failures[:10]}"


def test_beats_popularity(fitted, planted_split: Split, pop_ndcg: float) -> None:
    name, model = fitted
    if name == "pop":
        pytest.skip("popularity is the reference")
    ndcg = evaluate(model, planted_split, part="test").metrics["ndcg@10"]
    assert ndcg > pop_ndcg, f"{name}: ndcg@10 {ndcg:.4f} does not beat pop {pop_ndcg:.4f}"


def test_batch_equals_one_by_one(fitted, planted_split: Split) -> None:
    name, model = fitted
    model.set_history(planted_split.known_for("test"))
    users = np.array([0, 5, 61, 119, 5])
    items = np.array([3, 40, 0, 59])
    with torch.inference_mode():
        batch = model.score(users).float().cpu()  # (5, n_items)
        single = torch.cat([model.score([u]).float().cpu() for u in users])
        subset = model.score(users, items).float().cpu()  # (5, 4)
    assert batch.shape == (len(users), planted_split.train.n_items)
    torch.testing.assert_close(batch, single, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(subset, batch[:, items], rtol=1e-4, atol=1e-5)


def test_recommend_excludes_seen_and_sorts(fitted, planted_split: Split) -> None:
    name, model = fitted
    known = planted_split.known_for("test")
    model.set_history(known)
    users = np.arange(0, 120, 7)
    codes, values = model.recommend(users, k=10)
    assert codes.shape == values.shape == (len(users), 10)
    seen = known.csr()[users].toarray() > 0
    assert not seen[np.arange(len(users))[:, None], codes].any(), f"{name} recommended seen items"
    assert (np.diff(values, axis=1) <= 1e-6).all(), f"{name}: scores not sorted"
    assert all(len(set(row)) == 10 for row in codes.tolist())
    with torch.inference_mode():
        full = model.score(users).float().cpu().numpy()
    np.testing.assert_allclose(np.take_along_axis(full, codes, 1), values, rtol=1e-4, atol=1e-5)
    # exclude_seen=False ranks over everything: the top score can only grow
    _, all_values = model.recommend(users, k=10, exclude_seen=False)
    assert (all_values[:, 0] >= values[:, 0] - 1e-6).all()


def test_save_load_keeps_scores(fitted, planted_split: Split, tmp_path) -> None:
    name, model = fitted
    known = planted_split.known_for("test")
    model.set_history(known)
    model.save(tmp_path / name)
    config = json.loads((tmp_path / name / "config.json").read_text())
    assert config["params"] == model.get_params()
    loaded = model_class(name).load(tmp_path / name)
    loaded.set_history(known)
    users = np.arange(120)
    with torch.inference_mode():
        before = model.score(users).float().cpu()
        after = loaded.score(users).float().cpu()
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
    assert np.array_equal(loaded.recommend(users, k=10)[0], model.recommend(users, k=10)[0])


def test_protocol_surface_and_embeddings(fitted, planted_split: Split) -> None:
    name, model = fitted
    assert isinstance(model, Recommender)
    assert model.name == name
    assert set(model.PARAM_HELP) == set(model_class(name).default_params()), "help per param"
    emb = model.item_embeddings()
    if emb is not None:  # what Faiss indexes: one finite row per item
        assert isinstance(emb, np.ndarray) and emb.ndim == 2
        assert emb.shape[0] == planted_split.train.n_items and np.isfinite(emb).all()


def test_params_round_trip(fitted) -> None:
    name, model = fitted
    params = model.get_params()
    assert set(params) == set(model_class(name).default_params())
    json.dumps(params)  # stored as JSON beside the weights: must serialise
    rebuilt = make_model(name, **params)
    assert rebuilt.get_params() == params
    for key, value in suite_params(name).items():
        assert params[key] == value, f"{name} changed parameter {key}"


@pytest.mark.parametrize("name", MODELS)
def test_unknown_parameter_is_refused(name: str) -> None:
    with pytest.raises(ParameterError, match="no_such_param"):
        make_model(name, no_such_param=1)


@pytest.mark.parametrize("name", MODELS)
def test_not_fitted_error(name: str, tmp_path) -> None:
    model = make_model(name, **suite_params(name))
    with pytest.raises(NotFittedError, match=type(model).__name__):
        model.score([0])
    with pytest.raises(NotFittedError):
        model.recommend([0], k=5)
    with pytest.raises(NotFittedError):
        model.save(tmp_path / name)


def test_stored_lists_are_the_evaluated_lists(fitted, planted_split: Split, tmp_path) -> None:
    """recommend, recs.parquet and the evaluator rank through one routine with one tie seed;
    recs.parquet takes the scored users' lists from the evaluation pass (`list_length`) and
    ranks only the others, and either way holds what `recommend` returns for every user."""
    name, model = fitted
    result = evaluate(model, planted_split, part="test", beyond=False, list_length=RECS_K)
    plain = evaluate(model, planted_split, part="test", beyond=False)
    assert plain.metrics == result.metrics  # a longer list changes no metric
    users = result.per_user["user_code"].to_numpy()
    for k in (5, 10, 20):
        listed, _ = model.recommend(users, k, seed=planted_split.seed)
        np.testing.assert_array_equal(listed, result.top_items[:, :k], err_msg=f"{name} @{k}")
    dataset = planted_split.train.dataset
    everyone = np.arange(dataset.n_users)
    k = min(RECS_K, dataset.n_items)
    want_items, want_scores = model.recommend(everyone, k, seed=planted_split.seed)
    for stored_from in (result, plain):  # with the evaluated lists, and without (rank all)
        _save_tables(tmp_path, dataset, model, stored_from, seed=planted_split.seed)
        recs = pd.read_parquet(tmp_path / "recs.parquet")
        assert (recs.groupby("user_code")["rank"].diff().dropna() == 1).all()  # in rank order
        for user in everyone:
            mine = recs[recs["user_code"] == user]
            real = want_items[user] >= 0
            assert mine["item_code"].tolist() == want_items[user][real].tolist(), f"{name} u{user}"
            np.testing.assert_allclose(mine["score"], want_scores[user][real], rtol=1e-6)


#: loop-trained models train this briefly in the invariance test: it compares two fits
INVARIANCE_EPOCHS = 2


def _ids_frame(dataset: Dataset) -> pd.DataFrame:
    """The interactions with the dataset's ids in place of codes, in stored row order."""
    frame = dataset.interactions
    return pd.DataFrame(
        {
            "user_id": dataset.user_ids[frame["user_code"].to_numpy()],
            "item_id": dataset.item_ids[frame["item_code"].to_numpy()],
            "timestamp": frame["timestamp"].to_numpy(),
        }
    )


def _fit_evaluate(name: str, dataset: Dataset) -> tuple[dict, dict]:
    """Test metrics and {user id: [(item id, score), ...] top 20} of a quick fit on `dataset`."""
    params = suite_params(name)
    if model_class(name).trains_with_loop and "epochs" in model_class(name).default_params():
        params["epochs"] = INVARIANCE_EPOCHS
    parts = split(dataset, "loo", seed=42)
    model = make_model(name, **params).fit(parts.train)
    result = evaluate(model, parts, part="test", beyond=False)
    users = result.per_user["user_code"].to_numpy()
    items, scores = model.recommend(users, 20, seed=parts.seed)
    lists = {
        dataset.user_ids[u]: list(zip(dataset.item_ids[row].tolist(), s.tolist(), strict=True))
        for u, row, s in zip(users, items, scores, strict=True)
    }
    return result.metrics, lists


@pytest.mark.parametrize("name", MODELS)
def test_metrics_do_not_depend_on_row_order_or_item_names(name: str, planted_dataset) -> None:
    """Shuffled rows, and items renamed in a way that keeps their order, give the same results.

    Codes follow the ids in natural order (`core.data.dataset.canonical_order`), not the
    order rows came in, so the shuffled file gets the same codes — no item or user table
    needed — and so does a renaming that keeps the ids' order ('i7' -> 'item-007'). Every
    model must then give the same numbers; this fails if a split, a model or the ranking
    reads the row order or the names. Closed-form models must agree to 1e-9, item for item.
    Loop-trained ones are held to their float noise: two fits on the same data already
    differ by ~1e-6 in score (hybrid), so scores must agree to 1e-5, items wherever scores
    are further apart, and metrics to one swapped near-tie (5e-3).
    """
    exact = not model_class(name).trains_with_loop
    close = {"rel": 1e-9, "abs": 1e-12} if exact else {"abs": 5e-3}
    score_tol = 1e-6 if exact else 1e-5
    frame = _ids_frame(planted_dataset)
    metrics, lists = _fit_evaluate(name, planted_dataset)
    shuffled = Dataset.from_frames("planted", frame.sample(frac=1.0, random_state=5))
    assert not shuffled.interactions["item_code"].equals(planted_dataset.interactions["item_code"])
    assert np.array_equal(shuffled.item_ids, planted_dataset.item_ids)
    assert np.array_equal(shuffled.user_ids, planted_dataset.user_ids)
    renamed = frame.assign(item_id="item-" + frame["item_id"].str[1:].str.zfill(3))
    new_name = dict(zip(frame["item_id"], renamed["item_id"], strict=True))
    for variant, names in ((shuffled, {}), (Dataset.from_frames("planted", renamed), new_name)):
        other, other_lists = _fit_evaluate(name, variant)
        assert other.keys() == metrics.keys()
        for key, value in metrics.items():
            assert other[key] == pytest.approx(value, **close), f"{name} {key}"
        for user, ranked in lists.items():
            _assert_same_list(ranked, other_lists[user], f"{name} {user}", names, tol=score_tol)


@pytest.mark.parametrize("name", [m for m in MODELS if not model_class(m).trains_with_loop])
def test_closed_form_lists_survive_new_codes_up_to_ties(name: str, planted_dataset) -> None:
    """Items renamed so that their order changes: every item code changes.

    A closed-form model's scores do not depend on the codes, so each user's top-20 scores
    are the same sequence; only the order among equal scores is redrawn (the tie rule is
    seeded per (user code, item code), so it is not the file's order, but it is a function
    of the codes). Wherever a score has no equal, the item at that rank is the same too.
    """
    frame = _ids_frame(planted_dataset)
    _, lists = _fit_evaluate(name, planted_dataset)
    reordered = frame.assign(item_id="item-" + frame["item_id"].str[1:].str.zfill(3).str[::-1])
    new_name = dict(zip(frame["item_id"], reordered["item_id"], strict=True))
    recoded = Dataset.from_frames("planted", reordered)
    old_order = [new_name[i] for i in planted_dataset.item_ids]
    assert not np.array_equal(recoded.item_ids, old_order)  # the codes really changed
    _, other = _fit_evaluate(name, recoded)
    assert other.keys() == lists.keys()
    n_checked = sum(
        _assert_same_list(r, other[u], f"{name} {u}", new_name) for u, r in lists.items()
    )
    assert n_checked > 0  # some ranks hold a score that no other item has


def _assert_same_list(
    ranked, other, label: str, names: dict | None = None, *, tol: float = 1e-6
) -> int:
    """Same scores rank by rank (to `tol`), and the same item wherever a score is more than
    2 * tol from its neighbours (equal or float-close scores may come in another order).
    Returns how many ranks had their item checked.
    """
    names = names or {}
    mine = np.array([score for _, score in ranked])
    np.testing.assert_allclose([s for _, s in other], mine, rtol=tol, atol=tol, err_msg=label)
    gap = np.abs(np.diff(mine)) > 2 * tol * np.maximum(1.0, np.abs(mine[1:]))
    apart = np.ones(len(mine), dtype=bool)
    apart[1:] &= gap
    apart[:-1] &= gap
    apart[-1] = False  # the next item, past the list, may tie with the last one
    for r in np.flatnonzero(apart):
        assert names.get(ranked[r][0], ranked[r][0]) == other[r][0], f"{label} rank {r + 1}"
    return int(apart.sum())


def test_full_known_history_reproduces_score(fitted, planted_split: Split) -> None:
    """ExplainsHistory's rule: the user's full known history (time order) scores exactly as
    `score` does, so SHAP's all-present coalition and an unedited what-if are the model."""
    name, model = fitted
    if not isinstance(model, ExplainsHistory):
        pytest.skip(f"{name} does not score edited histories")
    known = planted_split.known_for("test")
    model.set_history(known)
    ordered = known.ordered
    items = np.arange(planted_split.train.n_items)
    for user in (0, 61, 119):
        history = ordered[ordered["user_code"] == user]["item_code"].to_numpy()
        got = model.score_histories([history], items, user)  # (1, n_items)
        with torch.inference_mode():
            want = model.score([user]).double().cpu().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=f"{name} u{user}")
