"""Validate and convert mapped columns into canonical interactions (ingest's second half).

Columns are handled as Arrow arrays and numpy vectors; one pandas frame is built at the
end from the kept rows, so a large file is not copied column by column more than needed.
Errors name the file, the line a person would count (header = line 1) and the column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.data import schema as S
from core.data.ingest.dates import parse_text_dates
from core.data.ingest.formats import Layout, Source, plural
from core.data.ingest.read import line_of, lines_of
from core.data.ingest.report import IngestReport
from core.data.schema import ColumnMapping
from core.errors import IngestError


def clean(
    src: Source,
    layout: Layout,
    table: pa.Table,
    used: ColumnMapping,
    min_rating: float | None,
    report: IngestReport,
    date_format: str | None = None,
) -> pd.DataFrame:
    """Validate and convert each mapped column, drop bad rows, collapse duplicates.

    `date_format` (strftime codes) reads a text timestamp column with that one format.
    """
    n = table.num_rows
    keep = np.ones(n, dtype=bool)
    out: dict[str, pa.ChunkedArray | np.ndarray] = {}
    table = _drop_header_lines(src, layout, table, used, keep, report)
    for key in (S.USER_ID, S.ITEM_ID):
        ids = _ids(table.column(getattr(used, key)))
        refuse_control(src, layout, ids, getattr(used, key), key.replace("_", " "))
        missing = ids.is_null().to_numpy(zero_copy_only=False)
        if missing.all():
            raise IngestError(
                f"every one of the {n:,} rows has an empty {key.replace('_', ' ')}",
                file=src.name,
                column=getattr(used, key),
                hint="fill in the ids or choose another column",
            )
        _drop(report, keep, missing, f"missing_{key}")
        out[key] = ids
    if used.rating:
        rating = _numbers(src, layout, table, used.rating, "rating")
        _drop(report, keep, np.isnan(rating), "missing_rating")
        out[S.RATING] = rating
    if used.timestamp:
        stamps, missing = _timestamps(src, layout, table, used.timestamp, report, date_format)
        _drop(report, keep, missing, "missing_timestamp")
        out[S.TIMESTAMP] = stamps
    elif date_format is not None:
        report.notes.append(f"The date format {date_format} was not used: no timestamp column.")
    if used.scenario:
        scen = _ids(table.column(used.scenario))
        refuse_control(src, layout, scen, used.scenario, "scenario")
        if scen.null_count:
            report.notes.append(
                f"{plural(scen.null_count, 'row')} without a scenario got 'unknown'."
            )
            scen = pc.fill_null(scen, "unknown")
        out[S.SCENARIO] = scen
    if used.weight:
        weight = _numbers(src, layout, table, used.weight, "weight")
        if np.isnan(weight).any():
            report.notes.append(
                f"{plural(int(np.isnan(weight).sum()), 'row')} without a weight got 1."
            )
            weight = np.where(np.isnan(weight), 1.0, weight)
        out[S.WEIGHT] = weight.astype(np.float32)
    if min_rating is not None:
        below = np.zeros(n, dtype=bool)
        below[keep] = out[S.RATING][keep] < float(min_rating)
        if keep.any() and below[keep].all():
            top = np.nanmax(out[S.RATING][keep])
            raise IngestError(
                f"every rating is below the minimum rating {min_rating:g} (the highest is {top:g})",
                file=src.name,
                column=used.rating,
                hint="choose a lower minimum rating",
            )
        _drop(report, keep, below, "below_min_rating")
    if not keep.any():
        raise IngestError(
            f"no row has a user id and an item id together (of {n:,} rows)",
            file=src.name,
            hint="fill in the ids on the same lines",
        )
    _collapse(out, keep, report)
    frame = _frame(out, keep)
    _feedback(frame, used, min_rating, report)
    report.rows_kept = len(frame)
    return frame


def _drop_header_lines(src, layout, table: pa.Table, used: ColumnMapping, keep, report):
    """Drop lines that repeat the header (files joined together), naming their lines.

    A line counts when its user and item values are the names of their columns. Its other
    values are blanked, so that the numeric columns do not stop at the word 'rating'.
    """
    if not layout.header or layout.format not in ("csv", "tsv", "movielens", "recbole"):
        return table
    mask = None
    for name in (used.user_id, used.item_id):
        column = table.column(name)
        if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
            return table  # numbers only: the header's words cannot be in it
        same = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(column), name), False)
        mask = same if mask is None else pc.and_(mask, same)
    bad = mask.to_numpy(zero_copy_only=False)
    if not bad.any():
        return table
    rows = np.flatnonzero(bad)
    lines = lines_of(src, layout, [int(r) for r in rows[:5]])
    shown = ", ".join(str(line) for line in lines) + (", …" if len(rows) > 5 else "")
    where = f"line{'s' if len(rows) > 1 else ''} {shown}"
    report.notes.append(f"The header line is repeated at {where} (files joined together?).")
    _drop(report, keep, bad, "repeated_header")
    blank = pa.array(bad)
    columns = [
        pc.if_else(blank, pa.scalar(None, col.type), col) if pa.types.is_string(col.type) else col
        for col in table.columns
    ]
    return pa.Table.from_arrays(columns, names=table.column_names)


_CONTROL = r"[\x00-\x1f\x7f]"
_CONTROL_NAMES = {0: "a NUL byte", 9: "a tab", 10: "a line break", 13: "a carriage return"}


def refuse_control(
    src: Source, layout: Layout, ids: pa.Array | pa.ChunkedArray, column: str, what: str
) -> None:
    """Ids must be printable: a NUL or other control character inside one is refused.

    The one check (and sentence) for the interactions' ids and scenarios and the item/user
    tables' ids (columns.py); `what` names the value ('user id', 'scenario').
    """
    bad = pc.fill_null(pc.match_substring_regex(ids, _CONTROL), False)
    if not pc.any(bad).as_py():
        return
    flags = bad.to_numpy(zero_copy_only=False)
    row = int(np.flatnonzero(flags)[0])
    value = ids[row].as_py()
    char = next(ch for ch in value if ord(ch) < 32 or ord(ch) == 127)
    name = _CONTROL_NAMES.get(ord(char), f"the control character U+{ord(char):04X}")
    raise IngestError(
        f"the {what} {value!r} holds {name}",
        file=src.name,
        row=line_of(src, layout, row),
        column=column,
        hint=f"the values of this column must be printable text; remove the character "
        f"({plural(int(flags.sum()), 'row')} with one)",
    )


def _drop(report: IngestReport, keep: np.ndarray, bad: np.ndarray, reason: str) -> None:
    count = int((bad & keep).sum())
    if count:
        report.dropped[reason] = count
        keep &= ~bad


def _ids(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Ids as trimmed strings; empty strings become missing; whole floats lose '.0'."""
    if pa.types.is_floating(column.type):
        values = column.drop_null()
        if len(values) and pc.all(pc.equal(pc.floor(values), values)).as_py():
            column = pc.cast(column, pa.int64())
    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        column = pc.cast(column, pa.string())
    # Check before rewriting: clean ids (the usual case) are kept without a copy.
    if pc.any(pc.match_substring_regex(column, r"^\s|\s$")).as_py():
        column = pc.utf8_trim_whitespace(column)
    if pc.any(pc.equal(column, "")).as_py():
        column = pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
    return column


