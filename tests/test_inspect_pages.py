"""AppTest of the Architecture, Activations and Preprocessing pages, with and without a saved run."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import tiny_runs
from playground.analysis import conv_explainer as ce

PAGES = Path(__file__).resolve().parents[1] / "pages"
TINY = {"dataset": "shapes", "filters": "4,8", "sample_size": "200"}  # a quick untrained network from the link


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A runs folder with one tiny trained run (shapes, 200 images, filters 4 and 8), trained once per test process."""
    from playground.runs.store import RunStore

    spec, data, result = tiny_runs.trained("shapes")
    root = tmp_path_factory.mktemp("runs")
    RunStore(root).save(result, spec, data, name="tiny shapes run")
    return root


@pytest.fixture
def with_run(run_dir, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(run_dir))


def _page(name, **params):
    app = AppTest.from_file(str(PAGES / name), default_timeout=120)
    for key, value in params.items():
        app.query_params[key] = value
    return app.run()


def _no_exception(app):
    assert not app.exception, [e.value for e in app.exception]


def _code(app, prefix):
    return next(c.value for c in app.code if c.value.startswith(prefix))


def test_architecture_without_runs_shows_the_untrained_playground_network():
    from playground.model import network as models
    from playground.spec.experiment import ExperimentSpec
    from playground.spec.presets import apply_preset

    app = _page("2_Architecture.py", **TINY, preset="lenet5")
    _no_exception(app)
    assert app.radio(key="arch_source").value == "playground"
    assert any("Untrained network" in w.value for w in app.warning)
    # The link's preset is applied, then its fields: LeNet-5 on shapes with filters 4 and 8.
    spec = apply_preset(ExperimentSpec(), "lenet5").with_values(**TINY)
    expected = models.build_model(spec, (28, 28, 1), 5).count_params()
    assert app.metric[1].label == "Parameters" and app.metric[1].value == f"{expected:,}"
    assert "def build_model(" in _code(app, '"""')
    assert app.get("download_button")


def test_architecture_explains_an_impossible_network_and_keeps_the_explainer():
    app = _page("2_Architecture.py", dataset="digits", padding="valid", kernel_size="7", conv_blocks="2", filters="4,8")
    _no_exception(app)
    assert any("cannot be built" in e.value and "kernel_size=7" in e.value for e in app.error)
    assert _code(app, "H_out").endswith("= 3")  # the explainer below still works


def test_architecture_shows_the_spec_being_edited_on_the_playground():
    from playground.model import network as models
    from playground.spec.experiment import ExperimentSpec
    from playground.ui import controls

    spec = ExperimentSpec().with_values(dataset="shapes", conv_blocks=3, filters="4,8,16", dense_units="32")
    app = AppTest.from_file(str(PAGES / "2_Architecture.py"), default_timeout=120)
    app.session_state[controls.SPEC_KEY] = spec  # what the Playground keeps while its sliders move
    app.run()
    _no_exception(app)
    expected = models.build_model(spec, (28, 28, 1), 5).count_params()
    assert app.metric[1].value == f"{expected:,}"


def test_architecture_explainer_follows_padding_stride_and_the_chosen_cell():
    app = _page("2_Architecture.py", **TINY)
    app.slider(key="ce_size").set_value(6)
    app.radio(key="ce_padding").set_value("same")
    app.slider(key="ce_stride").set_value(2)
    app.run()
    _no_exception(app)
    assert "(6 + 0 + 1 − 3) / 2 + 1 = 4 / 2 + 1 = 3" in _code(app, "H_out")  # TensorFlow pads the odd pixel after
    app.selectbox(key="ce_pick_row").set_value(2)
    app.selectbox(key="ce_pick_col").set_value(1)
    app.run()
    _no_exception(app)
    image = ce.preset_image("Vertical edge", 6, 6)
    kernel = ce.preset_filter("Vertical edge (Sobel x)")
    expected, _ = ce.conv2d(image, kernel, 2, "same")
    worked = next(c.value for c in app.code if "·" in c.value)
    assert worked.endswith(f"= {expected[0, 2, 1]:g}")
    assert worked.count("·") == 9
    # Max pooling of output 1, SAME with stride 2 on a 3x3 map: a 2x2 result.
    app.radio(key="ce_pool_padding").set_value("same")
    app.run()
    _no_exception(app)
    assert _code(app, "H_out = (H + 2P − F) / S + 1 = (3 + 0 + 1 − 2)").endswith("= 2")


