"""Background jobs for the Scenarios page: the strategy leaderboard and transfer curves.

Why a process and not `st.cache_resource`: the comparison trains the multiscenario model
(about a minute on a CPU for the sample data), which would freeze the page for every
user of the app. Like `core.runs.jobs`, a job runs in a detached process in its own session,
so page reruns and closed tabs do not stop it; its state lives only on disk under
`<home>/scenarios/<dataset>/`: `<kind>.status.json` (running / finished / failed, with a
message) and `<kind>.json` (the result), both written atomically. Kinds: `leaderboard`
and `transfer__<source>__<target>`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.dataset import Dataset
from core.errors import RecScopeError
from core.storage import read_json, write_json

log = logging.getLogger(__name__)

LEADERBOARD = "leaderboard"
RECS_K = 10


def folder(home: Path, dataset: str) -> Path:
    return Path(home) / "scenarios" / dataset


def transfer_kind(source: str, target: str) -> str:
    return f"transfer__{source}__{target}"


def start(home: Path, dataset: str, kind: str, options: dict | None = None) -> int:
    """Launch the job in a detached process; returns its pid."""
    out = folder(home, dataset)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{kind}.status.json", {"status": "running", "message": "Starting…"})
    args = json.dumps([str(home), dataset, kind, options or {}])
    code = f"import json; from core.runs.scenario_jobs import run; run(*json.loads({args!r}))"
    log_file = open(out / f"{kind}.log", "ab")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    log_file.close()
    return proc.pid


def status(home: Path, dataset: str, kind: str) -> dict | None:
    """The job's status record (None when never started); a dead job reads as failed."""
    path = folder(home, dataset) / f"{kind}.status.json"
    if not path.exists():
        return None
    record = read_json(path)
    pid = record.get("pid")
    if record.get("status") == "running" and pid and not _alive(int(pid)):
        record = {"status": "failed", "message": "The job stopped before finishing."}
    return record


def result(home: Path, dataset: str, kind: str) -> dict | None:
    path = folder(home, dataset) / f"{kind}.json"
    return read_json(path) if path.exists() else None


def recommendations(home: Path, dataset: str) -> pd.DataFrame | None:
    """strategy, scenario, user_code, rank, item_code of the leaderboard job (None before)."""
    path = folder(home, dataset) / "recs.parquet"
    return pd.read_parquet(path) if path.exists() else None


def run(home: str, dataset_name: str, kind: str, options: dict) -> None:
    """The job body (in the child process): compute, write the result, mark the status."""
    out = folder(Path(home), dataset_name)
    state = out / f"{kind}.status.json"
    tick = time.perf_counter()
    write_json(state, {"status": "running", "pid": os.getpid(), "message": "Loading…"})
    try:
        dataset = Dataset.load(Path(home), dataset_name)
        if kind == LEADERBOARD:
            payload = leaderboard_job(dataset, out, options, state)
        elif kind.startswith("transfer__"):
            _, source, target = kind.split("__")
            from core.scenarios.transfer import profile_similarity, transfer_experiment

            msg = "Training the transfer models…"
            write_json(state, {"status": "running", "pid": os.getpid(), "message": msg})
            payload = transfer_experiment(dataset, source, target, **options)
            sim = profile_similarity(dataset, source, target)
            payload["profiles"] = sim
        else:
            raise RecScopeError(f"Scenario job '{kind}' is unknown.")
        payload["elapsed_s"] = round(time.perf_counter() - tick, 1)
        write_json(out / f"{kind}.json", payload)
        write_json(state, {"status": "finished", "elapsed_s": payload["elapsed_s"]})
    except RecScopeError as err:
        write_json(state, {"status": "failed", "message": str(err)})
    except Exception as err:  # noqa: BLE001 - the page shows one sentence, the log the rest
        log.exception("scenario job %s failed", kind)
        write_json(state, {"status": "failed", "message": f"{type(err).__name__}: {err}"})


def leaderboard_job(dataset: Dataset, out: Path, options: dict, state: Path) -> dict:
    """Fit all strategies (loo split), evaluate per scenario, store top-k per scenario."""
    from core.data.split import split
    from core.scenarios.strategies import (
        STRATEGIES,
        evaluate_by_scenario,
        leaderboard,
        make_strategy,
    )

    parts = split(dataset, "loo", seed=int(options.get("seed", 42)))
    base = options.get("base", "ease")
    catalogue = options.get("catalogue", "scenario")
    results, recs = {}, []
    for i, name in enumerate(STRATEGIES, 1):
        write_json(
            state, {"status": "running", "pid": os.getpid(), "message": f"Training {name} ({i}/3)…"}
        )
        params = options.get("multiscenario_params", {}) if name == "multiscenario" else {}
        strategy = make_strategy(name, base, **params)
        tick = time.perf_counter()
        strategy.fit(parts.train, parts.valid)
        fit_s = time.perf_counter() - tick
        res = evaluate_by_scenario(strategy, parts, catalogue=catalogue)
        res.fit_s = fit_s
        results[name] = res
        recs.append(_top_items(strategy, dataset, parts))
    board = leaderboard(results)
    tables = {k: r.table.to_dict(orient="records") for k, r in results.items()}
    pd.concat(recs, ignore_index=True).to_parquet(out / "recs.parquet", index=False)
    notes = sorted({n for r in results.values() for n in r.notes})
    return {
        "base": base,
        "catalogue": catalogue,
        "split": "loo",
        "leaderboard": board.to_dict(orient="records"),
        "tables": tables,
        "notes": notes,
    }


def _top_items(strategy, dataset: Dataset, parts) -> pd.DataFrame:
    """Top RECS_K items per user per scenario from the user's whole history (seen excluded)."""
    import torch

    from core.scenarios.strategies import OUTSIDE, scenario_catalogues

    known = parts.known_for("test").concat(parts.test)
    strategy.set_history(known)
    csr = known.csr()
    allowed = torch.from_numpy(scenario_catalogues(dataset))
    users = np.flatnonzero(np.diff(csr.indptr) > 0)
    frames = []
    for code, name in enumerate(dataset.scenarios or ["all"]):
        for lo in range(0, len(users), 1024):
            batch = users[lo : lo + 1024]
            with torch.inference_mode():
                scores = strategy.score_scenario(batch, code).float()  # (B, n_items)
                scores = scores.masked_fill(~allowed[code], OUTSIDE)
                seen = torch.from_numpy(csr[batch].toarray() > 0)
                scores = scores.masked_fill(seen, float("-inf"))
                top = torch.topk(scores, min(RECS_K, scores.shape[1]), dim=1).indices.numpy()
            k = top.shape[1]
            frames.append(
                pd.DataFrame(
                    {
                        "strategy": strategy.strategy,
                        "scenario": name,
                        "user_code": np.repeat(batch, k),
                        "rank": np.tile(np.arange(1, k + 1), len(batch)),
                        "item_code": top.reshape(-1),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True
