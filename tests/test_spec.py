"""ExperimentSpec: round trips, validation messages and presets (pure Python, no Keras)."""

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playground.spec.experiment import DataSpec, field_names, resize_filters
from playground.spec.presets import PRESETS, apply_preset, preset_spec
from playground.spec.arithmetic import conv_output_size, receptive_field, same_padding
from playground.spec.experiment import ExperimentSpec, SpecError
from playground.spec.validation import check, validate


def test_defaults_are_valid_for_every_named_dataset():
    for name in ("mnist", "fashion_mnist", "cifar10", "shapes", "digits"):
        assert check(ExperimentSpec().with_values(dataset=name)) == []


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_round_trips_through_json_and_url(name):
    spec = preset_spec(name, dataset="cifar10", seed=7)
    assert ExperimentSpec.from_json(spec.to_json()) == spec
    params = spec.to_query_params()
    assert all(isinstance(v, str) for v in params.values())
    assert ExperimentSpec.from_query_params(params) == spec
    assert check(spec) == []


def test_url_round_trip_keeps_floats_exactly():
    spec = ExperimentSpec().with_values(learning_rate=0.0003162277660168379, rotation=12.5)
    back = ExperimentSpec.from_query_params(spec.to_query_params())
    assert back.train.learning_rate == 0.0003162277660168379
    assert back == spec


def test_query_params_parse_lists_bools_and_ignore_foreign_keys():
    spec = ExperimentSpec.from_query_params(
        {"filters": "8,16,32", "conv_blocks": "3", "batch_norm": "0", "flip": ["false", "true"], "classroom": "1"}
    )
    assert spec.arch.filters == (8, 16, 32)
    assert spec.arch.batch_norm is False
    assert spec.preprocess.flip is True  # the last value wins, as in browsers
    assert spec.data == DataSpec()


def test_with_values_takes_tuples_as_values():
    spec = ExperimentSpec().with_values(filters=(8, 16), dense_units=(), epochs=3)
    assert spec.arch.filters == (8, 16) and spec.arch.dense_units == () and spec.train.epochs == 3


def test_with_values_keeps_filters_and_block_count_in_step():
    base = ExperimentSpec()
    assert base.with_values(filters="8,16").arch.conv_blocks == 2  # filters alone: one block per entry
    assert base.with_values(conv_blocks=4).arch.filters == base.arch.filters + (128,)  # blocks alone: doubled
    assert base.with_values(conv_blocks=1).arch.filters == base.arch.filters[:1]
    assert base.with_values(conv_blocks=0).arch.filters == ()
    # Both given: taken as they are, so a mismatch is reported, not repaired.
    mismatched = base.with_values(conv_blocks=3, filters="8,16")
    assert mismatched.arch.conv_blocks == 3 and mismatched.arch.filters == (8, 16) and check(mismatched)
    # The strict parser (what a link's single field goes through) infers nothing.
    assert ExperimentSpec.from_query_params({"filters": "8,16"}).arch.conv_blocks == base.arch.conv_blocks
    assert check(base.with_values(conv_blocks=99))  # out of range: reported, filters untouched
    assert base.with_values(conv_blocks=99).arch.filters == base.arch.filters


def test_empty_dense_units_round_trip():
    spec = preset_spec("mini_resnet")
    assert spec.arch.dense_units == ()
    assert ExperimentSpec.from_query_params(spec.to_query_params()).arch.dense_units == ()


@pytest.mark.parametrize(
    "key,value",
    [("epochs", "many"), ("learning_rate", "nan"), ("learning_rate", "inf"), ("batch_norm", "maybe"), ("filters", "8,x")],
)
def test_malformed_url_values_name_the_key_and_value(key, value):
    with pytest.raises(SpecError) as info:
        ExperimentSpec.from_query_params({key: value})
    assert key in str(info.value) and repr(value) in str(info.value)
    assert info.value.field_name == key


def test_json_rejects_unknown_keys_and_wrong_types():
    data = ExperimentSpec().to_dict()
    data["arch"]["layers"] = 3
    with pytest.raises(SpecError, match="layers"):
        ExperimentSpec.from_dict(data)
    data = ExperimentSpec().to_dict()
    data["train"]["epochs"] = "5"
    with pytest.raises(SpecError, match="epochs"):
        ExperimentSpec.from_dict(data)
    with pytest.raises(SpecError, match="JSON"):
        ExperimentSpec.from_json("{not json")


