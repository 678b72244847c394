"""The Draw page's turn player: the digit turning through a full circle above every model's answer, in the browser.

A small Streamlit component (``st.components.v2``, mounted in the page's
own document, no iframe): it gets every frame of the turn at once (see
:func:`gcnn.app.rotation_view.turn_frames`), and its ▶ Play button and slider
run in the browser without asking the server for anything.

Why not a Plotly figure with animation frames: the page would then load
Plotly's 3.5 MB script and draw its first chart just as the first answers
arrive.  Measured with Chromium on the 2-core machine, a session's first drawing
cost the browser 1.77 CPU-s that way and 0.72 CPU-s without Plotly on the page
(``benchmarks/bench_browser_cpu.py``), which is what lets eight sessions' first
answers come in time (``benchmarks/bench_app_load.py``).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

__all__ = ["turn_player"]

_CSS = """
.gcnn-turn { font-family: inherit; color: var(--st-text-color, inherit); }
.gcnn-turn-title { font-size: 0.95rem; font-weight: 600; margin-bottom: 0.4rem; }
.gcnn-turn-digit { display: block; width: min(100%, 240px); aspect-ratio: 1; margin: 0 auto 0.6rem;
                   image-rendering: pixelated; background: #000; }
.gcnn-turn-row { display: grid; grid-template-columns: minmax(7rem, 40%) 1fr 4.6rem; gap: 0.4rem;
                 align-items: center; font-size: 0.85rem; margin: 0.2rem 0; }
.gcnn-turn-track { height: 0.9rem; background: rgba(128, 128, 128, 0.15); border-radius: 2px; }
.gcnn-turn-fill { height: 100%; border-radius: 2px; }
.gcnn-turn-value { font-variant-numeric: tabular-nums; white-space: nowrap; }
.gcnn-turn-controls { display: flex; gap: 0.5rem; align-items: center; margin-top: 0.6rem; flex-wrap: wrap; }
.gcnn-turn-controls button { font: inherit; padding: 0.25rem 0.8rem; border-radius: 0.4rem; cursor: pointer;
                             border: 1px solid rgba(128, 128, 128, 0.5); background: transparent; color: inherit; }
.gcnn-turn-slider { width: 100%; margin-top: 0.4rem; }
"""

_JS = """
export default function ({ data, parentElement }) {
  const { title, angles, digits, models, frame_ms: frameMs, start } = data;
  // A fresh player on every render; the parent also holds the component's <style>, which must stay.
  parentElement.querySelector(":scope > .gcnn-turn")?.remove();
  const root = document.createElement("div");
  root.className = "gcnn-turn";
  parentElement.append(root);
  const element = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  root.append(element("div", "gcnn-turn-title", title));
  const digit = element("img", "gcnn-turn-digit");
  digit.alt = "the digit, turned";
  root.append(digit);
  const rows = models.map(model => {
    const row = element("div", "gcnn-turn-row");
    const track = element("div", "gcnn-turn-track");
    const fill = element("div", "gcnn-turn-fill");
    fill.style.background = model.colour;
    track.append(fill);
    const value = element("span", "gcnn-turn-value");
    row.append(element("span", "gcnn-turn-label", model.label), track, value);
    root.append(row);
    return { model, fill, value };
  });
  const controls = element("div", "gcnn-turn-controls");
  const play = element("button", "gcnn-turn-play", "▶ Play");
  const pause = element("button", "gcnn-turn-pause", "❚❚ Pause");
  const angle = element("span", "gcnn-turn-angle");
  play.type = pause.type = "button";
  controls.append(play, pause, angle);
  const slider = element("input", "gcnn-turn-slider");
  Object.assign(slider, { type: "range", min: 0, max: angles.length - 1, step: 1 });
  slider.setAttribute("aria-label", "Turned by (degrees)");
  root.append(controls, slider);

  let current = start, timer = null;
  const show = index => {
    current = index;
    digit.src = digits[index];
    angle.textContent = `Turned by ${angles[index]}°`;
    slider.value = index;
    slider.setAttribute("aria-valuetext", `${angles[index]} degrees`);
    for (const { model, fill, value } of rows) {
      const confidence = model.confidence[index];
      fill.style.width = `${(100 * confidence).toFixed(1)}%`;
      value.textContent = `${model.predicted[index]}  (${Math.round(100 * confidence)}%)`;
    }
  };
  const stop = () => { clearInterval(timer); timer = null; };
  play.onclick = () => {  // one full turn from the angle shown, then stop where it began
    stop();
    let shown = 0;
    timer = setInterval(() => {
      show((current + 1) % angles.length);
      if (++shown >= angles.length) stop();
    }, frameMs);
  };
  pause.onclick = stop;
  slider.oninput = () => { stop(); show(Number(slider.value)); };
  show(start);
  return stop;
}
"""

# Registered once per process (module import), as Streamlit asks: registering per rerun would log a warning.
_TURN_PLAYER = st.components.v2.component("gcnn_turn_player", css=_CSS, js=_JS, isolate_styles=False)


def turn_player(frames: dict[str, Any], key: str) -> None:
    """Show the turn player for ``frames`` (:func:`gcnn.app.rotation_view.turn_frames`) under ``key``."""
    _TURN_PLAYER(data=frames, key=key)
