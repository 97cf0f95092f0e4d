"""Decision quality of a classifier: confusion, per-class scores, calibration, projections.

Everything here takes NumPy arrays of labels and predicted probabilities and
returns NumPy arrays or small dataclasses; `metric_figures.py` draws them. The
counting is delegated to scikit-learn so the numbers are the reference ones.

Shapes used throughout: `y_true` (N,) integer class ids, `probabilities`
(N, C) rows that sum to 1, `features` (N, D) penultimate-layer activations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn import metrics as sk_metrics


class MetricsError(ValueError):
    """Labels, probabilities or options that cannot be scored, explained in one sentence."""


@dataclass(frozen=True)
class ClassScores:
    """Per-class precision, recall, F1 and support; each array has one entry per class."""

    precision: np.ndarray  # float64 (C,), 0 where a class was never predicted
    recall: np.ndarray  # float64 (C,), 0 where a class has no test images
    f1: np.ndarray  # float64 (C,)
    support: np.ndarray  # int64 (C,) test images of each true class


@dataclass(frozen=True)
class Calibration:
    """A reliability diagram's numbers: confidence against accuracy in equal-width bins."""

    edges: np.ndarray  # float64 (bins + 1,) from 0 to 1
    accuracy: np.ndarray  # float64 (bins,) fraction right in each bin; NaN for empty bins
    confidence: np.ndarray  # float64 (bins,) mean top probability in each bin; NaN for empty bins
    count: np.ndarray  # int64 (bins,) images in each bin
    ece: float  # expected calibration error: sum_b |B_b| / N * |acc_b - conf_b|


