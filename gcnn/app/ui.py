"""Streamlit glue shared by the app's pages: cached loading, the sidebar, messages.

Caching happens here, at the edges: checkpoints with ``st.cache_resource``,
the evaluation JSON and the MNIST test set with ``st.cache_data``.
Folders come from ``streamlit run app.py -- --data-dir DIR --models-dir DIR``,
else ``GCNN_DATA_DIR`` / ``GCNN_MODELS_DIR``, else ``./data`` / :func:`gcnn.shipped.models_dir`.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import plotly.graph_objects as go
import streamlit as st
import torch
from torch import Tensor

from ..data import DatasetMissingError, load_mnist, resolve_data_dir
from ..shipped import ShippedModel, evaluation_file, load_evaluation, load_shipped, models_dir
from . import memory

__all__ = ["PAGES", "NavEntry", "folders", "shipped_models", "evaluation", "mnist_test", "sidebar", "page_setup",
           "require_models", "digit_key", "digit_from_key", "people_table", "page_link_card", "group_angles", "chart",
           "EtaProgress"]


class NavEntry(NamedTuple):
    """One page of the app: its script (relative to the repository root), its URL path, label and icon."""

    script: str
    url_path: str
    label: str
    icon: str


# The app runs in Streamlit's classic `pages/` mode: every script in pages/ is a page, app.py is the home page, and
# a page's URL path is its file name without the number prefix. (Declaring pages with st.navigation instead breaks
# deep links: on a freshly started server the first session still runs in the classic mode, because a `pages/`
# folder sits beside app.py, and shows "Page not found" for st.navigation's URL paths.) The classic sidebar would
# label the home page "app"; it is hidden (.streamlit/config.toml) and replaced by these links, drawn by page_setup.
PAGES = {
    "home": NavEntry("app.py", "", "Home", "🔄"),
    "draw": NavEntry("pages/1_Draw_and_rotate.py", "Draw_and_rotate", "Draw & rotate", "✏️"),
    "maps": NavEntry("pages/2_Feature_maps.py", "Feature_maps", "Feature maps", "🧩"),
    "accuracy": NavEntry("pages/3_Accuracy_vs_angle.py", "Accuracy_vs_angle", "Accuracy against angle", "📈"),
    "groups": NavEntry("pages/4_Groups_and_kernels.py", "Groups_and_kernels", "Groups & kernels", "🔣"),
    "about": NavEntry("pages/5_About.py", "About", "About", "📖"),
}


def digit_key(image: Tensor) -> bytes:
    """A hashable cache key for a digit ``[1, 28, 28]``: its float32 bytes (:func:`digit_from_key` reverses it)."""
    return image.to(torch.float32).contiguous().numpy().tobytes()


def digit_from_key(key: bytes) -> Tensor:
    return torch.frombuffer(bytearray(key), dtype=torch.float32).reshape(1, 28, 28)


def folders() -> tuple[Path, Path]:
    """``(data_dir, models_dir)`` from the command line after ``--``, the environment, or the defaults."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--data-dir")
    parser.add_argument("--models-dir")
    args, _ = parser.parse_known_args(sys.argv[1:])
    return resolve_data_dir(args.data_dir), models_dir(args.models_dir)


@st.cache_resource(show_spinner="Loading models ...")
def _load_models(models_dir: str) -> tuple[dict[str, ShippedModel], dict[str, str]]:
    loaded = load_shipped(Path(models_dir))
    # Streamlit collects garbage after every run of a page (runner.postScriptGC). With torch, plotly and the models
    # in the heap, a full collection took ~110 ms holding the GIL, on every drawing and slider step of every session,
    # and eight sessions' collections queued up. What is in the heap now lives as long as the process: frozen, the
    # collector no longer walks it (~1 ms a collection; benchmarks/bench_app_load.py measures the effect).
    gc.collect()
    gc.freeze()
    return loaded


