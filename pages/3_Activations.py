"""Activations: what each conv layer computes for one image, the first-layer filters, and where the network looks."""

import streamlit as st

st.set_page_config(page_title="Activations · CNN Playground", page_icon=":material/grid_view:", layout="wide")

from playground.ui.activations_page import render  # noqa: E402  (after set_page_config)
from playground.ui.home import ensure_navigation  # noqa: E402

ensure_navigation()
render()
