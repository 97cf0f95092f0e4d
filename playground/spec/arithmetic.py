"""Convolution arithmetic in plain Python: output sizes, padding and receptive fields.

These formulas are the lesson the Architecture page teaches and the check
`spec.check` runs before any Keras call, so this module imports only the
standard library.
"""

from __future__ import annotations

import math


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: str = "valid") -> int:
    """Spatial size after a convolution or pooling window along one axis.

    VALID: floor((H - F) / S) + 1 (never below zero).
    SAME:  ceil(H / S), the input padded so that every position is covered.

    Args:
        size: input size H along the axis.
        kernel: window size F.
        stride: step S.
        padding: "valid" or "same".

    Returns:
        The output size; 0 when the window does not fit even once.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1. Received: stride={stride}")
    if padding == "same":
        return math.ceil(size / stride) if size > 0 else 0
    if padding == "valid":
        return (size - kernel) // stride + 1 if size >= kernel else 0
    raise ValueError(f"padding must be 'same' or 'valid'. Received: padding={padding!r}")


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Zero padding (before, after) that TensorFlow adds for SAME along one axis.

    Total padding P = max((ceil(H/S) - 1) * S + F - H, 0), with the odd pixel
    going after, as `tf.nn.conv2d` does.

    Args:
        size: input size H.
        kernel: window size F.
        stride: step S.

    Returns:
        (pad_before, pad_after).
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def receptive_field(layers: list[tuple[int, int]]) -> list[int]:
    """Receptive field of each layer in a chain of (kernel, stride) windows.

    r_l = r_{l-1} + (k_l - 1) * j_{l-1}, j_l = j_{l-1} * s_l with r_0 = j_0 = 1.

    Args:
        layers: (kernel, stride) per layer, input first. Layers that do not
            look at neighbours (activations, batch norm) use (1, 1).

    Returns:
        The receptive field (in input pixels, along one axis) after each layer.
    """
    field_size, jump, out = 1, 1, []
    for kernel, stride in layers:
        field_size += (kernel - 1) * jump
        jump *= stride
        out.append(field_size)
    return out
