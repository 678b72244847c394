"""A figure as an article sets it, in HTML: pictures side by side, each with its title in words, its notation,
and one line saying what to see; the colour scale under them.

One ``st.html`` element, so the words sit beside their picture at every width (four pictures a row on a
desktop, two on a phone) and nothing is fetched: the pictures are data URLs, which, unlike Streamlit's media
files, cannot expire between reruns while a browser still loads them.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from plotly.colors import sample_colorscale

from .ring_picture import DIVERGING

__all__ = ["Panel", "figure_html", "colour_legend"]


@dataclass(frozen=True)
class Panel:
    """One picture of a figure: ``title`` in plain words, ``notation`` after it, ``picture`` (a data URL) and the
    ``explanation`` beside it; ``alt`` describes the picture for screen readers."""

    title: str
    notation: str
    picture: str
    explanation: str
    alt: str


def figure_html(panels: Sequence[Panel], legend: str = "", min_width: int = 160) -> str:
    """The panels in a grid that fits as many ``min_width``-pixel columns as the page has room for, then
    ``legend`` (HTML) under them."""
    # Each figure spans three rows of the grid and shares them (subgrid), so titles, pictures and explanations
    # line up across a row of figures whatever the length of their titles.
    cells = "".join(
        '<figure style="margin:0;display:grid;grid-row:span 3;grid-template-rows:subgrid;gap:0.25rem">'
        f'<figcaption style="font-weight:600;font-size:0.9rem;line-height:1.25">{html.escape(p.title)} '
        f'<span style="font-weight:400;opacity:0.7;white-space:nowrap">{html.escape(p.notation)}</span></figcaption>'
        f'<img src="{p.picture}" alt="{html.escape(p.alt)}" style="width:100%;height:auto;display:block">'
        f'<div style="font-size:0.8rem;opacity:0.85;line-height:1.3">{html.escape(p.explanation)}</div>'
        '</figure>' for p in panels)
    return (f'<div class="gcnn-figure" style="display:grid;gap:0.25rem 0.8rem;align-items:start;'
            f'grid-template-columns:repeat(auto-fit,minmax({min_width}px,1fr))">{cells}</div>{legend}')


def colour_legend(limit: float, text: str) -> str:
    """The figure's one colour scale, ``-limit`` (blue) through 0 (white) to ``limit`` (red), with ``text``."""
    stops = ", ".join(sample_colorscale(DIVERGING, [0, 0.25, 0.5, 0.75, 1]))
    ticks = "".join(f"<span>{value}</span>" for value in (f"{-limit:.2g}", "0", f"{limit:.2g}"))
    return ('<div style="margin-top:0.6rem;max-width:28rem;font-size:0.78rem">'
            f'<div style="height:0.6rem;border-radius:2px;background:linear-gradient(to right, {stops})"></div>'
            f'<div style="display:flex;justify-content:space-between;opacity:0.75">{ticks}</div>'
            f'<div style="opacity:0.85">{html.escape(text)}</div></div>')
