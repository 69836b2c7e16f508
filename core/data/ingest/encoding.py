"""Text encodings and compressed streams for ingest, decided once per file from evidence.

The encoding rule (issue 11):

- A byte-order mark decides: UTF-8 (the mark is skipped), UTF-16 or UTF-32. Text without a
  mark whose every other byte is zero is UTF-16 (LE or BE), noted.
- Otherwise the whole (decompressed) stream is checked as UTF-8, not a sample: valid
  throughout means UTF-8.
- Bytes that are not UTF-8 in a file that also holds valid multi-byte UTF-8 (``café``
  written as UTF-8) are refused, naming the first line with such bytes: no one encoding
  reads both halves, and re-reading it as a legacy encoding would silently turn ``café``
  into ``cafÃ©``.
- Bytes that are not UTF-8 and no multi-byte UTF-8 anywhere: a legacy one-byte encoding.
  charset-normalizer guesses which from the lines that hold such bytes (cp1252 first among
  equally plausible guesses: it is what Western spreadsheets export), the guess is checked
  against the whole file and reported in the ingest notes with the first such line.
- A layout that documents its one-byte encoding (MovieLens 100K's u.data, u.item, u.user:
  Latin-1) is read with it, not guessed, when the file is not UTF-8 (noted too): a guess
  from a few accented titles can land on cp1257 and turn 'Niño' into 'Nińo'. Every byte
  is Latin-1, so the mixed-encodings refusal does not apply to it.
- Previews decide the same way from the bytes they show.

Gzip sources are read as streams. A preview decompresses at most ``PREVIEW_BYTES``; a full
read is refused once its output passes ``RATIO_FREE_BYTES`` and is more than ``MAX_RATIO``
times the compressed size (a decompression bomb). Corrupt or cut-short data is one sentence
naming the file.
"""

from __future__ import annotations

import codecs
import gzip
import io
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from core.errors import IngestError

CHUNK_BYTES = 1 << 20
PREVIEW_BYTES = 4 << 20  # decompressed bytes a preview may read at most
RATIO_FREE_BYTES = 64 << 20  # output below this is never called a bomb
MAX_RATIO = 100  # decompressed / compressed above this (past RATIO_FREE_BYTES) is refused
SAMPLE_BYTES = 64 << 10  # non-ASCII lines handed to charset-normalizer
GZIP_MAGIC = b"\x1f\x8b"

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)
_ESCAPED = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8 (surrogateescape)
_MULTIBYTE = re.compile("[^\x00-\x7f\udc80-\udcff]")  # a real non-ASCII character
_HIGH_LINE = re.compile(rb"[^\n]*[\x80-\xff][^\n]*")
_PREFERRED = ("cp1252", "iso8859-1")
_ASCII = bytes(range(128))


@dataclass
class Verdict:
    """The encoding a file is read with, and the sentence for the notes when it is a guess."""

    encoding: str
    note: str | None = None


def judge(
    chunks: Iterable[bytes],
    name: str,
    *,
    complete: bool = True,
    documented: tuple[str, str] | None = None,
) -> Verdict:
    """Decide the encoding of the stream `chunks` (all of it) by the rule in the docstring.

    `complete=False` says the bytes stop before the end of the file (a preview or the
    sniffed head): a character cut at the end is then not held against it. `documented`
    is (codec, who documents it) for a layout whose one-byte encoding is known.
    """
    chunks = iter(chunks)
    first = next(chunks, b"")
    for bom, codec, label in _BOMS:
        if first.startswith(bom):
            _check_decodes(_chain(first, chunks), codec, name, label, complete)
            note = None if codec == "utf-8" else f"Read as {label} (the file starts with its mark)."
            return Verdict(codec, note)
    wide = _utf16_without_bom(first)
    if wide is not None:
        _check_decodes(_chain(first, chunks), wide, name, wide.upper(), complete)
        return Verdict(wide, f"Read as {wide.upper()}: every other byte is zero, and no mark.")
    return _utf8_or_legacy(_chain(first, chunks), name, complete, documented)


