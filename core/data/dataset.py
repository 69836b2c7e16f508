"""`Dataset`: interactions as integer codes plus item/user tables and the id<->code maps.

Models only ever see codes; the dataset owns the maps and the unknown-id rule (an id that
is not in the data raises `UnknownIdError` naming it). `Interactions` owns the views every
sequence-aware caller shares, each computed once per object: `ordered` (rows by user, then
time), `ordered_scenarios` and `sequences`.

Scenario codes follow one convention (`scenario_codes`): data without a scenario column is
one scenario, and every row has code 0. `Interactions.n_scenarios` is then 0 ("no
scenarios"); models that pad sequences use the code n_scenarios for padding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from core.data import schema as S
from core.data import stored
from core.data.codes import canonical_order, pair_hash
from core.data.stored import DatasetExistsError, datasets_dir, free_name, list_datasets  # noqa: F401
from core.errors import RecScopeError, UnknownIdError
from core.names import check_dataset_name
from core.storage import atomic_dir, read_json, write_json

FORMAT_VERSION = 1


@dataclass
class Dataset:
    """A whole data set, ready for splitting and training.

    `interactions` columns: user_code, item_code (int32), timestamp (int64; row order when
    the file had none), optional rating (float32) and scenario_code (int16).
    `items` / `users` are indexed by code and always hold `item_id` / `user_id`.
    `folder` is where the dataset is stored (set by `load` and `save`; None in memory): the
    data layer caches what it derives from the data there (item text embeddings).
    `fingerprint` and `ingested_at` identify the stored version (`core.data.stored`).
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    scenarios: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    folder: Path | None = field(default=None, compare=False, repr=False)
    fingerprint: str | None = field(default=None, compare=False, repr=False)
    ingested_at: str | None = field(default=None, compare=False, repr=False)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def has_ratings(self) -> bool:
        return S.RATING in self.interactions.columns

    @property
    def has_timestamps(self) -> bool:
        return bool(self.info.get("has_timestamp", True))

    @property
    def has_scenarios(self) -> bool:
        return S.SCENARIO_CODE in self.interactions.columns and len(self.scenarios) > 0

    @property
    def user_ids(self) -> np.ndarray:
        return self.users[S.USER_ID].to_numpy(dtype=object)

    @property
    def item_ids(self) -> np.ndarray:
        return self.items[S.ITEM_ID].to_numpy(dtype=object)

    def item_titles(self) -> np.ndarray:
        """Readable item names (the title when there is one, else the id)."""
        if S.TITLE in self.items.columns:
            titles = self.items[S.TITLE].astype(object)
            return titles.where(titles.notna(), self.items[S.ITEM_ID]).astype(str).to_numpy()
        return self.items[S.ITEM_ID].astype(str).to_numpy()

    def user_codes(self, ids) -> np.ndarray:
        return _lookup(self.users[S.USER_ID], ids, "user", self.name)

    def item_codes(self, ids) -> np.ndarray:
        return _lookup(self.items[S.ITEM_ID], ids, "item", self.name)

    def all(self) -> Interactions:
        """Every interaction, as the view models train on."""
        return Interactions(self.interactions, self.n_users, self.n_items, self)

    @classmethod
    def from_frames(
        cls,
        name: str,
        interactions: pd.DataFrame,
        items: pd.DataFrame | None = None,
        users: pd.DataFrame | None = None,
        info: dict | None = None,
    ) -> Dataset:
        """Build codes from canonical frames (user_id, item_id, [timestamp, rating, scenario]).

        Items listed only in the item table still get a code (cold items); the same for users.
        """
        check_name(name)
        info = dict(info or {})
        frame = interactions.reset_index(drop=True)
        # factorize once per column, then match only the (few) unique ids to the side
        # tables: far cheaper than converting every row's id to a Python string
        user_rows, user_ids = _factorize(frame[S.USER_ID])
        item_rows, item_ids = _factorize(frame[S.ITEM_ID])
        items = _side_table(items, S.ITEM_ID, item_ids)
        users = _side_table(users, S.USER_ID, user_ids)
        codes = pd.DataFrame(
            {
                S.USER: _codes(user_ids, users[S.USER_ID])[user_rows].astype(np.int32),
                S.ITEM: _codes(item_ids, items[S.ITEM_ID])[item_rows].astype(np.int32),
            }
        )
        has_time = S.TIMESTAMP in frame.columns
        info["has_timestamp"] = has_time
        if has_time:
            codes[S.TIMESTAMP] = frame[S.TIMESTAMP].to_numpy(dtype=np.int64)
        else:
            codes[S.TIMESTAMP] = np.arange(len(frame), dtype=np.int64)
        if S.RATING in frame.columns:
            codes[S.RATING] = frame[S.RATING].to_numpy(dtype=np.float32)
        scenarios: list[str] = []
        if S.SCENARIO in frame.columns:
            scen_rows, scen_ids = _factorize(frame[S.SCENARIO])
            scenarios = sorted(scen_ids.tolist())
            codes[S.SCENARIO_CODE] = _codes(scen_ids, pd.Series(scenarios))[scen_rows].astype(
                np.int16
            )
        return cls(name, codes, items, users, scenarios, info)

    def save(self, home: Path, *, replace: bool = False) -> Path:
        """Write to `home/datasets/<name>/` atomically (Parquet + dataset.json); sets `folder`.

        A stored dataset of that name is kept and `DatasetExistsError` raised, unless
        `replace`; the check and the rename happen under the name's lock, so of two writers
        of one new name the second refuses. dataset.json gets the tables' fingerprint.
        """
        target = stored.dataset_dir(home, self.name)
        with stored.name_lock(home, self.name), atomic_dir(target) as tmp:
            if not replace:
                stored.refuse_existing(home, self.name)
            self.interactions.to_parquet(tmp / "interactions.parquet", index=False)
            self.items.to_parquet(tmp / "items.parquet", index=False)
            self.users.to_parquet(tmp / "users.parquet", index=False)
            stamp = stored.now_iso()
            meta = {
                "format_version": FORMAT_VERSION,
                "name": self.name,
                "fingerprint": stored.fingerprint(tmp),
                "ingested_at": stamp,
                "n_users": self.n_users,
                "n_items": self.n_items,
                "n_interactions": len(self.interactions),
                "scenarios": self.scenarios,
                "info": self.info,
            }
            write_json(tmp / stored.META, meta)
        self.folder, self.fingerprint, self.ingested_at = target, meta["fingerprint"], stamp
        return target

    @classmethod
    def load(cls, home: Path, name: str) -> Dataset:
        """The stored dataset `name` (checked first: no name reads outside the datasets)."""
        folder = stored.dataset_dir(home, name)
        if not (folder / stored.META).exists():
            known = ", ".join(list_datasets(home)) or "none yet"
            raise RecScopeError(
                f"There is no dataset named '{name}' (known: {known}); ingest one first."
            )
        meta = read_json(folder / stored.META)
        loaded = cls(
            name=meta["name"],
            interactions=pd.read_parquet(folder / "interactions.parquet"),
            items=pd.read_parquet(folder / "items.parquet"),
            users=pd.read_parquet(folder / "users.parquet"),
            scenarios=list(meta.get("scenarios", [])),
            info=dict(meta.get("info", {})),
            folder=folder,
            fingerprint=meta.get("fingerprint"),
            ingested_at=meta.get("ingested_at"),
        )
        if loaded.fingerprint is None:  # stored before fingerprints: hash the files read
            loaded.fingerprint = stored.fingerprint(folder)
        elif read_json(folder / stored.META).get("fingerprint") != loaded.fingerprint:
            return cls.load(home, name)  # replaced while being read: read the new one whole
        return loaded


