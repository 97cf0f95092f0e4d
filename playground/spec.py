"""ExperimentSpec: one frozen, typed, serialisable description of an experiment.

A spec says everything needed to reproduce a run: the data, its preprocessing
and augmentation, the architecture and the training schedule, plus a seed. It
round-trips exactly through JSON (`to_json` / `from_json`) and through flat
URL query parameters of strings (`to_query_params` / `from_query_params`), so
every experiment is a link.

`check(spec, input_shape)` lists impossible settings as one-sentence messages
naming the value, before any Keras call; `validate` raises the first one.

This module imports only the standard library: it stores names such as
"relu", and the registries in `models.py` map them to Keras objects.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

from playground.arithmetic import conv_output_size

# ---------------------------------------------------------------------------
# Choices (names stored in the spec) with the labels the UI shows.
# ---------------------------------------------------------------------------

DATASETS = {
    "mnist": "MNIST digits",
    "fashion_mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "shapes": "Shapes (built in)",
    "digits": "8x8 digits (built in)",
}
# Input shape (height, width, channels) of each named dataset.
DATASET_INPUT_SHAPES = {
    "mnist": (28, 28, 1),
    "fashion_mnist": (28, 28, 1),
    "cifar10": (32, 32, 3),
    "shapes": (28, 28, 1),
    "digits": (8, 8, 1),
}
# Training images and classes of each named dataset (the built-ins' do not depend on their
# seed or noise), so pages can size a network without loading or drawing the images.
DATASET_TRAIN_SIZES = {"mnist": 60_000, "fashion_mnist": 60_000, "cifar10": 50_000, "shapes": 6_000, "digits": 1_438}
DATASET_CLASS_COUNTS = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10, "shapes": 5, "digits": 10}
NORMALIZATIONS = {
    "scale": "Scale to 0..1",
    "per_image": "Per-image whitening (mean 0, std 1)",
    "dataset": "Dataset mean/std",
}
ACTIVATIONS = {
    "relu": "ReLU",
    "leaky_relu": "Leaky ReLU",
    "elu": "ELU",
    "gelu": "GELU",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "linear": "linear (none)",
}
POOLINGS = {"max": "Max 2x2", "avg": "Average 2x2", "none": "None"}
PADDINGS = {"same": "SAME", "valid": "VALID"}
INITS = {
    "he": "He normal",
    "glorot": "Glorot uniform",
    "normal_0.01": "Normal, std 0.01",
    "truncated_normal_0.1": "Truncated normal, std 0.1",
}
OPTIMIZERS = {
    "sgd": "SGD",
    "momentum": "Momentum (0.9)",
    "nesterov": "Nesterov (0.9)",
    "adagrad": "AdaGrad",
    "rmsprop": "RMSprop",
    "adam": "Adam",
    "adamw": "AdamW",
}
SCHEDULES = {
    "constant": "Constant",
    "step": "Step (x0.1 at 50% and 75%)",
    "cosine": "Cosine decay",
    "one_cycle": "One-cycle",
}

# Hard limits that keep a shared server alive whatever arrives from a URL.
MAX_CONV_BLOCKS = 8
MAX_FILTERS = 1024
MAX_DENSE_LAYERS = 4
MAX_DENSE_UNITS = 4096
MAX_PARAMS = 50_000_000


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

    dataset: str = "fashion_mnist"  # a name in DATASETS, or a path to .npz, .zip or a class folder
    sample_size: int = 0  # training images to use, drawn with the seed; 0 = all
    validation_split: float = 0.1  # fraction of the training images held out for validation
    shapes_noise: float = 0.2  # pixel noise of the built-in "shapes" images, 0..1


@dataclass(frozen=True)
class PreprocessSpec:
    """Input scaling and random augmentation (augmentation is applied in training only)."""

    normalization: str = "scale"  # "scale" 0..1, "per_image" whitening, or "dataset" mean/std
    crop_padding: int = 0  # random crop: pad by this many pixels, crop back to size; 0 = off
    flip: bool = False  # random horizontal flip
    rotation: float = 0.0  # random rotation up to +- this many degrees
    shift: float = 0.0  # random shift up to +- this fraction of height/width
    brightness: float = 0.0  # random brightness change up to +- this fraction of the range
    contrast: float = 0.0  # random contrast factor in [1 - c, 1 + c]


@dataclass(frozen=True)
class ArchSpec:
    """The network: conv blocks, then a dense head, then logits and a softmax."""

    conv_blocks: int = 3  # number of conv blocks (each: convs, [residual], pooling, [dropout])
    filters: tuple[int, ...] = (16, 32, 64)  # filters of each block; one entry per block
    convs_per_block: int = 1  # conv layers in each block (2 gives VGG's 3x3 stacks)
    kernel_size: int = 3  # square kernel size F of every conv
    stride: int = 1  # stride S of the first conv in each block
    padding: str = "same"  # "same" keeps H (for S = 1), "valid" shrinks it by F - 1
    pooling: str = "max"  # 2x2 pooling after each block: "max", "avg" or "none"
    global_pool: bool = False  # global average pooling before the head instead of flattening
    activation: str = "relu"  # activation after every conv and hidden dense layer
    batch_norm: bool = True  # batch normalisation between each conv and its activation
    conv_dropout: float = 0.0  # dropout rate after each conv block
    residual: bool = False  # add a shortcut around the convs of each block (ResNet style)
    dense_units: tuple[int, ...] = (128,)  # hidden dense layers of the head; () = none
    dropout: float = 0.1  # dropout rate before each dense layer of the head
    init: str = "he"  # kernel initialiser: "he", "glorot", "normal_0.01", "truncated_normal_0.1"
    weight_decay: float = 0.0  # L2 penalty on conv and dense kernels


@dataclass(frozen=True)
class TrainSpec:
    """How the weights are fitted."""

    optimizer: str = "adam"  # a name in OPTIMIZERS
    learning_rate: float = 0.01  # initial (peak, for one-cycle) learning rate
    schedule: str = "one_cycle"  # learning-rate schedule over all epochs
    batch_size: int = 256  # images per gradient step
    epochs: int = 4  # passes over the training images
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
        """Nested plain-JSON dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text that `from_json` turns back into an equal spec."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExperimentSpec":
        """Build a spec from `to_dict` output; unknown keys and wrong types raise SpecError."""
        if not isinstance(data, Mapping):
            raise SpecError(f"A spec must be a JSON object. Received: {type(data).__name__}")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise SpecError(f"Unknown spec section(s): {', '.join(sorted(unknown))}.")
        kwargs: dict[str, Any] = {}
        for section_name, section_cls in _SECTIONS.items():
            section = data.get(section_name, {})
            if not isinstance(section, Mapping):
                raise SpecError(f"Spec section '{section_name}' must be an object.")
            kwargs[section_name] = _section_from_values(section_cls, section, parse_strings=False)
        for name in ("seed", "preset"):
            if name in data:
                kwargs[name] = _coerce(_TOP_FIELDS[name], name, data[name], parse_strings=False)
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> "ExperimentSpec":
        """Parse JSON text produced by `to_json`."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError) as exc:
            raise SpecError(f"The spec is not valid JSON: {exc}.") from None
        return cls.from_dict(data)

    def to_query_params(self) -> dict[str, str]:
        """Flat {key: string} for a URL; every field is written so the link is complete."""
        params: dict[str, str] = {}
        for section_name in _SECTIONS:
            section = getattr(self, section_name)
            for f in fields(section):
                params[f.name] = _to_string(getattr(section, f.name))
        params["seed"] = str(self.seed)
        params["preset"] = self.preset
        return params

    @classmethod
    def from_query_params(cls, params: Mapping[str, Any], base: "ExperimentSpec | None" = None) -> "ExperimentSpec":
        """Read a spec from URL query parameters; keys that are not spec fields are ignored.

        Args:
            params: {key: value}; a value may be a string, a typed value, or a
                list of strings (a repeated key: the last one wins, as browsers do).
            base: the spec that supplies fields missing from `params`
                (default: `ExperimentSpec()`).

        Returns:
            The spec. Malformed values raise SpecError naming the key and value.
        """
        base = base or cls()
        # A list is a repeated URL key (the last one wins); a tuple is a value (filters=(8, 16)).
        flat = {k: (v[-1] if isinstance(v, list) and v else v) for k, v in params.items()}
        kwargs: dict[str, Any] = {}
        for section_name, section_cls in _SECTIONS.items():
            values = {f.name: flat[f.name] for f in fields(section_cls) if f.name in flat}
            kwargs[section_name] = replace(
                getattr(base, section_name), **_coerce_all(section_cls, values, parse_strings=True)
            )
        kwargs["seed"] = _coerce(int, "seed", flat["seed"], True) if "seed" in flat else base.seed
        kwargs["preset"] = _coerce(str, "preset", flat["preset"], True) if "preset" in flat else base.preset
        return cls(**kwargs)

    def with_values(self, **changes: Any) -> "ExperimentSpec":
        """A copy with fields changed by their flat names, e.g. `with_values(filters=(8, 16), seed=3)`.

        Values are coerced as for URL parameters, so strings are accepted too.
        A change of only one of `filters` and `conv_blocks` adapts the other, as the
        sliders do: `filters=(8, 16)` means two blocks, and `conv_blocks=3` keeps the
        filters of the first blocks and doubles the last for a new one.
        """
        if not changes:
            return self
        spec = ExperimentSpec.from_query_params(changes, base=self)
        arch = spec.arch
        if "filters" in changes and "conv_blocks" not in changes:
            arch = replace(arch, conv_blocks=len(arch.filters))
        elif "conv_blocks" in changes and "filters" not in changes and 0 <= arch.conv_blocks <= MAX_CONV_BLOCKS:
            arch = replace(arch, filters=resize_filters(arch.filters, arch.conv_blocks))
        return replace(spec, arch=arch)

    def spec_id(self) -> str:
        """Short stable hash of the spec, for caches and run names."""
        return hashlib.sha256(self.to_json(indent=None).encode()).hexdigest()[:10]


_SECTIONS = {"data": DataSpec, "preprocess": PreprocessSpec, "arch": ArchSpec, "train": TrainSpec}
_TOP_FIELDS = {"seed": int, "preset": str}
# Flat field name -> (section name, type annotation string).
FIELD_SECTIONS = {f.name: name for name, cls in _SECTIONS.items() for f in fields(cls)}


def field_names() -> list[str]:
    """All flat field names (the URL keys), section by section, then seed and preset."""
    return list(FIELD_SECTIONS) + list(_TOP_FIELDS)


def get_value(spec: ExperimentSpec, name: str) -> Any:
    """The value of a flat field name, e.g. `get_value(spec, "filters")`."""
    if name in _TOP_FIELDS:
        return getattr(spec, name)
    return getattr(getattr(spec, FIELD_SECTIONS[name]), name)


# ---------------------------------------------------------------------------
# Coercion: strict for JSON, parsing for URL strings.
# ---------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _field_type(cls: type, name: str) -> Any:
    hint = {f.name: f.type for f in fields(cls)}[name]
    return {"int": int, "float": float, "bool": bool, "str": str, "tuple[int, ...]": tuple}[hint]


def _section_from_values(cls: type, values: Mapping[str, Any], parse_strings: bool) -> Any:
    unknown = set(values) - {f.name for f in fields(cls)}
    if unknown:
        raise SpecError(f"Unknown setting(s): {', '.join(sorted(unknown))}.", sorted(unknown)[0])
    return cls(**_coerce_all(cls, values, parse_strings))


def _coerce_all(cls: type, values: Mapping[str, Any], parse_strings: bool) -> dict[str, Any]:
    return {k: _coerce(_field_type(cls, k), k, v, parse_strings) for k, v in values.items()}


def _coerce(kind: type, name: str, value: Any, parse_strings: bool) -> Any:
    """Convert `value` to `kind`, raising SpecError that names the field and value."""
    bad = SpecError(f"'{name}' must be {_KIND_WORDS[kind]}. Received: {name}={value!r}", name)
    if parse_strings and isinstance(value, str) and kind is not str:
        text = value.strip().lower()
        try:
            if kind is bool:
                if text in _TRUE:
                    return True
                if text in _FALSE:
                    return False
                raise bad
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


# ---------------------------------------------------------------------------
# Checks: impossible settings explained before any Keras call.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One impossible setting: the flat field name it belongs to and a one-sentence message."""

    field_name: str
    message: str


