"""What the drawable canvas sends for a drawn digit, shared by the app's page tests."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def drawn_seven() -> np.ndarray:
    """What the canvas sends after a "7" is drawn: white strokes on a transparent RGBA layer ``[280, 280, 4]``."""
    layer = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(layer).line([(70, 60), (210, 60), (120, 230)], fill=(255, 255, 255, 255), width=20)
    return np.asarray(layer)
