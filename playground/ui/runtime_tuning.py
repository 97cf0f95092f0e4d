"""Streamlit's per-run housekeeping that this app does without.

After every script run, fragment runs included, Streamlit calls
`keras.backend.clear_session()` whenever Keras is imported (to free models a
script built and dropped). The web server imports Keras for the layer tables
and predictions, so every session's live panel, refreshed twice a second
while it trains, paid for a full garbage collection and a cleared TensorFlow
kernel cache. Profiled during training, that took a third of the server's
CPU, and with a class training at once it left the server too busy to answer
pages. It also reset Keras' global state under other sessions' threads while
they built a model. This app keeps no Keras state across runs (models are
cached or rebuilt explicitly, and layers are named), so the reset is skipped.

The garbage collection Streamlit forces after each run is turned off in
`.streamlit/config.toml` (`runner.postScriptGC`); Python's own collector
still runs.
"""

from __future__ import annotations

import sys
from typing import Any

from streamlit.runtime.scriptrunner import script_runner


def _close_pyplot_figures() -> None:
    """What Streamlit's hook does besides the Keras reset: close pyplot figures a script left open."""
    pyplot: Any = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


def skip_keras_reset() -> None:
    """Replace Streamlit's after-run hook with one that leaves Keras alone (idempotent).

    The hook is a private Streamlit function; if a future version renames it,
    nothing is replaced and Streamlit's own behaviour stays.
    """
    if callable(getattr(script_runner, "_clean_problem_modules", None)):
        script_runner._clean_problem_modules = _close_pyplot_figures
