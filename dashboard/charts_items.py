"""Chart builders of the Items page: DataFrame in, Plotly figure out, no Streamlit calls.

Every point carries its item code in `customdata[0]`, so a click on the map (Streamlit's
`on_select`) says which item was picked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from dashboard.text import plot, plot_column

COLOR_BY = {
    "category": "Category",
    "popularity": "Popularity (interactions)",
    "scenario": "Main scenario",
}
MAP_HEIGHT = 560
GL_ABOVE = 5_000  # WebGL markers beyond this many points (SVG slows down)
_HOVER = "<b>%{hovertext}</b><br>%{customdata[1]}<br>%{customdata[2]:,} interactions<extra></extra>"


def embedding_map(
    table: pd.DataFrame,
    color_by: str = "category",
    *,
    selected: int | None = None,
    neighbors: list[int] | None = None,
    title: str = "Item embeddings in 2-D",
) -> go.Figure:
    """Scatter of the map table (x, y, item_code, title, category, popularity, scenario).

    Points are coloured by `color_by`; the `selected` item is a star and its `neighbors`
    are ringed. Hover shows the title, category and popularity.
    """
    if color_by not in COLOR_BY:
        raise ValueError(f"color_by must be one of {', '.join(COLOR_BY)}; got {color_by!r}")
    scatter = go.Scattergl if len(table) > GL_ABOVE else go.Scatter
    fig = go.Figure()
    if color_by == "popularity":
        pop = table["popularity"].to_numpy()
        fig.add_trace(
            scatter(
                **_points(table),
                name="items",
                marker={
                    "size": 6,
                    "color": np.log10(pop + 1),
                    "colorscale": "Viridis",
                    "colorbar": {
                        "title": {"text": "interactions"},
                        "tickvals": [0, 1, 2, 3, 4, 5],
                        "ticktext": ["0", "10", "100", "1k", "10k", "100k"],
                    },
                    "opacity": 0.8,
                },
            )
        )
    else:
        palette = px.colors.qualitative.Plotly + px.colors.qualitative.Safe
        groups = sorted(table[color_by].astype(str).unique())
        for i, group in enumerate(groups):
            part = table[table[color_by].astype(str) == group]
            fig.add_trace(
                scatter(
                    **_points(part),
                    name=plot(group),
                    marker={"size": 6, "color": palette[i % len(palette)], "opacity": 0.8},
                )
            )
    by_code = table.set_index("item_code", drop=False)
    if neighbors:
        near = by_code.loc[[c for c in neighbors if c in by_code.index]]
        fig.add_trace(
            go.Scatter(
                **_points(near),
                name="neighbours",
                marker={
                    "size": 12,
                    "color": "rgba(0,0,0,0)",
                    "line": {"width": 2, "color": "#111"},
                },
            )
        )
    if selected is not None and selected in by_code.index:
        fig.add_trace(
            go.Scatter(
                **_points(by_code.loc[[selected]]),
                name="selected item",
                marker={
                    "size": 18,
                    "symbol": "star",
                    "color": "#ffd400",
                    "line": {"width": 1.5, "color": "#111"},
                },
            )  # fmt: skip
        )
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left"},
        template="plotly_white",
        height=MAP_HEIGHT,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend={"title": {"text": _legend_title(table, color_by)}, "itemsizing": "constant"},
        dragmode="pan",
        clickmode="event+select",
    )
    # the axes of a projection carry no unit: hide their numbers, keep a readable hint
    fig.update_xaxes(showticklabels=False, title_text="map axis 1 (similar items lie close)")
    fig.update_yaxes(showticklabels=False, title_text="map axis 2")
    return fig


def neighbor_scores(frame: pd.DataFrame, title: str) -> go.Figure:
    """Horizontal bars of neighbour similarity scores (rank 1 on top)."""
    labels = [f"{r}. {plot(t)}" for r, t in zip(frame["rank"], frame["title"], strict=True)]
    fig = go.Figure(
        go.Bar(
            x=frame["score"],
            y=labels,
            orientation="h",
            marker={"color": "#3366cc"},
            hovertemplate="%{y}<br>score %{x:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left"},
        template="plotly_white",
        height=max(240, 28 * len(frame) + 80),
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        showlegend=False,
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text="similarity score")
    return fig


def _legend_title(table: pd.DataFrame, color_by: str) -> str:
    """'First genre' when items have several genres (each point takes one colour)."""
    if color_by == "category" and "genres" in table.columns:
        return "First genre"
    return COLOR_BY[color_by]


def _points(part: pd.DataFrame) -> dict:
    """x, y, hover and customdata (item_code, category, popularity) of a slice of the map."""
    return {
        "x": part["x"],
        "y": part["y"],
        "mode": "markers",
        "hovertext": plot_column(part["title"].astype(str)),
        "customdata": list(
            zip(
                part["item_code"].astype(int).tolist(),
                plot_column(part["category"].astype(str)).tolist(),
                part["popularity"].astype(int).tolist(),
                strict=True,
            )
        ),
        "hovertemplate": _HOVER,
    }
