"""Predict: your own images through a trained network, plus model export and bundle import."""

import streamlit as st

st.set_page_config(page_title="Predict · CNN Playground", page_icon=":material/photo_camera:", layout="wide")

from playground.ui.home import ensure_navigation  # noqa: E402  (after set_page_config)
from playground.ui.predict_page import render  # noqa: E402

ensure_navigation()
render()
