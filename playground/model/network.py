"""From an experiment spec to a compiled Keras CNN, and what the pages need to look inside it.

    model = build_model(spec, dataset.input_shape, dataset.num_classes, x_sample=x_train)
    compile_model(model, spec, steps_per_epoch=len(x_train) // spec.train.batch_size)

The model takes raw pixels (float32 0..255, uint8 arrays may be fed) and
returns class probabilities. Its layers have stable names (listed in
`playground.model.plan`): "image", "augment_*", "normalize",
"block{b}_conv{c}", "block{b}_bn{c}", "block{b}_act{c}", "block{b}_shortcut",
"block{b}_shortcut_bn", "block{b}_add", "block{b}_pool", "block{b}_dropout",
"flatten" or "global_pool", "dense{k}_dropout", "dense{k}", "dense{k}_act",
"logits_dropout", "logits", "probabilities".

Every Keras model and layer the web server makes is made under `BUILD_LOCK`
(see there): `build_model` and `export_keras_code` take it themselves.

Training is about twice as fast on a CPU when TensorFlow is imported with
TF_ENABLE_ONEDNN_OPTS=1 (TensorFlow turns oneDNN on by itself only on CPUs
with AVX-512 VNNI/BF16 or AMX); it must be in the environment before the
process first imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
from typing import Any, Iterator, Mapping

import keras
import numpy as np
from keras import ops

from playground.model import code_export
from playground.model import plan as layer_plan
from playground.model import preprocess
from playground.model.table import layer_table
from playground.spec.experiment import ExperimentSpec, SpecError
from playground.spec.validation import validate

__all__ = [
    "BUILD_LOCK",
    "build_model",
    "compile_model",
    "conv_layer_names",
    "layer_table",
    "export_keras_code",
    "OneCycle",
    "SmoothedSparseCrossentropy",
    "adapt_whitening",
    "predict_probabilities",
    "learning_rate_schedule",
    "DEFAULT_STEPS_PER_EXECUTION",
]

# Training steps run per call into TensorFlow (see `compile_model`). Measured on
# Fashion-MNIST, batch 128, one CPU thread: 1, 8 and 32 steps cost the same within
# noise (0.26-0.28 ms per image for 16/32 filters, 0.64-0.68 ms for 32/64), so 1
# keeps every batch visible to progress callbacks, pause and stop.
DEFAULT_STEPS_PER_EXECUTION = 1

# The metric the reported losses come from: the training objective adds the L2 penalty and label smoothing to it.
CROSS_ENTROPY = "cross_entropy"

# Held while Keras layers or models are made in this process. Every session of the
# web server runs in its own thread of one process, and Keras does not promise that
# making layers and models from several threads at once is safe. Taken by
# `build_model` (so `RunStore.load_model` and bundle imports too), `export_keras_code`
# and the sub-models of `analysis.activations`. Reentrant: a holder may build again.
BUILD_LOCK = threading.RLock()


def build_model(
    spec: ExperimentSpec,
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    x_sample: np.ndarray | None = None,
) -> keras.Model:
    """The functional Keras model of `spec`, with seeded initial weights (and data-set ones).

    The same spec and seed give the same initial weights, augmentation and
    dropout draws. Impossible settings raise before any Keras layer is made.

    Args:
        spec: the experiment; its preprocess and arch sections and its seed are used.
        input_shape: (H, W, C) of the images.
        num_classes: number of classes (units of "logits"), at least 2.
        x_sample: training images (uint8 or float 0..255, (N, H, W, C)) whose
            per-channel mean and variance the "dataset" normaliser takes, and
            whose 2x2 patches set the patch-whitening filters. Without it a
            "dataset" model starts with mean 0 and variance 1 and the
            whitening filters at zero, as when it is rebuilt to load saved
            weights (which hold all of them).

    Returns:
        An uncompiled `keras.Model` from input "image" to output "probabilities".

    Raises:
        SpecError: for an impossible spec, input shape or class count.
    """
    input_shape = _check_shapes(spec, input_shape, num_classes)
    adapt = spec.preprocess.normalization == "dataset" and x_sample is not None
    if adapt:
        x_sample = np.asarray(x_sample)
        if x_sample.shape[1:] != input_shape:
            raise SpecError(f"x_sample must hold images of the input shape {input_shape}. Received: x_sample.shape={x_sample.shape}")
    with BUILD_LOCK:
        model = layer_plan.wire(layer_plan.plan_layers(spec, input_shape, num_classes), input_shape)
        model.test_time_augmentation = spec.preprocess.test_time_augmentation  # read by `predict_probabilities`
        if adapt:
            preprocess.adapt_normalizer(model.get_layer("normalize"), x_sample)
        if spec.arch.patch_whitening and x_sample is not None:
            adapt_whitening(model, np.asarray(x_sample))
    return model


def predict_probabilities(model: keras.Model, x):
    """The class probabilities the playground reports for images: dropout and augmentation off.

    With the spec's test-time augmentation (the model's `test_time_augmentation`,
    set by `build_model`), a weighted mean over views of each image, as the
    CIFAR-10 speed records do: "flip" averages the image and its mirror image;
    "shift" gives the image half the weight and its copies shifted one pixel
    up-left and down-right (edges reflected) a quarter each; "flip_shift" does
    "shift" for the image and for its mirror image and averages the two. Every
    score and prediction of a run goes through here.

    Args:
        model: a model from `build_model`.
        x: (N, H, W, C) raw pixels 0..255, a tensor or an array.

    Returns:
        (N, num_classes) probabilities, a tensor.
    """
    views = getattr(model, "test_time_augmentation", "none")
    if views == "none":
        return model(x, training=False)
    x = ops.convert_to_tensor(x)
    images = [x, ops.flip(x, axis=2)] if views in ("flip", "flip_shift") else [x]
    total = 0.0
    for image in images:
        probabilities = model(image, training=False)
        if views in ("shift", "flip_shift"):
            # Reflect one pixel on every side, then take the windows one pixel up-left and down-right of centre.
            height, width = image.shape[1], image.shape[2]
            padded = ops.pad(image, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")  # (N, H + 2, W + 2, C)
            shifted = [padded[:, :height, :width], padded[:, 2:, 2:]]
            probabilities = 0.5 * probabilities + 0.25 * sum(model(view, training=False) for view in shifted)
        total = total + probabilities
    return total / len(images)


# Images whose patches set the whitening filters (evenly spaced over the sample; the exported code says 5000 too).
WHITENING_SAMPLE = 5000


def adapt_whitening(model: keras.Model, x_sample: np.ndarray) -> None:
    """Set the "whiten" layer's filters from training images, normalised as the layer receives them.

    Args:
        model: a model from `build_model` with patch whitening.
        x_sample: training images (N, H, W, C), 0..255.
    """
    layer = model.get_layer("whiten")
    x = x_sample[:: max(1, len(x_sample) // WHITENING_SAMPLE)][:WHITENING_SAMPLE]
    before = keras.Model(model.inputs, layer.input)  # the input and its normalisation (augmentation is off outside training)
    layer.adapt(before.predict(x.astype(np.float32), batch_size=500, verbose=0))


def export_keras_code(spec: ExperimentSpec, input_shape: tuple[int, int, int], num_classes: int) -> str:
    """Runnable Keras code of `spec`'s model (see `code_export.export_keras_code`), written under `BUILD_LOCK`.

    The code notes each layer's output shape, read from the layers of a model
    wired for that purpose, hence the lock.

    Args:
        spec: the experiment.
        input_shape: (H, W, C) of the images.
        num_classes: number of classes.

    Returns:
        Python source with a `build_model()` function.

    Raises:
        SpecError: for an impossible spec.
    """
    with BUILD_LOCK:
        return code_export.export_keras_code(spec, input_shape, num_classes)


def _check_shapes(spec: ExperimentSpec, input_shape, num_classes: int) -> tuple[int, int, int]:
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise SpecError(f"The input shape must be (height, width, channels) with positive sizes. Received: input_shape={tuple(input_shape)}")
    if num_classes < 2:
        raise SpecError(f"A classifier needs at least 2 classes. Received: num_classes={num_classes}")
    validate(spec, shape)
    return shape


@keras.saving.register_keras_serializable(package="playground")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """One-cycle learning rate: a linear warm-up to `peak`, then a cosine decay.

    Starts at peak * start_factor, reaches `peak` after warmup_fraction of
    `total_steps`, and ends at peak * end_factor (Smith & Topin 2017).

    Args:
        peak: the highest learning rate.
        total_steps: steps of the whole run.
        warmup_fraction: share of the steps spent warming up.
        start_factor: first learning rate as a fraction of `peak`.
        end_factor: last learning rate as a fraction of `peak`.
    """

    def __init__(self, peak, total_steps, warmup_fraction=0.25, start_factor=0.04, end_factor=0.01):
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_fraction = float(warmup_fraction)
        self.start_factor = float(start_factor)
        self.end_factor = float(end_factor)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = max(1.0, round(self.total_steps * self.warmup_fraction))
        start, end = self.peak * self.start_factor, self.peak * self.end_factor
        rising = start + (self.peak - start) * step / warmup
        progress = ops.clip((step - warmup) / max(1.0, self.total_steps - warmup), 0.0, 1.0)
        falling = end + (self.peak - end) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < warmup, rising, falling)

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_fraction": self.warmup_fraction,
            "start_factor": self.start_factor,
            "end_factor": self.end_factor,
        }


def learning_rate_schedule(spec: ExperimentSpec, steps_per_epoch: int):
    """The learning rate of `spec.train` over `steps_per_epoch * epochs` steps.

    Returns:
        A float for "constant"; otherwise a Keras LearningRateSchedule:
        "step" x0.1 at 50% and x0.01 at 75% of the steps, "cosine" decay to 0,
        "one_cycle" (`OneCycle`).
    """
    t = spec.train
    total = max(1, int(steps_per_epoch) * t.epochs)
    schedules = keras.optimizers.schedules
    if t.schedule == "step":
        first = max(1, round(total * 0.5))
        second = max(first + 1, round(total * 0.75))
        return schedules.PiecewiseConstantDecay([first, second], [t.learning_rate, t.learning_rate * 0.1, t.learning_rate * 0.01])
    if t.schedule == "cosine":
        return schedules.CosineDecay(t.learning_rate, decay_steps=total)
    if t.schedule == "one_cycle":
        return OneCycle(t.learning_rate, total)
    return t.learning_rate


class _WarmingAverage:
    """Mixin for a Keras optimizer built with `use_ema`: the average's momentum grows as t / (t + 10) over the
    first t steps until it reaches `ema_momentum` (0.99 from step 990).

    Keras' own average starts as the first step's weights and keeps the full
    momentum from then on, so a short run (a few dozen steps) would end near
    its untrained start; this one averages about the last tenth of a short
    run's steps, as TensorFlow's `ExponentialMovingAverage` does with
    `num_updates`.
    """

    def _update_model_variables_moving_average(self, trainable_variables):
        steps = ops.cast(self.iterations, "float32")  # steps before this one: 0 at the first, which copies the weights
        momentum = ops.minimum(self.ema_momentum, steps / (steps + 10.0))
        for variable, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is not None:
                m = ops.cast(momentum, variable.dtype)
                average.assign(m * average + (1.0 - m) * variable)


# name -> (Keras optimizer class, its options)
_OPTIMIZERS = {
    "sgd": (keras.optimizers.SGD, {}),
    "momentum": (keras.optimizers.SGD, {"momentum": 0.9}),
    "nesterov": (keras.optimizers.SGD, {"momentum": 0.9, "nesterov": True}),
    "adagrad": (keras.optimizers.Adagrad, {}),
    "rmsprop": (keras.optimizers.RMSprop, {}),
    "adam": (keras.optimizers.Adam, {}),
    "adamw": (keras.optimizers.AdamW, {}),
}
# Each of those classes with _WarmingAverage, registered (as "playground>AveragingAdam", ...) so a saved model
# whose optimizer averages its weights loads again wherever this module is imported.
_AVERAGING_OPTIMIZERS: dict[type, type] = {
    cls: keras.saving.register_keras_serializable(package="playground", name=f"Averaging{cls.__name__}")(
        type(f"Averaging{cls.__name__}", (_WarmingAverage, cls), {"__module__": __name__}))
    for cls, _ in _OPTIMIZERS.values()
}


def _optimizer(name: str, learning_rate, weight_averaging: float = 0.0) -> keras.optimizers.Optimizer:
    """The optimizer `name` at `learning_rate`; with `weight_averaging` > 0 it keeps a moving average of the
    trainable weights at that momentum (`_WarmingAverage`), which `fit` copies into the model when it ends."""
    if name not in _OPTIMIZERS:
        raise SpecError(f"Unknown optimizer {name!r}: choose one of {', '.join(_OPTIMIZERS)}.", "optimizer")
    cls, options = _OPTIMIZERS[name]
    if weight_averaging:
        cls = _AVERAGING_OPTIMIZERS[cls]
        options = {**options, "use_ema": True, "ema_momentum": weight_averaging}
    return cls(learning_rate, **options)


def _weight_averages(model: keras.Model) -> list:
    """The optimizer's moving averages of `model.trainable_variables` (weight averaging), in their order; [] without."""
    optimizer = getattr(model, "optimizer", None)
    if not getattr(optimizer, "use_ema", False):
        return []
    return list(getattr(optimizer, "_model_variables_moving_average", None) or [])