@dataclass(frozen=True)
class Interactions:
    """A slice of a dataset's interactions (a split part) with the catalogue size.

    `frame` has the columns of `Dataset.interactions`. `dataset` gives side information
    (item text, attributes, scenarios) to the models that use it. The ordered views are
    cached on the object, so `frame` must not be changed after they are first read.
    """

    frame: pd.DataFrame
    n_users: int
    n_items: int
    dataset: Dataset | None = None

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def users(self) -> np.ndarray:
        return self.frame[S.USER].to_numpy()

    @property
    def items(self) -> np.ndarray:
        return self.frame[S.ITEM].to_numpy()

    def csr(self, values: str | None = None) -> sp.csr_matrix:
        """User x item matrix (n_users, n_items); 1.0 per pair unless `values` names a column."""
        data = (
            np.ones(len(self.frame), dtype=np.float32)
            if values is None
            else self.frame[values].to_numpy(dtype=np.float32)
        )
        mat = sp.csr_matrix(
            (data, (self.users, self.items)), shape=(self.n_users, self.n_items), dtype=np.float32
        )
        if values is None:
            mat.data[:] = 1.0  # duplicates summed by scipy -> back to binary
        return mat

    def torch_csr(self, device: torch.device) -> torch.Tensor:
        """Binary user x item matrix as a torch sparse CSR tensor on `device`."""
        mat = self.csr()
        return torch.sparse_csr_tensor(
            torch.from_numpy(mat.indptr.astype(np.int64)),
            torch.from_numpy(mat.indices.astype(np.int64)),
            torch.from_numpy(mat.data),
            size=mat.shape,
        ).to(device)

    @cached_property
    def ordered(self) -> pd.DataFrame:
        """`frame` sorted by user, then time; equal times in a fixed pseudo-random order.

        Each user's history in time order: the one order every sequence view is cut from.
        Rows with equal timestamps (MovieLens users rate many films in one second) are
        ordered by a hash of (user code, item code): not by row order, so the same data in
        another row order holds out the same items under leave-last-out, and not by item
        code, which would always hold out the highest id of the group (ids often follow
        release date, so that would bias which items are held out).
        """
        frame = self.frame
        tie = pair_hash(frame[S.USER].to_numpy(), frame[S.ITEM].to_numpy())
        order = np.lexsort((tie, frame[S.TIMESTAMP].to_numpy(), frame[S.USER].to_numpy()))
        return frame.iloc[order]

    @cached_property
    def ordered_scenarios(self) -> np.ndarray:
        """Scenario code per row of `ordered`, (n,) int64 (`scenario_codes`' convention)."""
        return scenario_codes(self.ordered)

    @property
    def n_scenarios(self) -> int:
        """Number of scenario codes: the dataset's scenarios, else one past the largest code
        in the frame; 0 when the data has no scenario column (every code is then 0)."""
        if S.SCENARIO_CODE not in self.frame.columns:
            return 0
        if self.dataset is not None and self.dataset.scenarios:
            return len(self.dataset.scenarios)
        return int(self.frame[S.SCENARIO_CODE].max()) + 1 if len(self.frame) else 0

    def sequences(
        self, max_len: int, pad: int = -1, *, values: np.ndarray | None = None
    ) -> np.ndarray:
        """Each user's most recent `max_len` items in time order, left-padded with `pad`.

        Shape (n_users, max_len) int64; users without interactions are all `pad`. `values`
        (one per row of `ordered`, e.g. `ordered_scenarios`) are laid out instead of items.
        """
        out = np.full((self.n_users, max_len), pad, dtype=np.int64)
        if len(self.frame) == 0:
            return out
        users, from_end = self._from_end
        keep = from_end < max_len
        taken = self.ordered[S.ITEM].to_numpy() if values is None else np.asarray(values)
        out[users[keep], max_len - 1 - from_end[keep]] = taken[keep]
        return out

    def pair_keys(self) -> np.ndarray:
        """One int64 per row, in row order: user_code * n_items + item_code, (n,). The one
        key of a (user, item) pair: negative sampling's known pairs, the held-out filter."""
        return self.users.astype(np.int64) * max(self.n_items, 1) + self.items.astype(np.int64)

    def of_users(self, user_codes) -> Interactions:
        """The rows of `user_codes` only, in their order (same catalogue): what a page needs
        of a few users, without indexing every user's rows (one scan: ~10 ms per million)."""
        mine = np.isin(self.users, np.asarray(user_codes, dtype=np.int64))
        return Interactions(self.frame[mine], self.n_users, self.n_items, self.dataset)

    def concat(self, other: Interactions) -> Interactions:
        frame = pd.concat([self.frame, other.frame], ignore_index=True)
        return Interactions(frame, self.n_users, self.n_items, self.dataset or other.dataset)

    @cached_property
    def _from_end(self) -> tuple[np.ndarray, np.ndarray]:
        """Users of `ordered`'s rows and each row's position from its user's newest (0)."""
        users = self.ordered[S.USER].to_numpy()
        starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1]
        counts = np.diff(np.r_[starts, len(users)])
        return users, np.repeat(starts + counts, counts) - np.arange(len(users)) - 1


