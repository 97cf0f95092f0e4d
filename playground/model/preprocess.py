"""Input preprocessing inside the model: augmentation and normalisation layers.

The model takes raw pixels (float32 0..255, shape (H, W, C)); everything that
changes them lives in Keras layers at the start of the network, so training,
evaluation, prediction and the saved weights all see the same thing:

    image -> augment_* (random, training only) -> normalize -> conv blocks ...

This module makes those layers from a `PreprocessSpec`, and runs them on a few
images for the Preprocessing page (`augment_examples`, `normalize_examples`).
"""

from __future__ import annotations

import math
import zlib

import keras
import numpy as np
from keras import layers, ops

from playground.spec.experiment import ExperimentSpec, PreprocessSpec

# Pixel range of the raw images the model receives.
VALUE_RANGE = (0.0, 255.0)
# Images per chunk when the "dataset" normaliser reads its statistics.
_ADAPT_CHUNK = 4096


@keras.saving.register_keras_serializable(package="playground")
class PerImageStandardization(layers.Layer):
    """Whitens each image on its own: (x - mean) / max(std, 1 / sqrt(N)).

    The same formula as `tf.image.per_image_standardization`: mean and
    standard deviation over all N = H * W * C values of one image; the floor
    1 / sqrt(N) keeps a blank image from dividing by zero. No weights.
    """

    def call(self, images):
        # images: (batch, H, W, C) -> same shape, mean 0 and std 1 per image.
        images = ops.cast(images, self.compute_dtype)
        n = math.prod(images.shape[1:])
        mean = ops.mean(images, axis=(1, 2, 3), keepdims=True)
        std = ops.std(images, axis=(1, 2, 3), keepdims=True)
        return (images - mean) / ops.maximum(std, 1.0 / math.sqrt(n))

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="playground")
class RandomPadCrop(layers.Layer):
    """Random crop: pad each image by `padding` zero pixels, crop back at a random spot.

    Every image of the batch gets its own offset, drawn uniformly from
    0..2 * padding along each axis, so the content moves by up to +- padding
    pixels. At inference the images pass through unchanged (same shape).
    (Keras' `RandomCrop` draws one offset per batch and returns the padded
    size at inference, hence this layer.)

    Args:
        padding: zero pixels added on every side before cropping.
        seed: seed of the random offsets.
    """

    def __init__(self, padding, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training or self.padding == 0:
            return images
        p = self.padding
        shape = ops.shape(images)
        batch, height, width = shape[0], images.shape[1], images.shape[2]
        padded = ops.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
        # Offsets (batch, 2) in 0..2p; row/column indices of each crop.
        offsets = keras.random.randint((batch, 2), 0, 2 * p + 1, seed=self.generator)
        rows = offsets[:, :1] + ops.arange(height)[None, :]  # (batch, H)
        cols = offsets[:, 1:] + ops.arange(width)[None, :]  # (batch, W)
        # Gather rows, then columns: (batch, H+2p, W+2p, C) -> (batch, H, W+2p, C) -> (batch, H, W, C).
        out = ops.take_along_axis(padded, rows[:, :, None, None], axis=1)
        return ops.take_along_axis(out, cols[:, None, :, None], axis=2)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "seed": self.seed}


def layer_seed(seed: int, name: str) -> int:
    """A seed for one named layer, derived from the experiment seed.

    Each layer gets its own stream (two same-shaped layers do not start equal),
    and a layer keeps its stream when other layers are added or removed.
    """
    return zlib.crc32(f"{seed}/{name}".encode()) & 0x7FFFFFFF


def augmentation_layers(pre: PreprocessSpec, seed: int) -> list[layers.Layer]:
    """The random augmentation layers of `pre`, in the order the model applies them.

    Each is active only in training (`training=True`) and works on raw
    0..255 pixels: crop, horizontal flip, rotation, shift, brightness, contrast.
    Areas moved in from outside the image are filled with zeros, as the crop's padding is.

    Args:
        pre: the preprocessing settings; a switch at 0 / False adds no layer.
        seed: the experiment seed; each layer gets its own derived seed.

    Returns:
        The layers, named "augment_crop", "augment_flip", "augment_rotation",
        "augment_shift", "augment_brightness", "augment_contrast" (only those switched on).
    """
    return [make_layer(cls, kwargs) for cls, kwargs in augmentation_configs(pre, seed)]


def augmentation_configs(pre: PreprocessSpec, seed: int) -> list[tuple[str, dict]]:
    """(class name, keyword arguments) of each augmentation layer; see `augmentation_layers`.

    Plain data, so the code export writes the same layers that the model uses.
    """
    configs: list[tuple[str, dict]] = []

    def add(cls: str, name: str, **kwargs) -> None:
        configs.append((cls, {**kwargs, "seed": layer_seed(seed, name), "name": name}))

    fill = {"fill_mode": "constant", "fill_value": 0.0}
    if pre.crop_padding:
        add("RandomPadCrop", "augment_crop", padding=pre.crop_padding)
    if pre.flip:
        add("RandomFlip", "augment_flip", mode="horizontal")
    if pre.rotation:
        # Keras takes the angle as a fraction of a full turn.
        add("RandomRotation", "augment_rotation", factor=pre.rotation / 360.0, **fill)
    if pre.shift:
        add("RandomTranslation", "augment_shift", height_factor=pre.shift, width_factor=pre.shift, **fill)
    if pre.brightness:
        add("RandomBrightness", "augment_brightness", factor=pre.brightness, value_range=VALUE_RANGE)
    if pre.contrast:
        add("RandomContrast", "augment_contrast", factor=pre.contrast, value_range=VALUE_RANGE)
    return configs


