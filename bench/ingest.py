"""Ingest throughput and peak memory on generated CSVs (1M and 10M rows by default).

Each size is ingested in its own child process so that peak memory (ru_maxrss) is per
size. `*_cpu_s` are CPU seconds of all threads: steadier than wall time on a busy machine.
Stages: read_validate = core.data.ingest.ingest.load_interactions,
build_codes = Dataset.from_frames, save = Dataset.save. Prints one JSON document on stdout. Usage:
    .venv/bin/python bench/ingest.py [--sizes 1000000 10000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

CHUNK = 1_000_000


def make_csv(path: Path, rows: int, seed: int = 0) -> None:
    """user,item,rating,timestamp with Zipf-ish item popularity; written in 1M-row chunks."""
    rng = np.random.default_rng(seed)
    n_users, n_items = max(rows // 50, 10), max(rows // 200, 10)
    schema = pa.schema(
        [
            ("user", pa.int64()),
            ("item", pa.int64()),
            ("rating", pa.int8()),
            ("timestamp", pa.int64()),
        ]
    )
    popularity = 1.0 / (np.arange(n_items) + 10.0) ** 0.8  # long tail, few repeats
    popularity /= popularity.sum()
    with pacsv.CSVWriter(str(path), schema) as writer:
        for start in range(0, rows, CHUNK):
            size = min(CHUNK, rows - start)
            item = rng.choice(n_items, size, p=popularity)
            batch = pa.record_batch(
                [
                    pa.array(rng.integers(0, n_users, size)),
                    pa.array(item),
                    pa.array(rng.integers(1, 6, size).astype(np.int8)),
                    pa.array(1_600_000_000 + rng.integers(0, 10**8, size)),
                ],
                schema=schema,
            )
            writer.write_batch(batch)


def child(path: str, home: str) -> dict:
    """Runs in the child: ingest once, time the stages, report this process's peak RSS."""
    import pandas as pd  # noqa: F401  (imports counted in the baseline, not the ingest)

    from core.data.dataset import Dataset
    from core.data.ingest.ingest import load_interactions

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    load = os.getloadavg()[0]
    marks = [(time.perf_counter(), time.process_time())]
    frame, report = load_interactions(path)
    marks.append((time.perf_counter(), time.process_time()))
    after_read = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    dataset = Dataset.from_frames("bench", frame, info={"report": report.to_dict()})
    marks.append((time.perf_counter(), time.process_time()))
    dataset.save(Path(home))
    marks.append((time.perf_counter(), time.process_time()))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stages = {}
    for i, stage in enumerate(("read_validate", "build_codes", "save")):
        stages[f"{stage}_s"] = round(marks[i + 1][0] - marks[i][0], 2)
        stages[f"{stage}_cpu_s"] = round(marks[i + 1][1] - marks[i][1], 2)
    total = marks[-1][0] - marks[0][0]
    return {
        "rows_read": report.rows_read,
        "rows_kept": report.rows_kept,
        "duplicates": report.duplicates,
        **stages,
        "total_s": round(total, 2),
        "rows_per_s": round(report.rows_read / total),
        "read_validate_rows_per_s": round(report.rows_read / (marks[1][0] - marks[0][0])),
        "peak_rss_mb": round(peak / 1024),
        "peak_rss_after_read_mb": round(after_read / 1024),
        "baseline_rss_mb": round(base / 1024),
        "load_average_1m": round(load, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--keep", type=Path, default=None, help="folder for the CSVs (kept)")
    parser.add_argument("--child", nargs=2, metavar=("CSV", "HOME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    root = Path(__file__).resolve().parents[1]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for rows in args.sizes:
            path = folder / f"ratings_{rows}.csv"
            t0 = time.perf_counter()
            if not path.exists():
                make_csv(path, rows)
            made = time.perf_counter() - t0
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(path), str(Path(tmp) / "home")],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result.update(rows=rows, file_mb=round(path.stat().st_size / 2**20, 1))
            result["generate_s"] = round(made, 2)
            results.append(result)
            print(json.dumps(result), file=sys.stderr)
    print(json.dumps({"benchmark": "ingest", "results": results}, indent=2))


if __name__ == "__main__":
    main()
