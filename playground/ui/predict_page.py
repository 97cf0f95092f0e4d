"""The Predict page: your own images through a trained network, plus model export and bundle import.

Inputs: uploaded files (one or many, any type: our decoder explains the ones
it cannot read), a camera photo, or a digit drawn on a canvas. For each image:
the predicted class, the probabilities, the image as the network sees it and
a Grad-CAM overlay.

Model cache: one `Predictor` per browser session and run, in
`st.session_state`, keyed by run id and the weights file's modification time
(a retrained or re-imported run is reloaded). A loaded model is only read, so
sharing it across sessions would be safe too; per-session keeps a deleted run
from lingering in a server-wide cache and frees the memory when the session
ends, at the cost of one load (about a second) per session and run.

Run and class names may come from other sessions or from a bundle: they are
shown as plain text, and an imported run's accuracy as its bundle's claim.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable

import numpy as np
import streamlit as st

from playground.analysis.predict import (
    PredictError,
    Prediction,
    PredictionFailure,
    Predictor,
)
from playground.data.prepare import INVERT_CHOICES
from playground.model.network import export_keras_code
from playground.runs import bundle
from playground.runs.compare import accuracy_text
from playground.runs.record import RunRecord
from playground.spec.fields import TEST_TIME_AUGMENTATIONS
from playground.ui import uploads
from playground.ui.flash import notice
from playground.ui.plain_text import escape_markdown
from playground.ui.prediction_view import Shown, explain, show_results
from playground.ui.run_picker import pick_run
from playground.ui.session import session_id

MAX_FILES = 50  # images predicted per upload
_CACHE_KEY = "predict_predictors"
_RUN_PICKER_KEY = "predict_run"
_IMPORT_KEY = "import_bundle"  # the bundle uploader
_IMPORTED_KEY = "imported_bundles"  # {file id: (kind, message)}: each uploaded bundle is imported once
_INVERT_LABELS = {"auto": "Auto", "always": "Always", "never": "Never"}


def get_predictor(run: RunRecord) -> Predictor:
    """This session's predictor for `run`, loaded once (see the module docstring)."""
    weights = run.path / bundle.WEIGHTS_FILE
    key = (run.run_id, weights.stat().st_mtime_ns if weights.exists() else 0)
    cache: dict = st.session_state.setdefault(_CACHE_KEY, {})
    if key not in cache:
        with st.spinner(f"Loading the model of {escape_markdown(run.name)}..."):
            predictor = Predictor.from_run(run.run_id)
        # Keep only the newest couple of models per session.
        for old in list(cache)[:-1]:
            del cache[old]
        cache[key] = predictor
    return cache[key]


def upload_tab(predictor: Predictor, invert: str) -> None:
    """Predict uploaded pictures, up to MAX_FILES at once; a file that cannot be read gets one line."""
    files = uploads.file_uploader(uploads.IMAGES, key="predict_files", accept_multiple_files=True)
    if not files:
        st.caption("Drop photos or scans here. Each file is checked on its own: a broken one never stops the others.")
        return
    if len(files) > MAX_FILES:
        st.warning(f"{len(files)} files received; predicting the first {MAX_FILES}.")
    files = files[:MAX_FILES]
    predict_and_show("upload", predictor, invert, tuple(f.file_id for f in files),
                     lambda: predictor.predict_files(((f.name, f.getvalue()) for f in files), invert=invert))


def camera_tab(predictor: Predictor, invert: str) -> None:
    """Predict a photo from the camera, which is turned on only on request."""
    # Behind a toggle, so the browser asks for the camera only when wanted.
    if not st.toggle("Turn on the camera", key="predict_camera_on"):
        st.caption("Take a photo of an object or of a digit written on paper.")
        return
    photo = st.camera_input("Take a photo", key="predict_camera")
    if photo is not None:
        predict_and_show("camera", predictor, invert, photo.file_id,
                         lambda: predictor.predict_files([("camera photo", photo.getvalue())], invert=invert))


def draw_tab(predictor: Predictor, invert: str) -> None:
    """Predict a digit or shape drawn on a canvas."""
    try:
        from streamlit_drawable_canvas import st_canvas
    except ImportError:
        st.info("Drawing needs the streamlit-drawable-canvas package (see requirements.txt); upload a picture of a digit instead.")
        return
    canvas = st_canvas(
        stroke_width=18, stroke_color="#000000", background_color="#FFFFFF",
        height=280, width=280, drawing_mode="freedraw", return_image_data=True, key="predict_canvas",
    )
    st.caption("Draw one digit or shape, large and centred; it is shrunk to the network's input size.")
    drawn = canvas.json_data is not None and bool(canvas.json_data.get("objects"))
    if not drawn or canvas.image_data is None:
        return
    rgba = np.asarray(canvas.image_data, dtype=np.uint8)  # (280, 280, 4); alpha is composited on white
    predict_and_show("drawing", predictor, invert, hashlib.sha1(rgba.tobytes()).hexdigest(),
                     lambda: [predictor.predict(rgba, name="drawing", invert=invert)])


def predict_and_show(slot: str, predictor: Predictor, invert: str, input_id: Hashable,
                     predict: Callable[[], list[Prediction | PredictionFailure]]) -> None:
    """Predict one kind of input once (per input, predictor and invert choice) and show the results.

    Args:
        slot: the kind of input ("upload", "camera", "drawing"); also prefixes the chart keys.
        predictor: the run's predictor.
        invert: the invert choice the predictions use.
        input_id: what identifies the input (file ids, a hash of the drawing).
        predict: computes the predictions, called only for a new input.
    """
    shown = remembered(slot, (predictor, invert, input_id), lambda: explain(predictor, predict()))
    show_results(shown, slot)


