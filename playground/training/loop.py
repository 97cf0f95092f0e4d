"""Training: fit the CNN of an ExperimentSpec on a Dataset, with live progress.

`train` builds the model of a spec (or continues a given one), fits it with
Keras' `model.fit` on a seeded `tf.data` pipeline of the uint8 images, and
reports what happens through the training events of `events.py`: a Start,
throttled Batch events (at most about 10 per second), one Epoch per finished
epoch, Probe events with the feature maps of a probe image and, when asked,
the live views of the Playground's network diagram (Network, Decision and
Weights events, see `callbacks.LiveViews`); an optional
`on_epoch_end` hook receives the run as it stands after each finished epoch
(what a checkpoint saves). The watching is done by the small Keras callbacks
of `callbacks.py`: they poll `should_stop`, block in `wait_if_paused`, enforce
the spec's time budget and stop a run whose loss diverges (NaN, inf, or 1000
times its first value), putting back the weights of the last good epoch.

The first training step traces and optimises the training graph (about
2.5 s for the default preset on a 2-core CPU); `warmup.warm_up(spec, dataset)`
does that ahead of time, and `train` then takes its model.

Equal specs give equal histories on the CPU: every random choice (weights,
sampling, shuffling, dropout, augmentation) follows `spec.seed`, and the
order of the training images in epoch e depends only on (seed, e), so a run
continued with `initial_epoch` sees the same batches as one that never
stopped.

Typical use:

    configure_threads()                          # once per process, before any op
    result = train(spec, load_for_spec(spec), on_progress=print)
    result.history["val_accuracy"][-1], result.test_accuracy, result.summary()
"""

from __future__ import annotations

import math
import os
import random
import threading
import weakref
from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.eager import context as tf_context

from playground.analysis.network_view import DecisionProbe, NetworkProbe, WeightsProbe, decision_sample
from playground.data import datasets
from playground.model import network as models
from playground.training import callbacks, devices, events
from playground.training.events import HISTORY_KEYS
from playground.spec.experiment import ExperimentSpec
from playground.spec.validation import validate

# "interrupted" marks the snapshots passed to `on_epoch_end`: a run that ends there never reached its end.
STOP_REASONS = ("completed", "stopped", "time_budget", "diverged", "interrupted")
PROBE_BLOCKS = 2  # feature maps of this many first conv blocks are sent in Probe events
EVAL_BATCH_SIZE = 512  # images per step when evaluating validation and test sets


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

    def summary(self) -> events.TrainSummary:
        """The numbers of this result, as a run's metrics.json, the "done" event and the CLI's --json give them."""
        return events.TrainSummary(
            test_accuracy=float(self.test_accuracy),
            test_loss=float(self.test_loss),
            train_seconds=float(self.train_seconds),
            images_per_second=float(self.images_per_second),
            params=int(self.params),
            epochs_completed=int(self.epochs_completed),
            stop_reason=self.stop_reason,
            test_size=int(self.test_size),
        )


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


