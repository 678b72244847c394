"""The Draw page's figures built from a precomputed rotation sweep: a full turn that plays in the browser, and the
sweep as a table of predicted digits that stays readable on a phone.

:func:`turn_animation` holds every frame of the turn (the rotated digit and
every model's answer at each swept angle), so its slider and play button run
in the browser without asking the server for anything.  The figures are plain
dicts (Plotly's figure JSON): validating 72 frames through ``plotly.graph_objects``
would cost more than the page's whole rerun budget.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import torch
from PIL import Image
from torch import Tensor

from ..data import rotate
from .inference import RotationSweep
from .plotting import model_colour

__all__ = ["turn_animation", "sweep_table", "digit_figure", "wrap_label"]

FRAME_MS = 70  # one 5-degree step per frame: a full turn in about 5 s


def wrap_label(label: str, width: int = 12) -> str:
    """``label`` broken into lines of about ``width`` characters with ``<br>`` (Plotly's line break)."""
    lines: list[str] = []
    for word in label.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "<br>".join(lines)


def _digit_trace(pixels: Tensor) -> dict:
    """A digit ``[H, W]`` (uint8, white on black, as the networks see it) as an image trace on axes x / y.

    The pixels travel as a PNG data URL: about 0.4 KB a digit instead of 2.7 KB of JSON numbers, which is most of
    what every session downloads for the 72 frames of a turn.
    """
    png = io.BytesIO()
    Image.fromarray(pixels.numpy()).save(png, format="PNG", optimize=True)  # uint8 [H, W]: greyscale
    return {"type": "image", "source": "data:image/png;base64," + base64.b64encode(png.getvalue()).decode("ascii"),
            "hoverinfo": "skip", "xaxis": "x", "yaxis": "y"}


_DIGIT_AXIS = {"showticklabels": False, "showgrid": False, "zeroline": False, "ticks": "", "showline": False}


def _pixels(images: Tensor) -> Tensor:
    """``images [..., H, W]`` in [0, 1] as 0-255 integers (uint8)."""
    return (images * 255).round().clamp(0, 255).to(torch.uint8)


def digit_figure(image: Tensor, title: str = "") -> dict:
    """One digit ``[1, 28, 28]`` as a small Plotly figure (dict): cheap enough to rebuild on every slider step."""
    return {"data": [_digit_trace(_pixels(image[0]))],
            "layout": {"height": 260, "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
                       "title": {"text": title, "font": {"size": 14}},
                       "xaxis": {**_DIGIT_AXIS, "scaleanchor": "y", "constrain": "domain"},
                       "yaxis": {**_DIGIT_AXIS, "autorange": "reversed", "constrain": "domain"}}}


def turn_animation(image: Tensor, sweeps: Mapping[str, RotationSweep], labels: Mapping[str, str],
                   start_angle: float = 0) -> dict:
    """A Plotly figure (dict): the digit turned by each swept angle above every model's answer, one frame per angle.

    ``image [1, 28, 28]``; ``sweeps[name]`` share their angles; ``labels[name]``
    is the model's display name.  Frame ``i`` is named after ``angles[i]`` and
    holds the digit turned by that angle (0-255) and, per model, the predicted
    digit's probability as a bar with the digit as its text.  The figure opens
    on ``start_angle``.
    """
    names = list(sweeps)
    angles = sweeps[names[0]].angles
    turned = rotate(image[None].expand(len(angles), -1, -1, -1).contiguous(), torch.tensor(angles, dtype=torch.float))
    pixels = _pixels(turned[:, 0])
    y = [wrap_label(labels[name], 16) for name in names]  # short lines leave the digit its width on a phone

    def traces(index: int) -> list[dict]:
        predicted = [sweeps[name].predicted[index] for name in names]
        confidence = [sweeps[name].confidence[index] for name in names]
        return [
            _digit_trace(pixels[index]),
            {"type": "bar", "orientation": "h", "y": y, "x": [round(c, 4) for c in confidence],
             "text": [f"{d}  ({c:.0%})" for d, c in zip(predicted, confidence, strict=True)],
             "textposition": "outside", "cliponaxis": False, "marker": {"color": [model_colour(n) for n in names]},
             "hovertemplate": "%{y}: %{text}<extra></extra>", "xaxis": "x2", "yaxis": "y2"},
        ]

    start = min(range(len(angles)), key=lambda i: abs((angles[i] - start_angle + 180) % 360 - 180))
    step_args = {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}
    play_args = {"mode": "immediate", "fromcurrent": True, "frame": {"duration": FRAME_MS, "redraw": True},
                 "transition": {"duration": 0}}
    return {
        "data": traces(start),
        "frames": [{"name": f"{a:g}", "data": traces(i), "traces": [0, 1]} for i, a in enumerate(angles)],
        "layout": {
            "height": 620, "margin": {"l": 10, "r": 40, "t": 30, "b": 10}, "showlegend": False,
            "title": {"text": "Play a full turn: the digit and every model's answer", "font": {"size": 14}},
            # The digit on top, the answers below: the figure reads the same at 390 px as on a desktop.
            "xaxis": {**_DIGIT_AXIS, "domain": [0.0, 1.0], "scaleanchor": "y", "constrain": "domain"},
            "yaxis": {**_DIGIT_AXIS, "domain": [0.64, 1.0], "autorange": "reversed", "constrain": "domain"},
            "xaxis2": {"domain": [0.0, 1.0], "range": [0, 1.15], "tickformat": ".0%", "anchor": "y2",
                       "title": {"text": "probability of the answer"}},
            "yaxis2": {"domain": [0.34, 0.6], "autorange": "reversed", "automargin": True, "anchor": "x2"},
            "updatemenus": [{
                "type": "buttons", "direction": "left", "x": 0, "y": 0.2, "xanchor": "left", "yanchor": "top",
                "showactive": False,
                "buttons": [{"label": "▶ Play", "method": "animate", "args": [None, play_args]},
                            {"label": "❚❚ Pause", "method": "animate", "args": [[None], step_args]}],
            }],
            "sliders": [{
                "active": start, "x": 0, "len": 1, "y": 0.12, "yanchor": "top", "pad": {"t": 10},
                "currentvalue": {"prefix": "Turned by ", "suffix": "°"},
                "steps": [{"label": f"{a:g}", "method": "animate", "args": [[f"{a:g}"], step_args]}
                          for a in angles],
            }],
        },
    }


def sweep_table(sweeps: Mapping[str, RotationSweep], labels: Mapping[str, str], angles: Sequence[float]) -> dict:
    """The predicted digit of each model (columns) at each of ``angles`` (rows), coloured by its probability.

    Angles as rows and a few of them (e.g. every 15 degrees) keep the cells
    large enough to read on a phone; every angle in ``angles`` must be swept.
    """
    names = list(sweeps)
    rows = {name: [sweeps[name].index(a) for a in angles] for name in names}
    confidence = [[sweeps[n].confidence[rows[n][i]] for n in names] for i in range(len(angles))]
    digits = [[str(sweeps[n].predicted[rows[n][i]]) for n in names] for i in range(len(angles))]
    return {
        "data": [{
            "type": "heatmap", "z": [[round(c, 3) for c in row] for row in confidence], "text": digits,
            "texttemplate": "%{text}", "x": [wrap_label(labels[n]) for n in names], "y": list(angles),
            "zmin": 0, "zmax": 1, "colorscale": "Blues", "xgap": 1, "ygap": 1,
            "colorbar": {"title": {"text": "prob."}, "thickness": 10},
            "hovertemplate": "%{x} at %{y}°: digit %{text} (p=%{z:.2f})<extra></extra>",
        }],
        "layout": {
            # No title: the page's caption says what it is, and a title would collide with the column labels.
            "height": 110 + 20 * len(angles), "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
            "xaxis": {"side": "top", "tickangle": 0, "automargin": True},
            "yaxis": {"autorange": "reversed", "tickvals": list(angles), "ticktext": [f"{a:g}°" for a in angles],
                      "title": {"text": "turned by"}, "automargin": True},
        },
    }
