"""Hostile visitors of the server (issue 11, item 1): paths outside the data folders.

The Data page's "Path on the server" may read only inside the workspace, sample_data/ and
RECSCOPE_DATA_DIRS, after following links; everything else is refused with one sentence
naming the allowed folders.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.errors import RecScopeError
from dashboard.data_dirs import SAMPLE_DIR, allowed_path, check_companions, data_dirs
from dashboard.text import md

APP = "../../dashboard/app.py"


def refusal(text: str, home: Path) -> str:
    listed = ", ".join(str(f) for f in data_dirs(home))
    return (
        f"The server reads files only inside its data folders ({listed}), and '{text}' is "
        "outside them; upload the file instead, copy it into one of those folders, or add "
        "its folder to RECSCOPE_DATA_DIRS when starting the server."
    )


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder beside the workspace holding a secret-looking .env file."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / ".env").write_text("AWS_SECRET_ACCESS_KEY=abc123\n")
    return folder


def _refused(text: str, home: Path) -> None:
    with pytest.raises(RecScopeError) as err:
        allowed_path(text, home)
    assert str(err.value) == refusal(text, home)


def test_default_folders_are_the_workspace_and_the_sample(home, monkeypatch):
    monkeypatch.delenv("RECSCOPE_DATA_DIRS", raising=False)
    assert data_dirs(home) == [home.resolve(), SAMPLE_DIR.resolve()]


def test_etc_group_is_refused(home, monkeypatch):
    monkeypatch.delenv("RECSCOPE_DATA_DIRS", raising=False)
    _refused("/etc/group", home)


def test_env_file_outside_is_refused(home, outside, monkeypatch):
    monkeypatch.delenv("RECSCOPE_DATA_DIRS", raising=False)
    _refused(str(outside / ".env"), home)


def test_dot_dot_out_of_a_data_folder_is_refused(home, outside, monkeypatch):
    monkeypatch.delenv("RECSCOPE_DATA_DIRS", raising=False)
    _refused(f"{home}/../outside/.env", home)
    _refused("../outside/.env", home)  # relative paths start in the workspace
    _refused(f"{SAMPLE_DIR}/../README.md", home)


def test_relative_paths_are_found_in_the_data_folders_or_the_server_folder(home, monkeypatch):
    """'interactions.csv' is the sample's; 'sample_data/x' from the repository is read too."""
    monkeypatch.delenv("RECSCOPE_DATA_DIRS", raising=False)
    monkeypatch.chdir(SAMPLE_DIR.parent)
    sample = (SAMPLE_DIR / "interactions.csv").resolve()
    assert allowed_path("interactions.csv", home) == sample
    assert allowed_path("sample_data/interactions.csv", home) == sample
    (home / "mine.csv").write_text("user_id,item_id\nu,i\n")
    assert allowed_path("mine.csv", home) == (home / "mine.csv").resolve()
    _refused("Makefile", home)  # in the server's folder, but not a data folder
    with pytest.raises(RecScopeError) as err:
        allowed_path("nope.csv", home)
    assert str(err.value) == (
        f"There is no file 'nope.csv' inside the data folders ({home.resolve()}, "
        f"{SAMPLE_DIR.resolve()}) or the folder the server was started in; check the spelling "
        "or type the full path."
    )


def test_symlink_inside_pointing_outside_is_refused(home, outside, monkeypatch):
    monkeypatch.delenv("RECSCOPE_DATA_DIRS", raising=False)
    (home / "innocent.csv").symlink_to(outside / ".env")
    (home / "linkdir").symlink_to(outside, target_is_directory=True)
    _refused(str(home / "innocent.csv"), home)
    _refused(str(home / "linkdir" / ".env"), home)


def test_nul_byte_is_refused(home):
    with pytest.raises(RecScopeError, match="is not a file path"):
        allowed_path(f"{home}/a\x00.csv", home)


