"""How the hybrid model explains a score: its ExplainsHistory and ExplainsContext abilities.

A masked history goes through the user tower as the model reads a history (its last
`max_len` items, each with the scenario it happened in); a masked attribute becomes
"missing" and masked item text a zero vector. Kept apart from `core/models/hybrid.py`
(features, training, scoring, state) so each file reads in one sitting.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from core.data import schema as S
from core.models._features import categorical_columns, history_scenarios, pair_scenarios

#: the value an explanation puts in place of a masked attribute or text
MISSING = "unknown"


class TwoTowerExplanations:
    """The explanation methods of `HybridTwoTower`, a mixin: they read the model's features,
    current history (`_known`) and towers; `_history_changed` resets their pair lookup."""

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
