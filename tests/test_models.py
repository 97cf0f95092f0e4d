"""Tests of playground.models: shapes, presets, parameter counts, code export, seeds, compile."""

import math
import traceback

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from playground.model import network as models
from playground.spec.arithmetic import same_padding
from playground.spec.experiment import ExperimentSpec, SpecError
from playground.spec.presets import PRESETS, preset_spec
from playground.spec.validation import check

SHAPES = [(28, 28, 1), (32, 32, 3)]
_built: dict = {}


def preset_model(name, shape):
    """The model of preset `name` for `shape`, built once per test session (read-only use)."""
    if (name, shape) not in _built:
        _built[name, shape] = models.build_model(preset_spec(name), shape, 10)
    return _built[name, shape]


def tiny_spec(**changes):
    """A small, fast network for tests that are not about the architecture."""
    base = ExperimentSpec().with_values(filters="4,8", dense_units="8", batch_size=8, epochs=1)
    return base.with_values(**changes)


def _expected_size(size, kernel, stride, padding):
    # (H + 2P - F) / S + 1, with 2P the total zero padding TensorFlow adds for SAME.
    total_pad = sum(same_padding(size, kernel, stride)) if padding == "same" else 0
    return (size + total_pad - kernel) // stride + 1


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(8, 32),
    blocks=st.integers(1, 3),
    convs=st.integers(1, 2),
    kernel=st.integers(1, 7),
    stride=st.integers(1, 3),
    padding=st.sampled_from(["same", "valid"]),
    pooling=st.sampled_from(["max", "avg", "none"]),
    pool_first=st.booleans(),
)
def test_conv_and_pool_output_sizes_follow_the_formula(size, blocks, convs, kernel, stride, padding, pooling, pool_first):
    spec = tiny_spec(conv_blocks=blocks, filters=",".join(["2"] * blocks), convs_per_block=convs,
                     kernel_size=kernel, stride=stride, padding=padding, pooling=pooling, batch_norm=False,
                     pool_first=pool_first)
    assume(not check(spec, (size, size, 1)))
    model = models.build_model(spec, (size, size, 1), 3)
    h = size
    for b in range(1, blocks + 1):
        for c in range(1, convs + 1):
            h = _expected_size(h, kernel, stride if c == 1 else 1, padding)
            assert model.get_layer(f"block{b}_conv{c}").output.shape[1:3] == (h, h)
            if pooling != "none" and c == (1 if pool_first else convs):
                h = _expected_size(h, 2, 2, "valid")
                assert model.get_layer(f"block{b}_pool").output.shape[1:3] == (h, h)


@pytest.mark.parametrize("shape", SHAPES, ids=["28x28x1", "32x32x3"])
@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_builds_and_rows_add_up_to_the_parameter_count(name, shape):
    model = preset_model(name, shape)
    assert model.input.shape[1:] == shape
    assert model.output.shape[1:] == (10,)
    head = ["logits", "probabilities"] if PRESETS[name].arch.logit_scale == 1 else ["logits", "logit_scale", "probabilities"]
    assert [layer.name for layer in model.layers[-len(head):]] == head
    rows = models.layer_table(model)
    assert [r.name for r in rows] == [layer.name for layer in model.layers]
    assert sum(r.params for r in rows) == model.count_params()
    assert all(r.output_shape == tuple(model.get_layer(r.name).output.shape[1:]) for r in rows)


# One shape per preset: 28x28x1 for the MNIST-style presets, 32x32x3 for those made for CIFAR.
# Eager steps: tracing a graph costs 2-5 s of CPU per model; graph-mode training is tested below.
@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_trains_one_step_on_tiny_data(name):
    shape = (32, 32, 3) if "cifar" in name or name in ("mini_alexnet", "mini_resnet") else (28, 28, 1)
    spec = preset_spec(name)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(16, *shape)).astype(np.uint8)
    y = rng.integers(0, 10, size=16)
    model = models.build_model(spec, shape, 10, x_sample=x)
    models.compile_model(model, spec, steps_per_epoch=1)
    model.run_eagerly = True
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    loss = history.history["loss"][0]
    assert math.isfinite(loss)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    probs = np.asarray(model(x[:4], training=False))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def _exec_export(code):
    namespace = {"__name__": "exported"}
    exec(compile(code, "<exported>", "exec"), namespace)
    return namespace["build_model"]


