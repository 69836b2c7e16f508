"""Ingest: read an interactions file (plus item/user tables), map, validate, save a Dataset.

Everything is checked before anything is written: a bad file raises `IngestError` naming
the file, the line and the column with a hint, and the workspace stays untouched. The
report says plainly what was done (rows read and kept, duplicates, drops by reason).
Columns are cleaned as Arrow arrays / numpy vectors and turned into one pandas frame at
the end, so large files are not copied row by row.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.data import schema as S
from core.data.dataset import Dataset, check_name
from core.data.ingest.clean import clean
from core.data.ingest.columns import (
    NO_COLUMN,
    find_companions,
    guess_separator,
    infer_mapping,
    load_items,
    load_users,
)
from core.data.ingest.dates import check_date_format
from core.data.ingest.formats import (
    FORMATS,
    Layout,
    Source,
    plural,
    public_name,
    sniff,
    to_source,
)
from core.data.ingest.read import parquet_error, read_table
from core.data.ingest.report import IngestReport
from core.data.schema import ColumnMapping
from core.data.stored import refuse_existing
from core.errors import IngestError
from core.names import dataset_name_from

__all__ = [
    "name_for_file",
    "FORMATS",
    "IngestReport",
    "find_companions",
    "infer_mapping",
    "ingest",
    "load_interactions",
    "load_items",
    "load_users",
    "read_raw",
]

log = logging.getLogger(__name__)


def read_raw(
    source: str | Path | tuple[bytes, str], format: str = "auto", *, limit: int | None = None
) -> tuple[pd.DataFrame, str]:
    """The file as a raw table (its own column names) and the detected format.

    `limit` reads only the first rows (CSV and Parquet stop early): use it for previews.
    """
    src = to_source(source)
    layout = sniff(src, format)
    frame = read_table(src, layout, limit=limit).to_pandas()
    frame.attrs["notes"] = list(layout.notes)  # e.g. the encoding guess
    return frame, layout.format


def load_interactions(
    source: str | Path | tuple[bytes, str],
    *,
    format: str = "auto",
    mapping: ColumnMapping | None = None,
    min_rating: float | None = None,
    date_format: str | None = None,
) -> tuple[pd.DataFrame, IngestReport]:
    """Canonical interactions (user_id, item_id[, timestamp, rating, scenario, weight]).

    Rows without ids are dropped, ratings below `min_rating` too (the rest become positive
    implicit feedback), and repeated user-item pairs keep their latest row.
    """
    src = to_source(source)
    layout = sniff(src, format, "interactions")
    table, columns = _columns(src, layout)
    _check_width(src, layout, columns, format)
    used = _resolve(src, layout, columns, mapping)
    if min_rating is not None:
        _check_min_rating(src, used, min_rating, columns)
    wanted = [c for c in dict.fromkeys(used.source_to_canonical())]
    strings = tuple(c for c in (used.user_id, used.item_id, used.scenario) if c)
    if date_format is not None and used.timestamp:
        check_date_format(date_format, file=src.name, column=used.timestamp)  # before the read
        strings += (used.timestamp,)  # the text as written, for the given format
    if table is None:
        table = read_table(src, layout, columns=wanted, string_columns=strings)
    else:
        table = table.select(wanted)
    if table.num_rows == 0:
        raise IngestError(
            "the file has a header line but no data rows",
            file=src.name,
            hint="add one line per interaction below the header",
        )
    report = IngestReport(
        file=src.name,
        format=layout.format,
        rows_read=table.num_rows,
        mapping=used,
        min_rating=min_rating,
        layout=layout.description,
    )
    report.notes.extend(layout.notes)
    frame = clean(src, layout, table, used, min_rating, report, date_format)
    return frame, report


def ingest(
    source: str | Path | tuple[bytes, str],
    *,
    items: str | Path | tuple[bytes, str] | None = None,
    users: str | Path | tuple[bytes, str] | None = None,
    name: str | None = None,
    format: str = "auto",
    mapping: ColumnMapping | None = None,
    min_rating: float | None = None,
    date_format: str | None = None,
    replace: bool = False,
    home: Path,
) -> tuple[Dataset, IngestReport]:
    """Read, validate and save a dataset under `home/datasets/<name>/`; all or nothing.

    For a path whose folder holds the matching item/user tables (u.item beside u.data,
    movies.csv beside ratings.csv, x.item beside x.inter, items.csv beside
    interactions.csv) those are used when `items` / `users` are not given.

    A stored dataset of that name is never replaced silently: `DatasetExistsError` (a
    sentence with its size and date) unless `replace`, checked before the read and again,
    under the name's lock, at the save (two ingests under one new name: the second refuses).
    """
    src = to_source(source)
    if name is not None:
        check_name(name)  # before the long read, not after it
        if not replace:
            refuse_existing(home, name)
    frame, report = load_interactions(
        source, format=format, mapping=mapping, min_rating=min_rating, date_format=date_format
    )
    sides: dict[str, pd.DataFrame | None] = {}
    found = find_companions(src.path) if src.path is not None else {}
    for role, given, loader in (("items", items, load_items), ("users", users, load_users)):
        sides[role] = None
        if given is not None:
            sides[role] = loader(given)
            report.notes.extend(sides[role].attrs.get("notes", []))
        elif found.get(role) is not None:
            try:
                sides[role] = loader(found[role])
            except IngestError as exc:
                report.notes.append(f"The {role} table {found[role].name} was skipped: {exc}")
                continue
            report.notes.append(f"Used the {role} table {found[role].name} found beside it.")
            report.notes.extend(sides[role].attrs.get("notes", []))
    for role, key in (("items", S.ITEM_ID), ("users", S.USER_ID)):
        if sides[role] is not None:
            unknown = ~frame[key].isin(sides[role][key])
            if unknown.any():
                report.notes.append(
                    f"{plural(pd.unique(frame.loc[unknown, key]).size, role[:-1])} of the "
                    f"interactions not in the {role} table; they get ids only."
                )
    if S.WEIGHT in frame.columns:
        report.notes.append("The weight column is reported but datasets do not store it yet.")
    name = name or derive_name(src)
    info = {
        "source": src.name,
        "report": report.to_dict(),
        "mapping": report.mapping.to_dict(),
        "feedback": report.feedback,
        "min_rating": min_rating,
    }
    dataset = Dataset.from_frames(name, frame, sides["items"], sides["users"], info=info)
    dataset.save(home, replace=replace)
    log.info("ingested %s as dataset %s: %s", src.name, name, " ".join(report.lines()))
    return dataset, report


def derive_name(src: Source) -> str:
    """A dataset name from the file name ('ml-100k' for ml-100k/u.data)."""
    return name_for_file(src.name, src.path)


def name_for_file(filename: str, path: Path | None = None) -> str:
    """The dataset name a file suggests: its name without data suffixes ('ratings (1).csv'
    -> 'ratings-1'); a generic name ('u.data', 'ratings.csv') takes the name of the folder
    at `path` when the file is on disk, else the public data set its layout belongs to
    ('u.data' -> 'ml-100k', 'ratings.dat' -> 'ml-1m'; `formats.public_name`). The CLI,
    ingest and the Data page all use this."""
    stem = Path(filename).name
    for suffix in (".gz", ".csv", ".tsv", ".txt", ".dat", ".data", ".inter", ".parquet",
                   ".jsonl", ".json", ".xlsx", ".base"):  # fmt: skip
        stem = stem.removesuffix(suffix)
    generic = {"u", "ratings", "interactions", "inter", "data", "events", "train", ""}
    known = public_name(filename)  # 'ml-100k' for u.data, u1.base, …
    if stem.lower() in generic or known:
        folder = path.resolve().parent.name if path is not None else ""
        stem = folder if folder.lower() not in generic else known or stem
    return dataset_name_from(stem)


# ---------------------------------------------------------------------------- helpers


def _columns(src: Source, layout: Layout) -> tuple[pa.Table | None, list[str]]:
    """Column names before the full read where the format allows (text, Parquet)."""
    if layout.format in ("jsonl", "excel"):
        table = read_table(src, layout)
        return table, table.column_names
    if layout.format == "parquet":
        target = pa.BufferReader(src.data) if src.data is not None else str(src.path)
        try:
            return None, pq.read_schema(target).names
        except (pa.ArrowException, OSError) as exc:
            raise parquet_error(src, exc) from exc
    return None, layout.columns


def _check_width(src: Source, layout: Layout, columns: list[str], format: str) -> None:
    if len(columns) > 1:
        return
    sep = guess_separator(layout.sample)
    if sep and sep not in (",", "\t", ";", "|"):
        hint = f"the lines look separated by '{sep}', which is not read; save it with commas"
    elif sep:
        shown = "tab" if sep == "\t" else f"'{sep}'"
        hint = f"the lines look separated by {shown}; use --format auto (or csv)"
    else:
        hint = "interactions need at least a user column and an item column, e.g. user_id,item_id"
    if format == "tsv" and sep != "\t":
        hint += " (--format tsv expects tabs)"
    raise IngestError(
        f"only one column found ('{columns[0] if columns else ''}')", file=src.name, hint=hint
    )


def _resolve(
    src: Source, layout: Layout, columns: list[str], given: ColumnMapping | None
) -> ColumnMapping:
    """The inferred mapping with the caller's fields on top; checks every named column."""
    used = infer_mapping(columns, layout.format)
    present = ", ".join(columns)
    if given is not None:
        lower = {c.lower(): c for c in columns}
        chosen = {k for k in S.CANONICAL if getattr(given, k) is not None}
        for key in S.CANONICAL:
            value = getattr(given, key)
            if value is None:
                continue
            if value == NO_COLUMN:
                setattr(used, key, None)
                continue
            if value not in columns and value.lower() not in lower:
                raise IngestError(
                    f"the mapping names a {key} column '{value}' that is not in the file",
                    file=src.name,
                    column=value,
                    hint=f"the columns present are: {present}",
                )
            setattr(used, key, value if value in columns else lower[value.lower()])
        used.extra = dict(given.extra)
        # A column the caller gave to one field is no longer guessed for another.
        taken = {getattr(used, k) for k in chosen} - {None}
        for key in set(S.CANONICAL) - chosen:
            if getattr(used, key) in taken:
                setattr(used, key, None)
    for key, label, flag in ((S.USER_ID, "user", "--user-col"), (S.ITEM_ID, "item", "--item-col")):
        if getattr(used, key) is None:
            extra = ""
            if not layout.header:
                extra = "; the file has no header line: add one, e.g. user_id,item_id,rating"
            elif any(re.fullmatch(r"[-+.\d]+", c) for c in columns):
                extra = "; the first line looks like data, so add a header line"
            raise IngestError(
                f"no {label} column found among the columns {present}",
                file=src.name,
                hint=f"name the {label} column {key} (or {label}, {label}Id) or choose it "
                f"in the column mapping ({flag}){extra}",
            )
    if used.user_id == used.item_id:
        raise IngestError(
            f"the same column '{used.user_id}' was chosen for users and items",
            file=src.name,
            column=used.user_id,
            hint="choose two different columns",
        )
    # Two canonical fields may not share one source column: the later one is left out.
    seen = {used.user_id, used.item_id}
    for key in (S.RATING, S.TIMESTAMP, S.SCENARIO, S.WEIGHT):
        value = getattr(used, key)
        if value in seen:
            setattr(used, key, None)
        elif value:
            seen.add(value)
    return used


def _check_min_rating(src: Source, used: ColumnMapping, min_rating: float, cols: list) -> None:
    if not np.isfinite(float(min_rating)):
        raise IngestError(
            f"the minimum rating {min_rating} is not a finite number",
            file=src.name,
            hint="give a number such as 4",
        )
    if used.rating is None:
        raise IngestError(
            f"a minimum rating ({min_rating:g}) was given but no rating column was found "
            f"among {', '.join(cols)}",
            file=src.name,
            hint="leave out the minimum rating or choose the rating column with --rating-col",
        )
