"""First-open and second-open times of every page in a real browser (issue 16: under 3 s).

Starts `streamlit run dashboard/app.py` on a workspace (a fresh server: its caches are
cold), opens `/?dataset=NAME` (the Data page; timed as `initial_load`), then clicks each page
in the sidebar twice over: the first pass is each page's first open in that server, the
second pass its second open. For every click it records `shown_s`, seconds until the page
shows something (its title, or a spinner: a fresh server's first run shows "Starting
RecScope…" while it imports torch and friends), `heading_s`, seconds until the page's title
is shown, `done_s`, seconds until Streamlit's
"Running…" status widget is gone as well and stays gone for `--quiet` s (the page's script
has finished; the quiet time is not counted), and `cpu_s`, the CPU seconds the server
process spent meanwhile (user + system: on a loaded machine wall times stretch, CPU seconds
much less). Files a page writes to disk (text embeddings,
the item map) are kept by the workspace: run on a fresh one (`--prepare`) for the cold case.

`--prepare` first ingests the data (default: the shipped sample; `--ingest FILE [--items
FILE]` for another) and trains `--models` through the CLI, so the Compare and User explorer
pages have finished runs. Prints one JSON document (with the load average and CPU count:
timings on a shared machine are noisy); progress goes to stderr. Usage:

    .venv/bin/python bench/page_times.py --home /tmp/pt/ws --prepare [--models ease bpr]
    .venv/bin/python bench/page_times.py --home /tmp/pt/ml --prepare --name ml-100k \\
        --ingest ml-100k.inter --items ml-100k.item --models pop ease
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from core.models import model_class

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
#: sidebar label -> the page's title (st.title), in the sidebar's order
PAGES = {
    "Data": "Data",
    "Train": "Train",
    "Runs": "Runs",
    "Compare": "Compare runs",
    "User explorer": "User explorer",
    "Items": "Items",
    "Scenarios": "Scenarios",
    "Tune": "Tune",
}
#: the page is ready: its title is shown and no script run is in progress
_STATE = """(title) => {
  const shown = [...document.querySelectorAll('[data-testid="stMain"] h1')]
    .some((h) => h.innerText.trim() === title);
  const busy = document.querySelector('[data-testid="stStatusWidget"]') !== null;
  const spinner = '[data-testid="stMain"] [data-testid="stSpinner"]';
  const something = shown || document.querySelector(spinner) !== null;
  return [shown, busy, something];
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="the workspace (RECSCOPE_HOME)")
    parser.add_argument("--name", default="sample", help="the dataset to open")
    parser.add_argument("--prepare", action="store_true", help="ingest and train first")
    parser.add_argument("--ingest", type=Path, default=SAMPLE / "interactions.csv")
    parser.add_argument("--items", type=Path, default=None)
    parser.add_argument("--models", nargs="+", default=["ease", "bpr"])
    parser.add_argument("--epochs", type=int, default=2, help="for loop-trained models")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per page open")
    parser.add_argument("--quiet", type=float, default=1.0, help="seconds without a rerun")
    parser.add_argument(
        "--log", type=Path, default=None, help="the server's log (default: HOME-streamlit.log)"
    )
    args = parser.parse_args()

    env = {**os.environ, "RECSCOPE_HOME": str(args.home)}
    prepared = _prepare(args, env) if args.prepare else None
    load_start = os.getloadavg()
    server = _server(env, args.log or args.home.parent / f"{args.home.name}-streamlit.log")
    with server as url:
        timings = _measure(url, args.name, args.timeout, args.quiet, server.cpu)
    report = {
        "dataset": args.name,
        "home": str(args.home),
        "prepared": prepared,
        "cpu_count": os.cpu_count(),
        "load_avg_start": [round(x, 2) for x in load_start],
        "load_avg_end": [round(x, 2) for x in os.getloadavg()],
        **timings,
        "slowest_first_open": max(timings["first"].items(), key=lambda kv: kv[1]["done_s"]),
    }
    print(json.dumps(report, indent=2))