@contextlib.contextmanager
def averaged_weights(model: keras.Model) -> Iterator[None]:
    """Inside the block the model holds its weight averages, after it the weights as trained.

    So validation during training scores what training will end with: `fit`
    copies the averages into the model when it ends. Without weight
    averaging, or before the first step has set the averages, nothing changes.

    Args:
        model: a compiled model.
    """
    averages = _weight_averages(model) if int(model.optimizer.iterations) > 0 else []
    pairs = [(v, a) for v, a in zip(model.trainable_variables, averages) if a is not None]
    trained = [np.array(v.numpy()) for v, _ in pairs]  # copies of the values as trained
    for variable, average in pairs:
        variable.assign(average)
    try:
        yield
    finally:
        for (variable, _), value in zip(pairs, trained):
            variable.assign(value)


def restart_weight_average(model: keras.Model) -> None:
    """Make the optimizer's moving average of the weights (weight averaging) equal the model's weights now.

    After weights are put back (a diverged run's last good epoch), the average
    still holds what the bad steps left in it, and `fit` would copy that into
    the model when it ends; this starts it again from the weights put back.

    Args:
        model: a compiled model; nothing changes when its optimizer keeps no average.
    """
    for variable, average in zip(model.trainable_variables, _weight_averages(model)):
        if average is not None:
            average.assign(variable)