def test_files_inside_are_read_resolved(home, outside, monkeypatch, tmp_path):
    monkeypatch.delenv("RECSCOPE_DATA_DIRS", raising=False)
    (home / "in.csv").write_text("user_id,item_id\nu1,i1\n")
    assert allowed_path(str(home / "in.csv"), home) == (home / "in.csv").resolve()
    assert allowed_path("in.csv", home) == (home / "in.csv").resolve()
    sample = SAMPLE_DIR / "interactions.csv"
    assert allowed_path(str(sample), home) == sample.resolve()
    # a link inside pointing inside is fine; the read goes to its target
    (home / "alias.csv").symlink_to(home / "in.csv")
    assert allowed_path(str(home / "alias.csv"), home) == (home / "in.csv").resolve()
    # an extra folder from RECSCOPE_DATA_DIRS (os.pathsep-separated)
    monkeypatch.setenv("RECSCOPE_DATA_DIRS", f"{tmp_path / 'nothing'}{os.pathsep}{outside}")
    assert allowed_path(str(outside / ".env"), home) == (outside / ".env").resolve()
    assert data_dirs(home)[2:] == [(tmp_path / "nothing").resolve(), outside.resolve()]


def test_folder_prefix_is_not_containment(home, tmp_path, monkeypatch):
    """'/x/workspace-evil' is not inside '/x/workspace' (is_relative_to, not startswith)."""
    monkeypatch.delenv("RECSCOPE_DATA_DIRS", raising=False)
    evil = tmp_path / (home.name + "-evil")
    evil.mkdir()
    (evil / "a.csv").write_text("user_id,item_id\n")
    _refused(str(evil / "a.csv"), home)


@pytest.mark.parametrize("field", ["path_main", "path_items", "path_users"])
def test_data_page_refuses_every_path_field(home, outside, monkeypatch, field):
    monkeypatch.delenv("RECSCOPE_DATA_DIRS", raising=False)
    inside = home / "in.csv"
    inside.write_text("user_id,item_id\nu1,i1\nu2,i2\n")
    at = AppTest.from_file(APP, default_timeout=120).run()
    next(r for r in at.radio if r.label == "Source").set_value("Path on the server").run()
    if field != "path_main":
        at.text_input(key="path_main").set_value(str(inside))
    secret = str(outside / ".env")
    at.text_input(key=field).set_value(secret).run()
    assert not at.exception
    assert [e.value for e in at.error] == [md(refusal(secret, home))]
    assert len(at.dataframe) == 0 or "abc123" not in at.dataframe[0].value.to_string()
    assert not any("AWS_SECRET" in m.value for m in at.markdown)


def test_data_page_previews_a_file_inside(home, monkeypatch):
    monkeypatch.delenv("RECSCOPE_DATA_DIRS", raising=False)
    (home / "in.csv").write_text("user_id,item_id\nu1,i1\nu2,i2\n")
    at = AppTest.from_file(APP, default_timeout=120).run()
    next(r for r in at.radio if r.label == "Source").set_value("Path on the server").run()
    at.text_input(key="path_main").set_value("in.csv").run()
    assert not at.exception and not at.error
    preview = at.dataframe[0].value
    assert preview.to_dict("list") == {"user_id": ["u1", "u2"], "item_id": ["i1", "i2"]}


def test_a_companion_table_linking_outside_is_refused(home, outside, monkeypatch):
    """ingest reads items.csv beside interactions.csv by itself: that one is checked too."""
    monkeypatch.delenv("RECSCOPE_DATA_DIRS", raising=False)
    main = home / "interactions.csv"
    main.write_text("user_id,item_id\nu1,i1\n")
    check_companions(main, home, None, None)  # no companions: fine
    (home / "items.csv").symlink_to(outside / ".env")
    with pytest.raises(RecScopeError) as err:
        check_companions(main, home, None, None)
    assert str(err.value) == refusal(str(home / "items.csv"), home)
    check_companions(main, home, home / "mine.csv", None)  # an item table given: not used
    at = AppTest.from_file(APP, default_timeout=120).run()
    next(r for r in at.radio if r.label == "Source").set_value("Path on the server").run()
    at.text_input(key="path_main").set_value(str(main)).run()
    assert not at.exception
    assert [e.value for e in at.error] == [md(refusal(str(home / "items.csv"), home))]
    assert not [b for b in at.button if b.label == "Create dataset"]
