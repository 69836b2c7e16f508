"""RecScope's only entry point: `streamlit run dashboard/app.py`.

A router: page config, the login gate (dashboard/auth.py: nothing below it renders for a
visitor who has not logged in, so no page can forget it), the shared sidebar (workspace,
active dataset), then the page the visitor picked. Pages live in `pages/`, each exposing
`render()`; add one by adding a line to PAGES.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # works from a plain checkout too, not only when installed
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from core.runs.store import workspace_home  # noqa: E402
from dashboard import auth, shell  # noqa: E402
from pages import compare, data, items, runs, scenarios, train, tune, user  # noqa: E402

# One line per page: (render function, title, URL path, icon). The first one opens first.
PAGES = [
    (data.render, "Data", "data", ":material/table_chart:"),
    (train.render, "Train", "train", ":material/model_training:"),
    (runs.render, "Runs", "runs", ":material/history:"),
    (compare.render, "Compare", "compare", ":material/compare_arrows:"),
    (user.render, "User explorer", "user", ":material/person_search:"),
    (items.render, "Items", "items", ":material/category:"),
    (scenarios.render, "Scenarios", "scenarios", ":material/hub:"),
    (tune.render, "Tune", "tune", ":material/tune:"),
]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    st.set_page_config(page_title="RecScope", page_icon=":material/insights:", layout="wide")
    if not auth.gate():  # before anything reads the workspace: no data without the login
        return
    home = workspace_home()
    with shell.guard("loading the sample data"):
        note = shell.ensure_sample(home)
        if note:
            st.toast(note, icon=":material/info:")
            st.info(note)
    pages = [
        st.Page(shell.guarded(render), title=title, url_path=url, icon=icon, default=i == 0)
        for i, (render, title, url, icon) in enumerate(PAGES)
    ]
    page = st.navigation(pages)
    shell.register_pages(pages)
    shell.sidebar(home)
    page.run()


main()
