"""The Architecture page: the network's layers, shapes and costs, and its Keras code.

The network is a saved run or the Playground's untrained settings
(`model_source.choose_network`); below it, the convolution arithmetic
worked out by hand (`conv_arithmetic`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from playground.analysis import figures
from playground.model.network import export_keras_code
from playground.spec.experiment import ExperimentSpec
from playground.spec.validation import check
from playground.ui.conv_arithmetic import conv_explainer
from playground.ui.model_source import Network, choose_network, describe
from playground.ui.playground_page import network_rows

LEGEND = "Blue: convolution · orange: pooling · green: residual add (dotted: its shortcut) · purple: flatten · red: dense · teal: logits."


def network_section(network: Network) -> None:
    """Key numbers, diagram, layer table and code download of the chosen network (or why it cannot be built)."""
    spec, input_shape, num_classes = network.spec, network.input_shape, network.num_classes
    if input_shape is None or num_classes is None:
        st.error(f"The dataset's image size is needed to lay out the network: {network.data_error}")
        return
    problems = check(spec, input_shape)
    if problems:
        st.error("This network cannot be built:\n\n" + "\n".join(f"- {p.message}" for p in problems))
        return
    try:
        rows = network_rows(spec, input_shape, num_classes)
    except (ValueError, RuntimeError) as exc:
        st.error(f"This network cannot be built: {exc}")
        return
    key_numbers(rows, input_shape)
    st.plotly_chart(figures.network_diagram(rows), config={"displayModeBar": False})
    st.caption("Box height follows the spatial size and width the number of channels (both log-scaled). " + LEGEND
               + " Hover a box for its layers and parameters.")
    layer_table(rows)
    keras_code(spec, input_shape, num_classes)


def key_numbers(rows: list[dict[str, Any]], input_shape: tuple[int, int, int]) -> None:
    """Input size, parameters, FLOPs per image and the receptive field of the last conv block."""
    params = sum(r["params"] for r in rows)
    flops = sum(r["flops"] for r in rows)
    fields = [r["receptive_field"] for r in rows if r["receptive_field"] is not None]
    a, b, c, d = st.columns(4)
    a.metric("Input", " × ".join(map(str, input_shape)))
    b.metric("Parameters", f"{params:,}")
    c.metric("FLOPs per image", _si(flops), help="Forward pass: 2 × multiply-adds of conv and dense layers.")
    d.metric("Receptive field", f"{max(fields)} px" if fields else "–",
             help="Side of the input square that one unit of the last conv block sees.")


def layer_table(rows: list[dict[str, Any]]) -> None:
    """One row per layer: type, output shape, parameters, FLOPs and receptive field."""
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


def keras_code(spec: ExperimentSpec, input_shape: tuple[int, int, int], num_classes: int) -> None:
    """The network's Keras code: a download button and an expander that shows it."""
    code = export_keras_code(spec, tuple(input_shape), int(num_classes))
    st.download_button(
        "Download the Keras code", code, file_name=f"{spec.preset}_{spec.data.dataset.rsplit('/', 1)[-1]}_model.py",
        mime="text/x-python", icon=":material/download:", key="arch_download",
    )
    with st.expander("Keras code"):
        st.code(code, language="python")


def _si(value: float) -> str:
    """A count with an SI prefix, e.g. 1.2 M."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f}"


def render() -> None:
    """Draw the Architecture page."""
    st.title("Architecture")
    st.caption("What the layers do to the shape of the data, what they cost, and the convolution arithmetic behind them.")
    network = choose_network("arch")
    if network is not None:
        describe(network)
        network_section(network)
    st.divider()
    conv_explainer()
