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

from dashboard import auth  # noqa: E402  (light: streamlit and pandas only)

# One line per page: (module in pages/ with its render(), title, URL path, icon). The first
# one opens first. The modules are imported on a server's first run, under a spinner.
PAGES = [
    ("data", "Data", "data", ":material/table_chart:"),
    ("train", "Train", "train", ":material/model_training:"),
    ("runs", "Runs", "runs", ":material/history:"),
    ("compare", "Compare", "compare", ":material/compare_arrows:"),
    ("user", "User explorer", "user", ":material/person_search:"),
    ("items", "Items", "items", ":material/category:"),
    ("scenarios", "Scenarios", "scenarios", ":material/hub:"),
    ("tune", "Tune", "tune", ":material/tune:"),
]
#: shown while a fresh server imports torch, scipy, shap and plotly (several seconds, once)
STARTING = "Starting RecScope: loading its libraries (only a fresh server waits for this)…"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    st.set_page_config(page_title="RecScope", page_icon=":material/insights:", layout="wide")
    if not auth.gate():  # before anything reads the workspace: no data without the login
        return
    with st.spinner(STARTING):  # Streamlit shows it only if this takes over half a second
        shell, workspace_home, modules = _import_app()
    home = workspace_home()
    with shell.guard("loading the sample data"):
        note = shell.ensure_sample(home)
        if note:
            st.toast(note, icon=":material/info:")
            st.info(note)
    pages = [
        st.Page(
            shell.guarded(modules[module].render),
            title=title,
            url_path=url,
            icon=icon,
            default=i == 0,
        )
        for i, (module, title, url, icon) in enumerate(PAGES)
    ]
    page = st.navigation(pages)
    shell.register_pages(pages)
    shell.sidebar(home)
    page.run()


def _import_app():
    """The shell, the workspace picker and every page module (cached by Python after the
    first run): imported here rather than at the top so that the login gate and the
    spinner reach the browser before torch and friends are loaded."""
    from core.runs.store import workspace_home
    from dashboard import shell
    from pages import compare, data, items, runs, scenarios, train, tune, user

    modules = (compare, data, items, runs, scenarios, train, tune, user)
    return shell, workspace_home, {m.__name__.rsplit(".", 1)[1]: m for m in modules}


main()
