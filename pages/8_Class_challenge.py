"""Class challenge: the teacher sets a target, students submit their own runs to a live leaderboard."""

import streamlit as st

st.set_page_config(page_title="Class challenge · CNN Playground", layout="wide")

from playground.ui.class_challenge_page import render  # noqa: E402  (after set_page_config)
from playground.ui.home import ensure_navigation  # noqa: E402

ensure_navigation()
render()
