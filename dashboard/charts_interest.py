"""Charts of the interest profiles: DataFrame in, Plotly figure out (no Streamlit calls).

Categories come from uploaded files, so every category label goes through `plot`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import ACCENT, SECOND, _layout
from dashboard.charts_compare import run_color
from dashboard.text import plot

HELD_COLOR = "#555555"
TITLE_ROW, LEGEND_ROW = 40, 50  # pixels above the plot: the title's row, the legend's row


def interest_bars(shares: pd.DataFrame, window: int) -> go.Figure:
    """Grouped bars per category: long-term, recent and (when there are any) held-out shares.

    `shares` is `core.eval.interest.user_shares` (category, long_term, recent, held_out).
    """
    x = [plot(c) for c in shares["category"]]
    series = [
        ("Long-term (whole history)", "long_term", ACCENT),
        (f"Recent (last {window})", "recent", SECOND),
    ]
    if shares["held_out"].fillna(0).sum() > 0:
        series.append(("Held out (test)", "held_out", HELD_COLOR))
    fig = go.Figure(
        [
            go.Bar(
                x=x,
                y=shares[column].fillna(0),
                name=name,
                marker_color=color,
                hovertemplate=name + "<br>%{x}: %{y:.1%}<extra></extra>",
            )
            for name, column, color in series
        ]
    )
    fig.update_layout(barmode="group")
    fig = _layout(fig, title="Category shares: long-term vs recent", x="", y="Share", legend=True)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    return fig


def list_bars(
    shares: pd.DataFrame, held: pd.Series, run_ids: Sequence[str], labels: Mapping, k: int
) -> go.Figure:
    """Grouped bars per category: the held-out shares, then each run's top-k shares.

    `shares` is the first table of `core.eval.interest.user_run_shares` (category, one
    column per run); `held` the held-out share of each of its categories.
    """
    x = [plot(c) for c in shares["category"]]
    bars = [
        go.Bar(
            x=x,
            y=held.fillna(0).to_numpy(),
            name="Held out (test)",
            marker_color=HELD_COLOR,
            hovertemplate="Held out<br>%{x}: %{y:.1%}<extra></extra>",
        )
    ]
    for run_id in run_ids:
        name = plot(labels.get(run_id, run_id))
        bars.append(
            go.Bar(
                x=x,
                y=shares[run_id],
                name=name,
                marker_color=run_color(labels, run_id),
                hovertemplate=name + f" top {k}<br>%{{x}}: %{{y:.1%}}<extra></extra>",
            )
        )
    fig = go.Figure(bars)
    fig.update_layout(barmode="group")
    title = f"Category shares of each top {k} next to the held-out items"
    fig = _layout(fig, title=title, x="", y="Share", legend=True)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    return fig


def calibration_bars(table: pd.DataFrame, labels: Mapping, k: int) -> go.Figure:
    """Per run, mean calibration KL to the held-out and to the history shares (grouped).

    `table` is `core.eval.interest.calibration_table`.
    """
    runs = [plot(labels.get(r, r)) for r in table["run_id"]]
    fig = go.Figure(
        [
            go.Bar(
                x=runs,
                y=table[column],
                name=name,
                marker_color=color,
                text=[f"{v:.3f}" for v in table[column]],
                textposition="auto",
                hovertemplate="%{x}: %{y:.4f}<extra>" + name + "</extra>",
            )
            for name, column, color in (
                ("KL to held-out shares", "kl_held_out", HELD_COLOR),
                ("KL to history shares (Steck)", "kl_history", ACCENT),
            )
        ]
    )
    fig.update_layout(barmode="group")
    title = f"Calibration of the top-{k} category mix (KL, lower is better)"
    fig = _layout(fig, title=title, x="", y="Mean KL divergence (nats)", legend=True)
    # issue 16: in a narrow column the long title and the legend met on one line; the title
    # now sits at the top of a taller margin, the legend in its own row just above the plot
    fig.update_layout(
        margin={"t": TITLE_ROW + LEGEND_ROW},
        title={"y": 1, "yref": "container", "yanchor": "top", "pad": {"t": 8}},
        legend={"x": 0, "xanchor": "left", "y": 1.02, "yanchor": "bottom"},
    )
    return fig
