"""A picture made to look like the training data: what a network trained on a dataset expects to see.

For the MNIST family (light strokes on a dark background) this follows
MNIST's own preparation: the ink is found against the paper (uneven lighting
removed, dark-on-light inverted), cropped to its bounding box, fitted into the
box the training images fill (20x20 of 28x28 for MNIST, the whole frame for
Fashion-MNIST) keeping its aspect ratio, and centred by its centre of mass
(MNIST) or its box. Photos for other datasets are centre-cropped to the
training images' aspect ratio and resized. Every step is kept as a small
picture, so a page can show "as the network sees it" one step at a time.

    prepared = prepare_for_model(pixels, (28, 28, 1), light_on_dark=True, center=True, fill=20 / 28)
    prepared.array      # float32 (28, 28, 1) in 0..255, the model's input
    prepared.steps      # (("your picture", uint8 image), ("ink found, inverted", ...), ..., ("the network's input", ...))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

INVERT_CHOICES = ("auto", "always", "never")
MNIST_FILL = 20 / 28  # MNIST digits fit a 20x20 box inside the 28x28 image
_WORK_SIDE = 384  # pixels along the longer side worked on (a strided view of larger arrays)
_STEP_SIDE = 96  # pixels along the longer side of a step's picture
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma, as Pillow's "L" conversion
_BORDER = 0.08  # share of each side that counts as the picture's border (the paper around the ink)
_FAINT = 0.15 * 255  # ink fainter than this (after stretching) is paper texture, not content
_MIN_CONTRAST = 16  # ink less than this above the background: the picture is blank


@dataclass(frozen=True, eq=False)
class PreparedImage:
    """An image as a model takes it, and how it got there."""

    array: np.ndarray  # float32 (H, W, C) in 0..255: the model input for one image
    inverted: bool  # True when dark-on-light was turned into light-on-dark
    note: str  # short human summary, e.g. "resized 640x480 to 28x28, gray, inverted, centred by mass"
    steps: tuple[tuple[str, np.ndarray], ...] = ()  # (caption, uint8 (h, w, 1 or 3) picture) per step


def prepare_for_model(
    pixels: np.ndarray,
    input_shape: tuple[int, int, int],
    *,
    invert: str = "auto",
    light_on_dark: bool = True,
    center: bool = True,
    fill: float | None = None,
) -> PreparedImage:
    """Turn decoded pixels into the input a model trained on some dataset expects.

    Args:
        pixels: uint8 (or 0..255 float) array (H, W), (H, W, 1), (H, W, 3) or
            (H, W, 4); a fourth channel is alpha and is composited on white.
        input_shape: (height, width, channels) of the model input, channels 1 or 3.
        invert: "auto" inverts a light-background picture when the dataset
            is light-on-dark; "always" or "never" decide by hand.
        light_on_dark: the dataset shows light objects on a dark background
            (MNIST, Fashion-MNIST): the ink is found, cropped and fitted as
            below. Otherwise the picture is a photo: centre-cropped to the
            input's aspect ratio and resized.
        center: centre the content by its centre of mass (MNIST); otherwise
            by its bounding box. Only used when `light_on_dark`.
        fill: the share of the frame the content's box fills along its longer
            side; default MNIST's 20/28 when centring by mass, else 1.

    Returns:
        PreparedImage with a float32 (H, W, C) array in 0..255 and the steps.
    """
    height, width, channels = _check_input_shape(input_shape)
    if invert not in INVERT_CHOICES:
        raise ValueError(f"invert must be one of {', '.join(INVERT_CHOICES)}. Received: invert={invert!r}")
    source_h, source_w = np.shape(pixels)[:2]
    image = _as_float_rgb_or_gray(pixels)  # float32 (h, w, 1 or 3), at most _WORK_SIDE
    steps = [("your picture", image)]
    notes = [f"resized {source_w}x{source_h} to {width}x{height}"]
    if channels == 1 and image.shape[2] == 3:
        image = (image @ _LUMA)[:, :, np.newaxis]
        notes.append("gray")
        steps.append(("gray", image))
    elif channels == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
        notes.append("gray to RGB")

    if light_on_dark:
        fill = fill if fill is not None else (MNIST_FILL if center else 1.0)
        out, inverted = _like_mnist(image, height, width, invert, center, fill, notes, steps)
    else:
        inverted = invert == "always"
        if inverted:
            image = 255.0 - image
            notes.append("inverted")
        out = _photo(image, height, width, notes, steps)
    steps.append(("the network's input", out))
    return PreparedImage(
        array=np.ascontiguousarray(out, dtype=np.float32),
        inverted=inverted,
        note=", ".join(notes),
        steps=tuple((caption, _step_picture(step)) for caption, step in steps),
    )


def _like_mnist(image: np.ndarray, height: int, width: int, invert: str, center: bool, fill: float,
                notes: list[str], steps: list) -> tuple[np.ndarray, bool]:
    """MNIST's preparation: ink against the paper, cropped, fitted in the fill box, centred."""
    luma = image.mean(axis=2)
    inverted = invert == "always" or (invert == "auto" and float(np.median(_border(luma))) > 127.5)
    if inverted:
        image, luma = 255.0 - image, 255.0 - luma
    # Uneven lighting: a smooth surface fitted to the border (the paper) is the background.
    background = _smooth_background(luma)
    ink = np.clip(image - background[:, :, np.newaxis], 0, None)
    top = float(np.percentile(ink.mean(axis=2), 99.5))
    if top < _MIN_CONTRAST:
        notes.append("blank")
        return np.zeros((height, width, image.shape[2]), np.float32), inverted
    ink = np.clip(ink * (255.0 / top), 0, 255)
    notes.append("ink found" + (", inverted (dark on light)" if inverted else ""))
    steps.append(("ink found" + (", inverted" if inverted else ""), ink))

    mass = ink.mean(axis=2)
    rows, cols = _content_span(mass, axis=1), _content_span(mass, axis=0)
    crop = ink[rows[0] : rows[1], cols[0] : cols[1]]
    crop = np.where(crop.mean(axis=2, keepdims=True) > _FAINT, crop, 0.0)
    steps.append(("cropped to the ink", crop))

    box_h, box_w = max(1, round(height * fill)), max(1, round(width * fill))
    scale = min(box_h / crop.shape[0], box_w / crop.shape[1])
    new_h, new_w = max(1, min(height, round(crop.shape[0] * scale))), max(1, min(width, round(crop.shape[1] * scale)))
    small = np.clip(_resize(crop, new_h, new_w), 0, 255)
    if center:
        weights = small.mean(axis=2)
        total = float(weights.sum())
        cy = float((weights.sum(axis=1) * np.arange(new_h)).sum() / total) if total > 0 else (new_h - 1) / 2
        cx = float((weights.sum(axis=0) * np.arange(new_w)).sum() / total) if total > 0 else (new_w - 1) / 2
    else:
        cy, cx = (new_h - 1) / 2, (new_w - 1) / 2
    # Top-left corner that puts the centre (of mass or of the box) in the middle, kept inside the frame.
    top_row = int(np.clip(round((height - 1) / 2 - cy), 0, height - new_h))
    left = int(np.clip(round((width - 1) / 2 - cx), 0, width - new_w))
    out = np.zeros((height, width, image.shape[2]), np.float32)
    out[top_row : top_row + new_h, left : left + new_w] = small
    notes.append(f"fitted in {box_w}x{box_h}, centred by {'mass' if center else 'its box'}")
    return out, inverted


