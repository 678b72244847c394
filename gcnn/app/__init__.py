"""The Streamlit app's helpers: caching and page glue, Plotly figures, upload preprocessing, inference for the pages.

Only ``app.py`` and ``pages/`` import this subpackage; the core library
(:mod:`gcnn`) never does, so ``import gcnn`` needs torch alone.  It needs the
``app`` extra: ``pip install "gcnn[app]"`` (or ``requirements.txt``).
"""
