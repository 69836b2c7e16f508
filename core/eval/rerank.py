"""Diversity- and novelty-aware re-ranking of a model's top candidates (MMR-style).

Maximal Marginal Relevance (Carbonell & Goldstein, SIGIR 1998): the list is built greedily;
at each step the candidate with the highest

    value(j) = (1 − λ) · [(1 − ν) · rel(j) + ν · nov(j)] − λ · max_{s ∈ chosen} sim(j, s)

is appended, where rel = the model's score min-max scaled to [0, 1] within the user's pool,
nov = self-information −log2(share of users who know the item) / log2(n_users) in [0, 1]
(the novelty metric's own quantity), λ = `diversity`, ν = `novelty`, both in [0, 1].
λ = ν = 0 returns the model's own top-k order.

Similarity, in order of preference: cosine of the model's item embeddings; same category
(1) or not (0); the model's item-item weights (item-kNN/EASE, symmetrised, scaled to
[0, 1]); cosine of co-occurrence vectors (a truncated SVD of the known interactions).
Everything is vectorised over users: (U, C) pools, (U, C, C) similarities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from core.data import schema as S
from core.data.dataset import Interactions
from core.errors import ParameterError
from core.eval import metrics as M
from core.eval.beyond import _diversity_basis, popularity
from core.eval.ranking import rank_users, top_k
from core.protocols import SimilarItems

DEFAULT_POOL = 100
DEFAULT_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
_SVD_DIM = 32


@dataclass
class ItemSimilarity:
    """Pairwise item similarity in [0, 1] (embeddings may give [-1, 1]); `basis` says which."""

    basis: str  # "embeddings" | "categories" | "item-item weights" | "co-occurrence"
    vectors: torch.Tensor | None = None  # (n_items, d) L2-normalised
    categories: torch.Tensor | None = None  # (n_items,) int codes, -1 = missing
    matrix: torch.Tensor | None = None  # (n_items, n_items) dense

    def pairwise(self, items: torch.Tensor) -> torch.Tensor:
        """(U, C) item codes -> (U, C, C) similarities."""
        if self.vectors is not None:
            vecs = self.vectors.to(items.device)[items]  # (U, C, d)
            return vecs @ vecs.transpose(1, 2)
        if self.categories is not None:
            cats = self.categories.to(items.device)[items]  # (U, C)
            return (cats[:, :, None] == cats[:, None, :]).float()
        mat = self.matrix.to(items.device)
        return mat[items[:, :, None], items[:, None, :]]  # (U, C, C)


def item_similarity(model, known: Interactions) -> ItemSimilarity:
    """The similarity re-ranking uses for `model` (see the module docstring for the order)."""
    emb = model.item_embeddings()
    if emb is not None:
        vecs = torch.nn.functional.normalize(torch.as_tensor(np.asarray(emb)).float(), dim=1)
        return ItemSimilarity("embeddings", vectors=vecs)
    dataset = known.dataset
    if dataset is not None and S.CATEGORY in dataset.items.columns:
        codes, _ = pd.factorize(dataset.items[S.CATEGORY].astype(object), use_na_sentinel=True)
        return ItemSimilarity("categories", categories=torch.from_numpy(codes.astype(np.int64)))
    # only a dense W is used: a model's sparse weights (item-kNN's top-k, the lowrank EASE's
    # kept weights) are not even asked for; the lowrank EASE makes them block by block
    dense = isinstance(model, SimilarItems) and model.has_dense_weights()
    weights = model.item_weights() if dense else None
    if weights is not None:
        sym = torch.clamp((weights + weights.T) / 2, min=0).float()
        top = float(sym.max())
        return ItemSimilarity("item-item weights", matrix=sym / top if top > 0 else sym)
    return ItemSimilarity("co-occurrence", vectors=_cooccurrence_vectors(known.csr()))


def self_information(known: Interactions) -> torch.Tensor:
    """(n_items,) −log2(share of users who know the item) / log2(n_users), in [0, 1]."""
    share = np.clip(popularity(known), 1, None) / max(1, known.n_users)
    info = -np.log2(share) / max(np.log2(max(known.n_users, 2)), 1e-12)
    return torch.from_numpy(info.astype(np.float32))


def rerank(
    scores: torch.Tensor | np.ndarray,
    k: int,
    *,
    diversity: float = 0.0,
    novelty: float = 0.0,
    similarity: ItemSimilarity | None = None,
    info: torch.Tensor | None = None,
    pool: int = DEFAULT_POOL,
    users: torch.Tensor | np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Top-k item codes (U, k) re-ranked from full score rows (U, n_items).

    Excluded items must already be -inf. The `pool` best items per user are the candidates,
    ranked by `core.eval.ranking.top_k` with `users` (the rows' user codes; default
    0..U-1) and `seed` for its tie rule; rows with fewer than k candidates are padded
    with -1.
    """
    scores_t = torch.as_tensor(scores).float()
    rows = torch.arange(len(scores_t)) if users is None else torch.as_tensor(users).long()
    items, values = top_k(scores_t, min(int(pool), scores_t.shape[1]), users=rows, seed=seed)
    return rerank_candidates(
        items,
        values,
        k,
        diversity=diversity,
        novelty=novelty,
        similarity=similarity,
        info=info,
    )


