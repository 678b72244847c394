"""Streamlit glue shared by the app's pages: cached loading, the sidebar, messages.

Caching happens here, at the edges: checkpoints with ``st.cache_resource``,
the evaluation JSON and the MNIST test set with ``st.cache_data``.
Folders come from ``streamlit run app.py -- --data-dir DIR --models-dir DIR``,
else ``GCNN_DATA_DIR`` / ``GCNN_MODELS_DIR``, else ``./data`` / ``models/``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import streamlit as st
import torch
from torch import Tensor

from ..data import DatasetMissingError, load_mnist, resolve_data_dir
from ..shipped import EVALUATION_FILE, MODELS_DIR, ShippedModel, load_evaluation, load_shipped

__all__ = ["README_PAGE", "folders", "shipped_models", "evaluation", "mnist_test", "sidebar", "page_setup",
           "require_models", "digit_key", "digit_from_key"]

README_PAGE = "pages/5_About.py"


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
    models_dir = args.models_dir or os.environ.get("GCNN_MODELS_DIR") or MODELS_DIR
    return resolve_data_dir(args.data_dir), Path(models_dir)


@st.cache_resource(show_spinner="Loading models ...")
def _load_models(models_dir: str) -> tuple[dict[str, ShippedModel], dict[str, str]]:
    return load_shipped(Path(models_dir))


def shipped_models() -> tuple[dict[str, ShippedModel], dict[str, str]]:
    """The loaded shipped models and, for each one that failed, what went wrong."""
    return _load_models(str(folders()[1]))


@st.cache_data(show_spinner=False)
def _load_evaluation(path: str) -> dict[str, Any] | None:
    return load_evaluation(Path(path))


def evaluation() -> dict[str, Any] | None:
    """``models/evaluation.json`` (or the one in the chosen models folder), if present."""
    models_dir = folders()[1]
    path = models_dir / EVALUATION_FILE.name
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


def page_setup(title: str, icon: str) -> None:
    st.title(f"{icon} {title}")


def sidebar(models: dict[str, ShippedModel], in_use: str | None = None) -> None:
    """The sidebar: which models are loaded (and which one this page uses), and the README link."""
    with st.sidebar:
        if in_use:
            st.markdown(f"**Model in use:** {in_use}")
        st.markdown("**Loaded models**")
        if models:
            st.markdown("\n".join(f"- {m.label} ({m.metadata.get('parameters', 0):,} params)"
                                  for m in models.values()))
        else:
            st.markdown("_none_")
        st.page_link(README_PAGE, label="Project README", icon="📖")


def require_models(models: dict[str, ShippedModel], problems: dict[str, str]) -> None:
    """Report unloadable checkpoints; stop the page when there is no model at all."""
    for message in problems.values():
        st.warning(message)
    if not models:
        st.error("No trained model could be loaded, so there is nothing to show here yet. "
                 "Train the shipped models with the commands above (see the README), then reload.")
        st.stop()
