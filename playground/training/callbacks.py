"""The Keras callbacks `loop.train` composes: each watches one thing while `model.fit` runs.

    Clock            training time without pauses, and the speed of the training steps
    EpochScores      the numbers of each complete epoch, validation included
    DivergenceGuard  stops a run whose loss becomes NaN, infinite or 1000 times its first value,
                     and puts back the weights of the last good epoch
    HistoryRecorder  appends each good epoch to the history
    ProgressReporter Batch (throttled), Epoch and Probe events
    LiveViews        the network diagram's live views: Network (throttled), Decision and Weights events
    AfterEachEpoch   calls a function after each good epoch (the per-epoch checkpoint)
    PauseAndStop     blocks while the user has paused, stops when the user asked to
    TimeBudget       stops once the training time reaches the budget

They share one `RunState` (the history and why training ends) and one
`Clock`, and run in that order, which matters:

- after each batch, a callback after one that stopped training in that batch
  does nothing (`model.stop_training` is True only then: fit ends after a
  batch that set it), so a diverged batch is neither reported nor paused on,
  and a stop requested by the user wins over the time budget;
- after each epoch, `RunState.finished_epoch` holds the epoch's numbers
  while it is good: EpochScores sets it for an epoch that ran all its steps,
  the guard clears it when the epoch diverged, and the later callbacks act on
  it only when it is set.

Keras counts epochs from 0 in its hooks; everything here reports them from 1.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from playground.model.network import averaged_weights, reported_loss, restart_weight_average
from playground.spec.experiment import ExperimentSpec
from playground.training import events

BATCH_EVENT_INTERVAL = 0.1  # seconds between two Batch events: at most 10 per second
NETWORK_EVENT_INTERVAL = 0.5  # seconds between two Network events within an epoch (the page refreshes as often)
NETWORK_TIME_SHARE = 0.03  # ... and more when drawing them would take more than this share of the training time
DIVERGENCE_FACTOR = 1e3  # a loss this many times the first loss counts as diverged
# Learning rates that train well with each optimizer, suggested when a run diverges.
SAFE_LEARNING_RATES = {
    "sgd": 0.01, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.01,
    "rmsprop": 0.001, "adam": 0.001, "adamw": 0.001,
}


@dataclass(frozen=True)
class FinishedEpoch:
    """The numbers of an epoch that ran all its steps."""

    loss: float  # mean training loss over the epoch
    accuracy: float  # mean training accuracy over the epoch
    val_loss: float | None  # validation loss; None without validation images
    val_accuracy: float | None  # validation accuracy; None without validation images
    lr: float  # the learning rate at its end

    def history_row(self) -> dict[str, float]:
        """{key in events.HISTORY_KEYS: value}, NaN for a missing validation."""
        return {"loss": self.loss, "accuracy": self.accuracy,
                "val_loss": math.nan if self.val_loss is None else self.val_loss,
                "val_accuracy": math.nan if self.val_accuracy is None else self.val_accuracy,
                "lr": self.lr}


class RunState:
    """What the callbacks of one `train` call share, and what `train` reads back from them.

    Args:
        history: {key in events.HISTORY_KEYS: values} of the epochs the model
            finished before this call; the good epochs of this call are appended.
    """

    def __init__(self, history: dict[str, list[float]]):
        self.history = history
        self.finished_epoch: FinishedEpoch | None = None  # the epoch that just ended, while it is good
        self.stop_reason = "completed"  # set by the first callback that stops training
        self.message = ""  # that callback's sentence for people; "" = `train` writes one

    @property
    def epochs_completed(self) -> int:
        """Epochs in the history: the model's finished epochs, counting those before this call."""
        return len(self.history["loss"])

    def stop(self, model: keras.Model, reason: str, message: str = "") -> None:
        """End training after this batch or epoch; the first reason given is the one that stays."""
        if self.stop_reason == "completed":
            self.stop_reason, self.message = reason, message
        model.stop_training = True


