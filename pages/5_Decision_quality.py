"""Decision quality: how a saved run decides on its test set."""

import streamlit as st

st.set_page_config(page_title="Decision quality · CNN Playground", layout="wide")

from playground.ui.decision_quality_page import render  # noqa: E402  (after set_page_config)
from playground.ui.home import ensure_navigation  # noqa: E402

ensure_navigation()
render()
