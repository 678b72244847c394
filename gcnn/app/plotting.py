"""Plotly figures for the app: probabilities, rotation sweeps, accuracy curves, confusion, maps and kernels.

Every legend sits below its plot (on a phone a legend inside the plot covers the data), every figure that shows
models colours each one by :func:`model_colour`, and charts are sized to stay readable at 390 px.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from torch import Tensor

from ..shipped import SHIPPED

__all__ = ["MODEL_COLOURS", "model_colour", "accuracy_curves", "confusion_heatmap",
           "image_grid", "ring_figure", "ring_animation", "colour_bar", "equivariance_curve",
           "vector_heatmap"]


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
                    group_angles: Mapping[str, Sequence[float]] | None = None) -> go.Figure:
    """Accuracy against rotation angle, one line per model (``results[name]`` has ``angles`` and ``accuracy``).

    ``group_angles[name]``: the angles of that model's group rotations (multiples of 360/N degrees), marked as a
    row of ticks in the model's colour along the top of the plot, so dips between them explain themselves.
    """
    labels = labels or {}
    fig = go.Figure()
    for name, r in results.items():
        label = labels.get(name, name)
        fig.add_trace(go.Scatter(x=r["angles"], y=r["accuracy"], mode="lines+markers", name=label,
                                 line=dict(color=model_colour(name), width=_model_width(name)), marker=dict(size=4),
                                 hovertemplate=f"{label}<br>%{{x}}°: %{{y:.1%}}<extra></extra>"))
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


# Feature maps: a diverging scale with white at zero, so maps (>= 0 after ReLU) and differences share one bar.
DIVERGING = "RdBu_r"
_FRAME = "#b8b8b8"
_TRACKED = "#111111"


@dataclass(frozen=True)
class _RingGeometry:
    """Where each thumbnail of a ring figure goes, in paper coordinates ``[0, 1]`` (y up)."""

    centres: np.ndarray  # [|G|, 2]
    size: float  # a thumbnail's side
    centre_size: float  # the side of the image in the middle of the ring
    label_positions: np.ndarray  # [|G|, 2], next to each thumbnail

    @classmethod
    def of(cls, positions: Tensor) -> _RingGeometry:
        xy = positions.double().numpy()
        radii = np.round(np.hypot(xy[:, 0], xy[:, 1]), 6)
        rings = {float(r): int((radii == r).sum()) for r in np.unique(radii)}
        size = min(0.68, *(0.78 * 2 * np.pi * r / n for r, n in rings.items() if r > 0))
        concentric = len(rings) > 1
        if concentric:  # leave a gap between the rings
            size = min(size, 0.8 * (max(rings) - min(rings)))
        inner = min(rings)
        # Labels go just inside a single ring, but outside the outer one when an inner ring takes that place.
        label_gap = 0.16 if concentric else 0.0
        extent = max(rings) + size / 2 + 0.02 + label_gap
        direction = xy / np.maximum(np.hypot(xy[:, :1], xy[:, 1:]), 1e-9)
        # past the square's edge in that direction (its half-diagonal at 45 degrees), and a little more
        reach = size / 2 * np.abs(direction).sum(axis=1, keepdims=True) + 0.08
        shift = reach if concentric else -reach
        margin = 0.06 if concentric else 0.22  # room for the labels inside a single ring
        return cls(centres=(xy + extent) / (2 * extent), size=size / (2 * extent),
                   centre_size=min(0.9, (inner - size / 2 - margin) * np.sqrt(2)) / (2 * extent),
                   label_positions=(xy + direction * shift + extent) / (2 * extent))


def _ring_traces(maps: Tensor, centre: Tensor | None, hover: Sequence[str]) -> list[go.Heatmap]:
    """One heatmap per group element on axes 1..|G|, then the centre image (if any) on axes |G|+1."""
    values = maps.detach().float().cpu().numpy()
    traces = [go.Heatmap(z=values[g], coloraxis="coloraxis", xaxis=_axis("x", g), yaxis=_axis("y", g),
                         hovertemplate=f"{hover[g]}<br>value %{{z:.3f}}<extra></extra>")
              for g in range(len(values))]
    if centre is not None:
        traces.append(go.Heatmap(z=centre.detach().float().cpu().numpy(), coloraxis="coloraxis2",
                                 xaxis=_axis("x", len(values)), yaxis=_axis("y", len(values)),
                                 hovertemplate="input pixel %{z:.2f}<extra></extra>"))
    return traces


def _axis(kind: str, index: int) -> str:
    return kind if index == 0 else f"{kind}{index + 1}"


def _frame_shapes(geometry: _RingGeometry, tracked: int | None) -> list[dict]:
    """A thin frame around every thumbnail (white maps stay visible on a white page), a thick one around
    ``tracked``."""
    half = geometry.size / 2
    shapes = []
    for g, (x, y) in enumerate(geometry.centres):
        strong = g == tracked
        shapes.append(dict(type="rect", xref="paper", yref="paper", x0=x - half, x1=x + half, y0=y - half,
                           y1=y + half, line=dict(color=_TRACKED if strong else _FRAME, width=3 if strong else 1),
                           layer="above"))
    return shapes


def _ring_layout(fig: go.Figure, geometry: _RingGeometry, shape: tuple[int, int], centre_shape: tuple[int, int] | None,
                 limit: float, labels: Sequence[str], centre_text: str, title: str, size: int) -> None:
    half = geometry.size / 2
    axes = {}
    boxes = [(x - half, x + half, y - half, y + half, shape) for x, y in geometry.centres]
    if centre_shape is not None:
        c = geometry.centre_size / 2
        boxes.append((0.5 - c, 0.5 + c, 0.5 - c, 0.5 + c, centre_shape))
    for index, (x0, x1, y0, y1, (height, width)) in enumerate(boxes):
        suffix = "" if index == 0 else str(index + 1)
        axes[f"xaxis{suffix}"] = dict(domain=[x0, x1], range=[-0.5, width - 0.5], visible=False, fixedrange=True,
                                      anchor=_axis("y", index))
        axes[f"yaxis{suffix}"] = dict(domain=[y0, y1], range=[height - 0.5, -0.5], visible=False, fixedrange=True,
                                      anchor=_axis("x", index))
    annotations = [dict(x=x, y=y, xref="paper", yref="paper", text=text, showarrow=False, font=dict(size=10),
                        opacity=0.75)
                   for (x, y), text in zip(geometry.label_positions, labels, strict=False) if text]
    if centre_text:
        annotations.append(dict(x=0.5, y=0.5, xref="paper", yref="paper", text=centre_text, showarrow=False,
                                font=dict(size=13)))
    top = 34 if title else 4
    fig.update_layout(
        **axes, annotations=annotations, width=size, height=size - 8 + top, autosize=False,
        margin=dict(l=4, r=4, t=top, b=4), title=dict(text=title, x=0, xanchor="left", font=dict(size=14)),
        coloraxis=dict(colorscale=DIVERGING, cmin=-limit, cmax=limit, showscale=False),
        coloraxis2=dict(colorscale="gray", cmin=0, cmax=1, showscale=False),
        plot_bgcolor="white", paper_bgcolor="rgba(0,0,0,0)",
    )


def ring_figure(maps: Tensor, positions: Tensor, *, limit: float, hover: Sequence[str], title: str = "",
                labels: Sequence[str] = (), centre: Tensor | None = None, centre_text: str = "",
                tracked: int | None = None, size: int = 340) -> go.Figure:
    """One channel's group feature map ``maps [|G|, H, W]`` as a ring of thumbnails at ``positions [|G|, 2]``.

    Colours run from ``-limit`` (blue) through white (zero) to ``limit`` (red), the same in every ring of a
    page (:func:`colour_bar` draws the bar once).  ``centre [H', W']`` (an image in [0, 1]) or ``centre_text``
    fills the middle; ``tracked`` gets a thick frame, so a reader can follow one map around the ring.
    ``size`` is the width in pixels (the figure stays square, so it is drawn at that width).
    """
    geometry = _RingGeometry.of(positions)
    fig = go.Figure(_ring_traces(maps, centre, hover))
    centre_shape = None if centre is None else tuple(centre.shape[-2:])
    _ring_layout(fig, geometry, tuple(maps.shape[-2:]), centre_shape, limit, labels, centre_text, title, size)
    fig.update_layout(shapes=_frame_shapes(geometry, tracked))
    return fig


def ring_animation(frames: Sequence[Tensor], centres: Sequence[Tensor], positions: Tensor, *, limit: float,
                   frame_names: Sequence[str], tracked: Sequence[int], hover: Sequence[str], title: str = "",
                   labels: Sequence[str] = (), size: int = 340) -> go.Figure:
    """A ring (:func:`ring_figure`) that steps through ``frames`` (one ``[|G|, H, W]`` per step, with its centre
    image and tracked thumbnail): Plotly frames with a play button and a slider named by ``frame_names``."""
    geometry = _RingGeometry.of(positions)
    fig = go.Figure(_ring_traces(frames[0], centres[0], hover))
    _ring_layout(fig, geometry, tuple(frames[0].shape[-2:]), tuple(centres[0].shape[-2:]), limit, labels, "", title,
                 size)
    fig.update_layout(shapes=_frame_shapes(geometry, tracked[0]))
    fig.frames = [go.Frame(name=name, data=_ring_traces(maps, centre, hover),
                           layout=dict(shapes=_frame_shapes(geometry, g)))
                  for name, maps, centre, g in zip(frame_names, frames, centres, tracked, strict=True)]
    step = dict(frame=dict(duration=900, redraw=True), transition=dict(duration=0), mode="immediate")
    # Buttons on their own row under the ring, the slider (with the current element above it) under them.
    fig.update_layout(
        height=fig.layout.height + 120, margin=dict(b=124),
        updatemenus=[dict(type="buttons", direction="left", x=0, y=0, xanchor="left", yanchor="top",
                          pad=dict(t=6), buttons=[
                              dict(label="▶ play", method="animate", args=[None, {**step, "fromcurrent": True}]),
                              dict(label="❚❚ pause", method="animate", args=[[None], {**step, "mode": "immediate"}]),
                          ])],
        sliders=[dict(x=0, len=1, y=-0.1, yanchor="top", pad=dict(t=24, b=0),
                      currentvalue=dict(prefix="input transformed by ", font=dict(size=12)),
                      steps=[dict(label=name, method="animate", args=[[name], step]) for name in frame_names])],
    )
    return fig


def colour_bar(limit: float, title: str) -> go.Figure:
    """The one colour bar shared by a page's rings: ``-limit`` .. ``limit``, white at zero."""
    fig = go.Figure(go.Scatter(x=[None], y=[None], mode="markers", hoverinfo="skip", showlegend=False,
                               marker=dict(color=[-limit, limit], colorscale=DIVERGING, cmin=-limit, cmax=limit,
                                           showscale=True, colorbar=dict(
                                               orientation="h", title=dict(text=title, side="top"), thickness=12,
                                               x=0, xanchor="left", len=1, y=0.5, yanchor="middle",
                                               tickformat=".2~g"))))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=80, margin=dict(l=10, r=10, t=0, b=0), plot_bgcolor="rgba(0,0,0,0)")
    return fig


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