class Clock(keras.callbacks.Callback):
    """Training time without pauses, the speed of the training steps, and the steps done in the epoch.

    Put it first: the other callbacks read it in the same hooks.

    Args:
        batch_size: images per batch.
        train_size: training images per epoch (the last batch may hold fewer).
    """

    def __init__(self, batch_size: int, train_size: int):
        super().__init__()
        self.batch_size = batch_size
        self.train_size = train_size
        self.epoch_steps = 0  # batches finished in the current epoch
        self._started = time.perf_counter()
        self._ended: float | None = None  # when fitting ended (the test evaluation is not training)
        self._paused = 0.0  # seconds spent paused
        self._step_seconds = 0.0  # time inside train steps (the first, compiling step excluded)
        self._step_images = 0
        self._first_step_done = False
        self._epoch_began = self._started
        self._epoch_paused_at_start = 0.0
        self._epoch_step_seconds = 0.0
        self._epoch_step_images = 0
        self._batch_began = self._started

    def elapsed(self) -> float:
        """Seconds of training so far (until fit ended), pauses excluded."""
        return (self._ended or time.perf_counter()) - self._started - self._paused

    def images_per_second(self) -> float:
        """Training images per second of the steps so far (0.0 before the second step)."""
        return self._step_images / self._step_seconds if self._step_seconds > 0 else 0.0

    def epoch_images_per_second(self) -> float:
        """The same for the steps of the current epoch (all steps so far while it has none timed)."""
        if self._epoch_step_seconds > 0:
            return self._epoch_step_images / self._epoch_step_seconds
        return self.images_per_second()

    def epoch_seconds(self) -> float:
        """Wall time of the current epoch so far, pauses excluded."""
        return time.perf_counter() - self._epoch_began - (self._paused - self._epoch_paused_at_start)

    def seen(self) -> int:
        """Images trained on in the current epoch."""
        return min(self.epoch_steps * self.batch_size, self.train_size)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Time spent inside this block is not training time."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self._paused += time.perf_counter() - began

    def on_train_begin(self, logs=None):
        self._started = time.perf_counter()

    def on_train_end(self, logs=None):
        self._ended = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_began = time.perf_counter()
        self._epoch_paused_at_start = self._paused
        self._epoch_step_seconds = 0.0
        self._epoch_step_images = 0
        self.epoch_steps = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._batch_began = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        seconds = time.perf_counter() - self._batch_began
        images = min(self.batch_size, self.train_size - self.epoch_steps * self.batch_size)
        self.epoch_steps += 1
        if self._first_step_done:  # the first step traces and compiles the graph: not throughput
            self._step_seconds += seconds
            self._step_images += images
            self._epoch_step_seconds += seconds
            self._epoch_step_images += images
        self._first_step_done = True


class EpochScores(keras.callbacks.Callback):
    """After an epoch that ran all its steps (and no divergence), its numbers go to `state.finished_epoch`.

    The validation set is evaluated here rather than by fit, so a run stopped
    mid-epoch skips it; with weight averaging it scores the averaged weights,
    which the run ends with.

    Args:
        state: the shared RunState.
        clock: the shared Clock (steps done in the epoch).
        validation: batches of the validation images; None without any.
    """

    def __init__(self, state: RunState, clock: Clock, validation: tf.data.Dataset | None):
        super().__init__()
        self.state = state
        self.clock = clock
        self.validation = validation

    def on_epoch_end(self, epoch, logs=None):
        self.state.finished_epoch = None
        if self.state.stop_reason == "diverged" or self.clock.epoch_steps < self.params["steps"]:
            return  # a diverged or partial epoch is not part of the history
        logs = logs or {}
        val_loss = val_accuracy = None
        if self.validation is not None:
            with averaged_weights(self.model):  # with weight averaging, the weights training will end with
                scores = self.model.evaluate(self.validation, verbose=0, return_dict=True)
            val_loss, val_accuracy = reported_loss(scores), float(scores["accuracy"])
        self.state.finished_epoch = FinishedEpoch(
            loss=reported_loss(logs), accuracy=float(logs.get("accuracy", math.nan)),
            val_loss=val_loss, val_accuracy=val_accuracy,
            lr=float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
        )


class DivergenceGuard(keras.callbacks.Callback):
    """Stops a run whose loss diverges, and puts back the weights of its last good epoch when training ends.

    A loss diverges when it becomes NaN or infinite, or grows to
    DIVERGENCE_FACTOR times the first loss of the model's life: checked after
    every batch (the running training loss) and every complete epoch (its
    training and validation losses). The message names the epoch and suggests
    a learning rate.

    Args:
        state: the shared RunState.
        spec: the experiment (optimizer and learning rate, for the suggestion).
        first_loss: the model's first training loss from earlier calls; None
            = this call's first batch loss sets it.
    """

    def __init__(self, state: RunState, spec: ExperimentSpec, first_loss: float | None):
        super().__init__()
        self.state = state
        self.spec = spec
        self.first_loss = first_loss
        self.good_weights: list[np.ndarray] = []
        self._epoch = 1

    def divergence(self, loss: float) -> str:
        """Why `loss` counts as diverged, or "" when it is fine (the first finite loss seen becomes the reference)."""
        if math.isnan(loss):
            return "loss became NaN"
        if math.isinf(loss):
            return "loss became infinite"
        if self.first_loss is None:
            self.first_loss = loss
        elif loss > DIVERGENCE_FACTOR * max(self.first_loss, 1e-12):
            return f"loss grew to {loss:.3g}, over {DIVERGENCE_FACTOR:g} times its first value {self.first_loss:.3g}"
        return ""

    def _diverged(self, why: str) -> None:
        lr = self.spec.train.learning_rate
        safe = SAFE_LEARNING_RATES.get(self.spec.train.optimizer, 0.001)
        suggestion = safe if lr > safe else lr / 10
        self.state.stop(
            self.model, "diverged",
            f"Training diverged at epoch {self._epoch} ({why}); the learning rate {lr:g} is probably too high — "
            f"try {suggestion:g}.",
        )

    def on_train_begin(self, logs=None):
        self.good_weights = self.model.get_weights()  # put back if the very first epoch diverges

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        why = self.divergence(float((logs or {}).get("loss", math.nan)))
        if why:
            self._diverged(why)

    def on_epoch_end(self, epoch, logs=None):
        finished = self.state.finished_epoch
        if finished is None:
            return
        why = self.divergence(finished.loss)
        if not why and finished.val_loss is not None:
            why = self.divergence(finished.val_loss)
        if why:
            self.state.finished_epoch = None
            self._diverged(why)
        else:
            self.good_weights = self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.state.stop_reason == "diverged":
            self.model.set_weights(self.good_weights)  # after fit copied in the weight average, if any
            restart_weight_average(self.model)  # a run continued from here averages from these weights


