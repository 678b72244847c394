"""Plotly figures for the app: accuracy curves, confusion, kernels, the equivariance error and pooled vectors.

Every legend sits below its plot (on a phone a legend inside the plot covers the data), every figure that shows
models colours each one by :func:`model_colour`, and charts are sized to stay readable at 390 px.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from torch import Tensor

from ..shipped import SHIPPED

__all__ = ["MODEL_COLOURS", "model_colour", "accuracy_curves", "confusion_heatmap", "image_grid",
           "equivariance_curve", "vector_heatmap"]


# One colour per shipped model (by name), the same in every chart: the Okabe-Ito palette, which stays distinct
# for colour-blind readers; ours (gcnn_best) gets the strongest one.
MODEL_COLOURS = {
    "cnn": "#999999",
    "cnn_rotaug": "#E69F00",
    "cnn_rotaug_tta": "#CC79A7",
    "gcnn_c4": "#56B4E9",
    "gcnn_best": "#D55E00",
}


_LABEL_TO_NAME = {label: name for name, label in SHIPPED.items()}


def model_colour(name: str) -> str:
    """The chart colour of a model, by its shipped name or its label (dark grey for any other model)."""
    return MODEL_COLOURS.get(_LABEL_TO_NAME.get(name, name), "#444444")


def _model_width(name: str) -> float:
    """Line width: ours drawn strongest."""
    return 3.5 if _LABEL_TO_NAME.get(name, name) == "gcnn_best" else 2.0


# A horizontal legend under the plot area (negative y is below it; Plotly grows the bottom margin to fit).
_LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0, title_text="")


def _style(fig: go.Figure, height: int) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), title_x=0, title_xanchor="left")
    return fig


def accuracy_curves(results: Mapping[str, Mapping], labels: Mapping[str, str] | None = None,
                    group_angles: Mapping[str, Sequence[float]] | None = None,
                    emphasis: Sequence[str] = ()) -> go.Figure:
    """Accuracy against rotation angle, one line per model (``results[name]`` has ``angles`` and ``accuracy``).

    ``group_angles[name]``: the angles of that model's group rotations (multiples of 360/N degrees), marked as a
    row of ticks in the model's colour along the top of the plot, so dips between them explain themselves.
    ``emphasis``: the models to read at a glance; the others are drawn faint and left out of the legend.
    """
    labels = labels or {}
    fig = go.Figure()
    for name, r in results.items():
        label = labels.get(name, name)
        faint = bool(emphasis) and name not in emphasis
        fig.add_trace(go.Scatter(x=r["angles"], y=r["accuracy"], mode="lines" if faint else "lines+markers",
                                 name=label, showlegend=not faint, opacity=0.3 if faint else 1,
                                 line=dict(color=model_colour(name), width=1.2 if faint else _model_width(name)),
                                 marker=dict(size=4), hovertemplate=f"{label}<br>%{{x}}°: %{{y:.1%}}<extra></extra>"))
    for row, (name, angles) in enumerate((group_angles or {}).items()):
        label = labels.get(name, name)
        fig.add_trace(go.Scatter(
            x=list(angles), y=[1.0 + 0.035 * (row + 1)] * len(angles), mode="markers", showlegend=True,
            name=f"{label}: its {len(angles)} rotations", cliponaxis=False,
            marker=dict(symbol="triangle-down", size=9, color=model_colour(name)),
            hovertemplate=f"{label}: a group rotation, %{{x:g}}°<extra></extra>"))
    top = 1.0 + 0.035 * (len(group_angles or {}) + 1)
    fig.update_layout(xaxis=dict(title="rotation (degrees)", dtick=45, range=[-5, 360]),
                      yaxis=dict(title="accuracy", range=[0, top], tickformat=".0%", tickvals=[0, .25, .5, .75, 1]),
                      legend=_LEGEND_BELOW, title="Test accuracy against rotation angle")
    return _style(fig, 440)


def confusion_heatmap(matrix: Sequence[Sequence[int]], title: str) -> go.Figure:
    """Confusion matrix, rows the true digit, columns the predicted one, normalised per row."""
    counts = np.asarray(matrix, dtype=float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    digits = list(range(len(share)))
    # Whole percents, and nothing for (near) empty cells, so the numbers stay legible on a phone.
    text = [[f"{value:.0%}" if value >= 0.005 else "" for value in row] for row in share]
    fig = go.Figure(go.Heatmap(
        z=share, x=digits, y=digits, zmin=0, zmax=1, colorscale="Blues", text=text, texttemplate="%{text}",
        # the colour bar lies under the matrix, so on a phone the matrix gets the whole width
        textfont=dict(size=10), colorbar=dict(title=dict(text="share of the row", side="top"), tickformat=".0%",
                                              thickness=10, orientation="h", y=-0.2, yanchor="top", len=0.7),
        hovertemplate="true %{y}, predicted %{x}: %{z:.1%}<br>(%{customdata:,.0f} images)<extra></extra>",
        customdata=counts, xgap=1, ygap=1,
    ))
    fig.update_layout(title=title, xaxis=dict(title="predicted digit", tickmode="array", tickvals=digits,
                                              side="bottom", constrain="domain"),
                      yaxis=dict(title="true digit", tickmode="array", tickvals=digits, autorange="reversed",
                                 scaleanchor="x", constrain="domain"))
    return _style(fig, 520)


def image_grid(images: Tensor, column_titles: Sequence[str], row_titles: Sequence[str] | None = None,
               title: str = "", symmetric: bool = False, show_scale: bool = False) -> go.Figure:
    """A grid of greyscale images ``[rows, columns, H, W]`` sharing one colour scale.

    ``symmetric`` centres a diverging colour scale on zero (for kernels); ``show_scale`` draws its colour bar.
    """
    rows, columns = images.shape[:2]
    values = images.detach().float().cpu().numpy()
    limit = float(np.abs(values).max()) or 1.0
    fig = make_subplots(rows=rows, cols=columns, column_titles=list(column_titles),
                        row_titles=list(row_titles) if row_titles else None,
                        horizontal_spacing=0.01, vertical_spacing=0.02)
    for row in range(rows):
        for column in range(columns):
            cell = go.Heatmap(z=values[row, column], coloraxis="coloraxis", hovertemplate="%{z:.3f}<extra></extra>")
            fig.add_trace(cell, row=row + 1, col=column + 1)
    fig.update_layout(coloraxis=dict(colorscale="RdBu_r" if symmetric else "gray", showscale=show_scale,
                                     cmin=-limit if symmetric else float(values.min()), cmax=limit,
                                     colorbar=dict(thickness=12, len=0.9)),
                      title=title)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, ticks="")
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, ticks="", autorange="reversed")
    fig.update_annotations(font_size=11)
    for index in range(1, rows * columns + 1):  # square pixels in every cell
        suffix = "" if index == 1 else str(index)
        fig.layout[f"yaxis{suffix}"].update(scaleanchor=f"x{suffix}", constrain="domain")
        fig.layout[f"xaxis{suffix}"].update(constrain="domain")
    return _style(fig, 60 + 90 * rows)


def equivariance_curve(angles: Sequence[float], differences: Mapping[str, Sequence[float]],
                       group_angles: Sequence[float], title: str, rounding: float) -> go.Figure:
    """The largest difference ``f(g x)`` vs ``g . f(x)`` (fraction of the maps' range) against the input's turn,
    one line per layer, log scale; the group's own angles marked; values below ``rounding`` shaded as float
    rounding (zero, at 0 degrees, is drawn on the floor of the axis)."""
    floor = rounding / 100
    fig = go.Figure()
    fig.add_hrect(y0=floor, y1=rounding, fillcolor="#2ca02c", opacity=0.12, line_width=0)
    # (an annotation's y on a log axis is the exponent, unlike a shape's)
    fig.add_annotation(x=1, xref="paper", xanchor="right", y=np.log10(rounding), yanchor="top", showarrow=False,
                       text="float rounding: equal", font=dict(size=11, color="#2c7c2c"))
    shades = px.colors.sample_colorscale("Viridis", np.linspace(0, 0.85, max(len(differences), 2)))
    exact = set(np.round(np.asarray(group_angles, dtype=float), 6))
    for colour, (layer, values) in zip(shades, differences.items(), strict=False):
        shown = np.maximum(np.asarray(values, dtype=float), floor)
        symbols = ["diamond" if round(float(a), 6) in exact else "circle" for a in angles]
        sizes = [10 if round(float(a), 6) in exact else 4 for a in angles]
        fig.add_trace(go.Scatter(x=list(angles), y=shown, mode="lines+markers", name=layer,
                                 line=dict(color=colour, width=1.5), marker=dict(symbol=symbols, size=sizes),
                                 hovertemplate=f"{layer}<br>%{{x:g}}°: %{{y:.1e}}<extra></extra>"))
    fig.update_layout(title=title, legend=_LEGEND_BELOW,
                      xaxis=dict(title="input turned by (degrees)", dtick=45, range=[-5, 360]),
                      yaxis=dict(title="largest difference / range", type="log", exponentformat="power",
                                 range=[np.log10(floor), 0.3]))
    return _style(fig, 400)


def vector_heatmap(rows: Tensor, row_labels: Sequence[str], title: str) -> go.Figure:
    """Vectors ``rows [R, C]`` as coloured rows with a colour bar (viridis: the largest value is yellow,
    never white)."""
    values = rows.detach().float().cpu().numpy()
    fig = go.Figure(go.Heatmap(z=values, y=list(row_labels), x=list(range(values.shape[1])), colorscale="Viridis",
                               colorbar=dict(thickness=12), xgap=1, ygap=2,
                               hovertemplate="%{y}, channel %{x}: %{z:.3f}<extra></extra>"))
    fig.update_layout(title=title, xaxis=dict(title="channel", dtick=max(1, values.shape[1] // 8)),
                      yaxis=dict(autorange="reversed"))
    return _style(fig, 120 + 45 * len(values))
