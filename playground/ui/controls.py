"""The Playground's controls: one small `*_ui()` function per group, each returning plain values.

The experiment being edited lives in `st.session_state["pg_spec"]` (set once
from the URL behind a guard). Every widget has a key `pg_<field>` seeded from
that spec when missing, so a control hidden in classroom mode, or a page
visited in between, never loses its value. A preset or a "switch dataset"
button rewrites the spec and reseeds the widgets.

Each control is built from its row of the settings table
(`playground.spec.fields.FIELDS`): its label, bounds or slider stops, format,
help text, and whether classroom mode hides it; this module only orders them.
Problems found by `spec.check` are written next to the control they belong
to, through a placeholder each widget leaves behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import streamlit as st

from playground.data.catalog import CATALOG
from playground.data.dataset import DatasetError
from playground.spec.experiment import (
    ArchSpec, DataSpec, ExperimentSpec, PreprocessSpec, TrainSpec, field_names, get_value, with_blocks,
)
from playground.spec.fields import FIELDS, MAX_CONV_BLOCKS, NUMBER, SELECT, SELECT_SLIDER, SLIDER, TOGGLE
from playground.spec.presets import PRESETS, apply_preset
from playground.spec.validation import Problem
from playground.ui import uploads
from playground.ui.flash import flash
from playground.ui.session import session_id

SPEC_KEY = "pg_spec"  # the spec being edited (an ExperimentSpec)
CLASSROOM_KEY = "pg_classroom"  # hide advanced controls

# The order of the controls in each sidebar group (labels, stops and the rest: spec.fields.FIELDS).
DATA_CONTROLS = ("sample_size", "validation_split")  # after the dataset; then the upload and the shapes noise
PREPROCESS_CONTROLS = ("normalization", "flip", "test_time_augmentation", "rotation", "shift", "crop_padding", "brightness", "contrast")
# Architecture: the block count and the filters come first, the dense layers' text box in between.
ARCH_CONTROLS_BEFORE_DENSE = ("kernel_size", "padding", "pooling", "activation", "batch_norm")
ARCH_CONTROLS_AFTER_DENSE = ("dropout", "convs_per_block", "pool_first", "stride", "residual", "global_pool", "global_pool_kind",
                             "patch_whitening", "conv_dropout", "logit_scale", "init", "weight_decay")
TRAIN_CONTROLS = ("optimizer", "learning_rate", "batch_size", "epochs", "schedule", "label_smoothing",
                  "weight_averaging", "time_budget")  # then the seed


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
    values = {key(name): get_value(spec, name) for name in field_names() if name != "filters"}
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
    # The block-count slider moved: one filter count per block, the sliders' own values first.
    for block, count in enumerate(_filters_for(st.session_state[key("conv_blocks")], len(current_spec().arch.filters))):
        st.session_state[filter_key(block)] = count


def _filters_for(blocks: int, shown: int) -> tuple[int, ...]:
    """Filter counts for `blocks` blocks: those of the first `shown` block sliders (up to the first
    one never drawn), truncated or extended by `with_blocks`."""
    held = []
    for block in range(shown):
        if filter_key(block) not in st.session_state:
            break
        held.append(st.session_state[filter_key(block)])
    spec = current_spec()
    return with_blocks(spec.with_values(filters=tuple(held) or spec.arch.filters[:1]), blocks).arch.filters


def _on_upload() -> None:
    # The upload is checked and kept as one of this session's datasets (under the uploads
    # folder, the only place a browser may name); then the Playground trains on it.
    upload = st.session_state.get("pg_upload")
    if upload is None:
        return
    try:
        path = uploads.import_dataset(upload.getvalue(), upload.name)
    except DatasetError as exc:
        flash("pg", str(exc), "error")
        return
    switch_dataset(str(Path(path).resolve()))


def switch_dataset(name: str) -> None:
    """Callback: train on dataset `name` instead (e.g. a built-in one when a download fails)."""
    spec = current_spec()
    replace_spec(replace(spec, data=replace(spec.data, dataset=name)))


# ----------------------------------------------------------------- widgets


def _percent(value: float) -> str:
    return f"{value:.0%}" if value * 100 == int(value * 100) else f"{value:.1%}"


# The settings table's format names -> how a control shows a value.
FORMATS: dict[str, Callable[[Any], str]] = {
    "": str,
    "count": lambda n: "all" if n == 0 else f"{n:,}",
    "percent": _percent,
    "plus_minus_percent": lambda v: f"±{_percent(v)}",
    "degrees": lambda v: f"±{v:g}°",
    "number": lambda v: f"{v:g}",
}


def control(name: str, slots: Slots, *, choices: dict[str, str] | None = None,
            on_change: Callable[[], None] | None = None) -> Any:
    """The control of flat field `name`, built from its row in the settings table, under key `pg_<name>`.

    Args:
        name: a flat field name in `FIELDS`.
        slots: where the control's problems will be written (a placeholder is added after it).
        choices: a select box's {value: label} when not fixed in the table (datasets, presets).
        on_change: a callback for a control that rewrites others (the preset, the block count).

    Returns:
        The control's value (for a text box, its text).
    """
    info = FIELDS[name]
    if info.widget == SELECT_SLIDER:
        value = st.select_slider(info.label, options=_with_current(info.stops, _value(name)),
                                 format_func=FORMATS[info.fmt], key=key(name), help=info.help, on_change=on_change)
    elif info.widget == SLIDER:
        value = st.slider(info.label, info.lo, info.hi, key=key(name), help=info.help, on_change=on_change)
    elif info.widget == NUMBER:
        value = st.number_input(info.label, info.lo, info.hi, step=info.step, key=key(name), help=info.help,
                                on_change=on_change)
    elif info.widget == TOGGLE:
        value = st.toggle(info.label, key=key(name), help=info.help, on_change=on_change)
    elif info.widget == SELECT:
        labels = choices or info.choices
        if _value(name) not in labels:
            st.session_state[key(name)] = next(iter(labels))
        value = st.selectbox(info.label, list(labels), format_func=lambda v: labels.get(v, v), key=key(name),
                             help=info.help, on_change=on_change)
    else:
        value = st.text_input(info.label, key=key(name), help=info.help, on_change=on_change)
    slots.add(name)
    return value


def _controls(names: Sequence[str], slots: Slots, classroom: bool) -> dict[str, Any]:
    # {name: value} for `names`, drawn in order; an advanced one in classroom mode keeps its value unseen.
    return {name: _value(name) if classroom and FIELDS[name].advanced else control(name, slots) for name in names}


def preset_ui(slots: Slots) -> str:
    """The preset picker; choosing one rewrites architecture, preprocessing and training."""
    name = control("preset", slots, choices={n: preset.title for n, preset in PRESETS.items()}, on_change=_on_preset)
    st.caption(PRESETS[name].description)
    return name


def dataset_choices() -> dict[str, str]:
    """Named datasets plus the uploads this session may use (its own only, with private runs), as {value: label}."""
    from playground.data.uploads import list_uploads

    choices = {name: facts.title for name, facts in CATALOG.items()}
    for upload in list_uploads(session_id()):
        choices[str(upload.path)] = f"{upload.path.name} (uploaded)"
    current = _value("dataset")
    if current not in choices:
        choices[current] = f"{Path(current).name} (uploaded)"
    return choices


def data_ui(slots: Slots, classroom: bool) -> DataSpec:
    """Dataset, sample size, validation split and (for shapes) the noise level."""
    dataset = control("dataset", slots, choices=dataset_choices())
    values = _controls(DATA_CONTROLS, slots, classroom)
    uploads.file_uploader(uploads.DATASET, key="pg_upload", on_change=_on_upload, help=uploads.DATASET_HELP)
    noise = control("shapes_noise", slots) if dataset == "shapes" else _value("shapes_noise")
    return DataSpec(dataset=dataset, shapes_noise=noise, **values)


def preprocess_ui(slots: Slots, classroom: bool) -> PreprocessSpec:
    """Input scaling and random augmentation (training only)."""
    return PreprocessSpec(**_controls(PREPROCESS_CONTROLS, slots, classroom))


def filters_ui(blocks: int, slots: Slots) -> tuple[int, ...]:
    """One filter-count slider per conv block."""
    info = FIELDS["filters"]
    # A block whose slider was never drawn starts from the rule of `with_blocks`.
    for block, count in enumerate(_filters_for(blocks, blocks)):
        if filter_key(block) not in st.session_state:
            st.session_state[filter_key(block)] = count
    filters = tuple(
        st.select_slider(f"{info.label} {block + 1}", options=_with_current(info.stops, st.session_state[filter_key(block)]),
                         key=filter_key(block))
        for block in range(blocks)
    )
    slots.add("filters")
    return filters


def _dense_units(slots: Slots, problems: list[Problem]) -> tuple[int, ...]:
    text = control("dense_units", slots)
    try:
        return tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        problems.append(Problem("dense_units", f"Dense layers must be whole numbers separated by commas. Received: {text!r}"))
        return current_spec().arch.dense_units


def architecture_ui(slots: Slots, classroom: bool, problems: list[Problem]) -> ArchSpec:
    """Conv blocks, filters, kernel, padding, pooling, activation, batch norm, the head, dropout and the advanced rest."""
    blocks = control("conv_blocks", slots, on_change=_on_blocks)
    filters = filters_ui(blocks, slots)
    values = _controls(ARCH_CONTROLS_BEFORE_DENSE, slots, classroom)
    dense_units = _dense_units(slots, problems)
    values.update(_controls(ARCH_CONTROLS_AFTER_DENSE, slots, classroom))
    return ArchSpec(filters=filters, dense_units=dense_units, **values)


def training_ui(slots: Slots, classroom: bool) -> tuple[TrainSpec, int]:
    """Optimizer, learning rate (log scale), batch size, epochs, schedule, time budget; and the seed."""
    values = _controls(TRAIN_CONTROLS, slots, classroom)
    seed = control("seed", slots)
    train = TrainSpec(**{**values, "epochs": int(values["epochs"]), "time_budget": float(values["time_budget"])})
    return train, int(seed)


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
