"""Hostile input at ingest (issue 11, item 5): every odd file is read correctly or refused.

Each test writes its own small file (a few need more than the 64 KiB sniffed head) and
asserts the exact outcome: the sentence of the refusal, or the values and notes of the read.
"""

from __future__ import annotations

import codecs
import gzip
import io
import sys
import tracemalloc

import numpy as np
import pytest

import core.data.ingest.encoding as encoding
import core.data.ingest.read as reader
from core.cli import main
from core.data.dataset import list_datasets
from core.data.ingest.formats import excel_available, offered_formats, to_source, upload_types
from core.data.ingest.ingest import ingest, load_interactions, load_items, load_users, read_raw
from core.errors import IngestError

PAD = "1,2,plain\n" * 8000  # 80 KB of ASCII: what follows lies past the 64 KiB head


def refused(source, **kwargs) -> str:
    with pytest.raises(IngestError) as info:
        load_interactions(source, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# ---------------------------------------------------------------- encodings


def test_latin1_byte_after_64k_in_a_utf8_file_is_refused_not_mangled():
    data = ("user,item,note\n1,café,x\n" + PAD).encode() + "3,naïve,x\n".encode("latin-1")
    assert refused((data, "mixed.csv")) == (
        "file mixed.csv, row 8003: this line holds a byte that is not UTF-8 (0xEF) while "
        "line 2 holds UTF-8 text, so the file mixes two encodings — re-save the whole file "
        "as UTF-8 (in a spreadsheet: Save As, CSV UTF-8); reading it as either encoding would "
        "garble the other half."
    )


def test_legacy_file_is_read_whole_with_the_guess_noted():
    data = ("user,item,note\n" + PAD).encode() + "3,naïve,Café\n".encode("cp1252")
    frame, report = load_interactions((data, "legacy.csv"))
    assert report.rows_read == 8001 and frame.item_id.iloc[-1] == "naïve"
    assert report.notes == [
        "The file is not UTF-8: it was read as cp1252, a guess by charset-normalizer from the "
        "lines with non-ASCII bytes (the first is line 8002: '3,naïve,Café'); if letters look "
        "wrong, re-save the file as UTF-8."
    ]


def test_utf8_multibyte_across_a_chunk_boundary_is_utf8():
    head = "user,item\n"
    room = encoding.CHUNK_BYTES - 1 - len(head) - len("2,")  # 'é' straddles the boundary
    k = (room - 8) // 4
    filler = "1,a\n" * k + "1," + "b" * (room - 4 * k - 3) + "\n"
    data = (head + filler + "2,é\n").encode()
    assert data[encoding.CHUNK_BYTES - 1 : encoding.CHUNK_BYTES + 1] == "é".encode()
    frame, report = load_interactions((data, "edge.csv"))
    assert frame.item_id.tolist()[0] == "a" and frame.item_id.tolist()[-1] == "é"
    assert report.notes == []


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be"])
def test_utf16_with_a_mark_is_read_not_called_binary(codec):
    body = "user_id,item_id\ncafé,1\nbob,2\n"
    data = (
        (codecs.BOM_UTF16_BE + body.encode(codec)) if codec.endswith("be") else body.encode(codec)
    )
    frame, report = load_interactions((data, "wide.csv"))
    assert frame.user_id.tolist() == ["café", "bob"] and frame.item_id.tolist() == ["1", "2"]
    assert report.notes == ["Read as UTF-16 (the file starts with its mark)."]
    preview, fmt = read_raw((data, "wide.csv"), limit=1)
    assert fmt == "csv" and preview.to_dict("list") == {"user_id": ["café"], "item_id": [1]}


def test_utf16_without_a_mark_and_utf8_with_one():
    data = "user_id,item_id\nzoë,1\n".encode("utf-16-le")
    frame, report = load_interactions((data, "nomark.csv"))
    assert frame.user_id.tolist() == ["zoë"]
    assert report.notes == ["Read as UTF-16-LE: every other byte is zero, and no mark."]
    frame, report = load_interactions((codecs.BOM_UTF8 + b"user_id,item_id\nu,1\n", "bom.csv"))
    assert report.mapping.user_id == "user_id" and frame.user_id.tolist() == ["u"]
    assert report.notes == []


# ---------------------------------------------------------------- timestamps


def test_day_first_dates_use_one_format_for_the_column():
    data = b"user,item,date\n1,a,31/05/2024\n2,b,01/06/2024\n3,c,02/06/2024\n"
    frame, report = load_interactions((data, "days.csv"))
    may31, jun1, jun2 = 1717113600, 1717200000, 1717286400
    assert frame.timestamp.tolist() == [may31, jun1, jun2]
    assert report.notes == [
        "Dates in column 'date' were read day first (%d/%m/%Y), as UTC: the other order does "
        "not fit '31/05/2024'."
    ]


def test_ambiguous_day_month_is_refused_with_both_readings_or_read_with_date_format():
    data = b"user,item,date\n1,a,01/06/2024\n2,b,02/06/2024\n"
    assert refused((data, "amb.csv")) == (
        "file amb.csv, row 2, column 'date': the dates fit both day-first and month-first: "
        "'01/06/2024' reads as 1 June 2024 or as 6 January 2024 — say which with "
        "--date-format %d/%m/%Y (day first) or --date-format %m/%d/%Y (month first)."
    )
    frame, report = load_interactions((data, "amb.csv"), date_format="%m/%d/%Y")
    assert frame.timestamp.tolist() == [1704499200, 1707177600]  # 6 Jan, 6 Feb 2024
    assert report.notes == ["Dates in column 'date' were read with the format %m/%d/%Y, as UTC."]


def test_date_format_names_the_first_value_that_does_not_fit():
    data = b"user,item,date\n1,a,05/31/2024\n2,b,31/05/2024\n3,c,06/01/2024\n"
    assert refused((data, "fmt.csv"), date_format="%m/%d/%Y") == (
        "file fmt.csv, row 3, column 'date': the timestamp '31/05/2024' does not fit the date "
        "format %m/%d/%Y — every value of the column must be written in that one format; fix "
        "or remove the line, or give another --date-format."
    )


def test_timestamp_errors_name_the_bad_value_not_a_valid_one():
    data = b"user,item,date\n1,a,2024-05-31\n2,b,2024-06-01\n3,c,31/05/2024\n"
    assert refused((data, "iso.csv")) == (
        "file iso.csv, row 4, column 'date': the timestamp '31/05/2024' is not written like the "
        "other dates of the column (ISO 8601, e.g. '2024-05-31') — write every date in one "
        "format, or give the format with --date-format."
    )
    data = b"user,item,ts\n1,a,1000\n2,b,1001\n3,c,soon\n"
    assert refused((data, "epoch.csv")) == (
        "file epoch.csv, row 4, column 'ts': the timestamp 'soon' is not a number like the "
        "other values — the column holds unix times (seconds since 1970); fix or remove the "
        "line."
    )


def test_epoch_numbers_and_iso_8601_keep_working():
    data = b"user,item,ts\n1,a,1717113600000\n2,b,1717200000000\n"
    frame, report = load_interactions((data, "ms.csv"))
    assert frame.timestamp.tolist() == [1717113600, 1717200000]
    assert report.notes == ["Timestamps looked like milliseconds; converted to seconds."]
    data = b"user,item,date\n1,a,2024-05-31T00:00:00+02:00\n2,b,2024-06-01 00:00:00Z\n"
    frame, _ = load_interactions((data, "iso.csv"))
    assert frame.timestamp.tolist() == [1717113600 - 7200, 1717200000]


@pytest.mark.parametrize(
    ("fmt", "reason"),
    [
        ("%Q", "%Q is not a strftime code"),
        ("%d/%m/%Y %Q", "%Q is not a strftime code"),
        ("%", "it ends with a lone %"),
        ("abc", "it holds no strftime code"),
        ("mixed", "it holds no strftime code"),  # pandas' row-by-row guess: not let in
    ],
)
def test_a_bad_date_format_is_one_sentence_exit_2_before_the_read(
    fmt, reason, tmp_path, home, capsys
):
    path = tmp_path / "d.csv"
    path.write_bytes(b"user,item,date\n1,a,01/02/2024\n")
    assert main(["ingest", str(path), "--date-format", fmt]) == 2
    assert capsys.readouterr().err == (
        f"error: file {path}, column 'date': the date format '{fmt}' is not valid ({reason}) — "
        "use strftime codes such as %d/%m/%Y.\n"
    )
    assert list_datasets(home) == []
    with pytest.raises(IngestError) as info:  # the Data page's ingest(date_format=...)
        ingest(path, date_format=fmt, home=home)
    assert str(info.value) == (
        f"file {path}, column 'date': the date format '{fmt}' is not valid ({reason}) — use "
        "strftime codes such as %d/%m/%Y."
    )


# ---------------------------------------------------------------- rows and ids


def test_a_repeated_header_line_is_dropped_and_reported_never_a_user():
    data = b"user_id,item_id,rating\n1,a,5\n2,b,4\nuser_id,item_id,rating\n3,c,3\n"
    frame, report = load_interactions((data, "joined.csv"))
    assert frame.values.tolist() == [["1", "a", 5.0], ["2", "b", 4.0], ["3", "c", 3.0]]
    assert report.rows_read == 4 and report.dropped == {"repeated_header": 1}
    assert "Dropped 1 row that repeated the header line." in report.lines()
    assert report.notes == ["The header line is repeated at line 4 (files joined together?)."]


def test_nul_bytes_in_ids_are_refused_with_the_row_also_after_64k():
    assert refused((b"user_id,item_id\n1,a\n2,b\x00x\n", "nul.csv")) == (
        "file nul.csv, row 3, column 'item_id': the item id 'b\\x00x' holds a NUL byte — the "
        "values of this column must be printable text; remove the character (1 row with one)."
    )
    data = b"user_id,item_id\n" + b"1,a\n" * 20000 + b"2\x00,b\n"
    assert refused((data, "late.csv")) == (
        "file late.csv, row 20002, column 'user_id': the user id '2\\x00' holds a NUL byte — "
        "the values of this column must be printable text; remove the character (1 row with "
        "one)."
    )
    data = b"user_id,item_id,scenario\n1,a,home\n2,b,ho\x1bme\n"
    assert refused((data, "esc.csv")).startswith(
        "file esc.csv, row 3, column 'scenario': the scenario 'ho\\x1bme' holds the control "
        "character U+001B"
    )


def test_control_characters_in_item_table_ids_are_refused():
    data = b"item_id,title\nA,Alien\nB\x07,Brazil\n"
    with pytest.raises(IngestError) as info:
        load_items((data, "items.csv"))
    assert str(info.value) == (
        "file items.csv, row 3, column 'item_id': the item id 'B\\x07' holds the control "
        "character U+0007 — the values of this column must be printable text; remove the "
        "character (1 row with one)."
    )  # the interactions' sentence: one check for both (clean.refuse_control)
    data = b"user_id,age\n7,30\n8\x00,41\n9\x00,52\n"
    with pytest.raises(IngestError) as info:
        load_users((data, "users.csv"))
    assert str(info.value) == (
        "file users.csv, row 3, column 'user_id': the user id '8\\x00' holds a NUL byte — the "
        "values of this column must be printable text; remove the character (2 rows with one)."
    )


def test_date_format_without_a_timestamp_column_says_so():
    _, report = load_interactions((b"user,item\n1,2\n", "plain.csv"), date_format="%d/%m/%Y")
    assert report.notes == ["The date format %d/%m/%Y was not used: no timestamp column."]


# ---------------------------------------------------------------- compression


def _random_gzip(rows: int = 5000) -> bytes:
    rng = np.random.default_rng(0)
    lines = "".join(f"{u},{i}\n" for u, i in rng.integers(0, 10**6, (rows, 2)))
    return gzip.compress(("user,item\n" + lines).encode())


def test_corrupt_and_truncated_gzip_is_one_sentence_naming_the_file(tmp_path, home):
    whole = _random_gzip()
    assert refused((whole[: len(whole) // 2], "cut.csv.gz")) == (
        "file cut.csv.gz: the gzip data are corrupt or cut short (Compressed file ended before "
        "the end-of-stream marker was reached) — download or copy it again, or choose the "
        "uncompressed file."
    )
    garbled = bytearray(whole)
    garbled[len(whole) // 2 : len(whole) // 2 + 64] = b"\x00" * 64
    path = tmp_path / "garbled.csv.gz"
    path.write_bytes(bytes(garbled))
    with pytest.raises(IngestError) as info:
        ingest(path, home=home)
    assert str(info.value).startswith(f"file {path}: the gzip data are corrupt or cut short (")
    assert list_datasets(home) == []


def test_gzip_bomb_full_read_is_refused(monkeypatch):
    monkeypatch.setattr(encoding, "RATIO_FREE_BYTES", 1 << 20)  # scaled down from 64 MiB
    monkeypatch.setattr(reader, "PREVIEW_BYTES", 1 << 18)  # and the 4 MiB preview with it
    data = gzip.compress(b"user,item\n" + b"1,2\n" * (1 << 19), compresslevel=9)  # 2 MiB
    message = refused((data, "bomb.csv.gz"))
    assert message.startswith("file bomb.csv.gz: the gzip file expands to more than ")
    assert message.endswith(
        "so it was not read — this looks like a decompression bomb; if the data are real, "
        "decompress the file yourself and choose the uncompressed file."
    )
    preview, _ = read_raw((data, "bomb.csv.gz"), limit=20)  # previews never get that far
    assert preview.shape == (20, 2)


def test_a_preview_decompresses_only_what_it_shows():
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as handle:
        handle.write(b"user,item\n")
        for _ in range(64):
            handle.write(b"1,2\n" * (1 << 18))  # 64 MiB in all
    data = out.getvalue()
    assert len(data) < 200_000
    tracemalloc.start()
    try:
        preview, _ = read_raw((data, "big.csv.gz"), limit=20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert preview.shape == (20, 2) and preview.user.tolist() == [1] * 20
    assert peak < 5 * reader.PREVIEW_BYTES < 64 << 20  # the old preview held all 64 MiB


# ---------------------------------------------------------------- formats


def test_excel_is_not_offered_or_accepted_without_openpyxl(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # as if not installed
    assert not excel_available()
    assert "excel" not in offered_formats() and "xlsx" not in upload_types()
    path = tmp_path / "book.xlsx"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    sentence = (
        f"file {path}: reading Excel workbooks needs the openpyxl package, which is not "
        "installed — install it (pip install openpyxl) or save the sheet as CSV (File > Save As)."
    )
    with pytest.raises(IngestError) as info:
        read_raw(path, limit=20)
    assert str(info.value) == sentence
    with pytest.raises(IngestError) as info:  # the reader's own check: the same refusal
        reader._read_excel(to_source(path), None)
    assert str(info.value) == sentence
    ok = tmp_path / "ok.csv"
    ok.write_bytes(b"user,item\n1,2\n")
    assert refused(ok, format="excel") == sentence.replace(str(path), str(ok))


def test_movielens_u_item_is_latin1_as_documented_not_a_guess(tmp_path, home):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_bytes(b"1\t1\t5\t881250949\n2\t6\t4\t881250951\n")
    titles = [
        "Misérables, Les (1995)",
        "Café Society (1995)",
        "Amélie (2001)",
        "Déjà Vu (1997)",
        "À bout de souffle (1960)",
        "Niño (1999)",
    ]  # charset-normalizer guesses cp1257 for these: 'Ą bout de souffle', 'Nińo'
    genres = "|".join("0" * 19)
    (folder / "u.item").write_bytes(
        "".join(
            f"{i}|{t}|01-Jan-1995||http://x|{genres}\n" for i, t in enumerate(titles, 1)
        ).encode("latin-1")
    )
    dataset, report = ingest(folder / "u.data", home=home)
    assert dataset.items.title.tolist() == titles
    assert report.notes == [
        "Used the items table u.item found beside it.",
        f"{folder / 'u.item'}: The file is not UTF-8: it was read as Latin-1, the encoding "
        "MovieLens documents for its 100K files (u.data, u.item, u.user); the first line with "
        "non-ASCII bytes is line 1: '1|Misérables, Les (1995)|01-Jan-1995||http://x|0|0|0|0|0|"
        "0|0'.",
        "Item table u.item: 6 items with item_id, title, text, category, release_date, "
        "video_release_date, imdb_url, genres.",
    ]
    renamed = folder / "films.txt"  # recognised by its layout (pipes, no header), not its name
    renamed.write_bytes((folder / "u.item").read_bytes())
    items = load_items(renamed, format="movielens")
    assert items.title.tolist() == titles
    assert items.attrs["notes"][0].startswith(
        f"{renamed}: The file is not UTF-8: it was read as Latin-1, the encoding MovieLens "
    )
