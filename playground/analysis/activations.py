"""Looking inside a trained (or untrained) model: feature maps, filters, Grad-CAM, saliency, embeddings.

Every function takes a Keras model built by `playground.model.network.build_model`
(inputs: raw pixels float32 0..255, shape (H, W, C); layers named
"block{b}_conv{c}", "block{b}_bn{c}", "block{b}_act{c}", ..., "logits",
"probabilities") and returns NumPy arrays; `playground.analysis.figures` draws them.

API:
    feature_maps(model, image, layer_names) -> {name: float32 (H, W, F)}
    activation_stages(model) -> [ConvStage(conv, before, after)]   # which layers to show per conv
    first_layer_filters(source) -> float32 (k, k, C_in, F)         # a model's now, or a run's before training
    predict(model, image) -> float32 (num_classes,) probabilities
    gradcam(model, image, class_index=None) -> (float32 (H, W) in 0..1, class_index)
    saliency(model, image, class_index) -> float32 (H, W) in 0..1
    embeddings(model, images, layer="penultimate") -> float32 (N, D)

All computation runs with `training=False`, so augmentation and dropout are
off and batch norm uses its moving statistics: the network as it predicts.
The sub-models that expose inner layers are made under `network.BUILD_LOCK`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from playground.model.network import BUILD_LOCK, predict_probabilities
from playground.model.table import FLATTENING
from playground.runs.record import RunRecord

INITIAL_FILTERS_FILE = "initial_first_conv.npy"  # in a run folder: the first conv's kernel before training
PENULTIMATE = "penultimate"  # the input of the "logits" layer


class InspectError(ValueError):
    """A layer, class or image that cannot be inspected, in one sentence."""


def _as_image_batch(model: keras.Model, image: np.ndarray) -> tf.Tensor:
    """One image (H, W, C) in 0..255 -> float32 (1, H, W, C), checked against the model's input."""
    x = np.asarray(image, dtype=np.float32)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    expected = tuple(model.inputs[0].shape[1:])
    if x.shape != expected:
        raise InspectError(f"The image must have the model's input shape {expected}. Received: shape={x.shape}")
    return tf.constant(x[None])


def _layer(model: keras.Model, name: str) -> keras.layers.Layer:
    try:
        return model.get_layer(name)
    except ValueError:
        raise InspectError(f"The model has no layer of that name. Received: layer={name!r}") from None


def _is_conv(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.Conv2D) and not layer.name.endswith("_shortcut")


def _sub_model(model: keras.Model, outputs: Any) -> keras.Model:
    """A model from `model`'s input to `outputs` (tensors of its layers, or a list of them), sharing its weights."""
    with BUILD_LOCK:
        return keras.Model(model.inputs, outputs)


# ---------------------------------------------------------------------------
# Feature maps.
# ---------------------------------------------------------------------------


def feature_maps(model: keras.Model, image: np.ndarray, layer_names: list[str]) -> dict[str, np.ndarray]:
    """The output of each named layer for one image, in one forward pass.

    Args:
        model: a functional Keras model.
        image: (H, W, C) raw pixels 0..255, the model's input shape.
        layer_names: layers whose output is a (batch, H', W', F) feature map.

    Returns:
        {name: float32 (H', W', F)} in the order of `layer_names`.
    """
    if not layer_names:
        return {}
    outputs = []
    for name in layer_names:
        tensor = _layer(model, name).output
        if len(tensor.shape) != 4:
            raise InspectError(f"Only layers with (H, W, F) feature maps can be shown. Received: layer={name!r} with output shape {tuple(tensor.shape)}")
        outputs.append(tensor)
    probe = _sub_model(model, outputs)
    values = probe(_as_image_batch(model, image), training=False)
    values = values if isinstance(values, (list, tuple)) else [values]
    return {name: np.asarray(v[0], dtype=np.float32) for name, v in zip(layer_names, values)}


@dataclass(frozen=True)
class ConvStage:
    """One conv layer and the two layers to compare around its activation.

    Attributes:
        conv: the conv layer, e.g. "block1_conv1".
        before: what goes into the activation: the batch norm ("block1_bn1") when
            there is one, else the conv itself.
        after: the activation's output ("block1_act1"), or None for a network
            without one (linear activation).
        block: the block number b.
    """

    conv: str
    before: str
    after: str | None
    block: int


