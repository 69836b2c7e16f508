"""The Compare page's comparison as one self-contained HTML file.

plotly.js is inlined once, so the file opens offline. It holds the leaderboard, paired
tests against a baseline, per-segment results and list overlap, drawn by the same chart
functions as the page (dashboard.charts_compare). Every table cell and heading is escaped.
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
    sections = [("Leaderboard", _table(board.rename(columns=V.metric_label)), figures)]
    others = [r for r in run_ids if r != baseline_run]
    if others:
        paired = C.paired_table(store, others, metric, baseline_run)
        text = f"Baseline: {baseline_run}. Differences are run − baseline on the same users."
        figure = charts.forest(paired, labels, baseline_run)
        sections.append(("Paired tests", _p(text) + _table(paired), [figure]))
    segments = C.segment_table(store, run_ids, metric)
    seg_figs = [
        charts.segment_bars(segments, kind, run_ids, labels, metric)
        for kind in segments["segment_kind"].unique()
        if kind != "all"
    ]
    sections.append(("Segments", _table(segments), seg_figs))
    over = C.overlap(store, run_ids, k)
    over_fig = charts.overlap_heatmap(over, labels, k)
    sections.append(("Overlap", _table(over.reset_index(names="run_id")), [over_fig]))
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


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, classes="t")


def _p(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
    "table.t{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
    "table.t td,table.t th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:right}"
)
