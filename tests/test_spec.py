"""ExperimentSpec: round trips, validation messages and presets (pure Python, no Keras)."""

import dataclasses
import json
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playground.spec.experiment import (
    ArchSpec, DataSpec, field_names, get_value, resize_filters, with_block_filters, with_blocks, with_dense_units,
)
from playground.spec.fields import FIELDS, NUMBER, SELECT, SELECT_SLIDER, SLIDER, value_problems
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
    # Both given: they must agree; a mismatch is refused in one sentence naming both.
    assert base.with_values(conv_blocks=2, filters="8,16").arch.filters == (8, 16)
    with pytest.raises(SpecError) as info:
        base.with_values(conv_blocks=3, filters="8,16")
    assert str(info.value) == ("Give one filter count per conv block: 3 block(s) but 2 filter count(s). "
                               "Received: conv_blocks=3, filters=8,16")
    assert info.value.field_name == "filters"
    # The block count is the length of the filters, however the spec was read.
    assert ExperimentSpec.from_query_params({"filters": "8,16"}).arch.conv_blocks == 2
    with pytest.raises(SpecError, match="conv blocks must be between 0 and 8. Received: conv_blocks=99") as info:
        base.with_values(conv_blocks=99)  # out of range: refused, nothing resized
    assert info.value.field_name == "conv_blocks"


