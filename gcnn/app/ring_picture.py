"""One channel's group feature map drawn as a ring of small maps, as a PNG with its labels in it.

A regular feature map has one ``[H, W]`` map per group element.  The picture
puts each at its element's angle around a circle (the identity at the top,
counter-clockwise, mirrored elements on an inner ring: :func:`gcnn.app.feature_maps.ring_layout`),
so that turning the input reads as a turn of the ring.  Maps are coloured
blue (negative), white (zero), red (positive) on one scale shared by a
figure's rings; the input digit, or a short text, can sit in the middle.

Drawn here with Pillow rather than as Plotly figures: a figure of four rings
was 4 x (|G| + 1) heatmaps for the browser to lay out (seconds on a shared
2-core machine), a picture is one image of a few kilobytes that scales with
its column, on a phone too.  Its labels are placed here, in pixels, where
:class:`RingLayout` can check that none overlaps a map or another label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from plotly.colors import sample_colorscale, unlabel_rgb
from torch import Tensor

from ..groups import Group
from .feature_maps import element_label, ring_layout

__all__ = ["RingLayout", "ring_picture", "DIVERGING", "MIRRORED_FRAME"]

DIVERGING = "RdBu_r"  # white at zero: ReLU maps (>= 0) and differences share one scale
MIRRORED_FRAME = "#7b3294"  # the frame of a mirrored element's map, and the inner ring's label
_FRAME, _TRACKED = "#b8b8b8", "#111111"
_LUT = np.array([unlabel_rgb(c) for c in sample_colorscale(DIVERGING, np.linspace(0, 1, 255).tolist())],
                dtype=np.uint8)  # [255, 3]: index 0 is -limit, 127 zero (the scale's white), 254 +limit

Box = tuple[int, int, int, int]  # (left, top, right, bottom) in pixels


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)  # Pillow's own font: no system fonts needed


@dataclass(frozen=True)
class RingLayout:
    """Where everything goes in a ring picture ``width x height`` pixels: a box per group element's map, the
    centre's box, each label's text and box (labels outside the outer ring, on the ring's radius through their
    map), and, for a group with mirrors, the line naming the inner ring under the ring."""

    width: int
    height: int
    maps: list[Box]
    centre: Box
    labels: list[tuple[str, Box]]
    mirrored: list[bool]
    font_size: int

    @classmethod
    def of(cls, group: Group, size: int = 360) -> RingLayout:
        """The layout of ``group``'s ring, ``size`` pixels wide.  Every element is labelled by its angle in
        groups of up to 8 rotations, only the quarter turns in larger ones; mirrored elements, which share
        their angle with a rotation, are named once, by the line under the ring."""
        xy = ring_layout(group).numpy()  # unit circle, y up; the inner ring at 0.55
        radii = np.round(np.hypot(xy[:, 0], xy[:, 1]), 6)
        rings = {float(r): int((radii == r).sum()) for r in np.unique(radii)}
        side = min(0.68, *(0.78 * 2 * np.pi * r / n for r, n in rings.items()))
        concentric = len(rings) > 1
        if concentric:  # a gap between the rings
            side = min(side, 0.8 * (max(rings) - min(rings)))
        mirrored = [bool(m) for m in group.is_mirrored(group.elements())]
        few = group.rotation_order <= 8
        texts = [element_label(group, g) if not mirrored[g] and (few or group.quarter_turns(g) is not None) else ""
                 for g in range(group.order)]
        font_size = round(size / 20)
        font = _font(font_size)
        text_sizes = [font.getbbox(t)[2:] if t else (0, 0) for t in texts]

        def place(extent: float) -> tuple[float, list[Box], list[tuple[str, Box]]]:
            """Maps and labels in pixels for a ring ``extent`` units from the centre to the picture's edge."""
            scale, half = size / (2 * extent), side / 2 * size / (2 * extent)
            maps, labels = [], []
            for (x, y), text, (w, h) in zip(xy, texts, text_sizes, strict=True):
                cx, cy = size / 2 + x * scale, size / 2 - y * scale
                maps.append((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))
                if text:
                    dx, dy = np.array([x, -y]) / max(np.hypot(x, y), 1e-9)  # outwards, in pixel directions
                    # past the map's square that way (its half-diagonal at 45 degrees), a gap, half the label
                    out = half * (abs(dx) + abs(dy)) + 6 + max(w / 2 * abs(dx), h / 2 * abs(dy))
                    lx, ly = cx + dx * out, cy + dy * out
                    labels.append((text, (round(lx - w / 2), round(ly - h / 2), round(lx + w / 2),
                                          round(ly + h / 2))))
            return scale, maps, labels

        # Labels keep their size in pixels while the ring scales: widen the extent until everything fits.
        extent = 1 + side / 2 + 0.03
        for _ in range(10):
            scale, maps, labels = place(extent)
            far = max(max(size / 2 - b[0], b[2] - size / 2, size / 2 - b[1], b[3] - size / 2)
                      for b in [*maps, *(box for _, box in labels)])
            if far <= size / 2 - 2:
                break
            extent *= far / (size / 2 - 2)
        half = side / 2 * scale
        inner = min(rings) * scale - half - 0.06 * scale if concentric or min(rings) < 1 else 0
        centre_half = (inner if inner > 0 else (1 - side / 2) * scale - 0.06 * scale) / np.sqrt(2)
        centre = (round(size / 2 - centre_half), round(size / 2 - centre_half), round(size / 2 + centre_half),
                  round(size / 2 + centre_half))
        height = size + (round(1.8 * font_size) if any(mirrored) else 0)
        return cls(size, height, maps, centre, labels, mirrored, font_size)

    def overlaps(self) -> list[tuple[str, str]]:
        """Every pair of things that overlap (labels with maps, with the centre, with each other): none, by
        construction."""
        def meet(a: Box, b: Box) -> bool:
            return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

        things = [(f"map {g}", box) for g, box in enumerate(self.maps)] + [("centre", self.centre)]
        found = []
        for index, (text, box) in enumerate(self.labels):
            found += [(text, name) for name, other in things if meet(box, other)]
            found += [(text, other) for other, second in self.labels[index + 1:] if meet(box, second)]
            if min(box[:2]) < 0 or box[2] > self.width or box[3] > self.height:
                found.append((text, "the picture's edge"))
        return found


