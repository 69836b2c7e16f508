"""The whole flow in a real browser: first start, sample profile, an upload, the Runs page.

Starts `streamlit run dashboard/app.py` on a free port with an empty workspace and drives
Debian's Chromium through Playwright. Screenshots go to $RECSCOPE_SCREENSHOTS (default: the
test's tmp folder).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
UPLOAD = "user,movie,stars,when\n" + "".join(
    f"u{u},m{(u * 7 + k) % 23},{1 + (u + k) % 5},{1700000000 + 3600 * (u * 10 + k)}\n"
    for u in range(30)
    for k in range(6)
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (apt install chromium)"
    ),
]


@pytest.fixture
def server(tmp_path):
    """A Streamlit server on a fresh workspace; yields (base url, workspace path)."""
    with _serve(tmp_path) as served:
        yield served


@contextlib.contextmanager
def _serve(tmp_path, env: dict | None = None, args: tuple = ()):
    """Run `streamlit run dashboard/app.py` on a free port until the block ends."""
    home = tmp_path / "workspace"
    port = _free_port()
    log = open(tmp_path / "streamlit.log", "w")  # noqa: SIM115 - closed below
    env = {**os.environ, "RECSCOPE_HOME": str(home), **(env or {})}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "dashboard/app.py",
            "--server.headless=true",
            f"--server.port={port}",
            "--browser.gatherUsageStats=false",
            "--client.toolbarMode=viewer",
            *args,
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, timeout=90)
        yield url, home
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        text = (tmp_path / "streamlit.log").read_text()
        assert "Traceback" not in text, text[-3000:]


def test_shared_server_asks_for_the_password(tmp_path):
    """Issue 11: with sharing on (every interface) the pages ask for the login; a wrong
    password sees no data and is told so; the right one opens the Data page."""
    from playwright.sync_api import expect, sync_playwright

    from core.data.dataset import Dataset
    from dashboard import auth

    secret = tmp_path / "secret.txt"  # outside the repository, as `make share` expects
    secret.write_text("open sesame 42\n")
    rows = [(f"u{u}", f"i{(u + k) % 7}", k) for u in range(12) for k in range(4)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    Dataset.from_frames("zz_private_sales", frame).save(tmp_path / "workspace")
    env = {auth.PASSWORD_FILE_ENV: str(secret)}
    env.pop(auth.PASSWORD_ENV, None)
    shots = Path(os.environ.get("RECSCOPE_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    with _serve(tmp_path, env, ("--server.address=0.0.0.0",)) as (url, _home):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(60_000)
            for path in ("/", "/runs?dataset=zz_private_sales"):  # no page skips the gate
                page.goto(url + path)
                _settle(page, "RecScope")
                expect(page.get_by_label("Password", exact=True)).to_be_visible()
                body = page.locator("body").inner_text()
                assert "zz_private_sales" not in body and "Profile of" not in body
                assert page.locator('[data-testid="stSidebarNav"]').count() == 0
            _shot(page, shots / "login.png")
            page.get_by_label("Password", exact=True).fill("open sesame 41")
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_text(auth.WRONG)).to_be_visible(timeout=60_000)
            _settle(page, "RecScope")
            assert "zz_private_sales" not in page.locator("body").inner_text()
            _shot(page, shots / "login_wrong.png")
            page.get_by_label("Password", exact=True).fill("open sesame 42")
            page.get_by_role("button", name="Log in").click()
            _settle(page, "Data")
            expect(page.get_by_text("Profile of 'zz_private_sales'")).to_be_visible(timeout=60_000)
            _no_errors(page)
            _shot(page, shots / "data_after_login.png")
            browser.close()


def test_walk_through_data_and_runs(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)  # first start ingests the sample on a shared machine
    url, home = server
    shots = Path(os.environ.get("RECSCOPE_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.set_default_timeout(60_000)

        # First start: the sample data is ingested and profiled on the Data page.
        page.goto(url + "/")
        _settle(page, "Data")
        expect(page.get_by_text("Loaded the shipped sample data").first).to_be_visible()
        expect(page.get_by_text("Profile of 'sample'")).to_be_visible()
        for title in ("Interactions per user (long tail)", "Users shared between scenarios"):
            expect(page.get_by_text(title).first).to_be_visible()
        _no_errors(page)
        _shot(page, shots / "data_sample.png")

        # Upload a CSV with unusual column names, map them, create the dataset.
        page.get_by_text("Add a dataset").click()
        page.locator('[data-testid="stFileUploader"] input[type="file"]').first.set_input_files(
            {"name": "stars.csv", "mimeType": "text/csv", "buffer": UPLOAD.encode()}
        )
        _settle(page, "Data")
        expect(page.get_by_text("Preview").first).to_be_visible()
        _choose(page, "Time column", "when")  # not a name ingest recognises: map it by hand
        page.get_by_role("button", name="Create dataset").click()
        _settle(page, "Data")
        expect(page.get_by_text("Created dataset 'stars'")).to_be_visible()
        expect(page.get_by_text("Profile of 'stars'")).to_be_visible()
        expect(page.get_by_text("Rating distribution").first).to_be_visible()
        expect(page.get_by_text("Activity over time").first).to_be_visible()
        _no_errors(page)
        _shot(page, shots / "data_upload.png")

        # Runs page: empty first, then a real (fast) popularity run appears with metrics.
        page.locator('[data-testid="stSidebarNav"]').get_by_text("Runs").click()
        _settle(page, "Runs")
        expect(page.get_by_text("No runs yet")).to_be_visible()
        _shot(page, shots / "runs_empty.png")
        run_id = _train_pop(home)
        page.reload()  # the active dataset lives in the URL, so it survives
        _settle(page, "Runs")
        sidebar = page.locator('[data-testid="stSidebar"]')
        expect(sidebar.get_by_text("30 users · 23 items · 180 interactions")).to_be_visible()
        expect(page.get_by_text("1 finished")).to_be_visible()  # 'stars' has no runs: all shown
        _choose(page, "Dataset", "sample")
        _settle(page, "Runs")
        expect(page.get_by_text("1 finished")).to_be_visible()
        expect(page.get_by_text("Test ndcg@10 by run")).to_be_visible()
        assert run_id.startswith("pop-")
        _no_errors(page)
        _shot(page, shots / "runs.png")
        browser.close()


def _train_pop(home: Path) -> str:
    """Train the popularity baseline on the sample through the same pipeline as the CLI."""
    from core.runs.pipeline import new_run, train_run
    from core.runs.store import RunStore

    store = RunStore(home)
    run_id = new_run(store, "sample", "pop")
    record = train_run(store, run_id)
    assert record["status"] == "finished"
    return run_id


def _settle(page, heading: str) -> None:
    """Wait until the page's title is shown and Streamlit has finished running the script."""
    from playwright.sync_api import expect

    # a first start on a loaded 2-core machine takes well over expect's 5 s default
    title = page.get_by_role("heading", name=heading, exact=True).first
    expect(title).to_be_visible(timeout=60_000)
    status = page.locator('[data-testid="stStatusWidget"]')
    for _ in range(2):  # a rerun can start right after the first one ends
        page.wait_for_timeout(500)
        expect(status).to_have_count(0, timeout=120_000)


def _choose(page, label: str, option: str) -> None:
    """Pick `option` in the main-area selectbox labelled `label` (a filterable combobox)."""
    box = page.locator('[data-testid="stMain"]').get_by_role("combobox", name=label)
    box.click()
    box.fill(option)
    page.get_by_role("option").filter(has_text=option).first.click()
    page.wait_for_timeout(300)


def _shot(page, path: Path) -> None:
    """Screenshot of the whole page: Streamlit scrolls inside its main block, not the window."""
    size = page.viewport_size
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
    page.wait_for_timeout(800)  # charts re-layout to the new size
    page.screenshot(path=str(path))
    page.set_viewport_size(size)


def _no_errors(page) -> None:
    errors = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    assert errors.count() == 0, errors.all_inner_texts()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as resp:
                if resp.read().decode().strip() == "ok":
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not answer {url}/_stcore/health in {timeout:.0f}s")