def compile_model(
    model: keras.Model,
    spec: ExperimentSpec,
    steps_per_epoch: int,
    *,
    steps_per_execution: int = DEFAULT_STEPS_PER_EXECUTION,
) -> None:
    """Compile `model` with the optimizer, schedule, weight averaging, loss and metric of `spec.train`.

    The loss is sparse categorical cross-entropy on the "probabilities"
    output (with `label_smoothing`, towards smoothed targets) plus the L2
    penalty of `weight_decay`; Keras computes it from the softmax's logits,
    so it stays finite for confident mistakes. The metrics are "accuracy" and
    CROSS_ENTROPY, the plain cross-entropy of the predictions: the loss the
    curves and scores report (see `reported_loss`), comparable between runs
    with and without weight decay or label smoothing.

    Args:
        model: a model from `build_model`.
        spec: the experiment; its train section is used.
        steps_per_epoch: batches per epoch, for the length of the schedule.
        steps_per_execution: batches run per call into TensorFlow; more
            saves Python overhead per batch, but batch callbacks then fire
            only every that many batches.
    """
    if steps_per_epoch < 1:
        raise SpecError(f"steps_per_epoch must be at least 1. Received: steps_per_epoch={steps_per_epoch}")
    model.compile(
        optimizer=_optimizer(spec.train.optimizer, learning_rate_schedule(spec, steps_per_epoch), spec.train.weight_averaging),
        loss=SmoothedSparseCrossentropy(spec.train.label_smoothing) if spec.train.label_smoothing else keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy", keras.metrics.SparseCategoricalCrossentropy(name=CROSS_ENTROPY)],
        steps_per_execution=steps_per_execution,
    )


