"""Chart builders of the User explorer: history, SHAP waterfall and bars, re-ranking curve.

DataFrame in, Plotly figure out, no Streamlit calls (testable). Split from
`dashboard.charts_compare`, whose run colours it shares.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.charts import ACCENT, HEIGHT, SECOND, _layout
from dashboard.charts_compare import PALETTE
from dashboard.text import plot, plot_column
from dashboard.views import metric_label

POSITIVE = "#d62728"  # SHAP: pushes the score up
NEGATIVE = "#1f77b4"  # SHAP: pulls the score down
WRAP = 30  # characters per line of a SHAP feature label
MAX_LINES = 3  # lines per label before it is cut (the whole label is on hover)


def history_timeline(history: pd.DataFrame) -> go.Figure:
    """A user's interactions over time (from `dashboard.views_user.user_history`).

    y is the item's category (the scenario, or one row, when there is none); colour is the
    scenario; held-out test items are drawn as stars.
    """
    rows = history.copy()
    if rows["category"].notna().any():
        rows["lane"], lane_title = rows["category"].fillna("—"), "Category"
    elif rows["scenario"].notna().any():
        rows["lane"], lane_title = rows["scenario"].fillna("—"), "Scenario"
    else:
        rows["lane"], lane_title = "history", ""
    rows["group"] = rows["scenario"].fillna("interactions")
    fig = go.Figure()
    for i, (group, part) in enumerate(rows.groupby("group", sort=True)):
        symbols = np.where(part["part"] == "test", "star", "circle")
        fig.add_trace(
            go.Scatter(
                x=part["time"],
                y=part["lane"],
                mode="markers",
                name=plot(group),
                marker={
                    "size": np.where(part["part"] == "test", 16, 10),
                    "symbol": symbols,
                    "color": PALETTE[i % len(PALETTE)],
                    "line": {"width": 1, "color": "white"},
                },
                customdata=np.column_stack([plot_column(part["title"].astype(str)), part["part"]]),
                hovertemplate="%{customdata[0]}<br>%{x}<br>%{y} · %{customdata[1]}<extra></extra>",
            )
        )
    dated = pd.api.types.is_datetime64_any_dtype(rows["time"])
    fig = _layout(
        fig,
        title="History over time (stars: held-out test items)",
        x="Date" if dated else "Position in the log",
        y=lane_title,
        legend=True,
    )
    fig.update_layout(height=max(HEIGHT - 60, 26 * rows["lane"].nunique() + 140))
    return fig


def shap_waterfall(
    contributions: pd.DataFrame, base_value: float, score: float, max_features: int = 10
) -> go.Figure:
    """Waterfall from the base value to the score: the largest |SHAP| features, the rest as one.

    Bars: 'Base value' (absolute), one relative bar per shown feature, 'N other features'
    when there are more, then 'Score' (total) — so base + Σ relative bars = score. Labels
    are wrapped (`_wrap_label`); hovering a bar shows its feature's whole label.
    """
    shown, rest = _split_top(contributions, max_features)
    full = ["Base value (nothing known)"] + shown["label"].astype(str).tolist()
    labels = ["Base value (nothing known)"] + _unique([_wrap_label(t) for t in shown["label"]])
    values = [float(base_value)] + shown["value"].astype(float).tolist()
    measures = ["absolute"] + ["relative"] * len(shown)
    if len(rest):
        largest = float(rest["value"].astype(float).abs().max())
        many = f"{len(rest)} other feature{'s' if len(rest) != 1 else ''}"
        # many small items can add up to a long bar: say that each one is small
        labels.append(f"{many}<br>(each within ±{largest:.3g})")
        full.append(f"{many}, each within ±{largest:.3g}")
        values.append(float(rest["value"].sum()))
        measures.append("relative")
    labels.append("Score")
    full.append("Score")
    values.append(float(score))
    measures.append("total")
    fig = go.Figure(
        go.Waterfall(
            orientation="h",
            y=labels,
            x=values,
            measure=measures,
            text=[
                f"{v:.3f}" if m != "relative" else f"{v:+.3f}"
                for v, m in zip(values, measures, strict=True)
            ],
            # the base and score bars start at 0, so their text outside a negative bar would
            # sit on the axis labels: inside them when it fits
            textposition=["outside" if m == "relative" else "auto" for m in measures],
            cliponaxis=False,
            increasing={"marker": {"color": POSITIVE}},
            decreasing={"marker": {"color": NEGATIVE}},
            totals={"marker": {"color": "#555555"}},
            connector={"line": {"color": "#bbbbbb", "width": 1}},
            customdata=[plot(t) for t in full],
            hovertemplate="%{customdata}: %{text}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(tickformat=tick_format([base_value, score, *values]))
    fig = _layout(fig, title="From the base value to the score", x="Score", y="")
    fig.update_layout(height=_bars_height(labels), margin={"r": 60})
    return fig


def shap_bar(contributions: pd.DataFrame, max_features: int = 10) -> go.Figure:
    """The largest SHAP values as signed horizontal bars (red raises, blue lowers the score)."""
    shown, _ = _split_top(contributions, max_features)
    labels = _unique([_wrap_label(t) for t in shown["label"]])
    values = shown["value"].astype(float).to_numpy()
    fig = go.Figure(
        go.Bar(
            x=values,
            y=labels,
            orientation="h",
            marker_color=[POSITIVE if v >= 0 else NEGATIVE for v in values],
            text=[f"{v:+.3f}" for v in values],
            textposition="outside",
            cliponaxis=False,
            customdata=plot_column(shown["label"].astype(str)),
            hovertemplate="%{customdata}: %{x:+.4f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", automargin=True)
    span = max(float(np.abs(values).max()) if len(values) else 0.0, 1e-9)
    low, high = min(0.0, float(values.min(initial=0))), max(0.0, float(values.max(initial=0)))
    fig.update_xaxes(
        range=[low - 0.45 * span * (low < 0), high + 0.3 * span], tickformat=tick_format(values)
    )
    fig = _layout(fig, title="What moved the score (SHAP values)", x="SHAP value", y="")
    fig.update_layout(height=_bars_height(labels), margin={"r": 60})
    return fig


def tick_format(values) -> str:
    """A d3 format with enough decimals for `values` ('.3~f' for 0.1-1) and no SI suffixes
    (plotly's default writes 0.0002 as '200µ' and 2e-10 as '200p')."""
    span = float(np.nanmax(np.abs(np.asarray(values, dtype=float)), initial=0.0))
    if not np.isfinite(span) or span == 0:
        return ".1~f"
    decimals = int(np.clip(np.ceil(-np.log10(span)) + 2, 0, 8))
    return f",.{decimals}~f"


def importance_bar(table: pd.DataFrame) -> go.Figure:
    """Mean |SHAP| by feature group (from `core.explain.explainer.global_importance`)."""
    kinds = {"position": "history position", "category": "history category"}
    y = [
        f"{kinds.get(k, k)}: {g}" for k, g in zip(table["group_kind"], table["group"], strict=True)
    ]
    colors = {
        kind: PALETTE[i % len(PALETTE)] for i, kind in enumerate(table["group_kind"].unique())
    }
    fig = go.Figure(
        go.Bar(
            x=table["mean_abs_shap"],
            y=y,
            orientation="h",
            marker_color=[colors[k] for k in table["group_kind"]],
            customdata=table["share"],
            hovertemplate="%{y}: %{x:.4f} (%{customdata:.0%} of its kind)<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    n = int(table["n_explanations"].iloc[0]) if len(table) else 0
    fig = _layout(
        fig, title=f"Mean |SHAP| by feature group ({n} users' top item)", x="Mean |SHAP|", y=""
    )
    fig.update_layout(height=max(HEIGHT, 24 * len(y) + 90))
    return fig


def tradeoff(curve: pd.DataFrame, k: int, kind: str) -> go.Figure:
    """NDCG@k against novelty, coverage and diversity as the re-ranking weight grows."""
    others = [
        c for c in (f"novelty@{k}", f"coverage@{k}", f"diversity@{k}") if curve[c].notna().any()
    ]
    fig = make_subplots(
        rows=1,
        cols=len(others),
        shared_yaxes=True,
        subplot_titles=[metric_label(c) for c in others],
    )
    for col, name in enumerate(others, start=1):
        fig.add_trace(
            go.Scatter(
                x=curve[name],
                y=curve[f"ndcg@{k}"],
                mode="lines+markers+text",
                text=_weight_labels(curve[name], curve[f"ndcg@{k}"], curve["weight"]),
                customdata=curve["weight"],
                textposition="top center",
                textfont={"size": 10},
                line={"color": ACCENT if kind == "diversity" else SECOND},
                hovertemplate="weight %{customdata:g}<br>%{x:.3f}, NDCG %{y:.4f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
    fig = _layout(
        fig,
        title=f"NDCG@{k} as the {kind} weight grows (labels: weight)",
        x="",
        y=f"NDCG@{k}",
    )
    for col in range(2, len(others) + 1):
        fig.update_yaxes(title_text="", col=col)
    return fig


# -- helpers ---------------------------------------------------------------------------------


def _weight_labels(xs: pd.Series, ys: pd.Series, weights: pd.Series) -> list[str]:
    """Point labels: the weight, or 'a–b' once for a run of weights that land on one point."""
    points = list(
        zip(np.round(xs.to_numpy(float), 6), np.round(ys.to_numpy(float), 6), strict=False)
    )
    labels = [""] * len(points)
    start = 0
    for i in range(1, len(points) + 1):
        if i == len(points) or points[i] != points[start]:
            first, last = weights.iloc[start], weights.iloc[i - 1]
            labels[start] = f"{first:g}" if i - 1 == start else f"{first:g}–{last:g}"
            start = i
    return labels


def _split_top(contributions: pd.DataFrame, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The n features of largest |value| (in that order) and the rest."""
    order = contributions["value"].astype(float).abs().sort_values(ascending=False, kind="stable")
    table = contributions.loc[order.index]
    return table.iloc[: int(n)], table.iloc[int(n) :]


def _wrap_label(text: str) -> str:
    """A feature label on at most MAX_LINES lines of about WRAP characters (Plotly '<br>'),
    escaped; a trailing '(3 days before)' gets its own line, and only a label longer than
    that is cut ('…'); the whole label is on hover."""
    text = str(text)
    head, sep, tail = text.rpartition(" (")
    when = "(" + tail if sep and tail.endswith(")") and len(tail) < WRAP else ""
    body = head if when else text
    lines = textwrap.wrap(body, WRAP, break_long_words=True) or [""]
    room = MAX_LINES - (1 if when else 0)
    if len(lines) > room:
        quote = '"' if body.endswith('"') else ""
        lines = lines[:room]
        lines[-1] = lines[-1][: WRAP - 1 - len(quote)].rstrip() + "…" + quote
    if when:
        lines.append(when)
    return "<br>".join(plot(line) for line in lines)


def _bars_height(labels: list[str]) -> int:
    """Room for every bar and its wrapped label (about 19 px a line, 32 px at least a bar)."""
    rows = sum(max(32, 19 * (label.count("<br>") + 1) + 12) for label in labels)
    return max(HEIGHT, rows + 110)


def _unique(labels: list[str]) -> list[str]:
    """Bars on a category axis merge when labels repeat: number the repeats."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out
