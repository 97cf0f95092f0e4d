"""Playground: sliders for every setting, real training in the background, live curves and feature maps."""

import streamlit as st

st.set_page_config(page_title="Playground · CNN Playground", page_icon=":material/tune:", layout="wide")

from playground.ui.home import ensure_navigation  # noqa: E402  (after set_page_config)
from playground.ui.playground_page import render  # noqa: E402

ensure_navigation()
render()
