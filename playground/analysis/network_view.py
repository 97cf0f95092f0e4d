"""The network as a picture: what every layer computes for one image, and how the classes separate.

`NetworkProbe` runs one image through a model (the model being trained:
the probe shares its layers) and returns one `ColumnView` per column of the
Playground's network diagram: the input, each conv block's feature maps
after the activation (a readable sample of wide layers, with their count),
each dense layer's units, and the output probabilities. Values travel as
small uint8 arrays, so a training worker can send them several times an
epoch without slowing training.

`DecisionProbe` follows a fixed set of validation images: which ones the
network gets right, and their penultimate features projected to 2-D with
axes kept stable from one call to the next, so the classes visibly pull
apart as training goes on. `weight_histograms` counts each layer's weights
in fixed bins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import keras
import numpy as np

from playground.model.network import BUILD_LOCK

MAX_MAPS = 32  # feature maps shown per conv block (a wider block shows an even sample and its count)
MAX_UNITS = 128  # units shown per dense layer
THUMB_SIDE = 32  # feature maps larger than this are sent shrunk by an integer stride
HISTOGRAM_BINS = 30  # bins of a layer's weight histogram


@dataclass(frozen=True, eq=False)
class ColumnView:
    """One column of the network diagram for one image."""

    name: str  # "input", "block1", ..., "dense1", ..., "output"
    kind: str  # "input", "conv", "dense" or "output"
    values: np.ndarray  # uint8: input (H, W, C); conv (n, h, w); dense (n,); output (K,) probability x 255
    total: int  # maps or units the layer has (conv: F; dense: units; output: classes)
    shown: tuple[int, ...]  # which of them `values` holds, in order
    shape: tuple[int, ...]  # the layer's output shape for one image: (h, w, F) or (units,)
    pooled: tuple[int, int] | None = None  # (h, w) after the block's pooling; None without pooling
    stats: np.ndarray | None = None  # conv: float32 (n, 3) mean, max and share of zeros of each shown map


class NetworkProbe:
    """Every column of the diagram from one forward pass of a model that shares `model`'s layers.

    Args:
        model: a model built by `model.network.build_model` (layers named blockB_*, denseD*, probabilities).
        max_maps: feature maps shown per conv block.
    """

    def __init__(self, model: keras.Model, max_maps: int = MAX_MAPS):
        self.columns = diagram_layers(model)  # [(name, kind, layer name, pooled size)]
        outputs = [model.get_layer(layer).output for _, _, layer, _ in self.columns]
        with BUILD_LOCK:  # Keras model building is not thread-safe
            self._model = keras.Model(model.input, outputs)
        self._max_maps = max_maps

    def views(self, image: np.ndarray) -> list[ColumnView]:
        """The diagram's columns for one image with the current weights.

        Args:
            image: uint8 (H, W, C), the model's input size.

        Returns:
            [input column, one column per conv block, per dense layer, output column].
        """
        batch = np.asarray(image, dtype=np.float32)[None]  # (1, H, W, C)
        outputs = self._model(batch, training=False)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        views = [ColumnView("input", "input", np.asarray(image, np.uint8), int(np.shape(image)[-1]),
                            tuple(range(int(np.shape(image)[-1]))), tuple(int(d) for d in np.shape(image)))]
        for (name, kind, _, pooled), output in zip(self.columns, outputs):
            values = np.asarray(keras.ops.convert_to_numpy(output)[0], dtype=np.float32)
            views.append(_conv_view(name, values, pooled, self._max_maps) if kind == "conv" else _vector_view(name, kind, values))
        return views


def diagram_layers(model: keras.Model) -> list[tuple[str, str, str, tuple[int, int] | None]]:
    """(column name, kind, layer name, pooled (h, w) or None) for each column after the input.

    A conv block's column is its last activation ("blockB_actC", or "blockB_add"/"blockB_conv..." when it
    has none); a dense layer's is its activation ("denseD_act") or the layer itself; the output is the
    softmax ("probabilities").
    """
    names = [layer.name for layer in model.layers]
    columns = []
    blocks = sorted({int(m.group(1)) for n in names if (m := re.match(r"block(\d+)_", n))})
    for block in blocks:
        in_block = [n for n in names if n.startswith(f"block{block}_")]
        chosen = ([n for n in in_block if "_act" in n] or [n for n in in_block if n.endswith("_add")]
                  or [n for n in in_block if "_conv" in n])
        if not chosen:
            continue
        pool = f"block{block}_pool"
        pooled = tuple(int(d) for d in model.get_layer(pool).output.shape[1:3]) if pool in names else None
        columns.append((f"block{block}", "conv", chosen[-1], pooled))
    dense = sorted({int(m.group(1)) for n in names if (m := re.fullmatch(r"dense(\d+)", n))})
    for d in dense:
        columns.append((f"dense{d}", "dense", f"dense{d}_act" if f"dense{d}_act" in names else f"dense{d}", None))
    columns.append(("output", "output", "probabilities", None))
    return columns


def _conv_view(name: str, values: np.ndarray, pooled: tuple[int, int] | None, max_maps: int) -> ColumnView:
    """(h, w, F) float maps -> a column of up to `max_maps` uint8 thumbnails, scaled by the block's largest value."""
    h, w, filters = values.shape
    shown = _even_sample(filters, max_maps)
    maps = np.moveaxis(values[:, :, shown], 2, 0)  # (n, h, w)
    stats = np.stack([maps.mean(axis=(1, 2)), maps.max(axis=(1, 2)), (maps <= 0).mean(axis=(1, 2))], axis=1)
    step = max(1, -(-max(h, w) // THUMB_SIDE))
    thumbs = maps[:, ::step, ::step]
    # One scale for the whole block: a map that stays dark is a weak (or dead) one, not a stretched one.
    low, high = float(min(thumbs.min(), 0.0)), float(thumbs.max())
    scaled = (thumbs - low) * (255.0 / (high - low)) if high > low else np.zeros_like(thumbs)
    return ColumnView(name, "conv", np.rint(scaled).astype(np.uint8), filters, shown, (h, w, filters), pooled,
                      stats.astype(np.float32))


def _vector_view(name: str, kind: str, values: np.ndarray) -> ColumnView:
    """(units,) activations or probabilities -> uint8 (a dense layer scaled by its largest unit)."""
    if kind == "output":
        return ColumnView(name, kind, np.rint(np.clip(values, 0, 1) * 255).astype(np.uint8), len(values),
                          tuple(range(len(values))), (len(values),))
    shown = _even_sample(len(values), MAX_UNITS)
    part = values[list(shown)]
    low, high = float(min(part.min(), 0.0)), float(part.max())
    scaled = (part - low) * (255.0 / (high - low)) if high > low else np.zeros_like(part)
    return ColumnView(name, kind, np.rint(scaled).astype(np.uint8), len(values), shown, (len(values),))


def _even_sample(count: int, most: int) -> tuple[int, ...]:
    if count <= most:
        return tuple(range(count))
    return tuple(int(i) for i in np.unique(np.linspace(0, count - 1, most).round().astype(int)))


# ---------------------------------------------------------------------------
# The decision picture: a fixed set of validation images, right or wrong, and where they lie.
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DecisionView:
    """How the network treats a fixed set of images now."""

    predicted: np.ndarray  # int16 (n,) predicted class of each image
    correct: np.ndarray  # bool (n,) whether it is the image's label
    points: np.ndarray  # float16 (n, 2) penultimate features projected to 2-D (stable axes, about -3..3)


class DecisionProbe:
    """Follows a fixed set of images through training (the mosaic and the projection of the diagram).

    Args:
        model: the model being trained.
        images: uint8 (n, H, W, C), e.g. about 100 validation images, a few of each class.
        labels: int (n,) their classes.
    """

    def __init__(self, model: keras.Model, images: np.ndarray, labels: np.ndarray):
        features = model.get_layer("logits").input  # the penultimate features (after dropout: off at inference)
        with BUILD_LOCK:
            self._model = keras.Model(model.input, [features, model.output])
        self.images = np.asarray(images, np.float32)
        self.labels = np.asarray(labels, np.int64)
        self._previous: np.ndarray | None = None

    def view(self) -> DecisionView:
        """Predictions and projected features with the current weights; axes follow the previous call's."""
        features, probabilities = self._model(self.images, training=False)
        features = np.asarray(keras.ops.convert_to_numpy(features), np.float64).reshape(len(self.images), -1)
        predicted = np.asarray(keras.ops.convert_to_numpy(probabilities)).argmax(axis=1)
        points = stable_projection(features, self._previous)
        self._previous = points
        return DecisionView(predicted.astype(np.int16), predicted == self.labels, points.astype(np.float16))


def stable_projection(features: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """2-D PCA of `features`, standardised, and turned to match `previous` (orthogonal Procrustes).

    Args:
        features: float (n, d).
        previous: the same images' points from the last call, or None.

    Returns:
        float64 (n, 2) with overall standard deviation 1, rotated or reflected to lie as close as
        possible to `previous`, so the picture does not spin or flip between epochs.
    """
    centred = features - features.mean(axis=0)
    if centred.shape[1] < 2 or not np.any(centred):
        points = np.zeros((len(features), 2))
    else:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        points = centred @ vt[:2].T
        points /= max(float(points.std()), 1e-12)
    if previous is not None and previous.shape == points.shape:
        u, _, vt2 = np.linalg.svd(points.T @ previous)
        points = points @ (u @ vt2)  # the rotation (or reflection) closest to the previous layout
    return points


def weight_histograms(model: keras.Model, edges: dict[str, np.ndarray] | None = None
                      ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Counts of each conv and dense layer's kernel weights in fixed bins.

    Args:
        model: the model.
        edges: {layer name: bin edges} from an earlier call (so every epoch uses the same bins);
            None makes them from the current weights (their range, widened by half).

    Returns:
        ({layer name: int32 (HISTOGRAM_BINS,) counts}, {layer name: float32 edges}).
    """
    edges = dict(edges or {})
    counts = {}
    for layer in model.layers:
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            continue
        weights = np.asarray(keras.ops.convert_to_numpy(layer.kernel), np.float32).ravel()
        if layer.name not in edges:
            bound = 1.5 * float(np.abs(weights).max() or 1.0)
            edges[layer.name] = np.linspace(-bound, bound, HISTOGRAM_BINS + 1, dtype=np.float32)
        counts[layer.name] = np.histogram(np.clip(weights, edges[layer.name][0], edges[layer.name][-1]),
                                          bins=edges[layer.name])[0].astype(np.int32)
    return counts, edges
