"""The settings table: for every spec field, its bounds or choices and how the sidebar shows it (standard library only).

`FIELDS` is the one place where a field's range, choices, slider stops, label,
help text and classroom visibility are written: `spec.check` reads the bounds
and choices, the Playground's controls build their widgets from the rest.
Names are what a spec stores ("relu"); the labels are what the UI shows. The
registries in `playground.model.network` map the names to Keras objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

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
GLOBAL_POOLS = {"avg": "Average", "max": "Max"}
TEST_TIME_AUGMENTATIONS = {
    "none": "None",
    "flip": "Mirror image (2 views)",
    "shift": "1-pixel shifts (3 views)",
    "flip_shift": "Mirror image and shifts (6 views)",
}
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
MAX_INPUT_SIDE = 512  # pixels along an image's longer side (the networks here train on far smaller ones)
MAX_FLOPS_PER_IMAGE = 2_000_000_000  # forward-pass floating-point operations for one image
MAX_BATCH_ACTIVATION_BYTES = 4 * 1024**3  # activations one training batch keeps for the backward pass

# The kinds of control a field gets in the sidebar.
SELECT = "select"  # a select box over `choices`
SELECT_SLIDER = "select_slider"  # a slider over `stops`
SLIDER = "slider"  # an integer slider from `lo` to `hi`
NUMBER = "number"  # a number box from `lo` to `hi` in steps of `step`
TOGGLE = "toggle"  # an on/off switch
TEXT = "text"  # a text box


@dataclass(frozen=True)
class FieldInfo:
    """How one flat spec field is bounded and shown.

    For a list field (filters, dense_units) `lo`/`hi` bound each entry, `subject`
    names one entry ("block") and `unit` what an entry counts ("filters").
    """

    label: str  # the control's label
    widget: str  # SELECT, SELECT_SLIDER, SLIDER, NUMBER, TOGGLE or TEXT
    subject: str = ""  # how a message names the field ("The kernel size"); empty: not range-checked
    lo: float | None = None  # smallest allowed value
    hi: float | None = None  # largest allowed value; None: no upper bound
    bounds: str = ""  # the allowed values in words, where "between lo and hi" does not say it
    choices: Mapping[str, str] | None = None  # allowed name -> label
    stops: tuple[Any, ...] = ()  # a select slider's stops, all within lo..hi
    step: float | None = None  # a number box's step
    fmt: str = ""  # how a value is shown: a name in the controls' formats; empty: as text
    help: str | None = None  # the control's tooltip
    advanced: bool = False  # hidden in classroom mode (its value is kept)
    unit: str = ""  # list fields: what one entry counts
    max_items: int | None = None  # list fields: the most entries


_DROPOUTS = (0.0, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
_JITTERS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)

# Flat field name -> FieldInfo, for every field the sidebar shows (conv_blocks is
# derived from the filters list; preset's choices are the presets). Slider stops:
# a value from a link or preset that is not a stop is added to the options.
FIELDS: dict[str, FieldInfo] = {
    # data
    "dataset": FieldInfo("Dataset", SELECT),
    "sample_size": FieldInfo(
        "Training images", SELECT_SLIDER, "sample_size", lo=0, bounds="0 (all) or a positive count",
        stops=(0, 300, 500, 1000, 2000, 5000, 10000, 20000, 30000, 60000), fmt="count",
        help="How many training images to draw (with the seed); fewer trains faster."),
    "validation_split": FieldInfo(
        "Validation split", SELECT_SLIDER, "The validation split", lo=0.0, hi=0.5,
        stops=(0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5), fmt="percent",
        help="Share of the training images held out to measure validation accuracy.", advanced=True),
    "shapes_noise": FieldInfo(
        "Shapes noise", SELECT_SLIDER, "The shapes noise level", lo=0.0, hi=1.0,
        stops=tuple(round(0.05 * i, 2) for i in range(21)), fmt="percent",
        help="Pixel noise of the built-in shapes: more noise, harder task."),
    # preprocessing and augmentation
    "normalization": FieldInfo("Normalization", SELECT, choices=NORMALIZATIONS),
    "crop_padding": FieldInfo("Random crop padding (pixels)", SLIDER, "Random-crop padding", lo=0, hi=16, advanced=True),
    "flip": FieldInfo("Random horizontal flip", TOGGLE),
    "test_time_augmentation": FieldInfo(
        "Test-time augmentation", SELECT, choices=TEST_TIME_AUGMENTATIONS, advanced=True,
        help="Predict from several views of each image and average them: steadier predictions. Mirror images suit "
             "data whose mirror images look alike (photos, clothes; not digits or letters); each view costs a "
             "forward pass."),
    "rotation": FieldInfo(
        "Random rotation (degrees)", SELECT_SLIDER, "Rotation (degrees)", lo=0.0, hi=180.0,
        stops=(0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 90.0, 180.0), fmt="degrees"),
    "shift": FieldInfo(
        "Random shift", SELECT_SLIDER, "Shift", lo=0.0, hi=0.5,
        stops=(0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5), fmt="plus_minus_percent"),
    "brightness": FieldInfo(
        "Random brightness", SELECT_SLIDER, "Brightness change", lo=0.0, hi=1.0, stops=_JITTERS,
        fmt="plus_minus_percent", advanced=True),
    "contrast": FieldInfo(
        "Random contrast", SELECT_SLIDER, "Contrast change", lo=0.0, hi=1.0, stops=_JITTERS,
        fmt="plus_minus_percent", advanced=True),
    # architecture
    "conv_blocks": FieldInfo("Conv blocks", SLIDER, "The number of conv blocks", lo=0, hi=MAX_CONV_BLOCKS),
    "filters": FieldInfo(
        "Filters in block", SELECT_SLIDER, "block", lo=1, hi=MAX_FILTERS, unit="filters",
        stops=(1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)),
    "convs_per_block": FieldInfo("Convs per block", SLIDER, "Convs per block", lo=1, hi=4, advanced=True),
    "kernel_size": FieldInfo("Kernel size", SLIDER, "The kernel size", lo=1, hi=11),
    "stride": FieldInfo("Stride of the first conv", SLIDER, "The stride", lo=1, hi=4, advanced=True),
    "padding": FieldInfo("Padding", SELECT, choices=PADDINGS),
    "pooling": FieldInfo("Pooling after each block", SELECT, choices=POOLINGS),
    "global_pool": FieldInfo("Global pooling before the head (instead of flattening)", TOGGLE, advanced=True),
    "global_pool_kind": FieldInfo(
        "Global pooling", SELECT, choices=GLOBAL_POOLS, advanced=True,
        help="With global pooling: each feature map becomes its average, or its strongest response anywhere in "
             "the image (max)."),
    "activation": FieldInfo("Activation", SELECT, choices=ACTIVATIONS),
    "batch_norm": FieldInfo("Batch normalization", TOGGLE),
    "patch_whitening": FieldInfo(
        "Patch-whitening first layer", TOGGLE, advanced=True,
        help="A fixed 2x2 conv whose filters are the principal directions of the training images' 2x2 patches, "
             "scaled to unit variance: the next layers start on decorrelated inputs and learn sooner."),
    "pool_first": FieldInfo(
        "Pool right after each block's first conv", TOGGLE, advanced=True,
        help="The block's batch norm, activation and later convs then run on the pooled, 4 times smaller map: cheaper."),
    "conv_dropout": FieldInfo(
        "Dropout after each conv block", SELECT_SLIDER, "Conv dropout", lo=0.0, hi=0.9, stops=_DROPOUTS,
        fmt="percent", advanced=True),
    "residual": FieldInfo("Residual connections", TOGGLE, advanced=True),
    "dense_units": FieldInfo(
        "Dense layers (units, comma-separated; empty = none)", TEXT, "dense layer", lo=1, hi=MAX_DENSE_UNITS,
        unit="units", max_items=MAX_DENSE_LAYERS),
    "dropout": FieldInfo(
        "Dropout before dense layers", SELECT_SLIDER, "Dense dropout", lo=0.0, hi=0.9, stops=_DROPOUTS, fmt="percent"),
    "logit_scale": FieldInfo(
        "Logit scale (1 / softmax temperature)", SELECT_SLIDER, "The logit scale", lo=0.001, hi=100.0,
        stops=(0.05, 0.1, 0.125, 0.25, 0.5, 1.0, 2.0), fmt="number", advanced=True,
        help="The logits are multiplied by this before the softmax. Below 1 the predictions start softer and the "
             "last layer learns more gently, so large learning rates stay stable."),
    "init": FieldInfo("Weight initialisation", SELECT, choices=INITS, advanced=True),
    "weight_decay": FieldInfo(
        "L2 weight decay", SELECT_SLIDER, "L2 weight decay", lo=0.0, hi=0.1,
        stops=(0.0, 1e-5, 1e-4, 5e-4, 1e-3, 1e-2, 0.1), fmt="number", advanced=True),
    # training
    "optimizer": FieldInfo("Optimizer", SELECT, choices=OPTIMIZERS),
    "learning_rate": FieldInfo(
        "Learning rate", SELECT_SLIDER, "The learning rate", lo=1e-6, hi=10.0,
        stops=(1e-5, 3e-5, 1e-4, 3e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0), fmt="number",
        help="Log scale: each stop is about 2-3 times the previous one."),
    "schedule": FieldInfo("Learning-rate schedule", SELECT, choices=SCHEDULES, advanced=True),
    "batch_size": FieldInfo(
        "Batch size", SELECT_SLIDER, "The batch size", lo=1, hi=4096, stops=(8, 16, 32, 64, 100, 128, 256, 512, 1024)),
    "label_smoothing": FieldInfo(
        "Label smoothing", SELECT_SLIDER, "Label smoothing", lo=0.0, hi=0.5, stops=(0.0, 0.05, 0.1, 0.2, 0.3, 0.5),
        fmt="percent", advanced=True,
        help="Train towards targets that give this share to all classes evenly: less over-confident predictions."),
    "weight_averaging": FieldInfo(
        "Weight averaging (momentum)", SELECT_SLIDER, "The weight-averaging momentum", lo=0.0, hi=0.9999,
        bounds="0 (off) or up to 0.9999", stops=(0.0, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999), fmt="number", advanced=True,
        help="Keep a moving average of the weights over the training steps and end with it (Polyak averaging): it "
             "smooths out the noise of the last steps. 0.99 averages about the last 100 steps; 0 = off. "
             "Validation and test scores use the average."),
    "epochs": FieldInfo(
        "Epochs", SELECT_SLIDER, "Epochs", lo=1, hi=200,
        stops=(1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200)),
    "time_budget": FieldInfo(
        "Time budget (seconds, 0 = none)", NUMBER, "The time budget (seconds)", lo=0.0, hi=4 * 3600.0, step=10.0,
        advanced=True),
    # the whole experiment
    "seed": FieldInfo(
        "Seed", NUMBER, "The seed", lo=0, hi=2**31 - 1, step=1,
        help="Seeds sampling, initial weights, shuffling and augmentation: same seed, same run."),
    "preset": FieldInfo("Preset", SELECT, help="A known network to start from; it keeps your dataset and seed."),
}


def value_problems(name: str, value: Any) -> list[str]:
    """What is wrong with `value` for field `name` on its own, by the table's bounds and choices.

    Args:
        name: a flat field name in FIELDS.
        value: the field's typed value (a tuple for a list field).

    Returns:
        One-sentence messages naming the value received; empty when it is allowed.
    """
    info = FIELDS[name]
    if info.choices is not None:
        return [] if value in info.choices else [f"Unknown {name} {value!r}: choose one of {', '.join(info.choices)}."]
    if not info.subject:
        return []
    if isinstance(value, tuple):
        received = f"Received: {name}={','.join(map(str, value))}"
        problems = []
        if info.max_items is not None and len(value) > info.max_items:
            problems.append(f"At most {info.max_items} {info.subject}s. {received}")
        if any(not info.lo <= entry <= info.hi for entry in value):
            problems.append(f"Each {info.subject} needs {info.lo:g} to {info.hi:g} {info.unit}. {received}")
        return problems
    if info.lo <= value and (info.hi is None or value <= info.hi):
        return []
    bounds = info.bounds or f"between {info.lo:g} and {info.hi:g}"
    return [f"{info.subject} must be {bounds}. Received: {name}={value!r}"]
