"""Your data: upload a .zip of class folders (or a .npz), look at it, and train on it."""

import streamlit as st

st.set_page_config(page_title="Your data · CNN Playground", page_icon=":material/folder_zip:", layout="wide")

from playground.ui.home import ensure_navigation  # noqa: E402  (after set_page_config)
from playground.ui.your_data_page import render  # noqa: E402

ensure_navigation()
render()
