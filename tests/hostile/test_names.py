"""Issue 11, "Paths from data", "a dataset name may end in a newline", "--dataset ../../x
reads outside the workspace": every name that reaches the file system is checked in one
place (core.names), and every entry point (CLI, the Data page, the scenario jobs) refuses
'..', '/', NUL, newline and 300-character names with one sentence, creating nothing and
reading nothing outside the workspace.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core import names
from core.cli import main
from core.data.dataset import Dataset, list_datasets
from core.data.ingest.ingest import ingest
from core.errors import RecScopeError
from core.runs import jobs
from core.runs import scenario_runs as sr
from core.runs.store import RunStore

RULE = "use 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit."
#: hostile name -> how a message quotes it (control characters escaped, long names cut)
BAD = {
    "../../x": "../../x",
    "a/b": "a/b",
    "..": "..",
    "a\x00b": "a\\x00b",
    "x\n": "x\\n",
    "a" * 300: "a" * 40 + "…",
    ".hidden": ".hidden",
    "": "",
}
IDS = ["dotdot-slash", "slash", "dotdot", "nul", "newline", "300-chars", "dot-first", "empty"]
GOOD_CSV = "user_id,item_id\n" + "".join(f"u{u},i{(u + k) % 7}\n" for u in range(9) for k in (0, 1))


def _sentence(name: str) -> str:
    return f"The name '{BAD[name]}' cannot be used for a dataset; {RULE}"


def _outside(tmp_path: Path, home: Path) -> set[Path]:
    """Everything under tmp_path that is not the workspace (what a traversal would create)."""
    return {p for p in tmp_path.rglob("*") if p != home and home not in p.parents}


def _cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert out == ""  # nothing on stdout when refused
    return code, err


# -- core.names ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BAD), ids=IDS)
def test_dataset_names_are_refused_with_the_rule(name):
    with pytest.raises(RecScopeError) as refused:
        names.check_dataset_name(name)
    assert str(refused.value) == _sentence(name)
    assert "\n" not in str(refused.value) and "\x00" not in str(refused.value)
    assert not names.is_dataset_name(name)


@pytest.mark.parametrize("name", list(BAD), ids=IDS)
def test_run_ids_are_refused_with_the_rule(name):
    with pytest.raises(RecScopeError) as refused:
        names.check_run_id(name)
    assert str(refused.value) == (
        f"'{BAD[name]}' is not a run id; run ids are letters, digits, '_', '-' and '.' as "
        "`recscope runs` lists them."
    )


def test_good_names_pass_and_free_text_maps_to_a_safe_name():
    for good in ("ml-100k", "a.b_c", "x" * 64, "pop-20240101-120000-abc123"):
        assert names.check_dataset_name(good) == good
    assert names.check_run_id("pop-20240101-120000-abc123") == "pop-20240101-120000-abc123"
    assert names.dataset_name_from("my upload (1).csv") == "my-upload-1-.csv"
    assert names.dataset_name_from("../../etc/passwd") == "etc-passwd"
    assert names.dataset_name_from("x\n") == "x"
    assert names.dataset_name_from("é") == "dataset"
    assert names.numbered("a" * 64, 12) == "a" * 61 + "-12"


def test_job_kinds_and_export_names():
    assert names.check_kind("train", ("train", "transfer")) == "train"
    with pytest.raises(RecScopeError) as refused:
        names.check_kind("../x\n", ("train", "transfer"))
    assert str(refused.value) == "Job kind '../x\\n' is unknown; use one of train, transfer."
    assert names.export_name("pop-1", "recommendations", "csv") == "pop-1-recommendations.csv"
    assert names.export_name("pop-1", "../../x y", "csv") == "pop-1-x-y.csv"
    with pytest.raises(RecScopeError, match="is not a run id"):
        names.export_name("../pop", "recommendations", "csv")


# -- the CLI ------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BAD), ids=IDS)
def test_cli_ingest_refuses_a_bad_name_and_writes_nothing(home, tmp_path, capsys, name):
    path = tmp_path / "good.csv"
    path.write_text(GOOD_CSV)
    before = _outside(tmp_path, home)
    code, err = _cli(capsys, "ingest", str(path), "--name", name)
    assert code == 2
    assert err == f"error: {_sentence(name)}\n"
    assert list_datasets(home) == [] and not (home / "datasets").exists()
    assert _outside(tmp_path, home) == before


@pytest.fixture
def decoy(tmp_path: Path, planted_dataset) -> str:
    """A real dataset outside the workspace, and the --dataset value that climbs to it."""
    planted_dataset.save(tmp_path / "decoy")
    assert (tmp_path / "decoy" / "datasets" / "planted" / "dataset.json").exists()
    return "../../decoy/datasets/planted"  # from <home>/datasets/


@pytest.mark.parametrize(
    "argv",
    [
        ("train", "--model", "pop", "--dataset"),
        ("scenarios", "leaderboard", "--dataset"),
        ("transfer", "--source", "a", "--target", "b", "--dataset"),
    ],
    ids=["train", "scenarios-leaderboard", "transfer"],
)
def test_cli_dataset_options_never_read_outside_the_workspace(home, tmp_path, capsys, decoy, argv):
    # an empty --dataset reads as a missing one for train and the leaderboard ("is required")
    for name in [decoy, *(n for n in BAD if n)]:
        before = _outside(tmp_path, home)
        code, err = _cli(capsys, *argv, name)
        assert code == 2, name
        shown = BAD.get(name, decoy)
        assert err == f"error: The name '{shown}' cannot be used for a dataset; {RULE}\n"
        assert _outside(tmp_path, home) == before
    assert RunStore(home).list(kind=None) == []  # no run record was made


def test_cli_runs_filter_by_a_bad_dataset_lists_nothing(home, capsys, decoy):
    assert main(["runs", "--dataset", decoy, "--json"]) == 0
    assert capsys.readouterr().out.strip() == '{"runs": []}'


RUN_ID_COMMANDS = [
    ("evaluate",),
    ("recommend", "--user", "u1"),
    ("explain", "--user", "u1", "--item", "i1"),
    ("similar", "--item", "i1"),
    ("train", "--run-id"),
    ("transfer", "--run-id"),
    ("scenarios", "leaderboard", "--run-id"),
]
NOT_NEWLINE = [n for n in BAD if n != "x\n"]


def _run_id_argv(command: tuple[str, ...], run_id: str) -> list[str]:
    if command[-1] == "--run-id":
        return [*command, run_id]
    return [command[0], run_id, *command[1:]]


@pytest.mark.parametrize("command", RUN_ID_COMMANDS, ids=lambda c: "-".join(c[:2]))
def test_cli_run_id_arguments_are_refused(home, tmp_path, capsys, command):
    (tmp_path / "decoy-run").mkdir()
    (tmp_path / "decoy-run" / "run.json").write_text('{"status": "finished"}')
    # an empty --run-id reads as none given (a new job), so only positional ids test ''
    hostile = NOT_NEWLINE if command[-1] != "--run-id" else [n for n in NOT_NEWLINE if n]
    for run_id in ["../decoy-run", "../../decoy-run", *hostile]:
        before = _outside(tmp_path, home)
        code, err = _cli(capsys, *_run_id_argv(command, run_id))
        assert code == 2, run_id
        last = err.splitlines()[-1]
        assert last.startswith("error: '") and last.endswith(
            "' is not a run id; run ids are letters, digits, '_', '-' and '.' as "
            "`recscope runs` lists them."
        ), err
        assert err.count("\n") == 1
        assert _outside(tmp_path, home) == before


def test_cli_run_id_with_a_trailing_newline_is_refused(home, capsys):
    code, err = _cli(capsys, "evaluate", "pop-1\n")
    assert code == 2
    assert err == (
        "error: 'pop-1\\n' is not a run id; run ids are letters, digits, '_', '-' and '.' as "
        "`recscope runs` lists them.\n"
    )


# -- the Data page ------------------------------------------------------------------


PAGE_NAMES = ["../../x", "a/b", "a\x00b", "a" * 300]


def test_data_page_refuses_bad_dataset_names(home, tmp_path, planted_dataset):
    planted_dataset.save(home)
    before = _outside(tmp_path, home)
    at = AppTest.from_file("../../dashboard/app.py", default_timeout=120).run()
    at.file_uploader(key="upload_main").set_value(("good.csv", GOOD_CSV.encode(), "text/csv"))
    at.run()
    assert not at.exception and not at.error
    for name in PAGE_NAMES:
        [field] = [w for w in at.text_input if w.label == "Dataset name"]
        field.set_value(name)
        at.run()
        [button] = [b for b in at.button if b.label == "Create dataset"]
        at = button.click().run()
        assert not at.exception
        shown = [re.sub(r"\\(.)", r"\1", e.value) for e in at.error]  # Markdown escapes off
        assert shown == [_sentence(name)], name
        assert list_datasets(home) == ["planted"]
    assert _outside(tmp_path, home) == before
    # the page trims the field, so a trailing newline never reaches a name: 'x' is made
    [field] = [w for w in at.text_input if w.label == "Dataset name"]
    field.set_value("x\n")
    at.run()
    at = [b for b in at.button if b.label == "Create dataset"][0].click().run()
    assert not at.exception and not at.error
    assert list_datasets(home) == ["planted", "x"]
    assert Dataset.load(home, "x").name == "x"


# -- scenario names from an uploaded file --------------------------------------------

FAST = {"epochs": 1, "batch_size": 256}
CLIMBERS = ("../../../../tmp/x", "../../../escaped")  # from <home>/runs/<run_id>/


def _scenario_upload() -> bytes:
    """60 users in two scenarios named like paths, two tastes (a job finishes in seconds)."""
    rng = np.random.default_rng(3)
    rows = []
    for u in range(60):
        half = 0 if u < 30 else 10
        for t, scen in enumerate(CLIMBERS * 5):
            offset = 0 if scen == CLIMBERS[0] else 20
            rows.append((f"u{u}", f"i{offset + half + rng.integers(10)}", t, scen))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "scenario"])
    return frame.drop_duplicates(["user_id", "item_id"]).to_csv(index=False).encode()


def test_scenario_names_like_paths_write_nothing_outside_the_workspace(home, tmp_path):
    tmp_x = Path("/tmp/x")
    existed = tmp_x.exists()
    before = _outside(tmp_path, home)
    ds, _ = ingest((_scenario_upload(), "upload.csv"), name="odd", home=home)
    assert sorted(ds.scenarios) == sorted(CLIMBERS)
    store = RunStore(home)
    board = sr.new_leaderboard(store, "odd", multiscenario_params=FAST)
    record = jobs.run_job(store, board, "leaderboard", partial(sr.run_leaderboard, store, board))
    assert record["status"] == "finished", record.get("error")
    assert set(sr.recommendations(store, board)["scenario"]) == set(CLIMBERS)
    source, target = CLIMBERS
    move = sr.new_transfer(
        store, "odd", source, target, ms=(0,), include_hybrid=False, multiscenario_params=FAST
    )
    record = jobs.run_job(store, move, "transfer", partial(sr.run_transfer, store, move))
    assert record["status"] == "finished", record.get("error")
    assert sr.result(store, move)["target"] == target
    assert _outside(tmp_path, home) == before
    assert not (tmp_path / "escaped").exists()
    assert tmp_x.exists() == existed
    made = {p.relative_to(home).parts[0] for p in home.rglob("*")}
    assert made <= {"datasets", "runs", "locks"}
    files = {p.name for p in (home / "runs").rglob("*") if p.is_file()}
    assert not {f for f in files if "x" == f or "escaped" in f}
    assert Dataset.load(home, "odd").scenarios == ds.scenarios
