"""The Tune page in a real browser (issue 12): Start a small study, watch it finish, see the
trials, the history plot and the best run; a second browser session sees the same study.

Uses the server fixture of tests/test_e2e_browser.py. Item-kNN trials are fitted once each
(no training loop), so three trials on 200 users take seconds. Screenshots go to
$RECSCOPE_SCREENSHOTS (default: the test's tmp folder).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.test_e2e_browser import ARGS, CHROMIUM, _choose, _no_errors, _settle, _shot, server

__all__ = ["server"]  # the fixture, imported for this module's tests

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing"),
]


def _blocks(home: Path) -> None:
    """200 users in four taste blocks of 30 items: a dataset every model learns fast."""
    from core.data.dataset import Dataset

    rng = np.random.default_rng(5)
    rows = [
        (f"u{u}", f"i{(u % 4) * 30 + int(i)}", t)
        for u in range(200)
        for t, i in enumerate(rng.choice(30, 12, replace=False))
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    Dataset.from_frames("blocks", frame).save(home)


def test_a_study_started_in_the_browser_finishes_with_its_best_run(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, home = server
    _blocks(home)
    shots = Path(os.environ.get("RECSCOPE_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(url + "/tune?dataset=blocks")
        _settle(page, "Tune")
        expect(page.get_by_text("No study on blocks yet")).to_be_visible()
        _choose(page, "Model", "itemknn")
        minutes = page.get_by_role("spinbutton", name="Minutes")
        minutes.fill("0")
        minutes.press("Enter")
        trials = page.get_by_role("spinbutton", name="Trials")
        trials.fill("3")
        trials.press("Enter")
        page.wait_for_timeout(500)
        page.get_by_role("button", name="Start tuning").click()
        expect(page.get_by_text("Best parameters", exact=True)).to_be_visible(timeout=90_000)
        _settle(page, "Tune")
        expect(
            page.get_by_text("Validation NDCG@10 of each trial, and the best so far")
        ).to_be_visible()
        expect(page.get_by_text("Budget 3 trials: used")).to_be_visible()
        expect(page.get_by_text("Which parameters mattered (fANOVA importance)")).to_be_visible()
        _no_errors(page)
        _shot(page, shots / "tune_finished.png")
        other = browser.new_page(viewport={"width": 1280, "height": 900})  # a second session
        other.goto(url + "/tune?dataset=blocks")
        _settle(other, "Tune")
        expect(other.get_by_text("Best parameters", exact=True)).to_be_visible()
        expect(other.get_by_role("button", name="Resume this study for 10 min")).to_be_visible()
        browser.close()
