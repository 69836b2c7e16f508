"""Column knowledge for ingest: name aliases, mapping inference, item/user tables, companions.

`infer_mapping` recognises the names public data sets and exports use (userId, movieId,
customer_id, article_id, stars, t_dat, ...). Item and user tables are read into the shapes
the app expects: items get item_id, title, text, category; users get user_id + attributes.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from core.data import schema as S
from core.data.ingest.clean import refuse_control
from core.data.ingest.formats import plural, sniff, to_source
from core.data.ingest.read import read_table
from core.data.schema import ColumnMapping
from core.errors import IngestError

# Give this as a mapping field to say "the file has no such column" (overrides inference).
NO_COLUMN = ""

_ALIASES: dict[str, tuple[str, ...]] = {
    S.USER_ID: (
        "userid", "user", "uid", "users", "customerid", "customer", "custid", "visitorid",
        "visitor", "memberid", "member", "clientid", "client", "accountid", "account",
        "reviewerid", "reviewer", "viewerid", "viewer", "personid", "buyerid", "buyer",
        "subscriberid", "profileid", "playerid", "listenerid", "sessionuser", "u",
    ),
    S.ITEM_ID: (
        "itemid", "item", "iid", "items", "movieid", "movie", "filmid", "productid", "product",
        "prodid", "articleid", "article", "sku", "asin", "songid", "song", "trackid", "track",
        "bookid", "book", "isbn", "videoid", "video", "contentid", "docid", "documentid",
        "postid", "newsid", "businessid", "artistid", "artist", "gameid", "recipeid",
        "offerid", "adid", "listingid", "poiid", "appid", "showid", "i",
    ),
    S.RATING: ("rating", "ratings", "score", "stars", "star", "rate", "overall", "preference",
               "grade", "ratingvalue"),
    S.TIMESTAMP: (
        "timestamp", "time", "date", "datetime", "ts", "eventtime", "eventdate", "createdat",
        "created", "unixtime", "unixreviewtime", "reviewtime", "tdat", "clicktime", "viewtime",
        "watchedat", "ratedat", "eventtimestamp",
    ),
    S.SCENARIO: ("scenario", "domain", "surface", "channel", "context", "placement",
                 "platform", "page", "section", "scene"),
    S.WEIGHT: ("weight", "count", "clicks", "click", "plays", "playcount", "quantity", "qty",
               "views", "viewcount", "frequency", "freq", "times"),
}  # fmt: skip
# Substrings that mark a column when no exact alias matches (checked in this order).
_CONTAINS = {
    S.USER_ID: ("user", "customer", "visitor"),
    S.ITEM_ID: ("item", "product", "movie", "article"),
    S.RATING: ("rating",),
    S.TIMESTAMP: ("timestamp", "datetime"),
}
_TITLE = ("title", "name", "movietitle", "itemname", "productname", "moviename", "prodname")
_TEXT = ("text", "description", "desc", "overview", "summary", "plot", "body", "abstract")
_CATEGORY = ("category", "categories", "genre", "genres", "class", "classes", "type",
             "department", "section", "group", "productgroupname", "cat")  # fmt: skip
_RECBOLE_SUFFIX = re.compile(r":(token|token_seq|float|float_seq)$")


def norm(name: str) -> str:
    """'User ID', 'user_id', 'userId' and 'user_id:token' all become 'userid'."""
    return re.sub(r"[^0-9a-z]", "", _RECBOLE_SUFFIX.sub("", str(name)).lower())


def infer_mapping(columns: list[str], format: str = "auto") -> ColumnMapping:
    """Which column holds each canonical field, guessed from the names (absent = None).

    `format` is accepted for symmetry with the readers: RecBole `name:type` headers and
    MovieLens names are recognised whatever it says.
    """
    mapping = ColumnMapping()
    taken: set[str] = set()
    for key in (S.USER_ID, S.ITEM_ID, S.RATING, S.TIMESTAMP, S.SCENARIO, S.WEIGHT):
        found = _pick(columns, _ALIASES[key], _CONTAINS.get(key, ()), taken)
        if found is not None:
            setattr(mapping, key, found)
            taken.add(found)
    return mapping


def guess_separator(lines: list[str]) -> str | None:
    """A character that occurs equally often (at least once) on every sample line."""
    if not lines:
        return None
    for ch in ",\t;|^~#:/ ":
        counts = {line.count(ch) for line in lines}
        if len(counts) == 1 and counts.pop() > 0:
            return ch
    return None


def load_items(source, *, format: str = "auto") -> pd.DataFrame:
    """Item table: item_id, title, text, category (when known), then other attributes.

    MovieLens genre flags (and any list-valued category column, e.g. RecBole's `class`) become
    `genres` ('Action|Comedy', every genre) with `category` the first genre; `text` is made
    from title and all genres when the file has none (`core.data.text.text_source` says so).
    """
    frame, src_name, types = _read_side(source, format, "items", S.ITEM_ID)
    notes = []
    flags = [c for c in frame.columns if str(c).startswith("genre:")]
    if flags:
        names = np.array([c.split(":", 1)[1] for c in flags], dtype=object)
        onehot = frame[flags].apply(pd.to_numeric, errors="coerce").fillna(0).to_numpy() > 0
        frame = frame.drop(columns=flags)
        frame["genres"] = ["|".join(names[row]) for row in onehot]
    rename = {}
    for target, aliases in ((S.TITLE, _TITLE), (S.TEXT, _TEXT), (S.CATEGORY, _CATEGORY)):
        if target not in frame.columns:
            found = _pick([c for c in frame.columns if c != S.ITEM_ID], aliases, (), set())
            if found is not None and found not in rename:
                rename[found] = target
    cat_source = next((k for k, v in rename.items() if v == S.CATEGORY), None)
    if cat_source is None and "genres" in frame.columns:
        cat_source = "genres"
    if cat_source is not None:
        seq = types.get(cat_source) == "token_seq" or norm(cat_source) in (
            "genre", "genres", "class", "classes", "categories",
        )  # fmt: skip
        values = frame[cat_source].astype("string")
        if seq:
            sep = "|" if values.str.contains("|", regex=False).any() else " "
            parts = values.str.split(sep, regex=False)
            if "genres" not in frame.columns:  # every genre kept, '|'-joined like u.item's
                frame["genres"] = parts.map(
                    lambda v: v if v is pd.NA else "|".join(t for t in v if t), na_action="ignore"
                )
            values = parts.str[0]
            values = values.mask(values.isin(["", "(no genres listed)"]))
        frame[S.CATEGORY] = values
        rename.pop(cat_source, None)
    frame = frame.rename(columns=rename)
    if S.TEXT not in frame.columns and S.TITLE in frame.columns:
        # every genre, not only the first ("Toy Story. Animation, Children's, Comedy")
        extra = frame["genres"] if "genres" in frame.columns else frame.get(S.CATEGORY)
        frame[S.TEXT] = _describe(frame[S.TITLE], extra)
    first = [c for c in (S.ITEM_ID, S.TITLE, S.TEXT, S.CATEGORY) if c in frame.columns]
    frame = frame[first + [c for c in frame.columns if c not in first]]
    notes.append(
        f"Item table {src_name}: {plural(len(frame), 'item')} with {', '.join(frame.columns)}."
    )
    frame.attrs["notes"] = frame.attrs.get("notes", []) + notes
    return frame


def load_users(source, *, format: str = "auto") -> pd.DataFrame:
    """User table: user_id then every other column as an attribute."""
    frame, src_name, _ = _read_side(source, format, "users", S.USER_ID)
    first = [S.USER_ID] + [c for c in frame.columns if c != S.USER_ID]
    frame = frame[first]
    note = f"User table {src_name}: {plural(len(frame), 'user')} with {', '.join(frame.columns)}."
    frame.attrs["notes"] = frame.attrs.get("notes", []) + [note]
    return frame


def find_companions(path: Path) -> dict:
    """The item and user tables that sit beside an interactions file, when there are any.

    u.data -> u.item/u.user; ratings.csv -> movies.csv; ratings.dat -> movies.dat/users.dat;
    x.inter -> x.item/x.user; interactions.csv -> items.csv/users.csv.
    """
    path = Path(path)
    name = path.name.lower()
    if name == "u.data" or re.match(r"^u[1-5ab]\.(base|test)$", name):
        wanted = ("u.item", "u.user")
    elif name == "ratings.csv":
        wanted = ("movies.csv", "users.csv")
    elif name == "ratings.dat":
        wanted = ("movies.dat", "users.dat")
    elif path.suffix.lower() == ".inter":
        wanted = (path.stem + ".item", path.stem + ".user")
    else:
        suffix = path.suffix.lower()
        stem = path.name[: len(path.name) - len(suffix)].lower()
        if stem not in ("interactions", "ratings", "events", "inter"):
            return {"items": None, "users": None}
        wanted = ("items" + suffix, "users" + suffix)
    folder = path.parent
    present = {p.name.lower(): p for p in folder.iterdir()} if folder.is_dir() else {}
    return {
        "items": present.get(wanted[0].lower()),
        "users": present.get(wanted[1].lower()),
    }


# ---------------------------------------------------------------------------- helpers


def _pick(
    columns: list[str], aliases: tuple[str, ...], contains: tuple[str, ...], taken: set[str]
) -> str | None:
    normed = [(norm(c), c) for c in columns if c not in taken]
    for alias in aliases:
        for key, column in normed:
            if key == alias:
                return column
    for part in contains:
        for key, column in normed:
            if part in key:
                return column
    return None


def _read_side(source, format: str, role: str, key: str) -> tuple[pd.DataFrame, str, dict]:
    """Read an item/user table; find, rename and clean its id column."""
    src = to_source(source)
    layout = sniff(src, format, role)
    aliases = _ALIASES[key] + ("id",)
    id_col = _pick(layout.columns, aliases, _CONTAINS[key], set()) if layout.columns else None
    table = read_table(src, layout, string_columns=(id_col,) if id_col else ())
    columns = table.column_names
    id_col = id_col or _pick(columns, aliases, _CONTAINS[key], set())
    if id_col is None or len(columns) < 1:
        raise IngestError(
            f"no {role[:-1]} id column found among the columns {', '.join(columns)}",
            file=src.name,
            hint=f"name the id column {key} (or {role[:-1]}Id, id)",
        )
    frame = table.to_pandas()
    ids = frame[id_col]
    if pd.api.types.is_float_dtype(ids) and (ids.dropna() % 1 == 0).all():
        ids = ids.astype("Int64")
    ids = ids.astype("string").str.strip()
    refuse_control(src, layout, pa.array(ids, type=pa.string()), id_col, f"{role[:-1]} id")
    frame = frame.drop(columns=[id_col])
    frame.insert(0, key, ids)
    missing = frame[key].isna() | (frame[key] == "")
    notes = []
    if missing.any():
        notes.append(f"{src.name}: dropped {plural(int(missing.sum()), 'row')} without an id.")
        frame = frame[~missing.to_numpy()]
    dup = frame[key].duplicated()
    if dup.any():
        notes.append(
            f"{src.name}: {plural(int(dup.sum()), 'repeated id')}; the first row of each kept."
        )
        frame = frame[~dup.to_numpy()]
    if frame.empty:
        raise IngestError(
            f"the {role} table has no rows with an id",
            file=src.name,
            column=id_col,
            hint="fill in the id column",
        )
    frame = frame.reset_index(drop=True)
    frame.attrs["notes"] = [f"{src.name}: {note}" for note in layout.notes] + notes
    return frame, Path(src.name).name, layout.types


def _describe(titles: pd.Series, extra: pd.Series | None) -> pd.Series:
    """'Toy Story (1995). Animation, Children's, Comedy' for text embeddings."""
    text = titles.astype("string").fillna("")
    if extra is not None:
        tags = extra.astype("string").fillna("").str.replace("|", ", ", regex=False)
        text = text.where(tags == "", text + ". " + tags)
    return text
