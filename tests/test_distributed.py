"""Issue 13: training on two gloo processes under torchrun, through the one loop and the CLI.

Every test here starts real processes (torchrun and its ranks) on the CPU; the data is the
tiny planted set, so each two-process run takes seconds, most of it starting Python.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core import distributed
from core.distributed import World
from core.errors import ParameterError
from core.runs import jobs
from core.runs.pipeline import closed_form_note, new_run
from core.runs.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
QUICK = {
    "bpr": {"dim": 16, "epochs": 6, "batch_size": 128, "lr": 0.02, "patience": 100},
    "sasrec": {"dim": 16, "epochs": 6, "batch_size": 32, "lr": 0.01, "max_len": 16},
}
#: NDCG@10 of two processes vs one with the same seed: the same number of optimiser steps of
#: the same global batch, but other batches and negatives, so equal only within noise
TOLERANCE = 0.08


@pytest.fixture
def store(home, planted_dataset) -> RunStore:
    planted_dataset.save(home)
    return RunStore(home)


def _train(home: Path, model: str, *extra: str, timeout: float = 120) -> tuple[dict, str]:
    """`recscope train --dataset planted --model M … --json`: (its JSON, its stderr)."""
    params = [arg for key, value in QUICK[model].items() for arg in ("--param", f"{key}={value}")]
    command = [sys.executable, "-m", "core.cli", "train", "--dataset", "planted"]
    command += ["--model", model, "--device", "cpu", *params, *extra, "--json"]
    env = {**os.environ, "RECSCOPE_HOME": str(home)}
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), done.stderr  # stdout is exactly one JSON document


def test_world_comes_from_torchruns_environment(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert distributed.world() == World(rank=0, size=1)
    assert not distributed.world().distributed and distributed.world().leader
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert distributed.world() == World(rank=3, size=4)
    assert distributed.backend_for(torch.device("cpu")) == "gloo"
    assert distributed.backend_for(torch.device("cuda", 1)) == "nccl"


def test_each_rank_takes_a_strided_share_of_the_same_length():
    order = torch.tensor([9, 2, 7, 0, 5, 1, 8, 3, 6, 4])  # n = 10 over 3 ranks: 4 each
    shares = [distributed.shard(order, World(rank=r, size=3)).tolist() for r in range(3)]
    assert shares == [[9, 0, 8, 4], [2, 5, 3, 9], [7, 1, 6, 2]]  # padded with the start
    assert set(sum(shares, [])) == set(range(10))
    tiny = [distributed.shard(torch.tensor([5]), World(rank=r, size=2)).tolist() for r in (0, 1)]
    assert tiny == [[5], [5]]


def test_the_torchrun_commands_for_one_and_several_machines():
    one = distributed.torchrun_command(4, ["train", "--run-id", "bpr-1"])
    assert one[1:] == [
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=4",
        "-m",
        "core.cli",
        "train",
        "--run-id",
        "bpr-1",
    ]
    assert one[0] == sys.executable  # the ranks run in this environment
    several = distributed.multinode_command(8, ["train", "--dataset", "ml"], endpoint="h0:29500")
    assert several == (
        "torchrun --nnodes=2 --node-rank=$NODE_RANK --nproc-per-node=8 --rdzv-backend=c10d "
        "--rdzv-endpoint=h0:29500 -m core.cli train --dataset ml"
    )


def test_print_torchrun_gives_both_commands_and_trains_nothing(home, capsys):
    from core.cli import main

    argv = ["train", "--dataset", "sample", "--model", "sasrec", "--nproc", "8"]
    assert main([*argv, "--print-torchrun", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    request = "train --dataset sample --model sasrec --split loo --seed 42 --device auto"
    assert printed["one_machine"] == f"recscope {request} --nproc 8 --json"
    assert printed["several_machines"] == (
        "torchrun --nnodes=2 --node-rank=$NODE_RANK --nproc-per-node=8 --rdzv-backend=c10d "
        f"--rdzv-endpoint=HOST:29500 -m core.cli {request} --json"
    )
    assert not any((home / "runs").iterdir())  # nothing was created or trained


def test_more_gpu_processes_than_gpus_is_one_sentence(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ParameterError) as err:
        distributed.check_nproc(4, torch.device("cuda"))
    assert str(err.value) == (
        "--nproc 4 asks for 4 GPUs but 2 are visible; use --nproc 2 or fewer, or --device cpu "
        "to train 4 CPU processes."
    )
    distributed.check_nproc(4, torch.device("cpu"))  # gloo: as many CPU processes as asked
    distributed.check_nproc(2, torch.device("cuda"))
    with pytest.raises(ParameterError) as err:
        distributed.check_nproc(2, torch.device("cuda:1"))
    assert str(err.value) == (
        "--nproc 2 puts one process on each of GPUs 0..1, so it cannot be combined with "
        "--device cuda:1; pass --device cuda (or hide GPUs with CUDA_VISIBLE_DEVICES)."
    )


@pytest.mark.slow
@pytest.mark.parametrize("model", ["bpr", "sasrec"])
def test_two_gloo_processes_train_like_one(home, store, model):
    # a hang ends in _train's timeout; speed belongs to bench/, not to an assertion here
    # (this one, "under 60 s", failed on a machine busy with two 10M-row trainings)
    two, log = _train(home, model, "--nproc", "2")
    one, _ = _train(home, model)
    # both ranks finished; rank 0 alone wrote the run (one record, one line per epoch)
    assert "rank 1 of 2 finished its share of run " + two["run_id"] in log
    assert two["status"] == "finished" and two["distributed"]["world_size"] == 2
    assert two["distributed"]["backend"] == "gloo"
    per_rank = two["distributed"]["rank_samples_per_s"]
    assert len(per_rank) == 2 and all(v > 0 for v in per_rank)
    assert one["distributed"] == {
        "world_size": 1,
        "backend": None,
        "rank_samples_per_s": one["distributed"]["rank_samples_per_s"],
    }
    assert sorted(p.name for p in store.root.iterdir()) == sorted([one["run_id"], two["run_id"]])
    events = store.progress(two["run_id"])
    assert [e["epoch"] for e in events] == list(range(1, QUICK[model]["epochs"] + 1))
    record = store.read(two["run_id"])
    assert record["nproc"] == 2 and (store.model_dir(two["run_id"]) / "config.json").exists()
    both = [one["metrics"]["test"]["ndcg@10"], two["metrics"]["test"]["ndcg@10"]]
    assert min(both) > 0.15, both  # both learned the planted blocks (popularity: ~0.1)
    assert abs(both[0] - both[1]) <= TOLERANCE, both


@pytest.mark.slow
@pytest.mark.parametrize("model", ["bpr", "sasrec"])
def test_gradients_are_averaged_so_the_ranks_stay_identical(home, store, tmp_path, model):
    out = tmp_path / "ranks"
    out.mkdir()
    worker = ROOT / "tests" / "ddp_worker.py"
    params = json.dumps({**QUICK[model], "epochs": 2})
    command = distributed.torchrun_command(2, [])[:5] + [str(worker), str(home), model, params]
    done = subprocess.run(
        [*command, str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    r0, r1 = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["first_batch"] != r1["first_batch"], "the ranks must train on different shares"
    assert len(r0["steps"]) == 3 and r0["steps"] == r1["steps"]  # identical after every step
    assert len(set(r0["steps"])) == 3  # and the steps did change the weights
    w0, w1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    assert r0["result"]["world_size"] == r1["result"]["world_size"] == 2
    assert r0["result"]["epochs_run"] == r1["result"]["epochs_run"] == 2
    assert r0["result"]["best_epoch"] is not None and r1["result"]["best_epoch"] is None


@pytest.mark.slow
def test_a_closed_form_model_runs_once_and_says_so(home, store):
    record, log = _train_closed_form(home)
    note = closed_form_note("pop", 2)
    assert record["distributed"] == {"world_size": 1, "backend": None, "note": note}
    assert "rank 1: " + note in log
    assert record["status"] == "finished" and record["metrics"]["test"]["ndcg@10"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("how", ["cancel", "kill"])
def test_cancel_or_kill_stops_every_rank(store, how):
    """Cancel (the page's button: SIGTERM to the launcher's group) ends every rank and the run
    reads cancelled; a SIGKILL of the group leaves no orphan rank either."""
    run_id = new_run(
        store,
        "planted",
        "bpr",
        device="cpu",
        params={"dim": 16, "batch_size": 8, "epochs": 500, "patience": 500},
        nproc=2,
    )
    pid = jobs.start_job(store, run_id)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not store.progress(run_id):
        time.sleep(0.3)
    assert store.progress(run_id), f"no epoch finished: {store.read(run_id)}"
    ranks = _processes_of(run_id)
    assert len(ranks) >= 4, ranks  # the launcher, torchrun and the two ranks
    if how == "cancel":
        jobs.cancel_job(store, run_id)
    else:
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _alive(ranks):
        time.sleep(0.3)
    assert not _alive(ranks), f"left behind: {_alive(ranks)}"
    record = store.read(run_id)
    assert record["status"] == ("cancelled" if how == "cancel" else "failed"), record
    if how == "cancel":
        assert not store.model_dir(run_id).exists()  # nothing saved


# -- helpers -------------------------------------------------------------------------


def _train_closed_form(home: Path) -> tuple[dict, str]:
    command = [sys.executable, "-m", "core.cli", "train", "--dataset", "planted"]
    command += ["--model", "pop", "--nproc", "2", "--json"]
    env = {**os.environ, "RECSCOPE_HOME": str(home)}
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), done.stderr


def _processes_of(run_id: str) -> list[int]:
    """Every live process whose command line names the run (launcher, torchrun, ranks)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if run_id.encode() in cmdline:
                found.append(int(entry.name))
    return found


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            alive.append(pid)
    return alive