def _colour(maps: np.ndarray, limit: float) -> np.ndarray:
    """``maps [..., H, W]`` as RGB ``[..., H, W, 3]`` on the diverging scale from ``-limit`` to ``limit``."""
    index = np.clip(np.round((maps / limit + 1) / 2 * 254), 0, 254).astype(np.int64)
    return _LUT[index]


def _paste(canvas: Image.Image, rgb: np.ndarray, box: Box) -> None:
    picture = Image.fromarray(rgb).resize((box[2] - box[0], box[3] - box[1]), Image.Resampling.NEAREST)
    canvas.paste(picture, box[:2])


def ring_picture(maps: Tensor, layout: RingLayout, *, limit: float, centre: Tensor | None = None,
                 centre_text: str = "", tracked: int | None = None) -> np.ndarray:
    """One channel's maps ``[|G|, H, W]`` drawn as a ring (``layout``: :meth:`RingLayout.of` the maps' group):
    RGB ``[height, width, 3]`` uint8.

    ``centre [H', W']`` (an image in [0, 1], e.g. the input digit) or ``centre_text`` fills the middle;
    ``tracked`` gets a thick frame, so a reader can follow one map around the ring; mirrored elements' maps get
    a coloured frame, and a line under the ring names that colour.
    """
    canvas = Image.new("RGB", (layout.width, layout.height), "white")
    pen = ImageDraw.Draw(canvas)
    coloured = _colour(maps.detach().float().nan_to_num().cpu().numpy(), max(limit, 1e-12))
    for g, box in enumerate(layout.maps):
        _paste(canvas, coloured[g], box)
        colour, width = (_TRACKED, 3) if g == tracked else (MIRRORED_FRAME, 2) if layout.mirrored[g] else (_FRAME, 1)
        pen.rectangle((box[0] - width, box[1] - width, box[2] + width - 1, box[3] + width - 1), outline=colour,
                      width=width)
    font = _font(layout.font_size)
    for text, box in layout.labels:
        pen.text((box[0], box[1]), text, fill="#555555", font=font)
    if centre is not None:
        grey = (centre.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
        _paste(canvas, np.repeat(grey[..., None], 3, axis=-1), layout.centre)
    elif centre_text:
        pen.text(((layout.centre[0] + layout.centre[2]) / 2, (layout.centre[1] + layout.centre[3]) / 2), centre_text,
                 fill="#333333", font=font, anchor="mm")
    if any(layout.mirrored):
        pen.text((layout.width / 2, layout.width + 0.9 * layout.font_size), "inner ring, purple frames: mirror images",
                 fill=MIRRORED_FRAME, font=font, anchor="mm")
    return np.asarray(canvas)
