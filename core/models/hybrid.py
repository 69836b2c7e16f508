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
`_text_match`): a single user vector cannot say "like one of my recent items", which is
what finds a cold item (measurements: bench/RESULTS.md, "Hybrid"). `item_embeddings()` are
the item-tower outputs, so a Faiss index over them retrieves candidates by the two-tower
part alone.

Defaults: dim 64, the 20 most recent items, id dropout 0.5 (half the id rows dropped, so
the features learn to score alone), dropout 0.1, lr 2e-3, patience 5.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.data import schema as S
from core.data.dataset import Interactions
from core.errors import ParameterError
from core.models._features import (
    categorical_codes,
    categorical_columns,
    history_index,
    history_scenarios,
    pair_scenarios,
    reduce_text,
    text_matrix,
)
from core.models._neural import LOOP_HELP, NeuralRecommender
from core.models.base import check_non_negative, check_positive
from core.train import SOFTMAX_LOSSES, sampled_softmax, sampled_softmax_loss

_MATCH_CELLS = 1 << 25  # (user, history item, candidate) cells per block when scoring
_FEATURES = ("item_cats", "item_card", "user_cats", "user_card", "id_known", "text")
#: the value an explanation puts in place of a masked attribute or text
MISSING = "unknown"


class HybridTwoTower(NeuralRecommender):
    """Two towers scored by a dot product; cold items are scored from text and attributes."""

    name: ClassVar[str] = "hybrid"
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

    def _check_params(self) -> None:
        super()._check_params()
        for name in ("dim", "max_len", "negatives"):
            check_positive(name, getattr(self, name), integer=True)
        check_non_negative("dropout", self.dropout)
        if not isinstance(self.use_text, bool):
            raise ParameterError(
                f"Parameter 'use_text' must be true or false; got {self.use_text!r}."
            )
        if not 0 <= self.id_dropout < 1:
            raise ParameterError(
                f"Parameter 'id_dropout' must be in [0, 1); got {self.id_dropout!r}."
            )
        if self.loss not in SOFTMAX_LOSSES:
            raise ParameterError(
                f"Parameter 'loss' must be one of {', '.join(SOFTMAX_LOSSES)}; got {self.loss!r}."
            )

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
        return _TwoTowers(
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
        """How closely each candidate's text matches the user's most similar recent item.

        hist (B, L) item codes (pad = n_items), items (C,) or None for all -> (B, C): a learnt
        positive weight times max_j cos(text_j, text_item), 0 without history or text. A
        single user vector cannot express "like one of the items I had" (a max over the
        history), which is what finds the next episode of a series nobody has watched yet.
        `texts` (B, C, k) replaces the candidates' texts per row (explanations mask them).
        """
        if self.text_ is None:
            return torch.zeros((), device=self.device)
        if texts is None:
            texts = self.text_ if items is None else self.text_[items]  # (C, k)
        real = hist < self.n_items_  # (B, L)
        hist_text = self.text_[hist.clamp(max=self.n_items_ - 1)]  # (B, L, k)
        sims = hist_text @ texts.transpose(-1, -2)  # (B, L, C)
        sims = sims.masked_fill(~real[..., None], -1.0).amax(dim=1)  # (B, C)
        sims = torch.where(real.any(1, keepdim=True), sims, torch.zeros_like(sims))
        return F.softplus(self.net_.match_weight) * sims

    # -- explanations (ExplainsHistory, ExplainsContext in core/protocols.py) -----------
    def explain_context(self, user_code: int, item_code: int) -> list[tuple]:
        """The user's and the item's attributes and the item's text, as SHAP features.

        Masked, an attribute becomes "missing" (code 0, as for a row without it) and the
        text becomes a zero vector (no text term, no text match).
        """
        out = []
        if getattr(self, "_known", None) is None:
            return out  # no history set: nothing to read attributes from
        for kind, code, names, codes in self._attribute_columns(user_code, item_code):
            table = getattr(self._known.dataset, f"{kind}s")
            for j, name in enumerate(names):
                if int(codes[j]):  # a missing value has nothing to explain
                    out.append((f"{kind}:{name}", str(table[name].iloc[code]), MISSING, kind))
        if self.text_ is not None and self._known.dataset is not None:
            title = self._known.dataset.item_titles()[int(item_code)]
            out.append(("item:text", f'"{title}"', MISSING, "item"))
        return out

    def score_histories(
        self,
        histories: list[np.ndarray],
        item_codes: Any,
        user_code: int,
        context: list[dict] | None = None,
    ) -> np.ndarray:
        """Scores (N, m) of `item_codes` if the user's history were each list (time order).

        Each masked history goes through the user tower as the model reads a history (its
        last `max_len` items, each with the scenario it happened in); `context` (one dict
        per history, from `explain_context`) masks attributes and the item's text. The full
        history with every context feature present gives exactly `score`.
        """
        self._check_fitted()
        items = self._items_or_all(item_codes)
        if items is None:
            items = torch.arange(self.n_items_, device=self.device)
        seqs, scen = self._masked_sequences(histories, int(user_code))  # (N, L) each
        n, m = len(histories), len(items)
        user_cats = self.user_cats_[int(user_code)].expand(n, -1).clone()  # (N, G)
        item_cats = self.item_cats_[items].expand(n, -1, -1).clone()  # (N, m, F)
        texts = None if self.text_ is None else self.text_[items].expand(n, -1, -1).clone()
        if context is not None:
            self._mask_context(context, int(user_code), int(items[0]), user_cats, item_cats, texts)
        table = self._item_table()
        out = []
        with torch.inference_mode():
            for lo in range(0, n, 256):
                part = slice(lo, lo + 256)
                u = self.net_.user_vector(table, seqs[part], scen[part], user_cats[part])
                b = len(u)
                trust = self.id_known_[items][:, None].repeat(b, 1)  # (b*m, 1)
                text = None if texts is None else texts[part].reshape(b * m, -1).float()
                vecs = self.net_.item_vector(
                    items.repeat(b), trust, item_cats[part].reshape(b * m, -1), text
                ).reshape(b, m, -1)  # (b, m, d)
                score = torch.einsum("bd,bmd->bm", u, vecs)
                if texts is not None:
                    score = score + self._text_match(seqs[part], texts=texts[part])
                out.append(score)
        return torch.cat(out).double().cpu().numpy()

    def _masked_sequences(self, histories: list[np.ndarray], user: int):
        """Item and scenario sequences (N, L) of each history's last `max_len` items."""
        length, pad = int(self.max_len), self.n_items_
        if self._pairs is None:
            frame = self._known.ordered
            self._pairs = pair_scenarios(
                frame[S.USER].to_numpy(),
                frame[S.ITEM].to_numpy(),
                self._known.ordered_scenarios,
                self.n_users_,
                self.n_items_,
            )
        tails = [np.asarray(h, dtype=np.int64)[-length:] for h in histories]
        tail_scen = history_scenarios(self._pairs, user, tails, self.n_scen_)
        seqs = np.full((len(histories), length), pad, dtype=np.int64)
        scen = np.full((len(histories), length), self.n_scen_, dtype=np.int64)
        for row, (tail, codes) in enumerate(zip(tails, tail_scen, strict=True)):
            if len(tail):
                seqs[row, length - len(tail) :] = tail
                scen[row, length - len(tail) :] = codes
        dev = self.device
        return torch.from_numpy(seqs).to(dev), torch.from_numpy(scen).to(dev)

    def _attribute_columns(self, user: int, item: int):
        """(kind, code, column names, attribute codes) for the user and the item."""
        ds = self._known.dataset
        if ds is None:
            return []
        return [
            ("user", user, categorical_columns(ds.users, self.n_users_), self.user_cats_[user]),
            ("item", item, categorical_columns(ds.items, self.n_items_), self.item_cats_[item]),
        ]

    def _mask_context(self, context, user, item, user_cats, item_cats, texts) -> None:
        """Zero, row by row, the attribute codes and texts that `context` marks as masked."""
        present = {name: value for name, value, *_ in self.explain_context(user, item)}
        for kind, _, names, _ in self._attribute_columns(user, item):
            target = user_cats if kind == "user" else item_cats
            for j, name in enumerate(names):
                key = f"{kind}:{name}"
                if key not in present:
                    continue
                off = torch.tensor([c.get(key) != present[key] for c in context])
                target[off.to(target.device), ..., j] = 0
        if texts is not None and "item:text" in present:
            off = torch.tensor([c.get("item:text") != present["item:text"] for c in context])
            texts[off.to(texts.device)] = 0.0

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


class _TwoTowers(nn.Module):
    """The two towers; vectors are mixed by small MLPs and compared by a dot product."""

    def __init__(
        self,
        n_items: int,
        dim: int,
        max_len: int,
        item_card: list[int],
        user_card: list[int],
        text_dim: int,
        n_scen: int,
        p: float,
    ) -> None:
        super().__init__()
        self.ids = nn.Embedding(n_items, dim)
        nn.init.normal_(self.ids.weight, std=dim**-0.5)
        self.item_fields = _Fields(item_card, dim)
        # a linear map keeps the language model's geometry: texts that read alike stay close,
        # so an unseen item lands near the items it resembles (an MLP here memorised items)
        self.text = nn.Linear(text_dim, dim) if text_dim else None
        self.match_weight = nn.Parameter(torch.tensor(5.0))  # softplus(5) ~ 5 logits per cos
        self.item_mix = _mlp((2 if item_card else 1) * dim, dim, p)
        self.positions = nn.Parameter(torch.randn(max_len, dim) * dim**-0.5)
        self.scenarios = nn.Embedding(n_scen + 1, dim, padding_idx=n_scen)
        self.query = nn.Parameter(torch.randn(dim) * dim**-0.5)
        self.user_fields = _Fields(user_card, dim)
        self.user_mix = _mlp((3 if user_card else 2) * dim, dim, p)

    def item_vector(
        self,
        codes: torch.Tensor,
        trust: torch.Tensor,
        cats: torch.Tensor,
        text: torch.Tensor | None,
    ) -> torch.Tensor:
        """Codes (N,), trust (N, 1) bool, cats (N, F), text (N, T) -> item vectors (N, d)."""
        parts = [self.ids(codes) * trust]  # untrusted ids contribute nothing
        if self.item_fields.size:
            parts.append(self.item_fields(cats))
        out = self.item_mix(torch.cat(parts, dim=-1))  # (N, d)
        if self.text is not None and text is not None:
            # added after the mix, not mixed with the id: the text term stays a linear
            # function of the text, which carries over to items never seen in training
            out = out + self.text(text)
        return out

    def user_vector(
        self,
        table: torch.Tensor,
        hist: torch.Tensor,
        scen: torch.Tensor,
        cats: torch.Tensor,
    ) -> torch.Tensor:
        """Item table rows (R, d), history rows (B, L) (zero row = pad), scenarios (B, L),
        user attribute codes (B, G) -> user vectors (B, d)."""
        real = hist != table.shape[0] - 1  # (B, L)
        items = table[hist]  # (B, L, d)
        h = items + (self.positions + self.scenarios(scen)) * real[..., None]  # (B, L, d)
        att = (h @ self.query) / h.shape[-1] ** 0.5  # (B, L)
        att = att.masked_fill(~real, float("-inf"))
        weights = torch.softmax(att, dim=1).nan_to_num(0.0)  # empty history -> zeros
        pooled = (weights[..., None] * h).sum(1)  # (B, d)
        parts = [pooled, items[:, -1]]  # newest item last (left padding)
        if self.user_fields.size:
            parts.append(self.user_fields(cats))
        return self.user_mix(torch.cat(parts, dim=-1))


class _Fields(nn.Module):
    """Sum of one embedding per categorical column; code 0 of each column means missing."""

    def __init__(self, cards: list[int], dim: int) -> None:
        super().__init__()
        self.size = len(cards)
        offsets = np.r_[0, np.cumsum(cards)[:-1]] if cards else np.zeros(0)
        self.register_buffer("offsets", torch.as_tensor(offsets, dtype=torch.long))
        self.table = nn.Embedding(max(1, int(sum(cards))), dim)
        nn.init.normal_(self.table.weight, std=dim**-0.5)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.table(codes + self.offsets).sum(-2)  # (N, F) -> (N, d)


def _mlp(inp: int, dim: int, p: float) -> nn.Module:
    return nn.Sequential(nn.Linear(inp, dim), nn.GELU(), nn.Dropout(p), nn.Linear(dim, dim))
