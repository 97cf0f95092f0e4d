"""training.train on the built-in shapes: events, stop, pause, resume, time budget, divergence, determinism.

Every run is real Keras training on a few hundred 28x28 images with a tiny
network (4 and 8 filters), one or two epochs: a few seconds each.
"""

import dataclasses
import json
import math
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from tiny_runs import cross_entropy, small_spec

from playground.data import datasets
from playground.training import callbacks, events
from playground.training import loop as training
from playground.spec.experiment import SpecError


@pytest.fixture(scope="module")
def shapes():
    return datasets.load_dataset("shapes")


@pytest.fixture(scope="module")
def reference(shapes):
    """One plain run of small_spec() with its events: the numbers every other way of training must repeat."""
    sent = []
    result = training.train(small_spec(), shapes, on_progress=sent.append, probe_image=shapes.x_test[0])
    return result, sent


def test_events_history_probes_and_result(shapes, reference):
    result, sent = reference

    kinds = [type(e) for e in sent]
    assert kinds[:3] == [events.Start, events.Batch, events.Probe]
    start = sent[0]
    assert start.epochs == 2 and start.initial_epoch == 0
    assert start.train_size == 320 and start.val_size == 80
    assert start.steps_per_epoch == 10 and start.params == result.params > 0

    epoch_events = [e for e in sent if isinstance(e, events.Epoch)]
    assert [e.epoch for e in epoch_events] == [1, 2]
    for key in events.HISTORY_KEYS:
        assert result.history[key] == [getattr(e, key) for e in epoch_events]
    assert all(e.seconds > 0 and e.images_per_second > 0 for e in epoch_events)

    batches = [e for e in sent if isinstance(e, events.Batch)]
    # First the untrained model on the first batch (sent before the first step compiles): about
    # the loss of guessing among the classes.
    untrained, batches = batches[0], batches[1:]
    assert untrained.step == 0 and untrained.seen == 0
    assert untrained.images_per_second is None
    assert abs(untrained.loss - math.log(shapes.num_classes)) < 1.0 and 0 <= untrained.accuracy <= 1
    assert batches[0].epoch == 1 and batches[0].step == 1 and batches[0].seen == 32
    assert all(1 <= b.step <= b.steps == 10 and math.isfinite(b.loss) for b in batches)

    probes = [e for e in sent if isinstance(e, events.Probe)]
    assert [p.epoch for p in probes] == [0, 1, 2]  # before training, then after each epoch
    for probe in probes:
        assert {name: m.shape for name, m in probe.maps.items()} == {
            "block1_act1": (28, 28, 4), "block2_act1": (14, 14, 8)}
        assert all(m.dtype == np.float32 for m in probe.maps.values())
    assert not np.array_equal(probes[0].maps["block1_act1"], probes[-1].maps["block1_act1"])

    # Every event but the probe arrays is plain JSON.
    json.dumps([dataclasses.asdict(e) for e in sent if not isinstance(e, events.Probe)])

    assert result.stop_reason == "completed" and result.epochs_completed == 2
    assert result.message.startswith("Trained 2 epochs in ") and "test accuracy" in result.message
    assert 0.0 <= result.test_accuracy <= 1.0 and math.isfinite(result.test_loss)
    assert result.test_size == len(shapes.x_test)
    assert result.images_per_second > 0 and result.train_seconds > 0
    assert result.initial_first_conv.shape == (3, 3, 1, 4)
    trained = result.model.get_layer("block1_conv1").kernel.numpy()
    assert not np.allclose(trained, result.initial_first_conv)  # training moved the filters


def test_batch_events_are_throttled(shapes, monkeypatch):
    monkeypatch.setattr(callbacks, "BATCH_EVENT_INTERVAL", 0.3)
    times, sent = [], []

    def record(event):
        if isinstance(event, events.Batch):
            times.append(time.perf_counter())
        sent.append(event)

    # 100 steps of 4 images per epoch: far more steps than 0.3 s windows.
    training.train(small_spec(batch_size=4, epochs=1, validation_split=0.0), shapes, on_progress=record)
    gaps = np.diff(times)
    assert len(times) >= 1 and (gaps >= 0.29).all()
    assert len(times) < 100
    epoch = [e for e in sent if isinstance(e, events.Epoch)][0]
    assert epoch.val_loss is None and epoch.val_accuracy is None  # no validation split


