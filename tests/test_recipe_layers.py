"""Patch whitening, pool-first blocks, label smoothing, logit scale, global max pooling and test-time augmentation: the pieces of the fast CIFAR recipe."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from playground.model import network as models
from playground.model.layers import PatchWhitening
from playground.spec.experiment import ExperimentSpec
from playground.spec.validation import check


def tiny_spec(**changes):
    base = ExperimentSpec().with_values(filters="4,8", dense_units="8", batch_size=8, epochs=1)
    return base.with_values(**changes)


def correlated_images(count=400, size=12, channels=3, seed=0):
    """Smooth colour images: neighbouring pixels and channels strongly correlated, as in photos."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(count, size // 4 + 1, size // 4 + 1, 1))
    smooth = np.kron(coarse, np.ones((1, 4, 4, 1)))[:, :size, :size]  # (N, size, size, 1) blocks
    colour = smooth * np.array([1.0, 0.8, 0.6])[:channels] + 0.1 * rng.normal(size=(count, size, size, channels))
    return np.clip(128 + 40 * colour, 0, 255).astype(np.uint8)


def test_whitening_decorrelates_the_training_patches_with_unit_variance():
    x = correlated_images().astype(np.float32) / 255.0
    layer = PatchWhitening(24, 2)
    layer.adapt(x)
    out = np.asarray(layer(x)).reshape(-1, 24)  # (patches, 24)
    half = out[:, :12]
    cov = np.cov(half, rowvar=False)
    # Raw patches are strongly correlated; whitened ones are not, with variance 1 (less the epsilon's share).
    raw = np.lib.stride_tricks.sliding_window_view(x, (2, 2), axis=(1, 2)).reshape(-1, 12)
    raw_corr = np.corrcoef(raw, rowvar=False)
    assert np.abs(raw_corr - np.eye(12)).max() > 0.8
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 0.02
    # Direction i keeps variance v_i / (v_i + epsilon): 1 for the strong ones, less where epsilon damps noise.
    variances = np.sort(np.linalg.eigvalsh(np.cov(raw, rowvar=False)))[::-1]
    np.testing.assert_allclose(np.diag(cov), variances / (variances + layer.epsilon), rtol=0.02, atol=1e-3)
    assert np.diag(cov)[0] > 0.99
    np.testing.assert_allclose(half.mean(axis=0), 0.0, atol=1e-3)  # the bias centres them
    np.testing.assert_allclose(out[:, 12:], -half, atol=1e-5)  # the second half is the negatives


def test_whitening_kernel_is_fixed_and_its_bias_trains():
    spec = tiny_spec(patch_whitening=True, normalization="dataset")
    x = correlated_images(64, 16)
    model = models.build_model(spec, (16, 16, 3), 4, x_sample=x)
    layer = model.get_layer("whiten")
    assert layer.output.shape[1:] == (15, 15, 24)
    assert [v.path for v in layer.trainable_weights] == [layer.bias.path]
    kernel = np.array(layer.kernel.numpy())
    models.compile_model(model, spec, steps_per_epoch=8)
    model.fit(x, np.arange(64) % 4, batch_size=8, epochs=1, verbose=0)
    np.testing.assert_array_equal(layer.kernel.numpy(), kernel)
    assert np.abs(kernel).max() > 1.0  # adapted, not the random start