def _photo(image: np.ndarray, height: int, width: int, notes: list[str], steps: list) -> np.ndarray:
    """A photo: centre-cropped to the input's aspect ratio, then resized."""
    h, w = image.shape[:2]
    target = width / height
    if w / h > target * 1.01:
        keep = max(1, round(h * target))
        image = image[:, (w - keep) // 2 : (w - keep) // 2 + keep]
    elif h / w > 1.01 / target:
        keep = max(1, round(w / target))
        image = image[(h - keep) // 2 : (h - keep) // 2 + keep]
    if image.shape[:2] != (h, w):
        notes.append(f"centre-cropped to {width}:{height}")
        steps.append((f"centre-cropped to {width}:{height}", image))
    return np.clip(_resize(image, height, width), 0, 255)


def _smooth_background(luma: np.ndarray) -> np.ndarray:
    """A quadratic surface fitted to the border pixels: the paper's brightness, lighting gradients included.

    Args:
        luma: float (h, w), content light on a darker background.

    Returns:
        float (h, w), never above the content it lies under (clipped to the border's range).
    """
    h, w = luma.shape
    bh, bw = max(1, round(h * _BORDER)), max(1, round(w * _BORDER))
    mask = np.zeros((h, w), bool)
    mask[:bh], mask[-bh:], mask[:, :bw], mask[:, -bw:] = True, True, True, True
    ys, xs = np.nonzero(mask)
    step = max(1, len(ys) // 4000)  # a few thousand border pixels are plenty for six coefficients
    ys, xs = ys[::step], xs[::step]
    values = luma[ys, xs]
    # Robust: ink that touches the border is left out of the fit (values far above the border's median).
    keep = values <= np.median(values) + 3 * max(float(np.std(values)), 1.0)
    basis = _quadratic_basis(ys[keep] / h, xs[keep] / w)
    coefficients, *_ = np.linalg.lstsq(basis, values[keep], rcond=None)
    c0, cy, cx, cyy, cxx, cxy = coefficients
    y, x = (np.arange(h, dtype=np.float32) / h)[:, np.newaxis], (np.arange(w, dtype=np.float32) / w)[np.newaxis, :]
    surface = c0 + cy * y + cx * x + cyy * y * y + cxx * x * x + cxy * x * y  # (h, w) by broadcasting
    return np.clip(surface, float(values[keep].min()), float(values[keep].max())).astype(np.float32)


def _quadratic_basis(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(y), y, x, y * y, x * x, x * y], axis=1)


def _content_span(mass: np.ndarray, axis: int) -> tuple[int, int]:
    """[start, stop) of the rows (axis=1) or columns (axis=0) holding the content, specks left out.

    The span holds all but 0.1% of the content's mass at either end above the faint
    level, so an isolated speck of noise far from the ink does not stretch the box.
    """
    profile = np.where(mass > _FAINT, mass, 0.0).sum(axis=axis)
    total = float(profile.sum())
    if total <= 0:
        return 0, len(profile)
    cumulative = np.cumsum(profile) / total
    start = int(np.searchsorted(cumulative, 0.001))
    stop = int(np.searchsorted(cumulative, 0.999)) + 1
    return start, max(stop, start + 1)


def _step_picture(image: np.ndarray) -> np.ndarray:
    """A step as a small uint8 picture (longer side at most _STEP_SIDE, tiny ones enlarged)."""
    picture = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    h, w = picture.shape[:2]
    if max(h, w) > _STEP_SIDE:
        step = math.ceil(max(h, w) / _STEP_SIDE)
        picture = picture[::step, ::step]
    elif max(h, w) < _STEP_SIDE // 2:
        factor = max(1, (_STEP_SIDE // 2) // max(h, w))
        picture = np.repeat(np.repeat(picture, factor, axis=0), factor, axis=1)
    return np.ascontiguousarray(picture)


def _check_input_shape(input_shape) -> tuple[int, int, int]:
    try:
        height, width, channels = (int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"input_shape must be (height, width, channels). Received: input_shape={input_shape!r}") from None
    if height < 1 or width < 1 or channels not in (1, 3):
        raise ValueError(f"input_shape needs a positive size and 1 or 3 channels. Received: input_shape={input_shape!r}")
    return height, width, channels


def _as_float_rgb_or_gray(pixels: np.ndarray) -> np.ndarray:
    """(H, W[, C]) pixels -> float32 (h, w, 1 or 3), large inputs shrunk by an integer stride."""
    array = np.asarray(pixels)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"pixels must be (H, W) or (H, W, C) with C = 1, 3 or 4. Received: shape={array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"pixels must be numbers in 0..255. Received: dtype={array.dtype}")
    # A phone photo needs no more than a few hundred pixels to become 28x28 or 32x32:
    # a strided view costs nothing and keeps the rest fast.
    step = math.ceil(max(array.shape[:2]) / _WORK_SIDE)
    if step > 1:
        array = array[::step, ::step]
    image = np.clip(array.astype(np.float32), 0, 255)
    if image.shape[2] == 4:
        alpha = image[:, :, 3:] / 255.0
        image = image[:, :, :3] * alpha + 255.0 * (1.0 - alpha)
    return image


def _border(image: np.ndarray) -> np.ndarray:
    """The pixels of the outer frame (about 5% of each side), as (n, ...) rows."""
    h, w = image.shape[:2]
    bh, bw = max(1, h // 20), max(1, w // 20)
    parts = [image[:bh].reshape(-1, *image.shape[2:]), image[-bh:].reshape(-1, *image.shape[2:]),
             image[:, :bw].reshape(-1, *image.shape[2:]), image[:, -bw:].reshape(-1, *image.shape[2:])]
    return np.concatenate(parts, axis=0)


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """float32 (h, w, C) -> (height, width, C); area average when shrinking, bilinear when growing."""
    if image.shape[:2] == (height, width):
        return image
    shrinking = height < image.shape[0] or width < image.shape[1]
    method = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    planes = [
        np.asarray(Image.fromarray(np.ascontiguousarray(image[:, :, c]), "F").resize((width, height), method))
        for c in range(image.shape[2])
    ]
    return np.stack(planes, axis=2)