def rerank_candidates(
    items: torch.Tensor,
    scores: torch.Tensor,
    k: int,
    *,
    diversity: float = 0.0,
    novelty: float = 0.0,
    similarity: ItemSimilarity | None = None,
    info: torch.Tensor | None = None,
) -> np.ndarray:
    """Greedy MMR over candidate pools: items (U, C) codes, scores (U, C) -> (U, k) codes."""
    lam, nu = _weight("diversity", diversity), _weight("novelty", novelty)
    if lam > 0 and similarity is None:
        raise ParameterError("A diversity weight above 0 needs an item similarity; pass one.")
    if nu > 0 and info is None:
        raise ParameterError("A novelty weight above 0 needs item self-information; pass one.")
    items = torch.as_tensor(items).long()
    scores = torch.as_tensor(scores, device=items.device).double()
    valid = torch.isfinite(scores)  # (U, C)
    lo = torch.where(valid, scores, torch.inf).min(1, keepdim=True).values
    hi = torch.where(valid, scores, -torch.inf).max(1, keepdim=True).values
    span = (hi - lo).clamp(min=1e-12)
    rel = torch.where(valid, (scores - lo) / span, 0.0)  # (U, C) in [0, 1]
    base = (1 - nu) * rel
    if nu > 0:
        base = base + nu * info.to(items.device).double()[items.clamp(min=0)]
    # -1 (no candidate) slots are never chosen; clamping only keeps the lookups in range
    sim = similarity.pairwise(items.clamp(min=0)).double() if lam > 0 else None  # (U, C, C)
    u_idx = torch.arange(items.shape[0], device=items.device)
    chosen = ~valid  # (U, C) True = not available
    max_sim = torch.zeros_like(base)  # (U, C) highest similarity to the chosen items
    k_eff = min(int(k), items.shape[1])
    out = torch.full((items.shape[0], int(k)), -1, dtype=torch.long, device=items.device)
    for step in range(k_eff):
        value = (1 - lam) * base - lam * max_sim
        value = value.masked_fill(chosen, -torch.inf)
        pick = value.argmax(1)  # (U,)
        ok = torch.isfinite(value[u_idx, pick])
        out[:, step] = torch.where(ok, items[u_idx, pick], -1)
        chosen[u_idx, pick] = True
        if sim is not None:
            max_sim = torch.maximum(max_sim, sim[u_idx, pick])
    return out.cpu().numpy()


def recommend_reranked(
    loaded,
    user_codes,
    k: int = 10,
    *,
    diversity: float = 0.0,
    novelty: float = 0.0,
    pool: int = DEFAULT_POOL,
) -> np.ndarray:
    """Re-ranked top-k item codes (U, k) for users of a `LoadedRun`, known items excluded.

    At zero weights this is `recommend` with the run's tie seed: the list the evaluator
    scored.
    """
    users = np.atleast_1d(np.asarray(user_codes, dtype=np.int64))
    known = loaded.split.known_for("test")
    rows = known.of_users(users).csr()  # the page asks for one user: not every user's rows
    pools, pool_scores = _pools(loaded.model, users, rows, pool, seed=loaded.split.seed)
    return rerank_candidates(
        pools,
        pool_scores,
        k,
        diversity=diversity,
        novelty=novelty,
        similarity=item_similarity(loaded.model, known) if diversity > 0 else None,
        info=self_information(known) if novelty > 0 else None,
    )


