"""The Activations page: one image through the network, its feature maps, first-layer filters and attention.

The network is a saved run or the Playground's untrained settings
(`model_source.choose_network`); the image is a test image of its dataset
or an uploaded one, prepared as the Predict page prepares it. A link with
impossible settings gets one sentence saying why, never a traceback, and
class and file names are shown as plain text.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import streamlit as st

from playground.analysis import activations, figures
from playground.analysis.predict import prepare_options_for, stored_options
from playground.data.dataset import Dataset
from playground.data.images import ImageError, decode_image
from playground.data.prepare import prepare_for_model
from playground.spec.fields import ACTIVATIONS
from playground.ui import uploads
from playground.ui.model_source import (
    Network,
    choose_network,
    describe,
    load_data,
    network_model,
)
from playground.ui.plain_text import escape_markdown

NO_BAR = {"displayModeBar": False}


def _random_index(size: int) -> None:
    """Callback of "Random image": pick another test image."""
    st.session_state["act_index"] = int(np.random.default_rng().integers(size))


def choose_image(dataset: Dataset | None, input_shape: tuple[int, int, int],
                 prepare: dict[str, bool]) -> tuple[np.ndarray, int | None, str] | None:
    """A test image of the dataset or an uploaded one, as the model takes it.

    Args:
        dataset: the network's data; None offers uploads only.
        input_shape: (H, W, C) the network takes.
        prepare: how outside pictures are prepared (`analysis.predict.prepare_options_for`).

    Returns:
        (image float32 (H, W, C) in 0..255, true label or None, caption), or None
        while there is no image.
    """
    sources = (["A test image"] if dataset is not None else []) + ["Upload your own"]
    source = st.radio("Image", sources, horizontal=True, key="act_image_source")
    if source == "A test image":
        return test_image(dataset)
    return uploaded_image(input_shape, prepare)


def test_image(dataset: Dataset) -> tuple[np.ndarray, int, str]:
    """A test image picked by number (or at random): (image, its label, caption)."""
    count = len(dataset.x_test)
    pick, shuffle = st.columns([3, 1], vertical_alignment="bottom")
    index = pick.number_input(f"Test image (0 to {count - 1})", 0, count - 1, 0, key="act_index")
    shuffle.button("Random image", on_click=_random_index, args=(count,), icon=":material/shuffle:", key="act_random")
    label = int(dataset.y_test[index])
    return dataset.x_test[index].astype(np.float32), label, f"test image {index}: {dataset.class_names[label]}"


def uploaded_image(input_shape: tuple[int, int, int], prepare: dict[str, bool]) -> tuple[np.ndarray, None, str] | None:
    """An uploaded picture prepared as the Predict page prepares it, or None (nothing yet, or why it cannot be read)."""
    upload = uploads.file_uploader(uploads.IMAGE, key="act_upload")
    if upload is None:
        st.info("Choose an image file to see how the network takes it apart.")
        return None
    try:
        pixels = decode_image(upload.getvalue(), name=upload.name, size_hint=tuple(input_shape[:2]))
        prepared = prepare_for_model(pixels, input_shape, **prepare)
    except ImageError as exc:
        st.error(str(exc))
        return None
    return prepared.array, None, f"{upload.name}: {prepared.note}"


def feature_map_section(model: keras.Model, image: np.ndarray, activation: str) -> None:
    """Before and after the activation, for every conv layer, one colour-scaled grid each."""
    stages = activations.activation_stages(model)
    if not stages:
        st.info("This network has no conv layers.")
        return
    names = list(dict.fromkeys(n for s in stages for n in (s.before, s.after) if n))
    start = time.perf_counter()
    maps = activations.feature_maps(model, image, names)
    computed = time.perf_counter() - start
    start = time.perf_counter()
    drawn = sum(stage_maps(stage, maps, activation) for stage in stages)
    st.caption(f"Feature maps computed in {computed * 1000:.0f} ms and {drawn} grids built in "
               f"{(time.perf_counter() - start) * 1000:.0f} ms (one heatmap per grid). "
               "Each map is scaled by its own largest |value| (shared by the two sides): red positive, blue negative.")


def stage_maps(stage: activations.ConvStage, maps: dict[str, np.ndarray], activation: str) -> int:
    """The maps of one conv layer, before and after its activation side by side; returns the grids drawn.

    Args:
        stage: the conv layer and the layers around its activation.
        maps: {layer name: float32 (H, W, F)} of `activations.feature_maps`.
        activation: the activation's name, for the titles.
    """
    before = maps[stage.before]
    h, w, count = before.shape
    st.markdown(f"**{stage.conv}** · {count} maps of {h} × {w}")
    if stage.after is None:
        st.plotly_chart(figures.feature_map_grid(before, title=f"{stage.before} (no activation)"), config=NO_BAR,
                        key=f"act_maps_{stage.conv}")
        return 1
    after = maps[stage.after]
    scale = figures.map_scale(before, after)  # one colour scale per map for both sides
    left, right = st.columns(2)
    left.plotly_chart(figures.feature_map_grid(before, scale=scale, title=f"before: {stage.before}"), config=NO_BAR,
                      key=f"act_before_{stage.conv}")
    right.plotly_chart(figures.feature_map_grid(after, scale=scale, title=f"after: {stage.after} ({activation})"),
                       config=NO_BAR, key=f"act_after_{stage.conv}")
    zeroed = float(np.mean((after == 0) & (before != 0)))
    if zeroed > 0:
        st.caption(f"{activation} set {zeroed:.0%} of the values to zero: every negative input (blue on the left) "
                   "is white on the right, and only the positive evidence goes on to the next layer.")
    return 2


def filter_section(network: Network, model: keras.Model) -> None:
    """First-layer filters before and after training, side by side."""
    after = activations.first_layer_filters(model)
    if not network.trained:
        st.plotly_chart(figures.filter_grid(after, title="Initial filters (untrained, random)"), config=NO_BAR,
                        key="act_filters_now")
        st.caption("Random numbers: no pattern yet. Train the network and compare.")
        return
    try:
        before = activations.first_layer_filters(network.record)
    except activations.InspectError:
        before = None
    left, right = st.columns(2)
    if before is not None:
        left.plotly_chart(figures.filter_grid(before, title="Before training"), config=NO_BAR, key="act_filters_before")
    else:
        left.info("This run did not keep its filters from before training.")
    right.plotly_chart(figures.filter_grid(after, title="After training"), config=NO_BAR, key="act_filters_after")
    st.caption("Each filter is stretched to its own range. Trained first-layer filters tend to become edge, "
               "stroke and colour-blob detectors; how far they move from the random start depends on the epochs and learning rate.")


@st.fragment
def attention_section(model: keras.Model, image: np.ndarray, class_names: tuple[str, ...]) -> None:
    """Grad-CAM for the predicted class and a chosen one, and the saliency of the chosen class."""
    probabilities = activations.predict(model, image)
    predicted = int(np.argmax(probabilities))
    chosen = st.selectbox("Explain the class", range(len(class_names)), index=predicted,
                          format_func=lambda i: f"{class_names[i]} ({probabilities[i]:.1%})", key="act_class")
    cam_predicted, _ = activations.gradcam(model, image)
    cam_chosen, _ = activations.gradcam(model, image, chosen)
    salient = activations.saliency(model, image, chosen)
    columns = st.columns(3)
    columns[0].plotly_chart(figures.heatmap_overlay(image, cam_predicted, title=f"Grad-CAM: {class_names[predicted]} (predicted)"),
                            config=NO_BAR, key="act_cam_predicted")
    columns[1].plotly_chart(figures.heatmap_overlay(image, cam_chosen, title=f"Grad-CAM: {class_names[chosen]}"),
                            config=NO_BAR, key="act_cam_chosen")
    columns[2].plotly_chart(figures.heatmap_overlay(image, salient, title=f"Saliency: {class_names[chosen]}"),
                            config=NO_BAR, key="act_saliency")
    st.caption(f"Grad-CAM weighs the maps of the last conv layer ({activations.last_conv_output(model)}) by the gradient of "
               "the class's logit and keeps the positive part: where the evidence for that class lies, at the resolution "
               "of that layer. Saliency is |∂ logit / ∂ pixel|: which single pixels would change the score most.")


def render() -> None:
    """Draw the Activations page."""
    st.title("Activations")
    st.caption("Follow one image through the network: the feature maps of every conv layer before and after its activation, "
               "the first-layer filters, and where the network looks when it decides.")
    network = choose_network("act")
    if network is None:
        st.stop()
    describe(network)
    if network.input_shape is None or network.num_classes is None:
        st.error(f"The dataset is needed to build this network: {escape_markdown(network.data_error)}")
        st.stop()
    if network.problem:
        st.error(f"This network cannot be built: {escape_markdown(network.problem)}")
        st.stop()
    dataset = load_data(network.spec)
    if dataset is not None and tuple(dataset.input_shape) != tuple(network.input_shape):
        dataset = None  # the data changed since the run was trained; uploads still work
    model = network_model(network, x_sample=None if dataset is None else dataset.x_train[:2000])
    class_names = _class_names(network, dataset)
    prepare = prepare_options_for(network.spec.data.dataset, stored_options(network.record) if network.trained else None)
    chosen = choose_image(dataset, network.input_shape, prepare)
    if chosen is None:
        st.stop()
    image, label, caption = chosen
    verdict_section(model, image, label, caption, class_names)
    activation = ACTIVATIONS.get(network.spec.arch.activation, network.spec.arch.activation)
    st.header("Feature maps, before and after the activation")
    feature_map_section(model, image, activation)
    st.header("First-layer filters")
    filter_section(network, model)
    st.header("Where does the network look?")
    attention_section(model, image, class_names)


def _class_names(network: Network, dataset: Dataset | None) -> tuple[str, ...]:
    """The run's class names, else the dataset's, else "class 0", "class 1", ..."""
    if network.trained:
        return tuple(network.record.class_names)
    if dataset is not None:
        return tuple(dataset.class_names)
    return tuple(f"class {i}" for i in range(network.num_classes))


def verdict_section(model: keras.Model, image: np.ndarray, label: int | None, caption: str,
                    class_names: tuple[str, ...]) -> None:
    """The image as the network sees it, what the network says (right or wrong when the label is known), and its probabilities."""
    probabilities = activations.predict(model, image)  # (num_classes,)
    predicted = int(np.argmax(probabilities))
    left, right = st.columns([1, 2])
    with left:
        st.plotly_chart(figures.image_row([image], ["as the network sees it"], height=300), config=NO_BAR, key="act_image")
        st.caption(escape_markdown(caption))  # a class name or an uploaded file's name
    with right:
        verdict = f"The network says **{escape_markdown(class_names[predicted])}** ({probabilities[predicted]:.1%})"
        if label is not None:
            verdict += " — right." if label == predicted else f" — wrong: it is {escape_markdown(class_names[label])}."
        st.markdown(verdict)
        st.plotly_chart(figures.probability_bars(probabilities, class_names, highlight=predicted), config=NO_BAR,
                        key="act_probabilities")
