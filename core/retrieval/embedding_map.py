"""A 2-D map of item embeddings: UMAP by default, PCA only where UMAP cannot run.

UMAP (umap-learn, a dependency) draws the map; PCA only when there are too few items
(`UMAP_MIN`) or umap cannot be imported, and `method_note` says which one drew it and why.
A drawn map is kept on disk (`stored_map`): UMAP's numba kernels compile for tens of seconds
in every fresh process, so a map is projected once per run, not once per server start.

Rows are L2-normalised first, so distances on the map follow the cosine similarity the
index uses. The result is a plain DataFrame (x, y, item_code, title, category, popularity,
scenario): a pure function of its inputs, cheap to cache by run id.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from core.data import schema as S
from core.data.dataset import Dataset
from core.errors import ParameterError
from core.storage import write_parquet

log = logging.getLogger(__name__)

METHODS = ("auto", "umap", "pca")
UMAP_MIN = 16  # fewer items: UMAP's neighbour graph is degenerate, PCA draws the map
MAP_FILE = "map.parquet"  # a drawn map kept in the run's index folder / the dataset folder
MAX_POINTS = 20_000  # a browser draws this many markers smoothly


def umap_available() -> bool:
    return importlib.util.find_spec("umap") is not None


def project_2d(vectors: np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """(n, d) vectors -> (n, 2) coordinates and the method used ("umap" or "pca")."""
    if method not in METHODS:
        raise ParameterError(f"Map method '{method}' is unknown; use one of {', '.join(METHODS)}.")
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ParameterError(f"Cannot map vectors of shape {x.shape}; one row per item is needed.")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms > 0, norms, 1.0)
    if method == "umap" and not umap_available():
        raise ParameterError("Map method 'umap' needs the umap-learn package; use 'pca'.")
    if method == "umap" or (method == "auto" and umap_available() and len(x) >= UMAP_MIN):
        try:
            import umap
        except ImportError as exc:  # installed but broken (e.g. a numba mismatch)
            if method == "umap":
                raise ParameterError(f"umap-learn cannot be imported ({exc}); use 'pca'.") from exc
            log.warning("UMAP cannot be imported (%s); the map uses PCA", exc)
            return _pca(x), "pca"
        reducer = umap.UMAP(n_components=2, metric="cosine", random_state=seed)
        return np.asarray(reducer.fit_transform(x), dtype=np.float32), "umap"
    return _pca(x), "pca"


def method_note(method: str, n: int) -> str:
    """Which projection drew a map of `n` items, and why PCA when it is PCA (one sentence)."""
    if method == "umap":
        return f"{n:,} items projected with UMAP (cosine distances)."
    if n < UMAP_MIN:
        why = f"UMAP needs at least {UMAP_MIN} items"
    elif not umap_available():
        why = "umap-learn is not installed"
    else:
        why = "UMAP could not be imported"
    return f"{n:,} items projected with PCA ({why})."


def stored_map(
    vectors: np.ndarray, dataset: Dataset, folder: Path | None, *, seed: int = 0
) -> tuple[pd.DataFrame, str]:
    """`embedding_map` read from `folder/map.parquet` when it was drawn before, else drawn
    and written there (atomically), so a new server process does not project again (UMAP
    compiles for tens of seconds in a fresh process). The file is keyed by item count and
    a digest of the vectors; the item facts are joined afresh."""
    key = _map_key(vectors, seed)
    path = None if folder is None else Path(folder) / MAP_FILE
    if path is not None and path.exists():
        try:
            frame = pd.read_parquet(path)
            if "key" in frame.columns and len(frame) and (frame["key"] == key).all():
                return _with_facts(frame, dataset), str(frame["method"].iat[0])
        except (OSError, ValueError, KeyError) as exc:
            log.warning("drawing the map again: %s is unreadable (%s)", path, exc)
    table, used = embedding_map(vectors, dataset, seed=seed)
    if path is not None:
        coords = table[["x", "y", S.ITEM]].assign(method=used, key=key)
        try:
            write_parquet(path, coords)
        except OSError as exc:
            log.warning("the map could not be kept in %s: %s", path, exc)
    return table, used


def map_stored(vectors: np.ndarray, folder: Path | None, *, seed: int = 0) -> bool:
    """True when `stored_map` would read these vectors' map from `folder` (no projecting)."""
    path = None if folder is None else Path(folder) / MAP_FILE
    if path is None or not path.exists():
        return False
    try:
        keys = pd.read_parquet(path, columns=["key"])["key"]
    except (OSError, ValueError, KeyError):
        return False
    return bool(len(keys)) and bool((keys == _map_key(vectors, seed)).all())