@pytest.mark.parametrize("name", list(PRESETS))
def test_exported_code_rebuilds_the_same_model(name):
    shape = (28, 28, 1)
    ours = preset_model(name, shape)
    code = models.export_keras_code(preset_spec(name), shape, 10)
    assert "# (batch, 28, 28, 1)" in code
    theirs = _exec_export(code)()
    assert theirs.count_params() == ours.count_params()
    assert [layer.name for layer in theirs.layers] == [layer.name for layer in ours.layers]
    # Same seeds in the code: the same initial weights.
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("normalization", ["scale", "per_image", "dataset"])
def test_exported_code_computes_the_same_function(normalization):
    spec = tiny_spec(normalization=normalization, crop_padding=2, flip=True, residual=True, convs_per_block=2,
                     activation="leaky_relu", weight_decay=0.001, conv_dropout=0.1)
    x = np.random.default_rng(0).integers(0, 256, size=(6, 16, 16, 3)).astype(np.uint8)
    ours = models.build_model(spec, (16, 16, 3), 4, x_sample=x)
    build = _exec_export(models.export_keras_code(spec, (16, 16, 3), 4))
    theirs = build(x_sample=x) if normalization == "dataset" else build()
    np.testing.assert_allclose(np.asarray(theirs(x, training=False)), np.asarray(ours(x, training=False)), rtol=1e-5, atol=1e-6)
    # Augmentation is seeded alike too.
    np.testing.assert_allclose(np.asarray(theirs(x, training=True)), np.asarray(ours(x, training=True)), rtol=1e-4, atol=1e-5)


def test_exported_code_names_only_known_presets():
    spec = tiny_spec(preset='x"""\nimport os\n"""')
    code = models.export_keras_code(spec, (16, 16, 1), 3)
    assert "import os" not in code and '"custom"' in code
    _exec_export(code)  # still valid Python


def test_same_seed_gives_the_same_initial_weights():
    spec = preset_spec("mini_resnet", seed=3)
    a = models.build_model(spec, (16, 16, 3), 5).get_weights()
    b = models.build_model(spec, (16, 16, 3), 5).get_weights()
    c = models.build_model(preset_spec("mini_resnet", seed=4), (16, 16, 3), 5).get_weights()
    assert len(a) == len(b) == len(c)
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)
    kernels = [i for i, w in enumerate(a) if w.ndim == 4]
    assert all(not np.array_equal(a[i], c[i]) for i in kernels)
    # Two same-shaped convs do not start equal.
    model = models.build_model(tiny_spec(convs_per_block=3), (16, 16, 3), 5)
    assert not np.array_equal(model.get_layer("block1_conv2").kernel, model.get_layer("block1_conv3").kernel)


@pytest.mark.parametrize("init, check_std", [
    ("he", lambda fan_in, std: abs(std - math.sqrt(2 / fan_in)) < 0.2 * math.sqrt(2 / fan_in)),
    ("normal_0.01", lambda fan_in, std: abs(std - 0.01) < 0.002),
    ("truncated_normal_0.1", lambda fan_in, std: 0.07 < std < 0.1),
    ("glorot", lambda fan_in, std: std < 0.2),
])
def test_initialisers_by_name(init, check_std):
    model = models.build_model(tiny_spec(init=init, filters="32,64"), (16, 16, 1), 3)
    kernel = np.asarray(model.get_layer("block2_conv1").kernel)  # (3, 3, 32, 64)
    assert check_std(3 * 3 * 32, kernel.std())


