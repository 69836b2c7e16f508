"""Nearest-neighbour index over item embeddings (Faiss; torch on a GPU faiss cannot use).

Vectors are L2-normalised and compared by inner product (= cosine). The kind follows the
catalogue size: exact `IndexFlatIP` up to `EXACT_MAX_CPU` items on the CPU (`EXACT_MAX_GPU`
on a GPU), IVF beyond (bench/index.py: at 1M items IVF built 2.6x faster than HNSW, with
lower latency at the same recall; kind="hnsw" stays available). An approximate index's
search setting (nprobe, efSearch) is tuned at build time on one item sample until recall@k
against exact search reaches `target_recall`; recall@k is then measured on a disjoint
sample and stored with the index. Saved as `index.faiss` (faiss.write_index) + `index.json`.

Placement (core.retrieval.placement): one GPU holds the index when faiss has GPUs; when faiss
sees more than one, the index is sharded over all of them (faiss' IndexShards, one shard per
GPU). `IndexInfo.shards`/`devices` and `layout()` say where it lives.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np
import scipy.sparse as sp
import torch

from core.device import pick_device
from core.errors import ParameterError, RecScopeError
from core.retrieval import placement as P
from core.storage import read_json, write_json

log = logging.getLogger(__name__)

KINDS = ("auto", "flat", "ivf", "hnsw")
EXACT_MAX_CPU = 50_000  # flat single-query search stays ~1 ms up to here on 2 CPU cores
EXACT_MAX_GPU = 5_000_000  # a GPU scans 5M x 64 floats in about a millisecond
TARGET_RECALL = 0.98  # tuned on one sample; leaves margin for the held-out one
RECALL_QUERIES = 500  # per sample (one to tune the search setting, one to report)
FORMAT_VERSION = 1
GPU_MAX_NPROBE = 2048  # faiss' GPU IVF search probes at most this many lists

_gpu_lock = threading.Lock()  # faiss GPU indexes are not safe to search from two threads


@dataclass
class IndexInfo:
    """What a person should know about an index: kind, where it runs, how good it is."""

    type: str  # "flat" | "ivf" | "hnsw"
    device: str  # where searches run: "cpu" | "cuda" | "mps"
    n: int
    dim: int
    build_s: float
    recall_at_k: float  # mean recall@k of neighbors() against exact search
    k: int
    params: dict = field(default_factory=dict)  # backend, nlist/nprobe or M/ef_search, ...
    shards: int = 1  # faiss IndexShards parts, one per GPU; 1 for an index in one place
    devices: list = field(default_factory=list)  # e.g. ["cuda:0", "cuda:1"] or ["cpu"]


class ItemIndex:
    """A searchable set of `n` unit vectors; ids are the row numbers (item codes)."""

    def __init__(self, vectors: np.ndarray, index, info: IndexInfo, device: torch.device):
        self._vectors = vectors  # (n, d) float32, normalised when info.params["normalized"]
        self._index = index  # a faiss index, or None when torch searches on the device
        self._device = device
        self._tvec = None if index is not None else torch.from_numpy(vectors).to(device)
        self.info = info

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        *,
        kind: str = "auto",
        device: str | None = None,
        recall_k: int = 10,
        seed: int = 0,
        normalize: bool = True,
        target_recall: float = TARGET_RECALL,
    ) -> ItemIndex:
        """Index `vectors` (n, d). `normalize=False` keeps raw inner products (MIPS)."""
        x = _as_matrix(vectors, "vectors")
        x = _normalized(x) if normalize else x
        n, d = x.shape
        dev, backend, gpus = P.placement(device)
        kind = _choose_kind(kind, n, backend)
        dev, backend, gpus = P.fallback(kind, dev, backend, gpus)
        shards = max(1, min(gpus, n))  # never an empty shard
        params: dict = {"backend": backend, "normalized": normalize}
        start = time.perf_counter()
        index = _build_faiss(x, kind, backend, dev, seed, params, shards)
        build_s = time.perf_counter() - start
        info = IndexInfo(kind, dev.type, n, d, round(build_s, 4), 1.0, recall_k, params)
        info.shards, info.devices = shards, P.devices(dev, backend, shards)
        self = cls(x, index, info, dev)
        self._measure_recall(recall_k, seed, target_recall)
        log.info("built %s index over %d x %d on %s in %.2fs", kind, n, d, dev, build_s)
        return self

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k ids (Q, k) int64 and scores (Q, k) float32; k is capped at n, -1 pads."""
        q = _as_matrix(queries, "queries")
        if q.shape[1] != self.info.dim:
            raise ParameterError(
                f"Queries have {q.shape[1]} dimensions but the index holds {self.info.dim}; "
                "query with vectors from the same embedding."
            )
        if self.info.params.get("normalized", True):
            q = _normalized(q)
        k = max(1, min(int(k), self.info.n))
        if self._index is None:
            return exact_search_torch(self._tvec, q, k, self._device)
        if self.info.type == "ivf" and self.info.params.get("backend") == "faiss-cpu":
            # probe enough lists to hold ~2k items, else a long list (retrieve) pads with -1
            per_list = self.info.n / self.info.params["nlist"]
            nprobe = int(
                min(self.info.params["nlist"], max(self.info.params["nprobe"], 2 * k / per_list))
            )
            return _pairs(self._index.search(q, k, params=faiss.SearchParametersIVF(nprobe=nprobe)))
        with _gpu_lock if self._device.type == "cuda" else contextlib.nullcontext():
            return _pairs(self._index.search(q, k))

    def neighbors(self, item_code: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest other items of `item_code`: ids (k,) and scores (k,)."""
        code = int(item_code)
        if not 0 <= code < self.info.n:
            raise ParameterError(
                f"Item code {code} is outside the index (0..{self.info.n - 1}); pass the code "
                "of an item of the dataset the index was built from."
            )
        k = max(1, min(int(k), self.info.n - 1))
        ids, scores = self.search(self._vectors[code : code + 1], k + 1)
        ids, scores = _drop_self(ids, scores, np.array([code]), k)
        return ids[0], scores[0]

    def save(self, folder: Path) -> None:
        """Write `index.faiss` (a CPU copy) and `index.json` into `folder`, atomically each."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self._index is None or self.info.type == "flat":  # the vectors are the index
            cpu = faiss.IndexFlatIP(self.info.dim)
            cpu.add(self._vectors)
        elif self.info.params.get("backend") == "faiss-gpu":  # one GPU or shards: merged
            cpu = faiss.index_gpu_to_cpu(self._index)
        else:
            cpu = self._index
        tmp = folder / f".index.faiss.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            faiss.write_index(cpu, str(tmp))
            os.replace(tmp, folder / "index.faiss")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        write_json(folder / "index.json", {"format_version": FORMAT_VERSION, **asdict(self.info)})

    @classmethod
    def load(cls, folder: Path, device: str | None = None) -> ItemIndex:
        """Read an index written by `save`, placed on this machine's device (or `device`)."""
        folder = Path(folder)
        if not (folder / "index.json").exists() or not (folder / "index.faiss").exists():
            raise RecScopeError(
                f"No saved index in {folder} (index.json and index.faiss are expected); build "
                "the index again."
            )
        meta = read_json(folder / "index.json")
        meta.pop("format_version", None)
        info = IndexInfo(**meta)
        cpu = faiss.read_index(str(folder / "index.faiss"))
        if info.type == "ivf":
            faiss.extract_index_ivf(cpu).make_direct_map()
        vectors = np.ascontiguousarray(cpu.reconstruct_n(0, cpu.ntotal), dtype=np.float32)
        dev, backend, gpus = P.placement(device)
        dev, backend, gpus = P.fallback(info.type, dev, backend, gpus)
        shards = max(1, min(gpus, info.n))
        _set_search_param(cpu, info.type, info.params)
        index = None if backend == "torch" else cpu
        if backend == "faiss-gpu":
            index = P.to_gpus(cpu, shards) if shards > 1 else P.to_gpu(cpu, dev)
            _set_search_param(index, info.type, info.params)
        info.device = dev.type
        info.params = {**info.params, "backend": backend}
        info.shards, info.devices = shards, P.devices(dev, backend, shards)
        return cls(vectors, index, info, dev)

    def _measure_recall(self, k: int, seed: int, target: float) -> None:
        """Tune the search setting on one item sample; report recall@k on another.

        Queries are indexed items and their own id is not counted (as in `neighbors`). A
        flat index is exact by construction: recall 1.0 is reported without a second scan.
        """
        start = time.perf_counter()
        n = self.info.n
        self.info.k = k = max(1, min(k, n - 1))
        if self.info.type == "flat":
            self.info.params.update(recall_queries=0, target_recall=target, recall_s=0.0)
            return
        order = np.random.default_rng(seed).permutation(n)
        m = min(RECALL_QUERIES, n // 2) if self.info.type != "flat" else 0
        sample = order[: 2 * m]  # first half tunes, second half reports
        base = self._tvec if self._tvec is not None else self._vectors
        truth, _ = exact_search_torch(base, self._vectors[sample], k + 1, self._device)
        truth, _ = _drop_self(truth, truth, sample, k)  # (2m, k) the oracle, scanned once
        if self.info.type == "ivf":  # nprobe 1, 2, 4, ... up to every list (GPU: 2048 at most)
            nlist = self.info.params["nlist"]
            if self.info.params["backend"] == "faiss-gpu":
                nlist = min(nlist, GPU_MAX_NPROBE)
            name, steps = "nprobe", [p for p in 2 ** np.arange(11) if p < nlist] + [nlist]
        else:  # HNSW efSearch 16 ... 2048 (at least k + 1); nothing to tune for flat
            name, steps = "ef_search", [e for e in 2 ** np.arange(4, 12) if e >= k + 1]
        for value in steps if m else []:
            self.info.params[name] = int(value)
            _set_search_param(self._index, self.info.type, self.info.params)
            if self._recall(sample[:m], truth[:m], k) >= target:
                break
        self.info.recall_at_k = round(self._recall(sample[m:], truth[m:], k), 4) if m else 1.0
        self.info.params.update(
            recall_queries=int(m), target_recall=target,
            recall_s=round(time.perf_counter() - start, 3),
        )  # fmt: skip

    def _recall(self, sample: np.ndarray, truth: np.ndarray, k: int) -> float:
        """recall@k of neighbours of the items `sample` against their exact ones `truth`."""
        ids, scores = self.search(self._vectors[sample], k + 1)
        return recall_at_k(_drop_self(ids, scores, sample, k)[0], truth)


def layout(info: IndexInfo) -> str:
    """Where the index lives, in words: '2 shards over 2 GPUs', '1 GPU index (cuda:0)',
    '1 CPU index' or 'exact torch search on mps'."""
    backend = info.params.get("backend")
    if backend == "faiss-gpu" and info.shards > 1:
        return f"{info.shards} shards over {len(info.devices)} GPUs"
    if backend == "faiss-gpu":
        return f"1 GPU index ({', '.join(info.devices) or 'cuda'})"
    if backend == "torch":
        return f"exact torch search on {', '.join(info.devices) or info.device}"
    return "1 CPU index"


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over rows of |found ∩ truth| / k, for id arrays (Q, k); -1 never matches."""
    if found.size == 0:
        return 1.0
    hits = (found[:, :, None] == truth[:, None, :]).any(axis=2) & (found >= 0)  # (Q, k)
    return float(hits.sum(axis=1).mean() / truth.shape[1])


def exact_search_torch(
    vectors, queries, k: int, device: torch.device | str | None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k with matmul + topk on `device`: ids (Q, k), scores (Q, k).

    On CUDA the matmul may run in TF32, so 2k+16 candidates are re-scored in full fp32 and
    re-sorted; the result then matches an fp32 scan.
    """
    dev = device if isinstance(device, torch.device) else pick_device(device)
    base = torch.as_tensor(vectors, dtype=torch.float32).to(dev)  # (N, d)
    qs = torch.as_tensor(queries, dtype=torch.float32).to(dev)  # (Q, d)
    n = base.shape[0]
    k = min(int(k), n)
    wide = min(n, 2 * k + 16) if dev.type == "cuda" else k
    batch = max(1, (1 << 26) // max(n, 1))  # bound the (B, N) score block to 256 MB
    ids_out, scores_out = [], []
    with torch.inference_mode():
        for start in range(0, qs.shape[0], batch):
            q = qs[start : start + batch]  # (B, d)
            top = torch.topk(q @ base.T, wide, dim=1)  # (B, wide)
            ids = top.indices
            if wide > k:
                exact = (base[ids] * q[:, None, :]).sum(-1)  # (B, wide) fp32, no TF32
                best = torch.topk(exact, k, dim=1)
                ids, scores = torch.gather(ids, 1, best.indices), best.values
            else:
                scores = top.values
            ids_out.append(ids.cpu())
            scores_out.append(scores.float().cpu())
    if not ids_out:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return torch.cat(ids_out).numpy().astype(np.int64), torch.cat(scores_out).numpy()


def retrieve(
    index: ItemIndex, user_vectors: np.ndarray, k: int, exclude: sp.csr_matrix | None = None,
    batch_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Top-k items per user vector (U, d), skipping items marked in `exclude` (U, n_items).

    Over-fetches k + (most seen items in the batch) so every user keeps k unseen items;
    rows pad with -1 / -inf only when the catalogue runs out. Build the index with
    `normalize=False` to rank by the model's raw dot product.
    """
    users = _as_matrix(user_vectors, "user_vectors")
    n_users, n = users.shape[0], index.info.n
    if exclude is not None and exclude.shape != (n_users, n):
        raise ParameterError(
            f"exclude has shape {exclude.shape} but ({n_users}, {n}) was expected (one row "
            "per user vector, one column per item); pass the seen-items matrix of these users."
        )
    seen = sp.csr_matrix(exclude) if exclude is not None else None
    out_ids = np.full((n_users, k), -1, dtype=np.int64)
    out_scores = np.full((n_users, k), -np.inf, dtype=np.float32)
    for start in range(0, n_users, batch_size):
        rows = slice(start, min(start + batch_size, n_users))
        extra = int(seen[rows].getnnz(axis=1).max(initial=0)) if seen is not None else 0
        ids, scores = index.search(users[rows], min(n, k + extra))  # (B, fetch)
        keep = ids >= 0
        if seen is not None:
            sub = seen[rows]  # (B, n); a pair (row, item) is the key row * n + item
            seen_keys = np.repeat(np.arange(sub.shape[0]), np.diff(sub.indptr)) * n + sub.indices
            keep &= ~np.isin(np.arange(len(ids))[:, None] * n + ids, seen_keys)
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept first, rank order kept
        take = min(k, order.shape[1])
        ok = np.take_along_axis(keep, order, axis=1)
        out_ids[rows, :take] = np.where(ok, np.take_along_axis(ids, order, axis=1), -1)
        out_scores[rows, :take] = np.where(ok, np.take_along_axis(scores, order, 1), -np.inf)
    return out_ids, out_scores


# --- private helpers ---------------------------------------------------------------------


def _choose_kind(kind: str, n: int, backend: str) -> str:
    if kind not in KINDS:
        raise ParameterError(f"Index kind '{kind}' is unknown; use one of {', '.join(KINDS)}.")
    if kind != "auto":
        return kind
    limit = EXACT_MAX_CPU if backend == "faiss-cpu" else EXACT_MAX_GPU
    return "flat" if n <= limit else "ivf"


def _build_faiss(
    x: np.ndarray, kind: str, backend: str, dev, seed: int, params: dict, shards: int = 1
):
    """The faiss index for `kind` filled with `x` (None for the torch backend), split over
    `shards` GPUs when there are more than one."""
    n, d = x.shape
    if kind == "flat":
        if backend == "torch":
            return None
        index = faiss.IndexFlatIP(d)
    elif kind == "ivf":
        nlist = int(np.clip(round(4 * np.sqrt(n)), 1, max(1, n // 39)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.cp.max_points_per_centroid = 40  # train on <= 40 * nlist points: fast, enough
        if backend == "faiss-gpu":  # k-means on the GPU; keep a reference while it trains
            gpu_flat = P.to_gpu(faiss.IndexFlatIP(d), dev)
            index.clustering_index = gpu_flat
        index.train(x)
        params.update(nlist=nlist)
    else:
        m, ef = (16, 40) if n <= 200_000 else (32, 64)  # more links for bigger graphs
        index = faiss.IndexHNSWFlat(d, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef
        params.update(M=m, ef_construction=ef)
    if backend == "faiss-gpu":  # empty (trained) on the GPUs; faiss splits the add over shards
        index = P.to_gpus(index, shards) if shards > 1 else P.to_gpu(index, dev)
    index.add(x)
    if kind == "ivf" and backend != "faiss-gpu":
        index.make_direct_map()
    return index


def _set_search_param(index, kind: str, params: dict) -> None:
    if isinstance(index, faiss.IndexShards):  # the shards search; the wrapper has no nprobe
        for i in range(index.count()):
            _set_search_param(faiss.downcast_index(index.at(i)), kind, params)
    elif kind == "ivf" and "nprobe" in params:
        index.nprobe = int(params["nprobe"])  # CPU IndexIVFFlat and GpuIndexIVFFlat alike
    elif kind == "hnsw" and "ef_search" in params:
        index.hnsw.efSearch = int(params["ef_search"])


def _pairs(result: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """faiss's (scores, ids) as our (ids int64, scores float32)."""
    return result[1].astype(np.int64), result[0].astype(np.float32)


def _drop_self(ids, scores, self_ids, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own id (or, if absent, its last entry) and keep k columns."""
    order = np.argsort(ids == np.asarray(self_ids)[:, None], axis=1, kind="stable")[:, :k]
    return np.take_along_axis(ids, order, 1), np.take_along_axis(scores, order, 1)


def _as_matrix(values, name: str) -> np.ndarray:
    x = np.ascontiguousarray(np.asarray(values, dtype=np.float32))
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or 0 in x.shape or not np.isfinite(x).all():
        raise ParameterError(
            f"{name} has shape {x.shape} (or NaN/inf values) but a finite, non-empty (rows, dims) "
            "matrix is needed; pass one embedding per row."
        )
    return x


def _normalized(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)
