"""The CLI contract: --json prints one JSON document; errors are one line and exit 2."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.cli import main
from core.data.dataset import Dataset


def run_cli(capsys, *argv: str) -> tuple[int, dict | None, str]:
    code = main([*argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


@pytest.fixture
def planted_csv(tmp_path, planted_dataset) -> str:
    ds = planted_dataset
    frame = pd.DataFrame(
        {
            "user": ds.user_ids[ds.interactions["user_code"]],
            "item": ds.item_ids[ds.interactions["item_code"]],
            "ts": ds.interactions["timestamp"],
        }
    )
    path = tmp_path / "planted.csv"
    frame.to_csv(path, index=False)
    return str(path)


def test_ingest_train_recommend_roundtrip(home, capsys, planted_csv):
    code, out, _ = run_cli(capsys, "ingest", planted_csv, "--name", "planted", "--json")
    assert code == 0
    assert out["dataset"] == "planted" and out["n_users"] == 120 and out["n_items"] == 60

    code, out, _ = run_cli(capsys, "datasets", "--json")
    assert [d["name"] for d in out["datasets"]] == ["planted"]

    code, pop, _ = run_cli(capsys, "train", "--dataset", "planted", "--model", "pop", "--json")
    code2, ease, _ = run_cli(
        capsys, "train", "--dataset", "planted", "--model", "ease", "--param", "l2=10", "--json"
    )
    assert code == code2 == 0
    assert ease["status"] == "finished" and ease["params"]["l2"] == 10
    assert set(ease["timings"]) >= {"fit_s", "eval_s"}
    assert {"ndcg@10", "recall@10"} <= set(ease["metrics"]["test"])
    # planted blocks: EASE must beat popularity clearly
    assert ease["metrics"]["test"]["ndcg@10"] > 1.5 * pop["metrics"]["test"]["ndcg@10"]

    code, recs, _ = run_cli(
        capsys, "recommend", ease["run_id"], "--user", "u3", "-k", "5", "--json"
    )
    assert code == 0 and len(recs["items"]) == 5
    assert [r["rank"] for r in recs["items"]] == [1, 2, 3, 4, 5]
    # u3 belongs to the first block (i0-i29); only the shared popular i30/i31 may cross over
    assert all(int(r["item_id"][1:]) < 32 for r in recs["items"])

    code, runs, _ = run_cli(capsys, "runs", "--json")
    assert {r["run_id"] for r in runs["runs"]} == {pop["run_id"], ease["run_id"]}

    code, ev, _ = run_cli(capsys, "evaluate", ease["run_id"], "--k", "10", "--json")
    assert ev["metrics"]["ndcg@10"] == pytest.approx(ease["metrics"]["test"]["ndcg@10"])
    assert "ndcg@5" not in ev["metrics"]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", "--dataset", "nope", "--model", "pop"], "no dataset named 'nope'"),
        (["recommend", "no-such-run", "--user", "1"], "no run 'no-such-run'"),
        (["train", "--model", "pop"], "--dataset is required"),
    ],
)
def test_errors_are_one_line_and_exit_2(home, capsys, argv, fragment):
    code, out, err = run_cli(capsys, *argv, "--json")
    assert code == 2 and out is None
    assert err.startswith("error: ") and fragment in err and err.count("\n") == 1


def test_bad_param_names_the_parameter(home, capsys, planted_csv):
    run_cli(capsys, "ingest", planted_csv, "--name", "planted", "--json")
    code, out, err = run_cli(
        capsys, "train", "--dataset", "planted", "--model", "ease", "--param", "lambda=3"
    )
    assert code == 2 and "'lambda'" in err and "l2" in err


def test_unknown_user_is_a_clear_error(home, capsys, planted_csv):
    run_cli(capsys, "ingest", planted_csv, "--name", "planted", "--json")
    _, run, _ = run_cli(capsys, "train", "--dataset", "planted", "--model", "pop", "--json")
    code, _, err = run_cli(capsys, "recommend", run["run_id"], "--user", "ghost", "--json")
    assert code == 2 and "'ghost'" in err


def test_explain_adds_up_to_the_score(home, capsys, planted_csv):
    run_cli(capsys, "ingest", planted_csv, "--name", "planted", "--json")
    _, run, _ = run_cli(
        capsys, "train", "--dataset", "planted", "--model", "ease", "--param", "l2=10", "--json"
    )
    _, recs, _ = run_cli(capsys, "recommend", run["run_id"], "--user", "u3", "-k", "1", "--json")
    top = recs["items"][0]
    code, out, _ = run_cli(
        capsys, "explain", run["run_id"], "--user", "u3", "--item", top["item_id"], "--json"
    )
    assert code == 0 and out["user_id"] == "u3" and out["item_id"] == top["item_id"]
    assert out["score"] == pytest.approx(top["score"], rel=1e-4)
    total = out["base_value"] + sum(c["value"] for c in out["contributions"])
    assert total == pytest.approx(out["score"], rel=1e-4, abs=1e-6)
    assert all({"feature", "value"} <= set(c) for c in out["contributions"])


def test_similar_follows_the_contract(home, capsys, planted_csv):
    run_cli(capsys, "ingest", planted_csv, "--name", "planted", "--json")
    _, run, _ = run_cli(
        capsys, "train", "--dataset", "planted", "--model", "ease", "--param", "l2=10", "--json"
    )
    code, out, _ = run_cli(capsys, "similar", run["run_id"], "--item", "i5", "-k", "4", "--json")
    assert code == 0 and out["item_id"] == "i5" and len(out["neighbors"]) == 4
    assert all({"item_id", "title", "score"} <= set(n) for n in out["neighbors"])
    assert "i5" not in [n["item_id"] for n in out["neighbors"]]
    # item i5 is in the first block (i0-i29): its neighbours come from the same block
    assert all(int(n["item_id"][1:]) < 32 for n in out["neighbors"])
    assert {"type", "device", "recall_at_k"} <= set(out["index"])


def test_transfer_without_scenarios_is_a_clear_error(home, capsys, planted_csv):
    run_cli(capsys, "ingest", planted_csv, "--name", "planted", "--json")
    code, out, err = run_cli(
        capsys, "transfer", "--dataset", "planted", "--source", "a", "--target", "b", "--json"
    )
    assert code == 2 and out is None and err.startswith("error: ") and err.count("\n") == 1
    assert "scenario" in err


def test_scenario_leaderboard_is_a_job_in_the_run_store(home, capsys):
    rows = [
        (f"u{u}", f"{scen}{(u % 2) * 10 + (u * 7 + t) % 10}", u * 100 + t, scen)
        for u in range(40)
        for t, scen in enumerate(["app", "web"] * 5)
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "scenario"])
    Dataset.from_frames("multi", frame.drop_duplicates(["user_id", "item_id"])).save(home)
    code, out, _ = run_cli(
        capsys,
        *("scenarios", "leaderboard", "--dataset", "multi", "--json"),
        *("--param", "epochs=1", "--param", "batch_size=256"),
    )
    assert code == 0 and out["status"] == "finished"
    assert {r["strategy"] for r in out["leaderboard"]} == {
        "per_scenario",
        "pooled",
        "multiscenario",
        "multiscenario_ple",
    }
    assert {"app", "web", "mean"} <= set(out["leaderboard"][0])
    code, runs, _ = run_cli(capsys, "runs", "--json")
    assert [(r["run_id"], r["kind"]) for r in runs["runs"]] == [(out["run_id"], "leaderboard")]
    code, runs, _ = run_cli(capsys, "runs", "--kind", "train", "--json")
    assert runs["runs"] == []


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["scenarios", "leaderboard"], "--dataset is required"),
        (["scenarios", "leaderboard", "--dataset", "planted"], "no scenario column"),
        (["scenarios", "leaderboard", "--run-id", "../../x"], "not a run id"),
        (["transfer", "--run-id", "../x"], "not a run id"),
        (["transfer", "--dataset", "planted", "--target", "b"], "--source is required"),
    ],
)
def test_scenario_job_errors_are_one_line(home, capsys, planted_dataset, argv, fragment):
    planted_dataset.save(home)
    code, out, err = run_cli(capsys, *argv, "--json")
    assert code == 2 and out is None
    assert err.startswith("error: ") and fragment in err and err.count("\n") == 1


def test_transfer_leaves_the_text_model_out_unless_asked():
    """Issue 16: as on the Scenarios page, `recscope transfer` trains the slow text model only
    with --hybrid (an epoch of it took 190-300 s on the sample data)."""
    from core.cli.parser import build_parser

    parse = build_parser().parse_args
    base = ["transfer", "--dataset", "d", "--source", "a", "--target", "b"]
    assert parse(base).hybrid is False
    assert parse([*base, "--hybrid"]).hybrid is True
    assert parse([*base, "--no-hybrid"]).hybrid is False
    with pytest.raises(SystemExit):
        parse([*base, "--hybrid", "--no-hybrid"])
