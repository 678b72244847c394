"""Plotly figures for the app: probabilities, rotation sweeps, accuracy curves, confusion, maps and kernels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
from torch import Tensor

from .inference import RotationSweep

__all__ = ["probability_bars", "sweep_heatmap", "accuracy_curves", "confusion_heatmap", "image_grid", "digit_image",
           "REFERENCE_ROTATED"]

# Accuracy on randomly rotated MNIST reported by the reference tutorial.
REFERENCE_ROTATED = {"cnn": 0.448, "gcnn_c4": 0.855}


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
    """A grid of greyscale images ``[rows, columns, H, W]`` sharing one colour scale."""
    rows, columns = images.shape[:2]
    values = images.detach().float().cpu().numpy()
    limit = float(np.abs(values).max()) or 1.0
    fig = px.imshow(values.reshape(rows * columns, *values.shape[2:]), facet_col=0, facet_col_wrap=columns,
                    facet_row_spacing=0.02, facet_col_spacing=0.01, binary_string=False,
                    color_continuous_scale="RdBu_r" if symmetric else "gray",
                    zmin=-limit if symmetric else float(values.min()), zmax=limit)
    fig.for_each_annotation(lambda a: a.update(text=""))
    for index, text in enumerate(column_titles):
        fig.layout.annotations[index].update(text=text)  # annotations follow facet order: top row first
    if row_titles:
        fig.update_yaxes(showticklabels=False)
        for row, text in enumerate(row_titles):
            fig.update_yaxes(title_text=text, row=rows - row, col=1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(title=title, coloraxis_showscale=False)
    return _style(fig, 60 + 90 * rows)


def digit_image(image: Tensor, title: str = "") -> go.Figure:
    """A single 28x28 image ``[1, H, W]`` as the networks see it."""
    fig = px.imshow(image[0].numpy(), color_continuous_scale="gray", zmin=0, zmax=1)
    fig.update_layout(coloraxis_showscale=False, title=title)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return _style(fig, 260)
