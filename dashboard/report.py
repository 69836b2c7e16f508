"""Exports: a run's recommendations as CSV/Parquet bytes, and a comparison as one HTML file.

The HTML report is self-contained (plotly.js inlined once, no network needed to open it):
the leaderboard, paired tests against a baseline, per-segment results, list overlap, and
figures built here with plotly (no Streamlit).
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.data import schema as S
from core.data.dataset import Dataset
from core.errors import ParameterError
from core.eval import compare as C

FORMATS = ("csv", "parquet")


def recs_table(store, run_id: str, k: int | None = None) -> pd.DataFrame:
    """Every user's stored recommendations: user_id, rank, item_id, title, score."""
    record = store.read(run_id)
    recs = pd.read_parquet(store.folder(run_id) / "recs.parquet")
    if k is not None:
        recs = recs[recs["rank"] <= int(k)]
    ds = Dataset.load(store.home, record["dataset"])
    items = recs[S.ITEM].to_numpy()
    table = pd.DataFrame(
        {
            S.USER_ID: ds.user_ids[recs[S.USER].to_numpy()],
            "rank": recs["rank"].to_numpy(dtype=np.int64),
            S.ITEM_ID: ds.item_ids[items],
            S.TITLE: ds.item_titles()[items],
            "score": recs["score"].to_numpy(dtype=np.float64),
        }
    )
    return table.sort_values([S.USER_ID, "rank"], kind="stable").reset_index(drop=True)


def export_recs(store, run_id: str, fmt: str = "csv", k: int | None = None) -> bytes:
    """`recs_table` as CSV (UTF-8, header) or Parquet bytes, ready for a download button."""
    if fmt not in FORMATS:
        raise ParameterError(f"Export format '{fmt}' is unknown; use one of {', '.join(FORMATS)}.")
    table = recs_table(store, run_id, k)
    if fmt == "csv":
        return table.to_csv(index=False).encode("utf-8")
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return buffer.getvalue()


# -- figures ---------------------------------------------------------------------------------


def leaderboard_figure(board: pd.DataFrame, metric: str) -> go.Figure:
    """Horizontal bars of one metric per run, best on top."""
    data = board.sort_values(metric, ascending=True)
    fig = go.Figure(
        go.Bar(
            x=data[metric],
            y=_run_labels(data),
            orientation="h",
            text=data[metric].map(lambda v: f"{v:.4f}"),
            textposition="auto",
        )
    )
    fig.update_layout(title=f"{metric} by run", xaxis_title=metric, margin=dict(l=10, r=10))
    return fig


def scatter_figure(points: pd.DataFrame, x: str, y: str) -> go.Figure:
    """One marker per run: accuracy (y) against novelty or coverage (x)."""
    fig = go.Figure(
        go.Scatter(
            x=points[x],
            y=points[y],
            mode="markers+text",
            text=points["model"],
            textposition="top center",
            hovertext=points["run_id"],
            marker=dict(size=12),
        )
    )
    fig.update_layout(title=f"{y} against {x}", xaxis_title=x, yaxis_title=y)
    return fig


def paired_figure(paired: pd.DataFrame) -> go.Figure:
    """Mean difference to the baseline with its bootstrap confidence interval, per run."""
    fig = go.Figure(
        go.Scatter(
            x=paired["mean_diff"],
            y=paired["run_id"],
            mode="markers",
            error_x=dict(
                type="data",
                symmetric=False,
                array=paired["ci_high"] - paired["mean_diff"],
                arrayminus=paired["mean_diff"] - paired["ci_low"],
            ),
            marker=dict(size=10),
        )
    )
    fig.add_vline(x=0.0, line_dash="dash")
    metric = paired["metric"].iloc[0] if len(paired) else ""
    fig.update_layout(title=f"Difference in {metric} to the baseline (95% CI)")
    return fig


def segment_figure(segments: pd.DataFrame, run_ids: Sequence[str], kind: str) -> go.Figure:
    """Grouped bars of the runs' metric over the segments of one kind."""
    part = segments[segments["segment_kind"] == kind]
    fig = go.Figure([go.Bar(name=r, x=part["segment"], y=part[r]) for r in run_ids])
    fig.update_layout(barmode="group", title=f"By {kind.replace('_', ' ')}")
    return fig


def overlap_figure(table: pd.DataFrame, k: int) -> go.Figure:
    """Heatmap of mean Jaccard@k between runs."""
    fig = go.Figure(
        go.Heatmap(
            z=table.to_numpy(),
            x=list(table.columns),
            y=list(table.index),
            zmin=0,
            zmax=1,
            text=np.round(table.to_numpy(), 3),
            texttemplate="%{text}",
        )
    )
    fig.update_layout(title=f"Overlap of top-{k} lists (mean Jaccard)")
    return fig


# -- report ----------------------------------------------------------------------------------


def html_report(
    store,
    run_ids: Sequence[str],
    k: int = 10,
    metric: str | None = None,
    baseline_run: str | None = None,
) -> str:
    """A self-contained HTML comparison of `run_ids` (same dataset and split).

    `metric` defaults to ndcg@k; `baseline_run` (default: the first run whose model is
    'pop', else the first run) is what the paired tests compare against.
    """
    run_ids = list(dict.fromkeys(run_ids))
    records = C.load_records(store, run_ids)
    C.check_comparable(records)
    metric = metric or f"ndcg@{k}"
    if baseline_run is None:
        baseline_run = next((r["run_id"] for r in records if r.get("model") == "pop"), run_ids[0])
    board = C.leaderboard(records, k)
    if metric not in board.columns:
        allowed = ", ".join(c for c in board.columns if c not in ("run_id", "model"))
        raise ParameterError(f"Metric '{metric}' is not in these runs' results; use {allowed}.")
    sections = [("Leaderboard", _table(board), [leaderboard_figure(board, metric)])]
    points = C.accuracy_novelty(records, k)
    if f"novelty@{k}" in points:
        sections[0][2].append(scatter_figure(points, f"novelty@{k}", metric))
    others = [r for r in run_ids if r != baseline_run]
    if others:
        paired = C.paired_table(store, others, metric, baseline_run)
        text = f"Baseline: {baseline_run}. Differences are run − baseline on the same users."
        sections.append(("Paired tests", _p(text) + _table(paired), [paired_figure(paired)]))
    segments = C.segment_table(store, run_ids, metric)
    seg_figs = [
        segment_figure(segments, run_ids, kind)
        for kind in segments["segment_kind"].unique()
        if kind != "all"
    ]
    sections.append(("Segments", _table(segments), seg_figs))
    over = C.overlap(store, run_ids, k)
    sections.append(
        ("Overlap", _table(over.reset_index(names="run_id")), [overlap_figure(over, k)])
    )
    first = records[0]
    title = f"RecScope comparison — {first.get('dataset')} ({first.get('split')} split)"
    return _page(title, run_ids, sections)


def _page(title: str, run_ids: Sequence[str], sections) -> str:
    parts, js_done = [], False
    for heading, body, figures in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
        for fig in figures:
            fig.update_layout(template="plotly_white", height=380)
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


def _run_labels(frame: pd.DataFrame) -> list[str]:
    return [f"{m} · {r}" for m, r in zip(frame["model"], frame["run_id"], strict=True)]


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
    "table.t{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
    "table.t td,table.t th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:right}"
)
