"""The probe image of the Playground's network diagram: a test image by number or at random, one of a class, or yours.

    probe = probe_picker(spec, input_shape)   # an events.ProbeImage, or None when there is no image to pick from

The test images come from the spec's dataset, loaded once per browser session
and data (a named dataset only when it is already on this server: the page
never downloads). Your picture is prepared as the Predict page prepares one
(`data.prepare.prepare_for_model` with `analysis.predict.prepare_options_for`).
The chosen ProbeImage is kept in the session and stays the same object while
the choice does not change, so the page sends it to a running job only once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from playground.data.catalog import data_key, is_named_dataset
from playground.spec.experiment import ExperimentSpec
from playground.training.events import ProbeImage
from playground.ui import uploads
from playground.ui.plain_text import escape_markdown

MODES = {"index": "Test image", "class": "One of a class", "upload": "Your picture"}
MODE_KEY = "pg_probe_mode"
INDEX_KEY = "pg_probe_index"
CLASS_KEY = "pg_probe_class"
UPLOAD_KEY = "pg_probe_upload"
_SOURCE_KEY = "pg_probe_source"  # (data key, ProbeSource) of this session
_CHOSEN_KEY = "pg_probe_chosen"  # (choice, ProbeImage): the probe as last resolved


@dataclass(frozen=True, eq=False)
class ProbeSource:
    """The test images a probe is picked from."""

    images: np.ndarray  # uint8 (n, H, W, C), the dataset's test images (shared, read-only)
    labels: np.ndarray  # int (n,)
    class_names: tuple[str, ...]


def probe_source(spec: ExperimentSpec) -> ProbeSource | None:
    """The test images of `spec`'s dataset, loaded once per session and data; None when they are not here."""
    from playground.data import datasets

    key = data_key(spec)
    kept = st.session_state.get(_SOURCE_KEY)
    if kept is not None and kept[0] == key:
        return kept[1]
    name = spec.data.dataset
    if is_named_dataset(name) and not any(s.name == name and s.available_locally for s in datasets.dataset_status()):
        return None  # it would be downloaded: the job does that, not the page
    try:
        dataset = datasets.load_for_spec(spec)
    except datasets.DatasetError:
        return None  # the page says why elsewhere
    source = ProbeSource(dataset.x_test, dataset.y_test, tuple(dataset.class_names))
    st.session_state[_SOURCE_KEY] = (key, source)
    return source


def _random_index(count: int) -> None:
    st.session_state[INDEX_KEY] = random.randrange(count)


def probe_picker(spec: ExperimentSpec, input_shape: tuple[int, int, int] | None) -> ProbeImage | None:
    """The probe image controls; returns the chosen image, the model's input size.

    Args:
        spec: the experiment being edited (its dataset gives the test images).
        input_shape: (H, W, C) of the model's input; None when the data cannot be read.

    Returns:
        The ProbeImage, or None when there is nothing to pick from (the dataset is not here).
    """
    source = probe_source(spec) if input_shape is not None else None
    if source is None or not len(source.images) or tuple(source.images.shape[1:]) != tuple(input_shape):
        st.caption("The probe image can be picked once the dataset is on this server.")
        return None
    count = len(source.images)
    modes, choice = st.columns([2, 3], vertical_alignment="bottom")
    mode = modes.segmented_control("Probe image", list(MODES), format_func=MODES.get, default="index", required=True,
                                   key=MODE_KEY, help="The image the network diagram shows going through the network.")
    if mode == "class":
        present = [k for k in range(len(source.class_names)) if np.any(source.labels == k)]
        chosen = choice.selectbox("Class", present, format_func=lambda k: source.class_names[k], key=CLASS_KEY)
        index = int(np.flatnonzero(source.labels == chosen)[0])
        return _remember(("index", data_key(spec), index), lambda: _test_probe(source, index))
    if mode == "upload":
        with choice:
            upload = uploads.file_uploader(uploads.IMAGE, key=UPLOAD_KEY, help="It is prepared as the Predict page "
                                           "prepares a picture: made to look like the training images.")
        if upload is not None:
            return _remember(("upload", data_key(spec), upload.file_id),
                             lambda: _uploaded_probe(upload.getvalue(), upload.name, spec, input_shape))
        return _remember(("index", data_key(spec), 0), lambda: _test_probe(source, 0))
    if st.session_state.get(INDEX_KEY, 0) >= count:
        st.session_state[INDEX_KEY] = 0
    number, shuffle = choice.columns([3, 1], vertical_alignment="bottom")
    index = number.number_input("Test image number", 0, count - 1, step=1, key=INDEX_KEY)
    shuffle.button("Random", key="pg_probe_random", icon=":material/casino:", on_click=_random_index, args=(count,),
                   width="stretch", help="A test image drawn at random.")
    return _remember(("index", data_key(spec), int(index)), lambda: _test_probe(source, int(index)))


def _remember(choice: tuple[Any, ...], make: Any) -> ProbeImage:
    """The ProbeImage of `choice`: the one kept for it, or `make()` kept from now on."""
    kept = st.session_state.get(_CHOSEN_KEY)
    if kept is not None and kept[0] == choice:
        return kept[1]
    probe = make()
    st.session_state[_CHOSEN_KEY] = (choice, probe)
    return probe


def _test_probe(source: ProbeSource, index: int) -> ProbeImage:
    label = int(source.labels[index])
    name = source.class_names[label] if label < len(source.class_names) else f"class {label}"
    return ProbeImage(image=np.asarray(source.images[index], np.uint8), label=f"{name} (test image {index})")


def _uploaded_probe(data: bytes, name: str, spec: ExperimentSpec, input_shape: tuple[int, int, int]) -> ProbeImage:
    """Your picture as the network takes it; a picture that cannot be read says why and gives a blank image."""
    from playground.analysis.predict import prepare_options_for
    from playground.data.images import ImageError, decode_image
    from playground.data.prepare import prepare_for_model

    try:
        pixels = decode_image(data, name=name, size_hint=tuple(input_shape[:2]))
    except ImageError as exc:
        st.error(escape_markdown(str(exc)), icon=":material/broken_image:")
        return ProbeImage(image=np.zeros(input_shape, np.uint8), label="blank (your picture could not be read)")
    prepared = prepare_for_model(pixels, tuple(input_shape), **prepare_options_for(spec.data.dataset))
    return ProbeImage(image=np.rint(np.clip(prepared.array, 0, 255)).astype(np.uint8), label="your picture")