def test_shrinking_to_zero_is_explained_with_the_pooling_number():
    spec = ExperimentSpec().with_values(conv_blocks=5, filters="8,8,8,8,8")
    [problem] = check(spec)
    assert problem.field_name == "conv_blocks"
    assert "after the 5th pooling on the 28x28 input" in problem.message
    with pytest.raises(SpecError, match="5th pooling"):
        validate(spec)
    # The same network fits a 32x32 input.
    assert check(spec, (32, 32, 3)) == []


def test_valid_kernel_that_does_not_fit_is_explained():
    spec = ExperimentSpec().with_values(dataset="digits", conv_blocks=2, padding="valid", kernel_size=5, pooling="none")
    [problem] = check(spec)
    assert problem.field_name == "kernel_size" and "kernel_size=5" in problem.message


@pytest.mark.parametrize(
    "changes,field_name",
    [
        ({"filters": "100000,64"}, "filters"),
        ({"conv_blocks": 3, "filters": "8,16"}, "filters"),
        ({"activation": "swish"}, "activation"),
        ({"learning_rate": 50.0}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"residual": True, "padding": "valid"}, "residual"),
        ({"dense_units": "4096,4096,4096", "pooling": "none", "conv_blocks": 1, "filters": "1024"}, "dense_units"),
        ({"dataset": "no such thing"}, "dataset"),
        ({"validation_split": 0.9}, "validation_split"),
    ],
)
def test_impossible_settings_give_one_sentence_on_the_right_field(changes, field_name):
    problems = check(ExperimentSpec().with_values(**changes))
    assert problems, changes
    assert problems[0].field_name == field_name
    assert "\n" not in problems[0].message


def test_paths_are_accepted_as_datasets_but_not_control_characters():
    assert check(ExperimentSpec().with_values(dataset="data/uploads/pets.npz")) == []
    assert check(ExperimentSpec().with_values(dataset="bad\x00name.npz"))


def test_apply_preset_keeps_data_and_seed():
    spec = ExperimentSpec(seed=5).with_values(dataset="cifar10", sample_size=1000)
    lenet = apply_preset(spec, "lenet5")
    assert lenet.data == spec.data and lenet.seed == 5
    assert lenet.arch.filters == (6, 16) and lenet.preset == "lenet5"
    with pytest.raises(SpecError, match="Unknown preset"):
        apply_preset(spec, "gpt")


def test_resize_filters_doubles_and_truncates():
    assert resize_filters((16, 32), 4) == (16, 32, 64, 128)
    assert resize_filters((16, 32, 64), 1) == (16,)
    assert resize_filters((768,), 3) == (768, 1024, 1024)


def test_spec_id_is_stable_and_changes_with_the_spec():
    assert ExperimentSpec().spec_id() == ExperimentSpec().spec_id()
    assert ExperimentSpec().spec_id() != ExperimentSpec(seed=1).spec_id()


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(field_names()), st.text(max_size=12), max_size=6))
def test_fuzz_query_params_only_raise_spec_errors(params):
    try:
        spec = ExperimentSpec.from_query_params(params)
    except SpecError:
        return
    check(spec)  # never raises: problems are returned
    assert ExperimentSpec.from_query_params(spec.to_query_params()) == spec


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
                    max_leaves=12))
def test_fuzz_json_only_raises_spec_errors(data):
    try:
        ExperimentSpec.from_json(json.dumps(data))
    except SpecError:
        pass


# --- arithmetic -------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 5, 7, 8, 28, 32])
@pytest.mark.parametrize("kernel", [1, 2, 3, 5])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_output_size_matches_the_formula(size, kernel, stride):
    # VALID: (H + 2*0 - F) / S + 1; SAME: (H + P - F) / S + 1 with TensorFlow's padding P.
    valid = conv_output_size(size, kernel, stride, "valid")
    assert valid == (max((size - kernel) // stride + 1, 0) if size >= kernel else 0)
    before, after = same_padding(size, kernel, stride)
    assert conv_output_size(size, kernel, stride, "same") == (size + before + after - kernel) // stride + 1


def test_receptive_field_of_a_vgg_stack():
    # Two 3x3 convs see 5x5, a 2x2 pool doubles the jump, a third 3x3 conv then sees 10x10.
    assert receptive_field([(3, 1), (3, 1), (2, 2), (3, 1)]) == [3, 5, 6, 10]


def test_spec_and_arithmetic_import_no_third_party_module():
    code = "import sys, playground.spec.experiment, playground.spec.arithmetic; bad = [m for m in ('numpy', 'tensorflow', 'keras', 'streamlit') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