def test_dataset_normaliser_statistics_round_trip_through_the_weights_file(tmp_path):
    spec = tiny_spec(normalization="dataset")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(20, 12, 12, 3)).astype(np.uint8)
    x[..., 0] //= 4  # distinct channel means
    model = models.build_model(spec, (12, 12, 3), 4, x_sample=x)
    layer = model.get_layer("normalize")
    np.testing.assert_allclose(np.ravel(layer.mean), x.reshape(-1, 3).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(np.ravel(layer.variance), x.reshape(-1, 3).var(axis=0), rtol=1e-4)
    path = tmp_path / "model.weights.h5"
    model.save_weights(path)

    rebuilt = models.build_model(spec, (12, 12, 3), 4)
    assert not np.allclose(np.ravel(rebuilt.get_layer("normalize").mean), np.ravel(layer.mean))
    rebuilt.load_weights(path)
    np.testing.assert_allclose(np.ravel(rebuilt.get_layer("normalize").mean), np.ravel(layer.mean))
    np.testing.assert_allclose(np.asarray(rebuilt(x, training=False)), np.asarray(model(x, training=False)), rtol=1e-6)


@pytest.mark.parametrize("changes, shape, field", [
    ({"conv_blocks": 2, "filters": "4,8", "kernel_size": 7, "padding": "valid"}, (8, 8, 1), "kernel_size"),
    ({"conv_blocks": 4, "filters": "4,4,4,4", "pooling": "max"}, (8, 8, 1), "conv_blocks"),
    ({"conv_blocks": 2, "filters": "4,2000"}, (28, 28, 1), "filters"),
    ({"residual": True, "padding": "valid"}, (28, 28, 1), "residual"),
])
def test_impossible_spec_raises_spec_error_before_keras(changes, shape, field):
    spec = tiny_spec(**changes)
    with pytest.raises(SpecError) as info:
        models.build_model(spec, shape, 10)
    assert info.value.field_name == field
    assert str(info.value) == check(spec, shape)[0].message
    # Raised by the spec check: no Keras code on the way.
    frames = [f.filename for f in traceback.extract_tb(info.value.__traceback__)]
    assert not any("/keras/" in f for f in frames), frames


@pytest.mark.parametrize("shape, classes, match", [((28, 28), 10, "input_shape"), ((28, 28, 1), 1, "num_classes=1")])
def test_bad_shapes_and_class_counts_raise_spec_error(shape, classes, match):
    with pytest.raises(SpecError, match=match):
        models.build_model(tiny_spec(), shape, classes)


def test_layer_names_follow_the_contract():
    spec = tiny_spec(residual=True, convs_per_block=2, conv_dropout=0.2, dense_units="8,6", flip=True,
                     normalization="per_image")
    names = [layer.name for layer in models.build_model(spec, (16, 16, 1), 3).layers]
    expected_in_order = [
        "image", "augment_flip", "normalize",
        "block1_conv1", "block1_bn1", "block1_act1", "block1_conv2", "block1_bn2", "block1_add", "block1_act2",
        "block1_pool", "block1_dropout", "block2_conv1", "block2_add", "block2_act2", "block2_pool",
        "flatten", "dense1_dropout", "dense1", "dense1_act", "dense2_dropout", "dense2", "dense2_act",
        "logits_dropout", "logits", "probabilities",
    ]
    positions = [names.index(n) for n in expected_in_order]
    assert positions == sorted(positions)
    assert {"block1_shortcut", "block1_shortcut_bn", "block2_shortcut"} <= set(names)
    model = models.build_model(tiny_spec(global_pool=True, batch_norm=False, dropout=0.0), (16, 16, 1), 3)
    names = [layer.name for layer in model.layers]
    assert "global_pool" in names and "flatten" not in names and "block1_bn1" not in names
    assert not any("dropout" in n for n in names)
    assert model.get_layer("block1_conv1").use_bias


def test_conv_layer_names_are_the_main_path_in_order():
    model = preset_model("mini_resnet", (32, 32, 3))
    assert models.conv_layer_names(model) == [f"block{b}_conv{c}" for b in (1, 2, 3) for c in (1, 2)]


@pytest.mark.parametrize("activation, kind", [
    ("relu", "ReLU"), ("leaky_relu", "LeakyReLU"), ("elu", "ELU"), ("gelu", "Activation"),
    ("tanh", "Activation"), ("sigmoid", "Activation"), ("linear", "Activation"),
])
def test_each_activation_is_its_own_layer(activation, kind):
    model = models.build_model(tiny_spec(activation=activation), (8, 8, 1), 3)
    layer = model.get_layer("block1_act1")
    assert type(layer).__name__ == kind
    x = np.linspace(-3, 3, 7, dtype=np.float32)
    reference = {"relu": np.maximum(x, 0), "leaky_relu": np.where(x > 0, x, 0.1 * x), "elu": np.where(x > 0, x, np.expm1(x)),
                 "tanh": np.tanh(x), "sigmoid": 1 / (1 + np.exp(-x)), "linear": x}
    if activation in reference:
        np.testing.assert_allclose(np.asarray(layer(x)), reference[activation], rtol=1e-5, atol=1e-6)


def test_layer_table_flops_and_receptive_fields():
    spec = tiny_spec(filters="4,8", kernel_size=3, dense_units="8", normalization="scale")
    rows = {r.name: r for r in models.layer_table(models.build_model(spec, (16, 16, 1), 3))}
    assert rows["block1_conv1"].flops == 2 * 16 * 16 * 4 * 3 * 3 * 1
    assert rows["block2_conv1"].flops == 2 * 8 * 8 * 8 * 3 * 3 * 4
    assert rows["dense1"].flops == 2 * (4 * 4 * 8) * 8
    assert rows["block1_bn1"].flops == 0
    # r = 1 + 2 (conv 3x3) -> 4 (pool 2x2) -> 4 + 2*2 (conv) -> 8 + 1*2 (pool)
    assert [rows[n].receptive_field for n in ("image", "block1_conv1", "block1_pool", "block2_act1", "block2_pool")] == [1, 3, 4, 8, 10]
    assert rows["flatten"].receptive_field is None and rows["logits"].receptive_field is None
    assert rows["block1_conv1"].params == 3 * 3 * 1 * 4 and rows["block1_bn1"].params == 4 * 4
    assert rows["block2_pool"].output_shape == (4, 4, 8)


def test_receptive_field_takes_the_longest_path_of_a_residual_block():
    rows = {r.name: r for r in models.layer_table(models.build_model(
        tiny_spec(residual=True, convs_per_block=2, pooling="none", conv_blocks=1, filters="4"), (12, 12, 1), 3))}
    assert rows["block1_shortcut"].receptive_field == 1
    assert rows["block1_add"].receptive_field == 5


def test_learning_rate_schedules():
    def lr_at(schedule, step):
        return float(schedule(step)) if callable(schedule) else schedule

    spec = tiny_spec(learning_rate=0.1, epochs=4)
    assert models.learning_rate_schedule(spec.with_values(schedule="constant"), 25) == 0.1
    step = models.learning_rate_schedule(spec.with_values(schedule="step"), 25)  # 100 steps
    assert [round(lr_at(step, s), 6) for s in (0, 49, 51, 74, 76, 99)] == [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    cosine = models.learning_rate_schedule(spec.with_values(schedule="cosine"), 25)
    assert lr_at(cosine, 0) == pytest.approx(0.1) and lr_at(cosine, 50) == pytest.approx(0.05) and lr_at(cosine, 100) < 1e-6
    cycle = models.learning_rate_schedule(spec.with_values(schedule="one_cycle"), 25)
    values = [lr_at(cycle, s) for s in range(101)]
    assert values[0] == pytest.approx(0.004) and max(values) == pytest.approx(0.1)
    assert values.index(max(values)) == 25 and values[100] == pytest.approx(0.001)
    assert all(a <= b for a, b in zip(values[:25], values[1:26])) and all(a >= b for a, b in zip(values[25:], values[26:]))
    restored = models.OneCycle.from_config(cycle.get_config())
    assert lr_at(restored, 60) == pytest.approx(values[60])


@pytest.mark.parametrize("name, cls, extra", [
    ("sgd", "SGD", {"momentum": 0.0}), ("momentum", "SGD", {"momentum": 0.9, "nesterov": False}),
    ("nesterov", "SGD", {"momentum": 0.9, "nesterov": True}), ("adagrad", "Adagrad", {}),
    ("rmsprop", "RMSprop", {}), ("adam", "Adam", {}), ("adamw", "AdamW", {}),
])
def test_compile_model_picks_the_optimizer(name, cls, extra):
    model = models.build_model(tiny_spec(), (8, 8, 1), 3)
    models.compile_model(model, tiny_spec(optimizer=name), steps_per_epoch=10, steps_per_execution=4)
    assert type(model.optimizer).__name__ == cls
    assert all(getattr(model.optimizer, k) == v for k, v in extra.items())
    assert model.steps_per_execution == 4


def test_training_in_graph_mode_with_augmentation_a_schedule_and_the_loss_from_logits():
    spec = tiny_spec(optimizer="adamw", schedule="one_cycle", learning_rate=0.01, crop_padding=1, flip=True,
                     rotation=10.0, shift=0.1, brightness=0.1, contrast=0.1, normalization="per_image", residual=True)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(32, 8, 8, 1)).astype(np.uint8)
    y = rng.integers(0, 3, size=32)
    model = models.build_model(spec, (8, 8, 1), 3)
    models.compile_model(model, spec, steps_per_epoch=4)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert all(math.isfinite(v) for v in history.history["loss"])
    assert int(model.optimizer.iterations) == 8
    # A confident mistake: the loss grows with the logit gap instead of stopping at -log(1e-7) = 16.1.
    logits = model.get_layer("logits")
    logits.kernel.assign(np.zeros(logits.kernel.shape, np.float32))
    logits.bias.assign(np.array([0.0, 0.0, 60.0], np.float32))
    loss = model.evaluate(x, np.zeros(32, np.int64), verbose=0)[0]
    assert loss == pytest.approx(60.0, rel=1e-3)


def test_compile_model_rejects_zero_steps():
    model = models.build_model(tiny_spec(), (8, 8, 1), 3)
    with pytest.raises(SpecError, match="steps_per_epoch=0"):
        models.compile_model(model, tiny_spec(), steps_per_epoch=0)


def test_model_accepts_uint8_and_augments_only_in_training():
    spec = tiny_spec(flip=True, shift=0.2, dropout=0.0)
    x = np.random.default_rng(0).integers(0, 256, size=(4, 8, 8, 1)).astype(np.uint8)
    model = models.build_model(spec, (8, 8, 1), 3)
    a, b = model(x, training=False), model(x.astype(np.float32), training=False)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    assert not np.allclose(np.asarray(model(x, training=True)), np.asarray(a))


def test_zero_conv_blocks_give_a_dense_network():
    spec = tiny_spec(conv_blocks=0, filters="")
    model = models.build_model(spec, (8, 8, 1), 3)
    assert models.conv_layer_names(model) == []
    assert [layer.name for layer in model.layers][:3] == ["image", "normalize", "flatten"]
    assert _exec_export(models.export_keras_code(spec, (8, 8, 1), 3))().count_params() == model.count_params()