def test_conv_blocks_is_derived_from_the_filters_and_not_stored():
    spec = ExperimentSpec().with_values(filters="8,16,32,64")
    assert spec.arch.conv_blocks == 4
    assert "conv_blocks" not in {f.name for f in dataclasses.fields(ArchSpec)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.arch.conv_blocks = 2  # read-only: the filters decide


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
        ({"filters": "8,8,8,8,8,8,8,8,8"}, "conv_blocks"),
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


# --- serialised forms: byte-identical to the format saved runs, bundles and links use ---------------

# The default spec until the default trained 6 epochs with L2 weight decay 1e-3: saved runs and links hold it.
FIRST_DEFAULT_JSON = (
    '{"arch": {"activation": "relu", "batch_norm": true, "conv_blocks": 3, "conv_dropout": 0.0, "convs_per_block": 1, '
    '"dense_units": [128], "dropout": 0.1, "filters": [16, 32, 64], "global_pool": false, "init": "he", "kernel_size": 3, '
    '"padding": "same", "pooling": "max", "residual": false, "stride": 1, "weight_decay": 0.0}, '
    '"data": {"dataset": "fashion_mnist", "sample_size": 0, "shapes_noise": 0.2, "validation_split": 0.1}, '
    '"preprocess": {"brightness": 0.0, "contrast": 0.0, "crop_padding": 0, "flip": false, "normalization": "scale", '
    '"rotation": 0.0, "shift": 0.0}, "preset": "default", "seed": 0, '
    '"train": {"batch_size": 256, "epochs": 4, "learning_rate": 0.01, "optimizer": "adam", "schedule": "one_cycle", '
    '"time_budget": 0.0}}'
)
LENET5_LINK = [
    ("dataset", "fashion_mnist"), ("sample_size", "0"), ("validation_split", "0.1"), ("shapes_noise", "0.2"),
    ("normalization", "scale"), ("crop_padding", "0"), ("flip", "false"), ("rotation", "0.0"), ("shift", "0.0"),
    ("brightness", "0.0"), ("contrast", "0.0"), ("conv_blocks", "2"), ("filters", "6,16"), ("convs_per_block", "1"),
    ("kernel_size", "5"), ("stride", "1"), ("padding", "valid"), ("pooling", "avg"), ("global_pool", "false"),
    ("activation", "tanh"), ("batch_norm", "false"), ("conv_dropout", "0.0"), ("residual", "false"),
    ("dense_units", "120,84"), ("dropout", "0.0"), ("init", "glorot"), ("weight_decay", "0.0"), ("optimizer", "adam"),
    ("learning_rate", "0.001"), ("schedule", "constant"), ("batch_size", "64"), ("epochs", "5"), ("time_budget", "0.0"),
    ("seed", "0"), ("preset", "lenet5"),
]


def test_serialised_forms_still_write_conv_blocks_byte_for_byte():
    spec = ExperimentSpec.from_json(FIRST_DEFAULT_JSON)
    assert spec == ExperimentSpec().with_values(epochs=4, weight_decay=0.0)
    assert spec.to_json(indent=None) == FIRST_DEFAULT_JSON
    assert spec.spec_id() == "59c30a6169"  # run names and caches keyed by it stay valid
    assert list(spec.to_dict()["arch"])[:2] == ["conv_blocks", "filters"]  # the key order of the nested dict too
    assert list(preset_spec("lenet5").to_query_params().items()) == LENET5_LINK  # the URL, in its order
    assert preset_spec("lenet5").spec_id() == "9b4bb94d20"


def test_saved_json_with_conv_blocks_loads_and_a_disagreeing_one_is_refused():
    # A spec.json as run folders and bundles hold it.
    assert ExperimentSpec.from_json(ExperimentSpec().to_json()) == ExperimentSpec()
    data = ExperimentSpec().to_dict()
    del data["arch"]["conv_blocks"]  # optional: it follows from the filters
    assert ExperimentSpec.from_dict(data) == ExperimentSpec()
    # conv_blocks alone resizes the default filters, as a link does.
    assert ExperimentSpec.from_dict({"arch": {"conv_blocks": 4}}).arch.filters == (16, 32, 64, 128)
    data = ExperimentSpec().to_dict()
    data["arch"]["conv_blocks"] = 2
    with pytest.raises(SpecError) as info:
        ExperimentSpec.from_dict(data)
    assert str(info.value) == ("Give one filter count per conv block: 2 block(s) but 3 filter count(s). "
                               "Received: conv_blocks=2, filters=16,32,64")
    assert "\n" not in str(info.value)
    data["arch"]["conv_blocks"] = "3"  # JSON is strict about types
    with pytest.raises(SpecError, match="'conv_blocks' must be a whole number"):
        ExperimentSpec.from_dict(data)


def test_old_links_with_conv_blocks_resize_the_filters():
    assert ExperimentSpec.from_query_params({"conv_blocks": "3"}) == ExperimentSpec()
    lenet = preset_spec("lenet5")
    assert ExperimentSpec.from_query_params({"conv_blocks": "3"}, base=lenet).arch.filters == (6, 16, 32)
    assert ExperimentSpec.from_query_params({"conv_blocks": "1", "filters": "4"}).arch.filters == (4,)
    with pytest.raises(SpecError, match="Received: conv_blocks=2, filters=4"):
        ExperimentSpec.from_query_params({"conv_blocks": "2", "filters": "4"})


# --- the settings table drives check() -------------------------------------------------------------


@pytest.mark.parametrize("changes,message", [
    ({"rotation": 200.0}, "Rotation (degrees) must be between 0 and 180. Received: rotation=200.0"),
    ({"validation_split": 0.9}, "The validation split must be between 0 and 0.5. Received: validation_split=0.9"),
    ({"sample_size": -1}, "sample_size must be 0 (all) or a positive count. Received: sample_size=-1"),
    ({"filters": "0,8"}, "Each block needs 1 to 1024 filters. Received: filters=0,8"),
    ({"filters": "1,1,1,1,1,1,1,1,1"}, "The number of conv blocks must be between 0 and 8. Received: conv_blocks=9"),
    ({"dense_units": "1,1,1,1,1"}, "At most 4 dense layers. Received: dense_units=1,1,1,1,1"),
    ({"dense_units": "0"}, "Each dense layer needs 1 to 4096 units. Received: dense_units=0"),
    ({"learning_rate": 50.0}, "The learning rate must be between 1e-06 and 10. Received: learning_rate=50.0"),
    ({"seed": -1}, "The seed must be between 0 and 2.14748e+09. Received: seed=-1"),
    ({"pooling": "x"}, "Unknown pooling 'x': choose one of max, avg, none."),
    ({"residual": True, "padding": "valid"},
     "Residual connections need SAME padding, so the shortcut and the convs have the same size. Received: padding='valid'"),
])
def test_check_messages_are_unchanged(changes, message):
    assert [p.message for p in check(ExperimentSpec().with_values(**changes))] == [message]


def test_every_spec_field_has_a_row_in_the_settings_table():
    assert list(FIELDS) == field_names()  # in field order, conv_blocks (derived) included


@pytest.mark.parametrize("name", [n for n, info in FIELDS.items() if info.stops])
def test_slider_stops_are_sorted_and_within_the_bounds(name):
    info = FIELDS[name]
    assert list(info.stops) == sorted(set(info.stops))
    assert info.lo <= info.stops[0] and (info.hi is None or info.stops[-1] <= info.hi)
    assert info.widget == SELECT_SLIDER


@pytest.mark.parametrize("name", list(FIELDS))
def test_the_default_value_is_allowed_and_the_table_is_consistent(name):
    info = FIELDS[name]
    assert value_problems(name, get_value(ExperimentSpec(), name)) == []
    assert (info.widget == SELECT_SLIDER) == bool(info.stops)
    if info.widget in (SLIDER, NUMBER):
        assert info.lo is not None and info.hi is not None and info.subject
    if info.choices is not None:
        assert info.widget == SELECT


def test_check_reads_bounds_and_choices_from_the_table(monkeypatch):
    spec = ExperimentSpec().with_values(rotation=100.0, pooling="avg")
    assert check(spec) == []
    monkeypatch.setitem(FIELDS, "rotation", dataclasses.replace(FIELDS["rotation"], hi=90.0))
    monkeypatch.setitem(FIELDS, "pooling", dataclasses.replace(FIELDS["pooling"], choices={"max": "Max 2x2"}))
    assert [p.message for p in check(spec)] == [
        "Rotation (degrees) must be between 0 and 90. Received: rotation=100.0",
        "Unknown pooling 'avg': choose one of max.",
    ]


def test_check_can_skip_the_shape_checks():
    too_deep = ExperimentSpec().with_values(filters="8,8,8,8,8")  # shrinks to zero on 28x28
    assert [p.field_name for p in check(too_deep)] == ["conv_blocks"]
    assert check(too_deep, shapes=False) == []
    assert check(too_deep, (28, 28, 1), shapes=False) == []
    assert [p.field_name for p in check(too_deep.with_values(epochs=0), shapes=False)] == ["epochs"]


# --- edit helpers -----------------------------------------------------------------------------------


def test_with_blocks_resizes_the_filters_and_refuses_out_of_range():
    spec = ExperimentSpec()
    assert with_blocks(spec, 5).arch.filters == (16, 32, 64, 128, 256)
    assert with_blocks(spec, 1).arch.filters == (16,)
    assert with_blocks(spec, 0).arch.filters == ()
    assert with_blocks(with_blocks(spec, 0), 2).arch.filters == (32, 64)
    for bad in (-1, 9):
        with pytest.raises(SpecError, match=f"between 0 and 8. Received: conv_blocks={bad}") as info:
            with_blocks(spec, bad)
        assert info.value.field_name == "conv_blocks"


def test_with_block_filters_changes_one_block():
    spec = ExperimentSpec()
    assert with_block_filters(spec, 1, 8).arch.filters == (16, 8, 64)
    with pytest.raises(SpecError, match="Each block needs 1 to 1024 filters. Received: filters=16,2000,64"):
        with_block_filters(spec, 1, 2000)
    with pytest.raises(SpecError, match="no block 3") as info:
        with_block_filters(spec, 3, 8)
    assert info.value.field_name == "filters"


def test_with_dense_units_sets_the_head():
    spec = ExperimentSpec()
    assert with_dense_units(spec, (64, 32)).arch.dense_units == (64, 32)
    assert with_dense_units(spec, ()).arch.dense_units == ()
    with pytest.raises(SpecError, match="At most 4 dense layers"):
        with_dense_units(spec, (8,) * 5)
    with pytest.raises(SpecError, match="Each dense layer needs 1 to 4096 units. Received: dense_units=8,0") as info:
        with_dense_units(spec, (8, 0))
    assert info.value.field_name == "dense_units"


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


def test_spec_modules_import_no_third_party_module():
    modules = ", ".join(f"playground.spec.{m}" for m in ("experiment", "fields", "validation", "presets", "url", "arithmetic"))
    code = f"import sys, {modules}; bad = [m for m in ('numpy', 'tensorflow', 'keras', 'streamlit') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------- compute caps (a shared server's protection)


def test_a_network_too_costly_per_image_is_refused_in_one_sentence():
    spec = ExperimentSpec().with_values(filters="256,256,256", convs_per_block=4, pooling="none", global_pool=True,
                                        batch_size=8)
    [problem] = check(spec, (64, 64, 3))
    assert problem.field_name == "filters" and problem.message.count(".") <= 2
    assert re.search(r"about [\d.]+ GFLOP per image, over the limit of 2;", problem.message)


def test_a_batch_too_large_for_memory_is_refused_in_one_sentence():
    spec = ExperimentSpec().with_values(filters="64,64", pooling="none", global_pool=True, batch_size=4096)
    [problem] = check(spec)
    assert problem.field_name == "batch_size"
    assert re.search(r"One batch of 4096 images would keep about [\d.]+ GiB of activations, over the limit of 4 GiB", problem.message)
    assert check(spec.with_values(batch_size=256)) == []


def test_images_larger_than_any_network_here_takes_are_refused():
    [problem] = check(ExperimentSpec(), (30000, 30000, 1))
    assert problem.field_name == "dataset" and "30000x30000 pixels, larger than the limit of 512x512" in problem.message


def test_every_preset_fits_the_compute_caps_on_every_named_dataset():
    for name in PRESETS:
        for dataset in ("mnist", "cifar10", "digits"):
            spec = preset_spec(name, dataset=dataset)
            assert [p for p in check(spec) if p.field_name in ("filters", "batch_size", "dataset")] == []


def test_links_cannot_ask_for_days_of_training():
    assert [p.field_name for p in check(ExperimentSpec().with_values(epochs=500))] == ["epochs"]
    assert [p.field_name for p in check(ExperimentSpec().with_values(time_budget=24 * 3600.0))] == ["time_budget"]
