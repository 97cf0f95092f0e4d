"""The Playground's controls: one small `*_ui()` function per group, each returning plain values.

The experiment being edited lives in `st.session_state["pg_spec"]` (set once
from the URL behind a guard). Every widget has a key `pg_<field>` seeded from
that spec when missing, so a control hidden in classroom mode, or a page
visited in between, never loses its value. A preset or a "switch dataset"
button rewrites the spec and reseeds the widgets.

Problems found by `spec.check` are written next to the control they belong
to, through a placeholder each widget leaves behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import streamlit as st

from playground.data.catalog import CATALOG
from playground.spec.experiment import get_value, resize_filters
from playground.spec.fields import ACTIVATIONS, INITS, MAX_CONV_BLOCKS, NORMALIZATIONS, OPTIMIZERS, PADDINGS, POOLINGS, SCHEDULES
from playground.spec.presets import PRESETS, apply_preset
from playground.settings import get_settings
from playground.spec.experiment import ArchSpec, DataSpec, ExperimentSpec, PreprocessSpec, TrainSpec
from playground.spec.validation import Problem

SPEC_KEY = "pg_spec"  # the spec being edited (an ExperimentSpec)
CLASSROOM_KEY = "pg_classroom"  # hide advanced controls

# Slider stops. A value from a link or preset that is not a stop is added to the
# options, so every valid setting can be shown exactly.
SAMPLE_SIZES = (0, 300, 500, 1000, 2000, 5000, 10000, 20000, 30000, 60000)
SPLITS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
NOISES = tuple(round(0.05 * i, 2) for i in range(21))
ROTATIONS = (0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 90.0, 180.0)
SHIFTS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)
JITTERS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
FILTERS = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
DROPOUTS = (0.0, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
DECAYS = (0.0, 1e-5, 1e-4, 5e-4, 1e-3, 1e-2, 0.1)
LEARNING_RATES = (1e-5, 3e-5, 1e-4, 3e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
BATCH_SIZES = (8, 16, 32, 64, 100, 128, 256, 512, 1024)
EPOCHS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200, 300, 500)


def key(name: str) -> str:
    """The session-state key of the widget for flat field `name`."""
    return f"pg_{name}"


def filter_key(block: int) -> str:
    """The widget key of block `block`'s filter count (0-based)."""
    return f"pg_filters_{block}"


@dataclass
class Slots:
    """Placeholders next to each rendered control, where its problems are written."""

    by_field: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str) -> None:
        self.by_field[name] = st.empty()

    def show(self, problems: Sequence[Problem]) -> list[Problem]:
        """Write each problem under its control; return those whose control is not on screen."""
        unplaced = []
        for problem in problems:
            slot = self.by_field.get(problem.field_name)
            if slot is None:
                unplaced.append(problem)
            else:
                slot.error(problem.message, icon=":material/error:")
        return unplaced


# ---------------------------------------------------------------- state


def init_state(spec: ExperimentSpec, classroom: bool) -> None:
    """Set the edited spec once per session (the caller guards), and seed every widget."""
    st.session_state[SPEC_KEY] = spec
    st.session_state[CLASSROOM_KEY] = classroom
    seed_widgets(spec, overwrite=True)


def seed_widgets(spec: ExperimentSpec, *, overwrite: bool = False) -> None:
    """Give each widget key its value from `spec` (only missing ones unless `overwrite`).

    A key that is already there is written back to itself: Streamlit then keeps
    the value even when the widget's identity changes between runs (another
    page in between, or the server switching its navigation mode).
    """
    values = {key(name): get_value(spec, name) for name in spec.to_query_params() if name != "filters"}
    values[key("dense_units")] = ",".join(map(str, spec.arch.dense_units))
    values.update({filter_key(block): count for block, count in enumerate(spec.arch.filters)})
    for widget_key, value in values.items():
        st.session_state[widget_key] = value if overwrite or widget_key not in st.session_state else st.session_state[widget_key]
    for block in range(len(spec.arch.filters), MAX_CONV_BLOCKS):
        if filter_key(block) in st.session_state:
            st.session_state[filter_key(block)] = st.session_state[filter_key(block)]