def _labels(y: np.ndarray, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise MetricsError(f"'{name}' must be a 1-D array of integer class ids. Received: shape={y.shape}, dtype={y.dtype}")
    return y.astype(np.int64, copy=False)


def _probabilities(probabilities: np.ndarray, y_true: np.ndarray | None = None) -> np.ndarray:
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise MetricsError(f"'probabilities' must be a 2-D array (images, classes). Received: shape={p.shape}")
    if y_true is not None and len(y_true) != len(p):
        raise MetricsError(f"'probabilities' needs one row per label. Received: {len(p)} rows for {len(y_true)} labels")
    return p


def _pair(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise MetricsError(f"'y_true' and 'y_pred' must have the same length. Received: {len(y_true)} and {len(y_pred)}")
    if num_classes < 1:
        raise MetricsError(f"'num_classes' must be at least 1. Received: num_classes={num_classes}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise MetricsError(f"'{name}' holds class ids outside 0..{num_classes - 1}. Received: min={y.min()}, max={y.max()}")
    return y_true, y_pred


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Args:
        y_true: (N,) true class ids.
        y_pred: (N,) predicted class ids.
        num_classes: C; classes absent from both arrays still get a row and a column.

    Returns:
        int64 (C, C): entry [t, p] counts images of class t predicted as p.
    """
    y_true, y_pred = _pair(y_true, y_pred, num_classes)
    return sk_metrics.confusion_matrix(y_true, y_pred, labels=np.arange(num_classes)).astype(np.int64)


def class_scores(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> ClassScores:
    """Precision, recall, F1 and support of every class (scikit-learn's definitions).

    Args:
        y_true: (N,) true class ids.
        y_pred: (N,) predicted class ids.
        num_classes: C.

    Returns:
        ClassScores with (C,) arrays; undefined ratios (no predictions or no
        images of a class) are 0 rather than a warning.
    """
    y_true, y_pred = _pair(y_true, y_pred, num_classes)
    precision, recall, f1, support = sk_metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(num_classes), zero_division=0
    )
    return ClassScores(precision, recall, f1, support.astype(np.int64))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of images whose predicted class is the true class (0.0 for no images)."""
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise MetricsError(f"'y_true' and 'y_pred' must have the same length. Received: {len(y_true)} and {len(y_pred)}")
    return float(sk_metrics.accuracy_score(y_true, y_pred)) if len(y_true) else 0.0


def log_loss(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean cross-entropy -log p(true class), the loss the network was trained on.

    Probabilities are clipped to [1e-7, 1] as Keras does, so a confident
    mistake costs about 16 rather than infinity.
    """
    y_true = _labels(y_true, "y_true")
    p = _probabilities(probabilities, y_true)
    if not len(y_true):
        return 0.0
    picked = np.clip(p[np.arange(len(y_true)), y_true], 1e-7, 1.0)
    return float(-np.mean(np.log(picked)))


def calibration(y_true: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> Calibration:
    """Reliability of the top probability: binned confidence against accuracy, and the ECE.

    Args:
        y_true: (N,) true class ids.
        probabilities: (N, C) predicted probabilities.
        bins: equal-width confidence bins over [0, 1]; a confidence equal to a
            bin's upper edge belongs to that bin (bins are (lo, hi], the first [0, hi]).

    Returns:
        Calibration; `ece` = sum over bins of |B| / N * |accuracy(B) - confidence(B)|.
    """
    y_true = _labels(y_true, "y_true")
    p = _probabilities(probabilities, y_true)
    if bins < 1:
        raise MetricsError(f"'bins' must be at least 1. Received: bins={bins}")
    confidence = p.max(axis=1)  # (N,)
    correct = (p.argmax(axis=1) == y_true).astype(np.float64)  # (N,)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin b holds confidences in (edges[b], edges[b + 1]]; 0 falls into bin 0.
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        bin_accuracy = np.bincount(which, weights=correct, minlength=bins) / count
        bin_confidence = np.bincount(which, weights=confidence, minlength=bins) / count
    filled = count > 0
    n = max(len(y_true), 1)
    ece = float(np.sum(count[filled] / n * np.abs(bin_accuracy[filled] - bin_confidence[filled])))
    return Calibration(edges, bin_accuracy, bin_confidence, count, ece)


def top_k(probabilities: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The k most probable classes of each image, most probable first.

    Returns:
        (classes int64 (N, k'), probabilities float64 (N, k')) with k' = min(k, C).
    """
    p = _probabilities(probabilities)
    if k < 1:
        raise MetricsError(f"'k' must be at least 1. Received: k={k}")
    k = min(k, p.shape[1])
    order = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return order.astype(np.int64), np.take_along_axis(p, order, axis=1)


def worst_mistakes(y_true: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Indices of misclassified images, the most confident mistakes first.

    Returns:
        int64 (M,) indices into the N images whose top class is wrong, sorted
        by the probability given to the wrong top class, descending (ties by index).
    """
    y_true = _labels(y_true, "y_true")
    p = _probabilities(probabilities, y_true)
    wrong = np.flatnonzero(p.argmax(axis=1) != y_true)
    confidence = p[wrong].max(axis=1)
    return wrong[np.argsort(-confidence, kind="stable")].astype(np.int64)


def cell_indices(y_true: np.ndarray, y_pred: np.ndarray, true_class: int, pred_class: int) -> np.ndarray:
    """Indices of the images in one confusion-matrix cell (true `true_class`, predicted `pred_class`)."""
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    return np.flatnonzero((y_true == true_class) & (y_pred == pred_class)).astype(np.int64)


def overfitting_epoch(history: dict, tolerance: float = 0.05) -> int | None:
    """The epoch after which a run started to over-fit, or None.

    Over-fitting here means: the last validation loss is more than `tolerance`
    (relative) above its minimum, while the training loss still fell after
    that minimum. Noise of a few percent is not called over-fitting.

    Args:
        history: per-epoch lists with "loss" and "val_loss" (NaN = missing).
        tolerance: relative rise of the validation loss that counts.

    Returns:
        The 1-based epoch of the lowest validation loss when the run over-fits after it, else None.
    """
    val_loss = np.asarray(history.get("val_loss") or [], dtype=np.float64)
    train_loss = np.asarray(history.get("loss") or [], dtype=np.float64)
    if len(val_loss) < 2 or len(train_loss) != len(val_loss) or not np.isfinite(val_loss).any():
        return None
    best = int(np.nanargmin(val_loss))
    rising = val_loss[-1] > (1.0 + tolerance) * val_loss[best] and train_loss[-1] < train_loss[best]
    return best + 1 if rising else None


PROJECTIONS = {"pca": "PCA (linear, fast)", "tsne": "t-SNE (non-linear, keeps neighbours)"}


def project_2d(features: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """Two-dimensional map of feature vectors, for a scatter plot coloured by class.

    Args:
        features: (N, D) penultimate-layer activations, N >= 2 (t-SNE: N >= 5).
        method: "pca" (principal components) or "tsne" (t-SNE, PCA-initialised,
            perplexity capped below N; about 3 s for 800 points).
        seed: random state of t-SNE.

    Returns:
        float32 (N, 2) coordinates.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise MetricsError(f"'features' must be a 2-D array (images, features). Received: shape={x.shape}")
    if method not in PROJECTIONS:
        raise MetricsError(f"Unknown projection {method!r}: choose one of {', '.join(PROJECTIONS)}.")
    minimum = 5 if method == "tsne" else 2
    if len(x) < minimum:
        raise MetricsError(f"A {method} projection needs at least {minimum} images. Received: {len(x)}")
    # Pad to two columns so a one-feature network still gets a 2-D picture.
    if x.shape[1] < 2:
        x = np.pad(x, ((0, 0), (0, 2 - x.shape[1])))
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    # One OpenMP thread: t-SNE's spinning worker threads are many times slower
    # than one thread on a small server that is also training networks.
    with threadpool_limits(limits=1):
        if method == "pca":
            return PCA(n_components=2, random_state=seed).fit_transform(x).astype(np.float32)
        perplexity = float(min(30.0, (len(x) - 1) / 3))
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", max_iter=500, random_state=seed)
        return tsne.fit_transform(x).astype(np.float32)
