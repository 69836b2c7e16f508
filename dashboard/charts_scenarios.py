"""Chart and table builders for the Scenarios page: DataFrames in, figures/tables out.

No Streamlit calls here. Colours follow `dashboard.charts`; every figure has a title and
readable axis labels.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import ACCENT, SECOND, _layout, overlap_heatmap
from dashboard.text import md

#: one colour per model/strategy, stable across charts
COLOURS = {
    "multiscenario": ACCENT,
    "multiscenario_ple": "#6a3d9a",  # apart from pooled's orange
    "pooled": SECOND,
    "per_scenario": "#2e8b57",
    "target_only": "#2e8b57",
    "hybrid": "#8e44ad",
}
LABELS = {
    "multiscenario": "One model that knows the scenario (MMoE)",
    "multiscenario_ple": "One model that knows the scenario (PLE)",
    "pooled": "One model for everything",
    "per_scenario": "One model per scenario",
    "target_only": "Target scenario only",
    "hybrid": "Text hybrid",
}
#: the strategy names of the leaderboard table and the user view
STRATEGY_NAMES = {
    "multiscenario": "One model that knows the scenario (multiscenario, MMoE)",
    "multiscenario_ple": "One model that knows the scenario (multiscenario, PLE)",
    "pooled": "One model for everything (pooled)",
    "per_scenario": "One model per scenario",
}


def user_overlap_heatmap(matrix: pd.DataFrame) -> go.Figure:
    """Scenario x scenario count of users active in both."""
    fig = overlap_heatmap(matrix)
    fig.update_layout(title={"text": "Users active in both scenarios"})
    return fig


def item_overlap_heatmap(matrix: pd.DataFrame) -> go.Figure:
    """Scenario x scenario count of items with interactions in both."""
    fig = overlap_heatmap(matrix)
    fig.update_layout(title={"text": "Items with interactions in both scenarios"})
    fig.update_traces(
        colorbar={"title": {"text": "Items"}},
        hovertemplate="%{y} and %{x}: %{z} items<extra></extra>",
    )
    return fig


def small_scenarios_note(small: list[str], minimum: int) -> str:
    """The warning about scenarios too small for a model of their own (names escaped)."""
    verb = "has" if len(small) == 1 else "have"
    return (
        f"{', '.join(md(s) for s in small)} {verb} fewer than {minimum} "
        "interactions: too few for a model of its own, so the per-scenario strategy "
        "recommends its popular items there and its metrics are noisy."
    )


def profile_note(sim: dict) -> str:
    """One sentence on the same-user vs random-pair similarity of interest profiles."""
    source, target = md(sim["source"]), md(sim["target"])
    return (
        f"**Interest profiles.** Over {sim['n_users']:,} users active in both, the category "
        f"mix in '{source}' and '{target}' has cosine similarity "
        f"{sim['same_user_cosine']:.2f} for the same user against "
        f"{sim['random_pair_cosine']:.2f} for random pairs of users."
    )


def leaderboard_view(board: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard table with the strategies' readable names."""
    names = board["strategy"].map(STRATEGY_NAMES).fillna(board["strategy"])
    return board.assign(strategy=names)


def paired_view(paired: pd.DataFrame, baseline: str, scenarios: list[str]) -> pd.DataFrame:
    """Strategy x scenario table of the paired differences against `baseline`.

    A cell reads "+0.0123 (+0.0050 to +0.0190)": the mean per-user difference and its 95%
    confidence interval, with " *" when it is significant after Holm's correction.
    """
    rows = paired[paired["baseline"] == baseline]
    out = {}
    for _, r in rows.iterrows():
        cell = f"{r['mean_diff']:+.4f} ({r['ci_low']:+.4f} to {r['ci_high']:+.4f})"
        out.setdefault(r["strategy"], {})[r["scenario"]] = cell + (" *" if r["significant"] else "")
    order = [s for s in STRATEGY_NAMES if s in out] + [s for s in out if s not in STRATEGY_NAMES]
    table = pd.DataFrame([{"strategy": s, **out[s]} for s in order])
    columns = ["strategy"] + [s for s in scenarios if s in table.columns]
    return leaderboard_view(table.reindex(columns=columns).fillna("–"))


def transfer_view(curves: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Model x m table of `metric` (index: readable model names, columns 'm=0', …)."""
    wide = curves.pivot_table(index="model", columns="m", values=metric, sort=False)
    wide.columns = [f"m={m}" for m in wide.columns]
    wide.index = [LABELS.get(m, m) for m in wide.index]
    return wide


def recommended_titles(
    recs: pd.DataFrame, strategy: str, scenario: str, user_code: int, titles, categories=None
) -> pd.DataFrame:
    """One user's stored top list of `strategy` in `scenario`, as titles in rank order (and
    their `categories`, an array by item code, when given)."""
    mine = recs[
        (recs["strategy"] == strategy)
        & (recs["scenario"] == scenario)
        & (recs["user_code"] == int(user_code))
    ].sort_values("rank")
    codes = mine["item_code"].to_numpy()
    out = pd.DataFrame({"title": titles[codes]})
    if categories is not None:
        out["category"] = categories[codes]
    return out


def history_beside_next(seen: pd.DataFrame, top: pd.DataFrame | None) -> pd.DataFrame:
    """One table per scenario, full width (issue 16: three narrow tables side by side cut
    the category column off): row k holds the user's k-th most recent item and the k-th
    recommended one, each with its category when the data has categories."""
    left = seen.drop(columns="item_code", errors="ignore").reset_index(drop=True)
    left = left.rename(columns={"title": "Recent history", "category": "Category"})
    if top is None:
        return left
    right = top.reset_index(drop=True).rename(
        columns={"title": "Recommended next", "category": "Category of the recommendation"}
    )
    return pd.concat([left, right], axis=1).astype(object).fillna("")


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
