"""Chart builders of the Compare page: DataFrame in, Plotly figure out.

No Streamlit calls here, so every figure is testable. Runs are named by `labels`
({run_id: short name}, see `dashboard.views.run_labels`); metrics by `dashboard.views.metric_label`.
The User explorer's charts (history, SHAP, re-ranking) are in `dashboard.charts_user`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.eval.beyond import ACTIVITY_LABELS
from dashboard.charts import ACCENT, HEIGHT, _layout
from dashboard.text import plot
from dashboard.views import metric_label

#: the most runs a scatter names beside their markers (beyond: legend and hover only)
LABELLED_MAX = 5
#: one colour per run, in the order the runs were picked
PALETTE = ("#3366cc", "#dc7633", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def run_color(labels: Mapping, run_id: str) -> str:
    """A run's colour: fixed by its place in `labels`, so it is the same in every chart."""
    order = list(labels)
    i = order.index(run_id) if run_id in order else len(order)
    return PALETTE[i % len(PALETTE)]


def accuracy_bars(board: pd.DataFrame, metrics: Sequence[str], labels: Mapping) -> go.Figure:
    """Grouped bars: one group per metric, one bar per run (`core.eval.compare.leaderboard`)."""
    bars = {row["run_id"]: [row.get(m, np.nan) for m in metrics] for _, row in board.iterrows()}
    fig = _grouped([metric_label(m) for m in metrics], bars, labels)
    return _layout(fig, title="Accuracy on the test split", x="", y="Value", legend=True)


def metric_panels(
    board: pd.DataFrame, metrics: Sequence[str], labels: Mapping, title: str
) -> go.Figure:
    """One small bar panel per metric (own scale each, three per row), one bar per run."""
    shown = [m for m in metrics if m in board.columns]
    n_cols = min(3, max(1, len(shown)))
    n_rows = max(1, -(-len(shown) // n_cols))
    fig = make_subplots(
        rows=n_rows,
        cols=n_cols,
        subplot_titles=[metric_label(m) for m in shown],
        vertical_spacing=0.18,
        horizontal_spacing=0.08,
    )
    runs = [labels.get(r, r) for r in board["run_id"]]
    colors = [run_color(labels, r) for r in board["run_id"]]
    for col, metric in enumerate(shown, start=1):
        fig.add_trace(
            go.Bar(
                x=runs,
                y=board[metric],
                marker_color=colors,
                text=[_short(v) for v in board[metric]],
                textposition="auto",
                textangle=0,
                textfont={"size": 11},
                hovertemplate="%{x}: %{y:.4f}<extra>" + metric_label(metric) + "</extra>",
            ),
            row=1 + (col - 1) // n_cols,
            col=1 + (col - 1) % n_cols,
        )
    fig = _layout(fig, title=title, x="", y="")
    fig.update_xaxes(title_text="")
    fig.update_layout(height=max(HEIGHT, 250 * n_rows + 80), margin={"t": 80})
    return fig


def segment_bars(
    segments: pd.DataFrame, kind: str, run_ids: Sequence[str], labels: Mapping, metric: str
) -> go.Figure:
    """Grouped bars of each run's mean `metric` over the segments of one kind.

    `segments` is `core.eval.compare.segment_table` (segment_kind, segment, n_users, one column
    per run); the x labels say how many users each segment holds.
    """
    part = segments[segments["segment_kind"] == kind]
    if kind == "activity":  # buckets in size order, not the text order a merge leaves
        rank = {label: i for i, label in enumerate(ACTIVITY_LABELS)}
        part = part.sort_values("segment", key=lambda s: s.map(rank).fillna(len(rank)))
    x = [  # a segment may be a scenario name from the data: escaped, our <br> kept
        f"{plot(s)}<br>{int(n):,} users"
        for s, n in zip(part["segment"], part["n_users"], strict=True)
    ]
    fig = _grouped(x, {r: part[r].tolist() for r in run_ids}, labels)
    titles = {
        "activity": "By activity (known interactions)",
        "cold_user": "Cold and warm users",
    }
    title = titles.get(kind, f"By {kind.replace('_', ' ')}")
    fig = _layout(fig, title=title, x="", y=metric_label(metric), legend=True)
    fig.update_xaxes(tickangle=0)
    fig.update_layout(legend={"y": -0.22, "yanchor": "top", "x": 0, "xanchor": "left"})
    return fig


def forest(paired: pd.DataFrame, labels: Mapping, baseline: str) -> go.Figure:
    """Mean per-user difference to the baseline with its bootstrap CI, one row per run.

    `paired` is `core.eval.compare.paired_table`; significant rows are drawn in colour.
    """
    runs = [labels.get(r, r) for r in paired["run_id"]]
    colors = [ACCENT if s else "#999999" for s in paired["significant"]]
    holm = "p_holm" in paired.columns and len(paired) > 1
    p_shown = paired["p_holm"] if holm else paired["p_value"]
    p_label = "Holm-adjusted p" if holm else "p"
    fig = go.Figure(
        go.Scatter(
            x=paired["mean_diff"],
            y=runs,
            mode="markers",
            marker={"size": 12, "color": colors, "symbol": "diamond"},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": (paired["ci_high"] - paired["mean_diff"]).to_numpy(),
                "arrayminus": (paired["mean_diff"] - paired["ci_low"]).to_numpy(),
                "thickness": 2,
                "width": 8,
            },
            # the Holm-adjusted p when the table has it (several runs against one baseline)
            customdata=np.column_stack([paired["ci_low"], paired["ci_high"], p_shown]),
            hovertemplate=(
                "%{y}: %{x:+.4f}<br>95% CI %{customdata[0]:.4f} to %{customdata[1]:.4f}"
                "<br>" + p_label + " = %{customdata[2]:.3g}<extra></extra>"
            ),
        )
    )
    fig.add_vline(x=0, line_dash="dash", line_color="#666666")
    metric = metric_label(paired["metric"].iloc[0]) if len(paired) else ""
    fig = _layout(
        fig,
        title=f"{metric}: difference to {labels.get(baseline, baseline)} (95% CI)",
        x=f"Mean per-user difference in {metric} (run − baseline)",
        y="",
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=max(200, 60 * len(paired) + 130))
    return fig


def overlap_heatmap(table: pd.DataFrame, labels: Mapping, k: int) -> go.Figure:
    """Mean Jaccard@k between the runs' lists (from `core.eval.compare.overlap`)."""
    names = [labels.get(r, r) for r in table.index]
    z = table.to_numpy(dtype=float)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=names,
            y=names,
            zmin=0,
            zmax=1,
            colorscale="Blues",
            text=np.round(z, 2),
            texttemplate="%{text}",
            hovertemplate="%{y} and %{x}: %{z:.3f}<extra></extra>",
            colorbar={"title": "Jaccard"},
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title=f"Overlap of the top-{k} lists (mean Jaccard@{k})", x="", y="")


