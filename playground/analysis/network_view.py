"""The network as a picture: what every layer computes for one image, and how the classes separate.

`NetworkProbe` runs one image through a model (the model being trained:
the probe shares its layers) and returns one `events.Column` per column of
the Playground's network diagram: the input, each conv block's feature maps
after the activation (a readable sample of wide layers, with their count),
each dense layer's units, and the output probabilities. Values travel as
small uint8 arrays, so a training worker can send them several times an
epoch without slowing training.

`DecisionProbe` follows a fixed set of validation images (`decision_sample`
picks a few of each class): which ones the network gets right, and their
penultimate features projected to 2-D with axes kept stable from one call to
the next, so the classes visibly pull apart as training goes on.
`weight_histograms` counts each layer's weights in fixed bins, and
`filter_kernels` takes the filters behind the maps a conv column shows;
`WeightsProbe` follows both through training.
"""

from __future__ import annotations

import re

import keras
import numpy as np
import tensorflow as tf

from playground.model.network import BUILD_LOCK
from playground.training.events import Column, Decision, Kernels, Weights

MAX_MAPS = 32  # feature maps shown per conv block (a wider block shows an even sample and its count)
MAX_UNITS = 128  # units shown per dense layer
THUMB_SIDE = 32  # feature maps larger than this are sent shrunk by an integer stride
HISTOGRAM_BINS = 30  # bins of a layer's weight histogram
DECISION_IMAGES = 100  # images the decision picture follows (a few of each class)


class NetworkProbe:
    """Every column of the diagram from one forward pass of a model that shares `model`'s layers.

    Args:
        model: a model built by `model.network.build_model` (layers named blockB_*, denseD*, probabilities).
        max_maps: feature maps shown per conv block.
        compiled: trace the forward pass once (about 0.1 s), so that each later call costs about a
            millisecond instead of ten: for a training worker that draws the diagram many times.
    """

    def __init__(self, model: keras.Model, max_maps: int = MAX_MAPS, *, compiled: bool = False):
        self.columns = diagram_layers(model)  # [(name, kind, layer name, pooled size)]
        outputs = [model.get_layer(layer).output for _, _, layer, _ in self.columns]
        with BUILD_LOCK:  # Keras model building is not thread-safe
            self._model = keras.Model(model.input, outputs)
        self._forward = tf.function(self._call, reduce_retracing=True) if compiled else self._call
        self._max_maps = max_maps

    def _call(self, batch):
        return self._model(batch, training=False)

    def outputs(self, image: np.ndarray) -> list[np.ndarray]:
        """The float32 output of each column's layer for one image (one forward pass).

        Args:
            image: uint8 (H, W, C), the model's input size.

        Returns:
            One array per column after the input: conv (h, w, F), dense (units,), output (K,).
        """
        batch = np.asarray(image, dtype=np.float32)[None]  # (1, H, W, C)
        outputs = self._forward(batch)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        return [np.asarray(keras.ops.convert_to_numpy(output)[0], dtype=np.float32) for output in outputs]

    def views(self, image: np.ndarray) -> tuple[Column, ...]:
        """The diagram's columns for one image with the current weights.

        Args:
            image: uint8 (H, W, C), the model's input size.

        Returns:
            (input column, one column per conv block, per dense layer, output column).
        """
        image = np.asarray(image, np.uint8)
        channels = int(image.shape[-1])
        views = [Column("input", "input", image, channels, tuple(range(channels)), tuple(int(d) for d in image.shape))]
        for (name, kind, _, pooled), values in zip(self.columns, self.outputs(image)):
            views.append(_conv_view(name, values, pooled, self._max_maps) if kind == "conv" else _vector_view(name, kind, values))
        return tuple(views)

    def feature_maps(self, image: np.ndarray, blocks: int) -> dict[str, np.ndarray]:
        """{layer name: float32 (h, w, F)} output of the first `blocks` conv blocks for one image (Probe events)."""
        convs = [(layer, values) for (_, kind, layer, _), values in zip(self.columns, self.outputs(image)) if kind == "conv"]
        return dict(convs[:blocks])


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


def _conv_view(name: str, values: np.ndarray, pooled: tuple[int, int] | None, max_maps: int) -> Column:
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
    return Column(name, "conv", np.rint(scaled).astype(np.uint8), filters, shown, (h, w, filters), pooled,
                  stats.astype(np.float32))


