"""Inspection functions against references: layer shapes, hand-computed convs, known Grad-CAM answers."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from playground.analysis import activations


def _small_cnn(residual=False):
    """A model named the way network.build_model names its layers (2 conv blocks, 3 classes)."""
    keras.utils.set_random_seed(0)
    image = keras.Input((12, 12, 1), name="image")
    x = keras.layers.Rescaling(1 / 255, name="normalize")(image)
    x = keras.layers.Conv2D(4, 3, padding="same", name="block1_conv1")(x)  # (12, 12, 4)
    x = keras.layers.BatchNormalization(name="block1_bn1")(x)
    x = keras.layers.ReLU(name="block1_act1")(x)
    x = keras.layers.MaxPooling2D(name="block1_pool")(x)  # (6, 6, 4)
    shortcut = x
    x = keras.layers.Conv2D(4, 3, padding="valid" if not residual else "same", name="block2_conv1")(x)
    if residual:
        x = keras.layers.Add(name="block2_add")([x, shortcut])
    x = keras.layers.Activation("relu", name="block2_act1")(x)  # (4, 4, 4) or (6, 6, 4)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(5, activation="relu", name="dense1")(x)
    logits = keras.layers.Dense(3, name="logits")(x)
    return keras.Model(image, keras.layers.Softmax(name="probabilities")(logits))


@pytest.fixture(scope="module")
def cnn():
    model = _small_cnn()
    # Non-trivial batch-norm statistics, so "before" and "after" differ from the raw conv.
    bn = model.get_layer("block1_bn1")
    bn.moving_mean.assign(np.full(4, 0.1, np.float32))
    bn.moving_variance.assign(np.full(4, 0.5, np.float32))
    return model


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, size=(12, 12, 1)).astype(np.float32)


def test_feature_map_shapes_equal_layer_output_shapes(cnn, image):
    names = [layer.name for layer in cnn.layers if len(layer.output.shape) == 4 and layer.name != "image"]
    maps = activations.feature_maps(cnn, image, names)
    assert list(maps) == names
    for name in names:
        assert maps[name].shape == tuple(cnn.get_layer(name).output.shape[1:]), name
        assert maps[name].dtype == np.float32


def test_feature_maps_equal_the_convolution_computed_by_hand(cnn, image):
    maps = activations.feature_maps(cnn, image, ["block1_conv1", "block1_bn1", "block1_act1"])
    conv = cnn.get_layer("block1_conv1")
    expected = tf.nn.conv2d(image[None] / 255.0, conv.kernel, 1, "SAME")[0] + conv.bias
    np.testing.assert_allclose(maps["block1_conv1"], expected, rtol=1e-4, atol=1e-5)
    bn = cnn.get_layer("block1_bn1")
    normalised = (expected - bn.moving_mean) / np.sqrt(bn.moving_variance + bn.epsilon) * bn.gamma + bn.beta
    np.testing.assert_allclose(maps["block1_bn1"], normalised, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(maps["block1_act1"], np.maximum(maps["block1_bn1"], 0), atol=1e-6)


def test_activation_stages_pair_each_conv_with_what_feeds_its_activation(cnn):
    stages = activations.activation_stages(cnn)
    assert [(s.conv, s.before, s.after, s.block) for s in stages] == [
        ("block1_conv1", "block1_bn1", "block1_act1", 1),
        ("block2_conv1", "block2_conv1", "block2_act1", 2),
    ]
    residual = activations.activation_stages(_small_cnn(residual=True))
    assert residual[1].before == "block2_add"


def test_feature_maps_reject_dense_layers_and_unknown_names(cnn, image):
    with pytest.raises(activations.InspectError, match="Received: layer='dense1'"):
        activations.feature_maps(cnn, image, ["dense1"])
    with pytest.raises(activations.InspectError, match="Received: layer='block9_conv1'"):
        activations.feature_maps(cnn, image, ["block9_conv1"])
    with pytest.raises(activations.InspectError, match=r"Received: shape=\(12, 12, 3\)"):
        activations.feature_maps(cnn, np.zeros((12, 12, 3)), ["block1_conv1"])
    assert activations.feature_maps(cnn, image, []) == {}


def _left_right_model():
    """Known answer: channel 0 fires on bright pixels, channel 1 on dark ones; logit k = mean of channel k."""
    image = keras.Input((8, 8, 1), name="image")
    conv = keras.layers.Conv2D(2, 1, name="block1_conv1")
    x = keras.layers.ReLU(name="block1_act1")(conv(image))  # (8, 8, 2)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)  # (2,)
    dense = keras.layers.Dense(2, name="logits")
    logits = dense(x)
    model = keras.Model(image, keras.layers.Softmax(name="probabilities")(logits))
    conv.set_weights([np.array([1.0, -1.0], np.float32).reshape(1, 1, 1, 2), np.array([-128.0, 128.0], np.float32)])
    dense.set_weights([np.eye(2, dtype=np.float32), np.zeros(2, np.float32)])
    return model


def _bright_left_image():
    image = np.full((8, 8, 1), 64.0, np.float32)  # dark right half: channel 1 = 64
    image[:, :4] = 255.0  # bright left half: channel 0 = 127
    return image


def test_gradcam_puts_the_bright_class_on_the_left_and_the_dark_class_on_the_right():
    model, image = _left_right_model(), _bright_left_image()
    heatmap, predicted = activations.gradcam(model, image)
    assert predicted == 0  # logits (63.5, 32)
    assert heatmap.shape == (8, 8) and heatmap.dtype == np.float32
    assert heatmap.min() >= 0 and heatmap.max() == pytest.approx(1.0)
    assert heatmap[:, :4].sum() > 0.95 * heatmap.sum()
    dark, chosen = activations.gradcam(model, image, class_index=1)
    assert chosen == 1
    assert dark[:, 4:].sum() > 0.95 * dark.sum()


def test_gradcam_resizes_to_the_input_and_explains_the_predicted_class(cnn, image):
    heatmap, predicted = activations.gradcam(cnn, image)
    assert predicted == int(np.argmax(activations.predict(cnn, image)))
    assert heatmap.shape == (12, 12)
    assert 0.0 <= heatmap.min() and heatmap.max() <= 1.0
    assert activations.last_conv_output(cnn) == "block2_act1"
    with pytest.raises(activations.InspectError, match="Received: class_index=3"):
        activations.gradcam(cnn, image, class_index=3)


def test_saliency_of_a_linear_model_is_its_largest_absolute_weight_per_pixel():
    rng = np.random.default_rng(1)
    image = keras.Input((4, 4, 2), name="image")
    dense = keras.layers.Dense(2, name="logits")
    model = keras.Model(image, keras.layers.Softmax(name="probabilities")(dense(keras.layers.Flatten(name="flatten")(image))))
    weights = rng.normal(size=(32, 2)).astype(np.float32)
    dense.set_weights([weights, np.zeros(2, np.float32)])
    result = activations.saliency(model, rng.uniform(0, 255, (4, 4, 2)), class_index=1)
    expected = np.abs(weights[:, 1].reshape(4, 4, 2)).max(axis=-1)
    np.testing.assert_allclose(result, expected / expected.max(), rtol=1e-5)


def test_embeddings_are_the_input_of_the_logits_layer():
    model = _left_right_model()
    images = np.stack([_bright_left_image(), np.zeros((8, 8, 1), np.float32), np.full((8, 8, 1), 255.0, np.float32)])
    result = activations.embeddings(model, images, batch_size=2)  # two batches
    # Penultimate = global average of ReLU(x - 128) and ReLU(128 - x).
    expected = np.stack([np.maximum(images - 128, 0).mean(axis=(1, 2, 3)), np.maximum(128 - images, 0).mean(axis=(1, 2, 3))], axis=1)
    np.testing.assert_allclose(result, expected, rtol=1e-5)
    maps = activations.embeddings(model, images, layer="block1_act1")
    assert maps.shape == (3, 8 * 8 * 2)
    with pytest.raises(activations.InspectError, match=r"Received: shape=\(3, 8, 8\)"):
        activations.embeddings(model, images[..., 0])


def test_first_layer_filters_from_a_model_a_run_folder_and_an_array(cnn, tmp_path):
    kernel = activations.first_layer_filters(cnn)
    np.testing.assert_array_equal(kernel, cnn.get_layer("block1_conv1").kernel.numpy())
    assert kernel.shape == (3, 3, 1, 4)
    before = np.random.default_rng(2).normal(size=(3, 3, 1, 4))
    np.save(tmp_path / activations.INITIAL_FILTERS_FILE, before)
    np.testing.assert_allclose(activations.first_layer_filters(tmp_path), before.astype(np.float32))

    class Record:  # what a RunRecord offers: the run folder as .path
        path = tmp_path

    np.testing.assert_allclose(activations.first_layer_filters(Record()), before.astype(np.float32))
    with pytest.raises(activations.InspectError, match="saved no filters"):
        activations.first_layer_filters(tmp_path / "other")
    with pytest.raises(activations.InspectError, match=r"Received: shape=\(3, 3\)"):
        activations.first_layer_filters(np.zeros((3, 3)))


def test_predict_gives_the_softmax_of_one_image(cnn, image):
    probabilities = activations.predict(cnn, image)
    np.testing.assert_allclose(probabilities, cnn(image[None], training=False)[0], rtol=1e-6)
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