def accuracy_scatter(points: pd.DataFrame, labels: Mapping, x: str, y: str) -> go.Figure:
    """One marker per run: accuracy `y` against a beyond-accuracy metric `x`.

    Up to LABELLED_MAX runs are named beside their markers, alternately above and below in
    the order of `x`, so neighbours' names do not overlap; more runs are named in the legend
    and on hover only.
    """
    labelled = len(points) <= LABELLED_MAX
    order = points[x].rank(method="first").fillna(0).astype(int).tolist()
    fig = go.Figure()
    for (_, row), rank in zip(points.iterrows(), order, strict=True):
        name = labels.get(row["run_id"], row["run_id"])
        fig.add_trace(
            go.Scatter(
                x=[row[x]],
                y=[row[y]],
                name=name,
                mode="markers+text" if labelled else "markers",
                text=[name],
                textposition="top center" if rank % 2 else "bottom center",
                cliponaxis=False,
                marker={"size": 14, "color": run_color(labels, row["run_id"])},
                hovertemplate="%{text}<br>"
                + metric_label(x)
                + " %{x:.3f}, "
                + metric_label(y)
                + " %{y:.4f}<extra></extra>",
            )
        )
    fig = _layout(
        fig,
        title=f"{metric_label(y)} against {metric_label(x)}",
        x=metric_label(x),
        y=metric_label(y),
        legend=not labelled,
    )
    fig.update_xaxes(rangemode="normal")
    fig.update_yaxes(rangemode="normal")
    return fig


# -- helpers ---------------------------------------------------------------------------------


def _grouped(x: list[str], bars: Mapping[str, list], labels: Mapping) -> go.Figure:
    """Grouped bars: one trace per run ({run_id: values}) over the same x categories."""
    fig = go.Figure(
        [
            go.Bar(
                x=x,
                y=values,
                name=labels.get(run_id, run_id),
                marker_color=run_color(labels, run_id),
                hovertemplate=labels.get(run_id, run_id) + "<br>%{x}: %{y:.4f}<extra></extra>",
            )
            for run_id, values in bars.items()
        ]
    )
    fig.update_layout(barmode="group")
    return fig


def _short(value: float) -> str:
    if value is None or pd.isna(value):
        return ""
    return f"{value:.3f}" if abs(value) < 10 else f"{value:,.0f}"