def remembered(slot: str, key: tuple, compute: Callable[[], list[Shown]]) -> list[Shown]:
    """The results of the current input of one kind (upload, camera, drawing), computed once per input.

    Other widgets (the run picker, the invert switch, tabs) rerun the page; the
    same files, run and settings are then not predicted again.
    """
    slots: dict = st.session_state.setdefault("predict_results", {})
    if slot not in slots or slots[slot][0] != key:
        slots[slot] = (key, compute())
    return slots[slot][1]


def export_section(run: RunRecord, predictor: Predictor) -> None:
    """Downloads of the run: our bundle, a .keras file and the Keras code of the architecture."""
    st.subheader("Download this model")
    st.caption(
        "The bundle (.zip: spec.json, model.weights.h5, meta.json) can be imported back here. "
        "The .keras file is for Keras elsewhere: this app never loads .keras files, because loading one can run code."
    )
    cols = st.columns(3)
    cols[0].download_button(
        "Bundle (.zip)", data=lambda: bundle.export_bundle(run), file_name=bundle.export_filename(run, ".bundle.zip"),
        mime="application/zip", on_click="ignore", key="export_bundle",
    )
    cols[1].download_button(
        "Keras model (.keras)", data=lambda: bundle.export_keras_file(predictor.model),
        file_name=bundle.export_filename(run, ".keras"), mime="application/octet-stream", on_click="ignore", key="export_keras",
    )
    codes: dict = st.session_state.setdefault("predict_code", {})
    if run.run_id not in codes:
        codes.clear()
        codes[run.run_id] = export_keras_code(run.spec, tuple(run.input_shape), len(run.class_names))
    code = codes[run.run_id]
    cols[2].download_button(
        "Keras code (.py)", data=code, file_name=bundle.export_filename(run, "_model.py"), mime="text/x-python",
        on_click="ignore", key="export_code",
    )
    with st.expander("Keras code of the architecture"):
        st.code(code, language="python")


def import_section() -> None:
    """The bundle uploader, and what became of the uploaded bundle (imported and selected above, or why not)."""
    st.subheader("Import a bundle")
    upload = uploads.file_uploader(uploads.BUNDLE, key=_IMPORT_KEY, help=uploads.BUNDLE_HELP, on_change=_on_bundle)
    imported = st.session_state.get(_IMPORTED_KEY, {})
    if upload is not None and upload.file_id in imported:
        notice(*imported[upload.file_id])


def _on_bundle() -> None:
    """Callback of the bundle uploader: import a new bundle as a run of this session, once per file.

    It runs before the page is drawn, so the run picker above can select the
    imported run in the same rerun.
    """
    upload = st.session_state.get(_IMPORT_KEY)
    imported: dict = st.session_state.setdefault(_IMPORTED_KEY, {})  # file id -> (kind, message)
    if upload is None or upload.file_id in imported:
        return
    try:
        record = bundle.import_bundle(upload.getvalue(), upload.name, owner=session_id())
    except bundle.BundleError as exc:
        imported[upload.file_id] = ("error", str(exc))
        return
    imported[upload.file_id] = ("ok", f"Imported {upload.name} as run “{escape_markdown(record.name)}”, selected above.")
    st.session_state[_RUN_PICKER_KEY] = record.run_id


def render() -> None:
    """Draw the Predict page."""
    st.title("Predict")
    st.write("Try a trained network on your own pictures: upload files, take a photo or draw a digit.")
    run = pick_run(_RUN_PICKER_KEY)
    if run is None:
        st.info("No trained run yet: train one on the Playground page, or import a bundle below.")
    else:
        try:
            predictor = get_predictor(run)
        except PredictError as exc:
            st.error(str(exc))
        else:
            predict_section(run, predictor)
            st.divider()
            export_section(run, predictor)
    st.divider()
    import_section()


def predict_section(run: RunRecord, predictor: Predictor) -> None:
    """What the network takes, the invert switch, and the Upload, Camera and Draw tabs."""
    classes = escape_markdown(", ".join(predictor.class_names[:10]))
    st.caption(
        f"{escape_markdown(run.name)}: {len(predictor.class_names)} classes ({classes}"
        f"{', ...' if len(predictor.class_names) > 10 else ''}), input {'x'.join(map(str, predictor.input_shape))}"
        + (", trained on light-on-dark images: dark-on-light pictures are inverted." if predictor.light_on_dark else ".")
        + (f" Each prediction averages views of the picture (test-time augmentation: "
           f"{TEST_TIME_AUGMENTATIONS[views].lower()})." if (views := run.spec.preprocess.test_time_augmentation) != "none" else "")
    )
    if run.imported:
        st.caption(f"Imported from a bundle: its test accuracy is not measured on this server ({accuracy_text(run)}).")
    invert = st.segmented_control(
        "Invert colours", list(INVERT_CHOICES), format_func=_INVERT_LABELS.get, default="auto", key="predict_invert",
        help="Auto inverts dark-on-light pictures when the network was trained on light-on-dark images (MNIST family).",
    ) or "auto"
    upload, camera, draw = st.tabs(["Upload", "Camera", "Draw"])
    with upload:
        upload_tab(predictor, invert)
    with camera:
        camera_tab(predictor, invert)
    with draw:
        draw_tab(predictor, invert)
