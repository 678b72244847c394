"""Running the app's pages under AppTest, and reading what the turn player got, shared by the page tests."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
DRAW = "pages/1_Draw_and_rotate.py"


def run_page(page: str) -> AppTest:
    """Run the app (``app.py``, the home page) and open ``page``."""
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    app.run()  # the first run registers the pages; switch_page can only find them after it
    if page != "app.py":
        app.switch_page(page).run()
    return app


def players(app: AppTest) -> list[dict]:
    """The data of every turn player on the page, as the browser receives it, in page order."""
    return [json.loads(c.proto.json) for c in app.get("bidi_component") if c.proto.component_name == "gcnn_turn_player"]


def player(app: AppTest) -> dict:
    """The page's one turn player."""
    found = players(app)
    assert len(found) == 1, f"expected one turn player, found {len(found)}"
    return found[0]


def shown_answers(frames: dict) -> dict[str, int]:
    """Each model's answer (by label) at the angle the player shows first."""
    return {model["label"]: model["predicted"][frames["start"]] for model in frames["models"]}
