"""Architecture: the network's layers, shapes and costs, its Keras code, and convolution arithmetic by hand."""

import streamlit as st

st.set_page_config(page_title="Architecture · CNN Playground", page_icon=":material/account_tree:", layout="wide")

from playground.ui.architecture_page import render  # noqa: E402  (after set_page_config)
from playground.ui.home import ensure_navigation  # noqa: E402

ensure_navigation()
render()