def current_spec() -> ExperimentSpec:
    """The spec being edited."""
    return st.session_state[SPEC_KEY]


def replace_spec(spec: ExperimentSpec) -> None:
    """Make `spec` the edited spec and show it in every widget (for callbacks)."""
    st.session_state[SPEC_KEY] = spec
    seed_widgets(spec, overwrite=True)


def _value(name: str) -> Any:
    return st.session_state.get(key(name), get_value(current_spec(), name))


def _with_current(options: Sequence[Any], current: Any) -> list[Any]:
    return sorted(set(options) | {current})


# -------------------------------------------------------------- callbacks


def _on_preset() -> None:
    name = st.session_state[key("preset")]
    spec = apply_preset(current_spec(), name)
    replace_spec(spec)


def _on_blocks() -> None:
    # Keep one filter count per block: truncate, or extend by doubling the last.
    blocks = st.session_state[key("conv_blocks")]
    filters = tuple(st.session_state.get(filter_key(b), 0) for b in range(len(current_spec().arch.filters)))
    for block, count in enumerate(resize_filters(filters, blocks) if blocks else ()):
        st.session_state[filter_key(block)] = count


def _on_upload() -> None:
    # The data module checks the upload and saves it under the uploads folder (the only
    # place a browser may name); then the Playground trains on it.
    from playground.data import datasets

    upload = st.session_state.get("pg_upload")
    if upload is None:
        return
    importer = datasets.import_zip if upload.name.lower().endswith(".zip") else datasets.import_npz
    try:
        path = importer(upload.getvalue(), upload.name)
    except datasets.DatasetError as exc:
        st.session_state["pg_flash"] = str(exc)
        return
    switch_dataset(str(Path(path).resolve()))


def switch_dataset(name: str) -> None:
    """Callback: train on dataset `name` instead (e.g. a built-in one when a download fails)."""
    spec = current_spec()
    replace_spec(replace(spec, data=replace(spec.data, dataset=name)))


# ----------------------------------------------------------------- widgets


def _select_slider(label: str, name: str, options: Sequence[Any], slots: Slots, fmt: Callable[[Any], str] = str, help: str | None = None) -> Any:
    value = st.select_slider(label, options=_with_current(options, _value(name)), format_func=fmt, key=key(name), help=help)
    slots.add(name)
    return value


def _selectbox(label: str, name: str, choices: dict[str, str], slots: Slots, help: str | None = None) -> str:
    options = list(choices)
    if _value(name) not in options:
        st.session_state[key(name)] = options[0]
    value = st.selectbox(label, options, format_func=lambda v: choices.get(v, v), key=key(name), help=help)
    slots.add(name)
    return value


def _toggle(label: str, name: str, slots: Slots, help: str | None = None) -> bool:
    value = st.toggle(label, key=key(name), help=help)
    slots.add(name)
    return value


def _percent(value: float) -> str:
    return f"{value:.0%}" if value * 100 == int(value * 100) else f"{value:.1%}"


def _rate(value: float) -> str:
    return f"{value:g}"


def preset_ui(slots: Slots) -> str:
    """The preset picker; choosing one rewrites architecture, preprocessing and training."""
    presets = PRESETS
    if _value("preset") not in presets:
        st.session_state[key("preset")] = "default"
    name = st.selectbox(
        "Preset",
        list(presets),
        format_func=lambda n: presets[n].title,
        key=key("preset"),
        on_change=_on_preset,
        help="A known network to start from; it keeps your dataset and seed.",
    )
    st.caption(presets[name].description)
    slots.add("preset")
    return name


def dataset_choices() -> dict[str, str]:
    """Named datasets plus the datasets uploaded to this server, as {value: label}."""
    choices = {name: facts.title for name, facts in CATALOG.items()}
    uploads = get_settings().uploads_dir
    if uploads.is_dir():
        for path in sorted(uploads.iterdir()):
            if path.is_dir() or path.suffix in (".zip", ".npz"):
                choices[str(path.resolve())] = f"{path.name} (uploaded)"
    current = _value("dataset")
    if current not in choices:
        choices[current] = f"{Path(current).name} (uploaded)"
    return choices


