"""Hybrid two-tower model: items from id, attributes and text; users from their history.

After Covington, Adams & Sargin, "Deep Neural Networks for YouTube Recommendations",
RecSys 2016 (a user tower over watched items and user features, softmax over items), with
the item tower of Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
Recommendations", RecSys 2019, and id-embedding dropout for cold items as in Volkovs, Yu &
Poutanen, "DropoutNet: Addressing Cold Start in Recommender Systems", NeurIPS 2017.

Item tower: an id embedding and embeddings of the item table's categorical columns
(category, scenario, price band, ...) mixed by an MLP, plus a linear map of the frozen
all-MiniLM-L6-v2 text embedding of title + text (core/data/text.py, reduced to its top
principal components). Id embeddings are only trusted for items with training
interactions: they are zeroed for the others, and whole id rows are dropped during
training (`id_dropout`) so the features alone must score an item. An item nobody has
interacted with is therefore scored from its text and attributes.

User tower: the item-tower vectors of the user's `max_len` most recent items (plus a
position and a scenario embedding each), pooled by attention, the newest item's vector
and the user table's categorical columns, mixed by an MLP. Training predicts each training
interaction from the items before it, with a softmax over the whole catalogue, or over the
target plus `negatives` items shared by the batch when the catalogue is large. Only items
with training interactions serve as negatives (an unseen item is new, not disliked).

Score = user vector . item vector + a text-match term: a learnt weight times the highest
cosine between the candidate's text and the texts of the user's recent items (see
`TwoTowers.text_match`): a single user vector cannot say "like one of my recent items",
which is what finds a cold item (measurements: bench/RESULTS.md, "Hybrid").
`item_embeddings()` are the item-tower outputs, so a Faiss index over them retrieves
candidates by the two-tower part alone.

Files: the network is core/models/_two_towers.py; how the model explains a score (masked
histories and attributes scored through the towers) is core/models/_hybrid_explain.py.

Defaults: dim 64, the 20 most recent items, id dropout 0.5 (half the id rows dropped, so
the features learn to score alone), dropout 0.1, lr 2e-3, patience 5.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.data.dataset import Interactions
from core.models._features import (
    categorical_codes,
    history_index,
    reduce_text,
    text_matrix,
)
from core.models._hybrid_explain import TwoTowerExplanations
from core.models._neural import LOOP_HELP, NeuralRecommender
from core.models._two_towers import TwoTowers
from core.models.base import AT_LEAST_ONE, DIMENSION, FRACTION, Range
from core.train import SOFTMAX_LOSSES, sampled_softmax, sampled_softmax_loss

_MATCH_CELLS = 1 << 25  # (user, history item, candidate) cells per block when scoring
_FEATURES = ("item_cats", "item_card", "user_cats", "user_card", "id_known", "text")


class HybridTwoTower(TwoTowerExplanations, NeuralRecommender):
    """Two towers scored by a dot product; cold items are scored from text and attributes."""

    name: ClassVar[str] = "hybrid"
    PARAM_RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(("max_len", "negatives"), AT_LEAST_ONE),
        "dim": DIMENSION,
        "dropout": FRACTION,
        "id_dropout": FRACTION,
        "loss": Range(choices=SOFTMAX_LOSSES),
    }
    PARAM_HELP: ClassVar[dict[str, str]] = {
        "dim": "Size of the user and item vectors.",
        "max_len": "How many of the user's most recent items the user tower reads.",
        "use_text": "Read item text with a language model (off: ids and attributes only).",
        "id_dropout": "Share of item id vectors dropped per step, so features learn alone.",
        "dropout": "Dropout inside the towers.",
        "loss": "auto, full (softmax over every item) or sampled (softmax over negatives).",
        "negatives": "Items sampled per batch for the sampled softmax.",
        **LOOP_HELP,
    }
    SUITE_PARAMS: ClassVar[dict] = {"epochs": 30, "batch_size": 128, "lr": 1e-2}

    def __init__(
        self,
        dim: int = 64,
        max_len: int = 20,
        use_text: bool = True,
        id_dropout: float = 0.5,
        dropout: float = 0.1,
        loss: str = "auto",
        negatives: int = 1024,
        epochs: int = 50,
        batch_size: int = 512,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        patience: int = 5,
        eval_every: int = 1,
        device_choice: str | None = None,
        seed: int = 42,
    ) -> None:
        self.dim = dim
        self.max_len = max_len
        self.use_text = use_text
        self.id_dropout = id_dropout
        self.dropout = dropout
        self.loss = loss
        self.negatives = negatives
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.eval_every = eval_every
        self.device_choice = device_choice
        self.seed = seed

    @property
    def sampled_(self) -> bool:
        return sampled_softmax(self.loss, self.n_items_)

    @property
    def uses_text_(self) -> bool:
        """True when this fitted model reads item text (asked for and the data has text)."""
        return getattr(self, "text_", None) is not None

    # -- features and training data ----------------------------------------------------
    def _start_fit(self, train: Interactions) -> None:
        self.n_scen_ = train.n_scenarios  # before the history is read; 0 = no scenarios
        super()._start_fit(train)

    def _prepare(self, train: Interactions) -> None:
        """Item/user attribute codes, text vectors and which item ids are trusted."""
        dataset, dev = train.dataset, self.device
        items = dataset.items if dataset is not None else None
        users = dataset.users if dataset is not None else None
        self.item_cats_, self.item_card_ = categorical_codes(items, self.n_items_, "item_id", dev)
        self.user_cats_, self.user_card_ = categorical_codes(users, self.n_users_, "user_id", dev)
        text = text_matrix(dataset, str(dev)) if self.use_text and dataset is not None else None
        # reduced once (PCA, unit rows) and kept in the state: load needs no language model
        self.text_ = None if text is None else torch.as_tensor(reduce_text(text)).to(dev)
        counts = np.bincount(train.items, minlength=self.n_items_)
        self.id_known_ = torch.as_tensor(counts > 0, device=dev)  # (I,) ids worth trusting

    def _train_tensors(self, train: Interactions) -> tuple[torch.Tensor, ...]:
        rows, self.hist_users_, self.hist_items_, self.hist_scen_, self.hist_start_ = history_index(
            train, self.device
        )
        self.known_codes_ = torch.nonzero(self.id_known_).reshape(-1)  # (K,)
        return (rows,)  # (n,) positions in the time-sorted training interactions

    def _build_net(self) -> nn.Module:
        text_dim = 0 if self.text_ is None else int(self.text_.shape[1])
        return TwoTowers(
            self.n_items_,
            int(self.dim),
            int(self.max_len),
            self.item_card_.tolist(),
            self.user_card_.tolist(),
            text_dim,
            self.n_scen_,
            float(self.dropout),
        )

    def _loss(self, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
        (rows,) = batch  # (B,)
        length = int(self.max_len)
        offsets = torch.arange(-length, 0, device=self.device)  # (L,) oldest .. newest
        idx = rows[:, None] + offsets  # (B, L) earlier rows of the same user
        real = idx >= self.hist_start_[rows][:, None]
        idx = idx.clamp(min=0)
        hist = torch.where(real, self.hist_items_[idx], self.n_items_)  # (B, L), pad = I
        scen = torch.where(real, self.hist_scen_[idx], self.n_scen_)  # (B, L)
        target = self.hist_items_[rows]  # (B,)
        users = self.hist_users_[rows]  # (B,)
        # negatives are items with training interactions only: an item nobody has seen yet
        # is new, not disliked, and pushing its (text) vector down would teach exactly that
        if self.sampled_:
            known = self.known_codes_
            pick = torch.randint(
                0, len(known), (int(self.negatives),), device=self.device, generator=gen
            )
            neg = known[pick]  # (n,)
            cand = torch.cat([target, neg])  # (B + n,)
        else:
            cand = None  # every item
        codes = torch.cat([hist.reshape(-1), cand]) if cand is not None else None
        table, lookup = self._train_items(codes, gen)  # (U, d), codes -> rows of table
        u = self.net_.user_vector(table, lookup(hist), scen, self.user_cats_[users])  # (B, d)
        if cand is None:
            logits = u @ table[: self.n_items_].T + self._text_match(hist)  # (B, I)
            logits = logits.masked_fill(~self.id_known_[None, :], float("-inf"))
            return F.cross_entropy(logits.float(), target)
        vecs = table[lookup(cand)]  # (B + n, d)
        pos = (u * vecs[: len(target)]).sum(-1, keepdim=True)  # (B, 1)
        neg_logit = u @ vecs[len(target) :].T  # (B, n)
        if self.text_ is not None:
            match = self._text_match(hist, cand)  # (B, B + n): only the diagonal and negatives
            pos = pos + torch.diagonal(match[:, : len(target)])[:, None]
            neg_logit = neg_logit + match[:, len(target) :]
        return sampled_softmax_loss(pos, neg_logit, target, neg)

    def _train_items(self, codes: torch.Tensor | None, gen: torch.Generator):
        """Item vectors for `codes` (None: all items) with id dropout; plus a code lookup.

        Returns a table (rows, d) whose last row is the zero padding vector and a function
        mapping item codes (pad = n_items) to rows of that table.
        """
        if codes is None:
            keep = torch.arange(self.n_items_, device=self.device)
        else:
            keep = torch.unique(codes[codes < self.n_items_])  # (U,) sorted
        drop = torch.rand(len(keep), 1, device=self.device, generator=gen) < self.id_dropout
        if not self._has_features():
            drop = None  # an item known by its id alone keeps it
        table = self._tower(keep, drop)  # (U, d)
        table = torch.cat([table, table.new_zeros(1, table.shape[1])])  # pad row
        if codes is None:
            return table, lambda c: c  # row == code, pad n_items -> zero row
        pad = len(keep)

        def lookup(c: torch.Tensor) -> torch.Tensor:
            pos = torch.searchsorted(keep, c.clamp(max=self.n_items_ - 1))
            return torch.where(c < self.n_items_, pos, pad)

        return table, lookup

    def _has_features(self) -> bool:
        return self.text_ is not None or len(self.item_card_) > 0

    def _tower(self, codes: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        """Item-tower outputs (len(codes), d); untrusted (or dropped) ids are zeroed."""
        trust = self.id_known_[codes][:, None]  # (N, 1)
        if drop is not None:
            trust = trust & ~drop
        text = None if self.text_ is None else self.text_[codes].float()
        return self.net_.item_vector(codes, trust, self.item_cats_[codes], text)

    # -- history and scoring -----------------------------------------------------------
    def _history_changed(self, known: Interactions) -> None:
        length = int(self.max_len)
        items = known.sequences(length, pad=self.n_items_)
        scen = known.sequences(length, pad=self.n_scen_, values=known.ordered_scenarios)
        self.seqs_ = torch.as_tensor(items, device=self.device)  # (n_users, L), pad = I
        self.seq_scen_ = torch.as_tensor(scen, device=self.device)  # (n_users, L)
        self._known, self._pairs = known, None  # read lazily by explanations

    def _weights_changed(self) -> None:
        self._table = None

    def _item_table(self) -> torch.Tensor:
        """Every item's tower output plus a zero pad row, (I + 1, d); cached until training."""
        if getattr(self, "_table", None) is None:
            with torch.inference_mode():
                codes = torch.arange(self.n_items_, device=self.device)
                table = self._tower(codes)
                self._table = torch.cat([table, table.new_zeros(1, table.shape[1])])
        return self._table

    def user_vectors(self, user_codes: Any) -> torch.Tensor:
        """User-tower outputs (B, d) from each user's current history."""
        users = self._users_on_device(user_codes)
        with torch.inference_mode():
            table = self._item_table()
            return self.net_.user_vector(
                table, self.seqs_[users], self.seq_scen_[users], self.user_cats_[users]
            )

    def score(self, user_codes: Any, item_codes: Any = None) -> torch.Tensor:
        """Two-tower dot product plus the history-text match, (B, n_items) or (B, len(items))."""
        users = self._users_on_device(user_codes)
        items = self._items_or_all(item_codes)
        u = self.user_vectors(users)  # (B, d)
        table = self._item_table()[: self.n_items_]  # (I, d)
        with torch.inference_mode():
            out = u @ (table if items is None else table[items]).T  # (B, I)
            if self.text_ is not None:  # in user blocks: the match holds (b, L, I) at once
                per = max(1, _MATCH_CELLS // (int(self.max_len) * out.shape[1]))
                for lo in range(0, len(users), per):
                    hist = self.seqs_[users[lo : lo + per]]
                    out[lo : lo + per] += self._text_match(hist, items)
            return out

    def _text_match(
        self,
        hist: torch.Tensor,
        items: torch.Tensor | None = None,
        texts: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The text-match term (B, C) of `TwoTowers.text_match`; 0 without item text."""
        if self.text_ is None:
            return torch.zeros((), device=self.device)
        return self.net_.text_match(self.text_, hist, items, texts)

    def item_embeddings(self) -> np.ndarray:
        """Item-tower outputs (n_items, d): what Faiss indexes and the map projects."""
        self._check_fitted()
        return self._item_table()[: self.n_items_].detach().float().cpu().numpy()

    # -- state: features and histories travel with the weights (load needs no text model)
    def _state(self) -> dict[str, torch.Tensor]:
        state = {**super()._state(), "seqs": self.seqs_, "seq_scen": self.seq_scen_}
        state["n_scen"] = torch.tensor(self.n_scen_)
        for name in _FEATURES:
            value = getattr(self, f"{name}_")
            if value is not None:
                state[name] = value
        return state

    def _set_state(self, state: dict[str, torch.Tensor]) -> None:
        for name in _FEATURES:
            setattr(self, f"{name}_", state.get(name))
        self.n_scen_ = int(state["n_scen"])
        self.seqs_, self.seq_scen_ = state["seqs"], state["seq_scen"]
        super()._set_state(state)
