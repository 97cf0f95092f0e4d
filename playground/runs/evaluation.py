"""A saved run's predictions on a test set, computed once and cached in the run folder.

The Decision quality page, the ensemble and the Compare page all need the
probabilities a run gives every test image; predicting 10,000 images takes
seconds on a CPU, so the result is stored next to the weights as
`evaluation-<test fingerprint>.npz` (plain arrays, read with
`allow_pickle=False`). The fingerprint names the test images and labels, and
the file also records the size and time of `model.weights.h5`, so a cache is
never used for other data or other weights.

Penultimate-layer features (the input of the "logits" layer) are kept for a
seeded sample of at most `MAX_FEATURE_IMAGES` test images: enough for a PCA or
t-SNE picture, small enough to project in seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from playground.data.dataset import Dataset
from playground.runs.record import RunRecord

if TYPE_CHECKING:  # Keras and the store import TensorFlow; they are imported only when a model is evaluated
    import keras

    from playground.runs.store import RunStore

MAX_FEATURE_IMAGES = 1000  # test images whose penultimate features are kept for projections
WEIGHTS_FILE = "model.weights.h5"
_CACHE_VERSION = "1"


class EvaluationError(ValueError):
    """A run that cannot be evaluated on the given data, explained in one sentence."""


@dataclass(frozen=True)
class Evaluation:
    """What a model says about every test image, plus features of a sample of them."""

    probabilities: np.ndarray  # float32 (N, C) softmax output for the N test images
    y_true: np.ndarray  # int32 (N,) true classes
    feature_indices: np.ndarray  # int64 (S,) test indices of the images in `features`, S <= MAX_FEATURE_IMAGES
    features: np.ndarray  # float32 (S, D) penultimate-layer activations of those images

    @property
    def predictions(self) -> np.ndarray:
        """int64 (N,) predicted classes (the most probable)."""
        return self.probabilities.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        """float32 (N,) top probability of each image."""
        return self.probabilities.max(axis=1)

    @property
    def correct(self) -> np.ndarray:
        """bool (N,) whether the prediction is the true class."""
        return self.predictions == self.y_true


# Datasets are cached, read-only objects: hash each one's test set once (CIFAR-10's is 30 MB).
_FINGERPRINTS: weakref.WeakKeyDictionary[Dataset, str] = weakref.WeakKeyDictionary()


def test_fingerprint(dataset: Dataset) -> str:
    """A short hash of a dataset's test images, labels and class names (equal data, equal hash)."""
    try:
        return _FINGERPRINTS[dataset]
    except (KeyError, TypeError):
        pass
    digest = hashlib.sha256()
    digest.update(str(np.asarray(dataset.x_test).shape).encode())
    digest.update(np.ascontiguousarray(dataset.x_test).tobytes())
    digest.update(np.ascontiguousarray(dataset.y_test, dtype=np.int32).tobytes())
    digest.update("\x00".join(dataset.class_names).encode())
    fingerprint = digest.hexdigest()[:16]
    with contextlib.suppress(TypeError):  # objects without weak references are hashed every time
        _FINGERPRINTS[dataset] = fingerprint
    return fingerprint


def sample_indices(count: int, limit: int = MAX_FEATURE_IMAGES, seed: int = 0) -> np.ndarray:
    """Sorted int64 indices of a seeded random sample of min(count, limit) of `count` images."""
    if count <= limit:
        return np.arange(count, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(count, size=limit, replace=False)).astype(np.int64)


def evaluate_model(model: keras.Model, x: np.ndarray, y: np.ndarray, *, batch_size: int = 256, seed: int = 0) -> Evaluation:
    """Predict every image and take penultimate features of a sample.

    Args:
        model: a Keras model from `network.build_model` (raw pixels in, a
            "logits" layer, softmax probabilities out).
        x: (N, H, W, C) raw pixels 0..255.
        y: (N,) true classes.
        batch_size: images per forward pass.
        seed: which images make the feature sample.

    Returns:
        The Evaluation.
    """
    import tensorflow as tf

    from playground.model.network import predict_probabilities

    from playground.analysis import activations

    x = np.asarray(x)
    y = np.asarray(y, dtype=np.int32)
    expected = tuple(model.inputs[0].shape[1:])
    if x.ndim != 4 or x.shape[1:] != expected or len(x) != len(y):
        raise EvaluationError(f"The model takes images of shape {expected}, one label each. Received: images {x.shape}, {len(y)} labels")
    # Batch by batch, as every prediction is made: no Keras predict loop, dropout and augmentation off.
    chunks = [np.asarray(predict_probabilities(model, tf.constant(x[i:i + batch_size], tf.float32)))
              for i in range(0, len(x), batch_size)]
    num_classes = int(model.outputs[0].shape[-1])
    probabilities = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, num_classes), np.float32)
    picked = sample_indices(len(x), seed=seed)
    features = activations.embeddings(model, x[picked], batch_size=batch_size)  # (S, D)
    return Evaluation(probabilities, y, picked, features.astype(np.float32))


