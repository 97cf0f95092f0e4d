"""The server skips Streamlit's per-run Keras reset and forced garbage collection (see playground/ui/runtime_tuning.py)."""

import tomllib
from pathlib import Path

import keras
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def _counter(name: str) -> int:
    """The number Keras put after a layer's default name: "dense" -> 0, "dense_3" -> 3."""
    return int(name.rpartition("_")[2]) if "_" in name else 0


def test_a_page_run_leaves_keras_state_alone():
    # Keras numbers default layer names from its global state; Streamlit's reset restarted the count.
    before = keras.layers.Dense(1).name
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180).run()
    assert not at.exception
    assert _counter(keras.layers.Dense(1).name) == _counter(before) + 1


def test_the_server_config_turns_off_the_forced_garbage_collection():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False