def data_ui(slots: Slots, classroom: bool) -> DataSpec:
    """Dataset, sample size, validation split and (for shapes) the noise level."""
    dataset = _selectbox("Dataset", "dataset", dataset_choices(), slots)
    sample_size = _select_slider(
        "Training images", "sample_size", SAMPLE_SIZES, slots,
        fmt=lambda n: "all" if n == 0 else f"{n:,}",
        help="How many training images to draw (with the seed); fewer trains faster.",
    )
    split = _value("validation_split")
    if not classroom:
        split = _select_slider("Validation split", "validation_split", SPLITS, slots, fmt=_percent,
                               help="Share of the training images held out to measure validation accuracy.")
    st.file_uploader("Your own data (.zip of class folders, or .npz)", type=["zip", "npz"], key="pg_upload",
                     on_change=_on_upload,
                     help="A .zip with one folder per class (optionally under train/ and test/), or a .npz with "
                          "x_train, y_train, x_test, y_test.")
    noise = _value("shapes_noise")
    if dataset == "shapes":
        noise = _select_slider("Shapes noise", "shapes_noise", NOISES, slots, fmt=_percent,
                               help="Pixel noise of the built-in shapes: more noise, harder task.")
    return DataSpec(dataset=dataset, sample_size=sample_size, validation_split=split, shapes_noise=noise)


def preprocess_ui(slots: Slots, classroom: bool) -> PreprocessSpec:
    """Input scaling and random augmentation (training only)."""
    normalization = _selectbox("Normalization", "normalization", NORMALIZATIONS, slots)
    flip = _toggle("Random horizontal flip", "flip", slots)
    rotation = _select_slider("Random rotation (degrees)", "rotation", ROTATIONS, slots, fmt=lambda v: f"±{v:g}°")
    shift = _select_slider("Random shift", "shift", SHIFTS, slots, fmt=lambda v: f"±{_percent(v)}")
    crop, brightness, contrast = _value("crop_padding"), _value("brightness"), _value("contrast")
    if not classroom:
        crop = st.slider("Random crop padding (pixels)", 0, 16, key=key("crop_padding"))
        slots.add("crop_padding")
        brightness = _select_slider("Random brightness", "brightness", JITTERS, slots, fmt=lambda v: f"±{_percent(v)}")
        contrast = _select_slider("Random contrast", "contrast", JITTERS, slots, fmt=lambda v: f"±{_percent(v)}")
    return PreprocessSpec(normalization=normalization, crop_padding=crop, flip=flip, rotation=rotation,
                          shift=shift, brightness=brightness, contrast=contrast)


def filters_ui(blocks: int, slots: Slots) -> tuple[int, ...]:
    """One filter-count slider per conv block."""
    filters = []
    for block in range(blocks):
        if filter_key(block) not in st.session_state:
            previous = tuple(filters) or current_spec().arch.filters[:1]
            st.session_state[filter_key(block)] = resize_filters(previous, block + 1)[-1]
        current = st.session_state[filter_key(block)]
        filters.append(st.select_slider(f"Filters in block {block + 1}", options=_with_current(FILTERS, current),
                                        key=filter_key(block)))
    slots.add("filters")
    return tuple(filters)


def _dense_units(slots: Slots, problems: list[Problem]) -> tuple[int, ...]:
    text = st.text_input("Dense layers (units, comma-separated; empty = none)", key=key("dense_units"))
    slots.add("dense_units")
    try:
        return tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        problems.append(Problem("dense_units", f"Dense layers must be whole numbers separated by commas. Received: {text!r}"))
        return current_spec().arch.dense_units


