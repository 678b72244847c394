"""The turn player: a digit turning through a full circle beside every model's answer, played in the browser.

A small Streamlit component (``st.components.v2``, mounted in the page's own
document, no iframe).  It gets every frame of the turn at once (see
:func:`gcnn.app.rotation_view.turn_frames`): the turned digit and every
model's answer at each angle.  From them it draws, and redraws on every step
without asking the server:

* the slider and ▶ Play, the page's one angle control;
* one answer per model, flagged where it differs from the model's answer
  upright ("changed its mind: 6 → 9"), and right or wrong where the true digit
  is known;
* one strip per model over the whole turn, red where the answer differs from
  the upright one, so a model that changes its mind shows at a glance.

Only a settled angle goes back to the server (``setStateValue("angle", ...)``
when the slider is let go or Pause is pressed), so the page can remember it;
▶ Play sends nothing.  The same player with ``autoplay`` and ``loop`` is the
home page's demonstration, and with pictures and no models a flip-book
(``names`` label the frames).

Why not a Plotly figure with animation frames: the page would then load
Plotly's 3.5 MB script and draw its first chart just as the first answers
arrive.  Measured with Chromium on the 2-core machine, a session's first drawing
cost the browser 1.77 CPU-s that way and 0.72 CPU-s without Plotly on the page
(``benchmarks/bench_browser_cpu.py``), which is what lets eight sessions' first
answers come in time (``benchmarks/bench_app_load.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

__all__ = ["turn_player", "flipbook"]

_CSS = """
.gcnn-turn { font-family: inherit; color: var(--st-text-color, inherit); }
.gcnn-turn-title { font-size: 0.95rem; font-weight: 600; margin-bottom: 0.3rem; }
.gcnn-turn-controls { display: flex; gap: 0.5rem; align-items: center; flex-wrap: wrap; }
.gcnn-turn-controls button { font: inherit; padding: 0.2rem 0.8rem; border-radius: 0.4rem; cursor: pointer;
                             border: 1px solid rgba(128, 128, 128, 0.5); background: transparent; color: inherit; }
.gcnn-turn-angle { font-weight: 600; font-variant-numeric: tabular-nums; }
.gcnn-turn-pending { font-size: 0.9rem; opacity: 0.8; padding: 0.3rem 0; }
.gcnn-turn-slider { width: 100%; margin: 0.3rem 0 0.5rem; accent-color: var(--gcnn-changed); }
.gcnn-turn-main { display: grid; grid-template-columns: var(--gcnn-picture, 170px) minmax(0, 1fr); gap: 0.8rem;
                  align-items: start; }
.gcnn-turn-figure { margin: 0; }
.gcnn-turn-digit { display: block; width: 100%; aspect-ratio: 1; image-rendering: pixelated; background: #000;
                   border-radius: 4px; }
.gcnn-turn-caption { font-size: 0.75rem; opacity: 0.75; margin-top: 0.2rem; }
.gcnn-answers { display: flex; flex-direction: column; gap: 0.3rem; }
.gcnn-answer { display: grid; grid-template-columns: 0.55rem minmax(0, 1fr) auto; column-gap: 0.45rem;
               align-items: baseline; padding: 0.2rem 0.45rem; border-radius: 0.4rem;
               border: 1px solid rgba(128, 128, 128, 0.25); }
