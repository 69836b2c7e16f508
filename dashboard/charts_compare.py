"""Chart builders of the Compare and User explorer pages: DataFrame in, Plotly figure out.

No Streamlit calls here, so every figure is testable. Runs are named by `labels`
({run_id: short name}, see `core.views.run_labels`); metrics by `core.views.metric_label`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.beyond import ACTIVITY_LABELS
from core.views import metric_label
from dashboard.charts import ACCENT, HEIGHT, SECOND, _layout

#: one colour per run, in the order the runs were picked
PALETTE = ("#3366cc", "#dc7633", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
POSITIVE = "#d62728"  # SHAP: pushes the score up
NEGATIVE = "#1f77b4"  # SHAP: pulls the score down
MAX_LABEL = 48


def run_color(labels: Mapping, run_id: str) -> str:
    """A run's colour: fixed by its place in `labels`, so it is the same in every chart."""
    order = list(labels)
    i = order.index(run_id) if run_id in order else len(order)
    return PALETTE[i % len(PALETTE)]


def accuracy_bars(board: pd.DataFrame, metrics: Sequence[str], labels: Mapping) -> go.Figure:
    """Grouped bars: one group per metric, one bar per run (from `core.compare.leaderboard`)."""
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

    `segments` is `core.compare.segment_table` (segment_kind, segment, n_users, one column
    per run); the x labels say how many users each segment holds.
    """
    part = segments[segments["segment_kind"] == kind]
    if kind == "activity":  # buckets in size order, not the text order a merge leaves
        rank = {label: i for i, label in enumerate(ACTIVITY_LABELS)}
        part = part.sort_values("segment", key=lambda s: s.map(rank).fillna(len(rank)))
    x = [f"{s}<br>{int(n):,} users" for s, n in zip(part["segment"], part["n_users"], strict=True)]
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

    `paired` is `core.compare.paired_table`; significant rows are drawn in colour.
    """
    runs = [labels.get(r, r) for r in paired["run_id"]]
    colors = [ACCENT if s else "#999999" for s in paired["significant"]]
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
            customdata=np.column_stack([paired["ci_low"], paired["ci_high"], paired["p_value"]]),
            hovertemplate=(
                "%{y}: %{x:+.4f}<br>95% CI %{customdata[0]:.4f} to %{customdata[1]:.4f}"
                "<br>p = %{customdata[2]:.3g}<extra></extra>"
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
    """Mean Jaccard@k between the runs' lists (from `core.compare.overlap`)."""
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
    """One marker per run: accuracy `y` against a beyond-accuracy metric `x`."""
    runs = [labels.get(r, r) for r in points["run_id"]]
    fig = go.Figure(
        go.Scatter(
            x=points[x],
            y=points[y],
            mode="markers+text",
            text=runs,
            textposition="top center",
            marker={"size": 14, "color": [run_color(labels, r) for r in points["run_id"]]},
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
    )
    fig.update_xaxes(rangemode="normal")
    return fig


def history_timeline(history: pd.DataFrame) -> go.Figure:
    """A user's interactions over time (from `core.views.user_history`).

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
                name=str(group),
                marker={
                    "size": np.where(part["part"] == "test", 16, 10),
                    "symbol": symbols,
                    "color": PALETTE[i % len(PALETTE)],
                    "line": {"width": 1, "color": "white"},
                },
                customdata=np.column_stack([part["title"], part["part"]]),
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
    when there are more, then 'Score' (total) — so base + Σ relative bars = score.
    """
    shown, rest = _split_top(contributions, max_features)
    labels = ["Base value (nothing known)"] + _unique([_short_label(t) for t in shown["label"]])
    values = [float(base_value)] + shown["value"].astype(float).tolist()
    measures = ["absolute"] + ["relative"] * len(shown)
    if len(rest):
        labels.append(f"{len(rest)} other feature{'s' if len(rest) != 1 else ''}")
        values.append(float(rest["value"].sum()))
        measures.append("relative")
    labels.append("Score")
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
            textposition="outside",
            cliponaxis=False,
            increasing={"marker": {"color": POSITIVE}},
            decreasing={"marker": {"color": NEGATIVE}},
            totals={"marker": {"color": "#555555"}},
            connector={"line": {"color": "#bbbbbb", "width": 1}},
            hovertemplate="%{y}: %{text}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig = _layout(fig, title="From the base value to the score", x="Score", y="")
    fig.update_layout(height=max(HEIGHT, 30 * len(labels) + 90), margin={"r": 60})
    return fig


def shap_bar(contributions: pd.DataFrame, max_features: int = 10) -> go.Figure:
    """The largest SHAP values as signed horizontal bars (red raises, blue lowers the score)."""
    shown, _ = _split_top(contributions, max_features)
    labels = _unique([_short_label(t) for t in shown["label"]])
    values = shown["value"].astype(float).to_numpy()
    fig = go.Figure(
        go.Bar(
            x=values,
            y=labels,
            orientation="h",
            marker_color=[POSITIVE if v >= 0 else NEGATIVE for v in values],
            text=[f"{v:+.3f}" for v in values],
            textposition="auto",
            customdata=shown["label"],
            hovertemplate="%{customdata}: %{x:+.4f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig = _layout(fig, title="What moved the score (SHAP values)", x="SHAP value", y="")
    fig.update_layout(height=max(HEIGHT, 30 * len(labels) + 90))
    return fig


def importance_bar(table: pd.DataFrame) -> go.Figure:
    """Mean |SHAP| by feature group (from `core.explain.global_importance`)."""
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
                text=[f"{w:g}" for w in curve["weight"]],
                textposition="top center",
                textfont={"size": 10},
                line={"color": ACCENT if kind == "diversity" else SECOND},
                hovertemplate="weight %{text}<br>%{x:.3f}, NDCG %{y:.4f}<extra></extra>",
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
    fig.update_yaxes(title_text="", col=2)
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


def _split_top(contributions: pd.DataFrame, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The n features of largest |value| (in that order) and the rest."""
    order = contributions["value"].astype(float).abs().sort_values(ascending=False, kind="stable")
    table = contributions.loc[order.index]
    return table.iloc[: int(n)], table.iloc[int(n) :]


def _short_label(text: str) -> str:
    """At most MAX_LABEL characters; a trailing '(3 days before)' is kept whole."""
    text = str(text)
    if len(text) <= MAX_LABEL:
        return text
    head, sep, tail = text.rpartition(" (")
    if sep and tail.endswith(")") and len(tail) < MAX_LABEL // 2:
        quote = '"' if head.endswith('"') else ""
        keep = MAX_LABEL - len(tail) - len(sep) - 1 - len(quote)
        return head[:keep].rstrip() + "…" + quote + sep + tail
    return text[: MAX_LABEL - 1] + "…"


def _unique(labels: list[str]) -> list[str]:
    """Bars on a category axis merge when labels repeat: number the repeats."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def _short(value: float) -> str:
    if value is None or pd.isna(value):
        return ""
    return f"{value:.3f}" if abs(value) < 10 else f"{value:,.0f}"
