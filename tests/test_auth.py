"""The login gate (dashboard/auth.py) through AppTest, plus its pure helpers (issue 11, item 1)."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from core.data.dataset import Dataset, list_datasets
from core.errors import RecScopeError
from dashboard import auth
from dashboard.text import md

APP = "../dashboard/app.py"
SECRET = "correct horse battery staple"


@pytest.fixture
def address():
    """Set Streamlit's server.address for one test (restored afterwards)."""
    before = config.get_option("server.address")

    def set_address(value: str) -> None:
        config.set_option("server.address", value)

    yield set_address
    config.set_option("server.address", before)


@pytest.fixture
def secret_data(home):
    """A workspace holding one dataset whose name must never show before the login."""
    rows = [(f"u{u}", f"i{(u + k) % 7}", k) for u in range(12) for k in range(4)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    Dataset.from_frames("zz_private_sales", frame).save(home)
    return "zz_private_sales"


@pytest.fixture
def no_password(monkeypatch):
    monkeypatch.delenv(auth.PASSWORD_ENV, raising=False)
    monkeypatch.delenv(auth.PASSWORD_FILE_ENV, raising=False)


@pytest.fixture
def password_file(tmp_path, monkeypatch):
    path = tmp_path / "secret.txt"
    path.write_text(SECRET + "\n")
    monkeypatch.delenv(auth.PASSWORD_ENV, raising=False)
    monkeypatch.setenv(auth.PASSWORD_FILE_ENV, str(path))
    return path


def _text(at: AppTest) -> str:
    """Everything the script drew, as text (labels, values, option lists)."""
    return repr(at._tree)


def _login(at: AppTest, typed: str) -> AppTest:
    at.text_input(key="_recscope_password").input(typed)
    return at.button[0].click().run()


def test_loopback_without_password_opens_directly(home, no_password, address):
    address("127.0.0.1")
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    assert at.title[0].value == "Data"
    assert list_datasets(home) == ["sample"]


def test_network_address_without_password_shows_only_how_to_set_one(
    home, secret_data, no_password, address
):
    address("0.0.0.0")
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    assert [e.value for e in at.error] == [auth.NO_PASSWORD.format(address="0.0.0.0")]
    assert [t.value for t in at.title] == ["RecScope"]
    assert len(at.sidebar.selectbox) == 0 and len(at.text_input) == 0
    assert secret_data not in _text(at)
    assert list_datasets(home) == [secret_data]  # the gate read nothing, ingested nothing


def test_wrong_password_sees_no_data_and_waits(home, secret_data, password_file, address):
    address("0.0.0.0")
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["RecScope"]
    assert at.text_input(key="_recscope_password").label == "Password"
    assert secret_data not in _text(at)
    start = time.perf_counter()
    at = _login(at, "correct horse battery stapl")
    assert time.perf_counter() - start >= auth.WRONG_PAUSE_S
    assert [e.value for e in at.error] == [auth.WRONG]
    assert secret_data not in _text(at)
    assert len(at.sidebar.selectbox) == 0


def test_right_password_opens_the_data_page_and_logout_closes_it(
    home, secret_data, password_file, address
):
    address("127.0.0.1")  # a configured password is asked for on loopback too
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert [t.value for t in at.title] == ["RecScope"]
    at = _login(at, SECRET)
    assert not at.exception and not at.error
    assert at.title[0].value == "Data"
    assert at.sidebar.selectbox(key="dataset").value == secret_data
    assert secret_data in _text(at)  # the check used before the login can see the name
    at = at.sidebar.button(key="_recscope_logout").click().run()
    assert [t.value for t in at.title] == ["RecScope"]
    assert secret_data not in _text(at)


def test_changed_password_logs_the_session_out(home, secret_data, password_file, address):
    address("0.0.0.0")
    at = _login(AppTest.from_file(APP, default_timeout=120).run(), SECRET)
    assert at.title[0].value == "Data"
    password_file.write_text("a new secret\n")
    at.run()
    assert [t.value for t in at.title] == ["RecScope"]


def test_unreadable_password_file_is_a_sentence(home, tmp_path, monkeypatch, address):
    address("0.0.0.0")
    missing = tmp_path / "nope.txt"
    monkeypatch.setenv(auth.PASSWORD_FILE_ENV, str(missing))
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert [e.value for e in at.error] == [
        md(
            f"The password file RECSCOPE_PASSWORD_FILE='{missing}' cannot be read "
            "(FileNotFoundError); point it at a readable UTF-8 text file."
        )
    ]
    assert list_datasets(home) == []


def test_configured_password_sources(tmp_path, monkeypatch):
    monkeypatch.delenv(auth.PASSWORD_FILE_ENV, raising=False)
    monkeypatch.delenv(auth.PASSWORD_ENV, raising=False)
    assert auth.configured_password() is None
    monkeypatch.setenv(auth.PASSWORD_ENV, "from-env")
    assert auth.configured_password() == "from-env"
    path = tmp_path / "pw"
    path.write_text("from file \r\n")  # the newline an editor adds is not part of it
    monkeypatch.setenv(auth.PASSWORD_FILE_ENV, str(path))
    assert auth.configured_password() == "from file "
    path.write_text("\n")
    with pytest.raises(RecScopeError, match="is empty; write the password into it"):
        auth.configured_password()


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("", False),
        (None, False),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("box.example", False),
    ],
)
def test_is_loopback(address, loopback):
    assert auth.is_loopback(address) is loopback


def test_password_matches_is_exact():
    assert auth.password_matches(SECRET, SECRET)
    assert not auth.password_matches(SECRET + " ", SECRET)
    assert not auth.password_matches("", SECRET)
    assert auth.password_matches("pässwörd", "pässwörd")