def test_whitening_filters_survive_the_weights_file(tmp_path):
    spec = tiny_spec(patch_whitening=True)
    x = correlated_images(32, 16)
    model = models.build_model(spec, (16, 16, 3), 4, x_sample=x)
    model.save_weights(tmp_path / "w.weights.h5")
    rebuilt = models.build_model(spec, (16, 16, 3), 4)
    rebuilt.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_allclose(np.asarray(rebuilt(x[:4])), np.asarray(model(x[:4])), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_exported_code_sets_the_same_whitening(channels):
    spec = tiny_spec(patch_whitening=True, pool_first=True, convs_per_block=2, normalization="dataset", label_smoothing=0.1)
    x = correlated_images(40, 16, channels)
    ours = models.build_model(spec, (16, 16, channels), 4, x_sample=x)
    code = models.export_keras_code(spec, (16, 16, channels), 4)
    assert "label smoothing 0.1" in code and "mirror image" not in code
    tta = models.export_keras_code(spec.with_values(test_time_augmentation="flip_shift"), (16, 16, channels), 4)
    assert "average the probabilities of each image and its mirror image" in tta
    namespace = {"__name__": "exported"}
    exec(compile(code, "<exported>", "exec"), namespace)
    theirs = namespace["build_model"](x_sample=x)
    np.testing.assert_allclose(np.asarray(theirs(x, training=False)), np.asarray(ours(x, training=False)), rtol=1e-4, atol=1e-5)


def test_pool_first_pools_after_the_first_conv():
    spec = tiny_spec(convs_per_block=2, pool_first=True, filters="4,8")
    model = models.build_model(spec, (16, 16, 1), 3)
    names = [layer.name for layer in model.layers]
    assert names.index("block1_pool") == names.index("block1_conv1") + 1  # then its batch norm and activation
    assert model.get_layer("block1_act1").output.shape[1:3] == (8, 8)
    assert model.get_layer("block1_conv2").output.shape[1:3] == (8, 8)
    assert model.get_layer("block2_conv2").output.shape[1:3] == (4, 4)
    # Cheaper than pooling at the end of the block: the second convs run on the pooled map.
    later = models.build_model(spec.with_values(pool_first=False), (16, 16, 1), 3)
    flops = lambda m: sum(r.flops for r in models.layer_table(m))  # noqa: E731
    assert flops(model) < flops(later)


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_validation_traces_pool_first_and_whitening_sizes(padding):
    # 9x9 input, 3x3 convs: VALID pool-first gives 9 -> 7 -> 3 -> 1; pooling last gives 9 -> 7 -> 5 -> 2.
    for pool_first in (True, False):
        spec = tiny_spec(filters="2", convs_per_block=2, padding=padding, pool_first=pool_first,
                         patch_whitening=True, batch_norm=False)
        assert not check(spec, (10, 10, 1))  # 10x10 -> 9x9 after whitening
        model = models.build_model(spec, (10, 10, 1), 3)
        assert model.get_layer("whiten").output.shape[1:] == (9, 9, 8)
    # 6x6 VALID pool-first: 4x4, pooled to 2x2, where the block's second 3x3 conv does not fit.
    too_deep = tiny_spec(filters="2,2", convs_per_block=2, padding="valid", pool_first=True)
    assert [p.field_name for p in check(too_deep, (6, 6, 1))] == ["kernel_size"]
    # 3x3 SAME: pooled to 1x1 in the first block, to nothing in the second.
    assert [p.field_name for p in check(too_deep.with_values(padding="same"), (3, 3, 1))] == ["conv_blocks"]


def test_pool_first_with_residual_is_refused_with_one_sentence():
    problems = check(tiny_spec(residual=True, pool_first=True, convs_per_block=2))
    assert [p.field_name for p in problems] == ["residual"]
    assert "pooling after the first conv" in problems[0].message


def test_label_smoothing_loss_matches_smoothed_one_hot_targets():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 6)
    probs = keras.layers.Softmax()(logits)  # keeps its logits, as the model's output does
    ours = float(models.SmoothedSparseCrossentropy(0.2)(labels, probs))
    reference = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2)(np.eye(5)[labels], logits)
    assert math.isclose(ours, float(reference), rel_tol=1e-5)
    plain = float(keras.losses.SparseCategoricalCrossentropy()(labels, probs))
    assert math.isclose(float(models.SmoothedSparseCrossentropy(0.0)(labels, probs)), plain, rel_tol=1e-6)


def test_compile_uses_label_smoothing_only_when_asked():
    model = models.build_model(tiny_spec(), (8, 8, 1), 3)
    models.compile_model(model, tiny_spec(label_smoothing=0.1), steps_per_epoch=1)
    assert isinstance(model.loss, models.SmoothedSparseCrossentropy) and model.loss.smoothing == 0.1
    models.compile_model(model, tiny_spec(), steps_per_epoch=1)
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    assert tf.executing_eagerly()


def test_logit_scale_divides_the_softmax_temperature_and_the_loss_sees_the_scaled_logits():
    spec = tiny_spec(logit_scale=0.125, label_smoothing=0.1, weight_decay=0.0)  # the objective is the loss alone
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (6, 8, 8, 1)).astype(np.float32)
    labels = rng.integers(0, 3, 6)
    model = models.build_model(spec, (8, 8, 1), 3)
    raw = np.asarray(keras.Model(model.inputs, model.get_layer("logits").output)(x))  # (6, 3) unscaled
    expected = np.asarray(keras.activations.softmax(0.125 * raw))
    np.testing.assert_allclose(np.asarray(model(x, training=False)), expected, atol=1e-6)
    # The training loss is the cross-entropy of the scaled logits, not of the raw ones.
    models.compile_model(model, spec, steps_per_epoch=1)
    loss = float(model.compute_loss(x=x, y=labels, y_pred=model(x, training=False)))
    reference = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(np.eye(3)[labels], 0.125 * raw)
    assert math.isclose(loss, float(reference), rel_tol=1e-5)
    # Scale 1 adds no layer, so models made before the setting are unchanged.
    assert "logit_scale" not in [layer.name for layer in models.build_model(tiny_spec(), (8, 8, 1), 3).layers]
    assert 'layers.Rescaling(scale=0.125, name="logit_scale")' in models.export_keras_code(spec, (8, 8, 1), 3)


