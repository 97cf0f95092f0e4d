"""The Playground's living network: the diagram, its + and − buttons, the decision picture, the weights, one map closer.

    setting = NetworkSetting(spec, input_shape, num_classes, buildable, probe, class_names, active, run_id)
    shown = network_section(progress, setting)   # in the live fragment: replay slider, diagram, edit buttons
    views_panel(progress, setting, shown)        # the decision picture, the weights over time, or one map closer

Where the diagram comes from: while a job trains, its newest Network event;
after training, the epoch the replay slider picks (the finished model redraws
the last epoch when another probe image is picked); before training, or once
the settings changed the network, the untrained network of the settings (the
session's model from `model_source.untrained_model`, seeded as training will
be). The pictures are composed on the server (`network_diagram`) and cached
as PNG bytes in the session, so a refresh that changes nothing sends the same
image again.

Edits go through the spec's edit helpers and `controls.replace_spec`, so the
sidebar, the URL, the layer table and the estimate follow; an edit that would
make the network impossible is explained and not made. They are disabled
while a run is in progress.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import streamlit as st
from PIL import Image

from playground.analysis import figures
from playground.spec.experiment import ExperimentSpec, SpecError, with_block_filters, with_blocks, with_dense_units
from playground.spec.fields import FIELDS
from playground.spec.validation import check
from playground.training import events
from playground.training.progress import RunProgress
from playground.ui import controls
from playground.ui.flash import flash, show_flash
from playground.ui.network_diagram import (
    draw_filter, draw_mosaic, draw_network, enlarge_map, mosaic_tiles, network_layout,
)
from playground.ui.plain_text import escape_markdown

DIAGRAM_WIDTH = 1000  # pixels the diagram spreads to (about the page's width): it is shown stretched to the page
EDIT_FLASH = "pg_net"  # the flash slot of the edit buttons' messages (see ui.flash)
EDITED_KEY = "pg_net_edited"  # an edit button changed the spec: the whole page must follow
REPLAY_KEY = "pg_replay"
VIEW_KEY = "pg_view"
CLOSER_BLOCK_KEY = "pg_closer_block"
CLOSER_MAP_KEY = "pg_closer_map"
VIEWS = {"decision": "Decision picture", "weights": "Weights over time", "closer": "Look closer at a map"}
_PICTURES_KEY = "pg_net_pictures"  # {slot: (key, PNG bytes)}: the last picture of each kind
_VIEWS_CACHE_KEY = "pg_net_views"  # (model, probe image, (columns, kernels)): the last computed untrained or trained views


@dataclass(frozen=True, eq=False)
class NetworkSetting:
    """What the page knows about the network it shows, from its last full run."""

    spec: ExperimentSpec  # the experiment being edited
    input_shape: tuple[int, int, int] | None  # None when the data cannot be read
    num_classes: int | None
    buildable: bool  # the spec has no problem: its untrained network can be built
    probe: events.ProbeImage | None  # the picked probe image; None when there is none to pick
    class_names: tuple[str, ...]  # from the page's data; () when it is not here
    active: bool  # a run is in progress (the edit buttons are disabled)
    run_id: str | None  # the trained run whose model the settings still describe; None = show the untrained one


@dataclass(frozen=True, eq=False)
class Shown:
    """The diagram on screen and what goes with it."""

    columns: tuple[events.Column, ...]
    label: str  # the probe image's label
    caption: str  # when the weights are from, in words
    epoch: int | None  # the finished epochs of the decision picture and filters to show; None = untrained
    kernels: dict[str, events.Kernels]  # the filters of each conv column


# ---------------------------------------------------------------------------
# Which diagram
# ---------------------------------------------------------------------------


def shown_network(p: RunProgress, setting: NetworkSetting) -> Shown | None:
    """The diagram to show now (drawing the replay slider after training); None when none can be drawn."""
    if setting.active and p.network is not None:
        position = float(p.network.epoch)
        finished = math.floor(position + 1e-9)
        caption = ("before training" if position == 0 else f"after epoch {finished}" if position.is_integer()
                   else f"live, {position:.1f} epochs trained")
        return Shown(p.network.columns, p.network_label, caption, finished, _kernels_until(p, finished))
    if not setting.active and setting.run_id and p.epoch_networks:
        epochs = sorted(p.epoch_networks)
        epoch = replay_slider(epochs)
        network, label = p.epoch_networks[epoch]
        columns = network.columns
        probe = setting.probe
        if epoch == epochs[-1] and probe is not None and not np.array_equal(probe.image, columns[0].values):
            trained = _trained_views(setting.run_id, probe)  # the finished model, for the newly picked image
            if trained is not None:
                columns, label = trained, probe.label
        caption = "before training" if epoch == 0 else f"after epoch {epoch}"
        return Shown(columns, label, caption, epoch, _kernels_until(p, epoch))
    untrained = _untrained_views(setting)
    if untrained is None:
        return None
    columns, kernels = untrained
    return Shown(columns, setting.probe.label if setting.probe else "blank image",
                 "untrained: random weights, as before training", None, kernels)


def replay_slider(epochs: list[int]) -> int:
    """After training, the epoch to show (the last one until the user moves the slider)."""
    if len(epochs) < 2:
        return epochs[-1]
    if st.session_state.get(REPLAY_KEY) not in epochs or st.session_state.get(f"{REPLAY_KEY}_options") != epochs:
        st.session_state[REPLAY_KEY] = epochs[-1]  # a new run's epochs: start from its end
    st.session_state[f"{REPLAY_KEY}_options"] = epochs
    return st.select_slider("Replay the epochs", options=epochs, key=REPLAY_KEY,
                            format_func=lambda e: "before training" if e == 0 else f"epoch {e}",
                            help="The diagram, the decision picture and the filters as they were after each epoch.")


def _kernels_until(p: RunProgress, epoch: int) -> dict[str, events.Kernels]:
    """The filters as they were after `epoch` (the latest before it when that epoch has none)."""
    known = [e for e in p.weights if e <= epoch]
    return p.weights[max(known)].kernels if known else {}


def _untrained_views(setting: NetworkSetting) -> tuple[tuple[events.Column, ...], dict[str, events.Kernels]] | None:
    """The untrained network's columns and filters for the probe image (None when it cannot be built)."""
    from playground.ui.model_source import untrained_model

    if not setting.buildable or setting.input_shape is None or setting.num_classes is None:
        return None
    try:
        model = untrained_model(setting.spec, setting.input_shape, setting.num_classes)
    except (ValueError, RuntimeError):
        return None
    image = setting.probe.image if setting.probe is not None else np.zeros(setting.input_shape, np.uint8)
    return _views(model, image)


