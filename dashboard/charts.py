"""Chart builders: DataFrame in, Plotly figure out. No Streamlit calls, so each is testable.

Every figure carries a title and axis labels an analyst can read without the code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.text import plot, plot_column
from dashboard.views import LOWER_IS_BETTER, metric_label

ACCENT = "#3366cc"
SECOND = "#dc7633"
HEIGHT = 340


def long_tail(table: pd.DataFrame, what: str = "items", points: int = 1000) -> go.Figure:
    """Interactions per entity by popularity rank, log scale (from `core.data.profile.activity`).

    At most about `points` ranks are drawn (`_thin`): the curve of 200,000 users looks the
    same from 1,000 of them, and drawing every one took seconds on each rerun."""
    table = _thin(table, points)
    fig = go.Figure(
        go.Scatter(
            x=table["rank"],
            y=table["interactions"],
            mode="lines",
            line={"color": ACCENT, "width": 2},
            customdata=plot_column(table["id"].astype(str)),
            hovertemplate="rank %{x}: %{customdata}<br>%{y} interactions<extra></extra>",
        )
    )
    singular = what.rstrip("s")
    return _layout(
        fig,
        title=f"Interactions per {singular} (long tail)",
        x=f"{singular.capitalize()}s ranked from most to least active",
        y="Interactions (log scale)",
        log_y=True,
    )


def rating_bar(dist: pd.DataFrame) -> go.Figure:
    """How often each rating value occurs (from `core.data.profile.rating_distribution`)."""
    fig = go.Figure(
        go.Bar(
            x=[f"{r:g}" for r in dist["rating"]],
            y=dist["interactions"],
            marker_color=ACCENT,
            hovertemplate="rating %{x}: %{y} interactions<extra></extra>",
        )
    )
    return _layout(fig, title="Rating distribution", x="Rating", y="Interactions")


def activity_over_time(over: pd.DataFrame) -> go.Figure:
    """Interactions (bars, left axis) and active users (line, right axis) per period (from
    `core.data.profile.activity_over_time`): users are far fewer than interactions, so on
    one axis their line would lie flat along the bottom."""
    fig = go.Figure()
    fig.add_trace(
        go.Bar(x=over["period"], y=over["interactions"], name="Interactions", marker_color=ACCENT)
    )
    fig.add_trace(
        go.Scatter(
            x=over["period"],
            y=over["active_users"],
            name="Active users",
            mode="lines",
            line={"color": SECOND, "width": 2},
            yaxis="y2",
        )
    )
    dated = pd.api.types.is_datetime64_any_dtype(over["period"])
    fig = _layout(
        fig,
        title="Activity over time",
        x="Date" if dated else "Position in the log (no dates in the data)",
        y="Interactions per period",
        legend=True,
    )
    fig.update_layout(
        yaxis2={
            "title": {"text": "Active users per period", "font": {"color": SECOND}},
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "showgrid": False,
            "tickmode": "auto",  # round numbers of users, not ticks synced to the left axis
            "tickformat": ",",
        }
    )
    return fig


def scenario_users_bar(per: pd.DataFrame) -> go.Figure:
    """Users by how many scenarios they are active in (from `core.data.profile.scenario_users`)."""
    fig = go.Figure(
        go.Bar(
            x=per["scenarios"].astype(str),
            y=per["users"],
            marker_color=ACCENT,
            hovertemplate="%{y} users active in %{x} scenario(s)<extra></extra>",
        )
    )
    return _layout(
        fig, title="Users by number of scenarios", x="Scenarios a user is active in", y="Users"
    )


def overlap_heatmap(matrix: pd.DataFrame) -> go.Figure:
    """Users shared by each pair of scenarios (from `core.data.profile.scenario_overlap`)."""
    names = [plot(n) for n in matrix.index]  # scenario names: user strings
    fig = go.Figure(
        go.Heatmap(
            z=matrix.to_numpy(),
            x=names,
            y=names,
            colorscale="Blues",
            text=matrix.to_numpy(),
            texttemplate="%{text}",
            hovertemplate="%{y} and %{x}: %{z} users<extra></extra>",
            colorbar={"title": "Users"},
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title="Users shared between scenarios", x="Scenario", y="Scenario")


def top_items_bar(top: pd.DataFrame) -> go.Figure:
    """Most interacted items, titles on the axis (from `core.data.profile.top_items`)."""
    labels = [plot(t) for t in _unique_labels(top["title"].astype(str), top["item_id"].astype(str))]
    fig = go.Figure(
        go.Bar(
            x=top["interactions"],
            y=labels,
            orientation="h",
            marker_color=ACCENT,
            hovertemplate="%{y}: %{x} interactions<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig = _layout(fig, title=f"Top {len(top)} items", x="Interactions", y="")
    fig.update_layout(height=max(HEIGHT, 22 * len(top) + 80))
    return fig


def metric_bar(runs: pd.DataFrame, metric: str) -> go.Figure:
    """One bar per run for a test metric, best first (lowest first for an error metric such as
    RMSE); `runs` needs columns run, model and `metric`."""
    lower_better = metric.split("@")[0] in LOWER_IS_BETTER
    shown = runs.dropna(subset=[metric]).sort_values(metric, ascending=lower_better, kind="stable")
    label = metric_label(metric)
    fig = go.Figure(
        go.Bar(
            x=shown[metric],
            y=shown["run"],
            orientation="h",
            marker_color=ACCENT,
            text=[f"{v:.4f}" for v in shown[metric]],
            textposition="auto",
            customdata=shown["model"],
            hovertemplate="%{customdata} (%{y})<br>" + label + " = %{x:.4f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")  # the best run on top
    fig = _layout(fig, title=f"Test {label} by run, best first", x=label, y="")
    fig.update_layout(height=min(HEIGHT * 2, 40 * len(shown) + 120))
    return fig


def training_curves(events: pd.DataFrame, title: str = "Training progress") -> go.Figure:
    """Loss (left axis) and validation metric (right axis) per epoch of one run.

    `events` are the run's progress lines: columns epoch, loss, valid_metric, metric_name.
    Lines of a closed-form model's search (a `param` column: EASE's λ) are drawn by
    `search_curve` instead: the x axis is then the value tried, not an epoch.
    """
    if "param" in events and events["param"].notna().any():
        return search_curve(events, title)
    fig = go.Figure()
    metric = str(events["metric_name"].dropna().iloc[-1]) if "metric_name" in events else "metric"
    if "loss" in events and events["loss"].notna().any():
        shown = events.dropna(subset=["loss"])
        fig.add_trace(
            go.Scatter(
                x=shown["epoch"], y=shown["loss"], name="training loss", line={"color": ACCENT}
            )
        )
    if "valid_metric" in events and events["valid_metric"].notna().any():
        shown = events.dropna(subset=["valid_metric"])
        fig.add_trace(
            go.Scatter(
                x=shown["epoch"],
                y=shown["valid_metric"],
                name=f"validation {metric}",
                yaxis="y2",
                line={"color": SECOND},
            )
        )
    fig = _layout(fig, title=title, x="Epoch", y="Loss", legend=True)
    fig.update_xaxes(**epoch_ticks(int(events["epoch"].max()) if len(events) else 1))
    fig.update_layout(
        yaxis2={"title": {"text": f"Validation {metric}"}, "overlaying": "y", "side": "right"},
        height=280,
    )
    return fig


def search_curve(events: pd.DataFrame, title: str = "Search") -> go.Figure:
    """The validation metric of each value a closed-form model tried (EASE's λ), log x axis.

    `events`: columns param (the name, e.g. "λ"), param_value, valid_metric, metric_name."""
    tried = events.dropna(subset=["param_value", "valid_metric"]).sort_values("param_value")
    name = str(events["param"].dropna().iloc[-1])
    metric = str(events["metric_name"].dropna().iloc[-1]) if "metric_name" in events else "metric"
    best = tried.loc[tried["valid_metric"].idxmax()] if len(tried) else None
    fig = go.Figure(
        go.Scatter(
            x=tried["param_value"],
            y=tried["valid_metric"],
            mode="lines+markers",
            name=f"validation {metric}",
            line={"color": SECOND},
            hovertemplate=name + " = %{x:g}: " + metric + " %{y:.4f}<extra></extra>",
        )
    )
    if best is not None:
        fig.add_trace(
            go.Scatter(
                x=[best["param_value"]],
                y=[best["valid_metric"]],
                mode="markers",
                name=f"best {name} so far",
                marker={"color": ACCENT, "size": 12, "symbol": "star"},
                hoverinfo="skip",
            )
        )
    fig = _layout(fig, title=title, x=f"{name} tried (log scale)", y=f"Validation {metric}")
    values = tried["param_value"].tolist()
    fig.update_xaxes(type="log", tickvals=values, ticktext=[f"{v:g}" for v in values])
    fig.update_layout(height=280, showlegend=True)
    return fig


def epoch_ticks(last_epoch: int) -> dict:
    """X-axis settings for an epoch axis: whole-number ticks only (plotly's automatic ticks put
    fractional steps on a short run, shown rounded as "1 2 2 3 3"), about ten at most."""
    steps = (m * 10**e for e in range(7) for m in (1, 2, 5))  # 1, 2, 5, 10, 20, 50, ...
    step = next(s for s in steps if last_epoch <= 10 * s)
    return {"tickmode": "linear", "tick0": 0 if step > 1 else 1, "dtick": step, "tickformat": "d"}


def _layout(
    fig: go.Figure, *, title: str, x: str, y: str, log_y: bool = False, legend: bool = False
) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left"},
        template="plotly_white",
        height=HEIGHT,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        showlegend=legend,
        legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
    )
    fig.update_xaxes(title_text=x)
    fig.update_yaxes(title_text=y)
    if log_y:  # full numbers on every tick (plotly's default labels 2 and 5 without magnitude)
        fig.update_yaxes(type="log", tickformat=",")
    return fig


def _thin(table: pd.DataFrame, points: int) -> pd.DataFrame:
    """About `points` rows of a table ordered by rank: the first and last, evenly spaced ones
    and log-spaced ones (the head of a long tail is where it bends), in rank order."""
    n = len(table)
    if n <= points:
        return table
    half = points // 2
    rows = np.concatenate(
        [np.linspace(0, n - 1, half), np.geomspace(1, n, points - half) - 1]
    ).astype(np.int64)  # (points,)
    return table.iloc[np.unique(rows)]


def _unique_labels(titles: pd.Series, ids: pd.Series) -> list[str]:
    """Titles, with the id appended where two items share a title (bars must not merge)."""
    dup = titles.duplicated(keep=False)
    return [f"{t} ({i})" if d else t for t, i, d in zip(titles, ids, dup, strict=True)]