def test_architecture_of_a_saved_run(with_run):
    app = _page("2_Architecture.py")
    _no_exception(app)
    assert app.radio(key="arch_source").value == "run"
    assert any("tiny shapes run" in s.value for s in app.success)


def test_activations_of_a_saved_run(with_run):
    app = _page("3_Activations.py")
    _no_exception(app)
    assert any("The network says" in m.value for m in app.markdown)
    assert any("ReLU set" in c.value for c in app.caption)
    assert any(m.value.startswith("**block2_conv1** · 8 maps of 14 × 14") for m in app.markdown)
    app.button(key="act_random").click().run()
    _no_exception(app)
    app.selectbox(key="act_class").set_value(4).run()
    _no_exception(app)
    assert "Grad-CAM" in app.caption[-1].value


def test_activations_of_a_run_whose_weights_do_not_fit_its_spec_says_so(run_dir, tmp_path, monkeypatch):
    import shutil

    from playground.spec.experiment import ExperimentSpec

    broken = tmp_path / "broken_runs"
    shutil.copytree(run_dir, broken)
    for spec_file in broken.glob("*/spec.json"):  # weights for filters (4, 8), spec now asking for (6, 8)
        spec_file.write_text(ExperimentSpec.from_json(spec_file.read_text()).with_values(filters="6,8").to_json())
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(broken))
    app = _page("3_Activations.py")
    _no_exception(app)
    assert any("do not fit its spec" in e.value for e in app.error)


def test_activations_without_runs_say_the_network_is_untrained():
    app = _page("3_Activations.py", **TINY)
    _no_exception(app)
    assert any("Untrained network" in w.value for w in app.warning)
    assert any("The network says" in m.value for m in app.markdown)


def test_preprocessing_of_a_saved_run_and_the_augmentation_sliders(with_run):
    app = _page("4_Preprocessing.py")
    _no_exception(app)
    assert any("tiny shapes run" in c.value for c in app.caption)
    assert any("Every augmentation is off" in i.value for i in app.info)
    rotation = next(s for s in app.slider if s.key.startswith("pre_rotation_"))
    rotation.set_value(30).run()
    _no_exception(app)
    assert not any("Every augmentation is off" in i.value for i in app.info)


def test_preprocessing_without_runs_uses_the_playground_settings():
    app = _page("4_Preprocessing.py", **TINY, normalization="per_image", flip="true")
    _no_exception(app)
    assert any("Per-image whitening" in m.value for m in app.markdown)
    flip = next(t for t in app.toggle if t.key.startswith("pre_flip_"))
    assert flip.value is True


@pytest.mark.parametrize("page", ["1_Playground.py", "2_Architecture.py", "3_Activations.py", "4_Preprocessing.py"])
def test_a_link_to_an_impossible_network_gets_one_sentence_never_a_traceback(page):
    # Every page that reads the experiment from its link; 8x8 digits cannot take four poolings.
    app = _page(page, dataset="digits", conv_blocks="4")
    _no_exception(app)
    if page == "3_Activations.py":
        (error,) = [e.value for e in app.error]
        assert error.startswith("This network cannot be built: The feature map shrinks to zero") and "\n" not in error


def test_a_links_values_are_shown_as_plain_text():
    app = _page("3_Activations.py", dataset="[prize](http://example.com/x)", filters="4,8")
    _no_exception(app)
    shown = [w.value for w in app.warning] + [e.value for e in app.error]
    assert any("prize" in text for text in shown)
    assert not any("](http" in text for text in shown)  # escaped: "\]\(http", never a link
