"""AppTest of the home page and the Playground, driven through their widgets, plus URL validation.

AppTest cannot run a fragment's timer, so the training test reruns the page
in a loop until the run has finished, as the browser's timer would.
"""

import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from playground.runs.store import RunStore
from playground.data.catalog import CATALOG
from playground.spec.experiment import ExperimentSpec
from playground.spec.url import read_url, safe_dataset, url_params
from playground.ui.plain_text import escape_markdown

ROOT = Path(__file__).resolve().parents[1]
PLAYGROUND = "pages/1_Playground.py"
FIRST_RUN_TIMEOUT = 180  # the first run imports TensorFlow to build the layer table
TRAIN_TIMEOUT = 240


def app(page: str | None = None, **params: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=FIRST_RUN_TIMEOUT)
    if page:
        at.switch_page(page)
    for name, value in params.items():
        at.query_params[name] = value
    return at.run()


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def run_until(at: AppTest, done, timeout: float = TRAIN_TIMEOUT) -> AppTest:
    """Rerun the page (as the live fragment's timer does) until `done(at)` or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        if done(at):
            return at
        time.sleep(0.3)
    raise AssertionError(f"Timed out; the page says: {texts(at.markdown)}")


def image_captions(at: AppTest) -> list[str]:
    return [str(image.proto.imgs[0].caption) for image in at.get("image")]


def metric(at: AppTest, label: str) -> str | None:
    return next((m.value for m in at.metric if m.label == label), None)


def test_home_page_lists_datasets_and_pages():
    at = app()
    assert not at.exception
    assert at.title[0].value == "CNN Playground"
    table = at.table[0].value
    assert set(table["name in links"]) == set(CATALOG)
    shapes = table[table["name in links"] == "shapes"].iloc[0]
    assert shapes["here"] == "yes"
    assert "Quick start" in texts(at.subheader)


def test_playground_page_shows_controls_layer_table_and_url():
    at = app(PLAYGROUND, dataset="shapes")
    assert not at.exception
    assert [b.label for b in at.button if b.key and b.key in ("pg_train", "pg_pause", "pg_step", "pg_reset", "pg_stop")] == [
        "Train", "Pause", "Step", "Reset", "Stop"]
    assert not at.button(key="pg_train").disabled and at.button(key="pg_pause").disabled
    layers = at.dataframe[0].value
    assert "block1_conv1" in list(layers["layer"]) and layers["params"].sum() > 0
    # What Train will cost, estimated before it starts.
    estimate = next(c.value for c in at.caption if c.value.startswith("Estimate:"))
    assert "per epoch of" in estimate and "MFLOPs per image" in estimate
    # The whole spec is in the URL, and reading it back gives the same spec.
    assert ExperimentSpec.from_query_params(dict(at.query_params)) == ExperimentSpec().with_values(dataset="shapes")


def test_sliders_move_the_layer_table_and_presets_fill_the_controls():
    at = app(PLAYGROUND, dataset="shapes")
    at.slider(key="pg_conv_blocks").set_value(4).run()
    assert [at.select_slider(key=f"pg_filters_{b}").value for b in range(4)] == [16, 32, 64, 128]  # doubled
    assert "block4_conv1" in list(at.dataframe[0].value["layer"])
    assert any(c.value.startswith("Estimate:") for c in at.caption)
    at.select_slider(key="pg_filters_0").set_value(8).run()
    row = at.dataframe[0].value.set_index("layer").loc["block1_conv1"]
    assert row["output"] == "28 × 28 × 8" and row["params"] == 3 * 3 * 1 * 8  # no bias: batch norm follows

    at.selectbox(key="pg_preset").select("lenet5").run()
    assert at.slider(key="pg_kernel_size").value == 5
    assert at.selectbox(key="pg_padding").value == "valid"
    assert [at.select_slider(key=f"pg_filters_{b}").value for b in range(2)] == [6, 16]
    assert at.selectbox(key="pg_dataset").value == "shapes"  # a preset keeps the data
    assert at.query_params["preset"] == "lenet5" and at.query_params["kernel_size"] == "5"


def layers(at: AppTest) -> list[str]:
    return list(at.dataframe[0].value["layer"])


def test_the_diagrams_buttons_edit_the_network_as_the_sliders_do():
    at = app(PLAYGROUND, dataset="shapes")
    assert len(at.get("image")) == 1  # the untrained network, drawn before any training
    at.button(key="pg_net_add_block").click().run()
    assert at.slider(key="pg_conv_blocks").value == 4 and at.query_params["conv_blocks"] == "4"
    assert [at.select_slider(key=f"pg_filters_{b}").value for b in range(4)] == [16, 32, 64, 128]
    assert "block4_conv1" in layers(at) and any(c.value.startswith("Estimate:") for c in at.caption)
    at.button(key="pg_net_more_filters_0").click().run()  # the sliders' next stop
    assert at.select_slider(key="pg_filters_0").value == 24 and at.query_params["filters"] == "24,32,64,128"
    assert at.dataframe[0].value.set_index("layer").loc["block1_conv1"]["output"] == "28 × 28 × 24"
    at.button(key="pg_net_fewer_filters_3").click().run()
    assert at.query_params["filters"] == "24,32,64,96"
    at.button(key="pg_net_remove_block").click().run()
    assert at.query_params["conv_blocks"] == "3" and "block4_conv1" not in layers(at)

    at.button(key="pg_net_fewer_units_0").click().run()  # half the units
    assert at.text_input(key="pg_dense_units").value == "64" and at.query_params["dense_units"] == "64"
    at.button(key="pg_net_add_dense").click().run()
    assert at.query_params["dense_units"] == "64,64" and "dense2" in layers(at)
    at.button(key="pg_net_remove_dense").click().run()
    at.button(key="pg_net_remove_dense").click().run()
    assert at.query_params["dense_units"] == "" and "dense1" not in layers(at)
    assert not at.exception and not at.error
    assert ExperimentSpec.from_query_params(dict(at.query_params)).arch.filters == (24, 32, 64)


def test_an_impossible_edit_on_the_diagram_is_explained_and_not_made():
    at = app(PLAYGROUND, dataset="digits")  # 8x8 images: three pooled blocks leave 1x1 maps
    at.button(key="pg_net_add_block").click().run()
    assert "shrinks to zero after the 4th pooling" in texts(at.error)
    assert at.query_params["conv_blocks"] == "3" and "block4_conv1" not in layers(at)
    assert not at.button(key="pg_train").disabled  # the network is as it was, and trains

    at = app(PLAYGROUND, dataset="digits", filters="1,32,64", dense_units="")
    at.button(key="pg_net_fewer_filters_0").click().run()  # refused by the spec's own rule
    assert escape_markdown("Each block needs 1 to 1024 filters") in texts(at.error)
    at.button(key="pg_net_remove_dense").click().run()
    assert "no dense layer to remove" in texts(at.error)
    assert at.query_params["filters"] == "1,32,64" and at.query_params["dense_units"] == ""


def test_impossible_settings_are_explained_and_train_is_disabled():
    at = app(PLAYGROUND, dataset="digits", padding="valid", kernel_size="7", conv_blocks="2")
    assert not at.exception
    errors = texts(at.error)
    assert "does not fit" in errors and "Train is disabled" in errors
    assert at.button(key="pg_train").disabled
    at.selectbox(key="pg_padding").select("same").run()
    assert not at.button(key="pg_train").disabled


def test_a_run_over_the_servers_budget_disables_train_with_its_reason(monkeypatch):
    monkeypatch.setenv("PLAYGROUND_RUN_BUDGET_MINUTES", "1")
    at = app(PLAYGROUND, dataset="fashion_mnist", epochs="50")  # about 60,000 images x 50 epochs
    assert not at.exception
    errors = texts(at.error)
    assert "one run may take here" in errors and "Train is disabled" in errors
    assert at.button(key="pg_train").disabled
    at = app(PLAYGROUND, dataset="digits", epochs="2")  # seconds: within the budget
    assert not at.button(key="pg_train").disabled and "one run may take here" not in texts(at.error)


def test_bad_url_values_give_one_message_and_defaults(tmp_path):
    # A named pipe: reading it would block this test forever, so passing proves it is never read.
    secret = tmp_path / "secret.npz"
    os.mkfifo(secret)
    at = app(PLAYGROUND, dataset=str(secret), filters="100000", learning_rate="banana", epochs="3")
    assert not at.exception
    assert len(at.warning) == 1
    message = at.warning[0].value  # the link's values as plain text: their punctuation escaped for markdown
    assert "could not be used" in message and escape_markdown(str(secret)) in message
    assert escape_markdown("filters=100000") in message and escape_markdown("learning_rate='banana'") in message
    assert at.query_params["dataset"] == "fashion_mnist" and at.query_params["filters"] == "16,32,64"
    assert at.query_params["epochs"] == "3"  # the good values of the link are kept

    at = app(PLAYGROUND, dataset="../../etc/passwd")
    assert escape_markdown("'../../etc/passwd'") in at.warning[0].value and at.query_params["dataset"] == "fashion_mnist"


def test_url_datasets_are_limited_to_names_and_uploads(tmp_path):
    uploads = tmp_path / "uploads"
    (uploads / "mine").mkdir(parents=True)
    (uploads / "pets.npz").write_bytes(b"")
    outside = tmp_path / "outside.npz"
    outside.write_bytes(b"")
    assert safe_dataset("mnist", uploads) == "mnist"
    assert safe_dataset("pets.npz", uploads) == str((uploads / "pets.npz").resolve())
    assert safe_dataset(str(uploads / "mine"), uploads) == str((uploads / "mine").resolve())
    for bad in ("../outside.npz", str(outside), "/etc/passwd", "mine/../../outside.npz", "", ".", "x\x00.npz"):
        assert safe_dataset(bad, uploads) is None, bad
    state = read_url({"dataset": "../outside.npz", "conv_blocks": "3", "filters": "4,8", "classroom": "1"}, uploads_dir=uploads)
    assert state.spec.data.dataset == "fashion_mnist" and state.spec.arch.filters == (4, 8, 16) and state.classroom
    assert len(state.messages) == 2
    # Links name an upload relative to the uploads folder, and such a link reads back to the same file.
    mine = read_url({"dataset": "mine"}, uploads_dir=uploads).spec
    params = url_params(mine, uploads_dir=uploads)
    assert params["dataset"] == "mine"
    assert read_url(params, uploads_dir=uploads).spec == mine
    assert url_params(mine)["dataset"] == str((uploads / "mine").resolve())


def test_a_link_with_filters_alone_sets_the_block_count(tmp_path):
    state = read_url({"filters": "4,8"}, uploads_dir=tmp_path)
    assert state.spec.arch.conv_blocks == 2 and state.spec.arch.filters == (4, 8) and not state.messages
    state = read_url({"filters": "100000"}, uploads_dir=tmp_path)  # refused: blocks and filters stay the default's
    assert state.spec.arch == ExperimentSpec().arch and len(state.messages) == 1


def test_classroom_mode_hides_advanced_controls_but_keeps_their_values():
    at = app(PLAYGROUND, dataset="shapes", convs_per_block="2", classroom="1")
    keys = {w.key for w in at.slider} | {w.key for w in at.selectbox} | {w.key for w in at.toggle}
    assert "pg_conv_blocks" in keys and "pg_convs_per_block" not in keys and "pg_residual" not in keys
    at.slider(key="pg_kernel_size").set_value(5).run()
    assert at.query_params["convs_per_block"] == "2" and at.query_params["classroom"] == "1"


def test_a_dataset_that_is_not_here_offers_a_built_in_one():
    at = app(PLAYGROUND, dataset="cifar10")
    assert "not on this server yet" in texts(at.warning)
    at.button(key="pg_switch_shapes").click().run()
    assert at.selectbox(key="pg_dataset").value == "shapes"
    assert at.query_params["dataset"] == "shapes" and not texts(at.warning)


def test_an_unreadable_upload_is_explained_with_a_way_out():
    from playground.settings import get_settings

    uploads = get_settings().uploads_dir
    uploads.mkdir(parents=True)
    (uploads / "broken.npz").write_bytes(b"this is not a numpy archive")
    at = app(PLAYGROUND, dataset="broken.npz")
    assert not at.exception and at.query_params["dataset"].endswith("broken.npz")
    assert escape_markdown("broken.npz") in texts(at.warning)
    assert "The layer table appears once the dataset can be read." in texts(at.caption)
    at.button(key="pg_switch_digits").click().run()
    assert at.query_params["dataset"] == "digits" and not texts(at.warning)


@pytest.mark.slow  # trains three tiny runs for real in a worker process
def test_train_through_the_widgets_continue_and_reset():
    at = app(PLAYGROUND)
    at.selectbox(key="pg_dataset").select("shapes").run()
    at.select_slider(key="pg_sample_size").set_value(300)
    at.slider(key="pg_conv_blocks").set_value(2).run()
    at.select_slider(key="pg_filters_0").set_value(4)
    at.select_slider(key="pg_filters_1").set_value(8)
    at.text_input(key="pg_dense_units").input("16")
    at.select_slider(key="pg_batch_size").set_value(32)
    at.select_slider(key="pg_epochs").set_value(2).run()
    assert not at.exception

    at.button(key="pg_train").click().run()
    assert at.button(key="pg_train").disabled and not at.button(key="pg_stop").disabled
    assert at.button(key="pg_net_add_block").disabled  # no edits on the diagram while it trains
    run_until(at, lambda a: metric(a, "Test accuracy") is not None)
    assert metric(at, "Epoch") == "2 / 2"
    run_id = at.session_state["pg_run_id"]
    record = RunStore().load(run_id)
    assert record.owner == at.session_state["pg_owner"] and record.spec.arch.filters == (4, 8)
    # The living network after training: replayed epoch by epoch, its weights, and one map closer.
    assert at.select_slider(key="pg_replay").options == ["before training", "epoch 1", "epoch 2"]
    assert any("The network after epoch 2" in c for c in image_captions(at))
    at.select_slider(key="pg_replay").set_value(1).run()
    assert any("The network after epoch 1" in c for c in image_captions(at))
    assert any(c.startswith(tuple(f"{n} of " for n in range(101))) and "right after epoch 1" in c for c in image_captions(at))
    at.button_group(key="pg_view").set_value("weights").run()
    assert not at.exception and any("brighter" in c.value for c in at.caption)
    at.button_group(key="pg_view").set_value("closer").run()
    assert {"Mean", "Max", "Zeros"} <= {m.label for m in at.metric} and at.selectbox(key="pg_closer_block").value == "block1"
    at.button_group(key="pg_view").set_value("decision").run()

    # Train again with only a training setting changed: the same model continues.
    at.select_slider(key="pg_learning_rate").set_value(0.0005).run()
    at.button(key="pg_train").click().run()
    run_until(at, lambda a: metric(a, "Test accuracy") is not None and a.session_state["pg_run_id"] != run_id)
    assert metric(at, "Epoch") == "4 / 4"
    continued = RunStore().load(at.session_state["pg_run_id"])
    assert continued.metrics["epochs_completed"] == 4 and len(continued.history["loss"]) == 4

    at.button(key="pg_reset").click().run()
    assert at.session_state["pg_run_id"] is None and metric(at, "Epoch") == "–"
    at.button(key="pg_step").click().run()  # Step on a fresh model: one epoch, then pause
    run_until(at, lambda a: "Paused after epoch 1" in texts(a.markdown))
    at.button(key="pg_stop").click().run()
    run_until(at, lambda a: metric(a, "Test accuracy") is not None)
    assert metric(at, "Epoch") == "1 / 2"


def test_the_first_point_of_a_curve_shows_as_a_dot_and_later_ones_as_a_line():
    from playground.training import events
    from playground.training.progress import RunProgress
    from playground.ui import live

    p = RunProgress()
    p.update([events.Start(epochs=2, initial_epoch=0, steps_per_epoch=10, batch_size=8, params=0, train_size=80, val_size=0),
              events.Batch(epoch=1, step=0, steps=10, seen=0, loss=1.6, accuracy=0.2, images_per_second=None, elapsed=0.0)])
    first = live._curve_figure("Loss", p, "loss", "val_loss", 1, "loss").data[0]
    assert first.mode == "markers" and list(first.y) == [1.6]
    p.update([events.Batch(epoch=1, step=1, steps=10, seen=8, loss=1.4, accuracy=0.3, images_per_second=80.0, elapsed=0.1)])
    assert live._curve_figure("Loss", p, "loss", "val_loss", 1, "loss").data[0].mode == "lines"
