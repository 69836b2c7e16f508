"""Chart builders for the Scenarios page: DataFrame in, Plotly figure out (no Streamlit).

Colours follow `dashboard.charts`; every figure has a title and readable axis labels.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import ACCENT, SECOND, _layout

#: one colour per model/strategy, stable across charts
COLOURS = {
    "multiscenario": ACCENT,
    "pooled": SECOND,
    "per_scenario": "#2e8b57",
    "target_only": "#2e8b57",
    "hybrid": "#8e44ad",
}
LABELS = {
    "multiscenario": "One model that knows the scenario",
    "pooled": "One model for everything",
    "per_scenario": "One model per scenario",
    "target_only": "Target scenario only",
    "hybrid": "Text hybrid",
}


def leaderboard_bars(board: pd.DataFrame, scenarios: list[str], metric: str) -> go.Figure:
    """Grouped bars: `metric` per scenario (and the mean) for each strategy."""
    columns = [s for s in scenarios if s in board.columns] + ["mean"]
    fig = go.Figure()
    for _, row in board.iterrows():
        name = row["strategy"]
        fig.add_bar(
            name=LABELS.get(name, name),
            x=["mean over scenarios" if c == "mean" else c for c in columns],
            y=[row[c] for c in columns],
            marker_color=COLOURS.get(name),
            hovertemplate=f"{LABELS.get(name, name)}<br>%{{x}}: %{{y:.4f}}<extra></extra>",
        )
    fig.update_layout(barmode="group")
    return _layout(fig, title=f"Test {metric} per scenario", x="Scenario", y=metric, legend=True)


def transfer_curves(curves: pd.DataFrame, target: str, metric: str = "ndcg@10") -> go.Figure:
    """Lift over target-only vs m (known target interactions), with CI bands per model."""
    fig = go.Figure()
    lifted = curves.dropna(subset=["lift"]) if "lift" in curves else curves.iloc[:0]
    for name, part in lifted.groupby("model", sort=False):
        part = part.sort_values("m")
        colour = COLOURS.get(name, ACCENT)
        label = LABELS.get(name, name)
        fig.add_scatter(
            x=list(part["m"]) + list(part["m"])[::-1],
            y=list(part["ci_high"]) + list(part["ci_low"])[::-1],
            fill="toself",
            mode="lines",
            fillcolor=_alpha(colour, 0.15),
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
        )
        fig.add_scatter(
            x=part["m"],
            y=part["lift"],
            mode="lines+markers",
            name=label,
            line={"color": colour, "width": 2},
            customdata=part[["ci_low", "ci_high"]].to_numpy(),
            hovertemplate=(
                f"{label}<br>m=%{{x}}: lift %{{y:+.4f}}<br>95% CI %{{customdata[0]:+.4f}} to "
                "%{customdata[1]:+.4f}<extra></extra>"
            ),
        )
    fig.add_hline(y=0, line={"color": "#888", "dash": "dot"})
    fig.update_xaxes(tickmode="array", tickvals=sorted(curves["m"].unique()))
    return _layout(
        fig,
        title=f"Lift in {metric} over a '{target}'-only model",
        x=f"Interactions already seen in '{target}' (m)",
        y=f"{metric} minus target-only",
        legend=True,
    )


def profile_similarity_hist(same: list[float], random: list[float]) -> go.Figure:
    """Distribution of same-user vs random-pair cosine of category profiles."""
    fig = go.Figure()
    fig.add_histogram(x=same, name="same user", marker_color=ACCENT, opacity=0.7, nbinsx=30)
    fig.add_histogram(x=random, name="random pairs", marker_color=SECOND, opacity=0.7, nbinsx=30)
    fig.update_layout(barmode="overlay")
    return _layout(
        fig,
        title="How alike are a user's interests in the two scenarios?",
        x="Cosine similarity of category shares",
        y="Users",
        legend=True,
    )


def _alpha(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"
