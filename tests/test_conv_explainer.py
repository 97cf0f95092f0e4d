"""The conv explainer's numbers against TensorFlow's own ops, on many random tiny cases."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from playground.analysis import conv_explainer as ce
from playground.spec.arithmetic import conv_output_size


def _tf_conv(image, filters, stride, padding):
    # image (H, W) -> NHWC; filters (n, F_h, F_w) -> (F_h, F_w, 1, n)
    x = tf.constant(image[None, :, :, None], tf.float64)
    k = tf.constant(np.transpose(filters, (1, 2, 0))[:, :, None, :], tf.float64)
    y = tf.nn.conv2d(x, k, strides=stride, padding=padding.upper())
    return np.transpose(y.numpy()[0], (2, 0, 1))  # (n, H_out, W_out)


def _tf_max_pool(image, size, stride, padding):
    x = tf.constant(image[None, :, :, None], tf.float64)
    return tf.nn.max_pool2d(x, ksize=size, strides=stride, padding=padding.upper()).numpy()[0, :, :, 0]


def _random_cases(seed, count):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        h, w = rng.integers(3, 8, size=2)
        n = int(rng.integers(1, 4))
        fh, fw = rng.integers(1, 4, size=2)
        stride = int(rng.integers(1, 4))
        padding = str(rng.choice(["same", "valid"]))
        # Negative values too, so that padding with zeros (conv) or -inf (pool) matters.
        image = rng.integers(-5, 6, size=(h, w)).astype(float)
        filters = rng.normal(size=(n, fh, fw))
        yield image, filters, stride, padding


def test_conv2d_equals_tf_nn_conv2d_on_random_cases():
    for image, filters, stride, padding in _random_cases(seed=0, count=300):
        ours, geo = ce.conv2d(image, filters, stride, padding)
        expected = _tf_conv(image, filters, stride, padding)
        assert ours.shape == expected.shape, (image.shape, filters.shape, stride, padding)
        np.testing.assert_allclose(ours, expected, atol=1e-9)
        assert geo.output_size == expected.shape[1:]


@pytest.mark.parametrize("size,kernel,stride", [(7, 3, 2), (5, 2, 2), (6, 3, 2), (7, 2, 3), (4, 3, 3), (5, 1, 2)])
def test_same_padding_with_stride_matches_tensorflow_asymmetric_padding(size, kernel, stride):
    rng = np.random.default_rng(size * 100 + kernel * 10 + stride)
    image = rng.normal(size=(size, size))
    kernels = rng.normal(size=(2, kernel, kernel))
    ours, geo = ce.conv2d(image, kernels, stride, "same")
    np.testing.assert_allclose(ours, _tf_conv(image, kernels, stride, "same"), atol=1e-9)
    pooled, _ = ce.max_pool2d(image, kernel, stride, "same")
    np.testing.assert_allclose(pooled, _tf_max_pool(image, kernel, stride, "same"))
    top, bottom = geo.pads[:2]
    assert bottom - top in (0, 1)  # the odd pixel goes after, as TensorFlow does


def test_conv_step_value_equals_the_full_output_and_shows_products():
    for image, filters, stride, padding in _random_cases(seed=1, count=60):
        out, geo = ce.conv2d(image, filters, stride, padding)
        for f in range(filters.shape[0]):
            for row, col in itertools.product(range(geo.output_size[0]), range(geo.output_size[1])):
                step = ce.conv_step(image, filters[f], stride, padding, row, col)
                assert step.value == pytest.approx(out[f, row, col])
                np.testing.assert_array_equal(step.products, step.window * filters[f])
                # Padded positions hold zeros; others hold the image pixel at origin + offset.
                for (dr, dc), pad in np.ndenumerate(step.in_padding):
                    r, c = step.origin[0] + dr, step.origin[1] + dc
                    inside = 0 <= r < image.shape[0] and 0 <= c < image.shape[1]
                    assert pad == (not inside)
                    assert step.window[dr, dc] == (image[r, c] if inside else 0.0)


def test_max_pool_equals_tf_nn_max_pool2d_on_random_cases():
    rng = np.random.default_rng(2)
    for image, _, stride, padding in _random_cases(seed=2, count=300):
        size = int(rng.integers(1, 4))
        if padding == "valid" and size > min(image.shape):
            size = 1
        ours, geo = ce.max_pool2d(image, size, stride, padding)
        np.testing.assert_array_equal(ours, _tf_max_pool(image, size, stride, padding))
        step = ce.pool_step(image, size, stride, padding, geo.output_size[0] - 1, geo.output_size[1] - 1)
        assert step.value == ours[-1, -1]
        assert step.window[step.argmax] == step.value


def test_max_pool_same_ignores_padding_on_negative_images():
    image = -np.ones((5, 5))  # zero padding would win the max if it were counted
    ours, geo = ce.max_pool2d(image, 2, 2, "same")
    assert geo.pads == (0, 1, 0, 1)
    np.testing.assert_array_equal(ours, -np.ones((3, 3)))
    step = ce.pool_step(image, 2, 2, "same", 2, 2)
    assert np.isnan(step.window[1, 1]) and step.value == -1


@pytest.mark.parametrize("size,kernel,stride,padding", [(7, 3, 1, "valid"), (7, 3, 2, "same"), (6, 3, 2, "same"), (5, 2, 2, "valid")])
def test_formula_text_shows_the_numbers_and_the_result(size, kernel, stride, padding):
    geo = ce.geometry((size, size), (kernel, kernel), stride, padding)
    text = geo.formula(0)
    out = conv_output_size(size, kernel, stride, padding)
    assert text.startswith("H_out = (H + 2P − F) / S + 1 = (")
    assert text.endswith(f"= {out}")
    assert f"({size} + " in text and f" − {kernel}) / {stride} + 1" in text
    if (size, kernel, stride, padding) == (6, 3, 2, "same"):
        assert "(6 + 0 + 1 − 3)" in text  # asymmetric SAME padding written as before + after


def test_sum_text_writes_out_every_product():
    image = ce.preset_image("Vertical edge", 5, 5)
    step = ce.conv_step(image, ce.preset_filter("Vertical edge (Sobel x)"), 1, "valid", 0, 1)
    assert step.sum_text().count("·") == 9
    assert step.sum_text().endswith("= 4")
    assert step.value == 4.0


def test_presets_have_the_requested_sizes():
    for name in ce.IMAGE_PRESETS:
        assert ce.preset_image(name, 4, 6).shape == (4, 6)
    for name in ce.FILTER_PRESETS:
        assert ce.preset_filter(name, 1, 3).shape == (1, 3)
    np.testing.assert_array_equal(ce.preset_filter("Identity", 1, 1), [[1.0]])


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: ce.conv2d(np.zeros((3, 3)), np.ones((1, 4, 4)), 1, "valid"), "Received: window=4x4"),
        (lambda: ce.conv2d(np.zeros((3, 3)), np.ones((1, 2, 2)), 1, "full"), "Received: padding='full'"),
        (lambda: ce.conv2d(np.zeros((3, 3, 3)), np.ones((1, 2, 2))), r"Received: shape=\(3, 3, 3\)"),
        (lambda: ce.conv2d(np.full((3, 3), np.nan), np.ones((1, 2, 2))), "NaN"),
        (lambda: ce.conv_step(np.zeros((4, 4)), np.ones((2, 2)), 2, "valid", 2, 0), r"Received: cell=\(2, 0\)"),
        (lambda: ce.max_pool2d(np.zeros((4, 4)), 2, 0), "Received: stride=0"),
        (lambda: ce.preset_image("Moon", 3, 3), "Received: name='Moon'"),
        (lambda: ce.preset_filter("Identity", 4, 3), "Received: height=4"),
    ],
)
def test_bad_settings_raise_one_sentence_errors(call, match):
    with pytest.raises(ce.ExplainerError, match=match):
        call()