_CONV_NAME = re.compile(r"^block(\d+)_conv(\d+)$")


def activation_stages(model: keras.Model) -> list[ConvStage]:
    """Each conv layer of the model with its pre-activation and activation layer names, in order.

    "before" is whatever layer feeds the activation "block{b}_act{c}": its batch
    norm, the conv itself, or in a residual block the "block{b}_add" of the
    shortcut, so the pair always shows exactly what the activation changes.
    """
    names = {layer.name for layer in model.layers}
    producers = {id(layer.output): layer.name for layer in model.layers}
    stages = []
    for layer in model.layers:
        match = _CONV_NAME.match(layer.name)
        if not match or not _is_conv(layer):
            continue
        b, c = match.groups()
        after = f"block{b}_act{c}" if f"block{b}_act{c}" in names else None
        before = f"block{b}_bn{c}" if f"block{b}_bn{c}" in names else layer.name
        if after is not None:
            before = producers.get(id(model.get_layer(after).input), before)
        stages.append(ConvStage(layer.name, before, after, int(b)))
    return stages


# ---------------------------------------------------------------------------
# Filters and predictions.
# ---------------------------------------------------------------------------


def first_layer_filters(source: keras.Model | np.ndarray | str | PathLike | RunRecord) -> np.ndarray:
    """The kernel of the first conv layer.

    Args:
        source: one of
            - a Keras model: its first conv's kernel now (after training, for a loaded run);
            - a run folder path, or a RunRecord (anything with a `.path`): the
              kernel saved before training (`initial_first_conv.npy`);
            - an array: checked and returned.

    Returns:
        float32 (k, k, C_in, F).

    Raises:
        InspectError: the model has no conv layer, or the run saved no initial filters.
    """
    if isinstance(source, keras.Model):
        for layer in source.layers:
            if _is_conv(layer):
                return np.asarray(layer.kernel, dtype=np.float32)
        raise InspectError(f"The model has no conv layer to take filters from. Received: model={source.name!r}")
    if isinstance(source, np.ndarray):
        weights = source
    else:
        folder = Path(getattr(source, "path", source))
        file = folder / INITIAL_FILTERS_FILE
        if not file.is_file():
            raise InspectError(f"This run saved no filters from before training. Received: {file}")
        weights = np.load(file, allow_pickle=False)
    if weights.ndim != 4:
        raise InspectError(f"Conv filters must be (k, k, C_in, F). Received: shape={weights.shape}")
    return np.asarray(weights, dtype=np.float32)


def predict(model: keras.Model, image: np.ndarray) -> np.ndarray:
    """Class probabilities for one image (a direct call, not the slow `model.predict`; with the spec's test-time augmentation).

    Returns:
        float32 (num_classes,).
    """
    return np.asarray(predict_probabilities(model, _as_image_batch(model, image))[0], dtype=np.float32)


# ---------------------------------------------------------------------------
# Grad-CAM and saliency.
# ---------------------------------------------------------------------------


def last_conv_output(model: keras.Model) -> str:
    """The layer whose output Grad-CAM weighs: the activation of the last conv block.

    That is the last layer with a 4-D output before the network flattens or
    pools globally, skipping pooling and dropout (which keep or coarsen the
    same maps): the activation after the last conv (or after its residual add).
    """
    candidate = None
    for layer in model.layers:
        shape = layer.output.shape
        if isinstance(layer, (*FLATTENING, keras.layers.Dense)):
            break
        if len(shape) == 4 and layer.name != model.inputs[0].name and not isinstance(
            layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, keras.layers.Dropout, keras.layers.InputLayer)
        ):
            candidate = layer.name
    if candidate is None or not any(_is_conv(layer) for layer in model.layers):
        raise InspectError(f"Grad-CAM needs a conv layer, and this model has none. Received: model={model.name!r}")
    return candidate


def _logits(model: keras.Model) -> keras.KerasTensor:
    return _layer(model, "logits").output


def _check_class(model: keras.Model, class_index: int) -> int:
    classes = int(_logits(model).shape[-1])
    if not 0 <= int(class_index) < classes:
        raise InspectError(f"The class index must be between 0 and {classes - 1}. Received: class_index={class_index}")
    return int(class_index)


