"""How the multi-scenario model explains a score: its ExplainsHistory and ExplainsContext
abilities.

A masked history re-reads the pooled history mean, the interest factors and the last item
in each scenario; the request scenario is a context feature whose baseline is "any
scenario" (the mean over scenarios). Kept apart from `core/models/multiscenario.py`
(training, history, scoring, state) so each file reads in one sitting.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from core.data import schema as S
from core.models._features import history_scenarios, pair_scenarios
from core.models._foldin import history_matrix

#: the value an explanation puts in place of a masked request scenario
ANY_SCENARIO = "any scenario"


class ScenarioExplanations:
    """The explanation methods of `MultiScenario`, a mixin: they read the model's network
    and current history (`_known`); `_history_changed` resets their pair lookup."""

    def explain_context(self, user_code: int, item_code: int) -> list[tuple]:
        """The request's scenario (the user's most recent one), when there are several.

        Masked, the scenario is unknown: the score is the mean of the item's scores over
        every scenario (with the history's last item in each), a uniform expectation.
        """
        self._context()
        if self.n_scenarios_ < 2:
            return []
        code = int(self.ctx_recent_[int(user_code)])
        return [("scenario", self._scenario_name(code), ANY_SCENARIO, "scenario")]

    def score_histories(
        self,
        histories: list[np.ndarray],
        item_codes: Any,
        user_code: int,
        context: list[dict] | None = None,
    ) -> np.ndarray:
        """Scores (N, m) of `item_codes` if the user's history were each list (time order).

        The pooled history mean, the interest factors and the last item in each scenario
        are re-read from the masked history; the request scenario stays the user's most
        recent one unless `context` masks it (then: the mean over scenarios). The full
        history with the scenario present gives exactly `score`.
        """
        self._check_fitted()
        self._context()
        net, pad, n_sc = self.net_, self.n_items_, self.n_scenarios_
        items = self._items_or_all(item_codes)
        union, x = history_matrix(histories, self.device, torch.float32)  # (U,), (N, U)
        denom = x.sum(1, keepdim=True).clamp(min=1)  # distinct items, as the mean csr
        prev = np.full((len(histories), n_sc), pad, dtype=np.int64)  # last item per scenario
        scens = history_scenarios(self._pair_lookup(), int(user_code), histories, 0)
        for row, (history, codes) in enumerate(zip(histories, scens, strict=True)):
            prev[row, codes] = history  # in time order: the last write wins
        prev_t = torch.from_numpy(prev).to(self.device)
        present = int(self.ctx_recent_[int(user_code)])
        name = self._scenario_name(present)
        masked = torch.tensor([c.get("scenario") != name for c in (context or [])], dtype=bool)
        wanted = range(n_sc) if bool(masked.any()) else [present]
        with torch.inference_mode():
            bag = x @ net.bag.weight[union] / denom  # (N, d)
            interest = x @ net.interest[union] / denom  # (N, k)
            per = {}
            for s in wanted:
                scen = torch.full((len(histories),), s, device=self.device)
                query = net.query(bag, interest, prev_t[:, s], scen)
                per[s] = net.logits(query, interest, scen, items)  # (N, m)
            out = per[present]
            if bool(masked.any()):
                mean = torch.stack([per[s] for s in range(n_sc)]).mean(0)
                out = torch.where(masked.to(self.device)[:, None], mean, out)
        return out.double().cpu().numpy()

    def _pair_lookup(self):
        """(user, item) -> scenario of the current history (`_features.pair_scenarios`)."""
        if self._pairs is None:
            frame = self._known.ordered
            scen = np.minimum(self._known.ordered_scenarios, self.n_scenarios_ - 1)
            self._pairs = pair_scenarios(
                frame[S.USER].to_numpy(dtype=np.int64),
                frame[S.ITEM].to_numpy(dtype=np.int64),
                scen,
                self._known.n_users,
                self._known.n_items,
            )
        return self._pairs

    def _scenario_name(self, code: int) -> str:
        ds = getattr(self, "_known", None) and self._known.dataset
        names = ds.scenarios if ds is not None else None
        return str(names[code]) if names and code < len(names) else f"scenario {code}"
