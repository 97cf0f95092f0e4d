"""Compare runs: the run history as a table, overlaid curves, ensembles, rename and delete."""

import streamlit as st

st.set_page_config(page_title="Compare runs · CNN Playground", layout="wide")

from playground.ui.compare_runs_page import render  # noqa: E402  (after set_page_config)
from playground.ui.home import ensure_navigation  # noqa: E402

ensure_navigation()
render()