def _numbers(src: Source, layout: Layout, table: pa.Table, name: str, what: str) -> np.ndarray:
    """A numeric column as float64 with NaN for missing; names the first non-number."""
    column = table.column(name)
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    else:
        text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
        try:
            values = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            series = text.to_pandas()
            values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
            bad = np.isnan(values) & series.notna().to_numpy() & (series != "").to_numpy()
            if bad.any():
                _raise_bad(src, layout, name, what, series, bad)
    if np.isinf(values).any():
        _raise_bad(src, layout, name, what, pd.Series(values), np.isinf(values))
    return values


def _raise_bad(src, layout, name, what, series: pd.Series, bad: np.ndarray) -> None:
    row = int(np.flatnonzero(bad)[0])
    example = "4 or 3.5" if what == "rating" else "1 or 2.5"
    raise IngestError(
        f"the {what} '{series.iloc[row]}' is not a number",
        file=src.name,
        row=line_of(src, layout, row),
        column=name,
        hint=f"{what}s must be numbers such as {example}; fix the value or remove the line "
        f"({int(bad.sum()):,} such row{'s' if bad.sum() != 1 else ''})",
    )


def _timestamps(
    src: Source,
    layout: Layout,
    table: pa.Table,
    name: str,
    report: IngestReport,
    date_format: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Unix seconds (int64) and a missing mask; numbers in ms/us/ns are scaled to seconds.

    With `date_format` the column's text is read with that one format.
    """
    column = table.column(name)
    kind = column.type
    if date_format is not None:
        text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
        return _parse_dates(src, layout, text, name, report, date_format)
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        secs = pc.cast(pc.cast(column, pa.timestamp("s"), safe=False), pa.int64())
        missing = secs.is_null().to_numpy(zero_copy_only=False)
        return pc.fill_null(secs, 0).to_numpy().astype(np.int64), missing
    numeric = None
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        numeric = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    else:
        text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
        try:
            numeric = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            return _parse_dates(src, layout, text, name, report, None)
    missing = ~np.isfinite(numeric)
    top = np.abs(numeric[~missing]).max() if (~missing).any() else 0.0
    for limit, scale, unit in ((1e17, 1e9, "nanoseconds"), (1e14, 1e6, "microseconds"),
                               (1e11, 1e3, "milliseconds")):  # fmt: skip
        if top > limit:
            numeric = numeric / scale
            report.notes.append(f"Timestamps looked like {unit}; converted to seconds.")
            break
    return np.where(missing, 0, np.floor(np.nan_to_num(numeric))).astype(np.int64), missing


def _parse_dates(src, layout, text: pa.ChunkedArray, name: str, report, date_format) -> tuple:
    """Text dates with one format for the column (core/data/ingest/dates.py)."""
    if date_format is None:
        try:  # ISO 8601 in Arrow: the fast path
            secs = pc.cast(pc.cast(text, pa.timestamp("s")), pa.int64())
            missing = secs.is_null().to_numpy(zero_copy_only=False)
            report.notes.append("Dates were read as UTC and converted to unix seconds.")
            return pc.fill_null(secs, 0).to_numpy().astype(np.int64), missing
        except pa.ArrowInvalid:
            pass
    values, missing, note = parse_text_dates(
        text.to_pandas(),
        file=src.name,
        column=name,
        line=lambda row: line_of(src, layout, row),
        date_format=date_format,
    )
    report.notes.append(note)
    return values, missing


def _frame(out: dict, keep: np.ndarray) -> pd.DataFrame:
    """One pandas frame of the kept rows, canonical columns in canonical order."""
    every = bool(keep.all())  # the usual case: no copies for filtering
    mask = None if every else pa.array(keep)
    data = {}
    for key in S.CANONICAL:
        if key not in out:
            continue
        value = out[key]
        if isinstance(value, np.ndarray):
            value = value if every else value[keep]
            data[key] = value.astype(np.float32) if key == S.RATING else value
        else:
            data[key] = (value if every else value.filter(mask)).to_pandas()
    return pd.DataFrame(data, copy=False)


def _collapse(out: dict, keep: np.ndarray, report: IngestReport) -> None:
    """Unmark all but the latest kept row of each repeated (user, item) pair.

    File order breaks ties. Works on integer codes and folds into `keep`, so the frame is
    built (copied) once; only the rows of repeated pairs are sorted. Sets the counts.
    """
    users, _ = pd.factorize(out[S.USER_ID].to_pandas())  # (n,) codes, -1 for missing
    items, item_ids = pd.factorize(out[S.ITEM_ID].to_pandas())
    rows = np.flatnonzero(keep)  # (m,)
    key = users[rows].astype(np.int64) * max(len(item_ids), 1) + items[rows]
    repeated = np.flatnonzero(pd.Series(key).duplicated(keep=False).to_numpy())
    if len(repeated):
        if S.TIMESTAMP in out:
            repeated = repeated[np.argsort(out[S.TIMESTAMP][rows[repeated]], kind="stable")]
        older = pd.Series(key[repeated]).duplicated(keep="last").to_numpy()
        keep[rows[repeated[older]]] = False
        report.duplicates = int(older.sum())
    report.n_users = int(np.count_nonzero(np.bincount(users[keep])))
    report.n_items = int(np.count_nonzero(np.bincount(items[keep])))


def _feedback(frame: pd.DataFrame, used: ColumnMapping, min_rating, report) -> None:
    if S.RATING not in frame.columns:
        report.feedback = "implicit"
        return
    if min_rating is None and frame[S.RATING].nunique() <= 1:
        value = frame[S.RATING].iloc[0]
        frame.drop(columns=S.RATING, inplace=True)
        report.feedback = "implicit"
        report.notes.append(
            f"Every rating is {value:g}, so the data are treated as implicit feedback."
        )
        return
    report.feedback = "explicit" if min_rating is None else "implicit"
