"""The readable features of an explanation: history items, the older group, model context.

A SHAP feature is something that can be present or masked:

- one feature per distinct item among the user's `max_history` most recent distinct items
  (masking it removes every interaction with that item from the history the model sees);
- one grouped feature for all older items, when the user has more than that (models explained
  in closed form instead get one feature per history item, and only the items that together
  carry under `SMALL_SHARE` of the score's |contributions| are grouped: `group_small`);
- context features a model declares with `explain_context(user_code, item_code)` (user and
  item attributes, scenario), each replaced by its baseline value when masked.

`HistoryFeatures.histories(masks)` turns SHAP's (N, M) 0/1 coalition rows into the item
lists (time order, repeats kept) that `score_histories` receives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.data import schema as S
from core.data.dataset import Dataset, Interactions

#: SHAP feature kinds, in the order tables list them
KINDS = ("history", "user", "item", "scenario")
#: verbs by keyword in a scenario name ("video_feed" -> watched); first match wins
_VERBS = (
    (re.compile(r"video|movie|film|watch|tv|stream|show", re.I), "watched"),
    (re.compile(r"music|song|podcast|audio|listen", re.I), "listened to"),
    (re.compile(r"article|news|book|read|blog|post", re.I), "read"),
    (re.compile(r"shop|store|buy|mall|market|commerce|retail|cart|order", re.I), "bought"),
)
_NEUTRAL_VERB = "interacted with"
#: timestamps above this look like Unix seconds (after 1973), so ages are shown as durations
_UNIX_SECONDS_MIN = 100_000_000
#: exact explanations group history items only while they carry less than this share of
#: the total |contribution| together (`group_small`): what is grouped cannot matter much
SMALL_SHARE = 0.05


@dataclass(frozen=True)
class ContextFeature:
    """A model-declared feature: its value when present and the baseline that masks it."""

    name: str
    kind: str
    present: object
    baseline: object


@dataclass
class HistoryFeatures:
    """The explainable features of one (user, item) pair.

    events: (E,) item codes of the user's known history in time order (repeats kept);
    event_feature: (E,) index of the feature each event belongs to;
    table: one row per feature (feature, kind, label, item_code, position), features in
    column order of SHAP's mask rows; context: model-declared features (after history).
    """

    user_code: int
    events: np.ndarray
    event_feature: np.ndarray
    table: pd.DataFrame
    context: list[ContextFeature]

    @property
    def n_history(self) -> int:
        """Number of history features (per-item ones plus the grouped older feature)."""
        return len(self.table) - len(self.context)

    def histories(self, masks: np.ndarray) -> list[np.ndarray]:
        """Item lists (time order) for coalition rows `masks` (N, M): 1 = present."""
        keep = np.asarray(masks)[:, self.event_feature] > 0.5  # (N, E)
        return [self.events[row] for row in keep]

    def context_rows(self, masks: np.ndarray) -> list[dict[str, object]]:
        """Context values per coalition row: present value where 1, baseline where 0."""
        cols = np.asarray(masks)[:, self.n_history :] > 0.5  # (N, C)
        return [
            {
                f.name: (f.present if on else f.baseline)
                for f, on in zip(self.context, row, strict=True)
            }
            for row in cols
        ]


def group_small(
    table: pd.DataFrame, values: np.ndarray, keep: int, share: float = SMALL_SHARE
) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-item history features of an exact (closed-form) explanation, small ones grouped.

    The `keep` largest |values| stay individual, then more in |value| order until the
    history items left over carry less than `share` of the history's Σ|value|; those form
    one "N other items" feature (value = their signed sum, so base + Σ = score still holds).
    Context rows are kept as they are. Nothing is grouped when the rest is not small.
    """
    history = (table["kind"] == "history").to_numpy()
    idx = np.flatnonzero(history)
    order = idx[np.argsort(-np.abs(values[idx]), kind="stable")]
    mags = np.abs(values[order])
    total = float(mags.sum())
    # rest[j] = Σ|value| of the history items ranked after the first j
    rest = np.concatenate([np.cumsum(mags[::-1])[::-1], [0.0]])
    small = np.flatnonzero(rest < share * total if total > 0 else rest <= 0)
    n_keep = max(min(int(keep), len(order)), int(small[0]) if len(small) else len(order))
    grouped = order[n_keep:]
    if len(grouped) == 0:
        return table, values
    kept = np.setdiff1d(np.arange(len(table)), grouped)  # features in their original order
    out = table.iloc[kept].reset_index(drop=True)
    n = len(grouped)
    part = float(np.abs(values[grouped]).sum()) / total if total > 0 else 0.0
    row = {
        "feature": "history:other",
        "kind": "history",
        "label": f"{n} other item{'s' if n != 1 else ''} in the history "
        f"(together {part:.1%} of the total |contribution|)",
        "item_code": None,
        "position": None,
    }
    n_hist = int(history[kept].sum())
    top, bottom = out.iloc[:n_hist], out.iloc[n_hist:]
    out = pd.concat([top, pd.DataFrame([row]), bottom], ignore_index=True)
    for column in ("item_code", "position"):  # ints or None, as build_features gives them
        out[column] = pd.Series([None if pd.isna(v) else int(v) for v in out[column]], dtype=object)
    new_values = np.concatenate(
        [values[kept][:n_hist], [float(values[grouped].sum())], values[kept][n_hist:]]
    )
    return out, new_values


