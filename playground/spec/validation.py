"""Checks of a spec: impossible settings explained in one sentence each, before any Keras call.

`check(spec, input_shape)` lists the problems naming the value received;
`validate` raises the first one as a SpecError (standard library only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from playground.data.catalog import CATALOG, is_named_dataset
from playground.spec.arithmetic import conv_output_size
from playground.spec.experiment import ExperimentSpec, SpecError, _to_string, get_value
from playground.spec.fields import (
    ACTIVATIONS, INITS, MAX_CONV_BLOCKS, MAX_DENSE_LAYERS, MAX_DENSE_UNITS, MAX_FILTERS, MAX_PARAMS,
    NORMALIZATIONS, OPTIMIZERS, PADDINGS, POOLINGS, SCHEDULES,
)

@dataclass(frozen=True)
class Problem:
    """One impossible setting: the flat field name it belongs to and a one-sentence message."""

    field_name: str
    message: str



_PATH_SUFFIXES = (".npz", ".zip")


def check(spec: ExperimentSpec, input_shape: tuple[int, int, int] | None = None) -> list[Problem]:
    """All impossible settings of `spec`, each as a one-sentence message.

    Args:
        spec: the experiment.
        input_shape: (height, width, channels) of the data; defaults to the
            known shape of a named dataset. Shape checks are skipped when it
            is unknown (a path not yet loaded).

    Returns:
        The problems found, in field order; empty when the spec can be built.
    """
    problems: list[Problem] = []

    def bad(name: str, message: str) -> None:
        problems.append(Problem(name, message))

    def in_range(name: str, lo: float, hi: float, what: str = "") -> bool:
        value = get_value(spec, name)
        if not lo <= value <= hi:
            bad(name, f"{what or name} must be between {lo:g} and {hi:g}. Received: {name}={value!r}")
            return False
        return True

    d, p, a, t = spec.data, spec.preprocess, spec.arch, spec.train
    if not (is_named_dataset(d.dataset) or _looks_like_path(d.dataset)):
        bad("dataset", f"Unknown dataset {d.dataset!r}: choose one of {', '.join(CATALOG)}, or a .npz, .zip or folder path.")
    if d.sample_size < 0:
        bad("sample_size", f"sample_size must be 0 (all) or a positive count. Received: sample_size={d.sample_size}")
    in_range("validation_split", 0.0, 0.5, "The validation split")
    in_range("shapes_noise", 0.0, 1.0, "The shapes noise level")

    _choice(bad, "normalization", p.normalization, NORMALIZATIONS)
    in_range("crop_padding", 0, 16, "Random-crop padding")
    in_range("rotation", 0.0, 180.0, "Rotation (degrees)")
    in_range("shift", 0.0, 0.5, "Shift")
    in_range("brightness", 0.0, 1.0, "Brightness change")
    in_range("contrast", 0.0, 1.0, "Contrast change")

    in_range("conv_blocks", 0, MAX_CONV_BLOCKS, "The number of conv blocks")
    if len(a.filters) != a.conv_blocks:
        bad("filters", f"Give one filter count per conv block: {a.conv_blocks} block(s) but {len(a.filters)} filter count(s). Received: filters={_to_string(a.filters) or '(none)'}")
    for n in a.filters:
        if not 1 <= n <= MAX_FILTERS:
            bad("filters", f"Each block needs 1 to {MAX_FILTERS} filters. Received: filters={_to_string(a.filters)}")
            break
    in_range("convs_per_block", 1, 4, "Convs per block")
    in_range("kernel_size", 1, 11, "The kernel size")
    in_range("stride", 1, 4, "The stride")
    _choice(bad, "padding", a.padding, PADDINGS)
    _choice(bad, "pooling", a.pooling, POOLINGS)
    _choice(bad, "activation", a.activation, ACTIVATIONS)
    in_range("conv_dropout", 0.0, 0.9, "Conv dropout")
    if a.residual and a.padding != "same":
        bad("residual", "Residual connections need SAME padding, so the shortcut and the convs have the same size. Received: padding='valid'")
    if len(a.dense_units) > MAX_DENSE_LAYERS:
        bad("dense_units", f"At most {MAX_DENSE_LAYERS} dense layers. Received: dense_units={_to_string(a.dense_units)}")
    if any(not 1 <= u <= MAX_DENSE_UNITS for u in a.dense_units):
        bad("dense_units", f"Each dense layer needs 1 to {MAX_DENSE_UNITS} units. Received: dense_units={_to_string(a.dense_units)}")
    in_range("dropout", 0.0, 0.9, "Dense dropout")
    _choice(bad, "init", a.init, INITS)
    in_range("weight_decay", 0.0, 0.1, "L2 weight decay")

    _choice(bad, "optimizer", t.optimizer, OPTIMIZERS)
    in_range("learning_rate", 1e-6, 10.0, "The learning rate")
    _choice(bad, "schedule", t.schedule, SCHEDULES)
    in_range("batch_size", 1, 4096, "The batch size")
    in_range("epochs", 1, 500, "Epochs")
    in_range("time_budget", 0.0, 24 * 3600.0, "The time budget (seconds)")
    in_range("seed", 0, 2**31 - 1, "The seed")

    if input_shape is None and is_named_dataset(d.dataset):
        input_shape = CATALOG[d.dataset].input_shape
    shape_fields = {"conv_blocks", "filters", "convs_per_block", "kernel_size", "stride", "padding", "pooling", "dense_units"}
    if input_shape is not None and not any(pr.field_name in shape_fields for pr in problems):
        problems.extend(_shape_problems(spec, input_shape))
    return problems


def validate(spec: ExperimentSpec, input_shape: tuple[int, int, int] | None = None) -> ExperimentSpec:
    """Raise SpecError with the first problem of `check`; return the spec when there is none."""
    problems = check(spec, input_shape)
    if problems:
        raise SpecError(problems[0].message, problems[0].field_name)
    return spec


def _choice(bad: Any, name: str, value: str, options: Mapping[str, str]) -> None:
    if value not in options:
        bad(name, f"Unknown {name} {value!r}: choose one of {', '.join(options)}.")


def _looks_like_path(dataset: str) -> bool:
    # A path: no control characters, not empty; folder or a supported archive.
    return bool(dataset) and not re.search(r"[\x00-\x1f]", dataset) and (
        dataset.endswith(_PATH_SUFFIXES) or "/" in dataset or "\\" in dataset or dataset.startswith(".")
    )


_ORDINALS = {1: "1st", 2: "2nd", 3: "3rd"}


def _ordinal(n: int) -> str:
    return _ORDINALS.get(n, f"{n}th")


def _shape_problems(spec: ExperimentSpec, input_shape: tuple[int, int, int]) -> list[Problem]:
    """Trace H x W through the conv blocks and count parameters, in plain Python."""
    a = spec.arch
    h, w, channels = input_shape
    where = f"the {h}x{w} input"
    params = 0
    for block in range(a.conv_blocks):
        for conv in range(a.convs_per_block):
            stride = a.stride if conv == 0 else 1
            if a.padding == "valid" and (a.kernel_size > h or a.kernel_size > w):
                return [Problem("kernel_size", f"A {a.kernel_size}x{a.kernel_size} VALID conv does not fit the {h}x{w} feature map in conv block {block + 1} on {where}; use SAME padding, a smaller kernel or fewer blocks. Received: kernel_size={a.kernel_size}")]
            h = conv_output_size(h, a.kernel_size, stride, a.padding)
            w = conv_output_size(w, a.kernel_size, stride, a.padding)
            params += a.kernel_size * a.kernel_size * channels * a.filters[block] + a.filters[block]
            channels = a.filters[block]
        if a.pooling != "none":
            h, w = h // 2, w // 2
            if h == 0 or w == 0:
                return [Problem("conv_blocks", f"The feature map shrinks to zero after the {_ordinal(block + 1)} pooling on {where}; use fewer conv blocks, SAME padding or stride 1. Received: conv_blocks={a.conv_blocks}")]
    features = channels if a.global_pool else h * w * channels
    for units in a.dense_units:
        params += features * units + units
        features = units
    if params > MAX_PARAMS:
        return [Problem("dense_units", f"This network would have about {params:,} parameters, over the limit of {MAX_PARAMS:,}; use fewer filters or dense units, pooling or global pooling.")]
    return []
