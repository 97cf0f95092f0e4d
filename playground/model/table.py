"""The table of a model's layers: output shape, parameters, FLOPs and receptive field.

Computed from a built model (no data needed), for the Architecture page's
live table and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from playground.spec.arithmetic import receptive_field

# Layers that end the spatial part: their outputs have no receptive field.
FLATTENING = (keras.layers.Flatten, keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
_POOLING = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)


@dataclass(frozen=True)
class LayerRow:
    """One layer of the table.

    Attributes:
        name: the layer name.
        kind: the Keras class name, e.g. "Conv2D".
        output_shape: output shape without the batch axis, e.g. (28, 28, 32).
        params: weights of the layer, trainable and not (batch-norm moving
            statistics and the dataset normaliser's mean/variance count too),
            so the rows add up to `model.count_params()`.
        flops: floating-point operations for one image, forward pass:
            2 x multiply-adds of Conv2D and Dense layers (bias additions not
            counted); 0 for every other layer.
        receptive_field: side of the square of input pixels one output unit
            depends on (longest path through residual blocks); None from the
            flatten / global pool layer on.
    """

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    flops: int
    receptive_field: int | None


def layer_table(model: keras.Model) -> list[LayerRow]:
    """One `LayerRow` per layer of a functional model, input first.

    Args:
        model: a built functional model (e.g. from `build_model`).

    Returns:
        The rows in the model's layer order.
    """
    chains: dict[str, list[tuple[int, int]] | None] = {}
    rows = []
    for layer in model.layers:
        parents = [node.operation for node in layer._inbound_nodes[0].parent_nodes] if layer._inbound_nodes else []
        input_shape = tuple(parents[0].output.shape[1:]) if parents else ()
        output_shape = tuple(layer.output.shape[1:])
        chain = chains[layer.name] = _chain(layer, [chains[p.name] for p in parents])
        rows.append(
            LayerRow(
                name=layer.name,
                kind=type(layer).__name__,
                output_shape=output_shape,
                params=int(layer.count_params()),
                flops=_flops(layer, input_shape, output_shape),
                receptive_field=None if chain is None else _field(chain),
            )
        )
    return rows


def _chain(layer, parent_chains: list) -> list[tuple[int, int]] | None:
    """(kernel, stride) windows from the input to this layer's output along its longest path."""
    if any(c is None for c in parent_chains) or isinstance(layer, FLATTENING):
        return None
    # Several inputs (residual add): the path that sees the most pixels.
    chain = max(parent_chains, key=_field) if parent_chains else []
    if isinstance(layer, keras.layers.Conv2D):
        return chain + [(layer.kernel_size[0], layer.strides[0])]
    if isinstance(layer, _POOLING):
        return chain + [(layer.pool_size[0], layer.strides[0])]
    return chain


def _field(chain: list[tuple[int, int]]) -> int:
    """Receptive field after a chain of windows (1 pixel for the empty chain)."""
    return receptive_field(chain)[-1] if chain else 1


def _flops(layer, input_shape: tuple, output_shape: tuple) -> int:
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        out_h, out_w, out_c = output_shape
        return 2 * out_h * out_w * out_c * kh * kw * input_shape[-1]
    if isinstance(layer, keras.layers.Dense):
        return 2 * input_shape[-1] * layer.units
    return 0
