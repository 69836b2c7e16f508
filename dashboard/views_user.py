"""The User explorer's tables and sentences: segments, history, top lists, explanations.

Pure functions over a dataset, its split and a loaded run (no Streamlit), so what the page
shows is tested here; the page only lays it out.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from core.data import schema as S
from core.data.dataset import Dataset
from core.data.split import Split
from core.errors import ParameterError
from core.eval.beyond import ACTIVITY_BINS, ACTIVITY_LABELS, COLD_MAX
from core.explain.features import SMALL_SHARE
from core.models import DESCRIPTIONS
from core.protocols import capabilities
from dashboard.text import md
from dashboard.views import SEGMENT_KINDS

HIT = "✔"  # marks a held-out item in a top list


def user_segments(dataset: Dataset, split: Split) -> pd.DataFrame:
    """One row per user: user_code, user_id, n_known, n_test, activity, cold_user, scenario.

    n_known counts the known (train+valid) interactions and buckets them like the evaluator
    (core.eval.beyond); scenario is the user's most frequent scenario over all interactions
    (None without scenarios); n_test counts held-out items not already known.
    """
    known = split.known_for("test")
    n_known = np.bincount(known.users, minlength=dataset.n_users)
    tests = _held_out_frame(split)
    n_test = np.bincount(tests[S.USER].to_numpy(), minlength=dataset.n_users)
    table = pd.DataFrame(
        {
            S.USER: np.arange(dataset.n_users),
            S.USER_ID: dataset.user_ids.astype(str),
            "n_known": n_known,
            "n_test": n_test,
        }
    )
    table["activity"] = pd.cut(
        table["n_known"], bins=list(ACTIVITY_BINS), labels=list(ACTIVITY_LABELS)
    ).astype(str)
    table["cold_user"] = np.where(
        table["n_known"] <= COLD_MAX, f"cold (<={COLD_MAX} known)", f"warm (>{COLD_MAX})"
    )
    table["scenario"] = None
    inter = dataset.interactions
    if dataset.has_scenarios:
        counts = inter.groupby([S.USER, S.SCENARIO_CODE]).size().rename("n").reset_index()
        counts = counts.sort_values([S.USER, "n", S.SCENARIO_CODE], ascending=[True, False, True])
        top = counts.drop_duplicates(S.USER).set_index(S.USER)[S.SCENARIO_CODE]
        names = np.asarray(dataset.scenarios, dtype=object)
        codes = top.reindex(table[S.USER]).to_numpy()
        table["scenario"] = [names[int(c)] if not pd.isna(c) else None for c in codes]
    return table


def user_history(dataset: Dataset, split: Split, user_code: int) -> pd.DataFrame:
    """A user's interactions in time order with readable names and the split part they are in.

    Columns: time (datetime for Unix-second/millisecond timestamps, else the raw number),
    item_code, item_id, title, category, scenario, part ('train', 'valid', 'test').
    """
    _check_user(dataset, user_code)
    frames = []
    for part in ("train", "valid", "test"):
        frame = split.part(part).frame
        rows = frame[frame[S.USER].to_numpy() == int(user_code)].copy()
        rows["part"] = part
        frames.append(rows)
    rows = pd.concat(frames, ignore_index=True).sort_values(S.TIMESTAMP, kind="stable")
    items = rows[S.ITEM].to_numpy(dtype=np.int64)
    out = pd.DataFrame(
        {
            "time": as_time(rows[S.TIMESTAMP].to_numpy(), dataset.has_timestamps),
            S.ITEM: items,
            S.ITEM_ID: dataset.item_ids[items].astype(str),
            S.TITLE: dataset.item_titles()[items],
            S.CATEGORY: _item_column(dataset, S.CATEGORY, items),
            S.SCENARIO: _scenario_names(dataset, rows),
            "part": rows["part"].to_numpy(),
        }
    )
    return out.reset_index(drop=True)


def user_split(split: Split, user_code: int) -> Split:
    """`split` cut to one user's rows (same method, seed and catalogue; rows in their order).

    What the page needs of one user, read without joining, sorting or indexing every user's
    rows on each rerun: at 10M rows the whole split's known-item matrix takes 0.3 s per run
    and the held-out join 4.7 s, a scan of each part for the user ~10 ms per million rows.
    """
    mine = [part.of_users([int(user_code)]) for part in (split.train, split.valid, split.test)]
    return Split(split.method, split.seed, *mine)


def held_out(split: Split, user_code: int) -> np.ndarray:
    """Item codes the user holds in the test part that are not already known (the hits)."""
    tests = _held_out_frame(user_split(split, user_code))
    return np.unique(tests[S.ITEM].to_numpy(np.int64))


def top_list(
    loaded,
    user_code: int,
    k: int = 10,
    *,
    diversity: float = 0.0,
    novelty: float = 0.0,
    held: Sequence[int] | np.ndarray = (),
) -> pd.DataFrame:
    """A user's top-k of a `LoadedRun` (known items excluded), optionally re-ranked.

    Columns: rank, item_code, item_id, title, category, score (the model's own score), hit
    (the item is held out for this user). Weights 0 give the model's own order.
    """
    from core.eval.rerank import recommend_reranked

    ds = loaded.dataset
    _check_user(ds, user_code)
    if diversity == 0 and novelty == 0:  # only the user's own known items are read then
        loaded = dataclasses.replace(loaded, split=user_split(loaded.split, user_code))
    codes = recommend_reranked(
        loaded, [int(user_code)], int(k), diversity=diversity, novelty=novelty
    )
    codes = codes[0][codes[0] >= 0].astype(np.int64)  # (k,) padding (-1) dropped
    with torch.inference_mode():
        scores = loaded.model.score([int(user_code)], codes).double().cpu().numpy()[0]
    held_set = {int(i) for i in held}
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(codes) + 1),
            S.ITEM: codes,
            S.ITEM_ID: ds.item_ids[codes].astype(str),
            S.TITLE: ds.item_titles()[codes],
            S.CATEGORY: _item_column(ds, S.CATEGORY, codes),
            "score": scores,
            "hit": [int(c) in held_set for c in codes],
        }
    )


def as_time(values: np.ndarray, has_timestamps: bool = True) -> pd.Series | np.ndarray:
    """Unix seconds or milliseconds as datetimes (UTC, naive); anything else unchanged."""
    values = np.asarray(values, dtype=np.int64)
    if not has_timestamps or len(values) == 0:
        return values
    top = int(values.max())
    if top >= 10**12:
        return pd.to_datetime(values, unit="ms").to_numpy()
    if top >= 10**8:
        return pd.to_datetime(values, unit="s").to_numpy()
    return values


def testable_users(segments: pd.DataFrame) -> list[str]:
    """Ids of the users with a held-out item (the ones worth opening); all when none has."""
    testable = segments.loc[segments["n_test"] > 0, S.USER_ID].tolist()
    return testable or segments[S.USER_ID].tolist()


def segment_kinds(segments: pd.DataFrame) -> list[str]:
    """The segment kinds (keys of `SEGMENT_KINDS`) this data has values for."""
    return [k for k in SEGMENT_KINDS if segments[k].notna().any()]


def segment_counts(segments: pd.DataFrame, kind: str) -> pd.Series:
    """Users with a held-out item per value of one segment kind, in value order."""
    return segments.loc[segments["n_test"] > 0, kind].value_counts().sort_index()


def segment_members(segments: pd.DataFrame, kind: str, value) -> list[str]:
    """Ids of the users with a held-out item in one segment."""
    inside = (segments[kind] == value) & (segments["n_test"] > 0)
    return segments.loc[inside, S.USER_ID].tolist()


def find_user(segments: pd.DataFrame, user_id: str) -> int | None:
    """The code of the user with id `user_id` (surrounding spaces ignored), None if unknown."""
    match = np.flatnonzero(segments[S.USER_ID].to_numpy() == str(user_id).strip())
    return int(segments[S.USER].iloc[match[0]]) if len(match) else None


def profile_facts(seg: pd.Series, n_held: int) -> list[tuple[str, str, str | None]]:
    """The user's headline numbers as (label, value, help) from a `user_segments` row."""
    return [
        ("Known interactions", f"{int(seg['n_known']):,}", "Train + validation."),
        ("Held out for testing", f"{n_held:,}", None),
        ("Activity bucket", str(seg["activity"]), str(seg["cold_user"])),
        ("Main scenario", md(seg["scenario"] or "—"), None),  # st.metric renders Markdown
    ]


def attributes_line(dataset: Dataset, user_code: int) -> str:
    """'Attributes: age band **45-54** · region **south**' ('' without user attributes)."""
    attrs = dataset.users.iloc[int(user_code)].drop(labels=[S.USER_ID], errors="ignore")
    shown = [f"{md(k.replace('_', ' '))} **{md(v)}**" for k, v in attrs.items() if not pd.isna(v)]
    return "Attributes: " + " · ".join(shown) if shown else ""


def list_view(table: pd.DataFrame, label: str) -> tuple[str, pd.DataFrame]:
    """A `top_list` as shown: its heading ('**ease** — 2 hits') and the table with a '#'
    column that marks held-out items ('3 ✔')."""
    n_hits = int(table["hit"].sum())
    heading = f"**{md(label)}** — {n_hits} hit{'s' if n_hits != 1 else ''}"
    marks = [
        f"{r} {HIT}" if h else str(r) for r, h in zip(table["rank"], table["hit"], strict=True)
    ]
    # the score before the title: with up to 5 lists side by side a narrow column still shows
    # it, and the title takes what is left (issue 16 point 6)
    return heading, table.assign(**{"#": marks})[["#", "score", S.TITLE, S.CATEGORY]]


def list_html(shown: pd.DataFrame) -> str:
    """A `list_view` table as HTML that fits a fifth of a wide page: '#', score, and the title
    with its category on a second line; both cut with '…' where narrow, the whole title and
    category on hover (each cell's `title` attribute).

    Streamlit's grid cuts long titles without a mark or a hover text and pushed the category
    out with 3 runs side by side (issue 16 point 6). Every shown string is HTML-escaped.
    """
    cut = "overflow:hidden;text-overflow:ellipsis;white-space:nowrap"
    cell = "padding:0.3rem 0.25rem;border-bottom:1px solid rgba(128,128,128,0.25)"
    rows = []
    for mark, score, title, category in shown[["#", "score", S.TITLE, S.CATEGORY]].itertuples(
        index=False
    ):
        title = "" if pd.isna(title) else str(title)
        category = "" if pd.isna(category) else str(category)
        hover = f"{title} · {category}" if category else title
        second = (
            f'<div style="{cut};font-size:0.8em;opacity:0.65">{_h(category)}</div>'
            if category
            else ""
        )
        rows.append(
            f'<tr><td style="{cell};white-space:nowrap">{_h(mark)}</td>'
            f'<td style="{cell};text-align:right">{_score(score)}</td>'
            f'<td style="{cell}" title="{_h(hover)}"><div style="{cut}">{_h(title)}</div>'
            f"{second}</td></tr>"
        )
    head = f"padding:0.3rem 0.25rem;font-weight:normal;opacity:0.65;text-align:left;{cut}"
    return (
        '<table style="width:100%;table-layout:fixed;border-collapse:collapse;'
        'font-size:0.875rem;margin-bottom:0.5rem">'
        '<colgroup><col style="width:2.6em"><col style="width:3.6em"><col></colgroup>'
        f'<thead><tr><th style="{head}" title="{HIT} = a held-out item">#</th>'
        f'<th style="{head};text-align:right">Score</th>'
        f'<th style="{head}">Title · category</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _h(text: object) -> str:
    """`text` escaped for HTML text and attributes (quotes included)."""
    return html.escape(str(text), quote=True)


def _score(value: float) -> str:
    """A score in a narrow column: 3 decimals, none from 100 on (pop counts '898')."""
    return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"


def item_option(row) -> str:
    """An item of a top list in a picker: '#3 Title' plus ' (held out)' for a hit."""
    return f"#{row.rank} {row.title}" + (" (held out)" if row.hit else "")


def same_for_everyone(exp) -> bool:
    """True for a model with no per-user features (pop): no history moves its score, so
    there is nothing per user to draw (`Explanation.personal`)."""
    return not exp.personal


def explanation_sentence(exp, run: str) -> str:
    """What an `Explanation` says, in words: score, base value, what the features add; for a
    model with no per-user features (`same_for_everyone`), that one sentence instead."""
    if same_for_everyone(exp):
        about = DESCRIPTIONS.get(exp.model, "")
        return (
            f"**{md(run)}** scores every user the same: its score for “{md(exp.item_title)}” "
            f"(**{exp.score:,.4g}**) does not depend on the user, and nothing in the user's "
            "history changes it, so there is nothing to explain per user."
            + (f" ({md(exp.model)}: {md(about)})" if about else "")
        )
    lift = exp.score - exp.base_value
    text = (
        f"**{md(run)}** scores “{md(exp.item_title)}” **{exp.score:.4f}** for this user. "
        f"Knowing none of the features below, it would score **{exp.base_value:.4f}** (the "
        f"base value); together they {'add' if lift >= 0 else 'take away'} **{abs(lift):.4f}**."
    )
    if len(exp.contributions) and not exp.contributions["value"].abs().gt(0).any():
        text += " None of this user's features moves this item's score."
    named = exp.contributions.dropna(subset=["item_code"])
    if exp.method == "closed_form" and len(named):
        text += (
            f" Each history item is its own feature ({len(named):,} named; only items that "
            f"together carry under {SMALL_SHARE:.0%} of the total are grouped)."
        )
    method = {"closed_form": "exact closed form", "exact": "exact Shapley values"}
    return text + f" ({method.get(exp.method, 'shap permutation estimate')}, {exp.seconds:.2f} s)"


def fast_first(models: Sequence) -> int:
    """Index of the first model that explains in closed form (item-kNN, EASE: milliseconds)."""
    fast = [i for i, model in enumerate(models) if capabilities(model).explains_exactly]
    return fast[0] if fast else 0


# -- helpers ---------------------------------------------------------------------------------


def _held_out_frame(split: Split) -> pd.DataFrame:
    """Test (user_code, item_code) pairs that are not already known from train+valid, in
    test order, each once (index: the row's position in the test part).

    One hash of the test pairs and one pass over the known ones (at 10M rows ~0.3 s; a
    join of the two tables took 4.7 s).
    """
    test = split.test.frame[[S.USER, S.ITEM]].reset_index(drop=True)
    test_keys, known_keys = split.test.pair_keys(), split.known_for("test").pair_keys()
    shared = known_keys[pd.Series(known_keys).isin(test_keys).to_numpy()]  # (few,)
    return test[~np.isin(test_keys, shared)].drop_duplicates()


def _item_column(dataset: Dataset, column: str, items: np.ndarray) -> np.ndarray:
    if column not in dataset.items.columns:
        return np.full(len(items), None, dtype=object)
    values = dataset.items[column].astype(object).to_numpy()[items]
    return np.array([None if pd.isna(v) else str(v) for v in values], dtype=object)


def _scenario_names(dataset: Dataset, rows: pd.DataFrame) -> np.ndarray:
    if not dataset.has_scenarios or S.SCENARIO_CODE not in rows.columns:
        return np.full(len(rows), None, dtype=object)
    names = np.asarray(dataset.scenarios, dtype=object)
    return names[rows[S.SCENARIO_CODE].to_numpy(dtype=np.int64)]


def _check_user(dataset: Dataset, user_code: int) -> None:
    if not 0 <= int(user_code) < dataset.n_users:
        raise ParameterError(
            f"User code {user_code} is outside 0..{dataset.n_users - 1}; look the user up by id."
        )
