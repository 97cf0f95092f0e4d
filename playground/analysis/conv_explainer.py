"""Convolution and pooling arithmetic on a tiny image, one output cell at a time.

The Architecture page lets a learner edit a 3x3 to 7x7 single-channel image
and one to three small filters, then pick an output cell and see the input
window, the element-wise products and their sum. Everything here is plain
NumPy with explicit loops over output cells, so each number shown can be
traced back; the tests check the results against `tf.nn.conv2d` and
`tf.nn.max_pool2d`, including SAME padding with stride 2 on odd sizes, where
TensorFlow pads one pixel more after than before
(`playground.arithmetic.same_padding`).

Conventions: images are 2-D (H, W); filters are (n, F_h, F_w); like
`tf.nn.conv2d`, a "convolution" is a cross-correlation (the filter is not
flipped) and the filter has no bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from playground.spec.arithmetic import conv_output_size, same_padding

PADDINGS = ("same", "valid")
MAX_SIZE = 16  # largest tiny image side the explainer accepts


class ExplainerError(ValueError):
    """An input, filter or window setting the explainer cannot use, in one sentence."""


# Small images with a visible structure, as (H, W) float arrays built for any size.
def _vertical_edge(h: int, w: int) -> np.ndarray:
    out = np.zeros((h, w))
    out[:, w // 2:] = 1.0
    return out


def _horizontal_edge(h: int, w: int) -> np.ndarray:
    out = np.zeros((h, w))
    out[h // 2:, :] = 1.0
    return out


def _diagonal(h: int, w: int) -> np.ndarray:
    return np.eye(h, w)


def _checkerboard(h: int, w: int) -> np.ndarray:
    return np.indices((h, w)).sum(axis=0) % 2 * 1.0


def _centre_dot(h: int, w: int) -> np.ndarray:
    out = np.zeros((h, w))
    out[h // 2, w // 2] = 1.0
    return out


def _ramp(h: int, w: int) -> np.ndarray:
    return np.tile(np.arange(w, dtype=float), (h, 1))


IMAGE_PRESETS = {
    "Vertical edge": _vertical_edge,
    "Horizontal edge": _horizontal_edge,
    "Diagonal line": _diagonal,
    "Checkerboard": _checkerboard,
    "Centre dot": _centre_dot,
    "Ramp 0, 1, 2, ...": _ramp,
}

# 3x3 filters; smaller sizes take the centre of these.
FILTER_PRESETS = {
    "Vertical edge (Sobel x)": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=float),
    "Horizontal edge (Sobel y)": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=float),
    "Identity": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=float),
    "Box blur (sum)": np.ones((3, 3)),
    "Sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=float),
    "Laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=float),
}


def preset_image(name: str, height: int, width: int) -> np.ndarray:
    """A preset tiny image.

    Args:
        name: a key of `IMAGE_PRESETS`.
        height: rows H (1..MAX_SIZE).
        width: columns W (1..MAX_SIZE).

    Returns:
        float64 (H, W) with values 0 and 1 (the ramp counts columns).
    """
    if name not in IMAGE_PRESETS:
        raise ExplainerError(f"Unknown image preset: choose one of {', '.join(IMAGE_PRESETS)}. Received: name={name!r}")
    _check_size("height", height)
    _check_size("width", width)
    return IMAGE_PRESETS[name](height, width)


def preset_filter(name: str, height: int = 3, width: int = 3) -> np.ndarray:
    """A preset filter cut to (height, width) around its centre.

    Args:
        name: a key of `FILTER_PRESETS`.
        height: filter rows F_h (1..3).
        width: filter columns F_w (1..3).

    Returns:
        float64 (F_h, F_w).
    """
    if name not in FILTER_PRESETS:
        raise ExplainerError(f"Unknown filter preset: choose one of {', '.join(FILTER_PRESETS)}. Received: name={name!r}")
    for label, size in (("height", height), ("width", width)):
        if not 1 <= size <= 3:
            raise ExplainerError(f"A preset filter is 1 to 3 pixels along each side. Received: {label}={size}")
    top, left = (3 - height + 1) // 2, (3 - width + 1) // 2
    return FILTER_PRESETS[name][top:top + height, left:left + width].copy()


def _check_size(label: str, size: int) -> None:
    if not 1 <= size <= MAX_SIZE:
        raise ExplainerError(f"The tiny image is 1 to {MAX_SIZE} pixels along each side. Received: {label}={size}")


def _check_common(image: np.ndarray, window: tuple[int, int], stride: int, padding: str) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ExplainerError(f"The tiny image must be 2-D (H, W). Received: shape={image.shape}")
    _check_size("height", image.shape[0])
    _check_size("width", image.shape[1])
    if not np.all(np.isfinite(image)):
        raise ExplainerError("Every pixel of the tiny image must be a finite number. Received: a NaN or infinite value")
    if padding not in PADDINGS:
        raise ExplainerError(f"padding must be 'same' or 'valid'. Received: padding={padding!r}")
    if not 1 <= stride <= MAX_SIZE:
        raise ExplainerError(f"The stride must be between 1 and {MAX_SIZE}. Received: stride={stride}")
    if padding == "valid" and (window[0] > image.shape[0] or window[1] > image.shape[1]):
        raise ExplainerError(
            f"A {window[0]}x{window[1]} window does not fit a {image.shape[0]}x{image.shape[1]} image with VALID "
            f"padding; use SAME or a smaller window. Received: window={window[0]}x{window[1]}"
        )
    return image


def _check_filters(filters: np.ndarray) -> np.ndarray:
    filters = np.asarray(filters, dtype=np.float64)
    if filters.ndim == 2:
        filters = filters[None]
    if filters.ndim != 3 or filters.shape[0] < 1 or min(filters.shape[1:]) < 1:
        raise ExplainerError(f"Filters must be (n, F_h, F_w) or one (F_h, F_w) filter. Received: shape={filters.shape}")
    if not np.all(np.isfinite(filters)):
        raise ExplainerError("Every filter weight must be a finite number. Received: a NaN or infinite value")
    return filters


@dataclass(frozen=True)
class Geometry:
    """How a window slides along the two axes of an image.

    Attributes:
        input_size: (H, W).
        window: (F_h, F_w).
        stride: S (the same along both axes).
        padding: "same" or "valid".
        pads: (top, bottom, left, right) zero padding; SAME puts the odd pixel after.
        output_size: (H_out, W_out).
    """

    input_size: tuple[int, int]
    window: tuple[int, int]
    stride: int
    padding: str
    pads: tuple[int, int, int, int]
    output_size: tuple[int, int]

    def window_origin(self, row: int, col: int) -> tuple[int, int]:
        """Input coordinates of the top-left pixel of output cell (row, col)'s window; negative inside padding."""
        if not (0 <= row < self.output_size[0] and 0 <= col < self.output_size[1]):
            raise ExplainerError(
                f"The output is {self.output_size[0]}x{self.output_size[1]}, so the cell must be inside it. "
                f"Received: cell=({row}, {col})"
            )
        return row * self.stride - self.pads[0], col * self.stride - self.pads[2]

    def formula(self, axis: int = 0) -> str:
        """The output-size formula with this geometry's numbers filled in, for one axis (0 rows, 1 columns).

        VALID: (H + 2P - F) / S + 1 with P = 0, rounded down. SAME pads with
        P_before + P_after chosen so the output is ceil(H / S); when the total
        is odd TensorFlow puts the extra pixel after, so 2P is shown as the sum.
        """
        h, f, s = self.input_size[axis], self.window[axis], self.stride
        before, after = self.pads[2 * axis], self.pads[2 * axis + 1]
        letter = "H" if axis == 0 else "W"
        out = self.output_size[axis]
        pad_text = f"2·{before}" if before == after else f"{before} + {after}"
        numerator = h + before + after - f
        exact = numerator / s
        step = f"{numerator} / {s}" if s > 1 else f"{numerator}"
        rounded = "" if s == 1 or numerator % s == 0 else f" = ⌊{exact:.2f}⌋ + 1"
        return (
            f"{letter}_out = ({letter} + 2P − F) / S + 1 = ({h} + {pad_text} − {f}) / {s} + 1 "
            f"= {step} + 1{rounded} = {out}"
        )


