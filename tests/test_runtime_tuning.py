"""The server skips Streamlit's per-run Keras reset and forced garbage collection (see playground/ui/runtime_tuning.py)."""

import tomllib
from pathlib import Path

from keras.src.backend.common import global_state
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def test_a_page_run_leaves_keras_state_alone():
    # Keras keeps its global state per thread; Streamlit's reset replaced it for every thread.
    global_state.set_global_attribute("playground_test_marker", 42)
    try:
        at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180).run()
        assert not at.exception
        assert global_state.get_global_attribute("playground_test_marker") == 42
    finally:
        global_state.set_global_attribute("playground_test_marker", None)


def test_the_server_config_turns_off_the_forced_garbage_collection():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False