def test_should_stop_stops_within_the_epoch(shapes):
    polls = []

    def should_stop():
        polls.append(1)
        return len(polls) >= 3

    result = training.train(small_spec(), shapes, should_stop=should_stop)
    assert result.stop_reason == "stopped"
    assert len(polls) == 3  # polled after each batch, stopped after the third
    assert result.epochs_completed == 0 and result.history["loss"] == []  # a partial epoch is no history
    assert result.message == f"Stopped after 0 of 2 epochs: test accuracy {result.test_accuracy:.1%}."


def test_pause_is_not_training_time_and_changes_nothing(shapes, reference):
    calls = []

    def wait_if_paused(epoch_end):
        calls.append(epoch_end)
        if epoch_end:
            time.sleep(0.5)  # the user pauses after the first epoch, then resumes

    began = time.perf_counter()
    result = training.train(small_spec(), shapes, wait_if_paused=wait_if_paused)
    wall = time.perf_counter() - began
    assert calls.count(False) == 20  # after every batch of both epochs
    assert calls.count(True) == 1 and calls.index(True) == 10  # at the end of epoch 1 only, not after the last
    assert result.stop_reason == "completed" and result.history == reference[0].history
    assert result.train_seconds < wall - 0.5


def test_step_then_continue_gives_the_same_curves_as_one_run(shapes, reference):
    spec, whole = small_spec(), reference[0]

    stepped = {"done": False}

    def wait_if_paused(epoch_end):
        stepped["done"] = stepped["done"] or epoch_end

    first = training.train(spec, shapes, wait_if_paused=wait_if_paused, should_stop=lambda: stepped["done"])
    assert first.stop_reason == "stopped" and first.epochs_completed == 1 and len(first.history["loss"]) == 1

    sent = []
    rest = training.train(spec, shapes, model=first.model, initial_epoch=1, on_progress=sent.append)
    assert sent[0].initial_epoch == 1 and [e.epoch for e in sent if isinstance(e, events.Epoch)] == [2]
    assert rest.epochs_completed == 2
    assert rest.history == whole.history  # same batches, same optimizer state: the same numbers
    assert rest.test_loss == whole.test_loss
    np.testing.assert_array_equal(rest.initial_first_conv, whole.initial_first_conv)


def test_on_epoch_end_gets_each_finished_epoch_and_changes_nothing(shapes, reference):
    whole = reference[0]
    seen = []

    def keep(progress):  # what a checkpoint saves, copied: the model trains on after the call
        seen.append((progress, [w.copy() for w in progress.model.get_weights()]))

    result = training.train(small_spec(), shapes, on_epoch_end=keep)
    assert result.history == whole.history and result.test_loss == whole.test_loss
    assert [p.epochs_completed for p, _ in seen] == [1, 2]
    for progress, _ in seen:
        count = progress.epochs_completed
        assert progress.history == {k: v[:count] for k, v in whole.history.items()}
        assert math.isnan(progress.test_accuracy) and math.isnan(progress.test_loss) and progress.test_size == 0
        assert progress.stop_reason == "interrupted" and progress.stop_reason in training.STOP_REASONS
        assert progress.message == f"Interrupted after epoch {count} of 2, before the test set was evaluated."
        assert progress.params == result.params and progress.train_seconds > 0 and progress.images_per_second > 0
        np.testing.assert_array_equal(progress.initial_first_conv, result.initial_first_conv)
    # The last snapshot holds the final weights; the first one those of epoch 1.
    for saved, final in zip(seen[-1][1], result.model.get_weights()):
        np.testing.assert_array_equal(saved, final)
    assert not np.array_equal(seen[0][1][0], seen[1][1][0])


def test_on_epoch_end_skips_a_partial_epoch_and_counts_on_when_continued(shapes, reference):
    spec, whole, seen = small_spec(), reference[0], []
    stepped = {"done": False}

    def wait_if_paused(epoch_end):
        stepped["done"] = stepped["done"] or epoch_end

    def keep(progress):
        seen.append((progress.epochs_completed, len(progress.history["loss"])))

    first = training.train(spec, shapes, wait_if_paused=wait_if_paused, should_stop=lambda: stepped["done"],
                           on_epoch_end=keep)
    assert first.epochs_completed == 1 and seen == [(1, 1)]
    stopped = training.train(spec, shapes, should_stop=lambda: True, on_epoch_end=keep)
    assert stopped.epochs_completed == 0 and seen == [(1, 1)]  # stopped in its first epoch: no call
    rest = training.train(spec, shapes, model=first.model, initial_epoch=1, on_epoch_end=keep)
    assert seen == [(1, 1), (2, 2)] and rest.history == whole.history


