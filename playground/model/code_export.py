"""Keras source code of a spec's model, to download and run without the playground.

The code is written from the same layer plan that `build_model` runs, so it
rebuilds the same layers with the same names, seeds and shapes.
"""

from __future__ import annotations

import inspect

from playground.model import layers as own_layers
from playground.model import plan as layer_plan
from playground.model import preprocess
from playground.spec.experiment import ExperimentSpec
from playground.spec.presets import PRESETS
from playground.spec.validation import validate

# How the exported docstring names each test-time augmentation's views.
_TTA_WORDS = {
    "flip": "each image and its mirror image",
    "shift": "each image (half) and its copies shifted one pixel up-left and down-right (a quarter each)",
    "flip_shift": "each image and its mirror image (a quarter each) and those two shifted one pixel up-left and "
                  "down-right (an eighth each)",
}
# The custom layers a plan may use, exported as the very classes `build_model` runs.
_CUSTOM_LAYERS = {"RandomPadCrop": preprocess.RandomPadCrop, "PerImageStandardization": preprocess.PerImageStandardization,
                  "PatchWhitening": own_layers.PatchWhitening}


def _layer_source(cls: type) -> str:
    """The source of one of our layer classes, without the registration decorator (the export needs none)."""
    lines = inspect.getsource(cls).splitlines()
    return "\n" + "\n".join(line for line in lines if not line.startswith("@keras.saving.register_keras_serializable")) + "\n"


def export_keras_code(spec: ExperimentSpec, input_shape: tuple[int, int, int], num_classes: int) -> str:
    """Runnable Keras code with a `build_model()` function that rebuilds the model of `spec`.

    Args:
        spec: the experiment.
        input_shape: (H, W, C) of the images.
        num_classes: number of classes.

    Returns:
        Python source: imports, any small custom layers the model uses,
        `build_model()` (`build_model(x_sample=None)` for the "dataset"
        normaliser and patch whitening, which take their values from
        training images) with one line per layer and its output shape as a
        comment, and a `__main__` block that prints the summary.

    Raises:
        SpecError: for an impossible spec.
    """
    input_shape = tuple(int(v) for v in input_shape)
    validate(spec, input_shape)
    steps = layer_plan.plan_layers(spec, input_shape, num_classes)
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in layer_plan.wire(steps, input_shape).layers}
    classes = {step.cls for step in steps}
    dataset_norm = "Normalization" in classes
    takes_sample = dataset_norm or "PatchWhitening" in classes
    t = spec.train

    # The preset is free text from a link: name it only when it is a known preset.
    preset = spec.preset if spec.preset in PRESETS else "custom"
    lines = [
        f'"""CNN Playground model "{preset}" (spec {spec.spec_id()}), seed {spec.seed}.',
        "",
        f"Input: raw pixels 0..255, shape {input_shape}; output: probabilities of {num_classes} classes.",
        f"Trained in the playground with {t.optimizer}, learning rate {t.learning_rate:g} ({t.schedule}),",
        f"batch size {t.batch_size}, {t.epochs} epochs, sparse categorical cross-entropy"
        + (f" with label smoothing {t.label_smoothing:g}." if t.label_smoothing else "."),
        *([f"Its final weights are a moving average of the trained weights over the steps (momentum {t.weight_averaging:g})."]
          if t.weight_averaging else []),
        *([f"Its test accuracy and predictions average the probabilities of {_TTA_WORDS[tta]}."]
          if (tta := spec.preprocess.test_time_augmentation) != "none" else []),
        '"""',
        "",
    ]
    if classes & {"PerImageStandardization"}:
        lines.append("import math")
        lines.append("")
    if "PatchWhitening" in classes:
        lines += ["import numpy as np", ""]
    lines += ["import keras", "from keras import layers"]
    if classes & {"PerImageStandardization", "RandomPadCrop"}:
        lines[-1] = "from keras import layers, ops"
    lines.append("")
    lines += [_layer_source(cls) for name, cls in _CUSTOM_LAYERS.items() if name in classes]

    lines += ["", f"def build_model({'x_sample=None' if takes_sample else ''}):"]
    if takes_sample:
        lines.append(f'    """x_sample: training images (N, H, W, C){_SAMPLE_USES[(dataset_norm, "PatchWhitening" in classes)]}."""')
    lines.append(f'    inputs = keras.Input(shape={input_shape!r}, name="image")  {_shape_comment(input_shape)}')
    lines.append("    x = inputs")
    for step in steps:
        lines += _render(step, shapes)
    lines += ['    return keras.Model(inputs, outputs, name="cnn")', "", ""]
    lines += ['if __name__ == "__main__":', "    build_model().summary()", ""]
    return "\n".join(lines)


# What x_sample sets, by (dataset normaliser, patch whitening).
_SAMPLE_USES = {
    (True, False): " whose per-channel mean and variance normalise the input",
    (False, True): " whose 2x2 patches set the whitening filters",
    (True, True): " whose per-channel mean and variance normalise the input and whose 2x2 patches set the whitening filters",
}


def _shape_comment(shape: tuple) -> str:
    return f"# (batch, {', '.join(str(v) for v in shape)})"


def _render(step: layer_plan.Step, shapes: dict[str, tuple]) -> list[str]:
    """Source lines of one step, indented for the function body."""
    if step.cls is None:
        return [f"    {step.output} = {step.inputs[0]}  # kept for the shortcut"]
    args = step.inputs[0] if len(step.inputs) == 1 else f"[{', '.join(step.inputs)}]"
    comment = _shape_comment(shapes[step.name])
    if step.cls == "Normalization":
        return [
            f"    normalize = {layer_plan.render_call(step)}",
            "    if x_sample is not None:",
            '        normalize.adapt(x_sample.astype("float32"))',
            f"    {step.output} = normalize({args})  {comment}",
        ]
    if step.cls == "PatchWhitening":
        return [
            f"    whiten_input, whiten = {args}, {layer_plan.render_call(step)}",
            f"    {step.output} = whiten({args})  {comment}",
            "    if x_sample is not None:  # the filters come from the patches of normalised training images",
            "        sample = x_sample[:: max(1, len(x_sample) // 5000)][:5000]  # evenly spaced, as the playground takes them",
        '        whiten.adapt(keras.Model(inputs, whiten_input)(sample.astype("float32")))',
        ]
    return [f"    {step.output} = {layer_plan.render_call(step)}({args})  {comment}"]
