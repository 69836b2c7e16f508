"""The Train page shows the plan of each chosen model before Start, and turns Start off while a
refused model is chosen, saying why (issue 15, point 1)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.runs import plan as P
from tests.test_plan import RATES


def _train_page() -> None:
    import streamlit as st

    from dashboard import shell
    from pages import train

    st.session_state[shell.DATASET_KEY] = "planted"
    train.render()


@pytest.fixture
def page(home, planted_dataset, monkeypatch):
    planted_dataset.save(home)
    monkeypatch.setattr(P, "device_rates", lambda device, n_items=0: RATES)
    return AppTest.from_function(_train_page, default_timeout=60)


def test_plan_table_for_each_chosen_model_and_start_on(page, monkeypatch):
    monkeypatch.setattr(P, "available_bytes", lambda device: 64 * 2**30)
    at = page.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["model"]) == ["pop", "ease"]
    assert list(table["verdict"]) == ["Fits", "Fits"]
    assert all(text.endswith(" MB") for text in table["memory"])
    assert all("evaluation" in text for text in table["time"])
    assert any("64.0 GB available on this machine now" in c.value for c in at.caption)
    assert not at.button(key="train_start").disabled
    assert not at.error


def test_refused_model_turns_start_off_and_says_why(page, monkeypatch):
    monkeypatch.setattr(P, "available_bytes", lambda device: 100 * 2**20)
    at = page.run()
    assert not at.exception
    assert list(at.dataframe[0].value["verdict"]) == ["Refused", "Refused"]
    sentences = [e.value for e in at.error]
    assert sentences[0].startswith("pop is refused: it needs about ")
    assert "but 100 MB is available" in sentences[0]
    start = at.button(key="train_start")
    assert start.disabled
    why = "Start is off: pop, ease are refused (see above)."
    assert any(c.value.startswith(why) for c in at.caption)
    at.multiselect(key="train_models").set_value([]).run()
    assert at.button(key="train_start").disabled  # nothing chosen: off, no plan shown
    assert not at.error
