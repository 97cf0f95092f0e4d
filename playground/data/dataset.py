"""The Dataset record every reader returns, its error, and seeded stratified index splits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_CLASSES = 1000  # classes one dataset may have


class DatasetError(ValueError):
    """A dataset that cannot be had or used: one message saying what was tried and what to do."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images and labels of one dataset, split into training and test images.

    The arrays are made read-only on construction: a dataset is cached and
    shared by every caller in the process.
    """

    name: str  # "fashion_mnist", or the file/folder name for paths
    x_train: np.ndarray = field(repr=False)  # uint8 (N, H, W, C), read-only
    y_train: np.ndarray = field(repr=False)  # int32 (N,), values in 0..num_classes-1
    x_test: np.ndarray = field(repr=False)  # uint8 (M, H, W, C), read-only
    y_test: np.ndarray = field(repr=False)  # int32 (M,)
    class_names: tuple[str, ...]  # one name per class index
    source: str  # where it came from (path, URL, "built in")
    skipped: int = 0  # files skipped while reading a folder/zip

    def __post_init__(self) -> None:
        for part in ("x_train", "x_test"):
            x = getattr(self, part)
            if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or x.shape[3] not in (1, 3):
                raise ValueError(f"{part} must be uint8 (N, H, W, 1 or 3). Received: {getattr(x, 'dtype', type(x))} {getattr(x, 'shape', '')}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(f"Training and test images differ in shape. Received: {self.x_train.shape[1:]} and {self.x_test.shape[1:]}")
        for part, x in (("y_train", self.x_train), ("y_test", self.x_test)):
            y = getattr(self, part)
            if not isinstance(y, np.ndarray) or y.dtype != np.int32 or y.shape != (len(x),):
                raise ValueError(f"{part} must be int32 ({len(x)},). Received: {getattr(y, 'dtype', type(y))} {getattr(y, 'shape', '')}")
            if y.size and (y.min() < 0 or y.max() >= len(self.class_names)):
                raise ValueError(f"{part} holds labels outside 0..{len(self.class_names) - 1}. Received: {y.min()}..{y.max()}")
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        for part in ("x_train", "y_train", "x_test", "y_test"):
            getattr(self, part).flags.writeable = False

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one image."""
        h, w, c = self.x_train.shape[1:]
        return int(h), int(w), int(c)

    @property
    def num_classes(self) -> int:
        """Number of classes (the length of `class_names`)."""
        return len(self.class_names)

    def info(self) -> dict[str, Any]:
        """Plain-JSON description: name, source, input_shape, class_names, sizes, skipped."""
        return {
            "name": self.name,
            "source": self.source,
            "input_shape": list(self.input_shape),
            "class_names": list(self.class_names),
            "num_classes": self.num_classes,
            "train_size": int(len(self.x_train)),
            "test_size": int(len(self.x_test)),
            "skipped": int(self.skipped),
        }


def stratified_pick(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random indices of `labels`, each class in proportion to its size.

    Args:
        labels: (N,) integer labels.
        count: how many indices to pick, 0..N.
        rng: the random generator (seeded by the caller).

    Returns:
        int64 (count,) indices in random order.
    """
    n = len(labels)
    count = int(min(max(count, 0), n))
    if count == 0:
        return np.zeros(0, np.int64)
    classes, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    quota = sizes * (count / n)
    take = np.floor(quota).astype(np.int64)
    # Largest remainders get the leftover picks; random order breaks ties.
    leftover = count - int(take.sum())
    order = np.lexsort((rng.random(len(classes)), -(quota - take)))
    take[order[:leftover]] += 1
    return _first_of_each_class(inverse, take, rng)


def stratified_holdout(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (keep, held_out) with `fraction` of every class held out.

    Every class with at least two members keeps one and holds out at least one.

    Returns:
        (keep, held_out): int64 index arrays, each in random order.
    """
    _, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    held = np.clip(np.rint(sizes * fraction).astype(np.int64), 1, None)
    held = np.minimum(held, sizes - 1)  # a class of one is kept for training
    held_idx = _first_of_each_class(inverse, held, rng)
    mask = np.ones(len(labels), bool)
    mask[held_idx] = False
    keep = np.flatnonzero(mask)
    return rng.permutation(keep), held_idx


def _first_of_each_class(inverse: np.ndarray, take: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random indices: take[c] members of class c (classes given as 0..K-1 in `inverse`)."""
    perm = rng.permutation(len(inverse))
    by_class = perm[np.argsort(inverse[perm], kind="stable")]  # shuffled within each class
    starts = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=len(take)))[:-1]])
    rank = np.arange(len(by_class)) - starts[inverse[by_class]]
    chosen = by_class[rank < take[inverse[by_class]]]
    return rng.permutation(chosen)