def scenario_codes(frame: pd.DataFrame) -> np.ndarray:
    """Scenario code per row, (n,) int64; 0 for every row when there is no scenario column."""
    if S.SCENARIO_CODE in frame.columns:
        return frame[S.SCENARIO_CODE].to_numpy(dtype=np.int64)
    return np.zeros(len(frame), dtype=np.int64)


def dataset_summary(home: Path, name: str) -> dict:
    """The small JSON record of a stored dataset, without loading its tables."""
    return read_json(stored.dataset_dir(home, name) / stored.META)


def check_name(name: str) -> str:
    """`name` if it can name a dataset, else one sentence with the rule (`core.names`)."""
    return check_dataset_name(name)


def _as_str(column: pd.Series) -> pd.Series:
    """Ids as strings; floats that are whole numbers lose their '.0' (3.0 -> '3')."""
    if pd.api.types.is_float_dtype(column):
        whole = column.dropna()
        if len(whole) and (whole == np.floor(whole)).all():
            return column.astype("Int64").astype(str).astype(object)
    return column.astype(str).astype(object)


def _factorize(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Row codes into the column's unique values, and those values as id strings."""
    rows, uniques = pd.factorize(column, sort=False)
    assert (rows >= 0).all(), "missing ids are dropped at ingest"
    return rows, _as_str(pd.Series(uniques)).to_numpy(dtype=object)


def _side_table(table: pd.DataFrame | None, key: str, seen_ids: np.ndarray) -> pd.DataFrame:
    """Side table indexed by code: every id of the table and of the interactions, one row each,
    in canonical id order (`canonical_order`).

    Codes follow the ids themselves, not the order rows or table lines came in, so the same
    data in another row order gets the same codes — and with them the same splits, tie
    order and initial weights (DESIGN.md: results must not change with row order).
    """
    if table is None or len(table) == 0:
        table = pd.DataFrame({key: pd.Series([], dtype=object)})
    table = table.copy()
    table[key] = _as_str(table[key])
    table = table.drop_duplicates(key, keep="first")
    missing = pd.Index(seen_ids).difference(pd.Index(table[key]), sort=False)
    if len(missing):
        table = pd.concat([table, pd.DataFrame({key: np.asarray(missing, dtype=object)})])
    table = table.reset_index(drop=True)
    return table.iloc[canonical_order(table[key].to_numpy(dtype=object))].reset_index(drop=True)


def _codes(values: np.ndarray, vocabulary: pd.Series) -> np.ndarray:
    index = pd.Index(vocabulary.to_numpy(dtype=object))
    codes = index.get_indexer(values)
    assert (codes >= 0).all(), "every id must be in its vocabulary"
    return codes


def _lookup(vocabulary: pd.Series, ids, kind: str, dataset: str) -> np.ndarray:
    index = pd.Index(vocabulary.astype(str).to_numpy(dtype=object))
    wanted = np.atleast_1d(np.asarray(ids, dtype=object)).astype(str)
    codes = index.get_indexer(wanted)
    if (codes < 0).any():
        bad = wanted[codes < 0][0]
        raise UnknownIdError(
            f"The {kind} id '{bad}' is not in dataset '{dataset}'; use an id as it appears "
            "in the uploaded file."
        )
    return codes.astype(np.int64)
