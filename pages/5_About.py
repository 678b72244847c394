"""The project's README, so the app documents itself offline."""

from pathlib import Path

import streamlit as st

from gcnn.app import ui

ui.page_setup("About gcnn", "📖")
models, _ = ui.shipped_models()
ui.sidebar(models)
readme = Path(__file__).resolve().parent.parent / "README.md"
st.markdown(readme.read_text() if readme.is_file() else "The README is missing from this installation.")
