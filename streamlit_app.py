"""CNN Playground: `streamlit run streamlit_app.py` opens the home page; every screen in pages/ follows.

The pages are found in pages/ (one file per screen, ordered by their number),
so a new screen only needs its file.
"""

import streamlit as st

st.set_page_config(page_title="CNN Playground", page_icon=":material/grid_on:", layout="wide")

from playground.ui.home import app_pages  # noqa: E402  (after set_page_config)
from playground.ui.runtime_tuning import skip_keras_reset  # noqa: E402
from playground.ui.session import touch  # noqa: E402

skip_keras_reset()  # no Keras reset and full garbage collection after every run of every session
touch()  # whatever page is open, a training run of this session is still wanted
st.navigation(app_pages()).run()