def reported_loss(scores: Mapping[str, Any]) -> float:
    """The loss to show from Keras logs or `evaluate` scores: the predictions' cross-entropy.

    Args:
        scores: {name: value} from a compiled model's logs or `evaluate(return_dict=True)`.

    Returns:
        The CROSS_ENTROPY metric; "loss" for a model compiled without it (NaN without either).
    """
    return float(scores.get(CROSS_ENTROPY, scores.get("loss", math.nan)))


@keras.saving.register_keras_serializable(package="playground")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer labels against targets with label smoothing.

    The target of class y is (1 - s) on y plus s / K on every one of the K
    classes, so the loss is (1 - s) * CE(y) + s * mean over classes of
    -log p (Szegedy et al. 2016). Keras' sparse loss has no smoothing, and
    one-hot labels would change the data pipeline.

    Args:
        smoothing: s, between 0 and 1.
    """

    def __init__(self, smoothing=0.1, name="smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smoothing = float(smoothing)

    def call(self, y_true, y_pred):
        # y_pred: (batch, K) probabilities of the softmax layer, which keeps its logits for exact logs.
        logits = getattr(y_pred, "_keras_logits", None)
        log_p = ops.log_softmax(logits, axis=-1) if logits is not None else ops.log(ops.clip(y_pred, keras.backend.epsilon(), 1.0))
        hard = keras.losses.sparse_categorical_crossentropy(y_true, y_pred)  # (batch,), from the logits when it can
        return (1.0 - self.smoothing) * hard - self.smoothing * ops.mean(log_p, axis=-1)

    def get_config(self):
        return {**super().get_config(), "smoothing": self.smoothing}


_CONV_NAME = re.compile(r"^block(\d+)_conv(\d+)$")


def conv_layer_names(model: keras.Model) -> list[str]:
    """Names of the conv layers of the main path, block by block ("block1_conv1", ...).

    The 1x1 shortcut projections of residual blocks are not included.
    """
    found = [(tuple(map(int, m.groups())), layer.name) for layer in model.layers if (m := _CONV_NAME.match(layer.name))]
    return [name for _, name in sorted(found)]
