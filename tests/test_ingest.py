"""Ingest: every public layout, column inference, cleaning counts, and every bad-file error.

Files are written by the tests into tmp_path; each error test also checks that nothing was
written to the workspace.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data.dataset import Dataset, list_datasets
from core.data.ingest.ingest import (
    FORMATS,
    IngestReport,
    find_companions,
    infer_mapping,
    ingest,
    load_interactions,
    load_items,
    load_users,
    read_raw,
)
from core.data.schema import ColumnMapping
from core.errors import IngestError

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
GENRES = 19


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def flags(*on: int) -> str:
    return "|".join("1" if i in on else "0" for i in range(GENRES))


@pytest.fixture
def ml100k(tmp_path) -> Path:
    folder = tmp_path / "ml-100k"
    # user 1 rates item 10 twice: the later row (rating 2) must win.
    write(
        folder / "u.data",
        "1\t10\t5\t881250949\n1\t20\t3\t881250950\n2\t10\t4\t881250951\n"
        "1\t10\t2\t881250999\n3\t30\t1\t881251000\n",
    )
    write(
        folder / "u.item",
        f"10|Toy Story (1995)|01-Jan-1995||http://x|{flags(3, 4, 5)}\n"
        f"20|Café Society (1995)|01-Jan-1995||http://y|{flags(8)}\n"
        f"30|GoldenEye (1995)|01-Jan-1995||http://z|{flags(1, 2, 16)}\n"
        f"40|Never Rated (1996)|01-Jan-1996||http://w|{flags(0)}\n",
        encoding="latin-1",
    )
    write(folder / "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n")
    return folder


def assert_nothing_written(home: Path) -> None:
    assert list_datasets(home) == []
    folder = home / "datasets"
    assert not folder.exists() or list(folder.iterdir()) == []


def reject(home: Path, source, **kwargs) -> str:
    """Ingest must fail with a one-line IngestError and leave the workspace empty."""
    with pytest.raises(IngestError) as info:
        ingest(source, home=home, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    assert_nothing_written(home)
    return message


# ---------------------------------------------------------------- public layouts


def test_movielens_100k_folder(ml100k, home):
    dataset, report = ingest(ml100k / "u.data", home=home)
    assert dataset.name == "ml-100k"
    assert report.format == "movielens" and "u.data" in report.layout
    assert (report.rows_read, report.rows_kept, report.duplicates) == (5, 4, 1)
    assert report.feedback == "explicit" and report.dropped == {}
    loaded = Dataset.load(home, "ml-100k")
    frame = loaded.interactions
    codes = loaded.user_codes(["1"])[0], loaded.item_codes(["10"])[0]
    row = frame[(frame.user_code == codes[0]) & (frame.item_code == codes[1])]
    assert row.rating.tolist() == [2.0] and row.timestamp.tolist() == [881250999]
    items = loaded.items.set_index("item_id")
    assert items.loc["20", "title"] == "Café Society (1995)"  # Latin-1 decoded
    assert items.loc["10", "genres"] == "Animation|Children's|Comedy"
    assert items.loc["10", "category"] == "Animation"
    assert items.loc["30", "text"] == "GoldenEye (1995). Action, Adventure, Thriller"
    assert "40" in items.index  # a cold item from the item table keeps its code
    users = loaded.users.set_index("user_id")
    assert users.loc["2", "occupation"] == "other" and int(users.loc["1", "age"]) == 24
    assert loaded.info["report"]["duplicates"] == 1
    assert loaded.info["mapping"]["rating"] == "rating"


def test_movielens_latest_csv_with_min_rating(tmp_path, home):
    folder = tmp_path / "ml-latest-small"
    write(
        folder / "ratings.csv",
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,3.5,964981247\n"
        "2,1,5.0,964982224\n2,3,4.5,964983815\n3,2,1.0,964982931\n",
    )
    write(
        folder / "movies.csv",
        "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n"
        '2,"American President, The (1995)",Comedy|Drama|Romance\n'
        "3,Heat (1995),(no genres listed)\n",
    )
    dataset, report = ingest(folder / "ratings.csv", min_rating=4, home=home)
    assert report.mapping.user_id == "userId" and report.mapping.item_id == "movieId"
    assert report.dropped == {"below_min_rating": 2} and report.rows_kept == 3
    assert report.feedback == "implicit" and report.min_rating == 4
    assert any("below 4" in line for line in report.lines())
    items = dataset.items.set_index("item_id")
    assert items.loc["2", "title"] == "American President, The (1995)"
    assert items.loc["2", "category"] == "Comedy"
    assert pd.isna(items.loc["3", "category"])
    assert dataset.n_users == 2  # user 3 only had a rating below 4


def test_movielens_dat_files(tmp_path, home):
    folder = tmp_path / "ml-1m"
    write(folder / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::1\n")
    write(
        folder / "movies.dat",
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
        "5::Amélie (2001)::Comedy|Romance\n",
        encoding="latin-1",
    )
    write(folder / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n")
    dataset, report = ingest(folder / "ratings.dat", home=home)
    assert dataset.name == "ml-1m" and report.format == "movielens"
    assert report.rows_kept == 3 and report.feedback == "explicit"
    items = dataset.items.set_index("item_id")
    assert items.loc["661", "category"] == "Animation"
    assert items.loc["5", "title"] == "Amélie (2001)"
    assert dataset.users.set_index("user_id").loc["2", "gender"] == "M"


def test_recbole_atomic_files(tmp_path, home):
    folder = tmp_path / "rb"
    write(
        folder / "ml-100k.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n",
    )
    write(
        folder / "ml-100k.item",
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "242\tKolya\t1996\tComedy\n302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery\n",
    )
    write(
        folder / "ml-100k.user", "user_id:token\tage:token\tgender:token\n196\t49\tM\n22\t25\tM\n"
    )
    dataset, report = ingest(folder / "ml-100k.inter", home=home)
    assert report.format == "recbole" and dataset.name == "ml-100k"
    assert report.mapping.to_dict()["timestamp"] == "timestamp"
    assert dataset.interactions.timestamp.tolist() == [881250949, 891717742, 878887116]
    items = dataset.items.set_index("item_id")
    assert items.loc["302", "title"] == "L.A. Confidential"
    assert items.loc["302", "category"] == "Crime"
    assert dataset.users.set_index("user_id").loc["22", "age"] in (25, "25")


def test_find_companions(ml100k, tmp_path):
    assert find_companions(ml100k / "u.data") == {
        "items": ml100k / "u.item",
        "users": ml100k / "u.user",
    }
    lone = write(tmp_path / "solo" / "ratings.dat", "1::2::3::4\n")
    assert find_companions(lone) == {"items": None, "users": None}
    write(tmp_path / "solo" / "movies.dat", "2::X::Drama\n")
    assert find_companions(lone)["items"] == tmp_path / "solo" / "movies.dat"
    inter = write(tmp_path / "rb" / "x.inter", "user_id:token\titem_id:token\n1\t2\n")
    write(tmp_path / "rb" / "x.user", "user_id:token\n1\n")
    assert find_companions(inter) == {"items": None, "users": tmp_path / "rb" / "x.user"}


# ---------------------------------------------------------------- inference and cleaning


def test_infer_mapping_from_common_names():
    m = infer_mapping(["customer_id", "article_id", "t_dat", "price", "sales_channel_id"])
    assert (m.user_id, m.item_id, m.timestamp, m.rating) == (
        "customer_id", "article_id", "t_dat", None,
    )  # fmt: skip
    m = infer_mapping(["Visitor", "Product", "Stars", "Date", "Channel", "Clicks"])
    assert m.to_dict() == {
        "user_id": "Visitor", "item_id": "Product", "timestamp": "Date", "rating": "Stars",
        "weight": "Clicks", "scenario": "Channel", "extra": {},
    }  # fmt: skip
    m = infer_mapping(["user_id:token", "item_id:token", "rating:float"], "recbole")
    assert (m.user_id, m.rating) == ("user_id:token", "rating:float")


def test_dates_ids_drops_and_duplicates(tmp_path):
    path = write(
        tmp_path / "events.csv",
        "Visitor;Product;Date;Surface\n"
        "007;p1;2024-01-01 00:00:00;home\n"
        ";p2;2024-01-02 00:00:00;home\n"
        "008;;2024-01-03 00:00:00;search\n"
        "007;p1;2024-01-04 00:00:00;\n"
        "009;p3;;home\n",
    )
    frame, report = load_interactions(path)
    assert report.layout.startswith("semicolon")
    assert report.dropped == {"missing_user_id": 1, "missing_item_id": 1, "missing_timestamp": 1}
    assert report.duplicates == 1 and report.rows_kept == 1 and report.rows_read == 5
    assert frame.user_id.tolist() == ["007"]  # leading zeros kept
    assert frame.timestamp.tolist() == [1704326400]  # 2024-01-04 UTC, the latest row
    assert frame.scenario.tolist() == ["unknown"]
    text = " ".join(report.lines())
    assert "Dropped 1 row that had no user id." in text and "Collapsed 1 repeated" in text


def test_milliseconds_and_mapping_override(tmp_path):
    path = write(tmp_path / "log.csv", "a,b,c,score\nx,y,1700000000123,2\nx,z,1700000001000,3\n")
    mapping = ColumnMapping(user_id="a", item_id="B", timestamp="c", rating="")
    frame, report = load_interactions(path, mapping=mapping)
    assert frame.timestamp.tolist() == [1700000000, 1700000001]
    assert "rating" not in frame.columns and report.mapping.rating is None
    assert report.mapping.item_id == "b" and report.feedback == "implicit"
    assert any("milliseconds" in note for note in report.notes)


def test_parquet_jsonl_gzip_and_upload(tmp_path, home):
    table = pd.DataFrame({"user": [1, 2, 2], "item": [5, 6, 5], "rating": [1.0, 2.0, 3.0]})
    table.to_parquet(tmp_path / "r.parquet")
    frame, report = load_interactions(tmp_path / "r.parquet")
    assert report.format == "parquet" and frame.item_id.tolist() == ["5", "6", "5"]
    assert read_raw(tmp_path / "r.parquet", limit=2)[0].item.tolist() == [5, 6]
    lines = "\n".join(json.dumps(r) for r in table.to_dict("records"))
    write(tmp_path / "r.jsonl", lines + "\n")
    frame, report = load_interactions(tmp_path / "r.jsonl")
    assert report.format == "jsonl" and frame.rating.tolist() == [1.0, 2.0, 3.0]
    (tmp_path / "r.csv.gz").write_bytes(gzip.compress(b"user,item\n1,2\n3,4\n"))
    frame, _ = load_interactions(tmp_path / "r.csv.gz")
    assert frame.user_id.tolist() == ["1", "3"]
    upload = (b"user_id,item_id,rating\nu1,i1,5\nu2,i1,4\nu1,i1,1\n", "my upload.csv")
    raw, fmt = read_raw(upload)
    assert fmt == "csv" and raw.columns.tolist() == ["user_id", "item_id", "rating"]
    assert read_raw(upload, limit=1)[0].user_id.tolist() == ["u1"]
    frame, report = load_interactions(upload)  # no timestamps: the later line wins
    assert frame.values.tolist() == [["u2", "i1", 4.0], ["u1", "i1", 1.0]]
    assert report.duplicates == 1 and (report.n_users, report.n_items) == (2, 1)
    dataset, report = ingest(upload, home=home)
    assert dataset.name == "my-upload" and report.file == "my upload.csv"
    assert list_datasets(home) == ["my-upload"]


def test_report_to_dict_is_json(ml100k):
    _, report = load_interactions(ml100k / "u.data")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["mapping"]["user_id"] == "user_id" and data["rows_kept"] == 4
    assert isinstance(report, IngestReport) and "auto" in FORMATS


def test_item_and_user_tables_alone(ml100k):
    items = load_items(ml100k / "u.item")
    assert items.columns[:4].tolist() == ["item_id", "title", "text", "category"]
    assert len(items) == 4 and items.item_id.tolist() == ["10", "20", "30", "40"]
    users = load_users(ml100k / "u.user")
    assert users.columns.tolist() == ["user_id", "age", "gender", "occupation", "zip_code"]


# ---------------------------------------------------------------- bad files


def test_empty_and_binary(tmp_path, home):
    message = reject(home, write(tmp_path / "empty.csv", ""))
    assert "empty.csv" in message and "empty" in message
    junk = tmp_path / "junk.csv"
    junk.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)))
    message = reject(home, junk)
    assert "junk.csv" in message and "binary" in message


def test_wrong_delimiter_and_single_column(tmp_path, home):
    semi = write(tmp_path / "semi.csv", "user;item;rating\n1;2;3\n4;5;6\n")
    message = reject(home, semi, format="tsv")
    assert "only one column found" in message and "';'" in message and "semi.csv" in message
    caret = write(tmp_path / "caret.txt", "user^item\n1^2\n3^4\n")
    assert "'^'" in reject(home, caret)
    single = write(tmp_path / "single.csv", "user_id\n1\n2\n")
    message = reject(home, single)
    assert "only one column found ('user_id')" in message and "item column" in message


def test_missing_user_column_lists_columns(tmp_path, home):
    path = write(tmp_path / "nouser.csv", "movie,rating\n1,5\n")
    message = reject(home, path)
    assert "nouser.csv" in message and "no user column found" in message
    assert "movie, rating" in message and "--user-col" in message
    headerless = write(tmp_path / "plain.csv", "1,2,5\n3,4,3\n")
    message = reject(home, headerless)
    assert "column_1, column_2, column_3" in message and "no header line" in message


def test_non_numeric_rating_names_line_and_value(tmp_path, home):
    path = write(tmp_path / "bad.csv", "user,item,rating\n1,2,3\n\n4,5,five\n6,7,nope\n")
    message = reject(home, path)
    assert "file " in message and "bad.csv" in message
    assert "row 4" in message and "column 'rating'" in message and "'five'" in message


def test_header_only_and_all_ids_missing(tmp_path, home):
    message = reject(home, write(tmp_path / "head.csv", "user_id,item_id\n"))
    assert "header line but no data rows" in message
    message = reject(home, write(tmp_path / "noids.csv", "user_id,item_id,rating\n,,1\n , ,2\n"))
    assert "noids.csv" in message and "column 'user_id'" in message and "every one" in message


def test_path_format_and_mapping_errors(tmp_path, home):
    assert "does not exist" in reject(home, tmp_path / "nope.csv")
    assert "folder" in reject(home, tmp_path)
    ok = write(tmp_path / "ok.csv", "user,item\n1,2\n")
    message = reject(home, ok, format="xml")
    assert "unknown format 'xml'" in message and "movielens" in message
    message = reject(home, ok, mapping=ColumnMapping(rating="stars"))
    assert "column 'stars'" in message and "user, item" in message
    message = reject(home, ok, min_rating=3)
    assert "minimum rating" in message and "--rating-col" in message


def test_ragged_line_bad_date_and_bad_json(tmp_path, home):
    ragged = write(tmp_path / "ragged.csv", "user,item,rating\n1,2,3\n4,5\n")
    message = reject(home, ragged)
    assert "row 3" in message and "2 values" in message
    dates = write(tmp_path / "dates.csv", "user,item,time\n1,2,2024-01-01\n3,4,yesterday\n")
    message = reject(home, dates)
    assert "row 3" in message and "column 'time'" in message and "'yesterday'" in message
    bad = write(tmp_path / "bad.jsonl", '{"user": 1, "item": 2}\n{"user": 3, oops}\n')
    message = reject(home, bad)
    assert "bad.jsonl" in message and "row 2" in message


def test_excel_without_openpyxl(tmp_path, home, monkeypatch):
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # as if not installed: import fails
    path = tmp_path / "book.xlsx"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    message = reject(home, path)
    assert "openpyxl" in message and "CSV" in message


def test_sample_data(home):
    dataset, report = ingest(
        SAMPLE / "interactions.csv",
        items=SAMPLE / "items.csv",
        users=SAMPLE / "users.csv",
        name="sample",
        home=home,
    )
    raw = pd.read_csv(SAMPLE / "interactions.csv", dtype=str)
    assert report.rows_read == len(raw)
    assert report.rows_kept == len(raw.drop_duplicates(["user_id", "item_id"]))
    assert report.feedback == "implicit" and report.mapping.scenario == "scenario"
    assert sorted(dataset.scenarios) == sorted(raw.scenario.unique())
    assert {"title", "text", "category"} <= set(dataset.items.columns)
    assert {"age_band", "region"} <= set(dataset.users.columns)
    assert dataset.n_items >= raw.item_id.nunique() and dataset.n_users >= raw.user_id.nunique()
    assert list_datasets(home) == ["sample"]


def test_bad_value_after_the_first_block_and_late_latin1(tmp_path, home, monkeypatch):
    import core.data.ingest.read as reader

    monkeypatch.setattr(reader, "BLOCK_BYTES", 256)  # types get guessed from 256 bytes
    rows = "".join(f"{i},{i % 7},{i % 5 + 1}\n" for i in range(300))
    path = write(tmp_path / "late.csv", "user,item,rating\n" + rows + "9,9,n/x\n")
    message = reject(home, path)
    assert "row 302" in message and "'n/x'" in message and "column 'rating'" in message
    # Ratings read as text because another column failed: empty ratings are just missing.
    rows = "".join(f"{i},{i % 7},{'' if i == 3 else 4},{1000 + i}\n" for i in range(300))
    path = write(tmp_path / "late2.csv", "user,item,rating,ts\n" + rows + "9,9,4,soon\n")
    message = reject(home, path)
    assert "row 302" in message and "'soon'" in message and "column 'ts'" in message
    # Valid UTF-8 in the sniffed head, a Latin-1 byte far below it: read as Latin-1.
    body = "user,item,note\n" + "1,2,plain\n" * 8000 + "3,"
    (tmp_path / "late1.csv").write_bytes(body.encode() + "naïve,x\n".encode("latin-1"))
    frame, report = load_interactions(tmp_path / "late1.csv")
    assert report.rows_read == 8001 and frame.item_id.iloc[-1] == "naïve"


def test_headerless_tab_upload_is_read_as_movielens():
    upload = (b"1\t2\t5\t100\n1\t3\t4\t101\n2\t2\t3\t102\n", "export.tsv")
    frame, report = load_interactions(upload)
    assert report.format == "movielens" and report.feedback == "explicit"
    assert frame.columns.tolist() == ["user_id", "item_id", "timestamp", "rating"]
    assert frame.rating.dtype == np.float32 and frame.timestamp.tolist() == [100, 101, 102]
