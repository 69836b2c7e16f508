"""Data page: add a dataset (upload or server path, column mapping) and profile the active one."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.data.dataset import DatasetExistsError, free_name, list_datasets
from core.data.ingest.formats import upload_types
from core.data.ingest.ingest import FORMATS, ingest, name_for_file
from core.data.schema import ColumnMapping
from core.runs.store import RunStore, workspace_home
from dashboard import cache, charts, shell, tables, widgets
from dashboard import views_data as VD
from dashboard.data_dirs import allowed_path, check_companions, data_dirs
from dashboard.text import md

MAIN_TYPES = upload_types()  # .xlsx only where openpyxl is installed
SIDE_TYPES = [*MAIN_TYPES, "item", "user"]
PREVIEW_ROWS = 20
_REPORT = "_recscope_ingest_report"
_FORM = "_recscope_add_form"  # a new number after each create: the add form starts empty


def render() -> None:
    st.title("Data")
    st.caption(
        "Add interaction logs (who interacted with what, and optionally when, how much and "
        "where), then check what is in them before training."
    )
    home = workspace_home()
    if report := st.session_state.pop(_REPORT, None):
        st.success(VD.ingest_message(report))
    # keyed: stays open across reruns even when elements above it come and go
    with st.expander("Add a dataset", expanded=not list_datasets(home), key="add_dataset"):
        with shell.guard("reading the file"):
            _add_dataset(home)
    name = shell.active_dataset()
    if name is None:
        st.info("No dataset yet — add one above to see its profile.")
        return
    with shell.guard(f"profiling dataset '{name}'"):
        _profile(home, name)


def _add_dataset(home: Path) -> None:
    kind = st.radio("Source", ["Upload files", "Path on the server"], horizontal=True)
    if kind == "Upload files":
        limit = st.get_option("server.maxUploadSize")
        st.caption(
            f"Up to {limit} MB per file (Streamlit's `server.maxUploadSize`). For bigger files "
            "give a path on the server or use `recscope ingest PATH`."
        )
        main = st.file_uploader("Interactions file", type=MAIN_TYPES, key=_key("upload_main"))
        left, right = st.columns(2)
        items = left.file_uploader(
            "Item table (optional)", type=SIDE_TYPES, key=_key("upload_items")
        )
        users = right.file_uploader(
            "User table (optional)", type=SIDE_TYPES, key=_key("upload_users")
        )
        source, items, users = (_upload(f) for f in (main, items, users))
    else:
        main = st.text_input("Interactions file path", key=_key("path_main")).strip()
        left, right = st.columns(2)
        items = left.text_input("Item table path (optional)", key=_key("path_items")).strip()
        users = right.text_input("User table path (optional)", key=_key("path_users")).strip()
        st.caption(VD.data_dirs_note(data_dirs(home)))
        # checked before anything reads them: only files inside the data folders
        source, items, users = (allowed_path(p, home) if p else None for p in (main, items, users))
    fmt = st.selectbox("Format", FORMATS, key="ingest_format", help="'auto' detects it.")
    if source is None:
        st.caption("Choose a file to see a preview and map its columns.")
        return
    if isinstance(source, tuple):
        raw, detected = cache.raw_table(*source, format=fmt, limit=PREVIEW_ROWS)
    else:
        check_companions(source, home, items, users)
        raw, detected = cache.raw_path(home, source, format=fmt, limit=PREVIEW_ROWS)
    filename = source[1] if isinstance(source, tuple) else source.name
    st.write(f"**Preview** — the first rows as read (*{detected}*), before any cleaning:")
    shown, config = tables.readable(raw, {})  # an empty cell reads "—", not "None"
    st.dataframe(shown, hide_index=True, column_config=config)
    for note in raw.attrs.get("notes", []):  # how the file was decoded, when it was a guess
        st.caption(md(note))
    mapping, min_rating, date_format = _mapping(list(raw.columns), detected)
    # the default is a name no stored dataset has (ml-100k for u.data, ratings-2, …); two
    # sessions that pick the same name anyway are told by ingest, which never replaces unless
    # asked
    default = free_name(home, name_for_file(filename))
    name = st.text_input("Dataset name", value=default, key=f"name_{filename}").strip()
    replace, taken = False, name in list_datasets(home)
    if taken:
        st.warning(VD.name_taken(name, free_name(home, name), runs=_runs_on(home, name)))
        replace = st.checkbox(f"Replace the existing dataset '{md(name)}'", key=f"replace_{name}")
    if st.button("Create dataset", type="primary"):
        try:
            dataset, report = ingest(
                source, items=items, users=users, name=name, format=fmt, mapping=mapping,
                min_rating=min_rating, date_format=date_format, replace=replace, home=home,
            )  # fmt: skip
        except DatasetExistsError:  # taken (or, when not shown taken, by another session since)
            runs = _runs_on(home, name)
            st.error(VD.name_taken(name, free_name(home, name), just_now=not taken, runs=runs))
            return
        st.session_state[_REPORT] = [f"Created dataset '{dataset.name}'.", *report.lines()]
        # issue 16: the form empties (new widget keys), so the file just ingested is not
        # offered again under a "name already exists" warning for the dataset just made
        st.session_state[_FORM] = st.session_state.get(_FORM, 0) + 1
        shell.set_active_dataset(dataset.name)
        st.rerun()


def _mapping(columns: list[str], detected: str) -> tuple[ColumnMapping, float | None, str | None]:
    """Selectboxes per canonical field, defaulting to what ingest would infer; the minimum
    rating and the timestamp format (None: detected) where those columns are chosen."""
    guess, options, index = VD.mapping_defaults(columns, detected)
    sig = abs(hash(tuple(columns)))  # a new file's columns start from fresh defaults
    st.write("**Columns** — which column holds what:")
    chosen = {
        field: col.selectbox(label, options, index=index[field], key=f"map_{field}_{sig}")
        for col, (field, label) in zip(st.columns(len(VD.FIELDS)), VD.FIELDS.items(), strict=True)
    }
    mapping = VD.chosen_mapping(chosen, guess)
    date_format = None
    if chosen["timestamp"] != VD.NONE:
        date_format = st.text_input(
            "Timestamp format (optional)", key=f"date_format_{sig}", placeholder="%d/%m/%Y",
            help="Leave empty to detect it. Needed when every date reads both day-first and "
            "month-first (01/06/2024): strftime codes such as %d/%m/%Y or %m/%d/%Y.",
        ).strip() or None  # fmt: skip
    if chosen["rating"] == VD.NONE:
        return mapping, None, date_format
    min_rating = st.number_input(
        "Keep only ratings of at least (optional)", value=None, step=0.5,
        key=f"min_rating_{sig}",
        help="For explicit ratings: e.g. 4 keeps 4-5 star ratings as 'liked'. "
        "Leave empty to keep every rating.",
    )  # fmt: skip
    return mapping, min_rating, date_format


def _profile(home: Path, name: str) -> None:
    slot = st.empty()  # a progress bar while the profile is computed (seconds at 10M rows)
    tables = cache.profile_tables(home, name, lambda done, what: slot.progress(done, text=what))
    slot.empty()
    c = tables["counts"]
    st.header(f"Profile of '{md(name)}'")
    widgets.metric_row(
        [("Users", f"{c.users:,}", None), ("Items", f"{c.items:,}", None),
         ("Interactions", f"{c.interactions:,}", None), ("Sparsity", f"{c.sparsity:.2%}", None)]
    )  # fmt: skip
    st.caption(VD.sparsity_note(c))
    if built := cache.text_source(home, name):  # issue 16 point 8
        st.caption(built)
    left, right = st.columns(2)
    left.plotly_chart(cache.figure(charts.long_tail, tables["users"], "users"), key="p_users")
    left.caption(VD.user_share_note(tables["users"]))
    right.plotly_chart(cache.figure(charts.long_tail, tables["items"], "items"), key="p_items")
    right.caption(VD.item_share_note(tables["items"]))
    left, right = st.columns(2)
    if tables["time"] is not None:
        left.plotly_chart(cache.figure(charts.activity_over_time, tables["time"]), key="p_time")
        left.caption("How many interactions and distinct users each period has.")
    if tables["ratings"] is not None:
        right.plotly_chart(cache.figure(charts.rating_bar, tables["ratings"]), key="p_ratings")
        right.caption("How often each rating value was given.")
    if tables["scenario_users"] is not None:
        _scenarios(tables)
    st.plotly_chart(cache.figure(charts.top_items_bar, tables["top_items"]), key="p_top")
    st.caption("The items with the most interactions — what a popularity baseline recommends.")


def _scenarios(tables: dict) -> None:
    st.subheader("Scenarios")
    counts = {
        c: st.column_config.NumberColumn(c.capitalize(), format="localized")
        for c in ("interactions", "users", "items")
    }
    st.dataframe(
        tables["scenario_sizes"],
        hide_index=True,
        column_config={"scenario": st.column_config.TextColumn("Scenario"), **counts},
    )
    left, right = st.columns(2)
    fig = cache.figure(charts.scenario_users_bar, tables["scenario_users"])
    left.plotly_chart(fig, key="p_scen_users")
    left.caption(VD.multi_scenario_note(tables["scenario_users"]))
    fig = cache.figure(charts.overlap_heatmap, tables["scenario_overlap"])
    right.plotly_chart(fig, key="p_overlap")
    right.caption("Each cell counts users active in both scenarios; the diagonal, in that one.")


def _upload(file) -> tuple[bytes, str] | None:
    return (file.getvalue(), file.name) if file is not None else None


def _key(base: str) -> str:
    """The key of an add-form widget: `base` until the first create, then numbered afresh
    after each create (Streamlit cannot clear a file uploader any other way)."""
    form = st.session_state.get(_FORM, 0)
    return f"{base}_{form}" if form else base


def _runs_on(home: Path, name: str) -> int:
    """How many stored runs and jobs (of any kind) were made on dataset `name`."""
    records = RunStore(home).list(dataset=name, kind=None)
    return sum(1 for r in records if r.get("dataset") == name)
