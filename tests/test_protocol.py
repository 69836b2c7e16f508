"""The one behaviour suite every registered model runs (a model joins by being present).

Data with a known answer (`planted_dataset`): two user groups, each likes its own item block.
Each model must recover that structure, beat popularity, score batches like single users,
exclude seen items, survive save -> load, and follow the parameter and not-fitted rules.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.data.dataset import Dataset
from core.data.split import Split, split
from core.errors import NotFittedError, ParameterError
from core.eval.evaluate import evaluate
from core.models import available, make_model, model_class
from core.protocols import Recommender

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
