"""Architecture: the network's layers, shapes and costs, its Keras code, and convolution arithmetic by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

st.set_page_config(page_title="Architecture · CNN Playground", page_icon=":material/account_tree:", layout="wide")

from playground.analysis import conv_explainer as ce  # noqa: E402  (after set_page_config)
from playground.analysis import figures  # noqa: E402
from playground.model.network import export_keras_code  # noqa: E402
from playground.spec.experiment import SpecError  # noqa: E402
from playground.spec.validation import check  # noqa: E402
from playground.ui.model_source import Network, choose_network, describe  # noqa: E402
from playground.ui.playground_page import architecture_key, layer_rows  # noqa: E402

LEGEND = "Blue: convolution · orange: pooling · green: residual add (dotted: its shortcut) · purple: flatten · red: dense · teal: logits."


def network_section(network: Network) -> None:
    """Layer table, diagram and code download for the chosen network."""
    spec, input_shape, num_classes = network.spec, network.input_shape, network.num_classes
    if input_shape is None or num_classes is None:
        st.error(f"The dataset's image size is needed to lay out the network: {network.data_error}")
        return
    problems = check(spec, input_shape)
    if problems:
        st.error("This network cannot be built:\n\n" + "\n".join(f"- {p.message}" for p in problems))
        return
    try:
        key_spec = architecture_key(spec)
        rows = layer_rows(key_spec.spec_id(), key_spec, tuple(input_shape), int(num_classes))
    except (SpecError, ValueError) as exc:
        st.error(f"This network cannot be built: {exc}")
        return

    params = sum(r["params"] for r in rows)
    flops = sum(r["flops"] for r in rows)
    fields = [r["receptive_field"] for r in rows if r["receptive_field"] is not None]
    a, b, c, d = st.columns(4)
    a.metric("Input", " × ".join(map(str, input_shape)))
    b.metric("Parameters", f"{params:,}")
    c.metric("FLOPs per image", _si(flops), help="Forward pass: 2 × multiply-adds of conv and dense layers.")
    d.metric("Receptive field", f"{max(fields)} px" if fields else "–",
             help="Side of the input square that one unit of the last conv block sees.")

    st.plotly_chart(figures.network_diagram(rows), config={"displayModeBar": False})
    st.caption("Box height follows the spatial size and width the number of channels (both log-scaled). " + LEGEND
               + " Hover a box for its layers and parameters.")

    table = pd.DataFrame({
        "layer": [r["name"] for r in rows],
        "type": [r["kind"] for r in rows],
        "output shape": [" × ".join(str(s) for s in r["output_shape"]) for r in rows],
        "parameters": [r["params"] for r in rows],
        "FLOPs": [r["flops"] for r in rows],
        "receptive field": [r["receptive_field"] for r in rows],
    })
    st.dataframe(
        table, hide_index=True, height=min(38 + 35 * len(table), 600),
        column_config={
            "parameters": st.column_config.NumberColumn(format="localized"),
            "FLOPs": st.column_config.NumberColumn(format="compact"),
            "receptive field": st.column_config.NumberColumn(help="Input pixels (one side) a unit of this layer sees."),
        },
    )

    code = export_keras_code(spec, tuple(input_shape), int(num_classes))
    st.download_button(
        "Download the Keras code", code, file_name=f"{spec.preset}_{spec.data.dataset.rsplit('/', 1)[-1]}_model.py",
        mime="text/x-python", icon=":material/download:", key="arch_download",
    )
    with st.expander("Keras code"):
        st.code(code, language="python")


def _si(value: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f}"


# ----------------------------------------------------------------- explainer


def _editor(values: np.ndarray, key: str) -> np.ndarray:
    """A small editable grid of numbers; returns the edited values (NaN where a cell was cleared)."""
    frame = pd.DataFrame(values, columns=[str(c) for c in range(values.shape[1])])
    edited = st.data_editor(
        frame, key=key, hide_index=False, width="content",
        column_config={str(c): st.column_config.NumberColumn(str(c), width=48, step=0.5) for c in range(values.shape[1])},
    )
    return edited.to_numpy(dtype=float, na_value=np.nan)


def explainer_inputs() -> tuple[np.ndarray, np.ndarray, int, str]:
    """The tiny image, the filters, the stride and the padding, as the user edits them."""
    left, right = st.columns(2, gap="large")
    with left:
        st.markdown("**Input image**")
        size_col, preset_col = st.columns([1, 2])
        size = size_col.slider("Size", 3, 7, 5, key="ce_size")
        preset = preset_col.selectbox("Start from", list(ce.IMAGE_PRESETS), key="ce_image_preset")
        image = _editor(ce.preset_image(preset, size, size), key=f"ce_image_{preset}_{size}")
    with right:
        st.markdown("**Filters**")
        count_col, h_col, w_col = st.columns(3)
        count = count_col.number_input("How many", 1, 3, 1, key="ce_filters")
        fh = h_col.number_input("Height", 1, 3, 3, key="ce_fh")
        fw = w_col.number_input("Width", 1, 3, 3, key="ce_fw")
        defaults = list(ce.FILTER_PRESETS)
        kernels = []
        for i, tab in enumerate(st.tabs([f"Filter {i + 1}" for i in range(count)])):
            with tab:
                name = st.selectbox("Start from", defaults, index=i % len(defaults), key=f"ce_filter_preset_{i}")
                kernels.append(_editor(ce.preset_filter(name, fh, fw), key=f"ce_filter_{i}_{name}_{fh}_{fw}"))
    pad_col, stride_col = st.columns(2)
    padding = pad_col.radio("Padding", ["valid", "same"], format_func=str.upper, horizontal=True, key="ce_padding",
                            help="VALID: no padding, the output shrinks. SAME: zeros around the image so that the output is ceil(H / S).")
    stride = stride_col.slider("Stride S", 1, 3, 1, key="ce_stride")
    return image, np.stack(kernels), stride, padding


def conv_explainer() -> None:
    """Convolution of a tiny image by hand: sizes, every output, and one output cell worked out."""
    st.header("Convolution arithmetic, step by step")
    st.caption("Edit the numbers in the image and the filters. Every result below is computed cell by cell "
               "and equals TensorFlow's `tf.nn.conv2d` (cross-correlation, no bias).")
    image, filters, stride, padding = explainer_inputs()
    try:
        outputs, geo = ce.conv2d(image, filters, stride, padding)
    except ce.ExplainerError as exc:
        st.error(str(exc))
        return

    st.subheader("Output size")
    top, bottom, left, right = geo.pads
    st.markdown(
        f"Padding P: {top} above, {bottom} below, {left} left, {right} right"
        + (" (SAME puts the odd pixel after, as TensorFlow does)." if (top, left) != (bottom, right) else ".")
    )
    st.code(f"{geo.formula(0)}\n{geo.formula(1)}", language=None)
    st.markdown(f"{len(filters)} filter(s) give **{len(filters)} output map(s)** of {geo.output_size[0]} × {geo.output_size[1]}: "
                f"the output has {len(filters)} channel(s).")

    st.subheader("One output cell, worked out")
    pick = st.columns(3)
    f = pick[0].selectbox("Filter", range(len(filters)), format_func=lambda i: f"Filter {i + 1}", key="ce_pick_filter")
    row = pick[1].selectbox("Output row", range(geo.output_size[0]), key="ce_pick_row")
    col = pick[2].selectbox("Output column", range(geo.output_size[1]), key="ce_pick_col")
    step = ce.conv_step(image, filters[f], stride, padding, row, col)
    padded_image = ce.padded(image, geo)
    muted = ce.padded(np.zeros(image.shape, dtype=bool), geo, True).astype(bool)
    origin = (step.origin[0] + top, step.origin[1] + left)
    cells = st.columns([3, 2, 2, 2])
    cells[0].plotly_chart(figures.matrix_figure(padded_image, title="Input (grey: zero padding)", muted=muted,
                                                highlight=(*origin, *geo.window)), config={"displayModeBar": False},
                          width="content", key="ce_fig_input")
    cells[1].plotly_chart(figures.matrix_figure(filters[f], title=f"Filter {f + 1}"), config={"displayModeBar": False},
                          width="content", key="ce_fig_filter")
    cells[2].plotly_chart(figures.matrix_figure(step.products, title="Window × filter"), config={"displayModeBar": False},
                          width="content", key="ce_fig_products")
    cells[3].plotly_chart(figures.matrix_figure(outputs[f], title=f"Output {f + 1}", highlight=(row, col, 1, 1)),
                          config={"displayModeBar": False}, width="content", key="ce_fig_output")
    st.markdown(f"Output {f + 1} at row {row}, column {col} = sum of the element-wise products of the window "
                f"(rows {step.origin[0]}..{step.origin[0] + geo.window[0] - 1}, columns {step.origin[1]}..{step.origin[1] + geo.window[1] - 1} "
                f"of the image; negative or past the edge = padding) and the filter:")
    st.code(step.sum_text(), language=None)

    if len(filters) > 1:
        st.markdown("**All output maps**")
        maps = st.columns(len(filters))
        for i, out in enumerate(outputs):
            maps[i].plotly_chart(figures.matrix_figure(out, title=f"Output {i + 1}"), config={"displayModeBar": False},
                                 width="content", key=f"ce_fig_out_{i}")

    pooling_explainer(image, outputs)


def pooling_explainer(image: np.ndarray, outputs: np.ndarray) -> None:
    """Max pooling of the tiny image or of one output map, with its size formula and one cell worked out."""
    st.subheader("Max pooling")
    choices = ["The input image"] + [f"Output {i + 1}" for i in range(len(outputs))]
    cols = st.columns(4)
    source = cols[0].selectbox("Pool", range(len(choices)), format_func=lambda i: choices[i], index=min(1, len(choices) - 1),
                               key="ce_pool_source")
    size = cols[1].number_input("Window", 1, 3, 2, key="ce_pool_size")
    stride = cols[2].number_input("Stride", 1, 3, 2, key="ce_pool_stride")
    padding = cols[3].radio("Padding", ["valid", "same"], format_func=str.upper, horizontal=True, key="ce_pool_padding")
    values = image if source == 0 else outputs[source - 1]
    try:
        pooled, geo = ce.max_pool2d(values, size, stride, padding)
    except ce.ExplainerError as exc:
        st.error(str(exc))
        return
    st.code(f"{geo.formula(0)}\n{geo.formula(1)}", language=None)
    pick = st.columns(2)
    row = pick[0].selectbox("Pooled row", range(geo.output_size[0]), key="ce_pool_row")
    col = pick[1].selectbox("Pooled column", range(geo.output_size[1]), key="ce_pool_col")
    step = ce.pool_step(values, size, stride, padding, row, col)
    top, _, left, _ = geo.pads
    figs = st.columns(3)
    figs[0].plotly_chart(
        figures.matrix_figure(ce.padded(values, geo, np.nan), title=choices[source],
                              highlight=(step.origin[0] + top, step.origin[1] + left, size, size)),
        config={"displayModeBar": False}, width="content", key="ce_fig_pool_in")
    figs[1].plotly_chart(figures.matrix_figure(step.window, title="Window"), config={"displayModeBar": False},
                         width="content", key="ce_fig_pool_window")
    figs[2].plotly_chart(figures.matrix_figure(pooled, title="Max pooled", highlight=(row, col, 1, 1)),
                         config={"displayModeBar": False}, width="content", key="ce_fig_pool_out")
    shown = [f"{v:g}" for v in step.window.ravel() if np.isfinite(v)]
    st.markdown(f"max({', '.join(shown)}) = **{step.value:g}**"
                + (" — SAME padding adds empty cells that never win the max." if padding == "same" else ""))


# ---------------------------------------------------------------------- page

st.title("Architecture")
st.caption("What the layers do to the shape of the data, what they cost, and the convolution arithmetic behind them.")
network = choose_network("arch")
if network is not None:
    describe(network)
    network_section(network)
st.divider()
conv_explainer()
