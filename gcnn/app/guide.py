"""The guided path: four "try this" steps across the pages that lead a newcomer to the insight.

Each step says what to do and what to look for, and asks why; the page a step happens on shows it highlighted,
the other steps link to their pages.
"""

from __future__ import annotations

from typing import NamedTuple

import streamlit as st

from .ui import PAGES

__all__ = ["Step", "STEPS", "show"]


class Step(NamedTuple):
    """One step: the page it happens on (a key of :data:`gcnn.app.ui.PAGES`), what to do, what to look for."""

    page: str
    action: str
    look: str


STEPS = [
    Step("draw", "Draw a 6 and turn it to 180°.", "Which models change their mind, and why?"),
    Step("draw", "Stop at 45°, then at 90°.",
         "The C4 GCNN is built for quarter turns, the C16 GCNN for turns of 22.5°: which one wavers in between?"),
    Step("maps", "See inside, turned by 90°.",
         "Every feature map turns and moves one step round the ring: the difference left is blank."),
    Step("accuracy", "Check it on thousands of test digits.", "Whose accuracy holds at every angle?"),
]


def show(here: str, title: str = "Try this") -> None:
    """The path in a bordered box: the steps on page ``here`` in bold, a link to the page of each other step."""
    with st.container(border=True, key=f"guide_{here}"):
        st.markdown(f"**{title}**")
        for number, step in enumerate(STEPS, start=1):
            action = f"**{step.action}**" if step.page == here else step.action
            st.markdown(f"{number}. {action} {step.look}")
            if step.page != here and (number == 1 or STEPS[number - 2].page != step.page):
                entry = PAGES[step.page]
                st.page_link(entry.script, label=f"Go to {entry.label}", icon=entry.icon)
