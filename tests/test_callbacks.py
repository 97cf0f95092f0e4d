"""The training callbacks one at a time, on a tiny dense network fitted on random numbers (a second each).

`training.train` composes them; tests/test_training.py checks the whole.
"""

import math
import re
import time

import keras
import numpy as np
import pytest

from playground.spec.experiment import ExperimentSpec
from playground.training import callbacks, events

STEPS, BATCH = 4, 8  # batches per epoch, images per batch


@pytest.fixture()
def model():
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    net.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return net


def fit(model, watchers, epochs=2):
    """Fit `model` for `epochs` epochs of STEPS batches with `watchers` as its callbacks."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS * BATCH, 4)).astype(np.float32)
    y = rng.integers(0, 3, STEPS * BATCH)
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, callbacks=watchers, verbose=0)


def empty_history():
    return {key: [] for key in events.HISTORY_KEYS}


class Recorder(keras.callbacks.Callback):
    """Notes what happens: trained batches (with the clock's time) and good epochs (with the weights)."""

    def __init__(self, state, clock):
        super().__init__()
        self.state, self.clock = state, clock
        self.batches, self.weights = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(self.clock.elapsed())

    def on_epoch_end(self, epoch, logs=None):
        if self.state.finished_epoch is not None:
            self.weights.append(self.model.get_weights())


def test_run_state_keeps_the_first_stop_reason(model):
    state = callbacks.RunState(empty_history())
    assert state.stop_reason == "completed" and state.epochs_completed == 0
    state.stop(model, "stopped")
    state.stop(model, "time_budget", "ignored")
    assert state.stop_reason == "stopped" and state.message == "" and model.stop_training


def test_epochs_enter_the_history_with_their_numbers(model):
    state = callbacks.RunState({key: [0.5] for key in events.HISTORY_KEYS})  # one epoch before this call
    clock = callbacks.Clock(BATCH, STEPS * BATCH)
    fit(model, [clock, callbacks.EpochScores(state, clock, None), callbacks.HistoryRecorder(state)])
    assert state.epochs_completed == 3 and state.history["loss"][0] == 0.5
    assert all(math.isfinite(v) for v in state.history["loss"][1:])
    assert all(math.isnan(v) for v in state.history["val_loss"][1:])  # no validation images
    assert state.history["lr"][1:] == pytest.approx([0.1, 0.1])
    assert clock.images_per_second() > 0 and clock.elapsed() > 0


def test_the_divergence_guard_stops_and_puts_back_the_last_good_weights(model):
    state = callbacks.RunState(empty_history())
    clock = callbacks.Clock(BATCH, STEPS * BATCH)
    spec = ExperimentSpec().with_values(optimizer="sgd", learning_rate=10)
    recorder = Recorder(state, clock)

    class Poison(keras.callbacks.Callback):  # the weights blow up during epoch 2
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                self.model.set_weights([w * np.nan for w in self.model.get_weights()])

    guard = callbacks.DivergenceGuard(state, spec, first_loss=None)
    fit(model, [clock, Poison(), callbacks.EpochScores(state, clock, None), guard, callbacks.HistoryRecorder(state),
                recorder], epochs=5)
    assert state.stop_reason == "diverged" and state.epochs_completed == 1
    assert state.message == ("Training diverged at epoch 2 (loss became NaN); the learning rate 10 is probably too "
                             "high — try 0.01.")
    assert len(recorder.batches) == STEPS + 1  # stopped after the first batch of epoch 2
    for restored, good in zip(model.get_weights(), recorder.weights[0]):
        np.testing.assert_array_equal(restored, good)  # the weights of epoch 1


def test_the_divergence_guard_judges_losses_against_the_first_one():
    guard = callbacks.DivergenceGuard(callbacks.RunState(empty_history()), ExperimentSpec(), first_loss=None)
    assert guard.divergence(0.5) == "" and guard.first_loss == 0.5  # the first loss is the reference
    assert guard.divergence(400.0) == ""
    assert re.fullmatch(r"loss grew to 501, over 1000 times its first value 0\.5", guard.divergence(501.0))
    assert guard.divergence(math.inf) == "loss became infinite" and guard.divergence(math.nan) == "loss became NaN"


def test_the_time_budget_stops_at_the_first_batch_past_it(model):
    state = callbacks.RunState(empty_history())
    clock = callbacks.Clock(BATCH, STEPS * BATCH)
    recorder = Recorder(state, clock)

    class Slow(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            time.sleep(0.05)

    fit(model, [clock, Slow(), recorder, callbacks.TimeBudget(state, clock, 0.2)], epochs=50)
    assert state.stop_reason == "time_budget" and state.message == ""
    assert len(recorder.batches) < 50 * STEPS
    assert all(t < 0.2 for t in recorder.batches[:-1]) and recorder.batches[-1] >= 0.2
    assert clock.elapsed() >= 0.2


def test_pause_and_stop_waits_outside_training_time_and_stops_when_asked(model):
    state = callbacks.RunState(empty_history())
    clock = callbacks.Clock(BATCH, STEPS * BATCH)
    calls = []

    def wait_if_paused(epoch_end):
        calls.append(epoch_end)
        if epoch_end:
            time.sleep(0.5)

    began = time.perf_counter()
    fit(model, [clock, callbacks.EpochScores(state, clock, None), callbacks.HistoryRecorder(state),
                callbacks.PauseAndStop(state, clock, wait_if_paused, None)])
    assert calls == [False] * STEPS + [True] + [False] * STEPS  # after every batch; after epoch 1, not the last
    assert clock.elapsed() < time.perf_counter() - began - 0.5  # the pause is not training time
    assert state.stop_reason == "completed" and state.epochs_completed == 2

    polls = []
    state = callbacks.RunState(empty_history())
    clock = callbacks.Clock(BATCH, STEPS * BATCH)
    stop = callbacks.PauseAndStop(state, clock, None, lambda: polls.append(1) or True)
    budget = callbacks.TimeBudget(state, clock, 0.0)  # spent in the same batch: the user's stop comes first
    fit(model, [clock, callbacks.EpochScores(state, clock, None), callbacks.HistoryRecorder(state), stop, budget])
    assert state.stop_reason == "stopped" and len(polls) == 1 and state.epochs_completed == 0


def reporting(sent):
    """(state, the callbacks of a run that reports its progress to sent.append)."""
    state = callbacks.RunState(empty_history())
    clock = callbacks.Clock(BATCH, STEPS * BATCH)
    reporter = callbacks.ProgressReporter(state, clock, sent.append, lambda: {"layer": np.ones((2, 2, 1), np.float32)})
    return state, [clock, callbacks.EpochScores(state, clock, None), callbacks.HistoryRecorder(state), reporter]


def test_the_reporter_throttles_batches_and_reports_good_epochs_with_probes(model, monkeypatch):
    sent = []
    state, watchers = reporting(sent)
    monkeypatch.setattr(callbacks, "BATCH_EVENT_INTERVAL", 0.0)
    fit(model, watchers)
    batches = [e for e in sent if isinstance(e, events.Batch)]
    assert [(b.epoch, b.step, b.seen) for b in batches] == [
        (epoch, step, step * BATCH) for epoch in (1, 2) for step in range(1, STEPS + 1)]
    assert all(b.steps == STEPS and b.images_per_second is not None for b in batches)
    epochs = [e for e in sent if isinstance(e, events.Epoch)]
    assert [e.epoch for e in epochs] == [1, 2] and [e.loss for e in epochs] == state.history["loss"]
    assert all(e.val_loss is None and e.seconds > 0 for e in epochs)
    assert [type(e) for e in sent[-2:]] == [events.Epoch, events.Probe] and sent[-1].epoch == 2

    sent.clear()
    monkeypatch.setattr(callbacks, "BATCH_EVENT_INTERVAL", 1e9)  # one batch event, then silence
    fit(model, reporting(sent)[1])
    assert len([e for e in sent if isinstance(e, events.Batch)]) == 1


def test_after_each_epoch_runs_for_finished_epochs_only(model):
    state = callbacks.RunState(empty_history())
    clock = callbacks.Clock(BATCH, STEPS * BATCH)
    done = []
    after = callbacks.AfterEachEpoch(state, lambda: done.append(state.epochs_completed))
    polls = []
    stop = callbacks.PauseAndStop(state, clock, None, lambda: polls.append(1) or len(polls) >= STEPS + 2)
    fit(model, [clock, callbacks.EpochScores(state, clock, None), callbacks.HistoryRecorder(state), after, stop],
        epochs=3)
    assert done == [1]  # epoch 2 was stopped half-way


def live_views(sent, probes):
    """(state, the callbacks of a run whose live views go to sent.append) with fake views of `probes[-1]`."""
    state = callbacks.RunState(empty_history())
    clock = callbacks.Clock(BATCH, STEPS * BATCH)
    live = callbacks.LiveViews(
        state, sent.append, lambda: probes[-1],
        network=lambda image: (events.Column("input", "input", image, 1, (0,), image.shape),),
        decision=lambda epoch: events.Decision(epoch, np.zeros(1, np.int16), np.ones(1, bool), np.zeros((1, 2), np.float16)),
        weights=lambda epoch: events.Weights(epoch, {}, {}, {}),
    )
    return live, [clock, callbacks.EpochScores(state, clock, None), callbacks.HistoryRecorder(state), live]


def test_live_views_send_the_diagram_within_epochs_and_every_view_after_good_ones(model, monkeypatch):
    sent = []
    probes = [events.ProbeImage(np.zeros((2, 2, 1), np.uint8), "first")]
    live, watchers = live_views(sent, probes)
    monkeypatch.setattr(callbacks, "NETWORK_EVENT_INTERVAL", 0.0)
    monkeypatch.setattr(callbacks, "NETWORK_TIME_SHARE", 1e9)  # however long drawing takes
    live.send_epoch(0)  # before training, as `train` does
    fit(model, watchers)
    assert sent[0] is probes[0]  # the probe image goes before the first diagram of it
    assert [e.epoch for e in sent if isinstance(e, events.Network)] == [
        0.0, 0.25, 0.5, 0.75, 0.999, 1.0, 1.25, 1.5, 1.75, 1.999, 2.0]
    assert [e.epoch for e in sent if isinstance(e, events.Decision)] == [0, 1, 2]
    assert [e.epoch for e in sent if isinstance(e, events.Weights)] == [0, 1, 2]
    assert [type(e) for e in sent[-3:]] == [events.Network, events.Decision, events.Weights]

    sent.clear()
    monkeypatch.setattr(callbacks, "NETWORK_EVENT_INTERVAL", 1e9)  # throttled: only the epochs' ends
    live, watchers = live_views(sent, probes)
    live.send_epoch(0)
    probes.append(events.ProbeImage(np.ones((2, 2, 1), np.uint8), "second"))  # the user picks another image
    fit(model, watchers)
    networks = [e for e in sent if isinstance(e, events.Network)]
    assert [e.epoch for e in networks] == [0.0, 1.0, 2.0]
    assert [e.label for e in sent if isinstance(e, events.ProbeImage)] == ["first", "second"]
    assert networks[0].columns[0].values.max() == 0 and networks[-1].columns[0].values.min() == 1


def test_a_slow_diagram_is_drawn_less_often(model, monkeypatch):
    sent = []
    probes = [events.ProbeImage(np.zeros((2, 2, 1), np.uint8), "first")]
    live, watchers = live_views(sent, probes)
    slow = live.network
    live.network = lambda image: time.sleep(0.02) or slow(image)  # 20 ms a diagram: at most 5% of the time
    monkeypatch.setattr(callbacks, "NETWORK_EVENT_INTERVAL", 0.0)
    monkeypatch.setattr(callbacks, "NETWORK_TIME_SHARE", 0.05)
    fit(model, [], epochs=1)  # traced now: tracing would make the first batch alone take longer than 400 ms
    live.send_epoch(0)
    fit(model, watchers + [Sleeper(0.01)], epochs=1)  # four 10 ms batches: none within 400 ms of the last diagram
    assert [e.epoch for e in sent if isinstance(e, events.Network)] == [0.0, 1.0]


class Sleeper(keras.callbacks.Callback):
    """Makes every batch take `seconds` longer."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def on_train_batch_begin(self, batch, logs=None):
        time.sleep(self.seconds)
