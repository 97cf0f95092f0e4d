"""Predictions as the Predict page shows them: one line per unreadable file, a table, then each image in detail.

Each image in detail: the picture as uploaded and as the network sees it (and
each preparation step), a warning when it looks unlike the training images, its Grad-CAM overlay (for the first `MAX_DETAILED` images) and the
probabilities of every class.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import streamlit as st

from playground.analysis import activations, figures
from playground.analysis.predict import Prediction, PredictionFailure, Predictor
from playground.ui.plain_text import escape_markdown

MAX_DETAILED = 12  # images shown with probabilities, network view and Grad-CAM
PREVIEW_SIDE = 160  # pixels of the "as uploaded" preview


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


def show_prediction(shown: Shown, key: str) -> None:
    """One image: headline, the picture and the network's view, Grad-CAM and probabilities."""
    result = shown.result
    st.markdown(f"**{escape_markdown(result.name)}** → **{escape_markdown(result.label)}** ({result.confidence:.1%})")
    if result.warning:
        st.warning(result.warning, icon=":material/help:")
    left, middle, right = st.columns([2, 2, 3])
    with left:
        st.image([result.pixels, nearest_upscale(result.image, PREVIEW_SIDE)],
                 caption=["as uploaded", "as the network sees it"], width=PREVIEW_SIDE // 2 + 30)
        st.caption(f"{result.note}. Server time {result.seconds * 1000:.0f} ms.")
        if result.steps:
            with st.expander("Step by step"):
                st.image([picture for _, picture in result.steps], caption=[caption for caption, _ in result.steps],
                         width=96)
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


def show_results(shown: list[Shown], slot: str) -> None:
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
            show_prediction(item, f"{slot}_{index}")
    if len(predictions) > MAX_DETAILED:
        st.caption(f"Details are shown for the first {MAX_DETAILED} images; the table lists all {len(predictions)}.")