def shipped_models() -> tuple[dict[str, ShippedModel], dict[str, str]]:
    """The loaded shipped models and, for each one that failed, what went wrong."""
    return _load_models(str(folders()[1]))


@st.cache_data(show_spinner=False)
def _load_evaluation(path: str) -> dict[str, Any] | None:
    return load_evaluation(Path(path))


def evaluation() -> dict[str, Any] | None:
    """``models/evaluation.json`` (or the one in the chosen models folder), if present."""
    path = evaluation_file(folders()[1])
    return _load_evaluation(str(path))


@st.cache_data(show_spinner="Loading the MNIST test set ...")
def _load_test(data_dir: str) -> tuple[Tensor, Tensor] | str:
    try:
        return load_mnist(train=False, data_dir=data_dir)
    except DatasetMissingError as error:
        return (f"The MNIST dataset was not found in `{error.folder}`, so this part needs it. Start the app with "
                "`streamlit run app.py -- --data-dir DIR` or set `GCNN_DATA_DIR=DIR`, where `DIR` holds "
                "`MNIST/raw/`; `python -m gcnn.evaluate --download` fetches it into `./data` where the network "
                "allows.")


def mnist_test() -> tuple[Tensor, Tensor] | str:
    """The MNIST test set ``(images, labels)``, or a message saying why it is missing and how to provide it."""
    return _load_test(str(folders()[0]))


# Streamlit's own page list closes the sidebar after a click on narrow screens; page links do not, so on a phone
# the sidebar would stay open over the page just opened.  This closes it the same way, with the sidebar's collapse
# button, after a click on a page link in the sidebar on a screen no wider than Streamlit's "md" breakpoint (where
# the sidebar overlays the page).  It is registered once per browser tab (the sidebar element outlives page changes).
_CLOSE_SIDEBAR_ON_PHONES = """<script>
(() => {
  const sidebar = document.querySelector('[data-testid="stSidebar"]');
  if (!sidebar || sidebar.dataset.closesOnNavigation) return;
  sidebar.dataset.closesOnNavigation = "true";
  sidebar.addEventListener("click", event => {
    if (window.innerWidth > 768 || !event.target.closest('[data-testid="stPageLink-NavLink"]')) return;
    setTimeout(() => sidebar.querySelector('[data-testid="stSidebarCollapseButton"] button')?.click(), 0);
  });
})();
</script>"""


def page_setup(title: str, icon: str) -> bool:
    """First call of every page: browser tab, wide layout, the sidebar's page links, the page title; the values
    kept across pages (:mod:`gcnn.app.memory`).  Returns whether the visitor has just come to this page.

    ``initial_sidebar_state="auto"`` lets Streamlit collapse the sidebar on narrow screens (phones), so it does not
    cover the page after navigating.
    """
    st.set_page_config(page_title=f"{title} · gcnn", page_icon=icon, layout="wide", initial_sidebar_state="auto")
    memory.keep_widgets()
    arrived = memory.entered(title)
    with st.sidebar:
        for entry in PAGES.values():
            st.page_link(entry.script, label=entry.label, icon=entry.icon)
        st.html(_CLOSE_SIDEBAR_ON_PHONES, unsafe_allow_javascript=True)
        st.divider()
    st.title(f"{icon} {title}")
    return arrived


def page_link_card(key: str, text: str) -> None:
    """A bordered box: the link to page ``key`` of :data:`PAGES` and what that page offers."""
    entry = PAGES[key]
    with st.container(border=True):
        st.page_link(entry.script, label=f"**{entry.label}**", icon=entry.icon)
        st.markdown(text)


def sidebar(models: dict[str, ShippedModel], in_use: str | None = None) -> None:
    """The sidebar below the page links: which models are loaded, and which one this page uses."""
    with st.sidebar:
        if in_use:
            st.markdown(f"**Model in use:** {in_use}")
        st.markdown("**Loaded models**")
        if models:
            st.markdown("\n".join(f"- {m.label} ({m.metadata.get('parameters', 0):,} params)"
                                  for m in models.values()))
        else:
            st.markdown("_none_")


