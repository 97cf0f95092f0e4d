"""Preprocessing: what scaling, whitening and random augmentation do to the images, and to their pixel values."""

import streamlit as st

st.set_page_config(page_title="Preprocessing · CNN Playground", page_icon=":material/tune:", layout="wide")

from playground.ui.home import ensure_navigation  # noqa: E402  (after set_page_config)
from playground.ui.preprocessing_page import render  # noqa: E402

ensure_navigation()
render()