def decode_head(
    head: bytes, name: str, *, complete: bool, documented: tuple[str, str] | None = None
) -> tuple[str, Verdict]:
    """The sniffed head as text (no BOM) and its verdict; refuses binary content."""
    verdict = judge([head], name, complete=complete, documented=documented)
    decoder = codecs.getincrementaldecoder(verdict.encoding)(errors="replace")
    text = decoder.decode(head, final=complete)
    control = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f")
    if control > max(2, len(text) // 50):
        raise IngestError(
            "the file holds binary data, not a text table",
            file=name,
            hint="export it as CSV, TSV, Parquet or JSON lines",
        )
    return text.lstrip("\ufeff"), verdict


def open_stream(name: str, raw: BinaryIO, compressed_size: int) -> BinaryIO:
    """`raw` itself, or a guarded gzip stream over it when it starts with the gzip magic."""
    magic = raw.read(2)
    raw.seek(0)
    if magic != GZIP_MAGIC:
        return raw
    guarded = _Guarded(name, gzip.GzipFile(fileobj=raw, mode="rb"), compressed_size)
    return io.BufferedReader(guarded, CHUNK_BYTES)


def read_guarded(name: str, handle: BinaryIO, size: int = -1) -> bytes:
    """`handle.read(size)` with corrupt compression turned into one sentence."""
    try:
        return handle.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise gzip_error(name, exc) from exc


def gzip_error(name: str, exc: BaseException) -> IngestError:
    """The one sentence for gzip data that cannot be decompressed."""
    if isinstance(exc, IngestError):
        return exc
    return IngestError(
        f"the gzip data are corrupt or cut short ({str(exc).rstrip('.') or type(exc).__name__})",
        file=name,
        hint="download or copy it again, or choose the uncompressed file",
    )


# ---------------------------------------------------------------------------- helpers


class _Guarded(io.RawIOBase):
    """Decompressed bytes, refused past the bomb limits; gzip errors become sentences."""

    def __init__(self, name: str, inner: BinaryIO, compressed_size: int) -> None:
        self.name_, self.inner, self.compressed = name, inner, max(compressed_size, 1)
        self.out = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self.inner.read(len(buffer))
        except (OSError, EOFError, zlib.error) as exc:
            raise gzip_error(self.name_, exc) from exc
        self.out += len(data)
        if self.out > RATIO_FREE_BYTES and self.out > MAX_RATIO * self.compressed:
            raise IngestError(
                f"the gzip file expands to more than {self.out // self.compressed:,} times its "
                f"size ({self.compressed:,} bytes give over {self.out:,}), so it was not read",
                file=self.name_,
                hint="this looks like a decompression bomb; if the data are real, decompress "
                "the file yourself and choose the uncompressed file",
            )
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.inner.close()
        super().close()


def _chain(first: bytes, rest: Iterable[bytes]) -> Iterable[bytes]:
    yield first
    yield from rest


def _check_decodes(chunks, codec: str, name: str, label: str, complete: bool) -> None:
    decoder = codecs.getincrementaldecoder(codec)()
    line = 1
    try:
        for chunk in chunks:
            line += decoder.decode(chunk).count("\n")
        if complete:
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise IngestError(
            f"the file starts as {label} but holds bytes that are not {label} near line {line}",
            file=name,
            row=line,
            hint=f"re-save it as UTF-8 ({exc.reason})",
        ) from exc


def _utf16_without_bom(first: bytes) -> str | None:
    sample = first[:4096]
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def _utf8_or_legacy(
    chunks: Iterable[bytes], name: str, complete: bool, documented: tuple[str, str] | None
) -> Verdict:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    lines, multibyte, first_bad, bad_byte = 0, None, None, 0
    sample: list[bytes] = []
    kept, high = 0, set()
    for chunk in chunks:
        if chunk.isascii() and not decoder.getstate()[0]:
            lines += chunk.count(b"\n")
            continue
        text = decoder.decode(chunk)
        if multibyte is None and (found := _MULTIBYTE.search(text)):
            multibyte = lines + text.count("\n", 0, found.start()) + 1
        if first_bad is None and (found := _ESCAPED.search(text)):
            first_bad = lines + text.count("\n", 0, found.start()) + 1
            bad_byte = ord(found.group()) - 0xDC00
        if first_bad is not None:
            high |= set(chunk.translate(None, _ASCII))
        if first_bad is not None and kept < SAMPLE_BYTES:
            for match in _HIGH_LINE.finditer(chunk):
                sample.append(match.group())
                kept += len(match.group()) + 1
                if kept >= SAMPLE_BYTES:
                    break
        lines += chunk.count(b"\n")
    if complete:
        tail = decoder.decode(b"", final=True)
        if first_bad is None and _ESCAPED.search(tail):
            first_bad, bad_byte = lines + 1, ord(_ESCAPED.search(tail).group()) - 0xDC00
    if first_bad is None:
        return Verdict("utf-8")
    if documented is not None:
        codec, source = documented
        label = {"iso8859-1": "Latin-1"}.get(codec, codec)
        example = sample[0].decode(codec, errors="replace").strip()[:60] if sample else ""
        return Verdict(
            codec,
            f"The file is not UTF-8: it was read as {label}, the encoding {source}; the "
            f"first line with non-ASCII bytes is line {first_bad}: '{example}'.",
        )
    if multibyte is not None:
        raise IngestError(
            f"this line holds a byte that is not UTF-8 (0x{bad_byte:02X}) while line "
            f"{multibyte} holds UTF-8 text, so the file mixes two encodings",
            file=name,
            row=first_bad,
            hint="re-save the whole file as UTF-8 (in a spreadsheet: Save As, CSV UTF-8); "
            "reading it as either encoding would garble the other half",
        )
    return _legacy(sample, first_bad, bytes(sorted(high)))


def _legacy(sample: list[bytes], first_bad: int, high: bytes) -> Verdict:
    from charset_normalizer import from_bytes  # imported only when the file is not UTF-8

    data = b"\n".join(sample)
    matches = list(from_bytes(data))
    codec = None
    if matches:
        best = min(m.chaos for m in matches)
        close = [codecs.lookup(m.encoding).name for m in matches if m.chaos <= best + 0.01]
        codec = next((c for c in _PREFERRED if c in close), close[0])
    if codec is None or not _decodes(data + high, codec):  # every byte of the file decodes
        codec = "cp1252" if _decodes(data + high, "cp1252") else "iso8859-1"
    example = data.split(b"\n", 1)[0].decode(codec, errors="replace").strip()[:60]
    label = {"iso8859-1": "Latin-1"}.get(codec, codec)
    note = (
        f"The file is not UTF-8: it was read as {label}, a guess by charset-normalizer from "
        f"the lines with non-ASCII bytes (the first is line {first_bad}: '{example}'); if "
        "letters look wrong, re-save the file as UTF-8."
    )
    return Verdict(codec, note)


def _decodes(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
    except UnicodeDecodeError:
        return False
    return True
