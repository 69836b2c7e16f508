"""Page-ready tables and sentences for the Compare and User explorer pages.

Pure functions over stored runs and datasets, so the pages stay thin and every sentence a
product manager reads ("ease is better than pop for NDCG@10 by 0.12 …") is tested here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from core.data import schema as S
from core.data.dataset import Dataset
from core.data.split import Split
from core.errors import ParameterError
from core.eval.beyond import ACTIVITY_BINS, ACTIVITY_LABELS, COLD_MAX

#: readable names of metric families (keys are lower-case, as in run records)
METRIC_NAMES = {
    "ndcg": "NDCG",
    "recall": "Recall",
    "precision": "Precision",
    "hit": "Hit rate",
    "mrr": "MRR",
    "map": "MAP",
    "auc": "AUC",
    "rmse": "RMSE",
    "mae": "MAE",
    "novelty": "Novelty",
    "coverage": "Coverage",
    "diversity": "Diversity",
    "avg_pop": "Avg popularity",
    "tail_share": "Long-tail share",
    "gini": "Gini",
    "cold_item_recall": "Cold-item recall",
}
ACCURACY = ("ndcg", "recall", "precision", "hit", "mrr", "map")
BEYOND = ("coverage", "novelty", "diversity", "avg_pop", "tail_share", "gini")
#: metrics where a lower value is the better one
LOWER_IS_BETTER = ("rmse", "mae")
SEGMENT_KINDS = {"activity": "Activity", "cold_user": "Cold users", "scenario": "Scenario"}
#: the default baseline of paired tests (a default pick, not a decision about the model)
BASELINE_MODEL = "pop"


def metric_label(name: str) -> str:
    """'ndcg@10' -> 'NDCG@10'; unknown names are returned unchanged."""
    family, _, k = str(name).partition("@")
    readable = METRIC_NAMES.get(family, family)
    return f"{readable}@{k}" if k else readable


def run_labels(records: Sequence[Mapping]) -> dict[str, str]:
    """Short names for runs: the model name, plus the run id where two runs share a model."""
    models = [str(r.get("model", "run")) for r in records]
    return {
        r["run_id"]: m if models.count(m) == 1 else f"{m} ({r['run_id']})"
        for r, m in zip(records, models, strict=True)
    }


def run_option(record: Mapping, with_score: bool = False) -> str:
    """A run in a picker: 'ease · RUN_ID (loo split)', plus its test NDCG@10 when asked."""
    text = f"{record.get('model')} · {record['run_id']} ({record.get('split')} split)"
    ndcg = (record.get("metrics") or {}).get("test", {}).get("ndcg@10")
    if with_score and isinstance(ndcg, (int, float)):
        text += f" · NDCG@10 {ndcg:.3f}"
    return text


def default_runs(finished: Sequence[Mapping], limit: int) -> list[str]:
    """Run ids preselected in a picker: the newest run of each model (up to `limit`) that
    shares the newest run's split and seed, so the picks can be compared at once.

    `finished` is newest first (as `RunStore.list` returns it).
    """
    if not finished:
        return []
    newest, picked = finished[0], {}
    for rec in finished:
        same = (rec.get("split"), rec.get("seed")) == (newest.get("split"), newest.get("seed"))
        if same and rec.get("model") not in picked and len(picked) < limit:
            picked[rec.get("model")] = rec["run_id"]
    return list(picked.values())


def default_baseline(records: Sequence[Mapping]) -> str:
    """The run other runs are tested against by default: the popularity list when one was
    picked (the bar every model must clear), else the first run."""
    pop = [r["run_id"] for r in records if r.get("model") == BASELINE_MODEL]
    return pop[0] if pop else records[0]["run_id"]


def format_p(p: float) -> str:
    """'p < 0.001', 'p = 0.012', 'p = 0.43'."""
    if p is None or math.isnan(p):
        return "p not available"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def paired_sentence(row: Mapping, run: str, baseline: str, confidence: float = 0.95) -> str:
    """One plain sentence for a `core.eval.compare.paired_table` row.

    "ease is better than pop for NDCG@10 by 0.12 (95% CI 0.10–0.14, p < 0.001)." when the
    Wilcoxon test is significant, else that the difference is not clear.
    """
    metric = metric_label(row["metric"])
    diff, low, high = float(row["mean_diff"]), float(row["ci_low"]), float(row["ci_high"])
    digits = _digits(diff, low, high)
    dash = "–" if low >= 0 else " to "  # "0.10–0.14", but "-0.02 to 0.01"
    ci = f"{int(round(confidence * 100))}% CI {low:.{digits}f}{dash}{high:.{digits}f}"
    stats = f"({ci}, {format_p(float(row['p_value']))}, {int(row['n_users']):,} users)"
    if not bool(row["significant"]) or diff == 0:
        return (
            f"{run} and {baseline} are not clearly different for {metric}: the difference is "
            f"{diff:+.{digits}f} {stats}."
        )
    lower_better = str(row["metric"]).split("@")[0] in LOWER_IS_BETTER
    better = (diff > 0) != lower_better
    word = "better" if better else "worse"
    return f"{run} is {word} than {baseline} for {metric} by {abs(diff):.{digits}f} {stats}."


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


def held_out(split: Split, user_code: int) -> np.ndarray:
    """Item codes the user holds in the test part that are not already known (the hits)."""
    tests = _held_out_frame(split)
    return np.unique(tests.loc[tests[S.USER] == int(user_code), S.ITEM].to_numpy(np.int64))


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


# -- helpers ---------------------------------------------------------------------------------


def _digits(diff: float, low: float, high: float) -> int:
    """Decimals that show the difference (or, when it is 0, the CI) with 2 significant digits."""
    mag = abs(diff) or max(abs(low), abs(high))
    if not mag or math.isnan(mag):
        return 2
    return int(min(6, max(2, 1 - math.floor(math.log10(mag)))))


def _held_out_frame(split: Split) -> pd.DataFrame:
    """Test (user_code, item_code) pairs that are not already known from train+valid."""
    test = split.test.frame[[S.USER, S.ITEM]]
    known = split.known_for("test").frame[[S.USER, S.ITEM]].drop_duplicates()
    merged = test.merge(known, on=[S.USER, S.ITEM], how="left", indicator=True)
    return merged.loc[merged["_merge"] == "left_only", [S.USER, S.ITEM]].drop_duplicates()


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