def test_global_max_pooling_keeps_each_maps_strongest_response():
    from playground.analysis import activations

    spec = tiny_spec(global_pool=True, global_pool_kind="max", dense_units="")
    model = models.build_model(spec, (8, 8, 1), 3)
    assert isinstance(model.get_layer("global_pool"), keras.layers.GlobalMaxPooling2D)
    x = np.random.default_rng(4).integers(0, 256, (2, 8, 8, 1)).astype(np.float32)
    maps = np.asarray(keras.Model(model.inputs, model.get_layer("global_pool").input)(x))  # (2, 2, 2, 8)
    pooled = np.asarray(keras.Model(model.inputs, model.get_layer("global_pool").output)(x))  # (2, 8)
    np.testing.assert_allclose(pooled, maps.max(axis=(1, 2)), atol=1e-6)
    assert activations.last_conv_output(model) == "block2_act1"  # Grad-CAM stops at the pooling as it does for average
    assert "layers.GlobalMaxPooling2D(name=\"global_pool\")" in models.export_keras_code(spec, (8, 8, 1), 3)
    average = models.build_model(spec.with_values(global_pool_kind="avg"), (8, 8, 1), 3)
    assert isinstance(average.get_layer("global_pool"), keras.layers.GlobalAveragePooling2D)
    assert "global_pool_kind" not in ExperimentSpec().with_values(global_pool=True).to_query_params()  # as before


def tta_reference(model, x, views):
    """The documented views and weights of each test-time augmentation, computed with numpy."""
    predict = lambda images: np.asarray(model(images.astype(np.float32), training=False))

    def with_shifts(images):
        if views not in ("shift", "flip_shift"):
            return predict(images)
        padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        up_left, down_right = padded[:, :-2, :-2], padded[:, 2:, 2:]
        return 0.5 * predict(images) + 0.25 * predict(up_left) + 0.25 * predict(down_right)

    if views in ("flip", "flip_shift"):
        return 0.5 * (with_shifts(x) + with_shifts(x[:, :, ::-1]))
    return with_shifts(x)


@pytest.mark.parametrize("views", ["flip", "shift", "flip_shift"])
def test_test_time_augmentation_averages_its_views_everywhere_a_run_is_scored(views):
    from playground.analysis import activations
    from playground.runs.evaluation import evaluate_model

    spec = tiny_spec(test_time_augmentation=views)
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (12, 10, 10, 1)).astype(np.uint8)
    y = rng.integers(0, 3, 12).astype(np.int32)
    model = models.build_model(spec, (10, 10, 1), 3)
    plain = np.asarray(model(x.astype(np.float32), training=False))
    expected = tta_reference(model, x, views)
    assert not np.allclose(plain, expected, atol=1e-4)  # the other views change the prediction
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, atol=1e-5)  # the weights add up to one
    np.testing.assert_allclose(np.asarray(models.predict_probabilities(model, x.astype(np.float32))), expected, atol=1e-6)
    np.testing.assert_allclose(evaluate_model(model, x, y).probabilities, expected, atol=1e-6)
    np.testing.assert_allclose(activations.predict(model, x[3]), expected[3], atol=1e-6)
    # Without the setting, the model's own output.
    off = models.build_model(spec.with_values(test_time_augmentation="none"), (10, 10, 1), 3)
    np.testing.assert_allclose(np.asarray(models.predict_probabilities(off, x.astype(np.float32))),
                               np.asarray(off(x.astype(np.float32), training=False)), atol=1e-6)


def test_a_run_with_test_time_augmentation_reports_the_test_accuracy_its_evaluation_gives():
    from playground.data.builtin import load_shapes
    from playground.runs.evaluation import evaluate_model
    from playground.training import loop

    dataset = load_shapes(0.2, seed=0)
    spec = tiny_spec(dataset="shapes", sample_size=300, test_time_augmentation="flip_shift", epochs=2, batch_size=32)
    result = loop.train(spec, dataset)
    evaluation = evaluate_model(result.model, dataset.x_test, dataset.y_test)
    accuracy = float(np.mean(evaluation.probabilities.argmax(axis=1) == dataset.y_test))
    assert result.test_accuracy == pytest.approx(accuracy, abs=1e-6)
