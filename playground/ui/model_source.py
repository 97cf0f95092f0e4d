"""Which network the Architecture, Activations and Preprocessing pages look at.

Either a saved run (trained; picked with `run_picker.pick_run`, this
session's latest first) or the experiment being edited on the Playground,
untrained. The Playground keeps that experiment in `st.session_state`
(`controls.SPEC_KEY`); a link that carries spec fields (e.g.
`/Architecture?preset=lenet5`) takes precedence, read as the Playground reads
its own URL.

A link may carry any values: an impossible network is reported in one
sentence (`Network.problem`) before anything is built, and the link's values
and run names are shown as plain text.

Models are kept per browser session, never in a server-wide cache: one
loaded run (keyed by run id and the weights file's modification time) and
one untrained model (keyed by its spec). Building them takes
`network.BUILD_LOCK` inside the library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from playground.data.dataset import Dataset, DatasetError
from playground.runs.compare import accuracy_text
from playground.runs.record import RunRecord
from playground.settings import get_settings
from playground.spec.experiment import ExperimentSpec, field_names
from playground.spec.url import read_url
from playground.spec.validation import check
from playground.ui import controls
from playground.ui.plain_text import escape_markdown
from playground.ui.run_picker import pick_run
from playground.ui.session import visible_runs

if TYPE_CHECKING:  # Keras is imported only when a model is needed
    import keras

SOURCES = {"run": "A saved run", "playground": "The Playground's settings (untrained)"}
_RUN_MODEL_KEY = "inspect_run_model"  # (run_id, weights mtime, model)
_UNTRAINED_MODEL_KEY = "inspect_untrained_model"  # (spec_id, model)


@dataclass(frozen=True)
class Network:
    """The network a page shows, trained or not.

    Attributes:
        spec: its experiment.
        input_shape: (H, W, C), or None when the data cannot be read (see `data_error`).
        num_classes: number of classes, or None with `data_error`.
        record: the saved run; None for the untrained Playground settings.
        data_error: why the input shape is unknown, in one sentence; "" otherwise.
        problem: why the network cannot be built (e.g. a link's impossible
            settings), in one sentence; "" when it can.
    """

    spec: ExperimentSpec
    input_shape: tuple[int, int, int] | None
    num_classes: int | None
    record: RunRecord | None
    data_error: str = ""
    problem: str = ""

    @property
    def trained(self) -> bool:
        """True for a saved run."""
        return self.record is not None


def playground_spec() -> tuple[ExperimentSpec, tuple[str, ...]]:
    """The Playground's current experiment: from the link when it names spec fields, else the edited one.

    Returns:
        (spec, messages about link values that could not be used).
    """
    params = st.query_params.to_dict()
    if any(name in params for name in field_names()):
        url = read_url(params, uploads_dir=get_settings().uploads_dir)
        return url.spec, url.messages
    spec = st.session_state.get(controls.SPEC_KEY)
    return (spec if isinstance(spec, ExperimentSpec) else ExperimentSpec()), ()


def choose_network(key: str, *, label: str = "Look at") -> Network | None:
    """A choice between a saved run and the Playground's untrained settings.

    Args:
        key: prefix of the widget keys (unique per page).
        label: the label of the choice.

    Returns:
        The Network, or None when "a saved run" is chosen and there is none
        (the run picker then says so).
    """
    default = 0 if visible_runs() else 1
    source = st.radio(label, list(SOURCES), index=default, format_func=SOURCES.get, horizontal=True, key=f"{key}_source")
    if source == "run":
        record = pick_run(f"{key}_run")
        if record is None:
            return None
        return Network(record.spec, tuple(record.input_shape), record.num_classes, record)
    spec, messages = playground_spec()
    if messages:  # they quote the link's values: plain text
        st.warning("Some settings in the link could not be used:\n\n" + "\n".join(f"- {escape_markdown(m)}" for m in messages))
    from playground.ui.playground_page import data_shape

    input_shape, num_classes, error = data_shape(spec)
    problems = check(spec, input_shape) if input_shape is not None else []
    return Network(spec, input_shape, num_classes, None, error, problems[0].message if problems else "")


def describe(network: Network) -> None:
    """One line saying what is shown: a trained run with its accuracy, or clearly an untrained network."""
    if network.trained:
        record = network.record
        epochs = record.metrics.get("epochs_completed")
        facts = [accuracy_text(record), f"{epochs} epoch(s)" if epochs and not record.imported else ""]
        st.success(
            f"{'Imported' if record.imported else 'Trained'} run **{escape_markdown(record.name or record.run_id)}** on "
            f"{escape_markdown(record.dataset or network.spec.data.dataset)}: {', '.join(f for f in facts if f)}.",
            icon=":material/check_circle:",
        )
    else:
        st.warning(
            f"**Untrained network** from the Playground's settings ({network.spec.preset} on "
            f"{escape_markdown(network.spec.data.dataset)}): its weights are random, as before training. "
            "Train it on the Playground, then pick the run here.",
            icon=":material/science:",
        )


def run_model(record: RunRecord) -> keras.Model:
    """The trained Keras model of a run, loaded once per session (reloaded when its weights change).

    A run whose weights cannot be loaded is reported and the page stops there.
    """
    from playground.runs.store import RunStore, RunStoreError

    weights = record.path / "model.weights.h5"
    stamp = weights.stat().st_mtime if weights.exists() else 0.0
    cached = st.session_state.get(_RUN_MODEL_KEY)
    if cached is not None and cached[:2] == (record.run_id, stamp):
        return cached[2]
    try:
        with st.spinner("Loading the trained model…"):
            model = RunStore().load_model(record.run_id)
    except RunStoreError as exc:
        st.error(str(exc), icon=":material/broken_image:")
        st.stop()
    st.session_state[_RUN_MODEL_KEY] = (record.run_id, stamp, model)
    return model


def untrained_model(spec: ExperimentSpec, input_shape: tuple[int, int, int], num_classes: int,
                    x_sample: np.ndarray | None = None) -> keras.Model:
    """The model of `spec` with its seeded initial weights, built once per session and spec."""
    from playground.model.network import build_model

    cached = st.session_state.get(_UNTRAINED_MODEL_KEY)
    cache_key = (spec.spec_id(), tuple(input_shape), num_classes)
    if cached is not None and cached[0] == cache_key:
        return cached[1]
    with st.spinner("Building the network…"):
        model = build_model(spec, input_shape, num_classes, x_sample=x_sample)
    st.session_state[_UNTRAINED_MODEL_KEY] = (cache_key, model)
    return model


def network_model(network: Network, x_sample: np.ndarray | None = None) -> keras.Model:
    """The Keras model of `network`: the run's trained one, or the spec's untrained one."""
    if network.trained:
        return run_model(network.record)
    return untrained_model(network.spec, network.input_shape, network.num_classes, x_sample)


def load_data(spec: ExperimentSpec) -> Dataset | None:
    """The dataset of `spec` (cached per process), or None after showing why it cannot be had."""
    from playground.data import datasets

    try:
        with st.spinner("Loading the dataset…"):
            return datasets.load_for_spec(spec)
    except DatasetError as exc:
        st.error(str(exc), icon=":material/cloud_off:")
        return None