class HistoryRecorder(keras.callbacks.Callback):
    """Appends each good epoch to `state.history` (so `state.epochs_completed` counts it).

    Args:
        state: the shared RunState.
    """

    def __init__(self, state: RunState):
        super().__init__()
        self.state = state

    def on_epoch_end(self, epoch, logs=None):
        if self.state.finished_epoch is not None:
            for key, value in self.state.finished_epoch.history_row().items():
                self.state.history[key].append(value)


class ProgressReporter(keras.callbacks.Callback):
    """Sends events.Batch after batches (at most one per BATCH_EVENT_INTERVAL), then events.Epoch and events.Probe
    after each good epoch.

    Args:
        state: the shared RunState.
        clock: the shared Clock.
        emit: receives each event.
        probe_maps: computes the probe image's feature maps {layer name: float32 (H, W, F)}
            with the current weights; None sends no probes.
    """

    def __init__(self, state: RunState, clock: Clock, emit: Callable[[events.TrainingEvent], None],
                 probe_maps: Callable[[], dict[str, np.ndarray]] | None = None):
        super().__init__()
        self.state = state
        self.clock = clock
        self.emit = emit
        self.probe_maps = probe_maps
        self._epoch = 1
        self._last_batch_event = -math.inf

    def send_probe(self, epoch: int) -> None:
        """Send the probe image's feature maps as they are now, labelled with `epoch` (finished epochs)."""
        if self.probe_maps is not None:
            self.emit(events.Probe(epoch=epoch, maps=self.probe_maps()))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if self.model.stop_training:
            return  # diverged in this batch: not a point of the curves
        now = time.perf_counter()
        if now - self._last_batch_event < BATCH_EVENT_INTERVAL:
            return
        self._last_batch_event = now
        logs = logs or {}
        self.emit(events.Batch(
            epoch=self._epoch, step=self.clock.epoch_steps, steps=self.params["steps"], seen=self.clock.seen(),
            loss=reported_loss(logs), accuracy=float(logs.get("accuracy", math.nan)),
            images_per_second=self.clock.epoch_images_per_second(), elapsed=self.clock.elapsed(),
        ))

    def on_epoch_end(self, epoch, logs=None):
        finished = self.state.finished_epoch
        if finished is None:
            return
        self.emit(events.Epoch(
            epoch=epoch + 1, loss=finished.loss, accuracy=finished.accuracy,
            val_loss=finished.val_loss, val_accuracy=finished.val_accuracy,
            seconds=self.clock.epoch_seconds(), images_per_second=self.clock.epoch_images_per_second(),
            lr=finished.lr, elapsed=self.clock.elapsed(),
        ))
        self.send_probe(epoch + 1)