def _prepare(args, env: dict) -> dict:
    """Ingest `--ingest` as `--name` (when the workspace lacks it) and train `--models`."""
    cli = [sys.executable, "-m", "core.cli"]
    done: dict = {"ingest_s": None, "train_s": {}}
    if not (args.home / "datasets" / args.name).exists():
        side = []
        if args.items:
            side = ["--items", str(args.items)]
        elif args.ingest == SAMPLE / "interactions.csv":
            side = ["--items", str(SAMPLE / "items.csv"), "--users", str(SAMPLE / "users.csv")]
        start = time.perf_counter()
        _run([*cli, "ingest", str(args.ingest), "--name", args.name, *side, "--json"], env)
        done["ingest_s"] = round(time.perf_counter() - start, 1)
    for model in args.models:
        epochs = ["--epochs", str(args.epochs)] if model_class(model).trains_with_loop else []
        start = time.perf_counter()
        _run([*cli, "train", "--dataset", args.name, "--model", model, *epochs, "--json"], env)
        done["train_s"][model] = round(time.perf_counter() - start, 1)
        _log(f"trained {model} in {done['train_s'][model]} s")
    return done


def _run(cmd: list[str], env: dict) -> None:
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")


def _measure(url: str, name: str, timeout: float, quiet: float, cpu) -> dict:
    """Open the app, then every page twice through the sidebar; seconds per open (`cpu()`:
    the server's CPU seconds so far)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.set_default_timeout(timeout * 1000)
        start, used = time.perf_counter(), cpu()
        page.goto(f"{url}/?dataset={name}")
        initial = _wait_ready(page, PAGES["Data"], start, timeout, quiet)
        initial["cpu_s"] = round(cpu() - used, 2)
        _log(f"initial load (Data): {initial}")
        passes = {}
        for which in ("first", "second"):
            passes[which] = {}
            for label, title in [*list(PAGES.items())[1:], ("Data", "Data")]:
                nav = page.locator('[data-testid="stSidebarNav"]').get_by_text(label, exact=True)
                start, used = time.perf_counter(), cpu()
                nav.click()
                passes[which][label] = _wait_ready(page, title, start, timeout, quiet)
                passes[which][label]["cpu_s"] = round(cpu() - used, 2)
                _log(f"{which} open of {label}: {passes[which][label]}")
        browser.close()
    return {"initial_load": initial, **passes}


def _wait_ready(page, title: str, start: float, timeout: float, quiet: float) -> dict:
    """Poll until `title` is shown and no script runs for `quiet` s; seconds from `start`."""
    heading = ready = first = None
    while time.perf_counter() - start < timeout:
        shown, busy, something = page.evaluate(_STATE, title)
        now = time.perf_counter()
        if something and first is None:
            first = now - start
        if shown and heading is None:
            heading = now - start
        if shown and not busy:
            ready = ready if ready is not None else now - start
            if now - start - ready >= quiet:
                seen = {"shown_s": round(first, 2), "heading_s": round(heading, 2)}
                return {**seen, "done_s": round(ready, 2)}
        else:
            ready = None
        time.sleep(0.05)
    raise TimeoutError(f"page '{title}' was not ready within {timeout:.0f} s")


class _server:
    """`streamlit run dashboard/app.py` on a free port for the duration of a with-block."""

    def __init__(self, env: dict, log: Path) -> None:
        self.env, self.log = env, log

    def __enter__(self) -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.out = open(self.log, "w")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "dashboard/app.py",
             "--server.headless=true", f"--server.port={port}",
             "--browser.gatherUsageStats=false", "--client.toolbarMode=viewer"],
            cwd=ROOT, env=self.env, stdout=self.out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as resp:
                    if resp.read().decode().strip() == "ok":
                        return url
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"streamlit did not start; see {self.log}")

    def cpu(self) -> float:
        """CPU seconds (user + system) the server process has used so far (Linux /proc)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.out.close()


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
