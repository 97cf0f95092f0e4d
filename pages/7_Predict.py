"""Predict: your own images through a trained network, plus model export and bundle import.

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
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import streamlit as st

from playground.runs import bundle
from playground.analysis import figures
from playground.analysis import activations
from playground.data.images import INVERT_CHOICES
from playground.model.network import export_keras_code
from playground.analysis.predict import Prediction, PredictError, PredictionFailure, Predictor
from playground.ui.run_picker import pick_run
from playground.ui.session import session_id

MAX_FILES = 50  # images predicted per upload
MAX_DETAILED = 12  # images shown with probabilities, network view and Grad-CAM
PREVIEW_SIDE = 160  # pixels of the "as uploaded" preview
_CACHE_KEY = "predict_predictors"
_RUN_PICKER_KEY = "predict_run"
_PENDING_RUN_KEY = "predict_run_imported"  # a run just imported, to select on the next rerun
_INVERT_LABELS = {"auto": "Auto", "always": "Always", "never": "Never"}

st.set_page_config(page_title="Predict · CNN Playground", page_icon=":material/photo_camera:", layout="wide")


def get_predictor(run) -> Predictor:
    """This session's predictor for `run`, loaded once (see the module docstring)."""
    weights = run.path / bundle.WEIGHTS_FILE
    key = (run.run_id, weights.stat().st_mtime_ns if weights.exists() else 0)
    cache: dict = st.session_state.setdefault(_CACHE_KEY, {})
    if key not in cache:
        with st.spinner(f"Loading the model of {run.name}..."):
            predictor = Predictor.from_run(run.run_id)
        # Keep only the newest couple of models per session.
        for old in list(cache)[:-1]:
            del cache[old]
        cache[key] = predictor
    return cache[key]


