"""Fold-in helpers: the factorisation models' `score_histories` re-estimate a user from a history.

`history_matrix` turns item lists into a 0/1 matrix over their union; `ridge_fold_in`
fits a user vector to a history's item vectors; `current_history` is the model's own
history of one user (the history whose fold-in reproduces the trained score).
"""

from __future__ import annotations

import numpy as np
import torch


def history_matrix(
    histories: list[np.ndarray], device: torch.device, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """(union (U,) item codes, x (N, U) 0/1): which of the union's items each history holds."""
    lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
    flat = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories] or [np.zeros(0)])
    union, inverse = np.unique(flat.astype(np.int64), return_inverse=True)
    x = torch.zeros((len(histories), max(1, len(union))), dtype=dtype, device=device)
    rows = np.repeat(np.arange(len(histories)), lengths)
    x[torch.from_numpy(rows).to(device), torch.from_numpy(inverse).to(device)] = 1.0
    return torch.from_numpy(union).to(device), x[:, : len(union)]


def ridge_fold_in(
    item_vectors: torch.Tensor, histories: list[np.ndarray], reg: float | None = None
) -> torch.Tensor:
    """User vectors re-estimated from each history by ridge least squares, (N, d) float64.

    u_S = argmin_u Σ_{i ∈ S} (1 − u·v_i)² + λ‖u‖² = (V_Sᵀ V_S + λI)⁻¹ V_Sᵀ 1: the vector
    that scores the history's items as positives. λ defaults to the mean ‖v_i‖² over all
    items (one average item's worth of shrinkage), so it follows the embeddings' scale.
    An empty history gives u = 0.
    """
    v_all = item_vectors.detach().double()  # (I, d)
    lam = float(v_all.pow(2).sum(1).mean()) if reg is None else float(reg)
    lam = max(lam, 1e-8)
    union, x = history_matrix(histories, v_all.device)  # (U,), (N, U)
    d = v_all.shape[1]
    if len(union) == 0:
        return torch.zeros((len(histories), d), dtype=torch.float64, device=v_all.device)
    v = v_all[union]  # (U, d)
    # items present in exactly the same histories (e.g. the grouped older items) act as one
    pattern, group = torch.unique(x.T, dim=0, return_inverse=True)  # (G, N), (U,)
    x = pattern.T.contiguous()  # (N, G)
    outer = torch.zeros((len(pattern), d * d), dtype=torch.float64, device=v.device)
    outer.index_add_(0, group, (v[:, :, None] * v[:, None, :]).reshape(len(union), d * d))
    v = torch.zeros((len(pattern), d), dtype=torch.float64, device=v.device).index_add_(
        0, group, v
    )  # (G, d): summed vectors of each group
    eye = torch.eye(d, dtype=torch.float64, device=v.device)
    out = []
    for lo in range(0, len(histories), 512):
        xb = x[lo : lo + 512]  # (n, U)
        gram = (xb @ outer).view(-1, d, d) + lam * eye  # (n, d, d)
        out.append(torch.linalg.solve(gram, xb @ v))  # (n, d)
    return torch.cat(out)


def current_history(model, user_code: int) -> np.ndarray:
    """The distinct items of the model's current history for one user (codes, sorted)."""
    return np.asarray(model.history_[int(user_code)].indices, dtype=np.int64)