def architecture_ui(slots: Slots, classroom: bool, problems: list[Problem]) -> ArchSpec:
    """Conv blocks, filters, kernel, padding, pooling, activation, batch norm, dropout, head."""
    blocks = st.slider("Conv blocks", 0, MAX_CONV_BLOCKS, key=key("conv_blocks"), on_change=_on_blocks)
    slots.add("conv_blocks")
    filters = filters_ui(blocks, slots)
    kernel = st.slider("Kernel size", 1, 11, key=key("kernel_size"))
    slots.add("kernel_size")
    padding = _selectbox("Padding", "padding", PADDINGS, slots)
    pooling = _selectbox("Pooling after each block", "pooling", POOLINGS, slots)
    activation = _selectbox("Activation", "activation", ACTIVATIONS, slots)
    batch_norm = _toggle("Batch normalization", "batch_norm", slots)
    dense_units = _dense_units(slots, problems)
    dropout = _select_slider("Dropout before dense layers", "dropout", DROPOUTS, slots, fmt=_percent)
    values = {name: _value(name) for name in ("convs_per_block", "stride", "global_pool", "residual", "conv_dropout", "init", "weight_decay")}
    if not classroom:
        values["convs_per_block"] = st.slider("Convs per block", 1, 4, key=key("convs_per_block"))
        slots.add("convs_per_block")
        values["stride"] = st.slider("Stride of the first conv", 1, 4, key=key("stride"))
        slots.add("stride")
        values["residual"] = _toggle("Residual connections", "residual", slots)
        values["global_pool"] = _toggle("Global average pooling before the head", "global_pool", slots)
        values["conv_dropout"] = _select_slider("Dropout after each conv block", "conv_dropout", DROPOUTS, slots, fmt=_percent)
        values["init"] = _selectbox("Weight initialisation", "init", INITS, slots)
        values["weight_decay"] = _select_slider("L2 weight decay", "weight_decay", DECAYS, slots, fmt=_rate)
    return ArchSpec(conv_blocks=blocks, filters=filters, kernel_size=kernel, padding=padding, pooling=pooling,
                    activation=activation, batch_norm=batch_norm, dense_units=dense_units, dropout=dropout, **values)


def training_ui(slots: Slots, classroom: bool) -> tuple[TrainSpec, int]:
    """Optimizer, learning rate (log scale), schedule, batch size, epochs, time budget; and the seed."""
    optimizer = _selectbox("Optimizer", "optimizer", OPTIMIZERS, slots)
    learning_rate = _select_slider("Learning rate", "learning_rate", LEARNING_RATES, slots, fmt=_rate,
                                   help="Log scale: each stop is about 2-3 times the previous one.")
    batch_size = _select_slider("Batch size", "batch_size", BATCH_SIZES, slots)
    epochs = _select_slider("Epochs", "epochs", EPOCHS, slots)
    schedule, budget = _value("schedule"), _value("time_budget")
    if not classroom:
        schedule = _selectbox("Learning-rate schedule", "schedule", SCHEDULES, slots)
        budget = st.number_input("Time budget (seconds, 0 = none)", 0.0, 24 * 3600.0, step=10.0, key=key("time_budget"))
        slots.add("time_budget")
    seed = st.number_input("Seed", 0, 2**31 - 1, step=1, key=key("seed"),
                           help="Seeds sampling, initial weights, shuffling and augmentation: same seed, same run.")
    slots.add("seed")
    return TrainSpec(optimizer=optimizer, learning_rate=learning_rate, schedule=schedule, batch_size=batch_size,
                     epochs=int(epochs), time_budget=float(budget)), int(seed)


def sidebar_ui(classroom: bool) -> tuple[ExperimentSpec, Slots, list[Problem]]:
    """Every control, grouped in sidebar expanders; returns the spec they describe.

    Returns:
        (spec, slots, parse_problems): the slots take the problems of `spec.check`.
    """
    slots = Slots()
    problems: list[Problem] = []
    seed_widgets(current_spec())
    with st.sidebar:
        preset = preset_ui(slots)
        with st.expander("Data", expanded=True):
            data = data_ui(slots, classroom)
        with st.expander("Preprocessing & augmentation", expanded=False):
            preprocess = preprocess_ui(slots, classroom)
        with st.expander("Architecture", expanded=True):
            arch = architecture_ui(slots, classroom, problems)
        with st.expander("Training", expanded=True):
            train, seed = training_ui(slots, classroom)
    spec = ExperimentSpec(data=data, preprocess=preprocess, arch=arch, train=train, seed=seed, preset=preset)
    st.session_state[SPEC_KEY] = spec
    return spec, slots, problems
