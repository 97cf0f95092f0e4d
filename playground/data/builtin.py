"""Datasets that need no network: procedural "shapes" and scikit-learn's 8x8 digits.

"shapes" is the CNN analog of the TensorFlow Playground's noisy 2-D sets:
light shapes on a dark background (like MNIST) whose size, position, angle
and stroke thickness vary, with a noise slider that makes the task harder.
Every image is drawn at once with NumPy from a signed distance to the shape's
edge, so a few thousand images take a fraction of a second.
"""

from __future__ import annotations

import numpy as np

from playground.data.dataset import Dataset, DatasetError, stratified_holdout

SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "ring")
SHAPES_SIDE = 28  # images are (28, 28, 1), like MNIST
SHAPES_TRAIN = 6000  # training images, balanced over the classes
SHAPES_TEST = 1000  # test images
# Standard deviation of the pixel noise at noise level 1, on the 0..255 scale.
SHAPES_NOISE_STD = 96.0
DIGITS_TEST_FRACTION = 0.2  # the fixed test split of the 8x8 digits


def load_shapes(noise: float, seed: int) -> Dataset:
    """The procedural shapes dataset.

    Args:
        noise: 0..1; the standard deviation of Gaussian pixel noise as a
            fraction of `SHAPES_NOISE_STD`. The shapes themselves depend only
            on the seed, so moving the noise slider shows the same shapes.
        seed: draws the shapes and the noise.

    Returns:
        Dataset of uint8 (28, 28, 1) images, 5 classes.
    """
    if not 0.0 <= noise <= 1.0:
        raise DatasetError(f"The shapes noise level must be between 0 and 1. Received: shapes_noise={noise!r}")
    x_train, y_train = draw_shapes(SHAPES_TRAIN, noise, np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1]))
    x_test, y_test = draw_shapes(SHAPES_TEST, noise, np.random.default_rng([seed, 2]), np.random.default_rng([seed, 3]))
    return Dataset(
        name="shapes",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=SHAPE_CLASSES,
        source=f"built in (procedural, noise {noise:g}, seed {seed})",
    )


def draw_shapes(
    count: int, noise: float, shape_rng: np.random.Generator, noise_rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw `count` shape images, classes balanced and shuffled.

    Returns:
        (x, y): uint8 (count, 28, 28, 1) and int32 (count,).
    """
    k = len(SHAPE_CLASSES)
    y = (np.arange(count) % k).astype(np.int32)
    shape_rng.shuffle(y)
    radius = shape_rng.uniform(5.0, 11.0, count).astype(np.float32)  # outer radius in pixels
    # Centres keep the shape inside the frame.
    cx = (radius + 0.5 + shape_rng.uniform(0, 1, count) * (SHAPES_SIDE - 2 * radius - 1)).astype(np.float32)
    cy = (radius + 0.5 + shape_rng.uniform(0, 1, count) * (SHAPES_SIDE - 2 * radius - 1)).astype(np.float32)
    angle = shape_rng.uniform(0, 2 * np.pi, count).astype(np.float32)
    thickness = shape_rng.uniform(1.5, 3.5, count).astype(np.float32)  # ring and cross stroke width
    brightness = shape_rng.uniform(150.0, 255.0, count).astype(np.float32)

    grid = np.arange(SHAPES_SIDE, dtype=np.float32)
    dx = grid[np.newaxis, np.newaxis, :] - cx[:, np.newaxis, np.newaxis]  # (count, 1, 28)
    dy = grid[np.newaxis, :, np.newaxis] - cy[:, np.newaxis, np.newaxis]  # (count, 28, 1)
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    u = dx * cos + dy * sin  # (count, 28, 28) coordinates in the shape's own frame
    v = dy * cos - dx * sin
    r = radius[:, None, None]
    t = thickness[:, None, None]

    # Signed distance to the edge (positive inside), one formula per class.
    distance = np.empty((count, SHAPES_SIDE, SHAPES_SIDE), np.float32)
    for label, name in enumerate(SHAPE_CLASSES):
        m = y == label
        um, vm, rm, tm = u[m], v[m], r[m], t[m]
        if name == "circle":
            d = rm - np.hypot(um, vm)
        elif name == "square":
            d = 0.8 * rm - np.maximum(np.abs(um), np.abs(vm))
        elif name == "triangle":
            # Equilateral, circumradius r: inside when within r/2 of the centre along each edge normal.
            normals = [(np.cos(a), np.sin(a)) for a in np.pi / 2 + 2 * np.pi * np.arange(3) / 3]
            d = 0.5 * rm - np.max([um * nx + vm * ny for nx, ny in normals], axis=0)
        elif name == "cross":
            d = np.maximum(np.minimum(tm / 2 - np.abs(um), rm - np.abs(vm)), np.minimum(tm / 2 - np.abs(vm), rm - np.abs(um)))
        else:  # ring
            rho = np.hypot(um, vm)
            d = np.minimum(rm - rho, rho - (rm - tm))
        distance[m] = d

    # One pixel of anti-aliased edge, then the shape's brightness.
    image = np.clip(distance + 0.5, 0.0, 1.0) * brightness[:, None, None]
    if noise > 0:
        image += noise_rng.standard_normal(image.shape, dtype=np.float32) * (noise * SHAPES_NOISE_STD)
    x = np.clip(np.rint(image), 0, 255).astype(np.uint8)[..., np.newaxis]
    return x, y


def load_digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images) as uint8 (8, 8, 1), with a fixed 20% test split."""
    from sklearn.datasets import load_digits as sklearn_digits  # imported late: sklearn.datasets is slow to import

    bunch = sklearn_digits()
    x = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., np.newaxis]  # 0..16 -> 0..255
    y = bunch.target.astype(np.int32)
    train_idx, test_idx = stratified_holdout(y, DIGITS_TEST_FRACTION, np.random.default_rng(0))
    return Dataset(
        name="digits",
        x_train=x[train_idx],
        y_train=y[train_idx],
        x_test=x[test_idx],
        y_test=y[test_idx],
        class_names=tuple(str(d) for d in range(10)),
        source="built in (scikit-learn 8x8 digits)",
    )