def require_models(models: dict[str, ShippedModel], problems: dict[str, str]) -> None:
    """Report unloadable checkpoints; stop the page when there is no model at all."""
    for message in problems.values():
        st.warning(message)
    if not models:
        st.error("No trained model could be loaded, so there is nothing to show here yet. "
                 "Train the shipped models with the commands above (see the README), then reload.")
        st.stop()


def people_table(rows: Sequence[Mapping[str, Any]], percent: Sequence[str] = (), counts: Sequence[str] = (),
                 column_config: Mapping[str, Any] | None = None) -> None:
    """Show ``rows`` as a table formatted for people: the ``percent`` columns (fractions) with one decimal, the
    ``counts`` columns with thousands separators, "—" for every missing value.

    The cells hold the formatted text (right-aligned where numbers), because Streamlit shows a missing number as
    "None" whatever a pandas ``Styler`` says.  ``column_config`` adds Streamlit column settings.
    """
    def formatted(value: Any, pattern: str) -> str:
        return "—" if value is None or value != value else pattern.format(value)  # value != value: NaN

    table = []
    for row in rows:
        cells = {}
        for column, value in row.items():
            if column in percent:
                cells[column] = formatted(value, "{:.1%}")
            elif column in counts:
                cells[column] = formatted(value, "{:,.0f}")
            else:
                cells[column] = "—" if value is None else value
        table.append(cells)
    numbers = {column: st.column_config.TextColumn(alignment="right") for column in [*percent, *counts]}
    st.dataframe(table, hide_index=True, width="stretch", column_config={**numbers, **(column_config or {})})


def group_angles(models: Mapping[str, ShippedModel]) -> dict[str, list[float]]:
    """For each equivariant model, its group's rotation angles in degrees (multiples of 360/N), for the charts."""
    angles = {}
    for name, shipped in models.items():
        group = getattr(shipped.model, "group", None)
        if shipped.is_equivariant and group is not None:
            angles[name] = [360 * j / group.rotation_order for j in range(group.rotation_order)]
    return angles


def chart(figure: go.Figure, key: str) -> None:
    """A Plotly figure across the column, its title as text above it, and without Plotly's mode bar.

    Plotly never wraps a title: at 390 px wide, "How far the maps are from following, at every angle" was cut off
    mid-word, so the title goes above the figure as text, which wraps.  On a touch screen the mode bar stays up and
    covered the figure, and its zoom and pan buttons only get in the way of these small charts.

    ``figure`` is changed in place (its title moved out): pass one built for this call, never a cached one.  A copy
    would cost more than the chart: 191 ms for the 16 x 16 kernel grid of a C16 group convolution.
    """
    title = figure.layout.title.text
    if title:
        st.markdown(f"**{title}**")
        figure.update_layout(title_text="", margin_t=24)  # a little top margin stays for subplot titles
    st.plotly_chart(figure, width="stretch", key=key, config={"displayModeBar": False})


class EtaProgress:
    """A progress bar that says how long the rest should take, extrapolated from the time so far (the first
    estimate comes after 2% of the work, before which the rate says little)."""

    def __init__(self, text: str) -> None:
        self._bar = st.progress(0.0, text=text)
        self._start = time.monotonic()

    def __call__(self, fraction: float, text: str) -> None:
        """Show ``fraction`` (0..1) done, with ``text`` and the time left."""
        fraction = min(max(fraction, 0.0), 1.0)
        elapsed = time.monotonic() - self._start
        if fraction >= 0.02:
            left = elapsed * (1 - fraction) / fraction
            text = f"{text} · about {_duration(left)} left"
        self._bar.progress(fraction, text=text)

    def empty(self) -> None:
        self._bar.empty()


def _duration(seconds: float) -> str:
    """``"40 s"``, ``"3 min"``: rounded as people say it."""
    if seconds < 60:
        return f"{max(5, round(seconds / 5) * 5):.0f} s"
    return f"{round(seconds / 60):.0f} min"
