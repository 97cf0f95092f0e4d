"""Convolution arithmetic by hand: a tiny editable image and filters, the output size, one cell worked out.

Every number is computed by `analysis.conv_explainer` cell by cell and
equals TensorFlow's `tf.nn.conv2d`; max pooling of the image or of an
output map follows the same way. Shown at the foot of the Architecture page.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from playground.analysis import conv_explainer as ce
from playground.analysis import figures


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
        outputs, geo = ce.conv2d(image, filters, stride, padding)  # outputs: (F, H_out, W_out)
    except ce.ExplainerError as exc:
        st.error(str(exc))
        return
    output_size(geo, len(filters))
    worked_cell(image, filters, stride, padding, outputs, geo)
    if len(filters) > 1:
        st.markdown("**All output maps**")
        maps = st.columns(len(filters))
        for i, out in enumerate(outputs):
            _matrix(maps[i], out, f"ce_fig_out_{i}", title=f"Output {i + 1}")
    pooling_explainer(image, outputs)


def _matrix(column: Any, values: np.ndarray, key: str, **kwargs: Any) -> None:
    """A grid of numbers (`figures.matrix_figure` with `kwargs`) in `column`, at its natural size."""
    column.plotly_chart(figures.matrix_figure(values, **kwargs), config={"displayModeBar": False}, width="content", key=key)


def output_size(geo: ce.Geometry, count: int) -> None:
    """The padding on each side, the output size formula, and the number of output maps."""
    st.subheader("Output size")
    top, bottom, left, right = geo.pads
    st.markdown(
        f"Padding P: {top} above, {bottom} below, {left} left, {right} right"
        + (" (SAME puts the odd pixel after, as TensorFlow does)." if (top, left) != (bottom, right) else ".")
    )
    st.code(f"{geo.formula(0)}\n{geo.formula(1)}", language=None)
    st.markdown(f"{count} filter(s) give **{count} output map(s)** of {geo.output_size[0]} × {geo.output_size[1]}: "
                f"the output has {count} channel(s).")


def worked_cell(image: np.ndarray, filters: np.ndarray, stride: int, padding: str, outputs: np.ndarray,
                geo: ce.Geometry) -> None:
    """One output cell the user picks: its window on the padded image, the products, and their sum."""
    st.subheader("One output cell, worked out")
    pick = st.columns(3)
    f = pick[0].selectbox("Filter", range(len(filters)), format_func=lambda i: f"Filter {i + 1}", key="ce_pick_filter")
    row = pick[1].selectbox("Output row", range(geo.output_size[0]), key="ce_pick_row")
    col = pick[2].selectbox("Output column", range(geo.output_size[1]), key="ce_pick_col")
    step = ce.conv_step(image, filters[f], stride, padding, row, col)
    top, _, left, _ = geo.pads
    muted = ce.padded(np.zeros(image.shape, dtype=bool), geo, True).astype(bool)  # True on the padding
    origin = (step.origin[0] + top, step.origin[1] + left)  # the window's corner in the padded image
    cells = st.columns([3, 2, 2, 2])
    _matrix(cells[0], ce.padded(image, geo), "ce_fig_input", title="Input (grey: zero padding)", muted=muted,
            highlight=(*origin, *geo.window))
    _matrix(cells[1], filters[f], "ce_fig_filter", title=f"Filter {f + 1}")
    _matrix(cells[2], step.products, "ce_fig_products", title="Window × filter")
    _matrix(cells[3], outputs[f], "ce_fig_output", title=f"Output {f + 1}", highlight=(row, col, 1, 1))
    st.markdown(f"Output {f + 1} at row {row}, column {col} = sum of the element-wise products of the window "
                f"(rows {step.origin[0]}..{step.origin[0] + geo.window[0] - 1}, columns {step.origin[1]}..{step.origin[1] + geo.window[1] - 1} "
                f"of the image; negative or past the edge = padding) and the filter:")
    st.code(step.sum_text(), language=None)


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
    _matrix(figs[0], ce.padded(values, geo, np.nan), "ce_fig_pool_in", title=choices[source],
            highlight=(step.origin[0] + top, step.origin[1] + left, size, size))
    _matrix(figs[1], step.window, "ce_fig_pool_window", title="Window")
    _matrix(figs[2], pooled, "ce_fig_pool_out", title="Max pooled", highlight=(row, col, 1, 1))
    shown = [f"{v:g}" for v in step.window.ravel() if np.isfinite(v)]
    st.markdown(f"max({', '.join(shown)}) = **{step.value:g}**"
                + (" — SAME padding adds empty cells that never win the max." if padding == "same" else ""))