def gradcam(model: keras.Model, image: np.ndarray, class_index: int | None = None, layer_name: str | None = None) -> tuple[np.ndarray, int]:
    """Grad-CAM: where in the image the evidence for a class lies (Selvaraju et al. 2017).

    The gradient of the class's LOGIT (not its softmax probability, which
    saturates) with respect to the last conv activation A (h, w, K) is
    averaged over space to one weight per channel; the heatmap is
    ReLU(sum_k weight_k * A_k), scaled to 0..1 and resized to the input.

    Args:
        model: a model with a "logits" layer.
        image: (H, W, C) raw pixels 0..255.
        class_index: the class to explain; None explains the predicted class.
        layer_name: the feature maps to weigh; default `last_conv_output(model)`.

    Returns:
        (heatmap float32 (H, W) in 0..1 — all zeros when nothing speaks for the
        class —, the class index explained).
    """
    x = _as_image_batch(model, image)
    layer_name = layer_name or last_conv_output(model)
    grad_model = _sub_model(model, [_layer(model, layer_name).output, _logits(model)])
    with tf.GradientTape() as tape:
        maps, logits = grad_model(x, training=False)  # (1, h, w, K), (1, classes)
        if class_index is None:
            class_index = int(tf.argmax(logits[0]))
        class_index = _check_class(model, class_index)
        score = logits[:, class_index]
    grads = tape.gradient(score, maps)  # (1, h, w, K)
    weights = tf.reduce_mean(grads, axis=(0, 1, 2))  # (K,) one weight per channel
    heatmap = tf.nn.relu(tf.reduce_sum(maps[0] * weights, axis=-1))  # (h, w)
    peak = float(tf.reduce_max(heatmap))
    heatmap = heatmap / peak if peak > 0 else heatmap
    size = x.shape[1:3]
    resized = tf.image.resize(heatmap[:, :, None], size, method="bilinear")[:, :, 0]  # (H, W)
    return np.clip(resized.numpy(), 0.0, 1.0).astype(np.float32), class_index


def saliency(model: keras.Model, image: np.ndarray, class_index: int) -> np.ndarray:
    """Vanilla saliency: |d logit / d pixel|, the largest over colour channels (Simonyan et al. 2013).

    Args:
        model: a model with a "logits" layer.
        image: (H, W, C) raw pixels 0..255.
        class_index: the class whose logit is differentiated.

    Returns:
        float32 (H, W) divided by its maximum, so in 0..1 (zeros if the gradient vanishes).
    """
    class_index = _check_class(model, class_index)
    x = tf.Variable(_as_image_batch(model, image))
    logit_model = _sub_model(model, _logits(model))
    with tf.GradientTape() as tape:
        score = logit_model(x, training=False)[:, class_index]
    grads = tape.gradient(score, x)  # (1, H, W, C)
    magnitude = tf.reduce_max(tf.abs(grads[0]), axis=-1).numpy()  # (H, W)
    peak = float(magnitude.max())
    return (magnitude / peak if peak > 0 else magnitude).astype(np.float32)


# ---------------------------------------------------------------------------
# Embeddings.
# ---------------------------------------------------------------------------


def embeddings(model: keras.Model, images: np.ndarray, layer: str = PENULTIMATE, batch_size: int = 256) -> np.ndarray:
    """The representation of many images at one layer, flattened, for projections (PCA, t-SNE).

    Args:
        model: a model with a "logits" layer.
        images: (N, H, W, C) raw pixels 0..255 (uint8 or float).
        layer: "penultimate" (the input of "logits": what the classifier
            separates linearly) or any layer name.
        batch_size: images per forward pass.

    Returns:
        float32 (N, D).
    """
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[1:] != tuple(model.inputs[0].shape[1:]):
        raise InspectError(f"Images must be (N, *{tuple(model.inputs[0].shape[1:])}). Received: shape={x.shape}")
    tensor = _layer(model, "logits").input if layer == PENULTIMATE else _layer(model, layer).output
    probe = _sub_model(model, tensor)
    chunks = [
        np.asarray(probe(tf.constant(x[i:i + batch_size], tf.float32), training=False)).reshape(min(batch_size, len(x) - i), -1)
        for i in range(0, len(x), batch_size)
    ]
    if not chunks:
        return np.zeros((0, int(np.prod(tensor.shape[1:]))), dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32)