def geometry(input_size: tuple[int, int], window: tuple[int, int], stride: int, padding: str) -> Geometry:
    """The padding and output size of a window sliding over an image, as TensorFlow computes them.

    Args:
        input_size: (H, W).
        window: (F_h, F_w) of the filter or pooling window.
        stride: S along both axes.
        padding: "same" or "valid".

    Returns:
        A `Geometry`.
    """
    h, w = input_size
    if padding == "same":
        top, bottom = same_padding(h, window[0], stride)
        left, right = same_padding(w, window[1], stride)
    else:
        top = bottom = left = right = 0
    out = (conv_output_size(h, window[0], stride, padding), conv_output_size(w, window[1], stride, padding))
    return Geometry((h, w), tuple(window), stride, padding, (top, bottom, left, right), out)


def padded(image: np.ndarray, geo: Geometry, fill: float = 0.0) -> np.ndarray:
    """The image with the geometry's padding added around it (zeros for conv, -inf for max pooling)."""
    top, bottom, left, right = geo.pads
    return np.pad(np.asarray(image, dtype=np.float64), ((top, bottom), (left, right)), constant_values=fill)


@dataclass(frozen=True)
class ConvStep:
    """One output cell of one filter, worked out.

    Attributes:
        row, col: the output cell.
        origin: input coordinates (row, col) of the window's top-left pixel; negative inside padding.
        window: (F_h, F_w) input values under the filter (0 where the window covers padding).
        in_padding: (F_h, F_w) bool, True where the window covers padding.
        kernel: (F_h, F_w) the filter.
        products: window * kernel, element-wise.
        value: products.sum(), the output value.
    """

    row: int
    col: int
    origin: tuple[int, int]
    window: np.ndarray
    in_padding: np.ndarray
    kernel: np.ndarray
    products: np.ndarray
    value: float

    def sum_text(self, digits: int = 3) -> str:
        """"a·b + c·d + ... = value", the sum written out."""
        terms = [f"{_factor(w, digits)}·{_factor(k, digits)}" for w, k in zip(self.window.ravel(), self.kernel.ravel())]
        return " + ".join(terms) + f" = {_num(self.value, digits)}"