def _trained_views(run_id: str, probe: events.ProbeImage) -> tuple[events.Column, ...] | None:
    """The saved run's columns for another probe image (its model is loaded once per session)."""
    from playground.runs.store import RunStore, RunStoreError
    from playground.ui.model_source import run_model

    try:
        record = RunStore().load(run_id)
    except RunStoreError:
        return None
    return _views(run_model(record), probe.image)[0]


def _views(model: Any, image: np.ndarray) -> tuple[tuple[events.Column, ...], dict[str, events.Kernels]]:
    """NetworkProbe views and the filters of `model` for `image`, computed once per model and image."""
    from playground.analysis.network_view import NetworkProbe, filter_kernels

    kept = st.session_state.get(_VIEWS_CACHE_KEY)
    if kept is not None and kept[0] is model and np.array_equal(kept[1], image):
        return kept[2]
    views = (NetworkProbe(model).views(image), filter_kernels(model))
    st.session_state[_VIEWS_CACHE_KEY] = (model, image, views)
    return views


# ---------------------------------------------------------------------------
# The diagram and its buttons
# ---------------------------------------------------------------------------


def network_section(p: RunProgress, setting: NetworkSetting) -> Shown | None:
    """The replay slider (after training), the diagram and its + / − buttons; returns what is shown."""
    shown = shown_network(p, setting)
    names = (p.decision_set.class_names if p.decision_set is not None else ()) or setting.class_names
    if shown is None:
        st.caption("The network diagram appears once the settings describe a network that can be built.")
        layout = None
    else:
        highlight = _closer_choice() if st.session_state.get(VIEW_KEY, "decision") == "closer" else None
        picture = _png("diagram", (shown.columns, names, shown.label, highlight),
                       lambda: draw_network(shown.columns, names, shown.label, highlight, DIAGRAM_WIDTH))
        label = escape_markdown(shown.label)
        st.image(picture, width="stretch", caption=f"The network {shown.caption} · probe image: {label}")
        layout = network_layout(shown.columns, DIAGRAM_WIDTH)
    edit_buttons(setting, layout)
    show_flash(EDIT_FLASH)
    return shown


