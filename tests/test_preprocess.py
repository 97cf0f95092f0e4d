"""Tests of playground.preprocess: whitening, random crop, augmentation and normalisation previews."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from playground.model import network as models
from playground.model import preprocess
from playground.spec.experiment import ExperimentSpec, PreprocessSpec

# One switch per augmentation, each strong enough to change a small image.
AUGMENTATIONS = {
    "crop_padding": 2,
    "flip": True,
    "rotation": 30.0,
    "shift": 0.2,
    "brightness": 0.3,
    "contrast": 0.5,
}


def _images(n=6, size=10, channels=1, seed=0):
    """Random uint8 images with structure (a gradient plus noise), so flips and shifts show."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, size)[None, None, :, None]
    noise = rng.integers(0, 55, size=(n, size, size, channels))
    return (ramp + noise).astype(np.uint8)


def _spec(**changes):
    return ExperimentSpec().with_values(**changes)


def test_per_image_layer_matches_tensorflow():
    rng = np.random.default_rng(1)
    x = np.concatenate([
        rng.normal(100, 40, size=(3, 7, 5, 3)),
        np.full((1, 7, 5, 3), 17.0),  # blank image: std 0, the 1/sqrt(N) floor applies
    ]).astype(np.float32)
    ours = preprocess.PerImageStandardization()(x)
    reference = tf.image.per_image_standardization(x)
    np.testing.assert_allclose(np.asarray(ours), reference.numpy(), atol=1e-5)


def test_random_pad_crop_shifts_each_image_by_at_most_the_padding():
    p = 2
    x = _images(n=16, size=9, channels=2).astype(np.float32)
    out = np.asarray(preprocess.RandomPadCrop(p, seed=3)(x, training=True))
    assert out.shape == x.shape
    padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    offsets = []
    for i in range(len(x)):
        found = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                 if np.array_equal(out[i], padded[i, dy:dy + 9, dx:dx + 9])]
        assert found, f"image {i} is not a crop of its padded self"
        offsets.append(found[0])
    # Each image draws its own offset (Keras' RandomCrop would use one per batch).
    assert len(set(offsets)) > 1
    np.testing.assert_array_equal(preprocess.RandomPadCrop(p, seed=3)(x, training=False), x)


def test_augment_examples_is_identity_when_augmentation_is_off():
    x = _images()
    out = preprocess.augment_examples(_spec(), x, count=len(x), seed=0)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x.astype(np.float32))


@pytest.mark.parametrize("switch", sorted(AUGMENTATIONS))
def test_each_augmentation_changes_images_and_keeps_shape_and_range(switch):
    x = _images(n=4, size=12, channels=3)
    spec = _spec(**{switch: AUGMENTATIONS[switch]})
    out = preprocess.augment_examples(spec, x, count=20, seed=5)
    assert out.shape == (20, 12, 12, 3)
    assert 0.0 <= out.min() and out.max() <= 255.0
    tiled = x[np.arange(20) % 4].astype(np.float32)
    changed = sum(not np.allclose(out[i], tiled[i]) for i in range(20))
    assert changed >= 5, f"{switch} changed only {changed} of 20 images"
    # Same seed, same images; another seed, other images.
    np.testing.assert_array_equal(out, preprocess.augment_examples(spec, x, count=20, seed=5))
    assert not np.array_equal(out, preprocess.augment_examples(spec, x, count=20, seed=6))


def test_one_image_gives_count_variations():
    x = _images(n=1)[0]  # (H, W, C)
    out = preprocess.augment_examples(_spec(shift=0.3), x, count=5, seed=0)
    assert out.shape == (5, *x.shape)
    assert len({out[i].tobytes() for i in range(5)}) > 1


def test_augmentation_layers_pass_images_unchanged_at_inference():
    x = _images(n=3, size=12, channels=3).astype(np.float32)
    layers = preprocess.augmentation_layers(_spec(**AUGMENTATIONS).preprocess, seed=0)
    assert [layer.name for layer in layers] == [
        "augment_crop", "augment_flip", "augment_rotation", "augment_shift", "augment_brightness", "augment_contrast"]
    for layer in layers:
        np.testing.assert_allclose(np.asarray(layer(x, training=False)), x, atol=1e-4, err_msg=layer.name)


def test_augment_examples_match_the_models_augmentation_layers():
    spec = _spec(**AUGMENTATIONS, seed=7)
    x = _images(n=5, size=12, channels=3)
    model = models.build_model(spec, (12, 12, 3), 3)
    augment = keras.Model(model.input, model.get_layer("augment_contrast").output)
    from_model = np.asarray(augment(x.astype(np.float32), training=True))
    preview = preprocess.augment_examples(spec, x, count=5, seed=7)
    np.testing.assert_allclose(preview, np.clip(from_model, 0, 255), atol=1e-3)


def test_augment_examples_rejects_bad_input():
    with pytest.raises(ValueError, match="count=0"):
        preprocess.augment_examples(_spec(), _images(), count=0, seed=0)
    with pytest.raises(ValueError, match="shape"):
        preprocess.augment_examples(_spec(), np.zeros((4, 4)), count=1, seed=0)


def test_normalize_examples_gives_every_normalisation():
    x = _images(n=4, size=8, channels=3)
    out = preprocess.normalize_examples(_spec(), x, x_sample=None)
    assert set(out) == {"original", "scaled", "per_image", "dataset"}
    for value in out.values():
        assert value.shape == x.shape and value.dtype == np.float32
    np.testing.assert_array_equal(out["original"], x.astype(np.float32))
    np.testing.assert_allclose(out["scaled"], x / 255.0, atol=1e-6)
    per_image = out["per_image"].reshape(4, -1)
    np.testing.assert_allclose(per_image.mean(axis=1), 0.0, atol=1e-4)
    np.testing.assert_allclose(per_image.std(axis=1), 1.0, atol=1e-3)
    # Without x_sample the images' own per-channel statistics are used.
    per_channel = out["dataset"].reshape(-1, 3)
    np.testing.assert_allclose(per_channel.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(per_channel.std(axis=0), 1.0, atol=1e-3)


def test_normalize_examples_uses_the_statistics_of_x_sample():
    x = _images(n=2, size=6, channels=1)
    sample = np.full((3, 6, 6, 1), 50, np.uint8)
    sample[0] = 150  # mean 250/3, std 47.14...
    out = preprocess.normalize_examples(_spec(normalization="dataset"), x, x_sample=sample)
    mean, std = sample.mean(), sample.std()
    np.testing.assert_allclose(out["dataset"], (x - mean) / std, rtol=1e-4, atol=1e-4)


def test_layer_seeds_differ_by_name_and_seed():
    seeds = {preprocess.layer_seed(s, n) for s in (0, 1) for n in ("block1_conv1", "block1_conv2")}
    assert len(seeds) == 4
    assert preprocess.layer_seed(0, "logits") == preprocess.layer_seed(0, "logits")
    assert all(0 <= s < 2**31 for s in seeds)


def test_preprocess_spec_defaults_add_no_augmentation_layer():
    assert preprocess.augmentation_layers(PreprocessSpec(), seed=0) == []