def tradeoff_curve(
    loaded,
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    kind: str = "diversity",
    k: int = 10,
    max_users: int | None = 1000,
    *,
    pool: int = DEFAULT_POOL,
    seed: int = 0,
) -> pd.DataFrame:
    """Accuracy against novelty/diversity as the re-ranking weight grows, on the test part.

    For each weight: ndcg@k, novelty@k, coverage@k and diversity@k of the re-ranked lists of
    (up to `max_users` random) test users, with the evaluator's exclusion rule (train+valid
    items excluded) and its metric functions. Columns: weight, ndcg@k, novelty@k,
    coverage@k, diversity@k (NaN when there is neither an embedding nor a category).
    `seed` picks the users; ties are broken with the run's seed, as the evaluator does.
    """
    if kind not in ("diversity", "novelty"):
        raise ParameterError(f"kind must be 'diversity' or 'novelty'; got {kind!r}.")
    model, parts = loaded.model, loaded.split
    known, truth = parts.known_for("test"), parts.test
    truth_csr = truth.csr() - truth.csr().multiply(known.csr())
    truth_csr = sp.csr_matrix(truth_csr)
    truth_csr.eliminate_zeros()
    users = np.flatnonzero(np.diff(truth_csr.indptr) > 0)
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, int(max_users), replace=False))
    if len(users) == 0:
        raise ParameterError("No test user has items left to rank, so there is no curve.")
    pools, pool_scores = _pools(model, users, known.csr(), pool, seed=parts.seed)  # (U, C)
    similarity = item_similarity(model, known) if kind == "diversity" else None
    info = self_information(known) if kind == "novelty" else None
    n_users_known = max(1, known.n_users)
    share = torch.from_numpy(np.clip(popularity(known), 1, None) / n_users_known)
    _, emb, cats = _diversity_basis(model, truth, torch.device("cpu"))
    truth_rows = torch.from_numpy(truth_csr[users].toarray() > 0)  # (U, n_items)
    n_truth = truth_rows.sum(1)
    rows = []
    for w in weights:
        lists = torch.from_numpy(
            rerank_candidates(
                pools,
                pool_scores,
                k,
                diversity=w if kind == "diversity" else 0.0,
                novelty=w if kind == "novelty" else 0.0,
                similarity=similarity,
                info=info,
            )
        )  # (U, k)
        valid = lists >= 0
        safe = lists.clamp(min=0)
        hits = (truth_rows.gather(1, safe) & valid).double()
        row = {
            "weight": float(w),
            f"ndcg@{k}": float(M.ndcg(hits, n_truth, k=k).mean()),
            f"novelty@{k}": float(np.nanmean(M.novelty(safe, share, valid).numpy())),
            f"coverage@{k}": len(np.unique(lists[valid].numpy())) / known.n_items,
            f"diversity@{k}": float("nan"),
        }
        if emb is not None or cats is not None:
            div = M.intra_list_diversity(safe, embeddings=emb, categories=cats, valid=valid)
            row[f"diversity@{k}"] = float(np.nanmean(div.numpy()))
        rows.append(row)
    return pd.DataFrame(rows)


def _pools(model, users: np.ndarray, known: sp.csr_matrix, pool: int, *, seed: int):
    """Top-`pool` candidates per user with known items excluded: (U, C) codes and scores.

    Item -1 with score -inf where a user has fewer candidates (`rerank_candidates` skips
    them).
    """
    n_items = known.shape[1]
    items, scores = rank_users(
        model.score, users, min(int(pool), n_items), known=known, seed=seed, batch_size=512
    )
    return torch.from_numpy(items), torch.from_numpy(scores)


def _cooccurrence_vectors(mat: sp.csr_matrix) -> torch.Tensor:
    """(n_items, d) L2-normalised item vectors from a truncated SVD of the user x item matrix."""
    from scipy.sparse.linalg import svds

    n_items = mat.shape[1]
    dim = min(_SVD_DIM, min(mat.shape) - 1)
    if dim < 1 or mat.nnz == 0:
        return torch.eye(n_items)
    _, s, vt = svds(mat.astype(np.float64), k=dim, random_state=0)
    vecs = torch.from_numpy((vt.T * s).astype(np.float32))  # (n_items, d)
    return torch.nn.functional.normalize(vecs, dim=1)


def _weight(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ParameterError(f"The {name} weight must be between 0 and 1; got {value!r}.")
    return float(value)
