"""The fused batch norm against keras.layers.BatchNormalization: outputs, statistics, gradients, weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from playground.model.layers import FusedBatchNormalization


def _pair(shape, momentum=0.9):
    """A fused and a Keras batch norm built for `shape`, with the same non-trivial weights."""
    fused, plain = FusedBatchNormalization(momentum=momentum), keras.layers.BatchNormalization(momentum=momentum)
    rng = np.random.default_rng(0)
    for layer in (fused, plain):
        layer.build(shape)
    weights = [rng.normal(1, 0.3, shape[-1]), rng.normal(0, 0.3, shape[-1]), rng.normal(0, 1, shape[-1]), rng.uniform(0.5, 2, shape[-1])]
    for layer in (fused, plain):
        layer.set_weights([w.astype(np.float32) for w in weights])
    return fused, plain


@pytest.mark.parametrize("training", [True, False])
def test_outputs_statistics_and_gradients_match_keras(training):
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(3, 2, size=(8, 5, 6, 4)).astype(np.float32))
    upstream = tf.constant(rng.normal(size=(8, 5, 6, 4)).astype(np.float32))
    fused, plain = _pair(x.shape)
    results = []
    for layer in (fused, plain):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(y * upstream)
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append((y, grads, [w.copy() for w in layer.get_weights()]))
    (y1, g1, w1), (y2, g2, w2) = results
    np.testing.assert_allclose(y1, y2, rtol=1e-4, atol=1e-4)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    for a, b in zip(w1, w2):  # moving mean and variance updated alike (or left alone at inference)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_same_weight_names_so_weights_files_interchange():
    fused, plain = _pair((2, 3, 3, 5))
    assert [w.name for w in fused.weights] == [w.name for w in plain.weights]
    assert [w.trainable for w in fused.weights] == [w.trainable for w in plain.weights]


def test_falls_back_to_keras_for_other_ranks():
    x = np.random.default_rng(2).normal(size=(6, 3)).astype(np.float32)
    fused, plain = _pair(x.shape)
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused.moving_variance, plain.moving_variance, rtol=1e-6)