_PATH_SUFFIXES = (".npz", ".zip")


def is_named_dataset(dataset: str) -> bool:
    """True when `dataset` is one of the named datasets rather than a path."""
    return dataset in DATASETS


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
        bad("dataset", f"Unknown dataset {d.dataset!r}: choose one of {', '.join(DATASETS)}, or a .npz, .zip or folder path.")
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
        input_shape = DATASET_INPUT_SHAPES[d.dataset]
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


# ---------------------------------------------------------------------------
# Presets: architecture, preprocessing and training of well-known networks.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """A named starting point; `apply_preset` keeps the user's data and seed."""

    name: str
    title: str
    description: str
    preprocess: PreprocessSpec
    arch: ArchSpec
    train: TrainSpec


_CIFAR_FAST = Preset(
    "cifar_fast", "CIFAR fast (VGG-style, 8 minutes)",
    "Four blocks of two 3x3 convs (16, 32, 64, 128 filters) with batch norm, flips, light dropout and a one-cycle "
    "schedule: about 80% on CIFAR-10 in 9 epochs, under 10 minutes on a 2-core CPU.",
    PreprocessSpec(flip=True),
    ArchSpec(conv_blocks=4, filters=(16, 32, 64, 128), convs_per_block=2, dense_units=(128,), dropout=0.1),
    TrainSpec(optimizer="adam", learning_rate=0.003, schedule="one_cycle", batch_size=128, epochs=9),
)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "default", "Default (fast)",
            "Three small 3x3 conv blocks (16, 32, 64 filters) with batch norm, a 128-unit head and a one-cycle learning rate: "
            "about 91% on Fashion-MNIST in under a minute on a 2-core CPU.",
            PreprocessSpec(),
            ArchSpec(),
            TrainSpec(),
        ),
        Preset(
            "lenet5", "LeNet-5",
            "LeCun et al. 1998: two 5x5 VALID convs (6 and 16 filters) with average pooling and tanh, then 120 and 84 dense units.",
            PreprocessSpec(),
            ArchSpec(conv_blocks=2, filters=(6, 16), kernel_size=5, padding="valid", pooling="avg",
                     activation="tanh", batch_norm=False, dense_units=(120, 84), dropout=0.0, init="glorot"),
            TrainSpec(optimizer="adam", learning_rate=0.001, batch_size=64, epochs=5, schedule="constant"),
        ),
        Preset(
            "mnist_5x5", "Two-layer 5x5 (32/64, 1024 dense)",
            "The classic TensorFlow MNIST tutorial network: 5x5 convs with 32 and 64 filters, max pooling, a 1024-unit dense layer and dropout 0.5.",
            PreprocessSpec(),
            ArchSpec(conv_blocks=2, filters=(32, 64), kernel_size=5, batch_norm=False, dense_units=(1024,),
                     dropout=0.5, init="truncated_normal_0.1"),
            TrainSpec(optimizer="adam", learning_rate=0.0005, batch_size=64, epochs=5, schedule="constant"),
        ),
        Preset(
            "simple_convnet", "Simple convnet (30 5x5, 100 hidden)",
            "One conv layer of 30 5x5 filters, 2x2 max pooling and 100 hidden units: the classic NumPy-from-scratch network.",
            PreprocessSpec(),
            ArchSpec(conv_blocks=1, filters=(30,), kernel_size=5, padding="valid", batch_norm=False,
                     dense_units=(100,), dropout=0.0, init="he"),
            TrainSpec(optimizer="adam", learning_rate=0.001, batch_size=100, epochs=5, schedule="constant"),
        ),
        Preset(
            "convnet_3x3", "32/64/128 3x3 (256 dense, dropout 0.4)",
            "Three 3x3 conv blocks with 32, 64 and 128 filters, a 256-unit dense layer and dropout 0.4.",
            PreprocessSpec(),
            ArchSpec(conv_blocks=3, filters=(32, 64, 128), dense_units=(256,), dropout=0.4),
            TrainSpec(optimizer="adam", learning_rate=0.001, batch_size=128, epochs=8, schedule="constant"),
        ),
        Preset(
            "vgg_cifar", "VGG-style CIFAR (16/32/64/128)",
            "Four blocks of two 3x3 convs (16, 32, 64, 128 filters) with batch norm, flips and crops: a VGG-style network for CIFAR-10.",
            PreprocessSpec(crop_padding=2, flip=True),
            ArchSpec(conv_blocks=4, filters=(16, 32, 64, 128), convs_per_block=2, dense_units=(128,), dropout=0.5),
            TrainSpec(optimizer="adam", learning_rate=0.002, schedule="one_cycle", batch_size=128, epochs=20),
        ),
        Preset(
            "mini_alexnet", "Mini AlexNet",
            "Krizhevsky et al. 2012, scaled down: large first kernels, three conv blocks, two wide dense layers with dropout 0.5, SGD with momentum.",
            PreprocessSpec(flip=True),
            ArchSpec(conv_blocks=3, filters=(32, 64, 96), kernel_size=5, batch_norm=False, dense_units=(256, 256),
                     dropout=0.5, init="he"),
            TrainSpec(optimizer="momentum", learning_rate=0.01, schedule="step", batch_size=128, epochs=10),
        ),
        Preset(
            "mini_vgg", "Mini VGG",
            "Simonyan & Zisserman 2014, scaled down: stacks of two 3x3 convs (32, 64, 128 filters) with batch norm, then a 256-unit head.",
            PreprocessSpec(),
            ArchSpec(conv_blocks=3, filters=(32, 64, 128), convs_per_block=2, dense_units=(256,), dropout=0.5),
            TrainSpec(optimizer="adam", learning_rate=0.001, schedule="cosine", batch_size=128, epochs=10),
        ),
        Preset(
            "mini_resnet", "Mini ResNet",
            "He et al. 2015, scaled down: three residual blocks of two 3x3 convs (16, 32, 64 filters) with batch norm and global average pooling.",
            PreprocessSpec(),
            ArchSpec(conv_blocks=3, filters=(16, 32, 64), convs_per_block=2, residual=True, global_pool=True,
                     dense_units=(), dropout=0.0),
            TrainSpec(optimizer="adam", learning_rate=0.002, schedule="cosine", batch_size=128, epochs=10),
        ),
        _CIFAR_FAST,
        replace(
            _CIFAR_FAST, name="cifar_long", title="CIFAR longer (VGG-style, 17 minutes)",
            description="The CIFAR fast network trained twice as long (19 epochs, one-cycle): above 80% on CIFAR-10 "
                        "in under 20 minutes on a 2-core CPU.",
            train=replace(_CIFAR_FAST.train, epochs=19),
        ),
    ]
}


