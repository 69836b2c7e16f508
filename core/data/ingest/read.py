"""Full reads for ingest: an Arrow table from a sniffed source, and exact line numbers.

CSV goes through pyarrow's multithreaded reader; Parquet and JSON lines through pyarrow;
Excel through pandas when openpyxl is installed. Before a full read of text the whole
stream is judged once (encoding, corrupt or bomb-like compression: core/data/ingest/
encoding.py). A preview (`limit`) reads at most PREVIEW_BYTES of decompressed content and
decides its encoding from those bytes. Finding the line of a bad row re-scans the text and
runs on the error path only.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import json
import zipfile

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from core.data.ingest.encoding import PREVIEW_BYTES, judge
from core.data.ingest.formats import Layout, Source, clean_names, require_excel
from core.errors import IngestError

BLOCK_BYTES = 1 << 24  # pyarrow CSV block; column types are guessed from the first one
_UNIT_SEP = "\x1f"  # single-byte stand-in for MovieLens '::' (pyarrow splits on one char)
_NULLS = ["", "NULL", "null", "NaN", "nan", "None", "N/A", "n/a"]


def read_table(
    src: Source,
    layout: Layout,
    *,
    columns: list[str] | None = None,
    string_columns: tuple[str, ...] = (),
    limit: int | None = None,
) -> pa.Table:
    """Read the source into an Arrow table (only `columns`, first `limit` rows when given).

    With `limit` only the first PREVIEW_BYTES of (decompressed) content are read: a cheap
    preview of a big or compressed file. Parquet stops after `limit` rows.
    """
    if layout.format == "parquet":
        return _read_parquet(src, columns, limit)
    if layout.format == "excel":
        table = _read_excel(src, columns)
    elif limit is not None:
        table = _preview(src, layout, columns, string_columns, limit)
    else:
        prepare(src, layout)
        if layout.format == "jsonl":
            table = _read_jsonl(src, layout, columns)
        else:
            table = _read_delimited(src, layout, columns, string_columns)
    return table if limit is None else table.slice(0, limit)


def prepare(src: Source, layout: Layout) -> None:
    """Judge the whole stream once: its encoding (noted when guessed), its compression."""
    if layout.checked or layout.format in ("parquet", "excel"):
        return
    verdict = judge(src.chunks(), src.name, documented=layout.documented)
    layout.encoding = verdict.encoding
    if verdict.note:
        layout.notes.append(verdict.note)
    layout.checked = True


def line_of(src: Source, layout: Layout, row: int) -> int:
    """1-based line of data row `row` (0-based) as a person counts lines in the file."""
    return lines_of(src, layout, [row])[0]


def lines_of(src: Source, layout: Layout, rows: list[int]) -> list[int]:
    """1-based lines of the data rows `rows` (0-based), found in one pass over the file."""
    if layout.format == "parquet":
        return [row + 1 for row in rows]
    if layout.format == "excel":
        return [row + 2 for row in rows]
    wanted = {row: None for row in rows}
    with _text(src, layout) as text:
        if layout.format == "jsonl" or not layout.quoting or len(layout.delimiter or "") != 1:
            seen = -1 if layout.header and layout.format != "jsonl" else 0
            for number, line in enumerate(text, start=1):
                if line.strip():
                    if seen in wanted:
                        wanted[seen] = number
                    seen += 1
            return [wanted[row] or row + 1 for row in rows]
        reader = csv.reader(text, delimiter=layout.delimiter)
        seen = -1 if layout.header else 0
        previous = 0
        for record in reader:
            start, previous = previous + 1, reader.line_num
            if not record:
                continue
            if seen in wanted:
                wanted[seen] = start
            seen += 1
    return [wanted[row] or row + (2 if layout.header else 1) for row in rows]


def first_ragged_line(src: Source, layout: Layout) -> tuple[int, int] | None:
    """(line, number of values) of the first line whose value count differs from the header."""
    expected = len(layout.columns)
    delim = layout.delimiter or ","
    with _text(src, layout) as text:
        if layout.quoting and len(delim) == 1:
            reader = csv.reader(text, delimiter=delim)
            previous = 0
            for record in reader:
                start, previous = previous + 1, reader.line_num
                if record and len(record) != expected:
                    return start, len(record)
            return None
        for number, line in enumerate(text, start=1):
            line = line.rstrip("\r\n")
            if line.strip() and len(line.split(delim)) != expected:
                return number, len(line.split(delim))
    return None


# ---------------------------------------------------------------------------- helpers


class _text:
    """The (decompressed) content as text lines, for the error-path scans."""

    def __init__(self, src: Source, layout: Layout) -> None:
        self.opened = src.open()
        self.encoding = layout.encoding

    def __enter__(self) -> io.TextIOWrapper:
        handle = self.opened.__enter__()
        return io.TextIOWrapper(handle, encoding=self.encoding, errors="replace", newline="")

    def __exit__(self, *exc) -> None:
        self.opened.__exit__(*exc)


def _preview(
    src: Source, layout: Layout, columns: list[str] | None, strings: tuple, limit: int
) -> pa.Table:
    """The first rows from at most PREVIEW_BYTES of content, cut at the last whole line."""
    head = src.raw_bytes(PREVIEW_BYTES + 1)
    cut = len(head) > PREVIEW_BYTES
    head = head[:PREVIEW_BYTES]
    verdict = judge([head], src.name, complete=not cut, documented=layout.documented)
    if verdict.encoding == "utf-8":  # the usual case: no copy through str
        data, newline = head.removeprefix(codecs.BOM_UTF8), b"\n"
    else:
        decoder = codecs.getincrementaldecoder(verdict.encoding)(errors="replace")
        data, newline = decoder.decode(head, final=not cut).lstrip("\ufeff"), "\n"
    if cut:
        end = data.rfind(newline)
        if end < 0 or (layout.format == "jsonl" and data.lstrip()[:1] in ("[", b"[")):
            raise IngestError(
                f"the file has no line break in its first {PREVIEW_BYTES >> 20} MiB, so it "
                "cannot be previewed",
                file=src.name,
                hint="choose a table with one row per line (CSV, TSV or JSON lines)",
            )
        data = data[: end + 1]
    small = Source(src.name, data=data if isinstance(data, bytes) else data.encode(), plain=True)
    notes = layout.notes + ([verdict.note] if verdict.note else [])
    view = dataclasses.replace(layout, encoding="utf-8", notes=notes, checked=True)
    layout.notes[:] = notes
    if layout.format == "jsonl":
        return _read_jsonl(small, view, columns)
    return _read_delimited(small, view, columns, strings, limit)


def _read_delimited(
    src: Source,
    layout: Layout,
    columns: list[str] | None,
    strings: tuple[str, ...],
    limit: int | None = None,
) -> pa.Table:
    try:
        return _arrow_csv(src, layout, columns, {c: pa.string() for c in strings}, limit)
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "conversion error" in message or "In CSV column" in message:
            # A column typed from its first block holds other values later: read it as
            # text so that validation can name the first bad row.
            every = {c: pa.string() for c in (columns or layout.columns)}
            return _arrow_csv(src, layout, columns, every, limit)
        ragged = first_ragged_line(src, layout)
        if ragged is not None:
            line, width = ragged
            sep = {"\t": "tab", "::": "'::'"}.get(layout.delimiter, f"'{layout.delimiter}'")
            raise IngestError(
                f"found {width} values where the header has {len(layout.columns)}",
                file=src.name,
                row=line,
                hint=f"every line needs {len(layout.columns)} values separated by {sep}; "
                "fix or remove that line, or quote values that contain the separator",
            ) from exc
        raise IngestError(
            f"the file could not be parsed ({message.splitlines()[0]})",
            file=src.name,
            hint="check that it is a delimited text table",
        ) from exc


def _arrow_csv(
    src: Source,
    layout: Layout,
    columns: list[str] | None,
    types: dict[str, pa.DataType],
    limit: int | None = None,
) -> pa.Table:
    delim = layout.delimiter or ","
    encoding = layout.encoding
    if len(delim) > 1:
        data = src.raw_bytes()
        if encoding.startswith(("utf-16", "utf-32")):  # not ASCII-compatible: to UTF-8 first
            data, encoding = data.decode(encoding).encode("utf-8"), "utf-8"
        data = data.replace(delim.encode(), _UNIT_SEP.encode())
        stream, delim = pa.BufferReader(data), _UNIT_SEP
    else:
        stream = src.stream()
    read = pacsv.ReadOptions(
        column_names=layout.columns,
        skip_rows=1 if layout.header else 0,
        encoding=encoding,
        block_size=BLOCK_BYTES if limit is None else 1 << 20,  # previews: small blocks
    )
    parse = pacsv.ParseOptions(delimiter=delim, quote_char='"' if layout.quoting else False)
    convert = pacsv.ConvertOptions(
        column_types=types, include_columns=columns, null_values=_NULLS, strings_can_be_null=True
    )
    # Streaming keeps one block of raw text in memory (read_csv holds the whole file).
    reader = pacsv.open_csv(stream, read, parse, convert)
    if limit is None:
        return reader.read_all()
    batches, rows = [], 0
    for batch in reader:
        batches.append(batch)
        rows += batch.num_rows
        if rows >= limit:
            break
    return pa.Table.from_batches(batches, schema=reader.schema)


def _read_parquet(src: Source, columns: list[str] | None, limit: int | None) -> pa.Table:
    target = pa.BufferReader(src.data) if src.data is not None else str(src.path)
    try:
        if limit is None:
            return pq.read_table(target, columns=columns)
        first = next(pq.ParquetFile(target).iter_batches(batch_size=limit, columns=columns), None)
        if first is None:  # no rows at all: the full read is as cheap
            return pq.read_table(target, columns=columns)
        return pa.Table.from_batches([first])
    except (pa.ArrowException, OSError) as exc:
        raise parquet_error(src, exc) from exc


def parquet_error(src: Source, exc: Exception) -> IngestError:
    """The one sentence for a Parquet file that pyarrow cannot read."""
    return IngestError(
        f"the Parquet file could not be read ({str(exc).splitlines()[0]})",
        file=src.name,
        hint="re-export it, or save it as CSV",
    )


def _read_jsonl(src: Source, layout: Layout, columns: list[str] | None) -> pa.Table:
    data = src.raw_bytes()
    if layout.encoding != "utf-8":
        data = data.decode(layout.encoding).encode("utf-8")  # pyarrow reads UTF-8 only
    data = data.removeprefix(codecs.BOM_UTF8)
    if data.lstrip()[:1] == b"[":
        try:
            table = pa.Table.from_pandas(pd.DataFrame(json.loads(data)), preserve_index=False)
        except (ValueError, TypeError, pa.ArrowException) as exc:
            raise IngestError(
                f"the JSON array could not be read as a table ({exc})",
                file=src.name,
                hint="write one JSON object per line with the same keys",
            ) from exc
    else:
        try:
            table = pajson.read_json(pa.BufferReader(data))
        except pa.ArrowInvalid as exc:
            line, problem = _first_bad_json(data)
            raise IngestError(
                f"this line is not a JSON object ({problem})",
                file=src.name,
                row=line,
                hint='write one JSON object per line, e.g. {"user_id": 1, "item_id": 7}',
            ) from exc
    return table.select(columns) if columns else table


def _first_bad_json(data: bytes) -> tuple[int | None, str]:
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            return number, exc.msg
        if not isinstance(value, dict):
            return number, f"found {type(value).__name__}"
    return None, "values of mixed types in one field"


def _read_excel(src: Source, columns: list[str] | None) -> pa.Table:
    require_excel(src)
    handle = io.BytesIO(src.raw_bytes())
    try:
        frame = pd.read_excel(handle, sheet_name=0, dtype=object)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise IngestError(
            f"the Excel workbook could not be read ({(str(exc) or repr(exc)).splitlines()[0]})",
            file=src.name,
            hint="open it in a spreadsheet and save it again, or save the sheet as CSV",
        ) from exc
    frame.columns = clean_names([str(c) for c in frame.columns])
    for col in frame.columns:
        if frame[col].map(type).nunique() > 1:
            frame[col] = frame[col].map(lambda v: None if pd.isna(v) else str(v))
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.select(columns) if columns else table