def _png(slot: str, key: tuple, draw: Callable[[], np.ndarray]) -> bytes:
    """The PNG of `draw()`, made again only when `key` (a tuple of events, names and choices) changes."""
    pictures: dict = st.session_state.setdefault(_PICTURES_KEY, {})
    kept = pictures.get(slot)
    if kept is not None and kept[0] == key:  # events compare by identity: the same event, the same picture
        return kept[1]
    buffer = io.BytesIO()
    Image.fromarray(draw()).save(buffer, format="PNG", compress_level=1)
    pictures[slot] = (key, buffer.getvalue())
    return pictures[slot][1]


def edit_buttons(setting: NetworkSetting, layout: tuple[int, int, list[Any]] | None) -> None:
    """+ and − under each column of the diagram (equal columns when there is no diagram to follow).

    Under the input: add or remove a conv block; under a block: more or fewer filters; under a
    dense layer: more or fewer units; under the output: add or remove a dense layer.
    """
    spec = setting.spec
    if layout is not None:
        width, _, boxes = layout
        slots = [(box.kind, box.name) for box in boxes]
        # Each column of buttons spans its diagram column and the arrow after it.
        weights = [right.left - left.left for left, right in zip(boxes, boxes[1:])] + [boxes[-1].width]
    else:
        slots = ([("input", "input")] + [("conv", f"block{b + 1}") for b in range(spec.arch.conv_blocks)]
                 + [("dense", f"dense{d + 1}") for d in range(len(spec.arch.dense_units))] + [("output", "output")])
        weights = [1] * len(slots)
    disabled = setting.active
    for column, (kind, name) in zip(st.columns(weights, gap="small"), slots):
        # Under the input and the output the two buttons are stacked: their labels are words.
        less, more = (column, column) if kind in ("input", "output") else column.columns(2, gap="small")
        if kind == "input":
            _button(less, "− block", "remove_block", "Remove the last conv block.", disabled, _blocks, setting, -1)
            _button(more, "+ block", "add_block", "Add a conv block (twice the filters of the last).", disabled,
                    _blocks, setting, 1)
        elif kind == "conv":
            block = int(name.removeprefix("block")) - 1
            _button(less, "−", f"fewer_filters_{block}", f"Fewer filters in {name}.", disabled, _filters, setting, block, -1)
            _button(more, "+", f"more_filters_{block}", f"More filters in {name}.", disabled, _filters, setting, block, 1)
        elif kind == "dense":
            layer = int(name.removeprefix("dense")) - 1
            _button(less, "−", f"fewer_units_{layer}", f"Half the units in {name}.", disabled, _units, setting, layer, 0.5)
            _button(more, "+", f"more_units_{layer}", f"Twice the units in {name}.", disabled, _units, setting, layer, 2)
        else:
            _button(less, "− dense", "remove_dense", "Remove the last dense layer.", disabled, _dense_layers, setting, -1)
            _button(more, "+ dense", "add_dense", "Add a dense layer before the output.", disabled,
                    _dense_layers, setting, 1)


def _button(column: Any, label: str, key: str, help_text: str, disabled: bool, edit: Callable[..., ExperimentSpec],
            setting: NetworkSetting, *args: Any) -> None:
    column.button(label, key=f"pg_net_{key}", help=help_text if not disabled else "Not while a run is in progress.",
                  disabled=disabled, width="stretch", on_click=apply_edit, args=(setting, edit, *args))


def apply_edit(setting: NetworkSetting, edit: Callable[..., ExperimentSpec], *args: Any) -> None:
    """Callback: make `edit(spec, *args)` the edited spec, or say in one sentence why it cannot be made.

    The edit is refused when a spec helper refuses it, or when the network it gives has a problem
    (`spec.validation.check`) that the current one does not have, e.g. a block too many for the input.
    """
    spec = controls.current_spec()
    try:
        edited = edit(spec, *args)
    except SpecError as exc:
        flash(EDIT_FLASH, escape_markdown(str(exc)), "error")
        return
    before = {problem.message for problem in check(spec, setting.input_shape)}
    new = [problem for problem in check(edited, setting.input_shape) if problem.message not in before]
    if new:
        flash(EDIT_FLASH, escape_markdown(f"Not changed: {new[0].message}"), "error")
        return
    controls.replace_spec(edited)
    st.session_state[EDITED_KEY] = True