class LiveViews(keras.callbacks.Callback):
    """Sends the live views of the network diagram while the model trains.

    events.Network for the probe image at most once per NETWORK_EVENT_INTERVAL
    during an epoch (less often when its forward pass is slow: within an epoch
    the diagram takes at most NETWORK_TIME_SHARE of the time) and after each
    good epoch; events.Decision and events.Weights after each good epoch;
    events.ProbeImage before the first Network of each probe image (the user
    may pick another while it trains).

    Args:
        state: the shared RunState.
        emit: receives each event.
        probe: the probe image to draw now; the same object while it does not change.
        network: the diagram's columns for an image with the current weights (`NetworkProbe.views`).
        decision: the decision picture after a number of epochs (`DecisionProbe.view`).
        weights: the weights after a number of epochs (`WeightsProbe.view`).
    """

    def __init__(self, state: RunState, emit: Callable[[events.TrainingEvent], None],
                 probe: Callable[[], events.ProbeImage],
                 network: Callable[[np.ndarray], tuple[events.Column, ...]],
                 decision: Callable[[int], events.Decision], weights: Callable[[int], events.Weights]):
        super().__init__()
        self.state = state
        self.emit = emit
        self.probe = probe
        self.network = network
        self.decision = decision
        self.weights = weights
        self._shown: events.ProbeImage | None = None  # the probe image of the last Network event
        self._epoch = 0  # Keras' index of the epoch in progress
        self._next_network = -math.inf  # time.perf_counter() from which the next diagram may be drawn

    def send_network(self, position: float) -> None:
        """Send the diagram for the current probe image, `position` epochs into training."""
        began = time.perf_counter()
        probe = self.probe()
        if probe is not self._shown:
            self._shown = probe
            self.emit(probe)
        self.emit(events.Network(epoch=position, columns=self.network(probe.image)))
        ended = time.perf_counter()
        self._next_network = ended + max(NETWORK_EVENT_INTERVAL, (ended - began) / NETWORK_TIME_SHARE)

    def send_epoch(self, epoch: int) -> None:
        """Send every view as the weights are after `epoch` finished epochs (before training: the model's epochs)."""
        self.send_network(float(epoch))
        self.emit(self.decision(epoch))
        self.emit(self.weights(epoch))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.model.stop_training or time.perf_counter() < self._next_network:
            return  # diverged in this batch, or drawn a moment ago
        self.send_network(self._epoch + min((batch + 1) / self.params["steps"], 0.999))

    def on_epoch_end(self, epoch, logs=None):
        if self.state.finished_epoch is not None:
            self.send_epoch(epoch + 1)


class AfterEachEpoch(keras.callbacks.Callback):
    """Calls `action()` after each good epoch, once it is in the history and reported; training waits for it.

    Args:
        state: the shared RunState.
        action: e.g. save the run as it stands (a checkpoint).
    """

    def __init__(self, state: RunState, action: Callable[[], None]):
        super().__init__()
        self.state = state
        self.action = action

    def on_epoch_end(self, epoch, logs=None):
        if self.state.finished_epoch is not None:
            self.action()


class PauseAndStop(keras.callbacks.Callback):
    """The user's controls: waits while paused, and stops training (reason "stopped") when asked.

    Both are checked after every batch, and after every good epoch but the
    last one (a pending Step pauses there).

    Args:
        state: the shared RunState.
        clock: the shared Clock (time paused is not training time).
        wait_if_paused: called as wait_if_paused(epoch_end); blocks while paused. None = never pauses.
        should_stop: True once the user asked to stop. None = never stops.
    """

    def __init__(self, state: RunState, clock: Clock, wait_if_paused: Callable[[bool], None] | None,
                 should_stop: Callable[[], bool] | None):
        super().__init__()
        self.state = state
        self.clock = clock
        self.wait_if_paused = wait_if_paused
        self.should_stop = should_stop

    def _pause_then_check(self, epoch_end: bool) -> None:
        if self.wait_if_paused is not None:
            with self.clock.paused():
                self.wait_if_paused(epoch_end)
        if self.should_stop is not None and self.should_stop():
            self.state.stop(self.model, "stopped")

    def on_train_batch_end(self, batch, logs=None):
        if not self.model.stop_training:
            self._pause_then_check(epoch_end=False)

    def on_epoch_end(self, epoch, logs=None):
        if _more_epochs_follow(self, epoch):
            self._pause_then_check(epoch_end=True)


class TimeBudget(keras.callbacks.Callback):
    """Stops training (reason "time_budget") at the first batch or epoch end past `seconds` of training time.

    Args:
        state: the shared RunState.
        clock: the shared Clock.
        seconds: the budget, pauses excluded.
    """

    def __init__(self, state: RunState, clock: Clock, seconds: float):
        super().__init__()
        self.state = state
        self.clock = clock
        self.seconds = seconds

    def _check(self) -> None:
        if self.clock.elapsed() >= self.seconds:
            self.state.stop(self.model, "time_budget")

    def on_train_batch_end(self, batch, logs=None):
        if not self.model.stop_training:
            self._check()

    def on_epoch_end(self, epoch, logs=None):
        if _more_epochs_follow(self, epoch):
            self._check()


def _more_epochs_follow(callback: PauseAndStop | TimeBudget, epoch: int) -> bool:
    """True after a good epoch that is not the last one and after which training was not stopped."""
    return (callback.state.finished_epoch is not None and epoch + 1 < callback.params["epochs"]
            and not callback.model.stop_training)