@dataclass(frozen=True)
class PoolStep:
    """One output cell of max pooling, worked out.

    Attributes:
        row, col: the output cell.
        origin: input coordinates of the window's top-left pixel; negative inside padding.
        window: (F_h, F_w) input values under the window (NaN where it covers padding: SAME
            max pooling ignores padded positions, as `tf.nn.max_pool2d` does).
        value: the largest input value in the window.
        argmax: (row, col) of that value inside the window.
    """

    row: int
    col: int
    origin: tuple[int, int]
    window: np.ndarray
    value: float
    argmax: tuple[int, int]


def _num(value: float, digits: int) -> str:
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _factor(value: float, digits: int) -> str:
    # Negative factors in brackets: "2·(-1)", not "2·-1".
    text = _num(value, digits)
    return f"({text})" if text.startswith("-") else text


def _window(image: np.ndarray, geo: Geometry, row: int, col: int, fill: float) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    top, left = geo.window_origin(row, col)
    big = padded(image, geo, fill)
    mask = padded(np.zeros_like(image, dtype=bool), geo, True).astype(bool)
    r, c = top + geo.pads[0], left + geo.pads[2]  # the same pixel in padded coordinates
    fh, fw = geo.window
    return (top, left), big[r:r + fh, c:c + fw], mask[r:r + fh, c:c + fw]


