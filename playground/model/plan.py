"""The network of a spec as plain data: one list of layer steps, two uses.

`plan_layers(spec, input_shape, num_classes)` writes the model as a short
program of steps ("x = Conv2D(...)(x)"). `wire(steps, input_shape)` runs that
program with real Keras layers; `render_call(step)` writes it as Python
source. `build_model` and `export_keras_code` both start from the same plan,
so the exported code is the model that trains, layer for layer.

Layer names (b, c, k count from 1):

    image -> augment_crop, augment_flip, augment_rotation, augment_shift,
             augment_brightness, augment_contrast (those switched on)
          -> normalize
          -> [whiten whiten_act] (patch whitening)
          -> per block b: block{b}_conv{c} [block{b}_bn{c}] block{b}_act{c} (c = 1..convs_per_block)
             with residual: block{b}_shortcut [block{b}_shortcut_bn] (projection when the
             shape changes) and block{b}_add before the last activation of the block;
             then block{b}_pool (unless pooling is "none"; with pool_first right after
             block{b}_conv1 instead) and block{b}_dropout (if conv_dropout > 0)
          -> flatten | global_pool
          -> per hidden layer k: [dense{k}_dropout] dense{k} dense{k}_act
          -> [logits_dropout] logits [logit_scale] -> probabilities
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import keras

from playground.model import preprocess
from playground.model.layers import FusedBatchNormalization, PatchWhitening
from playground.spec.experiment import ExperimentSpec

# Momentum of the batch-norm moving statistics: 0.9 settles within the few
# hundred steps of a short CPU run (Keras' 0.99 needs thousands).
BN_MOMENTUM = 0.9
# Slope of leaky ReLU for negative inputs.
LEAKY_SLOPE = 0.1


@dataclass(frozen=True)
class Init:
    """A seeded Keras initializer, written as `keras.initializers.<cls>(**kwargs)`."""

    cls: str
    kwargs: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class L2:
    """An L2 kernel regularizer, written as `keras.regularizers.L2(rate)`."""

    rate: float


@dataclass(frozen=True)
class Literal:
    """A value written in the code as a readable expression, e.g. `1 / 255`."""

    text: str
    value: Any


@dataclass(frozen=True)
class Step:
    """One line of the model program: `output = cls(**kwargs)(inputs)`.

    A step with `cls` None is an alias: `output = inputs[0]` (keeps a block's input for its shortcut).
    """

    output: str  # variable the result is assigned to
    cls: str | None  # layer class in keras.layers or playground.preprocess
    kwargs: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ("x",)  # variables passed to the layer (a list when several)

    @property
    def name(self) -> str:
        """The layer name ("" for an alias)."""
        return self.kwargs.get("name", "")


# Names of the initializers in the spec -> Keras initializer class and arguments.
INITIALIZERS = {
    "he": ("HeNormal", ()),
    "glorot": ("GlorotUniform", ()),
    "normal_0.01": ("RandomNormal", (("mean", 0.0), ("stddev", 0.01))),
    "truncated_normal_0.1": ("TruncatedNormal", (("mean", 0.0), ("stddev", 0.1))),
}
# Names of the activations in the spec -> Keras layer class and arguments (each its own layer).
ACTIVATION_LAYERS = {
    "relu": ("ReLU", {}),
    "leaky_relu": ("LeakyReLU", {"negative_slope": LEAKY_SLOPE}),
    "elu": ("ELU", {}),
    "gelu": ("Activation", {"activation": "gelu"}),
    "tanh": ("Activation", {"activation": "tanh"}),
    "sigmoid": ("Activation", {"activation": "sigmoid"}),
    "linear": ("Activation", {"activation": "linear"}),
}


def plan_layers(spec: ExperimentSpec, input_shape: tuple[int, int, int], num_classes: int) -> list[Step]:
    """The model of `spec` as a list of steps, input to probabilities.

    Args:
        spec: a validated experiment spec.
        input_shape: (H, W, C) of the images.
        num_classes: units of the "logits" layer.

    Returns:
        Steps whose first input is the variable "x" holding the image input
        and whose last output is "outputs" (the probabilities).
    """
    a, seed = spec.arch, spec.seed
    steps: list[Step] = []

    def add(cls: str | None, name: str = "", inputs: tuple[str, ...] = ("x",), output: str = "x", **kwargs) -> None:
        if name:
            kwargs["name"] = name
        steps.append(Step(output, cls, kwargs, inputs))

    def weights(name: str) -> dict[str, Any]:
        init_cls, init_kwargs = INITIALIZERS[a.init]
        out = {"kernel_initializer": Init(init_cls, init_kwargs + (("seed", preprocess.layer_seed(seed, name)),))}
        if a.weight_decay:
            out["kernel_regularizer"] = L2(a.weight_decay)
        return out

    def activation(name: str, output: str = "x") -> None:
        cls, kwargs = ACTIVATION_LAYERS[a.activation]
        add(cls, name, inputs=(output,), output=output, **kwargs)

    for cls, kwargs in preprocess.augmentation_configs(spec.preprocess, seed):
        add(cls, **kwargs)
    cls, kwargs = preprocess.normalization_config(spec.preprocess)
    if cls == "Rescaling":
        kwargs = {**kwargs, "scale": Literal("1 / 255", kwargs["scale"])}
    add(cls, **kwargs)

    channels = input_shape[2]
    if a.patch_whitening:
        # (H, W, C) -> (H - 1, W - 1, 8C): each 2x2 patch's principal directions and their negatives.
        channels = 8 * channels
        add("PatchWhitening", "whiten", filters=channels, kernel_size=2)
        activation("whiten_act")

    def pool(b: int) -> None:
        if a.pooling != "none":
            pool_cls = "MaxPooling2D" if a.pooling == "max" else "AveragePooling2D"
            add(pool_cls, f"block{b}_pool", pool_size=2, strides=2, padding="valid")

    for b, filters in enumerate(a.filters, start=1):
        if a.residual:
            add(None, inputs=("x",), output="block_input")
        for c in range(1, a.convs_per_block + 1):
            stride = a.stride if c == 1 else 1
            add("Conv2D", f"block{b}_conv{c}", filters=filters, kernel_size=a.kernel_size, strides=stride,
                padding=a.padding, use_bias=not a.batch_norm, **weights(f"block{b}_conv{c}"))
            if a.pool_first and c == 1:
                pool(b)  # the block's batch norm, activation and later convs then run on the 4x smaller map
            if a.batch_norm:
                add("FusedBatchNormalization", f"block{b}_bn{c}", momentum=BN_MOMENTUM)
            if a.residual and c == a.convs_per_block:
                shortcut = "block_input"
                if a.stride != 1 or channels != filters:
                    # 1x1 projection so the shortcut has the block's shape.
                    add("Conv2D", f"block{b}_shortcut", inputs=("block_input",), output="shortcut", filters=filters,
                        kernel_size=1, strides=a.stride, padding="same", use_bias=not a.batch_norm,
                        **weights(f"block{b}_shortcut"))
                    if a.batch_norm:
                        add("FusedBatchNormalization", f"block{b}_shortcut_bn", inputs=("shortcut",), output="shortcut",
                            momentum=BN_MOMENTUM)
                    shortcut = "shortcut"
                add("Add", f"block{b}_add", inputs=("x", shortcut))
            activation(f"block{b}_act{c}")
        if not a.pool_first:
            pool(b)
        channels = filters
        if a.conv_dropout:
            add("Dropout", f"block{b}_dropout", rate=a.conv_dropout, seed=preprocess.layer_seed(seed, f"block{b}_dropout"))

    if a.global_pool:
        add("GlobalMaxPooling2D" if a.global_pool_kind == "max" else "GlobalAveragePooling2D", "global_pool")
    else:
        add("Flatten", "flatten")
    for k, units in enumerate(a.dense_units, start=1):
        if a.dropout:
            add("Dropout", f"dense{k}_dropout", rate=a.dropout, seed=preprocess.layer_seed(seed, f"dense{k}_dropout"))
        add("Dense", f"dense{k}", units=units, **weights(f"dense{k}"))
        activation(f"dense{k}_act")
    if a.dropout:
        add("Dropout", "logits_dropout", rate=a.dropout, seed=preprocess.layer_seed(seed, "logits_dropout"))
    add("Dense", "logits", units=num_classes, **weights("logits"))
    if a.logit_scale != 1.0:
        add("Rescaling", "logit_scale", scale=a.logit_scale)  # logits / temperature; "logits" keeps the raw ones
    # Softmax in float32 as its own layer: Grad-CAM and the loss can reach the logits.
    add("Softmax", "probabilities", output="outputs", dtype="float32")
    return steps


# Layer classes of the playground that a plan may name, next to those of keras.layers.
CUSTOM_LAYERS = {**preprocess.CUSTOM_LAYERS, "FusedBatchNormalization": FusedBatchNormalization,
                 "PatchWhitening": PatchWhitening}
# How the exported code writes them: the fused batch norm is plain Keras batch norm (same weights, same maths).
_EXPORTED_AS = {"FusedBatchNormalization": "layers.BatchNormalization"}


def make_layer(step: Step) -> keras.layers.Layer:
    """The Keras layer of a (non-alias) step."""
    cls = CUSTOM_LAYERS.get(step.cls) or getattr(keras.layers, step.cls)
    return cls(**{key: _value(v) for key, v in step.kwargs.items()})


def wire(steps: list[Step], input_shape: tuple[int, int, int], name: str = "cnn") -> keras.Model:
    """Run the plan with real layers: a functional model from `keras.Input(name="image")`."""
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    values: dict[str, Any] = {"x": inputs}
    for step in steps:
        args = [values[v] for v in step.inputs]
        if step.cls is None:
            values[step.output] = args[0]
        else:
            values[step.output] = make_layer(step)(args if len(args) > 1 else args[0])
    return keras.Model(inputs, values["outputs"], name=name)


def render_call(step: Step) -> str:
    """Python source of a step's layer, e.g. `layers.Conv2D(32, ...)` (custom layers by bare class name)."""
    cls = _EXPORTED_AS.get(step.cls) or (step.cls if step.cls in CUSTOM_LAYERS else f"layers.{step.cls}")
    args = ", ".join(f"{key}={_source(v)}" for key, v in step.kwargs.items())
    return f"{cls}({args})"


def _value(v: Any) -> Any:
    if isinstance(v, Init):
        return getattr(keras.initializers, v.cls)(**dict(v.kwargs))
    if isinstance(v, L2):
        return keras.regularizers.L2(v.rate)
    if isinstance(v, Literal):
        return v.value
    return v


def _source(v: Any) -> str:
    if isinstance(v, Init):
        return f"keras.initializers.{v.cls}({', '.join(f'{k}={_source(x)}' for k, x in v.kwargs)})"
    if isinstance(v, L2):
        return f"keras.regularizers.L2({v.rate!r})"
    if isinstance(v, Literal):
        return v.text
    if isinstance(v, str):
        return json.dumps(v)
    return repr(v)
