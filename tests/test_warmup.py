"""warmup.warm_up: a model traced ahead of time trains exactly as `train` would on its own, and is traced once.

Real Keras training on a few hundred built-in shapes images with a tiny network,
as in test_training.py: a few seconds each.
"""

import keras
import numpy as np
import pytest
from tiny_runs import small_spec

from playground.data import datasets
from playground.training import events, warmup
from playground.training import loop as training

# Augmentation and dropout draw from seeded generator states that training advances: they must start over too.
SPEC = small_spec(flip=True, shift=0.1, dropout=0.25)


@pytest.fixture(scope="module")
def shapes():
    return datasets.load_dataset("shapes")


@pytest.fixture(scope="module")
def plain(shapes):
    """The run of SPEC by `train` alone (no warm model waiting), with its events."""
    warmup.discard()
    sent = []
    return training.train(SPEC, shapes, on_progress=sent.append), sent


@pytest.fixture(autouse=True)
def _nothing_warm_after():
    yield
    warmup.discard()


@pytest.fixture
def steps_traced(monkeypatch):
    """Counts the traces of the training and evaluation steps (their Python runs only while traced)."""
    counts = {"train": 0, "test": 0}
    train_step, test_step = keras.Model.train_step, keras.Model.test_step

    def counting_train_step(self, data):
        counts["train"] += 1
        return train_step(self, data)

    def counting_test_step(self, data):
        counts["test"] += 1
        return test_step(self, data)

    monkeypatch.setattr(keras.Model, "train_step", counting_train_step)
    monkeypatch.setattr(keras.Model, "test_step", counting_test_step)
    return counts


def assert_same_run(result, reference):
    assert result.history == reference.history
    assert result.test_loss == reference.test_loss and result.test_accuracy == reference.test_accuracy
    np.testing.assert_array_equal(result.initial_first_conv, reference.initial_first_conv)
    for got, want in zip(result.model.variables, reference.model.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=got.path)


def test_warm_model_trains_to_the_same_weights_and_history(shapes, plain, steps_traced):
    reference, reference_events = plain
    assert warmup.warm_up(SPEC, shapes) is True
    traced = dict(steps_traced)
    assert traced["train"] > 0 and traced["test"] > 0  # (TensorFlow traces twice when a first trace makes variables)
    warm = warmup.warm_model()
    assert warm is not None and warmup.is_warm(SPEC, shapes)

    sent = []
    result = training.train(SPEC, shapes, on_progress=sent.append)

    assert result.model is warm  # taken, not rebuilt ...
    assert steps_traced == traced  # ... and nothing traced again (validation and test included)
    assert warmup.warm_model() is None  # one training per warm-up
    assert_same_run(result, reference)
    # The untrained point and every epoch are the same too.
    first = [e for e in sent if isinstance(e, events.Batch)][0]
    reference_first = [e for e in reference_events if isinstance(e, events.Batch)][0]
    assert first.step == 0 and (first.loss, first.accuracy) == (reference_first.loss, reference_first.accuracy)
    assert [e.loss for e in sent if isinstance(e, events.Epoch)] == reference.history["loss"]


def test_warm_up_again_for_the_same_spec_does_nothing(shapes, steps_traced):
    assert warmup.warm_up(SPEC, shapes) is True
    model, traced = warmup.warm_model(), dict(steps_traced)
    # The time budget and the preset's name do not change the graph.
    assert warmup.warm_up(SPEC.with_values(time_budget=30, preset="custom"), shapes) is False
    assert warmup.warm_model() is model and steps_traced == traced


def test_another_seed_reuses_the_graph_with_that_seeds_initial_weights(shapes, steps_traced):
    other = SPEC.with_values(seed=7, epochs=1)
    warmup.discard()
    reference = training.train(other, shapes)

    warmup.warm_up(other.with_values(seed=0), shapes)
    assert warmup.is_warm(other, shapes)
    traced = dict(steps_traced)
    result = training.train(other, shapes)
    assert steps_traced == traced  # the seed-7 run traced nothing
    assert_same_run(result, reference)


def test_a_spec_of_another_graph_or_dataset_builds_its_own_model(shapes, plain):
    wider = SPEC.with_values(filters="6,8", epochs=1)
    warmup.warm_up(wider, shapes)
    assert not warmup.is_warm(SPEC, shapes)
    assert not warmup.is_warm(wider.with_values(epochs=2), shapes)  # the schedule's length is part of the graph
    assert not warmup.is_warm(wider, datasets.load_dataset("shapes", seed=1))  # other images
    warm = warmup.warm_model()

    result = training.train(SPEC, shapes)

    assert result.model is not warm
    assert warmup.warm_model() is None  # the page moved on: the warm model is dropped
    assert_same_run(result, plain[0])


def test_without_validation_images(shapes, steps_traced):
    spec = SPEC.with_values(validation_split=0.0, epochs=1)
    warmup.discard()
    reference = training.train(spec, shapes)
    warmup.warm_up(spec, shapes)
    traced = dict(steps_traced)
    result = training.train(spec, shapes)
    assert steps_traced == traced
    assert_same_run(result, reference)