def _vector_view(name: str, kind: str, values: np.ndarray) -> Column:
    """(units,) activations or probabilities -> uint8 (a dense layer scaled by its largest unit)."""
    if kind == "output":
        return Column(name, kind, np.rint(np.clip(values, 0, 1) * 255).astype(np.uint8), len(values),
                      tuple(range(len(values))), (len(values),))
    shown = _even_sample(len(values), MAX_UNITS)
    part = values[list(shown)]
    low, high = float(min(part.min(), 0.0)), float(part.max())
    scaled = (part - low) * (255.0 / (high - low)) if high > low else np.zeros_like(part)
    return Column(name, kind, np.rint(scaled).astype(np.uint8), len(values), shown, (len(values),))


def _even_sample(count: int, most: int) -> tuple[int, ...]:
    """`most` indices spread evenly over 0..count-1, first and last included (all of them when there are fewer)."""
    if count <= most:
        return tuple(range(count))
    return tuple(int(i) for i in np.unique(np.linspace(0, count - 1, most).round().astype(int)))


# ---------------------------------------------------------------------------
# The decision picture: a fixed set of validation images, right or wrong, and where they lie.
# ---------------------------------------------------------------------------


def decision_sample(labels: np.ndarray, num_classes: int, most: int = DECISION_IMAGES) -> np.ndarray:
    """Indices of a few images of each class, class by class (the first ones of each, so always the same).

    Args:
        labels: int (n,) classes of the images to choose from.
        num_classes: number of classes.
        most: images wanted in all; each class gives most // num_classes (at least one) when it has them.

    Returns:
        int64 (m,) indices into `labels`, m <= max(most, num_classes).
    """
    labels = np.asarray(labels)
    per_class = max(1, most // max(num_classes, 1))
    picked = [np.flatnonzero(labels == k)[:per_class] for k in range(num_classes)]
    return np.concatenate(picked).astype(np.int64) if picked else np.zeros(0, np.int64)


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

    def view(self, epoch: int) -> Decision:
        """Predictions and projected features with the current weights; axes follow the previous call's.

        Args:
            epoch: the epochs the weights have seen (recorded in the result).
        """
        features, probabilities = self._model(self.images, training=False)
        features = np.asarray(keras.ops.convert_to_numpy(features), np.float64).reshape(len(self.images), -1)
        predicted = np.asarray(keras.ops.convert_to_numpy(probabilities)).argmax(axis=1)
        points = stable_projection(features, self._previous)
        self._previous = points
        return Decision(int(epoch), predicted.astype(np.int16), predicted == self.labels, points.astype(np.float16))


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


def filter_kernels(model: keras.Model, max_maps: int = MAX_MAPS) -> dict[str, Kernels]:
    """The filters behind each conv column's shown maps: the block's last conv, over a sample of its inputs.

    Args:
        model: the model.
        max_maps: feature maps shown per conv block (the output maps and input channels kept).

    Returns:
        {column name ("block1", ...): Kernels with float16 (n_out, n_in, k, k) weights}; the output maps
        are those the column shows (`NetworkProbe.views`), the input channels an even sample of the same size.
    """
    names = [layer.name for layer in model.layers]
    kernels = {}
    for name, kind, _, _ in diagram_layers(model):
        convs = sorted((int(m.group(1)), n) for n in names if (m := re.fullmatch(rf"{name}_conv(\d+)", n)))
        if kind != "conv" or not convs:
            continue
        layer = convs[-1][1]
        kernel = np.asarray(keras.ops.convert_to_numpy(model.get_layer(layer).kernel), np.float32)  # (k, k, C_in, F)
        inputs, outputs = _even_sample(kernel.shape[2], max_maps), _even_sample(kernel.shape[3], max_maps)
        picked = kernel[:, :, list(inputs)][:, :, :, list(outputs)]  # (k, k, n_in, n_out)
        kernels[name] = Kernels(layer, np.transpose(picked, (3, 2, 0, 1)).astype(np.float16), inputs, int(kernel.shape[2]))
    return kernels


class WeightsProbe:
    """Follows a model's weights through training: histograms in bins fixed at the first call, and the filters.

    Args:
        model: the model being trained.
        max_maps: feature maps shown per conv block (see `filter_kernels`).
    """

    def __init__(self, model: keras.Model, max_maps: int = MAX_MAPS):
        self._model = model
        self._max_maps = max_maps
        self._edges: dict[str, np.ndarray] | None = None

    def view(self, epoch: int) -> Weights:
        """The weights as they are now, after `epoch` epochs (recorded in the result)."""
        counts, self._edges = weight_histograms(self._model, self._edges)
        return Weights(int(epoch), counts, dict(self._edges), filter_kernels(self._model, self._max_maps))
