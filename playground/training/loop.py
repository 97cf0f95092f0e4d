"""Training: fit the CNN of an ExperimentSpec on a Dataset, with live progress.

`train` builds the model of a spec (or continues a given one), fits it with
Keras' `model.fit` on a seeded `tf.data` pipeline of the uint8 images, and
reports what happens through plain-dict events: a "start" event, throttled
"batch" events (at most about 10 per second), one "epoch" event per finished
epoch and "probe" events with the feature maps of a probe image; an optional
`on_epoch_end` hook receives the run as it stands after each finished epoch
(what a checkpoint saves). One Keras callback does all the watching: it polls
`should_stop`, blocks in `wait_if_paused`, enforces the spec's time budget and
stops a run whose loss diverges (NaN, inf, or 1000 times its first value),
putting back the weights of the last good epoch.

Equal specs give equal histories on the CPU: every random choice (weights,
sampling, shuffling, dropout, augmentation) follows `spec.seed`, and the
order of the training images in epoch e depends only on (seed, e), so a run
continued with `initial_epoch` sees the same batches as one that never
stopped.

Typical use:

    configure_threads()                          # once per process, before any op
    result = train(spec, load_for_spec(spec), on_progress=print)
    result.history["val_accuracy"][-1], result.test_accuracy
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from playground.data import datasets
from playground.training import devices
from playground.model import network as models
from playground.spec.experiment import ExperimentSpec
from playground.spec.validation import validate

# "interrupted" marks the snapshots passed to `on_epoch_end`: a run that ends there never reached its end.
STOP_REASONS = ("completed", "stopped", "time_budget", "diverged", "interrupted")
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr")
BATCH_EVENT_INTERVAL = 0.1  # seconds between two "batch" events: at most 10 per second
DIVERGENCE_FACTOR = 1e3  # a loss this many times the first loss counts as diverged
PROBE_BLOCKS = 2  # feature maps of this many first conv blocks are sent in "probe" events
EVAL_BATCH_SIZE = 512  # images per step when evaluating validation and test sets
# Learning rates that train well with each optimizer, suggested when a run diverges.
_SAFE_LEARNING_RATES = {
    "sgd": 0.01, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.01,
    "rmsprop": 0.001, "adam": 0.001, "adamw": 0.001,
}

Event = dict[str, Any]


@dataclass
class TrainResult:
    """What a call to `train` produced.

    `history` holds one value per finished epoch for each of HISTORY_KEYS
    (NaN where a value does not exist, e.g. validation with a split of 0),
    including the epochs of earlier calls when a model is continued.
    """

    model: keras.Model  # the trained model (weights of the last good epoch after a divergence)
    history: dict[str, list[float]]  # loss, accuracy, val_loss, val_accuracy, lr per finished epoch
    test_loss: float  # loss on the whole test set at the end (NaN in on_epoch_end snapshots: not evaluated)
    test_accuracy: float  # accuracy on the whole test set at the end (NaN in on_epoch_end snapshots)
    epochs_completed: int  # epochs the model has finished, counting those before `initial_epoch`
    train_seconds: float  # wall time of fitting in this call, pauses excluded, test evaluation excluded
    images_per_second: float  # training images per second of the training steps (first, compiling step excluded)
    stop_reason: str  # "completed", "stopped", "time_budget", "diverged"; "interrupted" in on_epoch_end snapshots
    message: str  # one sentence for people: what happened and the test accuracy, or what to change
    params: int  # number of weights of the model
    initial_first_conv: np.ndarray | None  # (k, k, C_in, F) first conv kernel before any training; None without convs
    test_size: int = 0  # test images evaluated (always the whole test set)


# ---------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------

_threads_lock = threading.Lock()
_threads: tuple[int, int] | None = None


def configure_threads(intra: int | None = None, inter: int | None = None) -> tuple[int, int]:
    """Set TensorFlow's CPU thread pools, once per process, before any TensorFlow op runs.

    TensorFlow fixes its thread pools when it runs its first op, so call this
    first thing in a process that trains (the CLI and the training workers
    do). Later calls, and calls after TensorFlow has started, change nothing
    and return the settings in force.

    Args:
        intra: threads inside one op (a convolution); default: the cores this
            process may use.
        inter: ops run at the same time; default 1 on up to 4 cores (measured
            5% faster than 2 on 2 cores: the convolutions already use every
            core), else 2.

    Returns:
        (intra, inter) in force; 0 means TensorFlow's own default (it had
        already started when this was first called).
    """
    global _threads
    with _threads_lock:
        if _threads is None:
            cores = _usable_cores()
            try:
                tf.config.threading.set_intra_op_parallelism_threads(intra or cores)
                tf.config.threading.set_inter_op_parallelism_threads(inter or (1 if cores <= 4 else 2))
            except RuntimeError:
                pass  # TensorFlow is already running: its pools cannot change any more.
            _threads = (
                tf.config.threading.get_intra_op_parallelism_threads(),
                tf.config.threading.get_inter_op_parallelism_threads(),
            )
        return _threads


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


# ---------------------------------------------------------------------------
# Continuing a model: what earlier calls knew about it.
# ---------------------------------------------------------------------------


@dataclass
class _Past:
    history: dict[str, list[float]]
    initial_first_conv: np.ndarray | None
    first_loss: float | None


_past_of: "weakref.WeakKeyDictionary[keras.Model, _Past]" = weakref.WeakKeyDictionary()


def remember_history(model: keras.Model, history: dict[str, list[float]],
                     initial_first_conv: np.ndarray | None = None) -> None:
    """Tell `train` the epochs a model has already been through, so continuing it extends that history.

    Models returned by `train` are remembered automatically; `RunStore.load_model`
    calls this for models rebuilt from disk.

    Args:
        model: the model.
        history: {key: per-epoch values} as in `TrainResult.history`.
        initial_first_conv: the first conv kernel before the model's first training.
    """
    losses = history.get("loss") or []
    _past_of[model] = _Past(
        history={k: [float(v) for v in history.get(k, [])] for k in HISTORY_KEYS},
        initial_first_conv=initial_first_conv,
        first_loss=float(losses[0]) if losses and math.isfinite(losses[0]) else None,
    )


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def train(
    spec: ExperimentSpec,
    dataset: datasets.Dataset,
    *,
    model: keras.Model | None = None,
    initial_epoch: int = 0,
    on_progress: Callable[[Event], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    wait_if_paused: Callable[[bool], None] | None = None,
    probe_image: np.ndarray | None = None,
    on_epoch_end: Callable[[TrainResult], None] | None = None,
) -> TrainResult:
    """Fit the CNN of `spec` on `dataset` and evaluate it on the test set.

    Args:
        spec: the experiment; validated against the dataset's input shape first.
        dataset: the images (uint8 NHWC) and labels; `spec.data.sample_size`
            and `validation_split` pick the training and validation images.
        model: a model to continue instead of building a new one; it keeps its
            weights and, when already compiled, its optimizer state.
        initial_epoch: epochs `model` has finished; training runs epochs
            initial_epoch + 1 .. spec.train.epochs.
        on_progress: called with each event dict (see the module docstring):
            {"type": "start", "epochs", "initial_epoch", "steps_per_epoch", "batch_size", "params",
             "train_size", "val_size"}
            {"type": "batch", "epoch", "step", "steps", "seen", "loss", "accuracy",
             "images_per_second", "elapsed"}   at most ~10 per second; for a new model a first
             one at step 0 (no "images_per_second"): the untrained model on the first batch
            {"type": "epoch", "epoch", "loss", "accuracy", "val_loss", "val_accuracy",
             "seconds", "images_per_second", "lr", "elapsed"}   after every finished epoch
            {"type": "probe", "epoch", "maps": {layer_name: float32 (H, W, F)}}   when
             `probe_image` is given: once before training (epoch = initial_epoch) and
             after every finished epoch
            Epochs count from 1 (epoch 0 = before training); "step" counts from 1
            within the epoch; "seen" is images trained on in this epoch; val_*
            are None without a validation split.
        should_stop: polled after every batch; True stops training (reason "stopped").
        wait_if_paused: called as wait_if_paused(epoch_end) after every batch
            (False) and every epoch but the last (True); it blocks while the
            user has paused. Time spent in it is not counted anywhere.
        probe_image: one uint8 (H, W, C) image whose feature maps are sent.
        on_epoch_end: called after every finished, non-diverged epoch (after its
            "epoch" and "probe" events, before any pause) with the run so far as
            a TrainResult: `model` is the live model with that epoch's weights
            (save or copy them before returning), `epochs_completed` counts
            that epoch, history and timings are as in the final result, the
            test set is not evaluated (test_loss and test_accuracy NaN,
            test_size 0) and stop_reason is "interrupted". Training waits for it.

    Returns:
        A TrainResult.

    Raises:
        SpecError: when the spec is impossible for this dataset.
        ValueError: when `initial_epoch` leaves nothing to train, the
            training sample is empty or `probe_image` has the wrong shape.
    """
    spec = validate(spec, dataset.input_shape)
    epochs = spec.train.epochs
    if not 0 <= initial_epoch < epochs:
        raise ValueError(
            f"initial_epoch must be between 0 and epochs - 1 = {epochs - 1}. Received: initial_epoch={initial_epoch}"
        )
    if initial_epoch and model is None:
        raise ValueError(f"Continuing from initial_epoch={initial_epoch} needs the model to continue.")
    if probe_image is not None and tuple(np.shape(probe_image)) != tuple(dataset.input_shape):
        raise ValueError(
            f"The probe image must have the dataset's shape {tuple(dataset.input_shape)}. "
            f"Received: probe_image.shape={tuple(np.shape(probe_image))}"
        )
    configure_threads()
    keras.utils.set_random_seed(spec.seed)

    x_train, y_train, x_val, y_val = datasets.split_train_validation(
        dataset, spec.data.sample_size, spec.data.validation_split, spec.seed
    )
    if len(x_train) == 0:
        raise ValueError(
            f"No training images are left after the validation split. Received: sample_size={spec.data.sample_size}, "
            f"validation_split={spec.data.validation_split}"
        )
    batch_size = min(spec.train.batch_size, len(x_train))
    steps_per_epoch = math.ceil(len(x_train) / batch_size)

    with devices.training_strategy().scope():
        if model is None:
            devices.use_mixed_precision()  # float16 compute on GPUs with tensor cores; float32 on the CPU
            model = models.build_model(spec, dataset.input_shape, dataset.num_classes, x_sample=x_train)
        if not getattr(model, "compiled", False):
            models.compile_model(model, spec, steps_per_epoch)

    # The start and, for a new model, its untrained point go out before the probe model and
    # the input pipelines are built, so the page has its first point as early as possible.
    if on_progress is not None:
        on_progress({
            "type": "start", "epochs": epochs, "initial_epoch": initial_epoch, "steps_per_epoch": steps_per_epoch,
            "batch_size": batch_size, "params": int(model.count_params()),
            "train_size": int(len(x_train)), "val_size": int(len(x_val)),
        })
        if initial_epoch == 0:
            on_progress(_untrained_point(model, x_train[:batch_size], y_train[:batch_size], steps_per_epoch))

    past = _past_of.get(model) or _Past({k: [] for k in HISTORY_KEYS}, None, None)
    history = {k: list(past.history.get(k, []))[:initial_epoch] for k in HISTORY_KEYS}
    initial_first_conv = past.initial_first_conv if past.initial_first_conv is not None else _first_conv_kernel(model)

    watcher = _Watcher(
        spec=spec,
        steps_per_epoch=steps_per_epoch,
        batch_size=batch_size,
        train_size=len(x_train),
        history=history,
        first_loss=past.first_loss,
        on_progress=on_progress,
        should_stop=should_stop,
        wait_if_paused=wait_if_paused,
        probe=_Probe(model, probe_image) if probe_image is not None else None,
        validation=_eval_batches(x_val, y_val) if len(x_val) else None,
        initial_epoch=initial_epoch,
        initial_first_conv=initial_first_conv,
        on_epoch_end=on_epoch_end,
    )
    watcher.send_probe(initial_epoch)

    model.fit(
        _training_batches(x_train, y_train, batch_size, spec.seed, initial_epoch, epochs),
        epochs=epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps_per_epoch,
        shuffle=False,  # the pipeline shuffles, by (seed, epoch)
        callbacks=[watcher],
        verbose=0,
    )
    if watcher.stop_reason == "diverged":
        model.set_weights(watcher.good_weights)

    test = model.evaluate(_eval_batches(dataset.x_test, dataset.y_test), verbose=0, return_dict=True)
    test_loss, test_accuracy = float(test["loss"]), float(test["accuracy"])
    epochs_completed = initial_epoch + watcher.epochs_finished
    remember_history(model, history, initial_first_conv)
    return TrainResult(
        model=model,
        history=history,
        test_loss=test_loss,
        test_accuracy=test_accuracy,
        epochs_completed=epochs_completed,
        train_seconds=watcher.elapsed(),
        images_per_second=watcher.images_per_second(),
        stop_reason=watcher.stop_reason,
        message=watcher.message or _final_message(watcher, spec, epochs_completed, test_accuracy),
        params=int(model.count_params()),
        initial_first_conv=initial_first_conv,
        test_size=int(len(dataset.x_test)),
    )


def _untrained_point(model: keras.Model, x: np.ndarray, y: np.ndarray, steps_per_epoch: int) -> Event:
    """The curves' first point: loss and accuracy of the untrained model on the first batch.

    One eager forward pass (inference mode), so it reaches the page before the first
    training step has compiled: the curves start at the loss of guessing.

    Args:
        model: the freshly built model.
        x: (n, H, W, C) uint8 images of the first training batch.
        y: (n,) int labels.
        steps_per_epoch: batches per epoch (for the point's position).

    Returns:
        A "batch" event at step 0 of epoch 1.
    """
    probabilities = model(x, training=False)  # (n, classes)
    loss = keras.losses.sparse_categorical_crossentropy(y, probabilities)  # (n,)
    accuracy = np.mean(np.argmax(np.asarray(probabilities), axis=-1) == y)
    return {"type": "batch", "epoch": 1, "step": 0, "steps": steps_per_epoch, "seen": 0,
            "loss": float(np.mean(np.asarray(loss))), "accuracy": float(accuracy), "elapsed": 0.0}


def _training_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int,
                      first_epoch: int, epochs: int) -> tf.data.Dataset:
    """Shuffled uint8 batches for epochs first_epoch .. epochs - 1, one stream Keras reads epoch by epoch.

    The order of epoch e is a permutation drawn from (seed, e) alone, so it
    does not depend on where an earlier call stopped. One gather per batch
    keeps the pipeline cheap next to the training step.
    """
    images, labels = tf.constant(x), tf.constant(y)  # (N, H, W, C) uint8, (N,) int32
    count = len(x)

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
        )
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)  # (batch,) indices

    return (
        tf.data.Dataset.range(first_epoch, epochs)
        .flat_map(one_epoch)
        .map(lambda index: (tf.gather(images, index), tf.gather(labels, index)))  # (batch, H, W, C), (batch,)
        .prefetch(tf.data.AUTOTUNE)
    )


def _eval_batches(x: np.ndarray, y: np.ndarray) -> tf.data.Dataset:
    """Unshuffled uint8 batches for validation and test."""
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(EVAL_BATCH_SIZE).prefetch(tf.data.AUTOTUNE)


def _first_conv_kernel(model: keras.Model) -> np.ndarray | None:
    names = models.conv_layer_names(model)
    if not names:
        return None
    return np.array(model.get_layer(names[0]).kernel.numpy(), dtype=np.float32)  # (k, k, C_in, F)


class _Probe:
    """Feature maps of one image at the first conv blocks, from a model sharing the trained layers."""

    def __init__(self, model: keras.Model, image: np.ndarray):
        names = probe_layer_names(model)
        self.names = names
        self.image = np.asarray(image, dtype=np.float32)[None]  # (1, H, W, C)
        self.model = keras.Model(model.input, [model.get_layer(n).output for n in names]) if names else None

    def maps(self) -> dict[str, np.ndarray]:
        if self.model is None:
            return {}
        outputs = self.model(self.image, training=False)
        if len(self.names) == 1:
            outputs = [outputs]
        return {n: np.asarray(keras.ops.convert_to_numpy(o)[0], dtype=np.float32) for n, o in zip(self.names, outputs)}


def probe_layer_names(model: keras.Model) -> list[str]:
    """The layers whose outputs "probe" events show: the output of each of the first two conv blocks.

    For block b that is its last activation ("block{b}_act{c}"), or its last
    conv when the block has no activation layer.
    """
    names = []
    for block in range(1, PROBE_BLOCKS + 1):
        in_block = [layer.name for layer in model.layers if layer.name.startswith(f"block{block}_")]
        chosen = [n for n in in_block if n.startswith(f"block{block}_act")] or [
            n for n in in_block if n.startswith(f"block{block}_conv")
        ]
        if chosen:
            names.append(chosen[-1])
    return names


class _Watcher(keras.callbacks.Callback):
    """The one callback: progress events, stop, pause, time budget, divergence, probes, epoch-end hook."""

    def __init__(self, *, spec, steps_per_epoch, batch_size, train_size, history, first_loss,
                 on_progress, should_stop, wait_if_paused, probe, validation, initial_epoch,
                 initial_first_conv, on_epoch_end):
        super().__init__()
        self.spec = spec
        self.epochs = spec.train.epochs
        self.steps_per_epoch = steps_per_epoch
        self.batch_size = batch_size
        self.train_size = train_size
        self.history = history
        self.first_loss = first_loss
        self.on_progress = on_progress
        self.should_stop = should_stop
        self.wait_if_paused = wait_if_paused
        self.probe = probe
        self.validation = validation  # batches evaluated after each finished epoch (not after a stop)
        self.initial_epoch = initial_epoch  # epochs the model had finished before this call
        self.initial_first_conv = initial_first_conv
        self.on_epoch_end_hook = on_epoch_end  # receives snapshot() after every finished epoch
        self.stop_reason = "completed"
        self.message = ""
        self.good_weights: list[np.ndarray] = []
        self.epochs_finished = 0
        self._started = time.perf_counter()
        self._ended: float | None = None  # when fitting ended (the test evaluation is not training)
        self._paused = 0.0  # seconds spent inside wait_if_paused
        self._step_seconds = 0.0  # time inside train steps (first step excluded)
        self._step_images = 0
        self._first_step_done = False
        self._last_batch_event = -math.inf

    # -- helpers ------------------------------------------------------------

    def emit(self, event: Event) -> None:
        if self.on_progress is not None:
            self.on_progress(event)

    def send_probe(self, epoch: int) -> None:
        if self.probe is not None:
            self.emit({"type": "probe", "epoch": epoch, "maps": self.probe.maps()})

    def elapsed(self) -> float:
        return (self._ended or time.perf_counter()) - self._started - self._paused

    def images_per_second(self) -> float:
        return self._step_images / self._step_seconds if self._step_seconds > 0 else 0.0

    def snapshot(self) -> TrainResult:
        """The run as it stands after the last finished epoch, test set not evaluated (see `train`)."""
        epochs_completed = self.initial_epoch + self.epochs_finished
        return TrainResult(
            model=self.model,
            history={key: list(values) for key, values in self.history.items()},
            test_loss=math.nan,
            test_accuracy=math.nan,
            epochs_completed=epochs_completed,
            train_seconds=self.elapsed(),
            images_per_second=self.images_per_second(),
            stop_reason="interrupted",
            message=(f"Interrupted after epoch {epochs_completed} of {self.epochs}, "
                     f"before the test set was evaluated."),
            params=int(self.model.count_params()),
            initial_first_conv=self.initial_first_conv,
        )

    def _pause_point(self, epoch_end: bool) -> None:
        if self.wait_if_paused is not None:
            began = time.perf_counter()
            self.wait_if_paused(epoch_end)
            self._paused += time.perf_counter() - began

    def _stop(self, reason: str, message: str = "") -> None:
        if self.stop_reason == "completed":
            self.stop_reason, self.message = reason, message
        self.model.stop_training = True

    def _check_stop_and_budget(self) -> None:
        if self.should_stop is not None and self.should_stop():
            self._stop("stopped")
        elif self.spec.train.time_budget and self.elapsed() >= self.spec.train.time_budget:
            self._stop("time_budget")

    def _divergence(self, loss: float) -> str:
        """The reason the loss counts as diverged, or "" when it is fine."""
        if math.isnan(loss):
            return "loss became NaN"
        if math.isinf(loss):
            return "loss became infinite"
        if self.first_loss is None:
            self.first_loss = loss
        elif loss > DIVERGENCE_FACTOR * max(self.first_loss, 1e-12):
            return f"loss grew to {loss:.3g}, over {DIVERGENCE_FACTOR:g} times its first value {self.first_loss:.3g}"
        return ""

    def _diverged(self, why: str, epoch: int) -> None:
        lr = self.spec.train.learning_rate
        safe = _SAFE_LEARNING_RATES.get(self.spec.train.optimizer, 0.001)
        suggestion = safe if lr > safe else lr / 10
        self._stop(
            "diverged",
            f"Training diverged at epoch {epoch} ({why}); the learning rate {lr:g} is probably too high — "
            f"try {suggestion:g}.",
        )

    # -- Keras hooks ----------------------------------------------------------

    def on_train_begin(self, logs=None):
        self.good_weights = self.model.get_weights()  # put back if the very first epoch diverges
        self._started = time.perf_counter()

    def on_train_end(self, logs=None):
        self._ended = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch  # 0-based, as Keras counts
        self._epoch_began = time.perf_counter()
        self._epoch_paused_at_start = self._paused
        self._epoch_step_seconds = 0.0
        self._epoch_step_images = 0
        self._epoch_steps = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._batch_began = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        seconds = time.perf_counter() - self._batch_began
        images = min(self.batch_size, self.train_size - self._epoch_steps * self.batch_size)
        self._epoch_steps += 1
        if self._first_step_done:  # the first step traces and compiles the graph: not throughput
            self._step_seconds += seconds
            self._step_images += images
            self._epoch_step_seconds += seconds
            self._epoch_step_images += images
        self._first_step_done = True

        logs = logs or {}
        loss = float(logs.get("loss", math.nan))
        epoch = self._epoch + 1
        why = self._divergence(loss)
        if why:
            self._diverged(why, epoch)
            return

        now = time.perf_counter()
        if now - self._last_batch_event >= BATCH_EVENT_INTERVAL:
            self._last_batch_event = now
            self.emit({
                "type": "batch", "epoch": epoch, "step": self._epoch_steps, "steps": self.steps_per_epoch,
                "seen": min(self._epoch_steps * self.batch_size, self.train_size),
                "loss": loss, "accuracy": float(logs.get("accuracy", math.nan)),
                "images_per_second": self._epoch_rate(), "elapsed": self.elapsed(),
            })
        self._pause_point(epoch_end=False)
        self._check_stop_and_budget()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        finished = self._epoch_steps == self.steps_per_epoch
        if self.stop_reason == "diverged" or not finished:
            return  # a partial or diverged epoch is not part of the history
        loss, accuracy = float(logs.get("loss", math.nan)), float(logs.get("accuracy", math.nan))
        why = self._divergence(loss)
        if not why and self.validation is not None:
            # Validation here rather than in fit(): a run stopped mid-epoch skips it.
            scores = self.model.evaluate(self.validation, verbose=0, return_dict=True)
            val_loss, val_accuracy = float(scores["loss"]), float(scores["accuracy"])
            why = self._divergence(val_loss)
        else:
            val_loss = val_accuracy = math.nan
        if why:
            self._diverged(why, epoch + 1)
            return
        values = {"loss": loss, "accuracy": accuracy, "val_loss": val_loss, "val_accuracy": val_accuracy,
                  "lr": _current_learning_rate(self.model)}
        has_validation = self.validation is not None
        for key in HISTORY_KEYS:
            self.history[key].append(values[key])
        self.epochs_finished += 1
        self.good_weights = self.model.get_weights()
        self.emit({
            "type": "epoch", "epoch": epoch + 1,
            "loss": values["loss"], "accuracy": values["accuracy"],
            "val_loss": values["val_loss"] if has_validation else None,
            "val_accuracy": values["val_accuracy"] if has_validation else None,
            "seconds": time.perf_counter() - self._epoch_began - (self._paused - self._epoch_paused_at_start),
            "images_per_second": self._epoch_rate(), "lr": values["lr"], "elapsed": self.elapsed(),
        })
        self.send_probe(epoch + 1)
        if self.on_epoch_end_hook is not None:
            self.on_epoch_end_hook(self.snapshot())
        if epoch + 1 < self.epochs and not self.model.stop_training:
            self._pause_point(epoch_end=True)
            self._check_stop_and_budget()

    def _epoch_rate(self) -> float:
        if self._epoch_step_seconds > 0:
            return self._epoch_step_images / self._epoch_step_seconds
        return self.images_per_second()


def _current_learning_rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def _final_message(watcher: _Watcher, spec: ExperimentSpec, epochs_completed: int, test_accuracy: float) -> str:
    accuracy = f"test accuracy {test_accuracy:.1%}"
    if watcher.stop_reason == "stopped":
        return f"Stopped after {epochs_completed} of {spec.train.epochs} epochs: {accuracy}."
    if watcher.stop_reason == "time_budget":
        return (f"The time budget of {spec.train.time_budget:g} s ran out after {epochs_completed} of "
                f"{spec.train.epochs} epochs: {accuracy}.")
    count = watcher.epochs_finished
    return f"Trained {count} epoch{'' if count == 1 else 's'} in {watcher.elapsed():.1f} s: {accuracy}."
