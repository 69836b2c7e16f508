"""File layouts for ingest: open a source and sniff its layout from the first 64 KiB.

Sniffing finds the format, delimiter, header, encoding and the known public layouts
(MovieLens u.data/u.item/u.user, ratings/movies/users .dat and .csv, RecBole atomic files);
core/data/ingest/read.py then reads the whole file with pyarrow.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from core.data.ingest.encoding import (
    CHUNK_BYTES,
    GZIP_MAGIC,
    decode_head,
    open_stream,
    read_guarded,
)
from core.errors import IngestError


def excel_available() -> bool:
    """Whether .xlsx workbooks can be read here (the openpyxl package is installed)."""
    if "openpyxl" in sys.modules:
        return sys.modules["openpyxl"] is not None
    return importlib.util.find_spec("openpyxl") is not None


def offered_formats() -> tuple[str, ...]:
    """The formats a person may choose here: "excel" only where openpyxl is installed."""
    base = ("auto", "csv", "tsv", "parquet", "jsonl", "movielens", "recbole")
    return base + (("excel",) if excel_available() else ())


def upload_types() -> list[str]:
    """File name endings an upload widget should accept here (xlsx only with openpyxl)."""
    types = ["csv", "tsv", "txt", "dat", "data", "parquet", "jsonl", "json", "inter", "gz"]
    return types + (["xlsx"] if excel_available() else [])


FORMATS = offered_formats()
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
HEAD_BYTES = 1 << 16
_DELIMITERS = (",", "\t", ";", "|", " ")
_RECBOLE_TYPE = re.compile(r"^(.+):(token|token_seq|float|float_seq)$")
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")

ML_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
# Headerless MovieLens layouts: (role, delimiter) -> column names.
_ML_COLUMNS = {
    ("interactions", "\t"): ["user_id", "item_id", "rating", "timestamp"],
    ("items", "|"): ["item_id", "title", "release_date", "video_release_date", "imdb_url"]
    + [f"genre:{g}" for g in ML_GENRES],
    ("users", "|"): ["user_id", "age", "gender", "occupation", "zip_code"],
    ("interactions", "::"): ["user_id", "item_id", "rating", "timestamp"],
    ("items", "::"): ["item_id", "title", "genres"],
    ("users", "::"): ["user_id", "gender", "age", "occupation", "zip_code"],
}
_ML_NAMES = {
    "u.data": ("interactions", "\t"),
    "u.item": ("items", "|"),
    "u.user": ("users", "|"),
    "ratings.dat": ("interactions", "::"),
    "movies.dat": ("items", "::"),
    "users.dat": ("users", "::"),
}
_ML_100K_SPLIT = re.compile(r"^u[1-5a-b]\.(base|test)$")
# The public data set each known file name belongs to: a dataset's default name.
_ML_RELEASES = {"\t": "ml-100k", "|": "ml-100k", "::": "ml-1m"}
# The MovieLens 100K README: u.data, u.item and u.user are Latin-1 (tab and pipe layouts).
ML_100K_ENCODING = ("iso8859-1", "MovieLens documents for its 100K files (u.data, u.item, u.user)")


@dataclass
class Source:
    """A file on disk or uploaded bytes; `name` is what messages show.

    Gzip content is decompressed as a stream (core/data/ingest/encoding.py guards it);
    `plain` marks bytes that are already decompressed (a preview's head).
    """

    name: str
    path: Path | None = None
    data: bytes | None = None
    plain: bool = False

    @property
    def filename(self) -> str:
        return Path(self.name).name.lower()

    @property
    def suffix(self) -> str:
        name = self.filename.removesuffix(".gz")
        return Path(name).suffix

    @property
    def size(self) -> int:
        """Bytes as stored (compressed when gzip)."""
        return len(self.data) if self.data is not None else self.path.stat().st_size

    @property
    def compressed(self) -> bool:
        if self.plain:
            return False
        if self.data is not None:
            return self.data[:2] == GZIP_MAGIC
        return _magic(self.path) == GZIP_MAGIC

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        """A binary stream of the (decompressed) content."""
        if self.data is not None:
            raw: BinaryIO = io.BytesIO(self.data)
        else:
            raw = open(self.path, "rb")
        try:
            yield raw if self.plain else open_stream(self.name, raw, self.size)
        finally:
            raw.close()

    def chunks(self, size: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The (decompressed) content in pieces of `size` bytes."""
        with self.open() as handle:
            while chunk := read_guarded(self.name, handle, size):
                yield chunk

    def raw_bytes(self, limit: int | None = None) -> bytes:
        """Bytes after gzip decompression (the first `limit` when given; only those are read)."""
        with self.open() as handle:
            return read_guarded(self.name, handle, -1 if limit is None else limit)

    def stream(self) -> pa.NativeFile:
        """A pyarrow input stream over the (decompressed) content, for full reads."""
        if self.data is not None:
            buffer = pa.BufferReader(self.data)
            return pa.CompressedInputStream(buffer, "gzip") if self.compressed else buffer
        gz = self.compressed
        return pa.input_stream(str(self.path), compression="gzip" if gz else None)


@dataclass
class Layout:
    """What sniffing found: the format, how to split lines, and the column names."""

    format: str  # csv | tsv | parquet | jsonl | excel | movielens | recbole
    columns: list[str] = field(default_factory=list)
    delimiter: str | None = None
    header: bool = True
    encoding: str = "utf-8"
    quoting: bool = True
    description: str = ""
    types: dict[str, str] = field(default_factory=dict)  # RecBole field types
    sample: list[str] = field(default_factory=list)  # first lines, for hints
    notes: list[str] = field(default_factory=list)  # for the ingest report (encoding guesses)
    checked: bool = False  # the whole stream was judged (encoding, compression)
    # (codec, who documents it): the one-byte encoding used, not guessed, when not UTF-8
    documented: tuple[str, str] | None = None


def public_name(filename: str) -> str | None:
    """The public data set a file name belongs to: 'u.data', 'u.item', 'u1.base' ->
    'ml-100k'; 'ratings.dat', 'movies.dat', 'users.dat' -> 'ml-1m' (the '::' layout, as
    ML-10M's ratings.dat also is: its folder name tells them apart when the file is on disk);
    None for any other name."""
    name = Path(filename).name.lower().removesuffix(".gz")
    if _ML_100K_SPLIT.match(name):
        return "ml-100k"
    _, delim = _ML_NAMES.get(name, ("", None))
    return _ML_RELEASES.get(delim)


def plural(count: int, word: str) -> str:
    """'1 row', '2,000 rows' (for report sentences)."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def to_source(source: str | Path | tuple[bytes, str]) -> Source:
    """Check that a path can be read (or wrap uploaded bytes) and give it a display name."""
    if isinstance(source, tuple):
        data, filename = source
        return Source(name=str(filename), data=bytes(data))
    path = Path(source).expanduser()
    if not path.exists():
        raise IngestError(
            "the file does not exist", file=str(path), hint="check the path and its spelling"
        )
    if path.is_dir():
        raise IngestError(
            "this is a folder, not a file",
            file=str(path),
            hint="choose the interactions file inside it (e.g. u.data, ratings.csv, x.inter)",
        )
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise IngestError(
            f"the file cannot be opened ({exc.strerror})",
            file=str(path),
            hint="check that you may read it",
        ) from exc
    return Source(name=str(path), path=path)


def sniff(src: Source, format: str = "auto", role: str = "interactions") -> Layout:
    """Decide the layout from the file name and the first 64 KiB of content."""
    if format == "excel" or src.suffix in EXCEL_SUFFIXES:
        require_excel(src)
    if format not in FORMATS and format != "excel":
        raise IngestError(
            f"unknown format '{format}'",
            file=src.name,
            hint=f"use one of {', '.join(FORMATS)}",
        )
    head = src.raw_bytes(HEAD_BYTES)
    if not head.strip():
        raise IngestError(
            "the file is empty", file=src.name, hint="choose a file that holds interactions"
        )
    if head[:4] == b"PAR1" or format == "parquet" or src.suffix in (".parquet", ".pq"):
        if head[:4] != b"PAR1":
            raise IngestError(
                "the file is not a Parquet file (it lacks the PAR1 signature)",
                file=src.name,
                hint="choose another format or re-export the file as Parquet",
            )
        return Layout("parquet", description="Parquet")
    if head[:4] == b"PK\x03\x04" or src.suffix in EXCEL_SUFFIXES or format == "excel":
        if src.suffix not in EXCEL_SUFFIXES and format != "excel":
            raise IngestError(
                "the file is a zip archive, not a table",
                file=src.name,
                hint="unzip it and choose the interactions file inside",
            )
        return Layout("excel", description="Excel workbook (first sheet)")
    _, delim = _ML_NAMES.get(src.filename, ("", None))
    ml_100k = delim in ("\t", "|") or bool(_ML_100K_SPLIT.match(src.filename))
    documented = ML_100K_ENCODING if ml_100k else None  # by name: before the head is judged
    text, verdict = decode_head(
        head, src.name, complete=len(head) < HEAD_BYTES, documented=documented
    )
    if format == "jsonl" or src.suffix in (".jsonl", ".ndjson", ".json"):
        return Layout("jsonl", description="JSON lines", encoding=verdict.encoding)
    layout = _sniff_text(src, text, format, role)
    layout.encoding = verdict.encoding
    layout.sample = [ln for ln in text.splitlines() if ln.strip()][:20]
    return layout


# ---------------------------------------------------------------------------- helpers


def _magic(path: Path | None) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(2)


def require_excel(src: Source) -> None:
    """The one refusal of an Excel workbook where openpyxl is not installed (sniff, read)."""
    if not excel_available():
        raise IngestError(
            "reading Excel workbooks needs the openpyxl package, which is not installed",
            file=src.name,
            hint="install it (pip install openpyxl) or save the sheet as CSV (File > Save As)",
        )


def _sniff_text(src: Source, text: str, format: str, role: str) -> Layout:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(text) >= HEAD_BYTES - 8 and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut at the 64 KiB boundary
    encoding = "utf-8"  # the caller sets the encoding it decided
    name = src.filename
    sample = lines[:200]
    if name in _ML_NAMES or _ML_100K_SPLIT.match(name):
        file_role, delim = _ML_NAMES.get(name, ("interactions", "\t"))
        return _movielens(sample, delim, file_role, encoding, name)
    recbole = src.suffix in (".inter", ".item", ".user") or format == "recbole"
    first = sample[0].split("\t")
    if recbole or (len(first) > 1 and all(_RECBOLE_TYPE.match(f.strip()) for f in first)):
        return _recbole(src, first, encoding)
    if format == "movielens" or all("::" in ln for ln in sample):
        if all("::" in ln for ln in sample):
            return _movielens(sample, "::", role, encoding, name)
        delim = "\t" if "\t" in sample[0] else "|"
        if format == "movielens" and not _has_header(sample, delim):  # was: tab, also for pipes
            return _movielens(sample, delim, role, encoding, name)
    if format == "tsv":
        delim = "\t"
    else:
        delim = _sniff_delimiter(sample)
    header = _has_header(sample, delim)
    fields = _split(sample[0], delim)
    ml_like = not header and delim == "\t" and len(fields) == 4 and role == "interactions"
    if ml_like and all(_NUMBER.match(f) for f in fields):
        return _movielens(sample, "\t", role, encoding, name)
    columns = clean_names(fields if header else [f"column_{i + 1}" for i in range(len(fields))])
    kind = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe", " ": "space"}[delim]
    fmt = "tsv" if delim == "\t" else "csv"
    desc = f"{kind}-separated{'' if header else ', no header'}"
    if fmt == "csv" and _is_movielens_csv(columns, role):
        fmt, desc = "movielens", f"MovieLens {name or 'CSV'} ({desc})"
    return Layout(fmt, columns, delim, header, encoding, True, desc)


def _movielens(lines: list[str], delim: str, role: str, encoding: str, name: str) -> Layout:
    names = list(_ML_COLUMNS.get((role, delim), []))
    width = len(lines[0].split(delim))
    if len(names) != width:
        names = names[:width] + [f"column_{i + 1}" for i in range(len(names), width)]
    kind = {"\t": "tab", "|": "pipe", "::": "'::'"}[delim]
    desc = f"MovieLens {name or role} ({kind}-separated, no header)"
    # MovieLens never quotes its fields; the 100K files (tab, pipe) are Latin-1, which is
    # used rather than guessed when a file is not UTF-8 (the .dat files are left to judge).
    documented = ML_100K_ENCODING if delim in ("\t", "|") else None
    layout = Layout("movielens", names, delim, False, encoding, False, desc)
    layout.documented = documented
    return layout


def _recbole(src: Source, first: list[str], encoding: str) -> Layout:
    names, types = [], {}
    for raw in first:
        match = _RECBOLE_TYPE.match(raw.strip())
        base = match.group(1) if match else raw.strip()
        names.append(base)
        if match:
            types[base] = match.group(2)
    desc = f"RecBole atomic file {src.filename} (tab-separated, typed header)"
    return Layout("recbole", clean_names(names), "\t", True, encoding, False, desc, types)


def _is_movielens_csv(columns: list[str], role: str) -> bool:
    known = {"interactions": {"userId", "movieId", "rating"}, "items": {"movieId", "title"}}
    return bool(known.get(role)) and known[role] <= set(columns)


def _split(line: str, delim: str) -> list[str]:
    if len(delim) > 1:
        return [f.strip() for f in line.split(delim)]
    return [f.strip() for f in next(csv.reader([line], delimiter=delim))]


def _sniff_delimiter(lines: list[str]) -> str:
    """The candidate that splits every sample line into the same number (>1) of fields."""
    best, best_width = ",", 1
    for delim in _DELIMITERS:
        widths = {len(next(csv.reader([ln], delimiter=delim))) for ln in lines}
        if len(widths) == 1 and (width := widths.pop()) > best_width:
            if delim == " " and best_width > 1:
                continue  # spaces only when nothing else splits the lines
            best, best_width = delim, width
    return best


def _has_header(lines: list[str], delim: str) -> bool:
    """A header unless the first line looks like the data lines (numbers where they are)."""
    first = _split(lines[0], delim)
    if len(lines) == 1 or not any(_NUMBER.match(f) for f in first):
        return True
    rest = [_split(ln, delim) for ln in lines[1:50]]
    for col, value in enumerate(first):
        values = [r[col] for r in rest if col < len(r)]
        if values and all(_NUMBER.match(v) for v in values) and not _NUMBER.match(value):
            return True
    return False


def clean_names(names: list[str]) -> list[str]:
    """Strip names, name blanks 'column_N', and make duplicates unique ('x', 'x_2')."""
    out: list[str] = []
    for i, name in enumerate(names):
        name = name.strip().strip('"').strip() or f"column_{i + 1}"
        base, n = name, 2
        while name in out:
            name, n = f"{base}_{n}", n + 1
        out.append(name)
    return out
