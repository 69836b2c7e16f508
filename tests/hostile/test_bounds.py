"""Issue 11 item 7 (bounds): sizes and parameters outside what is allowed are refused with one
sentence, in core (so the pages get it too) and on the CLI (exit 2, one line), and a bad
parameter leaves no run behind.

Probes of the issue: `evaluate --k 100000` tried to allocate 30 TB; `recommend -k -5` ended in
"unexpected RuntimeError"; `lr=abc`, `--epochs -1`, `l2=NaN` left a failed run behind.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from core.cli import main
from core.data.dataset import Dataset
from core.data.split import split
from core.errors import ParameterError
from core.eval import evaluate as E
from core.eval import metrics as M
from core.eval.ranking import check_k, top_k
from core.models import make_model, param_specs
from core.runs.pipeline import load_run, new_run
from core.runs.store import RunStore

N_ITEMS = 60  # the planted dataset: 120 users x 60 items


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, planted_dataset):
    """A workspace holding the planted data as 'toy' and a finished pop, ease, itemknn run."""
    folder = tmp_path_factory.mktemp("bounds") / "workspace"
    folder.mkdir()
    ds = planted_dataset
    frame = ds.interactions.assign(
        user_id=ds.user_ids[ds.interactions["user_code"]],
        item_id=ds.item_ids[ds.interactions["item_code"]],
    )[["user_id", "item_id", "timestamp"]]
    Dataset.from_frames("toy", frame).save(folder)
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RECSCOPE_HOME", str(folder))
        for model in ("pop", "ease", "itemknn"):
            assert main(["train", "--dataset", "toy", "--model", model, "--json"]) == 0
        for record in RunStore(folder).list():
            runs[record["model"]] = record["run_id"]
    return folder, runs


@pytest.fixture
def home(workspace, monkeypatch):
    monkeypatch.setenv("RECSCOPE_HOME", str(workspace[0]))
    return workspace[0]


@pytest.fixture
def runs(workspace):
    return workspace[1]


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- k against the catalogue ---------------------------------------------------------------


def test_evaluate_k_100000_is_refused_with_the_catalogue_size(home, runs, capsys):
    code, out, err = cli(capsys, "evaluate", runs["ease"], "--k", "100000", "--json")
    assert (code, out) == (2, "")
    assert err == "error: k must be between 1 and 60 (the number of items); got 100000.\n"


def test_evaluate_k_up_to_the_catalogue_works(home, runs, capsys):
    code, out, err = cli(capsys, "evaluate", runs["ease"], "--k", str(N_ITEMS), "--json")
    assert code == 0, err
    metrics = json.loads(out)["metrics"]
    assert metrics["recall@60"] == pytest.approx(1.0)  # every unknown item is in a full list
    code, _, err = cli(capsys, "evaluate", runs["ease"], "--k", "61", "--json")
    assert code == 2
    assert err == "error: k must be between 1 and 60 (the number of items); got 61.\n"


def test_evaluate_k_zero_and_text_are_usage_errors(home, runs, capsys):
    for bad in ("0", "-3", "ten"):
        code, out, err = cli(capsys, "evaluate", runs["ease"], "--k", bad)
        assert (code, out) == (2, "")
        assert err == (
            f"error: recscope evaluate: argument --k: must be a whole number of at least 1; "
            f"got '{bad}'; see `recscope evaluate --help`.\n"
        )


def test_core_evaluate_refuses_k_above_the_catalogue_and_what_memory_holds(home, runs, monkeypatch):
    loaded = load_run(RunStore(home), runs["ease"])
    with pytest.raises(ParameterError) as caught:
        E.evaluate(loaded.model, loaded.split, "test", ks=(10, 100000))
    assert str(caught.value) == "k must be between 1 and 60 (the number of items); got 100000."
    # 120 test users; a budget of 40 lists x 120 users leaves k <= 40 (the standard 20 stays)
    monkeypatch.setattr(E, "LIST_BUDGET_BYTES", 40 * 120 * E._BYTES_PER_LIST_CELL)
    with pytest.raises(ParameterError) as caught:
        E.evaluate(loaded.model, loaded.split, "test", ks=(50,))
    assert str(caught.value) == (
        "k must be between 1 and 40 (the lists of 120 users must fit in memory); got 50."
    )
    assert set(E.evaluate(loaded.model, loaded.split, "test", ks=(40,)).metrics) >= {"ndcg@40"}


def test_standard_cutoffs_still_work_on_a_catalogue_smaller_than_20(home):
    tiny = Dataset.from_frames(
        "six",
        pd.DataFrame(
            {
                "user_id": [u for u in "abcd" for _ in range(3)],
                "item_id": ["i0", "i1", "i2", "i3", "i4", "i5", "i0", "i2", "i4", "i1", "i3", "i5"],
                "timestamp": list(range(12)),
            }
        ),
    )
    parts = split(tiny, "loo", 0)
    model = make_model("pop").fit(parts.train)
    result = E.evaluate(model, parts, "test")  # k = 5, 10, 20 over 6 items: padded lists
    assert {"ndcg@5", "ndcg@10", "ndcg@20"} <= set(result.metrics)
    with pytest.raises(ParameterError) as caught:
        E.evaluate(model, parts, "test", ks=(21,))
    assert str(caught.value) == ("k must be between 1 and 20 (the number of items is 6); got 21.")


def test_recommend_k_out_of_range(home, runs, capsys):
    code, out, err = cli(capsys, "recommend", runs["pop"], "--user", "u3", "-k", "-5")
    assert (code, out) == (2, "")
    assert err == (
        "error: recscope recommend: argument -k: must be a whole number of at least 1; "
        "got '-5'; see `recscope recommend --help`.\n"
    )
    code, out, err = cli(capsys, "recommend", runs["pop"], "--user", "u3", "-k", "61")
    assert (code, out) == (2, "")
    assert err == "error: k must be between 1 and 60 (the number of items); got 61.\n"
    code, out, _ = cli(capsys, "recommend", runs["pop"], "--user", "u3", "-k", "60", "--json")
    # k = the catalogue: the user's known items are excluded, the rest is ranked
    items = json.loads(out)["items"]
    assert code == 0 and 40 <= len(items) < 60


def test_core_recommend_refuses_bad_k(home, runs):
    model = load_run(RunStore(home), runs["pop"]).model
    for bad, shown in ((-5, "-5"), (0, "0"), (61, "61"), (2.5, "2.5"), (True, "True")):
        with pytest.raises(ParameterError) as caught:
            model.recommend([0], bad)
        assert str(caught.value) == (
            f"k must be between 1 and 60 (the number of items); got {shown}."
        )


def test_similar_k_out_of_range(home, runs, capsys):
    code, out, err = cli(capsys, "similar", runs["itemknn"], "--item", "i3", "-k", "100")
    assert (code, out) == (2, "")
    assert err == "error: k must be between 1 and 59 (the number of other items); got 100.\n"
    code, out, err = cli(capsys, "similar", runs["itemknn"], "--item", "i3", "-k", "0")
    assert code == 2 and err.count("\n") == 1 and "argument -k" in err
    code, out, _ = cli(capsys, "similar", runs["itemknn"], "--item", "i3", "-k", "59", "--json")
    assert code == 0 and len(json.loads(out)["neighbors"]) <= 59


def test_explain_unknown_ids(home, runs, capsys):
    code, out, err = cli(capsys, "explain", runs["ease"], "--user", "u3", "--item", "ghost")
    assert (code, out) == (2, "")
    assert err == (
        "error: The item id 'ghost' is not in dataset 'toy'; use an id as it appears in the "
        "uploaded file.\n"
    )
    code, _, err = cli(capsys, "explain", runs["ease"], "--user", "../u3", "--item", "i3")
    assert code == 2 and err == (
        "error: The user id '../u3' is not in dataset 'toy'; use an id as it appears in the "
        "uploaded file.\n"
    )


def test_top_k_and_check_k():
    scores = torch.zeros((1, 4))
    for bad, shown in ((0, "0"), (-1, "-1"), (1.5, "1.5"), (float("nan"), "nan")):
        with pytest.raises(ParameterError) as caught:
            top_k(scores, bad, users=torch.tensor([0]))
        assert str(caught.value) == f"k must be a whole number of at least 1; got {shown}."
    items, _ = top_k(scores, 6, users=torch.tensor([0]))  # above the catalogue: padded
    assert items[0, 4:].tolist() == [-1, -1]
    assert check_k(np.int64(3), 4) == 3
    with pytest.raises(ParameterError) as caught:
        check_k(1, 0)
    assert str(caught.value) == "k cannot be chosen: the number of items is 0; got 1."


def test_diversity_of_long_lists_needs_no_pair_tensor():
    """k = 2,000 over 4,000 users: the (U, K, K) tensor would be 16e9 cells (64 GB)."""
    gen = torch.Generator().manual_seed(0)
    top = torch.randint(0, 5000, (4000, 2000), generator=gen)
    cats = torch.randint(0, 7, (5000,), generator=gen)
    got = M.intra_list_diversity(top, categories=cats)  # would raise or swap before
    counts = torch.zeros((4000, 7), dtype=torch.float64).scatter_add_(
        1, cats[top], torch.ones(top.shape, dtype=torch.float64)
    )
    same = (counts * counts).sum(1) - 2000
    assert torch.allclose(got, 1 - same / (2000 * 1999))


# -- parameters: refused before a run record exists ------------------------------------------


PARAM_PROBES = [
    (
        ["--model", "ease", "--param", "l2=NaN"],
        "Parameter 'l2' must be 'auto' or a number above 0; got nan.",
    ),
    (
        ["--model", "ease", "--param", "l2=abc"],
        "Parameter 'l2' must be 'auto' or a number above 0; got 'abc'.",
    ),
    (
        ["--model", "ease", "--param", "l2=-Infinity"],
        "Parameter 'l2' must be 'auto' or a number above 0; got -inf.",
    ),
    (
        ["--model", "bpr", "--param", "lr=abc"],
        "Parameter 'lr' must be a number above 0; got 'abc'.",
    ),
    (
        ["--model", "bpr", "--param", "lr=0"],
        "Parameter 'lr' must be a number above 0; got 0.",
    ),
    (
        ["--model", "bpr", "--param", "dim=true"],
        "Parameter 'dim' must be a whole number in [1, 4096]; got True.",
    ),
    (
        ["--model", "bpr", "--param", "dim=12.5"],
        "Parameter 'dim' must be a whole number in [1, 4096]; got 12.5.",
    ),
    (  # a vector size that would only fill memory (400 GB of item vectors)
        ["--model", "bpr", "--param", "dim=100000000"],
        "Parameter 'dim' must be a whole number in [1, 4096]; got 100000000.",
    ),
    (
        ["--model", "itemknn", "--param", "k=0"],
        "Parameter 'k' must be a whole number of at least 1; got 0.",
    ),
    (
        ["--model", "pop", "--param", "shrinkage=-1"],
        "Parameter 'shrinkage' must be a number of at least 0; got -1.",
    ),
    (
        ["--model", "hybrid", "--param", "use_text=1"],
        "Parameter 'use_text' must be true or false; got 1.",
    ),
    (
        ["--model", "sasrec", "--param", "dropout=1.5"],
        "Parameter 'dropout' must be a number in [0, 1); got 1.5.",
    ),
    (
        ["--model", "sasrec", "--param", "loss=hinge"],
        "Parameter 'loss' must be one of 'auto', 'full', 'sampled'; got 'hinge'.",
    ),
    (
        ["--model", "pop", "--param", "alpha=1"],
        "Model 'pop' has no parameter 'alpha'; its parameters are device_choice, shrinkage.",
    ),
]


@pytest.mark.parametrize("argv, sentence", PARAM_PROBES)
def test_bad_parameter_is_one_sentence_and_leaves_no_run(tmp_path, monkeypatch, capsys, argv,
                                                         sentence, workspace):  # fmt: skip
    home = tmp_path / "workspace"
    (home / "datasets").mkdir(parents=True)
    Dataset.load(workspace[0], "toy").save(home)
    monkeypatch.setenv("RECSCOPE_HOME", str(home))
    code, out, err = cli(capsys, "train", "--dataset", "toy", *argv, "--json")
    assert (code, out) == (2, "")
    assert err == f"error: {sentence}\n"
    assert not (home / "runs").exists() or list((home / "runs").iterdir()) == []


@pytest.mark.parametrize(
    "argv, option, value",
    [
        (["train", "--dataset", "toy", "--model", "bpr", "--epochs", "-1"], "--epochs", "-1"),
        (["train", "--dataset", "toy", "--model", "bpr", "--epochs", "0"], "--epochs", "0"),
        (["train", "--dataset", "toy", "--model", "pop", "--seed", "-1"], "--seed", "-1"),
        (["transfer", "--source", "a", "--target", "b", "--max-users", "0"], "--max-users", "0"),
    ],
)
def test_bad_sizes_are_usage_errors_and_leave_no_run(home, capsys, argv, option, value):
    before = sorted(p.name for p in (home / "runs").iterdir())
    code, out, err = cli(capsys, *argv)
    assert (code, out) == (2, "")
    low = 0 if option == "--seed" else 1
    prog = f"recscope {argv[0]}"
    assert err == (
        f"error: {prog}: argument {option}: must be a whole number of at least {low}; "
        f"got '{value}'; see `{prog} --help`.\n"
    )
    assert sorted(p.name for p in (home / "runs").iterdir()) == before


def test_transfer_m_must_not_be_negative(home, capsys):
    code, _, err = cli(capsys, "transfer", "--source", "a", "--target", "b", "--m", "-3")
    assert code == 2 and err == (
        "error: recscope transfer: argument --m: must be a whole number of at least 0; "
        "got '-3'; see `recscope transfer --help`.\n"
    )


def test_core_new_run_refuses_before_the_record(tmp_path, workspace):
    """The pages call new_run too: same refusal, nothing in runs/."""
    home = tmp_path / "ws"
    Dataset.load(workspace[0], "toy").save(home)
    store = RunStore(home)
    for params, kwargs in (({"lr": "abc"}, {}), ({}, {"epochs": -1}), ({"l2": math.nan}, {})):
        model = "ease" if "l2" in params else "bpr"
        with pytest.raises(ParameterError):
            new_run(store, "toy", model, params=params, **kwargs)
    assert store.list() == []
    assert not (home / "runs").exists() or list((home / "runs").iterdir()) == []


def test_param_specs_carry_the_declared_range():
    specs = {s.name: s for s in param_specs("sasrec")}
    assert specs["dropout"].range.describe("a number") == "a number in [0, 1)"
    assert specs["dim"].range.describe("a whole number") == "a whole number in [1, 4096]"
    assert specs["loss"].range.choices == ("auto", "full", "sampled")
