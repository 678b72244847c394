"""The optional dependencies: importing one that is missing names the extra that brings it and its install command.

``import gcnn`` needs torch alone; reading MNIST (torchvision) and the training progress bar (tqdm) come with the
``train`` extra, the Streamlit app with ``app`` (see ``pyproject.toml``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(ModuleNotFoundError):
    """An optional dependency is not installed; the message names the extra that brings it and how to install it."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` saying that ``purpose`` needs the ``extra``."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] != module.split(".")[0]:
            raise  # the module is there but something it imports is missing: not ours to explain
        raise MissingExtraError(
            f"{purpose} needs {module.split('.')[0]}, which is not installed: it comes with gcnn's {extra!r} extra, "
            f'pip install "gcnn[{extra}]" (in a source checkout: pip install -e ".[{extra}]")', name=error.name
        ) from error
