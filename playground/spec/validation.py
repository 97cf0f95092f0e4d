"""Checks of a spec: impossible settings explained in one sentence each, before any Keras call.

`check(spec, input_shape)` lists the problems naming the value received: each
value against the bounds and choices of the settings table
(`playground.spec.fields`), the settings that must agree, and the feature map's
size through the network; `validate` raises the first one as a SpecError
(standard library only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from playground.data.catalog import CATALOG, is_named_dataset
from playground.spec.arithmetic import conv_output_size
from playground.spec.experiment import ExperimentSpec, SpecError, field_names, get_value
from playground.spec.fields import (
    MAX_BATCH_ACTIVATION_BYTES, MAX_FLOPS_PER_IMAGE, MAX_INPUT_SIDE, MAX_PARAMS, value_problems,
)


@dataclass(frozen=True)
class Problem:
    """One impossible setting: the flat field name it belongs to and a one-sentence message."""

    field_name: str
    message: str


_PATH_SUFFIXES = (".npz", ".zip")
_SHAPE_FIELDS = {"conv_blocks", "filters", "convs_per_block", "kernel_size", "stride", "padding", "pooling", "pool_first",
                 "patch_whitening", "test_time_augmentation", "dense_units", "batch_size"}


def check(spec: ExperimentSpec, input_shape: tuple[int, int, int] | None = None, *, shapes: bool = True) -> list[Problem]:
    """All impossible settings of `spec`, each as a one-sentence message.

    Args:
        spec: the experiment.
        input_shape: (height, width, channels) of the data; defaults to the
            known shape of a named dataset. Shape checks are skipped when it
            is unknown (a path not yet loaded).
        shapes: False skips the shape checks whatever the input shape: only each
            value's bounds and choices, and the settings that must agree, are checked.

    Returns:
        The problems found, in field order; empty when the spec can be built.
    """
    problems: list[Problem] = []
    for name in field_names():
        messages = value_problems(name, get_value(spec, name))  # the bounds and choices of the settings table
        rule = _RULES.get(name)
        if rule is not None and (message := rule(spec)):
            messages.append(message)
        problems.extend(Problem(name, message) for message in messages)

    if shapes:
        if input_shape is None and is_named_dataset(spec.data.dataset):
            input_shape = CATALOG[spec.data.dataset].input_shape
        if input_shape is not None and not any(pr.field_name in _SHAPE_FIELDS for pr in problems):
            problems.extend(_shape_problems(spec, input_shape))
    return problems


def validate(spec: ExperimentSpec, input_shape: tuple[int, int, int] | None = None) -> ExperimentSpec:
    """Raise SpecError with the first problem of `check`; return the spec when there is none."""
    problems = check(spec, input_shape)
    if problems:
        raise SpecError(problems[0].message, problems[0].field_name)
    return spec


def _dataset_rule(spec: ExperimentSpec) -> str | None:
    dataset = spec.data.dataset
    if is_named_dataset(dataset) or _looks_like_path(dataset):
        return None
    return f"Unknown dataset {dataset!r}: choose one of {', '.join(CATALOG)}, or a .npz, .zip or folder path."


def _residual_rule(spec: ExperimentSpec) -> str | None:
    if spec.arch.residual and spec.arch.padding != "same":
        return ("Residual connections need SAME padding, so the shortcut and the convs have the same size. "
                f"Received: padding={spec.arch.padding!r}")
    if spec.arch.residual and spec.arch.pool_first and spec.arch.pooling != "none":
        return ("Residual connections need the pooling after the block, so the shortcut and the convs have the same "
                "size: turn off pooling after the first conv.")
    return None


# Checks beyond a field's own bounds and choices: field name -> (spec -> message or None).
_RULES = {"dataset": _dataset_rule, "residual": _residual_rule}


def _looks_like_path(dataset: str) -> bool:
    # A path: no control characters, not empty; folder or a supported archive.
    return bool(dataset) and not re.search(r"[\x00-\x1f]", dataset) and (
        dataset.endswith(_PATH_SUFFIXES) or "/" in dataset or "\\" in dataset or dataset.startswith(".")
    )


_ORDINALS = {1: "1st", 2: "2nd", 3: "3rd"}


def _ordinal(n: int) -> str:
    return _ORDINALS.get(n, f"{n}th")


def _shape_problems(spec: ExperimentSpec, input_shape: tuple[int, int, int]) -> list[Problem]:
    """Trace H x W through the network in plain Python: sizes, parameters and compute against the limits."""
    a = spec.arch
    h, w, channels = input_shape
    where = f"the {h}x{w} input"
    if max(h, w) > MAX_INPUT_SIDE:
        return [Problem("dataset", f"The images are {w}x{h} pixels, larger than the limit of {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE}; resize them first.")]
    if spec.preprocess.test_time_augmentation in ("shift", "flip_shift") and min(h, w) < 2:
        return [Problem("test_time_augmentation", f"Shifted test-time views need images of at least 2x2 pixels. Received: {where}")]
    params = 0
    flops = 0  # forward pass, one image (as the layer table counts them: 2 per multiply-add)
    kept = h * w * channels  # activation values one image keeps for the backward pass
    tensors_per_conv = 3 if a.batch_norm else 2  # conv output, [normalised,] activated
    if a.patch_whitening:
        # A 2x2 VALID conv from C channels to 8C (4C patch directions and their negatives), then the activation.
        if h < 2 or w < 2:
            return [Problem("patch_whitening", f"Patch whitening needs images of at least 2x2 pixels. Received: {where}")]
        h, w, whitened = h - 1, w - 1, 8 * channels
        params += 4 * channels * whitened + whitened
        flops += 2 * h * w * whitened * 4 * channels
        kept += 2 * h * w * whitened
        channels = whitened
    for block in range(a.conv_blocks):
        for conv in range(a.convs_per_block):
            stride = a.stride if conv == 0 else 1
            if a.padding == "valid" and (a.kernel_size > h or a.kernel_size > w):
                return [Problem("kernel_size", f"A {a.kernel_size}x{a.kernel_size} VALID conv does not fit the {h}x{w} feature map in conv block {block + 1} on {where}; use SAME padding, a smaller kernel or fewer blocks. Received: kernel_size={a.kernel_size}")]
            h = conv_output_size(h, a.kernel_size, stride, a.padding)
            w = conv_output_size(w, a.kernel_size, stride, a.padding)
            params += a.kernel_size * a.kernel_size * channels * a.filters[block] + a.filters[block]
            flops += 2 * h * w * a.filters[block] * a.kernel_size * a.kernel_size * channels
            kept += tensors_per_conv * h * w * a.filters[block]
            channels = a.filters[block]
            if a.pooling != "none" and conv == (0 if a.pool_first else a.convs_per_block - 1):
                h, w = h // 2, w // 2
                if h == 0 or w == 0:
                    return [Problem("conv_blocks", f"The feature map shrinks to zero after the {_ordinal(block + 1)} pooling on {where}; use fewer conv blocks, SAME padding or stride 1. Received: conv_blocks={a.conv_blocks}")]
                kept += h * w * channels
    features = channels if a.global_pool else h * w * channels
    for units in a.dense_units:
        params += features * units + units
        flops += 2 * features * units
        kept += 2 * units
        features = units
    if params > MAX_PARAMS:
        return [Problem("dense_units", f"This network would have about {params:,} parameters, over the limit of {MAX_PARAMS:,}; use fewer filters or dense units, pooling or global pooling.")]
    if flops > MAX_FLOPS_PER_IMAGE:
        return [Problem("filters", f"This network would need about {flops / 1e9:,.1f} GFLOP per image, over the limit of {MAX_FLOPS_PER_IMAGE / 1e9:g}; use fewer filters or convs per block, or pooling.")]
    batch_bytes = 4 * kept * spec.train.batch_size
    if batch_bytes > MAX_BATCH_ACTIVATION_BYTES:
        return [Problem("batch_size", f"One batch of {spec.train.batch_size} images would keep about {batch_bytes / 1024**3:,.1f} GiB of activations, over the limit of {MAX_BATCH_ACTIVATION_BYTES / 1024**3:g} GiB; use a smaller batch, fewer filters or pooling.")]
    return []
