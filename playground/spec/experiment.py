"""ExperimentSpec: one frozen, typed, serialisable description of an experiment.

A spec says everything needed to reproduce a run: the data, its preprocessing
and augmentation, the architecture and the training schedule, plus a seed. It
round-trips exactly through JSON (`to_json` / `from_json`) and through flat
URL query parameters of strings (`to_query_params` / `from_query_params`), so
every experiment is a link. `with_blocks`, `with_block_filters` and
`with_dense_units` edit the network and keep the spec whole.
`playground.spec.validation` explains impossible settings;
`playground.spec.presets` holds the well-known networks.

This module imports only the standard library: it stores names such as
"relu", and the registries in `playground.model.network` map them to Keras objects.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

from playground.settings import parse_bool
from playground.spec.fields import MAX_FILTERS, value_problems


class SpecError(ValueError):
    """An impossible or malformed experiment setting, explained in one sentence."""

    def __init__(self, message: str, field_name: str | None = None):
        super().__init__(message)
        self.field_name = field_name


# ---------------------------------------------------------------------------
# The spec itself. Field names are unique across sections: they are the URL keys.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSpec:
    """Which images to train on and how much of them."""

    dataset: str = "fashion_mnist"  # a name in the data catalog, or a path to .npz, .zip or a class folder
    sample_size: int = 0  # training images to use, drawn with the seed; 0 = all
    validation_split: float = 0.1  # fraction of the training images held out for validation
    shapes_noise: float = 0.2  # pixel noise of the built-in "shapes" images, 0..1


@dataclass(frozen=True)
class PreprocessSpec:
    """Input scaling and random augmentation (augmentation is applied in training only)."""

    normalization: str = "scale"  # "scale" 0..1, "per_image" whitening, or "dataset" mean/std
    crop_padding: int = 0  # random crop: pad by this many pixels, crop back to size; 0 = off
    flip: bool = False  # random horizontal flip
    test_time_augmentation: str = "none"  # predictions average views of each image: "none", "flip", "shift", "flip_shift"
    rotation: float = 0.0  # random rotation up to +- this many degrees
    shift: float = 0.0  # random shift up to +- this fraction of height/width
    brightness: float = 0.0  # random brightness change up to +- this fraction of the range
    contrast: float = 0.0  # random contrast factor in [1 - c, 1 + c]


@dataclass(frozen=True)
class ArchSpec:
    """The network: conv blocks, then a dense head, then logits and a softmax.

    The number of conv blocks is not stored: it is the length of `filters`
    (`conv_blocks`), and `with_blocks` changes it.
    """

    filters: tuple[int, ...] = (16, 32, 64)  # filters of each conv block (each: convs, [residual], pooling, [dropout])
    convs_per_block: int = 1  # conv layers in each block (2 gives VGG's 3x3 stacks)
    kernel_size: int = 3  # square kernel size F of every conv
    stride: int = 1  # stride S of the first conv in each block
    padding: str = "same"  # "same" keeps H (for S = 1), "valid" shrinks it by F - 1
    pooling: str = "max"  # 2x2 pooling after each block: "max", "avg" or "none"
    global_pool: bool = False  # global pooling before the head instead of flattening
    global_pool_kind: str = "avg"  # how global pooling sums up each feature map: "avg" or "max"
    activation: str = "relu"  # activation after every conv and hidden dense layer
    batch_norm: bool = True  # batch normalisation between each conv and its activation
    patch_whitening: bool = False  # a fixed first layer that whitens each 2x2 patch (PCA of the training patches)
    pool_first: bool = False  # pool right after each block's first conv, so the rest of the block runs at half the size
    conv_dropout: float = 0.0  # dropout rate after each conv block
    residual: bool = False  # add a shortcut around the convs of each block (ResNet style)
    dense_units: tuple[int, ...] = (128,)  # hidden dense layers of the head; () = none
    dropout: float = 0.1  # dropout rate before each dense layer of the head
    logit_scale: float = 1.0  # the logits are multiplied by this before the softmax (1 / temperature)
    init: str = "he"  # kernel initialiser: "he", "glorot", "normal_0.01", "truncated_normal_0.1"
    weight_decay: float = 1e-3  # L2 penalty on conv and dense kernels

    @property
    def conv_blocks(self) -> int:
        """The number of conv blocks: one per entry of `filters`."""
        return len(self.filters)


@dataclass(frozen=True)
class TrainSpec:
    """How the weights are fitted."""

    optimizer: str = "adam"  # a name in OPTIMIZERS
    learning_rate: float = 0.01  # initial (peak, for one-cycle) learning rate
    schedule: str = "one_cycle"  # learning-rate schedule over all epochs
    batch_size: int = 256  # images per gradient step
    label_smoothing: float = 0.0  # share of each target spread evenly over all classes
    weight_averaging: float = 0.0  # momentum of a moving average of the weights over steps, kept at the end; 0 = off
    epochs: int = 6  # passes over the training images
    time_budget: float = 0.0  # stop after this many seconds of training; 0 = no limit


@dataclass(frozen=True)
class ExperimentSpec:
    """Everything that defines one experiment; equal specs give equal runs on the CPU."""

    data: DataSpec = field(default_factory=DataSpec)
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
    arch: ArchSpec = field(default_factory=ArchSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    seed: int = 0  # seeds data sampling, weight init, shuffling and augmentation
    preset: str = "default"  # the preset this spec started from (informational)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain-JSON dict (tuples become lists); the arch section still writes conv_blocks."""
        data: dict[str, Any] = {section_name: {} for section_name in _SECTIONS}
        for name, section_name in FIELD_SECTIONS.items():
            if _written(self, name):
                data[section_name][name] = get_value(self, name)
        data.update(seed=self.seed, preset=self.preset)
        return json.loads(json.dumps(data))

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text that `from_json` turns back into an equal spec."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExperimentSpec":
        """Build a spec from `to_dict` output; unknown keys and wrong types raise SpecError.

        A `conv_blocks` that disagrees with the length of `filters` is refused;
        `conv_blocks` without `filters` resizes the default filters (see `with_blocks`).
        """
        if not isinstance(data, Mapping):
            raise SpecError(f"A spec must be a JSON object. Received: {type(data).__name__}")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise SpecError(f"Unknown spec section(s): {', '.join(sorted(unknown))}.")
        flat: dict[str, Any] = {name: data[name] for name in _TOP_FIELDS if name in data}
        for section_name in _SECTIONS:
            section = data.get(section_name, {})
            if not isinstance(section, Mapping):
                raise SpecError(f"Spec section '{section_name}' must be an object.")
            unknown = set(section) - {name for name, owner in FIELD_SECTIONS.items() if owner == section_name}
            if unknown:
                raise SpecError(f"Unknown setting(s): {', '.join(sorted(unknown))}.", sorted(unknown)[0])
            flat.update(section)
        return _changed(cls(), flat, parse_strings=False)

    @classmethod
    def from_json(cls, text: str) -> "ExperimentSpec":
        """Parse JSON text produced by `to_json`."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError) as exc:
            raise SpecError(f"The spec is not valid JSON: {exc}.") from None
        return cls.from_dict(data)

    def to_query_params(self) -> dict[str, str]:
        """Flat {key: string} for a URL; every field is written so the link is complete (see `LATER_FIELDS`)."""
        return {name: _to_string(get_value(self, name)) for name in field_names() if _written(self, name)}

    @classmethod
    def from_query_params(cls, params: Mapping[str, Any], base: "ExperimentSpec | None" = None) -> "ExperimentSpec":
        """Read a spec from URL query parameters; keys that are not spec fields are ignored.

        Args:
            params: {key: value}; a value may be a string, a typed value, or a
                list of strings (a repeated key: the last one wins, as browsers do).
                `conv_blocks` alone resizes the filters (see `with_blocks`); with
                `filters` it must give their number.
            base: the spec that supplies fields missing from `params`
                (default: `ExperimentSpec()`).

        Returns:
            The spec. Malformed values raise SpecError naming the key and value.
        """
        # A list is a repeated URL key (the last one wins); a tuple is a value (filters=(8, 16)).
        flat = {k: (v[-1] if isinstance(v, list) and v else v) for k, v in params.items()}
        return _changed(base or cls(), flat, parse_strings=True)

    def with_values(self, **changes: Any) -> "ExperimentSpec":
        """A copy with fields changed by their flat names, e.g. `with_values(filters=(8, 16), seed=3)`.

        Values are coerced as for URL parameters, so strings are accepted too.
        `filters=(8, 16)` means two conv blocks; `conv_blocks=3` alone keeps the
        filters of the first blocks and doubles the last for a new one.
        """
        return ExperimentSpec.from_query_params(changes, base=self) if changes else self

    def spec_id(self) -> str:
        """Short stable hash of the spec, for caches and run names."""
        return hashlib.sha256(self.to_json(indent=None).encode()).hexdigest()[:10]


# Fields added after links, saved runs and spec ids existed, with the value that means "as before".
# They are written only when they differ from it, so every older spec keeps its JSON, its id and its link,
# and a link or file without them means that value (which it did).
LATER_FIELDS: dict[str, Any] = {"test_time_augmentation": "none", "patch_whitening": False, "pool_first": False,
                                "label_smoothing": 0.0, "logit_scale": 1.0, "global_pool_kind": "avg",
                                "weight_averaging": 0.0}


def _written(spec: "ExperimentSpec", name: str) -> bool:
    return name not in LATER_FIELDS or get_value(spec, name) != LATER_FIELDS[name]


_SECTIONS = {"data": DataSpec, "preprocess": PreprocessSpec, "arch": ArchSpec, "train": TrainSpec}
_TOP_FIELDS = {"seed": int, "preset": str}
# Flat field name (a URL key) -> its section name, in the order links and JSON write them.
# conv_blocks is derived from the filters, not stored; it is still written, first in "arch".
FIELD_SECTIONS = {
    name: section_name
    for section_name, cls in _SECTIONS.items()
    for name in (("conv_blocks",) if cls is ArchSpec else ()) + tuple(f.name for f in fields(cls))
}


def graph_key(spec: ExperimentSpec) -> str:
    """What in `spec` decides its traced training graph and the graph's constants: all but seed, preset name and time budget.

    Args:
        spec: the experiment.

    Returns:
        A string; equal strings (with the same dataset) train with the same graph.
    """
    bare = replace(spec, seed=0, preset="", train=replace(spec.train, time_budget=0.0))
    return bare.to_json(indent=None)


def field_names() -> list[str]:
    """All flat field names (the URL keys), section by section, then seed and preset."""
    return list(FIELD_SECTIONS) + list(_TOP_FIELDS)


def get_value(spec: ExperimentSpec, name: str) -> Any:
    """The value of a flat field name, e.g. `get_value(spec, "filters")`."""
    if name in _TOP_FIELDS:
        return getattr(spec, name)
    return getattr(getattr(spec, FIELD_SECTIONS[name]), name)


# ---------------------------------------------------------------------------
# Edits of the network that keep the spec whole: the filters/blocks rule lives here.
# ---------------------------------------------------------------------------


def with_blocks(spec: ExperimentSpec, blocks: int) -> ExperimentSpec:
    """A copy of `spec` with `blocks` conv blocks: the filters are truncated, or extended by doubling the last.

    Args:
        spec: the experiment.
        blocks: the number of conv blocks wanted, 0..MAX_CONV_BLOCKS.

    Returns:
        The new spec.

    Raises:
        SpecError: when `blocks` is out of range.
    """
    _refuse(value_problems("conv_blocks", blocks), "conv_blocks")
    return _with_arch(spec, filters=resize_filters(spec.arch.filters, blocks))


def with_block_filters(spec: ExperimentSpec, block: int, count: int) -> ExperimentSpec:
    """A copy of `spec` whose conv block `block` (counted from 0) has `count` filters.

    Raises:
        SpecError: when there is no such block or `count` is out of range.
    """
    filters = spec.arch.filters
    if not 0 <= block < len(filters):
        raise SpecError(f"The network has {len(filters)} conv block(s), counted from 0, so there is no block {block}.", "filters")
    changed = filters[:block] + (count,) + filters[block + 1:]
    _refuse(value_problems("filters", changed), "filters")
    return _with_arch(spec, filters=changed)


def with_dense_units(spec: ExperimentSpec, units: tuple[int, ...]) -> ExperimentSpec:
    """A copy of `spec` whose dense head has one hidden layer per entry of `units` (() = none).

    Raises:
        SpecError: when there are too many layers or a layer's units are out of range.
    """
    units = tuple(units)
    _refuse(value_problems("dense_units", units), "dense_units")
    return _with_arch(spec, dense_units=units)


def resize_filters(filters: tuple[int, ...], blocks: int) -> tuple[int, ...]:
    """Filters for `blocks` blocks: truncated, or extended by doubling the last (capped)."""
    out = list(filters[:blocks]) or [32]
    while len(out) < blocks:
        out.append(min(out[-1] * 2, MAX_FILTERS))
    return tuple(out[:blocks])


def _with_arch(spec: ExperimentSpec, **changes: Any) -> ExperimentSpec:
    return replace(spec, arch=replace(spec.arch, **changes))


def _refuse(problems: list[str], name: str) -> None:
    if problems:
        raise SpecError(problems[0], name)


# ---------------------------------------------------------------------------
# Coercion: strict for JSON, parsing for URL strings.
# ---------------------------------------------------------------------------


def _changed(base: ExperimentSpec, values: Mapping[str, Any], parse_strings: bool) -> ExperimentSpec:
    """`base` with the flat fields in `values` set (other keys are ignored), then the blocks rule applied."""
    sections = {
        section_name: replace(getattr(base, section_name), **{
            f.name: _coerce(_KINDS[f.type], f.name, values[f.name], parse_strings)
            for f in fields(cls) if f.name in values
        })
        for section_name, cls in _SECTIONS.items()
    }
    top = {name: _coerce(kind, name, values[name], parse_strings) for name, kind in _TOP_FIELDS.items() if name in values}
    spec = replace(base, **sections, **top)
    if "conv_blocks" not in values:
        return spec
    blocks = _coerce(int, "conv_blocks", values["conv_blocks"], parse_strings)
    if "filters" not in values:
        return with_blocks(spec, blocks)
    if blocks != spec.arch.conv_blocks:
        filters = spec.arch.filters
        raise SpecError(
            f"Give one filter count per conv block: {blocks} block(s) but {len(filters)} filter count(s). "
            f"Received: conv_blocks={blocks}, filters={_to_string(filters) or '(none)'}", "filters")
    return spec


_KINDS = {"int": int, "float": float, "bool": bool, "str": str, "tuple[int, ...]": tuple}  # annotation -> kind


def _coerce(kind: type, name: str, value: Any, parse_strings: bool) -> Any:
    """Convert `value` to `kind`, raising SpecError that names the field and value."""
    bad = SpecError(f"'{name}' must be {_KIND_WORDS[kind]}. Received: {name}={value!r}", name)
    if parse_strings and isinstance(value, str) and kind is not str:
        text = value.strip().lower()
        try:
            if kind is bool:
                flag = parse_bool(text, None)
                if flag is None:
                    raise bad
                return flag
            if kind is tuple:
                return tuple(int(part) for part in text.split(",") if part.strip()) if text else ()
            if kind is int:
                return int(text)
            number = float(text)
        except (ValueError, OverflowError):
            raise bad from None
        if not math.isfinite(number):
            raise bad
        return number
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise bad
    if kind is tuple:
        if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return tuple(value)
        raise bad
    if isinstance(value, str):
        return value
    raise bad


_KIND_WORDS = {
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    str: "text",
    tuple: "a comma-separated list of whole numbers",
}


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)
