"""The frame around every page: the shared sidebar, error display and first-start sample data.

Errors: a `RecScopeError` is shown as its own sentence with `st.error`; anything else is
logged with its traceback and shown as one plain sentence. Every page runs inside `guard`.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from core.data.dataset import DatasetExistsError, dataset_summary, list_datasets
from core.errors import RecScopeError
from dashboard import selection
from dashboard.text import md

log = logging.getLogger("recscope.dashboard")

DATASET_KEY = "dataset"  # st.session_state key of the active dataset (the sidebar selectbox)
_NEXT_DATASET = "_recscope_next_dataset"
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data"
SAMPLE_NAME = "sample"
_sample_lock = threading.Lock()
_PAGES_KEY = "_recscope_pages"  # the router's st.Page objects by URL path (register_pages)


@contextmanager
def guard(context: str) -> Iterator[None]:
    """Run a block; show errors as one sentence instead of a traceback.

    `context` completes "Something went wrong while ..." (e.g. "drawing the profile").
    Streamlit's rerun/stop signals are BaseExceptions and pass through untouched.
    """
    try:
        yield
    except RecScopeError as err:
        st.error(md(err))  # messages echo names and values from user files
    except Exception:
        log.exception("Unexpected error while %s", context)
        st.error(
            f"Something went wrong while {context}; the details are in the server log "
            "(the terminal running Streamlit)."
        )


def guarded(fn: Callable[[], None], context: str | None = None) -> Callable[[], None]:
    """Wrap a page's `render` in `guard`, keeping its name (st.Page derives ids from it); the
    URL keeps only the selections the page drew (`selection.prune`)."""
    what = context or f"showing the {fn.__module__.rsplit('.', 1)[-1]} page"

    @functools.wraps(fn)
    def run() -> None:
        selection.begin()
        with guard(what):
            fn()
        selection.prune()  # the URL shows this page's selections only

    return run


def register_pages(pages: list) -> None:
    """Keep the router's pages by URL path for `page_link` (per session: they are rebuilt on
    every run)."""
    st.session_state[_PAGES_KEY] = {page.url_path: page for page in pages}


def page_link(url_path: str, label: str, icon: str | None = None) -> None:
    """A link to another page that switches page in this tab and session (a Markdown link
    opens a new tab, a new session). `st.page_link` wants the page object the router
    registered — a look-alike fails where the pages are files; without a router (a page
    drawn alone, as in AppTest.from_function) a page with that URL path stands in."""
    page = st.session_state.get(_PAGES_KEY, {}).get(url_path)
    st.page_link(page or st.Page(lambda: None, url_path=url_path), label=label, icon=icon)


def active_dataset() -> str | None:
    """Name of the dataset chosen in the sidebar (None when the workspace has none)."""
    return st.session_state.get(DATASET_KEY)


def set_active_dataset(name: str) -> None:
    """Make `name` active from the next run on (the sidebar widget owns the key this run)."""
    st.session_state[_NEXT_DATASET] = name


def sidebar(home: Path) -> str | None:
    """Workspace path, the active-dataset selectbox and its size; returns the active name."""
    names = list_datasets(home)
    pending = st.session_state.pop(_NEXT_DATASET, None)
    if pending in names:
        st.session_state[DATASET_KEY] = pending
    elif st.session_state.get(DATASET_KEY) not in names:
        st.session_state.pop(DATASET_KEY, None)  # deleted or from another workspace
    with st.sidebar:
        st.caption(f"Workspace: `{home}`")
        if not names:
            st.info("No datasets yet — add one on the Data page.")
            return None
        name = selection.choice(  # ?dataset=NAME: survives a reload, links can be shared
            st.selectbox,
            "Active dataset",
            names,  # only these names are taken back from the URL (all passed check_dataset_name)
            key=DATASET_KEY,
            param="dataset",
            help="Every page works on this dataset; add more on the Data page.",
        )
        with guard("reading the dataset summary"):
            info = dataset_summary(home, name)
            st.caption(
                f"{info['n_users']:,} users · {info['n_items']:,} items · "
                f"{info['n_interactions']:,} interactions"
            )
    return name


def ensure_sample(home: Path) -> str | None:
    """Ingest the shipped sample data when the workspace has no dataset at all.

    Returns a sentence saying what was done (None when nothing was needed). Runs once per
    workspace even when several sessions start at the same moment.
    """
    with _sample_lock:
        if list_datasets(home) or not (SAMPLE_DIR / "interactions.csv").exists():
            return None
        from core.data.ingest.ingest import ingest  # imported late: only needed on first start

        side = {
            key: SAMPLE_DIR / f"{key}.csv"
            for key in ("items", "users")
            if (SAMPLE_DIR / f"{key}.csv").exists()
        }
        try:
            dataset, _ = ingest(
                SAMPLE_DIR / "interactions.csv", name=SAMPLE_NAME, home=home, **side
            )
        except DatasetExistsError:  # another process (a second server, the CLI) was first
            return None
        log.info("Ingested the sample data into %s", home)
        return (
            f"Loaded the shipped sample data as dataset '{SAMPLE_NAME}' "
            f"({len(dataset.interactions):,} interactions) so you can try everything right away."
        )