def normalization_config(pre: PreprocessSpec) -> tuple[str, dict]:
    """(class name, keyword arguments) of the "normalize" layer for `pre.normalization`.

    "scale": Rescaling(1/255) to 0..1; "per_image": PerImageStandardization;
    "dataset": Normalization per channel, whose mean and variance are weights
    set by `adapt` on training images (saved with the model's weights).
    """
    if pre.normalization == "scale":
        return "Rescaling", {"scale": 1.0 / 255.0, "name": "normalize"}
    if pre.normalization == "per_image":
        return "PerImageStandardization", {"name": "normalize"}
    return "Normalization", {"axis": -1, "name": "normalize"}


def normalization_layer(pre: PreprocessSpec) -> layers.Layer:
    """The "normalize" layer of `pre` (a "dataset" one still needs `adapt_normalizer`)."""
    return make_layer(*normalization_config(pre))


def adapt_normalizer(layer: layers.Layer, x_sample: np.ndarray) -> None:
    """Set a "dataset" normaliser's per-channel mean and variance from `x_sample`.

    Args:
        layer: a `keras.layers.Normalization`.
        x_sample: uint8 or float images (N, H, W, C) in 0..255.
    """
    x = np.asarray(x_sample)
    if x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"x_sample must be a non-empty batch of images (N, H, W, C). Received: shape={x.shape}")
    mean, variance = _channel_moments(x)
    if not layer.built:
        layer.build((None, *x.shape[1:]))
    # Keras' own `adapt` sums in float32 (0.5% off on 10k CIFAR-sized images); set the exact values.
    layer.adapt_mean.assign(mean.astype(np.float32))
    layer.adapt_variance.assign(variance.astype(np.float32))
    layer.finalize_state()


# Layers of this module that a plan may name next to those of keras.layers.
CUSTOM_LAYERS = {"RandomPadCrop": RandomPadCrop, "PerImageStandardization": PerImageStandardization}


def _channel_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel mean and variance of images (N, H, W, C), in float64."""
    channels = x.shape[-1]
    if x.dtype == np.uint8:
        # A 256-bin histogram per channel: fast, and no float copy of the images.
        hist = np.stack([np.bincount(x[..., c].ravel(), minlength=256) for c in range(channels)]).astype(np.float64)
        values = np.arange(256.0)
        count = hist.sum(axis=1)
        mean = hist @ values / count
        return mean, (hist * (values[None, :] - mean[:, None]) ** 2).sum(axis=1) / count
    total, squares = np.zeros(channels), np.zeros(channels)
    for i in range(0, len(x), _ADAPT_CHUNK):
        chunk = x[i:i + _ADAPT_CHUNK].astype(np.float64)
        total += chunk.sum(axis=(0, 1, 2))
        squares += np.square(chunk).sum(axis=(0, 1, 2))
    count = x.size // channels
    mean = total / count
    return mean, np.maximum(squares / count - mean**2, 0.0)


def make_layer(cls: str, kwargs: dict) -> layers.Layer:
    """An instance of layer class `cls` (from keras.layers or CUSTOM_LAYERS) made with `kwargs`."""
    return (CUSTOM_LAYERS.get(cls) or getattr(layers, cls))(**kwargs)


def _as_batch(images: np.ndarray) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"Expected images (N, H, W, C) or one image (H, W, C). Received: shape={x.shape}")
    return x.astype(np.float32)


def augment_examples(spec: ExperimentSpec, images_uint8: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Images as training sees them: the model's augmentation layers applied in training mode.

    Args:
        spec: the experiment; its preprocess section picks the augmentations.
        images_uint8: (N, H, W, C) or one (H, W, C) image, 0..255. Output i
            augments image i % N, so one image gives `count` variations.
        count: how many augmented images to return.
        seed: seed of the random draws (same seed, same images).

    Returns:
        float32 (count, H, W, C) in 0..255; the images unchanged when every
        augmentation is off.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1. Received: count={count}")
    x = _as_batch(images_uint8)
    x = x[np.arange(count) % len(x)]
    for layer in augmentation_layers(spec.preprocess, seed):
        x = layer(x, training=True)
    return np.clip(ops.convert_to_numpy(x), *VALUE_RANGE).astype(np.float32)


def normalize_examples(spec: ExperimentSpec, images_uint8: np.ndarray, x_sample: np.ndarray | None) -> dict[str, np.ndarray]:
    """The same images under each normalisation, for side-by-side display and histograms.

    Args:
        spec: the experiment (its `preprocess.normalization` is the one the
            model uses; every normalisation is returned so they can be compared).
        images_uint8: (N, H, W, C) or one (H, W, C) image, 0..255.
        x_sample: training images whose per-channel mean and std the
            "dataset" normaliser uses; None uses `images_uint8` themselves.

    Returns:
        float32 arrays (N, H, W, C) under "original" (0..255), "scaled" (0..1),
        "per_image" (each image mean 0, std 1) and "dataset" (each channel
        mean 0, std 1 over `x_sample`).
    """
    x = _as_batch(images_uint8)
    dataset_layer = normalization_layer(PreprocessSpec(normalization="dataset"))
    adapt_normalizer(dataset_layer, x if x_sample is None else _as_batch(x_sample))
    out = {
        "original": x,
        "scaled": normalization_layer(PreprocessSpec(normalization="scale"))(x),
        "per_image": normalization_layer(PreprocessSpec(normalization="per_image"))(x),
        "dataset": dataset_layer(x),
    }
    return {k: np.asarray(ops.convert_to_numpy(v), dtype=np.float32) for k, v in out.items()}
