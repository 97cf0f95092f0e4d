"""The experiment in the URL (playground.spec.url): old links with conv_blocks, values checked by spec.check."""

import pytest

from playground.spec.experiment import ExperimentSpec
from playground.spec.presets import preset_spec
from playground.spec.url import read_url, url_params


def read(tmp_path, **params):
    return read_url(params, uploads_dir=tmp_path)


@pytest.mark.parametrize("params,filters", [
    ({"conv_blocks": "3"}, (16, 32, 64)),
    ({"conv_blocks": "5"}, (16, 32, 64, 128, 256)),  # new blocks double the last
    ({"conv_blocks": "1"}, (16,)),
    ({"conv_blocks": "0"}, ()),
    ({"preset": "lenet5", "conv_blocks": "3"}, (6, 16, 32)),  # the preset's filters, resized
    ({"conv_blocks": "2", "filters": "4,8"}, (4, 8)),
    ({"filters": "4,8,16,32"}, (4, 8, 16, 32)),
])
def test_old_links_with_conv_blocks_load_without_messages(tmp_path, params, filters):
    state = read(tmp_path, **params)
    assert state.spec.arch.filters == filters and state.spec.arch.conv_blocks == len(filters)
    assert state.messages == ()


def test_a_block_count_that_disagrees_with_the_filters_resizes_them_and_says_so(tmp_path):
    state = read(tmp_path, conv_blocks="3", filters="4,8")
    assert state.spec.arch.filters == (4, 8, 16)
    assert state.messages == ("The link gives 2 filter count(s) for 3 conv block(s); using filters=4,8,16.",)
    state = read(tmp_path, conv_blocks="1", filters="4,8,16")
    assert state.spec.arch.filters == (4,)
    assert state.messages == ("The link gives 3 filter count(s) for 1 conv block(s); using filters=4.",)


def test_bad_block_counts_and_filters_fall_back_with_one_message_each(tmp_path):
    state = read(tmp_path, conv_blocks="99")
    assert state.spec == ExperimentSpec()
    assert state.messages == (
        "The number of conv blocks must be between 0 and 8. Received: conv_blocks=99; using conv_blocks=3 instead.",)
    state = read(tmp_path, conv_blocks="x", filters="4,8")
    assert state.spec.arch.filters == (4, 8)
    assert state.messages == ("'conv_blocks' must be a whole number. Received: conv_blocks='x'; using conv_blocks=2 instead.",)
    # Refused filters fall back to the default's, then follow the link's (valid) block count, silently.
    state = read(tmp_path, conv_blocks="2", filters="100000")
    assert state.spec.arch.filters == (16, 32)
    assert state.messages == ("Each block needs 1 to 1024 filters. Received: filters=100000; using filters=16,32,64 instead.",)
    state = read(tmp_path, filters="1,1,1,1,1,1,1,1,1")  # nine blocks: more than allowed
    assert state.spec.arch == ExperimentSpec().arch and len(state.messages) == 1
    assert "conv_blocks=9; using filters=16,32,64 instead." in state.messages[0]


def test_values_are_checked_on_their_own_and_shape_problems_stay_for_the_page(tmp_path):
    state = read(tmp_path, rotation="500", epochs="3", learning_rate="banana")
    assert state.spec.preprocess.rotation == 0.0 and state.spec.train.epochs == 3
    assert state.messages == (
        "'learning_rate' must be a number. Received: learning_rate='banana'; using learning_rate=0.01 instead.",
        "Rotation (degrees) must be between 0 and 180. Received: rotation=500.0; using rotation=0.0 instead.",
    )
    state = read(tmp_path, preset="lenet5", residual="true")  # LeNet-5 uses VALID padding
    assert state.spec.arch.residual is False and "using residual=false instead." in state.messages[0]
    # Too deep for 28x28, but each value is allowed: kept, and explained next to the controls.
    state = read(tmp_path, dataset="mnist", filters="8,8,8,8,8")
    assert state.spec.arch.filters == (8, 8, 8, 8, 8) and state.messages == ()


@pytest.mark.parametrize("name", ["default", "lenet5", "mini_resnet", "cifar_long"])
def test_url_params_read_back_to_the_same_spec(tmp_path, name):
    spec = preset_spec(name, "digits", seed=4)
    state = read_url(url_params(spec, classroom=True), uploads_dir=tmp_path)
    assert state.spec == spec and state.classroom and state.messages == ()