def _blocks(spec: ExperimentSpec, change: int) -> ExperimentSpec:
    return with_blocks(spec, spec.arch.conv_blocks + change)


def _filters(spec: ExperimentSpec, block: int, direction: int) -> ExperimentSpec:
    """The next filter count of the sliders' stops up or down (doubled or halved past them)."""
    count = spec.arch.filters[block] if block < len(spec.arch.filters) else 0
    stops = FIELDS["filters"].stops
    if direction > 0:
        wanted = next((s for s in stops if s > count), count * 2)
    else:
        wanted = next((s for s in reversed(stops) if s < count), count // 2)
    return with_block_filters(spec, block, wanted)


def _units(spec: ExperimentSpec, layer: int, factor: float) -> ExperimentSpec:
    units = list(spec.arch.dense_units)
    if layer >= len(units):
        raise SpecError(f"The network has {len(units)} dense layer(s), so there is no dense{layer + 1}.", "dense_units")
    units[layer] = int(units[layer] * factor)
    return with_dense_units(spec, tuple(units))


def _dense_layers(spec: ExperimentSpec, change: int) -> ExperimentSpec:
    units = spec.arch.dense_units
    if change < 0:
        if not units:
            raise SpecError("The network has no dense layer to remove.", "dense_units")
        return with_dense_units(spec, units[:-1])
    return with_dense_units(spec, units + (units[-1] if units else 128,))


def follow_edit() -> bool:
    """True (once) after an edit button changed the spec: the caller reruns the whole page."""
    return bool(st.session_state.pop(EDITED_KEY, False))


# ---------------------------------------------------------------------------
# Under the curves: the decision picture, the weights, one map closer
# ---------------------------------------------------------------------------


def views_panel(p: RunProgress, setting: NetworkSetting, shown: Shown | None) -> None:
    """A choice of one of three views, drawn alone (each costs the browser a chart or two per refresh)."""
    view = st.segmented_control("Look at", list(VIEWS), format_func=VIEWS.get, default="decision", required=True,
                                key=VIEW_KEY, label_visibility="collapsed")
    names = (p.decision_set.class_names if p.decision_set is not None else ()) or setting.class_names
    epoch = shown.epoch if shown is not None else None
    # Under the untrained network of new settings, the last model's pictures are not its own.
    own = p if epoch is not None or setting.active else RunProgress()
    if view == "weights":
        weights_view(own, epoch)
    elif view == "closer":
        closer_view(own, setting, shown)
    else:
        decision_view(own, epoch, names)


def decision_view(p: RunProgress, epoch: int | None, class_names: tuple[str, ...]) -> None:
    """The mosaic of the decision set, framed by right and wrong, and its projection with fixed axes."""
    chosen = p.decision_set
    if chosen is None:
        st.caption("The decision picture appears when training starts: about 100 validation images, a few of each "
                   "class, framed green when the network gets them right and red when not, and where the network "
                   "puts them, class by class.")
        return
    known = [e for e in p.decisions if epoch is None or e <= epoch]
    decision = p.decisions[max(known)] if known else None
    tiles = _png_tiles(chosen)
    picture = _png("mosaic", (chosen, decision), lambda: draw_mosaic(tiles, decision.correct if decision else None))
    left, right = st.columns(2, gap="medium")
    if decision is None:
        left.image(picture, caption="The decision set, before the first prediction.")
        return
    right_count, total = int(decision.correct.sum()), len(decision.correct)
    when = "before training" if decision.epoch == 0 else f"after epoch {decision.epoch}"
    left.image(picture, caption=f"{right_count} of {total} right {when} (green: right, red: wrong)")
    bound = max(3.0, math.ceil(2 * max(float(np.abs(d.points.astype(np.float32)).max()) for d in p.decisions.values())) / 2)
    right.plotly_chart(
        figures.decision_projection(decision.points, chosen.labels, decision.correct, class_names, bound=bound),
        key="pg_projection", config={"displayModeBar": False})
    right.caption("Their penultimate features in 2-D (dot: right, cross: wrong), on the same axes every epoch.")


def _png_tiles(chosen: events.DecisionSet) -> np.ndarray:
    """The decision set's tiles, made once per set."""
    kept = st.session_state.get("pg_net_tiles")
    if kept is None or kept[0] is not chosen:
        kept = (chosen, mosaic_tiles(chosen.images))
        st.session_state["pg_net_tiles"] = kept
    return kept[1]


def weights_view(p: RunProgress, epoch: int | None) -> None:
    """Each layer's weight histogram after each epoch of this run's bins, as small heatmaps."""
    if not p.weights:
        st.caption("The weights over time appear when training starts: for each layer, how its weights spread "
                   "out after every epoch.")
        return
    latest = p.weights[max(p.weights)]
    epochs = [e for e in sorted(p.weights)
              if all(name in p.weights[e].edges and np.array_equal(p.weights[e].edges[name], edges)
                     for name, edges in latest.edges.items())]  # a continued model has bins of its own
    counts = {name: np.stack([p.weights[e].counts[name] for e in epochs]) for name in latest.counts}
    st.plotly_chart(figures.weight_heatmaps(epochs, counts, latest.edges, marked=epoch), key="pg_weights",
                    config={"displayModeBar": False})
    st.caption("Across: the weight's value; up: the epoch; brighter: more of the layer's weights there.")


def _closer_choice() -> tuple[str, int] | None:
    block, index = st.session_state.get(CLOSER_BLOCK_KEY), st.session_state.get(CLOSER_MAP_KEY)
    return (block, int(index)) if block is not None and index is not None else None


def closer_view(p: RunProgress, setting: NetworkSetting, shown: Shown | None) -> None:
    """One feature map larger, its filter, its statistics and its history over the epochs so far."""
    convs = [c for c in shown.columns if c.kind == "conv"] if shown is not None else []
    if not convs:
        st.caption("This network has no conv block to look into.")
        return
    names = [c.name for c in convs]
    if st.session_state.get(CLOSER_BLOCK_KEY) not in names:
        st.session_state[CLOSER_BLOCK_KEY] = names[0]
    pick_block, pick_map = st.columns(2)
    name = pick_block.selectbox("Block", names, key=CLOSER_BLOCK_KEY)
    column = convs[names.index(name)]
    if st.session_state.get(CLOSER_MAP_KEY) not in column.shown:
        st.session_state[CLOSER_MAP_KEY] = column.shown[0]
    index = pick_map.selectbox("Feature map", column.shown, key=CLOSER_MAP_KEY,
                               format_func=lambda i: f"map {i + 1} of {column.total}")
    position = column.shown.index(index)
    mean, peak, zeros = (float(v) for v in column.stats[position])
    larger, kernel, numbers = st.columns([2, 2, 3], gap="medium")
    larger.image(enlarge_map(column.values[position]), caption=f"{name}, map {index + 1}: brighter is stronger "
                 "(on the block's own scale)")
    kernels = shown.kernels.get(name)
    if kernels is not None:
        weights = kernels.weights[position].astype(np.float32)  # (n_in, k, k)
        k = weights.shape[-1]
        if kernels.layer == "block1_conv1":
            kernel.image(draw_filter(weights, as_image=True), caption=f"Its {k}x{k} filter on the image (stretched "
                         "to its own range)")
        else:
            kernel.image(draw_filter(weights, as_image=False), caption=(
                f"Its {k}x{k} weights over {len(kernels.inputs)} of the {kernels.total_inputs} maps it reads "
                f"(from {kernels.layer}; blue negative, red positive)"))
    metrics = numbers.columns(3)
    metrics[0].metric("Mean", f"{mean:.3g}")
    metrics[1].metric("Max", f"{peak:.3g}")
    metrics[2].metric("Zeros", f"{zeros:.0%}")
    epochs, history = p.map_history(name, index) if shown.epoch is not None else ([], np.zeros((0, 3)))
    if setting.spec.arch.activation == "relu" and zeros >= 1.0 and bool(np.all(history[:, 2] >= 1.0)):
        numbers.warning("A dead ReLU for this image: the map is zero everywhere"
                        + (", and has been after every epoch so far." if len(epochs) else "."), icon=":material/block:")
    if len(epochs):
        numbers.plotly_chart(figures.map_history_figure(epochs, history), key="pg_closer_history",
                             config={"displayModeBar": False})
    else:
        numbers.caption("Its history over the epochs appears as it trains.")