def conv_step(image: np.ndarray, kernel: np.ndarray, stride: int, padding: str, row: int, col: int) -> ConvStep:
    """Work out output cell (row, col) of a single-filter convolution.

    Args:
        image: (H, W) input.
        kernel: (F_h, F_w) filter.
        stride: S.
        padding: "same" or "valid".
        row, col: the output cell.

    Returns:
        A `ConvStep` whose `value` equals `conv2d(image, kernel, ...)[0, row, col]`.
    """
    kernel = _check_filters(kernel)[0]
    image = _check_common(image, kernel.shape, stride, padding)
    geo = geometry(image.shape, kernel.shape, stride, padding)
    origin, window, in_padding = _window(image, geo, row, col, 0.0)
    products = window * kernel
    return ConvStep(row, col, origin, window, in_padding, kernel, products, float(products.sum()))


def conv2d(image: np.ndarray, filters: np.ndarray, stride: int = 1, padding: str = "valid") -> tuple[np.ndarray, Geometry]:
    """Convolve a single-channel image with n filters, cell by cell, as `tf.nn.conv2d` does.

    Args:
        image: (H, W) input.
        filters: (n, F_h, F_w), or one (F_h, F_w) filter.
        stride: S along both axes.
        padding: "same" (zero padding, odd pixel after) or "valid".

    Returns:
        (outputs float64 (n, H_out, W_out), geometry).
    """
    filters = _check_filters(filters)
    image = _check_common(image, filters.shape[1:], stride, padding)
    geo = geometry(image.shape, filters.shape[1:], stride, padding)
    big = padded(image, geo)
    fh, fw = geo.window
    out = np.zeros((filters.shape[0], *geo.output_size))
    for i in range(geo.output_size[0]):
        for j in range(geo.output_size[1]):
            window = big[i * stride:i * stride + fh, j * stride:j * stride + fw]  # (F_h, F_w)
            out[:, i, j] = (window[None] * filters).sum(axis=(1, 2))
    return out, geo


def pool_step(image: np.ndarray, size: int, stride: int, padding: str, row: int, col: int) -> PoolStep:
    """Work out output cell (row, col) of max pooling with a size x size window.

    Returns:
        A `PoolStep` whose `value` equals `max_pool2d(image, size, ...)[row, col]`.
    """
    image = _check_common(image, (size, size), stride, padding)
    _check_pool_size(size)
    geo = geometry(image.shape, (size, size), stride, padding)
    origin, window, in_padding = _window(image, geo, row, col, 0.0)
    window = np.where(in_padding, np.nan, window)
    flat = int(np.nanargmax(window))
    return PoolStep(row, col, origin, window, float(np.nanmax(window)), divmod(flat, size))


def max_pool2d(image: np.ndarray, size: int = 2, stride: int = 2, padding: str = "valid") -> tuple[np.ndarray, Geometry]:
    """Max pooling of a single-channel image, cell by cell, as `tf.nn.max_pool2d` does.

    SAME padding never wins the max: padded positions are ignored (filled with -inf).

    Args:
        image: (H, W) input.
        size: the square window side (1..MAX_SIZE).
        stride: S along both axes.
        padding: "same" or "valid".

    Returns:
        (output float64 (H_out, W_out), geometry).
    """
    image = _check_common(image, (size, size), stride, padding)
    _check_pool_size(size)
    geo = geometry(image.shape, (size, size), stride, padding)
    big = padded(image, geo, -np.inf)
    out = np.zeros(geo.output_size)
    for i in range(geo.output_size[0]):
        for j in range(geo.output_size[1]):
            out[i, j] = big[i * stride:i * stride + size, j * stride:j * stride + size].max()
    return out, geo


def _check_pool_size(size: int) -> None:
    if not 1 <= size <= MAX_SIZE:
        raise ExplainerError(f"The pooling window must be 1 to {MAX_SIZE} pixels. Received: size={size}")
