"""The Compare page's comparison as one self-contained HTML file.

plotly.js is inlined once, so the file opens offline. It holds the leaderboard, paired
tests against a baseline, per-segment results and list overlap, drawn by the same chart
functions as the page (dashboard.charts_compare). Every table cell and heading is escaped.
Tables fit a page: the headline metrics and the beyond-accuracy ones are two tables, runs
are named by their short labels, metrics no run measured are left out, gaps read "—".
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime, timezone

import pandas as pd

from core.errors import ParameterError
from core.eval import compare as C
from dashboard import charts_compare as charts
from dashboard import views as V
from dashboard.tables import MISSING, drop_empty


def html_report(
    store,
    run_ids: Sequence[str],
    k: int = 10,
    metric: str | None = None,
    baseline_run: str | None = None,
) -> str:
    """A self-contained HTML comparison of `run_ids` (same dataset and split).

    `metric` defaults to ndcg@k; `baseline_run` (default: `dashboard.views.default_baseline`)
    is what the paired tests compare against.
    """
    run_ids = list(dict.fromkeys(run_ids))
    records = C.load_records(store, run_ids)
    C.check_comparable(records)
    metric = metric or f"ndcg@{k}"
    baseline_run = baseline_run or V.default_baseline(records)
    board = C.leaderboard(records, k)
    if metric not in board.columns:
        allowed = ", ".join(c for c in board.columns if c not in ("run_id", "model"))
        raise ParameterError(f"Metric '{metric}' is not in these runs' results; use {allowed}.")
    labels = V.run_labels(records)
    groups = V.board_metrics(board.columns, k)
    figures = [charts.accuracy_bars(board, groups["accuracy"], labels)]
    if groups["beyond"]:
        title = f"Beyond accuracy at K={k}"
        figures.append(charts.metric_panels(board, groups["beyond"], labels, title))
    points = C.accuracy_novelty(records, k)
    if f"novelty@{k}" in points:
        figures.append(charts.accuracy_scatter(points, labels, f"novelty@{k}", metric))
    sections = [("Leaderboard", _leaderboard(board, groups, labels), figures[:1])]
    if beyond := _beyond(board, groups, labels):
        sections.append(("Beyond accuracy", beyond, figures[1:]))
    others = [r for r in run_ids if r != baseline_run]
    if others:
        paired = C.paired_table(store, others, metric, baseline_run)
        text = (
            f"Baseline: {baseline_run} ({labels[baseline_run]}). Differences are run − baseline "
            f"on the same users; p_holm is Holm-adjusted over the {len(paired)} comparison(s)."
        )
        figure = charts.forest(paired, labels, baseline_run)
        sections.append(("Paired tests", _p(text) + _table(_paired(paired, labels)), [figure]))
    segments = C.segment_table(store, run_ids, metric)
    counts = segments["segment_kind"].value_counts()
    kinds = [kind for kind in segments["segment_kind"].unique() if kind != "all"]
    seg_figs = [  # a kind with one group gets a sentence, not a one-group chart
        charts.segment_bars(segments, kind, run_ids, labels, metric)
        for kind in kinds
        if counts[kind] > 1
    ]
    notes = [V.one_group_sentence(segments, kind) for kind in V.SEGMENT_KINDS if kind in counts]
    seg_body = "".join(_p(n) for n in notes if n) + _table(
        segments.rename(columns={**labels, **_HEADERS})
    )
    sections.append(("Segments", seg_body, seg_figs))
    over = C.overlap(store, run_ids, k)
    over_fig = charts.overlap_heatmap(over, labels, k)
    over_table = over.rename(index=labels, columns=labels).reset_index(names="Run")
    sections.append(("Overlap", _table(over_table), [over_fig]))
    first = records[0]
    title = f"RecScope comparison — {first.get('dataset')} ({first.get('split')} split)"
    return _page(title, run_ids, sections)


def _page(title: str, run_ids: Sequence[str], sections) -> str:
    parts, js_done = [], False
    for heading, body, figures in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
        for fig in figures:
            parts.append(fig.to_html(full_html=False, include_plotlyjs=not js_done))
            js_done = True
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    runs = ", ".join(html.escape(r) for r in run_ids)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>Runs: {runs}. Generated {stamp}.</p>"
        + "".join(parts)
        + "</body></html>"
    )


def _leaderboard(board: pd.DataFrame, groups: dict, labels: dict) -> str:
    """The headline table: accuracy metrics, K-free ones measured by any run, fit time."""
    columns = ["model", *groups["accuracy"], *groups["plain"], "fit_s"]
    return _table(_runs_table(board, columns, labels))


def _beyond(board: pd.DataFrame, groups: dict, labels: dict) -> str:
    """The second table: beyond-accuracy metrics (empty when the runs have none)."""
    columns = [*groups["beyond"], *(c for c in board.columns if c.startswith("cold_item"))]
    return _table(_runs_table(board, columns, labels)) if columns else ""


def _runs_table(board: pd.DataFrame, columns: list[str], labels: dict) -> pd.DataFrame:
    """One row per run named by its label; metric columns no run measured are left out; the
    model column only where a label is not already the model's name."""
    table = board.assign(run=[labels.get(r, r) for r in board["run_id"]])
    if (table["run"] == table["model"]).all():
        columns = [c for c in columns if c != "model"]
    table = drop_empty(table[["run", *[c for c in columns if c in table]]], keep=("run",))
    return table.rename(columns=lambda c: _HEADERS.get(c) or V.metric_label(c))


def _paired(paired: pd.DataFrame, labels: dict) -> pd.DataFrame:
    """The paired tests without what the sentence above them says once (baseline, metric)."""
    table = paired.assign(run=[labels.get(r, r) for r in paired["run_id"]])
    keep = ["run", "mean_run", "mean_baseline", "mean_diff", "ci_low", "ci_high", "p_value"]
    keep += ["p_holm", "significant", "n_users"]
    return table[[c for c in keep if c in table]].rename(columns=_HEADERS)


def _table(frame: pd.DataFrame) -> str:
    """An escaped HTML table; a missing value reads "—"."""
    return frame.to_html(
        index=False, float_format=lambda v: f"{v:.4g}", border=0, classes="t", na_rep=MISSING
    )


def _p(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


#: readable headers of the report's non-metric columns (metrics: dashboard.views.metric_label)
_HEADERS = {
    "run": "Run",
    "model": "Model",
    "fit_s": "Fit time (s)",
    "segment_kind": "Segment kind",
    "segment": "Segment",
    "n_users": "Users",
    "mean_run": "Run mean",
    "mean_baseline": "Baseline mean",
    "mean_diff": "Difference",
    "ci_low": "95% CI low",
    "ci_high": "95% CI high",
    "significant": "Significant",
}
# headers wrap (long metric names such as "MAP@10 (÷|T|, trec_eval)"), so the tables fit
_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
    "table.t{border-collapse:collapse;margin:1em 0;font-size:0.9em;max-width:100%}"
    "table.t td,table.t th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:right}"
    "table.t th{white-space:normal;vertical-align:bottom;max-width:7.5em}"
    "table.t td:first-child,table.t th:first-child{text-align:left}"
)
