"""The Streamlit side of CNN Playground: session state, widgets and live views.

The only part of `playground` that imports Streamlit. Pages call these
helpers; the helpers call the library.
"""