def test_same_spec_and_seed_give_identical_runs(shapes, reference):
    first = reference[0]
    again = training.train(small_spec(), shapes)  # dropout (0.25 in this preset) draws repeat too
    assert len(again.history["loss"]) == 2
    assert again.history == first.history and again.test_loss == first.test_loss
    np.testing.assert_array_equal(again.model.get_layer("logits").kernel.numpy(),
                                  first.model.get_layer("logits").kernel.numpy())


def test_time_budget_stops_at_the_first_batch_past_it(shapes, monkeypatch):
    monkeypatch.setattr(callbacks, "BATCH_EVENT_INTERVAL", 0.0)  # an event after every batch
    sent = []
    result = training.train(small_spec(epochs=200, time_budget=1.0), shapes, on_progress=sent.append)
    assert result.stop_reason == "time_budget"
    assert result.epochs_completed < 200
    assert result.message.startswith("The time budget of 1 s ran out after ")
    elapsed = [e.elapsed for e in sent if isinstance(e, events.Batch)]
    assert all(t < 1.0 for t in elapsed[:-1])  # no batch ran after the one that crossed the budget
    assert result.train_seconds >= 1.0


def test_reported_losses_are_the_cross_entropy_without_the_weight_penalty(shapes):
    spec = small_spec(weight_decay=0.01, label_smoothing=0.1)
    result = training.train(spec, shapes)
    assert result.test_loss == pytest.approx(cross_entropy(result.model, shapes.x_test, shapes.y_test), rel=1e-4)
    # The last epoch's validation score was taken with the final weights.
    _, _, x_val, y_val = datasets.split_train_validation(shapes, spec.data.sample_size, spec.data.validation_split,
                                                         spec.seed)
    assert result.history["val_loss"][-1] == pytest.approx(cross_entropy(result.model, x_val, y_val), rel=1e-4)
    # The objective adds the L2 penalty (and smoothing): what training minimises is larger than what is reported.
    objective = result.model.evaluate(shapes.x_test, shapes.y_test, verbose=0, return_dict=True)["loss"]
    assert objective > result.test_loss + 0.01


def test_divergence_stops_and_restores_finite_weights(shapes):
    # No weight decay: its pull towards zero would keep this run from diverging.
    spec = small_spec(optimizer="sgd", learning_rate=10, batch_norm=False, epochs=3, weight_decay=0.0)
    result = training.train(spec, shapes)
    assert result.stop_reason == "diverged"
    assert re.fullmatch(
        r"Training diverged at epoch [1-3] \((loss became NaN|loss became infinite|loss grew to .+)\); "
        r"the learning rate 10 is probably too high — try 0\.01\.",
        result.message,
    ), result.message
    assert all(np.isfinite(w).all() for w in result.model.get_weights())
    assert all(math.isfinite(v) for v in result.history["loss"])  # the diverged epoch is not recorded
    assert len(result.history["loss"]) == result.epochs_completed
    assert math.isfinite(result.test_loss)
    if result.epochs_completed == 0:  # back to the initial weights
        np.testing.assert_array_equal(result.model.get_layer("block1_conv1").kernel.numpy(), result.initial_first_conv)


def test_bad_arguments_raise_before_training(shapes):
    with pytest.raises(ValueError, match=r"probe_image\.shape=\(8, 8, 1\)"):
        training.train(small_spec(), shapes, probe_image=np.zeros((8, 8, 1), np.uint8))
    with pytest.raises(ValueError, match="initial_epoch=2"):
        training.train(small_spec(), shapes, initial_epoch=2)
    with pytest.raises(SpecError, match="kernel"):
        training.train(small_spec(kernel_size=11, padding="valid", conv_blocks=3, filters="4,8,8"), shapes)


def test_configure_threads_once_per_process():
    code = (
        "import os; from playground.training import loop as training; "
        "first = training.configure_threads(); second = training.configure_threads(1, 1); "
        "print(first, second, len(os.sched_getaffinity(0)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    cores = int(out.stdout.split()[-1])
    inter = 1 if cores <= 4 else 2
    assert out.stdout.strip() == f"({cores}, {inter}) ({cores}, {inter}) {cores}"