def set_random_seed(seed: int) -> None:
    """Seed Python, NumPy, Keras and TensorFlow as `keras.utils.set_random_seed` does, keeping TensorFlow's caches.

    `tf.random.set_seed` clears TensorFlow's caches of instantiated functions and
    kernels, so the first step of a model whose training step was traced and run
    ahead of time (`warmup.warm_up`) would set its graph up again (about 0.3 s for
    the default preset). When TensorFlow's global seed already is `seed`, it is
    left alone: setting it again would only restart its counter of seeds for
    unseeded eager random ops, which training never uses (weights, dropout,
    augmentation and shuffling all draw from their own seeds).

    Args:
        seed: the experiment's seed.
    """
    if tf_context.global_seed() != seed:
        keras.utils.set_random_seed(seed)
        return
    random.seed(seed)
    np.random.seed(seed)
    try:  # what keras.utils.set_random_seed does besides seeding TensorFlow
        from keras.src.backend.common import global_state
        from keras.src.random import seed_generator
        from keras.src.utils import rng_utils

        global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
        global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    except (ImportError, AttributeError):  # another Keras: seed everything, caches or not
        keras.utils.set_random_seed(seed)


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
    on_progress: Callable[[events.TrainingEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    wait_if_paused: Callable[[bool], None] | None = None,
    probe_image: np.ndarray | None = None,
    live_probe: Callable[[], events.ProbeImage] | None = None,
    on_epoch_end: Callable[[TrainResult], None] | None = None,
) -> TrainResult:
    """Fit the CNN of `spec` on `dataset` and evaluate it on the test set.

    Args:
        spec: the experiment; validated against the dataset's input shape first.
        dataset: the images (uint8 NHWC) and labels; `spec.data.sample_size`
            and `validation_split` pick the training and validation images.
        model: a model to continue instead of building a new one; it keeps its
            weights and, when already compiled, its optimizer state. Without
            one, the model `warmup.warm_up` prepared for this spec's graph and
            this dataset is taken when there is one (compiled, its steps
            already traced, its variables as a new model's: the same run,
            seconds sooner), else a new model is built.
        initial_epoch: epochs `model` has finished; training runs epochs
            initial_epoch + 1 .. spec.train.epochs.
        on_progress: called with each training event (see `events.py`): a
            `Start`; for a new model a `Batch` at step 0 (the untrained model
            on the first batch, images_per_second None); `Batch` events, at
            most ~10 per second; an `Epoch` after every finished epoch; and,
            when `probe_image` is given, a `Probe` once before training
            (epoch = initial_epoch) and after every finished epoch.
        should_stop: polled after every batch; True stops training (reason "stopped").
        wait_if_paused: called as wait_if_paused(epoch_end) after every batch
            (False) and every epoch but the last (True); it blocks while the
            user has paused. Time spent in it is not counted anywhere.
        probe_image: one uint8 (H, W, C) image whose feature maps are sent.
        live_probe: turns on the live views of the network diagram (see
            `callbacks.LiveViews`): returns the ProbeImage to draw now (the
            dataset's input shape; the same object until it changes). Before
            training and after every finished epoch, a Network, a Decision
            and a Weights event are sent, and Network events several times
            an epoch; a DecisionSet with the images the Decision events
            follow (a few validation images of each class, test images
            without a validation split) comes first.
        on_epoch_end: called after every finished, non-diverged epoch (after its
            Epoch, Probe and live-view events, before any pause) with the run so far as
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
    set_random_seed(spec.seed)
    from playground.training import warmup  # here: warmup imports this module

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
            # A model made by `warmup.warm_up` for this graph and data: compiled, steps traced, variables as built.
            model = warmup.claim(spec, dataset, x_train)
            if model is None:
                model = models.build_model(spec, dataset.input_shape, dataset.num_classes, x_sample=x_train)
        if not getattr(model, "compiled", False):
            models.compile_model(model, spec, steps_per_epoch)

    # The start and, for a new model, its untrained point go out before the probe model and
    # the input pipelines are built, so the page has its first point as early as possible.
    emit = on_progress or (lambda event: None)
    emit(events.Start(
        epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch, batch_size=batch_size,
        params=int(model.count_params()), train_size=int(len(x_train)), val_size=int(len(x_val)),
    ))
    if on_progress is not None and initial_epoch == 0:
        emit(_untrained_point(model, x_train[:batch_size], y_train[:batch_size], steps_per_epoch))

    past = _past_of.get(model) or _Past({k: [] for k in HISTORY_KEYS}, None, None)
    history = {k: list(past.history.get(k, []))[:initial_epoch] for k in HISTORY_KEYS}
    initial_first_conv = past.initial_first_conv if past.initial_first_conv is not None else _first_conv_kernel(model)

    state = callbacks.RunState(history)
    clock = callbacks.Clock(batch_size, len(x_train))

    def snapshot() -> TrainResult:
        """The run as it stands after the last finished epoch, test set not evaluated (see on_epoch_end)."""
        message = f"Interrupted after epoch {state.epochs_completed} of {epochs}, before the test set was evaluated."
        return _result(model, state, clock, initial_first_conv, test_loss=math.nan, test_accuracy=math.nan,
                       stop_reason="interrupted", message=message, test_size=0)

    network = NetworkProbe(model, compiled=True) if probe_image is not None or live_probe is not None else None
    probe_maps = (lambda: network.feature_maps(probe_image, PROBE_BLOCKS)) if probe_image is not None else None
    reporter = callbacks.ProgressReporter(state, clock, emit, probe_maps)
    watchers = [
        clock,
        callbacks.EpochScores(state, clock, _eval_batches(x_val, y_val) if len(x_val) else None),
        callbacks.DivergenceGuard(state, spec, past.first_loss),
        callbacks.HistoryRecorder(state),
        reporter,
    ]
    live = None
    if live_probe is not None:
        # The decision picture follows validation images (test images when there are none).
        x_known, y_known = (x_val, y_val) if len(x_val) else (dataset.x_test, dataset.y_test)
        chosen = decision_sample(y_known, dataset.num_classes)
        emit(events.DecisionSet(images=x_known[chosen], labels=y_known[chosen].astype(np.int16),
                                class_names=tuple(dataset.class_names)))
        live = callbacks.LiveViews(state, emit, live_probe, network.views,
                                   DecisionProbe(model, x_known[chosen], y_known[chosen]).view, WeightsProbe(model).view)
        watchers.append(live)
    if on_epoch_end is not None:
        watchers.append(callbacks.AfterEachEpoch(state, lambda: on_epoch_end(snapshot())))
    watchers.append(callbacks.PauseAndStop(state, clock, wait_if_paused, should_stop))
    if spec.train.time_budget:
        watchers.append(callbacks.TimeBudget(state, clock, spec.train.time_budget))
    reporter.send_probe(initial_epoch)
    if live is not None:
        live.send_epoch(initial_epoch)

    model.fit(
        _training_batches(x_train, y_train, batch_size, spec.seed, initial_epoch, epochs),
        epochs=epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps_per_epoch,
        shuffle=False,  # the pipeline shuffles, by (seed, epoch)
        callbacks=watchers,
        verbose=0,
    )  # a diverged run ends with the weights of its last good epoch (DivergenceGuard)

    test_loss, test_accuracy = test_scores(model, dataset.x_test, dataset.y_test)
    remember_history(model, history, initial_first_conv)
    message = state.message or _final_message(
        state.stop_reason, spec, state.epochs_completed, state.epochs_completed - initial_epoch, clock.elapsed(),
        test_accuracy)
    return _result(model, state, clock, initial_first_conv, test_loss=test_loss, test_accuracy=test_accuracy,
                   stop_reason=state.stop_reason, message=message, test_size=int(len(dataset.x_test)))


def _result(model: keras.Model, state: callbacks.RunState, clock: callbacks.Clock,
            initial_first_conv: np.ndarray | None, *, test_loss: float, test_accuracy: float, stop_reason: str,
            message: str, test_size: int) -> TrainResult:
    """A TrainResult of the run as its callbacks see it now (history, epochs, timings), with the given outcome."""
    return TrainResult(
        model=model, history={key: list(values) for key, values in state.history.items()},
        test_loss=test_loss, test_accuracy=test_accuracy, epochs_completed=state.epochs_completed,
        train_seconds=clock.elapsed(), images_per_second=clock.images_per_second(),
        stop_reason=stop_reason, message=message, params=int(model.count_params()),
        initial_first_conv=initial_first_conv, test_size=test_size,
    )


def test_scores(model: keras.Model, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(loss, accuracy) on the test set, as the run's predictions are made (with the spec's test-time augmentation).

    The loss is the predictions' cross-entropy, without the weight penalty or label smoothing
    of the training objective. Without test-time augmentation the scores come from
    `model.evaluate` (its step is traced ahead by the warm-up); with it, from the averaged
    probabilities.
    """
    if getattr(model, "test_time_augmentation", "none") == "none":
        test = model.evaluate(_eval_batches(x, y), verbose=0, return_dict=True)
        return models.reported_loss(test), float(test["accuracy"])
    forward = tf.function(lambda images: models.predict_probabilities(model, images), reduce_retracing=True)
    losses, hits = [], 0
    for images, labels in _eval_batches(x, y):
        probabilities = forward(tf.cast(images, tf.float32))  # (batch, classes)
        losses.append(np.asarray(keras.losses.sparse_categorical_crossentropy(labels, probabilities)))
        hits += int(np.sum(np.argmax(np.asarray(probabilities), axis=-1) == labels.numpy()))
    return float(np.mean(np.concatenate(losses))) if losses else float("nan"), hits / max(len(x), 1)


def _untrained_point(model: keras.Model, x: np.ndarray, y: np.ndarray, steps_per_epoch: int) -> events.Batch:
    """The curves' first point: loss and accuracy of the untrained model on the first batch.

    One eager forward pass (inference mode), so it reaches the page before the first
    training step has compiled: the curves start at the loss of guessing.

    Args:
        model: the freshly built model.
        x: (n, H, W, C) uint8 images of the first training batch.
        y: (n,) int labels.
        steps_per_epoch: batches per epoch (for the point's position).

    Returns:
        A Batch event at step 0 of epoch 1.
    """
    probabilities = model(x, training=False)  # (n, classes)
    loss = keras.losses.sparse_categorical_crossentropy(y, probabilities)  # (n,)
    accuracy = np.mean(np.argmax(np.asarray(probabilities), axis=-1) == y)
    return events.Batch(epoch=1, step=0, steps=steps_per_epoch, seen=0, loss=float(np.mean(np.asarray(loss))),
                        accuracy=float(accuracy), images_per_second=None, elapsed=0.0)


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


def _final_message(stop_reason: str, spec: ExperimentSpec, epochs_completed: int, epochs_trained: int,
                   seconds: float, test_accuracy: float) -> str:
    """The result's sentence when no callback wrote one: how training ended, and the test accuracy.

    Args:
        stop_reason: "completed", "stopped" or "time_budget".
        spec: the experiment.
        epochs_completed: the model's finished epochs, earlier calls included.
        epochs_trained: the epochs this call finished.
        seconds: the training time of this call.
        test_accuracy: accuracy on the test set.
    """
    accuracy = f"test accuracy {test_accuracy:.1%}"
    if stop_reason == "stopped":
        return f"Stopped after {epochs_completed} of {spec.train.epochs} epochs: {accuracy}."
    if stop_reason == "time_budget":
        return (f"The time budget of {spec.train.time_budget:g} s ran out after {epochs_completed} of "
                f"{spec.train.epochs} epochs: {accuracy}.")
    return f"Trained {epochs_trained} epoch{'' if epochs_trained == 1 else 's'} in {seconds:.1f} s: {accuracy}."
