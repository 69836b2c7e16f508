"""RecScope at catalogue scale (issue 15): generate, ingest, plan, train and evaluate, one JSON.

    .venv/bin/python bench/scale.py --home /tmp/scale/ws                 # 10M rows, every model
    .venv/bin/python bench/scale.py --home /tmp/scale/ws --rows 20000000 --models pop,itemknn
    .venv/bin/python bench/scale.py --home /tmp/scale/ws --skip-ingest --pages

Stages, each in its own child process so that its peak memory is its own (`os.wait4`'s
rusage): `generate` (bench/ingest.py's generator: rows/50 users, rows/200 items, Zipf-ish
item popularity; the CSV is kept next to the workspace and reused), `ingest` (the CLI's
`ingest`, as an analyst's upload runs it), then per model `plan` (`recscope train --dry-run
--json`: the estimate and verdict before any run exists) and `train` (`recscope train
--json`: fit and full-ranking evaluation of valid and test, the run record written as for
any run). Neural models train for `--epochs` (default 1) epochs: the question at this size
is whether an epoch runs and how long it takes, not the converged accuracy. A model the plan
refuses is not trained; its refusal sentence is reported. `--pages` then runs
bench/page_times.py on the workspace (first and second open of every page).

Per stage: wall seconds, CPU seconds (user + system of the child), peak resident memory
(MB) and the 1-minute load average before it; per model also the run's own fit and
evaluation seconds and test NDCG@10 from its run record. Times on a shared machine are upper
bounds: the load average says how shared it was. `--out` is rewritten after every stage, so
a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from ingest import make_csv  # noqa: E402  (bench/ingest.py: the one generator)

#: every registered model, cheapest first (a cut-short run keeps the cheap ones)
MODELS = "pop,itemknn,ease,bpr,lightgcn,neumf,gru4rec,sasrec,bert4rec,hybrid,multiscenario"


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    home = args.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RECSCOPE_HOME": str(home)}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    name = args.name or f"scale{args.rows // 1000}k"
    report: dict = {
        "benchmark": "scale",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "rows_generated": args.rows,
        "dataset": name,
        "stages": {},
        "models": {},
    }
    csv = args.csv or home.parent / f"ratings_{args.rows}.csv"
    if not args.skip_ingest:
        if not csv.exists():
            report["stages"]["generate"] = _timed_call(lambda: make_csv(csv, args.rows))
            _write(report, args.out)
        cmd = [*_cli(), "ingest", str(csv), "--name", name, "--replace"]
        report["stages"]["ingest"] = _child(cmd, env, args.timeout)
        _write(report, args.out)
    for model in [m for m in args.models.split(",") if m]:
        report["models"][model] = _model(model, name, home, env, args)
        _write(report, args.out)
    if args.pages:
        cmd = [sys.executable, str(ROOT / "bench" / "page_times.py"), "--home", str(home)]
        cmd += ["--name", name]
        report["pages"] = _child(cmd, env, args.timeout, parse_json=True)
    print(_write(report, args.out))


def _model(model: str, dataset: str, home: Path, env: dict, args) -> dict:
    """Plan, then (unless refused) train and evaluate one model through the CLI."""
    request = ["--dataset", dataset, "--model", model, "--json"]
    if model not in ("pop", "itemknn", "ease"):
        request += ["--epochs", str(args.epochs)]
    out: dict = {"plan": _child([*_cli(), "train", "--dry-run", *request], env, 600, True)}
    if (out["plan"].get("json") or {}).get("verdict") == "refused":
        out["refused"] = True
        return out
    before = set(_run_ids(home))
    out["train"] = _child([*_cli(), "train", *request], env, args.timeout, parse_json=True)
    said = (out["train"].pop("json", None) or {}).get("run_id")
    # the run the CLI named; else this model's new run (another process may train meanwhile)
    new = (
        [said]
        if said
        else [r for r in sorted(set(_run_ids(home)) - before) if r.startswith(f"{model}-")]
    )
    if new:
        record = json.loads((home / "runs" / new[-1] / "run.json").read_text())
        out["run"] = {
            "run_id": new[-1],
            "status": record.get("status"),
            **(record.get("timings") or {}),
            "ndcg@10": (record.get("metrics") or {}).get("test", {}).get("ndcg@10"),
            "error": record.get("error"),
        }
    return out


def _child(cmd: list[str], env: dict, timeout: float, parse_json: bool = False) -> dict:
    """Run `cmd`; its wall and CPU seconds, peak RSS, exit status and (optionally) JSON.

    The child is reaped with `os.wait4`, whose rusage is that child's own (RUSAGE_CHILDREN
    would give the largest of all children so far).
    """
    load = round(os.getloadavg()[0], 2)
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        timed_out = not killer.is_alive()
        killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    result: dict = {
        "wall_s": round(time.perf_counter() - start, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "exit": proc.returncode,
        "timed_out": timed_out,
        "load_before": load,
    }
    if parse_json:
        result["json"] = _last_json(stdout)
    if proc.returncode != 0:
        result["stderr_tail"] = stderr.strip()[-600:]
    print(f"{' '.join(cmd[3:])}: {json.dumps(result)[:400]}", file=sys.stderr)
    return result


def _timed_call(fn) -> dict:
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return {
        "wall_s": round(time.perf_counter() - start, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
    }


def _last_json(text: str) -> dict | None:
    """The JSON document a CLI command printed (its last top-level object)."""
    start = text.find("{")
    while start != -1:
        try:
            return json.loads(text[start:])
        except json.JSONDecodeError:
            start = text.find("\n{", start + 1)
            start = start + 1 if start != -1 else -1
    return None


def _run_ids(home: Path) -> list[str]:
    folder = home / "runs"
    return [p.name for p in folder.iterdir()] if folder.exists() else []


def _cli() -> list[str]:
    return [sys.executable, "-m", "core.cli"]


def _write(report: dict, out: Path | None) -> str:
    text = json.dumps(report, indent=2)
    if out:
        out.write_text(text + "\n")
    return text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--home", type=Path, required=True, help="the workspace (RECSCOPE_HOME)")
    p.add_argument("--rows", type=int, default=10_000_000, help="rows to generate")
    p.add_argument("--csv", type=Path, help="an existing CSV instead of generating one")
    p.add_argument("--name", help="dataset name (default scale<thousands>k)")
    p.add_argument("--skip-ingest", action="store_true", help="the dataset is already there")
    p.add_argument("--models", default=MODELS, help="comma-separated")
    p.add_argument("--epochs", type=int, default=1, help="epochs of the loop-trained models")
    p.add_argument("--threads", type=int, default=0, help="OMP threads (0: torch's default)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per stage")
    p.add_argument("--pages", action="store_true", help="also time every page (browser)")
    p.add_argument("--out", type=Path, help="also write the JSON document here")
    return p


if __name__ == "__main__":
    main()