def nearest_upscale(image: np.ndarray, side: int) -> np.ndarray:
    """uint8 (h, w, 1 or 3) -> (about side, about side, 3), blocky, so small inputs stay crisp."""
    array = np.clip(np.asarray(image, dtype=np.float32), 0, 255).astype(np.uint8)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    factor = max(1, side // max(array.shape[:2]))
    return np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


def preview(pixels: np.ndarray) -> np.ndarray:
    """A small copy of an uploaded picture for display (a strided view; no resampling cost)."""
    step = max(1, int(np.ceil(max(pixels.shape[:2]) / (2 * PREVIEW_SIDE))))
    small = np.ascontiguousarray(pixels[::step, ::step])
    return np.repeat(small, 3, axis=2) if small.shape[2] == 1 else small


@dataclass(frozen=True)
class Shown:
    """One input's result as the page shows it, kept across reruns."""

    result: Prediction | PredictionFailure  # a Prediction's pixels are replaced by a small preview
    heatmap: np.ndarray | None = None  # Grad-CAM (H, W) in 0..1, for the first MAX_DETAILED images
    cam_note: str = ""  # why there is no heatmap


def explain(predictor: Predictor, results: list[Prediction | PredictionFailure]) -> list[Shown]:
    """Grad-CAM for the first MAX_DETAILED predictions; previews instead of full pixels."""
    shown = []
    for result in results:
        if isinstance(result, PredictionFailure):
            shown.append(Shown(result))
            continue
        small = replace(result, pixels=preview(result.pixels))
        if sum(isinstance(s.result, Prediction) for s in shown) >= MAX_DETAILED:
            shown.append(Shown(small))
            continue
        try:
            heatmap, _ = activations.gradcam(predictor.model, result.image, result.class_index)
            shown.append(Shown(small, heatmap))
        except ValueError as exc:  # e.g. a network without conv layers has nothing to weigh
            shown.append(Shown(small, None, f"Grad-CAM is not available for this network: {exc}"))
    return shown


def remembered(slot: str, key: tuple, compute: Callable[[], list[Shown]]) -> list[Shown]:
    """The results of the current input of one kind (upload, camera, drawing), computed once per input.

    Other widgets (the run picker, the invert switch, tabs) rerun the page; the
    same files, run and settings are then not predicted again.
    """
    slots: dict = st.session_state.setdefault("predict_results", {})
    if slot not in slots or slots[slot][0] != key:
        slots[slot] = (key, compute())
    return slots[slot][1]


def show_prediction(predictor: Predictor, shown: Shown, key: str) -> None:
    """One image: headline, the picture and the network's view, Grad-CAM and probabilities."""
    result = shown.result
    st.markdown(f"**{result.name}** → **{result.label}** ({result.confidence:.1%})")
    left, middle, right = st.columns([2, 2, 3])
    with left:
        st.image([result.pixels, nearest_upscale(result.image, PREVIEW_SIDE)],
                 caption=["as uploaded", "as the network sees it"], width=PREVIEW_SIDE // 2 + 30)
        st.caption(f"{result.note}. Server time {result.seconds * 1000:.0f} ms.")
    with middle:
        if shown.heatmap is not None:
            st.plotly_chart(
                figures.heatmap_overlay(result.image, shown.heatmap, title=f"Grad-CAM: {result.label}", height=240),
                key=f"cam_{key}",
            )
        elif shown.cam_note:
            st.caption(shown.cam_note)
    with right:
        st.plotly_chart(
            figures.probability_bars(result.probabilities, result.class_names, highlight=result.class_index),
            key=f"probs_{key}",
        )


def show_results(predictor: Predictor, shown: list[Shown], slot: str) -> None:
    """Failures as one line each, a table when there are several images, then details."""
    for item in shown:
        if isinstance(item.result, PredictionFailure):
            st.error(item.result.message, icon=":material/block:")
    predictions = [item for item in shown if isinstance(item.result, Prediction)]
    if len(predictions) > 1:
        st.dataframe(
            {
                "image": [p.result.name for p in predictions],
                "prediction": [p.result.label for p in predictions],
                "confidence": [round(p.result.confidence, 4) for p in predictions],
                "runner-up": [p.result.top(2)[1][0] for p in predictions],
                "server ms": [round(p.result.seconds * 1000, 1) for p in predictions],
            },
            hide_index=True,
        )
    for index, item in enumerate(predictions[:MAX_DETAILED]):
        with st.container(border=True):
            show_prediction(predictor, item, f"{slot}_{index}")
    if len(predictions) > MAX_DETAILED:
        st.caption(f"Details are shown for the first {MAX_DETAILED} images; the table lists all {len(predictions)}.")


def upload_tab(predictor: Predictor, invert: str) -> None:
    files = st.file_uploader(
        "Images (PNG, JPEG, GIF, BMP, TIFF, WebP; several at once)",
        type=None,  # every type: our decoder gives a one-line reason for the ones it cannot read
        accept_multiple_files=True,
        key="predict_files",
    )
    if not files:
        st.caption("Drop photos or scans here. Each file is checked on its own: a broken one never stops the others.")
        return
    if len(files) > MAX_FILES:
        st.warning(f"{len(files)} files received; predicting the first {MAX_FILES}.")
    files = files[:MAX_FILES]
    key = (predictor, invert, tuple(f.file_id for f in files))
    shown = remembered("upload", key, lambda: explain(predictor, predictor.predict_files(((f.name, f.getvalue()) for f in files), invert=invert)))
    show_results(predictor, shown, "upload")


def camera_tab(predictor: Predictor, invert: str) -> None:
    # Behind a toggle, so the browser asks for the camera only when wanted.
    if not st.toggle("Turn on the camera", key="predict_camera_on"):
        st.caption("Take a photo of an object or of a digit written on paper.")
        return
    photo = st.camera_input("Take a photo", key="predict_camera")
    if photo is not None:
        key = (predictor, invert, photo.file_id)
        shown = remembered("camera", key, lambda: explain(predictor, predictor.predict_files([("camera photo", photo.getvalue())], invert=invert)))
        show_results(predictor, shown, "camera")


def draw_tab(predictor: Predictor, invert: str) -> None:
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
    key = (predictor, invert, hashlib.sha1(rgba.tobytes()).hexdigest())
    shown = remembered("drawing", key, lambda: explain(predictor, [predictor.predict(rgba, name="drawing", invert=invert)]))
    show_results(predictor, shown, "drawing")


def export_section(run, predictor: Predictor) -> None:
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
    st.subheader("Import a bundle")
    upload = st.file_uploader(
        "A bundle (.zip) exported from CNN Playground", type=None, key="import_bundle",
        help="Only our own bundles are accepted: the network is rebuilt from spec.json and only the HDF5 weights are read.",
    )
    if upload is None:
        return
    done: dict = st.session_state.setdefault("imported_bundles", {})
    if upload.file_id not in done:
        try:
            record = bundle.import_bundle(upload.getvalue(), upload.name, owner=session_id())
        except bundle.BundleError as exc:
            done[upload.file_id] = ("error", str(exc))
        else:
            done[upload.file_id] = ("ok", f"Imported {upload.name} as run “{record.name}”, selected above.")
            # Select the new run: the picker is already drawn in this run, so set it for the next one.
            st.session_state[_PENDING_RUN_KEY] = record.run_id
            st.rerun()
    kind, message = done[upload.file_id]
    (st.success if kind == "ok" else st.error)(message)


st.title("Predict")
st.write("Try a trained network on your own pictures: upload files, take a photo or draw a digit.")

if _PENDING_RUN_KEY in st.session_state:
    st.session_state[_RUN_PICKER_KEY] = st.session_state.pop(_PENDING_RUN_KEY)
run = pick_run(_RUN_PICKER_KEY)
predictor = None
if run is None:
    st.info("No trained run yet: train one on the Playground page, or import a bundle below.")
else:
    try:
        predictor = get_predictor(run)
    except PredictError as exc:
        st.error(str(exc))

if predictor is not None:
    st.caption(
        f"{run.name}: {len(predictor.class_names)} classes ({', '.join(predictor.class_names[:10])}"
        f"{', ...' if len(predictor.class_names) > 10 else ''}), input {'x'.join(map(str, predictor.input_shape))}"
        + (", trained on light-on-dark images: dark-on-light pictures are inverted." if predictor.light_on_dark else ".")
    )
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
    st.divider()
    export_section(run, predictor)

st.divider()
import_section()