def _map_key(vectors: np.ndarray, seed: int) -> str:
    """What a stored map was drawn from: item count, a digest of the vectors, UMAP or not."""
    digest = hashlib.sha256(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    return f"{len(vectors)}-{digest.hexdigest()[:16]}-{int(umap_available())}-{seed}"


def embedding_map(
    vectors: np.ndarray,
    dataset: Dataset,
    *,
    method: str = "auto",
    max_points: int = MAX_POINTS,
    keep: int | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, str]:
    """The map table of `vectors` (n_items, d) with the items' titles and facts.

    Above `max_points` items a seeded sample is drawn (the item `keep` always stays in).
    Returns the table and the projection method used.
    """
    if len(vectors) != dataset.n_items:
        raise ParameterError(
            f"Got {len(vectors)} vectors for {dataset.n_items} items of '{dataset.name}'; "
            "pass one embedding per item of this dataset."
        )
    codes = np.arange(dataset.n_items)
    if len(codes) > max_points:
        rng = np.random.default_rng(seed)
        codes = np.sort(rng.choice(codes, size=max_points, replace=False))
        if keep is not None and keep not in codes:
            codes = np.sort(np.r_[codes[1:], keep])
    xy, used = project_2d(np.asarray(vectors)[codes], method, seed)
    table = item_facts(dataset).iloc[codes].reset_index(drop=True)
    table.insert(0, "x", xy[:, 0])
    table.insert(1, "y", xy[:, 1])
    return table, used


def item_facts(dataset: Dataset) -> pd.DataFrame:
    """Per item code: item_code, item_id, title, category (the first genre: map colours),
    popularity, scenario, and genres ('Action, Comedy': all of them) when the items have them."""
    n = dataset.n_items
    inter = dataset.interactions
    pop = np.bincount(inter[S.ITEM].to_numpy(), minlength=n).astype(np.int64)
    category = (
        dataset.items[S.CATEGORY].astype(object).where(dataset.items[S.CATEGORY].notna(), "—")
        if S.CATEGORY in dataset.items.columns
        else pd.Series(["—"] * n)
    )
    facts = pd.DataFrame(
        {
            S.ITEM: np.arange(n),
            S.ITEM_ID: dataset.item_ids.astype(str),
            S.TITLE: dataset.item_titles(),
            S.CATEGORY: category.astype(str).to_numpy(),
            "popularity": pop,
            S.SCENARIO: main_scenario(dataset),
        }
    )
    if "genres" in dataset.items.columns:  # every genre of multi-genre items ('A, B')
        genres = dataset.items["genres"].astype("string").fillna("")
        facts["genres"] = genres.str.replace("|", ", ", regex=False).to_numpy(dtype=object)
    return facts


def main_scenario(dataset: Dataset) -> np.ndarray:
    """Each item's most frequent scenario in the interactions ("—" when it has none).

    Items without interactions take the item table's `scenario` column when there is one.
    """
    n = dataset.n_items
    out = np.full(n, "—", dtype=object)
    if S.SCENARIO in dataset.items.columns:
        col = dataset.items[S.SCENARIO].astype(object)
        out[:] = col.where(col.notna(), "—").astype(str).to_numpy()
    if dataset.has_scenarios:
        inter = dataset.interactions
        pairs = inter.groupby([S.ITEM, S.SCENARIO_CODE], sort=False).size().reset_index(name="n")
        top = pairs.sort_values(["n", S.SCENARIO_CODE], ascending=[False, True], kind="stable")
        top = top.drop_duplicates(S.ITEM)
        names = np.asarray(dataset.scenarios, dtype=object)
        out[top[S.ITEM].to_numpy()] = names[top[S.SCENARIO_CODE].to_numpy()]
    return out


def _with_facts(coords: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """Stored x, y per item code joined with the items' facts (as `embedding_map` gives)."""
    codes = coords[S.ITEM].to_numpy(dtype=np.int64)
    table = item_facts(dataset).iloc[codes].reset_index(drop=True)
    table.insert(0, "x", coords["x"].to_numpy())
    table.insert(1, "y", coords["y"].to_numpy())
    return table


def _pca(x: np.ndarray) -> np.ndarray:
    """First two principal components of the rows of x (n, d), signs fixed for stability."""
    centred = x - x.mean(axis=0, keepdims=True)
    if len(x) < 2:
        return np.zeros((len(x), 2), dtype=np.float32)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)  # vt (min(n, d), d)
    axes = vt[:2]
    if axes.shape[0] < 2:
        axes = np.vstack([axes, np.zeros((2 - axes.shape[0], x.shape[1]))])
    # a component's sign is arbitrary; make its largest loading positive (same map each time)
    flip = np.sign(axes[np.arange(2), np.abs(axes).argmax(axis=1)])
    xy = centred @ (axes * np.where(flip == 0, 1.0, flip)[:, None]).T
    return xy.astype(np.float32)
