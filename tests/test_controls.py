"""The Playground's sidebar is built from the settings table (playground.spec.fields.FIELDS)."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from playground.spec.experiment import ExperimentSpec
from playground.spec.fields import FIELDS, NUMBER, SELECT, SELECT_SLIDER, SLIDER, TEXT, TOGGLE
from playground.spec.presets import PRESETS
from playground.ui.controls import FORMATS, filter_key, key

ROOT = Path(__file__).resolve().parents[1]
FIRST_RUN_TIMEOUT = 180  # the first run imports TensorFlow to build the layer table


def playground(**params: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=FIRST_RUN_TIMEOUT)
    at.switch_page("pages/1_Playground.py")
    for name, value in params.items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, at.exception
    return at


def _widgets(at: AppTest, name: str):
    # The page's widgets of the kind the table gives field `name`.
    return {SELECT: at.selectbox, SELECT_SLIDER: at.select_slider, SLIDER: at.slider, NUMBER: at.number_input,
            TOGGLE: at.toggle, TEXT: at.text_input}[FIELDS[name].widget]


def _key(name: str) -> str:
    return filter_key(0) if name == "filters" else key(name)


def _widget(at: AppTest, name: str):
    return _widgets(at, name)(key=_key(name))


def test_every_format_name_of_the_table_has_a_format():
    assert {info.fmt for info in FIELDS.values()} <= set(FORMATS)


def test_every_control_is_built_from_its_row_in_the_table():
    at = playground(dataset="shapes")  # the default spec: every value is one of its slider's stops
    for name, info in FIELDS.items():
        widget = _widget(at, name)
        assert widget.label == (f"{info.label} 1" if name == "filters" else info.label), name
        assert (widget.help or None) == info.help, name
        if info.widget == SELECT and info.choices is not None:
            assert widget.options == list(info.choices.values()), name  # the options are the choices, as labels
        if info.widget == SELECT_SLIDER:
            assert widget.options == [FORMATS[info.fmt](stop) for stop in info.stops], name
        if info.widget in (SLIDER, NUMBER):
            assert (widget.min, widget.max) == (info.lo, info.hi), name
        if info.widget == NUMBER:
            assert widget.step == info.step, name
    assert _widget(at, "preset").options == [preset.title for preset in PRESETS.values()]
    blocks = ExperimentSpec().arch.conv_blocks
    assert [at.select_slider(key=filter_key(b)).label for b in range(blocks)] == [
        f"{FIELDS['filters'].label} {b + 1}" for b in range(blocks)]


def test_classroom_mode_hides_exactly_the_advanced_controls():
    at = playground(dataset="shapes", classroom="1")
    for name, info in FIELDS.items():
        shown = any(widget.key == _key(name) for widget in _widgets(at, name))
        assert shown != info.advanced, name
    assert at.query_params["convs_per_block"] == "1"  # a hidden control keeps its value in the link
