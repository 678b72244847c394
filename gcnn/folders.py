"""Where checkpoints are looked for and where new ones are written.

The models folder is never inside the installed package (a wheel ships no checkpoints).  :func:`models_dir`,
where models are looked for, takes an explicit path, then ``$GCNN_MODELS_DIR``, then ``./models`` under the
current directory, then the ``models/`` folder of the source checkout this package runs from (so the shipped
models are found from anywhere in a checkout or an editable install).  :func:`output_dir`, where training writes,
stops before that last step: a run never writes into a source checkout it was not started in.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["models_dir", "output_dir", "MODELS_ENV"]

MODELS_ENV = "GCNN_MODELS_DIR"
# The checkout this package runs from, when it runs from one (an installed package's parent is site-packages).
_CHECKOUT = Path(__file__).resolve().parent.parent


def models_dir(path: str | os.PathLike | None = None) -> Path:
    """The models folder: ``path`` if given, else ``$GCNN_MODELS_DIR``, else ``./models`` if it exists, else
    the source checkout's ``models/`` when running from a checkout, else ``./models`` (to be created)."""
    if path is not None:
        return Path(path)
    local = output_dir()
    if not os.environ.get(MODELS_ENV) and not local.is_dir() and (_CHECKOUT / "pyproject.toml").is_file() \
            and (_CHECKOUT / "models").is_dir():
        return _CHECKOUT / "models"
    return local


def output_dir(path: str | os.PathLike | None = None) -> Path:
    """Where new checkpoints go: ``path`` if given, else ``$GCNN_MODELS_DIR``, else ``./models`` under the current
    directory (created when the first checkpoint is written), never a source checkout found by :func:`models_dir`."""
    if path is not None:
        return Path(path)
    return Path(os.environ.get(MODELS_ENV) or "models")
