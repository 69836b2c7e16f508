"""A saved model that this version cannot rebuild says so in one sentence (no traceback)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.data.dataset import Dataset
from core.errors import RecScopeError
from core.models import make_model, model_class
from core.models.base import CONFIG_FILE


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    rows = [(f"u{u}", f"i{(u + t) % 12}") for u in range(20) for t in range(4)]
    ds = Dataset.from_frames("tiny", pd.DataFrame(rows, columns=["user_id", "item_id"]))
    model = make_model("bpr", dim=8, epochs=1, device_choice="cpu").fit(ds.all())
    folder = tmp_path_factory.mktemp("bpr")
    model.save(folder)
    return folder


def _with_params(folder, tmp_path, **changes):
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["params"].update(changes)
    for f in folder.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    return tmp_path


def test_a_setting_this_version_no_longer_accepts(saved, tmp_path):
    folder = _with_params(saved, tmp_path, dim=-3)
    with pytest.raises(RecScopeError, match=r"saved with settings this version cannot rebuild"):
        model_class("bpr").load(folder)


def test_weights_of_another_architecture(saved, tmp_path):
    folder = _with_params(saved, tmp_path, dim=16)
    with pytest.raises(RecScopeError, match=r"do not fit this version's bpr .*train the run again"):
        model_class("bpr").load(folder)


def test_the_saved_model_itself_loads(saved):
    assert model_class("bpr").load(saved).n_items_ == 12