.gcnn-answer[data-changed="true"] { border-color: var(--gcnn-changed); background: rgba(215, 48, 31, 0.09); }
.gcnn-answer-swatch { width: 0.55rem; height: 0.55rem; border-radius: 50%; align-self: center; }
.gcnn-answer-name { font-size: 0.85rem; overflow-wrap: anywhere; }
.gcnn-answer-digit { font-size: 1.35rem; font-weight: 700; line-height: 1.1; font-variant-numeric: tabular-nums; }
.gcnn-answer-note { grid-column: 2 / 4; font-size: 0.78rem; display: flex; flex-wrap: wrap; gap: 0 0.6rem; }
.gcnn-answer-change { color: #2b7a3d; }
.gcnn-answer[data-changed="true"] .gcnn-answer-change { color: #b3200f; font-weight: 700; }
.gcnn-answer-sure { opacity: 0.7; }
.gcnn-answer-truth[data-right="true"] { color: #2b7a3d; font-weight: 600; }
.gcnn-answer-truth[data-right="false"] { color: #b3200f; font-weight: 600; }
.gcnn-strips { margin-top: 0.7rem; }
.gcnn-strips-title { font-size: 0.8rem; opacity: 0.8; margin-bottom: 0.2rem; }
.gcnn-strip-name { font-size: 0.75rem; display: flex; justify-content: space-between; gap: 0.5rem;
                   margin-top: 0.15rem; }
.gcnn-strip-count { opacity: 0.75; white-space: nowrap; }
.gcnn-strip { display: flex; height: 0.7rem; cursor: pointer; border-radius: 2px; overflow: hidden; }
.gcnn-strip > span { flex: 1; background: var(--gcnn-same); }
.gcnn-strip > span[data-changed="true"] { background: var(--gcnn-changed); }
.gcnn-strip > span[data-now="true"] { box-shadow: inset 0 0 0 2px #111;
                                      flex: 0 0 max(6px, calc(100% / var(--gcnn-frames))); }
.gcnn-strips-axis { display: flex; justify-content: space-between; font-size: 0.7rem; opacity: 0.6; }
.gcnn-turn-flipbook .gcnn-turn-digit { background: transparent; image-rendering: auto; max-width: 420px; }
@media (max-width: 640px) { .gcnn-turn-main { --gcnn-picture: 118px; gap: 0.6rem; } }
"""

_JS = """
// One player per mount point, kept while the same frames come back (a rerun of the page's fragment), so the
// angle shown, the slider's focus and a play in progress survive it; new frames build a new player.
const players = new WeakMap();

export default function ({ data, parentElement, setStateValue }) {
  let player = players.get(parentElement);
  if (!player || player.id !== data.id) {
    player?.dispose();
    player = build(data, parentElement);
    players.set(parentElement, player);
  } else if (!parentElement.contains(player.root)) {
    parentElement.append(player.root);
  }
  player.report = setStateValue;
  // Streamlit calls this cleanup on unmount, but also for a render overtaken by a newer one (frames sent twice in
  // quick succession): only a player whose mount point has left the page goes.
  return () => { if (!parentElement.isConnected) player.dispose(); };
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function build(data, parentElement) {
  const { angles, digits, models, names } = data;
  const upright = Math.max(0, angles.indexOf(0));
  const root = element("div", "gcnn-turn");
  if (data.picture_px) root.style.setProperty("--gcnn-picture", `${data.picture_px}px`);
  for (const [name, colour] of Object.entries(data.colours ?? {})) root.style.setProperty(`--gcnn-${name}`, colour);
  parentElement.append(root);
  if (data.title) root.append(element("div", "gcnn-turn-title", data.title));
  const player = { id: data.id, root, report: null, current: data.start, timer: null, reported: angles[data.start] };
  let observer = null;  // autoplay's: plays only while the player is in view

  const frameName = index => names ? names[index] : `Turned by ${angles[index]}°`;
  let slider = null, angleText = null;
  if (data.pending) {
    root.append(element("div", "gcnn-turn-pending", data.pending));
  } else if (angles.length > 1) {
    const controls = element("div", "gcnn-turn-controls");
    const play = element("button", "gcnn-turn-play", "▶ Play");
    const pause = element("button", "gcnn-turn-pause", "❚❚ Pause");
    angleText = element("span", "gcnn-turn-angle");
    play.type = pause.type = "button";
    controls.append(play, pause, angleText);
    slider = element("input", "gcnn-turn-slider");
    Object.assign(slider, { type: "range", min: 0, max: angles.length - 1, step: 1 });
    slider.setAttribute("aria-label", data.slider_label || "Turn the digit (degrees)");
    root.append(controls, slider);
    play.onclick = playOnce;
    pause.onclick = () => { stop(); report(); };
    slider.oninput = () => { stop(); show(Number(slider.value)); };
    slider.onchange = report;  // let go (or a key press): the angle is settled
  }

  const main = element("div", models.length ? "gcnn-turn-main" : "gcnn-turn-flipbook");
  const figure = element("figure", "gcnn-turn-figure");
  const digit = element("img", "gcnn-turn-digit");
  digit.alt = data.picture_alt || "the digit, turned";
  figure.append(digit);
  if (data.caption) figure.append(element("figcaption", "gcnn-turn-caption", data.caption));
  main.append(figure);
  root.append(main);

  const answers = element("div", "gcnn-answers");
  const rows = models.map(model => {
    const row = element("div", "gcnn-answer");
    row.dataset.model = model.name;
    const swatch = element("span", "gcnn-answer-swatch");
    swatch.style.background = model.colour;
    const value = element("span", "gcnn-answer-digit");
    const note = element("span", "gcnn-answer-note");
    const change = element("span", "gcnn-answer-change");
    const sure = element("span", "gcnn-answer-sure");
    const truth = element("span", "gcnn-answer-truth");
    note.append(change, sure);
    if (data.truth !== null && data.truth !== undefined) note.append(truth);
    row.append(swatch, element("span", "gcnn-answer-name", model.label), value, note);
    answers.append(row);
    return { model, row, value, change, sure, truth };
  });
  if (models.length) main.append(answers);

  const strips = [];  // each model's strip, whose cell at the angle shown is outlined
  if (data.strips && models.length && angles.length > 1) {
    const box = element("div", "gcnn-strips");
    box.style.setProperty("--gcnn-frames", angles.length);
    box.append(element("div", "gcnn-strips-title",
      "Keeps its answer? Each strip is the whole turn: red where the answer differs from the upright one."));
    for (const model of models) {
      const first = model.predicted[upright];
      const changed = model.predicted.filter(p => p !== first).length;
      const name = element("div", "gcnn-strip-name");
      name.append(element("span", "", model.label),
                  element("span", "gcnn-strip-count",
                          changed ? `changes its mind at ${changed} of ${angles.length} angles` : "never changes"));
      const strip = element("div", "gcnn-strip");
      strip.dataset.model = model.name;
      strip.setAttribute("aria-label", `${model.label}: ${changed} of ${angles.length} angles changed`);
      model.predicted.forEach((p, index) => {
        const cell = element("span");
        cell.dataset.changed = String(p !== first);
        cell.title = `${angles[index]}°: ${p}`;
        strip.append(cell);
      });
      strip.onclick = event => {  // jump to the angle clicked
        const box = strip.getBoundingClientRect();
        const index = Math.min(angles.length - 1, Math.floor((event.clientX - box.left) / box.width * angles.length));
        stop(); show(index); report();
      };
      box.append(name, strip);
      strips.push(strip);
    }
    const axis = element("div", "gcnn-strips-axis");
    for (const label of ["0°", "90°", "180°", "270°", "360°"]) axis.append(element("span", "", label));
    box.append(axis);
    root.append(box);
  }

  function show(index) {
    for (const strip of strips) {
      delete strip.children[player.current].dataset.now;
      strip.children[index].dataset.now = "true";
    }
    player.current = index;
    digit.src = digits[index];
    if (angleText) angleText.textContent = frameName(index);
    if (slider) {
      slider.value = index;
      slider.setAttribute("aria-valuetext", frameName(index));
    }
    for (const { model, row, value, change, sure, truth } of rows) {
      const predicted = model.predicted[index], first = model.predicted[upright];
      const changed = !data.pending && predicted !== first;
      row.dataset.changed = String(changed);
      value.textContent = predicted;
      sure.textContent = `${Math.round(100 * model.confidence[index])}% sure`;
      change.textContent = data.pending ? "" : changed ? `changed its mind: ${first} → ${predicted}`
        : index === upright ? "upright" : "keeps its answer";
      if (data.truth !== null && data.truth !== undefined) {
        const right = predicted === data.truth;
        truth.dataset.right = String(right);
        truth.textContent = right ? "✓ right" : `✗ wrong, it is a ${data.truth}`;
      }
    }
  }
  function report() {
    const angle = angles[player.current];
    if (data.report && player.report && angle !== player.reported) {
      player.reported = angle;
      player.report("angle", angle);
    }
  }
  function stop() { clearInterval(player.timer); player.timer = null; }
  function playOnce() {  // one full turn from the angle shown, then stop where it began (or go on: loop)
    stop();
    let shown = 0;
    player.timer = setInterval(() => {
      if (!root.isConnected) return stop();  // the page moved on
      show((player.current + 1) % angles.length);
      if (++shown >= angles.length && !data.loop) stop();
    }, data.frame_ms);
  }
  player.dispose = () => { stop(); observer?.disconnect(); root.remove(); };

  show(data.start);
  // Autoplay only while the player is in view, and never for someone who asked their system for less motion.
  const still = window.matchMedia?.("(prefers-reduced-motion: reduce)").matches;
  if (data.autoplay && slider && !still) {
    observer = new IntersectionObserver(([entry]) => entry.isIntersecting ? (player.timer || playOnce()) : stop());
    observer.observe(root);
  }
  return player;
}
"""

# Registered once per process (module import), as Streamlit asks: registering per rerun would log a warning.
_TURN_PLAYER = st.components.v2.component("gcnn_turn_player", css=_CSS, js=_JS, isolate_styles=False)


def turn_player(frames: dict[str, Any], key: str | None = None,
                on_angle_change: Callable[[], None] | None = None) -> Any:
    """Show the player for ``frames`` (:func:`gcnn.app.rotation_view.turn_frames`).

    With a ``key``, the angle the visitor settles on is the component's state ``"angle"`` (in
    ``st.session_state[key]``), and ``on_angle_change`` runs when it changes; returns the component's result.
    """
    if key is None:
        return _TURN_PLAYER(data=frames)
    return _TURN_PLAYER(data=frames, key=key, default={"angle": frames["angles"][frames["start"]]},
                        on_angle_change=on_angle_change or (lambda: None))


def flipbook(pictures: Sequence[str], names: Sequence[str], angles: Sequence[float], *, caption: str,
             slider_label: str, alt: str, frame_ms: int = 900) -> dict[str, Any]:
    """The player's data for a flip-book: ``pictures`` (data URLs) named ``names`` (shown as the frame's label),
    at ``angles`` (the frame at 0 comes first); no models, nothing sent back to the page."""
    return {"id": hashlib.blake2b("".join(pictures).encode(), digest_size=8).hexdigest(), "angles": list(angles),
            "names": list(names), "digits": list(pictures), "models": [], "start": 0, "frame_ms": frame_ms,
            "caption": caption, "slider_label": slider_label, "picture_alt": alt, "report": False, "strips": False}