def apply_preset(spec: ExperimentSpec, name: str) -> ExperimentSpec:
    """Replace the architecture, preprocessing and training of `spec` with preset `name`.

    The data section and the seed are kept, so a preset can be tried on any dataset.

    Raises:
        SpecError: when `name` is not a preset.
    """
    if name not in PRESETS:
        raise SpecError(f"Unknown preset {name!r}: choose one of {', '.join(PRESETS)}.", "preset")
    preset = PRESETS[name]
    return replace(spec, preprocess=preset.preprocess, arch=preset.arch, train=preset.train, preset=name)


def preset_spec(name: str, dataset: str = "fashion_mnist", seed: int = 0) -> ExperimentSpec:
    """The full spec of preset `name` on `dataset`."""
    return apply_preset(ExperimentSpec(data=DataSpec(dataset=dataset), seed=seed), name)


def resize_filters(filters: tuple[int, ...], blocks: int) -> tuple[int, ...]:
    """Filters for `blocks` blocks: truncated, or extended by doubling the last (capped).

    The UI uses this when the block-count slider moves, so the spec stays valid.
    """
    out = list(filters[:blocks]) or [32]
    while len(out) < blocks:
        out.append(min(out[-1] * 2, MAX_FILTERS))
    return tuple(out[:blocks])