def build_features(
    dataset: Dataset,
    known: Interactions,
    user_code: int,
    max_history: int,
    context: list[tuple] | None = None,
    history: np.ndarray | None = None,
) -> HistoryFeatures:
    """Features for `user_code`: recent distinct history items, older group, model context.

    `history` (item codes, oldest first) replaces the known history (an edited one): ages
    are then counted in items, and items the user never had are labelled 'added'.
    """
    ordered = known.ordered  # the user's rows in time order, as the models see them
    mine = ordered[S.USER].to_numpy() == int(user_code)
    rows = ordered[mine]
    events = rows[S.ITEM].to_numpy(dtype=np.int64)
    times = rows[S.TIMESTAMP].to_numpy(dtype=np.int64)
    scen = known.ordered_scenarios[mine] if dataset.has_scenarios else None
    had = None
    if history is not None:
        had = set(events.tolist())
        scen = _edited_scenarios(dataset, events, scen, np.asarray(history, dtype=np.int64))
        events = np.asarray(history, dtype=np.int64)
        times = np.zeros(len(events), dtype=np.int64)
    # distinct items, most recent last occurrence first
    last_pos = pd.Series(np.arange(len(events))).groupby(events).max()
    order = last_pos.sort_values(ascending=False)
    recent = order.index.to_numpy(dtype=np.int64)[: int(max_history)]
    feature_of_item = {int(item): pos for pos, item in enumerate(recent)}
    n_recent = len(recent)
    has_older = len(order) > n_recent
    event_feature = np.array([feature_of_item.get(int(i), n_recent) for i in events], np.int64)
    titles = dataset.item_titles()
    ids = dataset.item_ids
    latest = int(times[-1]) if len(times) else 0
    clock = _clock(latest) if dataset.has_timestamps and had is None else None
    records = []
    for pos, item in enumerate(recent):
        at = int(last_pos[item])
        verb = _verb(dataset, None if scen is None else int(scen[at]))
        if had is not None and int(item) not in had:
            verb = f"added: {verb}"
        when = _age(latest - int(times[at]), len(events) - 1 - at, clock)
        records.append(
            {
                "feature": f"history:{ids[item]}",
                "kind": "history",
                "label": f'{verb} "{titles[item]}" ({when})',
                "item_code": int(item),
                "position": pos,
            }
        )
    if has_older:
        n_old = len(order) - n_recent
        records.append(
            {
                "feature": "history:older",
                "kind": "history",
                "label": f"{n_old} older item{'s' if n_old != 1 else ''} in the history",
                "item_code": None,
                "position": n_recent,
            }
        )
    extra = [_context_feature(entry) for entry in (context or [])]
    for feat in extra:
        records.append(
            {
                "feature": feat.name,
                "kind": feat.kind,
                "label": _context_label(feat),
                "item_code": None,
                "position": None,
            }
        )
    table = pd.DataFrame(records, columns=["feature", "kind", "label", "item_code", "position"])
    for column in ("item_code", "position"):  # ints or None, not floats with NaN
        table[column] = pd.Series([r[column] for r in records], dtype=object)
    return HistoryFeatures(int(user_code), events, event_feature, table, extra)


# -- labels ----------------------------------------------------------------------------------


def verb_for(scenario: str | None) -> str:
    """'watched' / 'read' / 'bought' / 'listened to' by scenario name; else neutral."""
    if scenario:
        for pattern, verb in _VERBS:
            if pattern.search(scenario):
                return verb
    return _NEUTRAL_VERB


def _verb(dataset: Dataset, scenario_code: int | None) -> str:
    if scenario_code is None or not dataset.scenarios or scenario_code < 0:
        return _NEUTRAL_VERB
    return verb_for(dataset.scenarios[scenario_code])


def _edited_scenarios(
    dataset: Dataset, events: np.ndarray, scen: np.ndarray | None, edited: np.ndarray
) -> np.ndarray | None:
    """Scenario code per event of an edited history: the user's own for items they had, the
    item's most frequent one in the data for added items (-1 when it has none)."""
    if scen is None:
        return None
    own = dict(zip(events.tolist(), scen.tolist(), strict=True))  # the last occurrence wins
    missing = [int(i) for i in edited if int(i) not in own]
    if missing:
        inter = dataset.interactions
        rows = inter[inter[S.ITEM].isin(missing)]
        modes = rows.groupby(S.ITEM)[S.SCENARIO_CODE].agg(lambda c: c.value_counts().index[0])
        own.update({int(i): int(c) for i, c in modes.items()})
    return np.array([own.get(int(i), -1) for i in edited], dtype=np.int64)


def _clock(latest: int) -> int | None:
    """Timestamp units per second: 1 for Unix seconds, 1000 for milliseconds, else None."""
    if latest >= 1000 * _UNIX_SECONDS_MIN * 10:
        return 1000
    return 1 if latest >= _UNIX_SECONDS_MIN else None


def _age(delta: int, steps_back: int, clock: int | None) -> str:
    """'latest', '3 days before', or '4 items before' when timestamps are not clock times."""
    if steps_back == 0:
        return "latest"
    if clock is None or delta < 0:
        return f"{steps_back} item{'s' if steps_back != 1 else ''} before"
    seconds = delta // clock
    for size, unit in ((86400 * 30, "month"), (86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} before"
    return "moments before"


def _context_label(feat: ContextFeature) -> str:
    """'scenario: shop', 'user age_band: 25-34', 'item category: Cooking'."""
    column = feat.name.split(":", 1)[-1]
    if feat.kind == "scenario":
        return f"scenario: {feat.present}"
    return f"{feat.kind} {column}: {feat.present}"


def _context_feature(entry: tuple) -> ContextFeature:
    """(name, present, baseline[, kind]) -> ContextFeature; kind from a 'user:'-style prefix."""
    name, present, baseline = entry[0], entry[1], entry[2]
    kind = entry[3] if len(entry) > 3 else str(name).split(":", 1)[0]
    if kind not in KINDS[1:]:
        kind = "user"
    return ContextFeature(str(name), kind, present, baseline)
