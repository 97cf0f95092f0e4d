"""Out-of-distribution honesty: does an outside picture look like what the network was trained on?

A network answers every picture with some class, confidently or not. Next to
a prediction the page says when the picture, as the network sees it, looks
nothing like the training images (its brightness, contrast or amount of ink
outside what the training images show, or colour sent to a network trained on
gray images), or when the network itself is unsure (its answer spread over
many classes), instead of showing a confident wrong label without comment.

    look = TrainingLook.of(dataset.x_train)
    warning = unfamiliar(prepared.array, pixels, probabilities, look)   # "" when nothing is odd
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNSURE_ENTROPY = 0.6  # the answer's entropy, as a share of the most possible (all classes alike), that counts as unsure
_SAMPLE = 1000  # training images looked at
_MARGIN = 0.15  # how far past the training images' 1st..99th percentiles a statistic may go, as a share of that range
_COLOURFUL = 40.0  # mean channel spread (0..255) above which a picture is a colour picture


@dataclass(frozen=True)
class TrainingLook:
    """The ranges (1st to 99th percentile) of simple per-image statistics of the training images."""

    brightness: tuple[float, float]  # mean pixel value, 0..255
    contrast: tuple[float, float]  # standard deviation of the pixel values
    ink: tuple[float, float]  # share of pixels far from the image's own median (strokes, objects)
    gray: bool  # the network takes one channel

    @classmethod
    def of(cls, images: np.ndarray) -> "TrainingLook":
        """Statistics of (a sample of) training images.

        Args:
            images: uint8 (N, H, W, C) training images, as the network takes them.

        Returns:
            The TrainingLook.
        """
        sample = np.asarray(images[:: max(1, len(images) // _SAMPLE)], dtype=np.float32)
        stats = _statistics(sample)
        ranges = {name: (float(np.percentile(values, 1)), float(np.percentile(values, 99))) for name, values in stats.items()}
        return cls(ranges["brightness"], ranges["contrast"], ranges["ink"], gray=images.shape[-1] == 1)


def unfamiliar(image: np.ndarray, pixels: np.ndarray, probabilities: np.ndarray, look: TrainingLook | None) -> str:
    """One sentence saying why a prediction should not be trusted, or "" when nothing is odd.

    Args:
        image: float32 (H, W, C) in 0..255, the picture as the network sees it.
        pixels: the decoded picture before preparation, (h, w[, C]) uint8.
        probabilities: (num_classes,) the network's answer.
        look: the training images' statistics; None when they are not at hand (then only
            colour and the answer's own uncertainty are judged).

    Returns:
        e.g. "This picture looks unlike the training images (a colour photo; far darker than any
        of them), so the answer may mean nothing." or "".
    """
    reasons = []
    if look is not None:
        if look.gray and _colourful(pixels):
            reasons.append("a colour picture, where the network saw only gray images")
        stats = {name: float(values[0]) for name, values in _statistics(np.asarray(image, np.float32)[None]).items()}
        words = {"brightness": ("far darker", "far brighter"), "contrast": ("far flatter", "far more contrasted"),
                 "ink": ("almost empty", "far busier")}
        for name, (below, above) in words.items():
            lo, hi = getattr(look, name)
            margin = _MARGIN * max(hi - lo, 1e-6)
            if stats[name] < lo - margin:
                reasons.append(f"{below} than the training images")
            elif stats[name] > hi + margin:
                reasons.append(f"{above} than the training images")
    probabilities = np.asarray(probabilities, np.float64)
    if reasons:
        return f"This picture looks unlike the training images ({'; '.join(reasons)}), so the answer may mean nothing."
    if len(probabilities) > 1 and _normalised_entropy(probabilities) > UNSURE_ENTROPY:
        return "The network is unsure: its answer is spread over several classes."
    return ""


def _statistics(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image brightness, contrast and ink share of float (N, H, W, C) images."""
    gray = images.mean(axis=3).reshape(len(images), -1)  # (N, H*W)
    median = np.median(gray, axis=1, keepdims=True)
    return {
        "brightness": gray.mean(axis=1),
        "contrast": gray.std(axis=1),
        "ink": (np.abs(gray - median) > 64).mean(axis=1),
    }


def _colourful(pixels: np.ndarray) -> bool:
    array = np.asarray(pixels)
    if array.ndim != 3 or array.shape[2] < 3:
        return False
    step = max(1, max(array.shape[:2]) // 128)
    rgb = array[::step, ::step, :3].astype(np.float32)
    return float((rgb.max(axis=2) - rgb.min(axis=2)).mean()) > _COLOURFUL


def _normalised_entropy(probabilities: np.ndarray) -> float:
    p = np.clip(probabilities, 1e-12, 1.0)
    return float(-(p * np.log(p)).sum() / np.log(len(p)))