def cache_path(record: RunRecord, dataset: Dataset) -> Path:
    """Where the evaluation of `record` on `dataset`'s test set is cached."""
    return Path(record.path) / f"evaluation-{test_fingerprint(dataset)}.npz"


def evaluate_run(record: RunRecord, dataset: Dataset, *, store: RunStore | None = None) -> Evaluation:
    """The run's evaluation on `dataset`'s test set, from the cache or computed and cached.

    Args:
        record: the run (its folder holds the weights).
        dataset: test data with the run's input shape and classes.
        store: the RunStore that loads the model (default: the store of the folder
            holding the run; its `load_model` builds under `network.BUILD_LOCK`).

    Returns:
        The Evaluation. A folder that cannot be written is not an error: the
        result is then computed again next time.
    """
    if record.damaged:
        raise EvaluationError(f"A damaged run cannot be evaluated. Received: run {record.name!r} ({record.damaged})")
    if tuple(record.input_shape) != tuple(dataset.input_shape) or len(record.class_names) != len(dataset.class_names):
        raise EvaluationError(
            f"The run takes {tuple(record.input_shape)} images in {len(record.class_names)} classes, so it cannot be evaluated on this data. "
            f"Received: {tuple(dataset.input_shape)} images in {len(dataset.class_names)} classes"
        )
    path = cache_path(record, dataset)
    stamp = _weights_stamp(record)
    cached = _read_cache(path, stamp, len(dataset.y_test))
    if cached is not None:
        return cached
    if store is None:
        from playground.runs.store import RunStore

        store = RunStore(Path(record.path).parent)
    model = store.load_model(record.run_id)
    evaluation = evaluate_model(model, dataset.x_test, dataset.y_test)
    _write_cache(path, stamp, evaluation)
    return evaluation


def measured_accuracy(record: RunRecord, dataset_name: str) -> float:
    """A run's accuracy on a named dataset's standard test set, measured on this server.

    What the class challenge ranks: never the numbers in a run's
    metrics.json, which for an imported bundle are only its claims. Every
    run is scored on the same images (for "shapes": the default noise and
    seed), and the predictions are cached in the run folder like any
    evaluation.

    Args:
        record: the run (its model is rebuilt from its folder).
        dataset_name: a named dataset (a key of the data catalog).

    Returns:
        The share of test images predicted right, 0..1.

    Raises:
        DatasetError, EvaluationError, RunStoreError (all ValueErrors): the
            data or the run cannot be used, in one sentence.
    """
    from playground.data.datasets import load_dataset

    evaluation = evaluate_run(record, load_dataset(dataset_name))
    if not len(evaluation.y_true):
        raise EvaluationError(f"The test set of {dataset_name!r} is empty, so no run can be scored on it.")
    return float(np.mean(evaluation.correct))


def _weights_stamp(record: RunRecord) -> str:
    try:
        st = (Path(record.path) / WEIGHTS_FILE).stat()
    except OSError:
        return "missing"
    return f"{_CACHE_VERSION}:{st.st_size}:{st.st_mtime_ns}"


def _read_cache(path: Path, stamp: str, count: int) -> Evaluation | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["stamp"]) != stamp or len(data["y_true"]) != count:
                return None
            return Evaluation(
                data["probabilities"].astype(np.float32),
                data["y_true"].astype(np.int32),
                data["feature_indices"].astype(np.int64),
                data["features"].astype(np.float32),
            )
    except (OSError, KeyError, ValueError):
        return None  # missing, stale or damaged: compute again


def _write_cache(path: Path, stamp: str, evaluation: Evaluation) -> None:
    # Temp file + os.replace: two sessions evaluating the same run never leave half a file.
    try:
        fd, tmp = tempfile.mkstemp(prefix=".evaluation-", suffix=".npz", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                stamp=np.array(stamp),
                probabilities=evaluation.probabilities,
                y_true=evaluation.y_true,
                feature_indices=evaluation.feature_indices,
                features=evaluation.features,
            )
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
