"""Plotly figures for the app: probabilities, rotation sweeps, accuracy curves, confusion, maps and kernels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from torch import Tensor

from .inference import RotationSweep

__all__ = ["MODEL_COLOURS", "model_colour", "probability_bars", "sweep_heatmap", "accuracy_curves", "confusion_heatmap",
           "image_grid", "digit_image"]


# One colour per shipped model (by name), the same in every chart: the Okabe-Ito palette, which stays distinct
# for colour-blind readers; ours (gcnn_best) gets the strongest one.
MODEL_COLOURS = {
    "cnn": "#999999",
    "cnn_rotaug": "#E69F00",
    "cnn_rotaug_tta": "#CC79A7",
    "gcnn_c4": "#56B4E9",
    "gcnn_best": "#D55E00",
}


def model_colour(name: str) -> str:
    """The chart colour of a model, by its shipped name (dark grey for any other model)."""
    return MODEL_COLOURS.get(name, "#444444")


def _style(fig: go.Figure, height: int) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def probability_bars(probabilities: Mapping[str, Sequence[float]]) -> go.Figure:
    """Grouped bars: each model's probability for each digit."""
    fig = go.Figure([go.Bar(name=name, x=list(range(10)), y=list(p)) for name, p in probabilities.items()])
    fig.update_layout(barmode="group", xaxis=dict(title="digit", dtick=1), yaxis=dict(title="probability",
                      range=[0, 1]), legend=dict(orientation="h", y=1.12), title="Class probabilities")
    return _style(fig, 320)


def sweep_heatmap(sweeps: Mapping[str, RotationSweep], highlight_angle: float | None = None) -> go.Figure:
    """One row per model, one cell per angle: the predicted digit, coloured by its probability."""
    names = list(sweeps)
    angles = next(iter(sweeps.values())).angles if sweeps else []
    fig = go.Figure(go.Heatmap(
        z=[sweeps[n].confidence for n in names], x=angles, y=names, zmin=0, zmax=1, colorscale="Blues",
        text=[[str(p) for p in sweeps[n].predicted] for n in names], texttemplate="%{text}",
        colorbar=dict(title="prob."), hovertemplate="%{y} at %{x}°: digit %{text} (p=%{z:.2f})<extra></extra>",
    ))
    if highlight_angle is not None:
        fig.add_vline(x=highlight_angle, line=dict(color="crimson", width=2))
    fig.update_layout(xaxis=dict(title="rotation (degrees)"), title="Predicted digit at every angle")
    return _style(fig, 110 + 45 * len(names))


def accuracy_curves(results: Mapping[str, Mapping], labels: Mapping[str, str] | None = None) -> go.Figure:
    """Accuracy against rotation angle, one line per model (``results[name]`` has ``angles`` and ``accuracy``)."""
    fig = go.Figure([
        go.Scatter(x=r["angles"], y=r["accuracy"], mode="lines+markers", name=(labels or {}).get(n, n),
                   marker=dict(size=4))
        for n, r in results.items()
    ])
    fig.update_layout(xaxis=dict(title="rotation (degrees)", dtick=45), yaxis=dict(title="accuracy", range=[0, 1.02]),
                      legend=dict(orientation="h", y=1.12), title="Test accuracy against rotation angle")
    return _style(fig, 380)


def confusion_heatmap(matrix: Sequence[Sequence[int]], title: str) -> go.Figure:
    """Confusion matrix, rows the true digit, columns the predicted one, normalised per row."""
    counts = np.asarray(matrix, dtype=float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = px.imshow(share, x=list(map(str, range(10))), y=list(map(str, range(10))), zmin=0, zmax=1,
                    color_continuous_scale="Blues", text_auto=".2f", labels=dict(x="predicted", y="true",
                                                                                color="share"))
    fig.update_layout(title=title)
    return _style(fig, 430)


def image_grid(images: Tensor, column_titles: Sequence[str], row_titles: Sequence[str] | None = None,
               title: str = "", symmetric: bool = False) -> go.Figure:
    """A grid of greyscale images ``[rows, columns, H, W]`` sharing one colour scale.

    ``symmetric`` centres a diverging colour scale on zero (for kernels).
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
    fig.update_layout(coloraxis=dict(colorscale="RdBu_r" if symmetric else "gray", showscale=False,
                                     cmin=-limit if symmetric else float(values.min()), cmax=limit),
                      title=title)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed")
    fig.update_annotations(font_size=11)
    for index in range(1, rows * columns + 1):  # square pixels in every cell
        suffix = "" if index == 1 else str(index)
        fig.layout[f"yaxis{suffix}"].update(scaleanchor=f"x{suffix}", constrain="domain")
        fig.layout[f"xaxis{suffix}"].update(constrain="domain")
    return _style(fig, 60 + 90 * rows)


def digit_image(image: Tensor, title: str = "") -> go.Figure:
    """A single 28x28 image ``[1, H, W]`` as the networks see it."""
    fig = px.imshow(image[0].numpy(), color_continuous_scale="gray", zmin=0, zmax=1)
    fig.update_layout(coloraxis_showscale=False, title=title)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return _style(fig, 260)
