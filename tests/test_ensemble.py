"""Ensembles and cached evaluations of real tiny runs saved with the run store."""

import os

import numpy as np
import pytest

from playground.runs import ensemble
from playground.runs import evaluation
from playground.runs.store import RunStore, RunStoreError
from tiny_runs import trained

@pytest.fixture(scope="module")
def shapes_result():
    return trained("shapes")


@pytest.fixture(scope="module")
def digits_result():
    return trained("digits", epochs=1)


def test_identical_members_equal_the_single_run(shapes_result):
    spec, data, result = shapes_result
    store = RunStore()
    a = store.save(result, spec, data, name="copy A")
    b = store.save(result, spec, data, name="copy B")
    single = evaluation.evaluate_run(a, data, store=store)
    out = ensemble.evaluate_ensemble([a, b], store=store)
    np.testing.assert_allclose(out.probabilities, single.probabilities, atol=1e-6)
    assert out.accuracy == out.member_accuracy[0] == out.member_accuracy[1]
    assert out.gain == 0.0 and out.names == ("copy A", "copy B") and out.other_data == ()
    # The evaluation agrees with the test accuracy measured at the end of training.
    assert out.accuracy == pytest.approx(a.metrics["test_accuracy"], abs=1e-6)
    assert out.loss == pytest.approx(a.metrics["test_loss"], rel=1e-3)


def test_evaluation_is_cached_in_the_run_folder(shapes_result, tmp_path):
    spec, data, result = shapes_result
    store = RunStore()
    record = store.save(result, spec, data)
    first = evaluation.evaluate_run(record, data, store=store)
    cache = evaluation.cache_path(record, data)
    assert cache.exists() and cache.parent == record.path
    with np.load(cache, allow_pickle=False) as saved:  # plain arrays, no pickle
        assert saved["probabilities"].shape == (len(data.y_test), 5)
    # A store that cannot load any model proves the second answer comes from the file.
    again = evaluation.evaluate_run(record, data, store=RunStore(tmp_path / "elsewhere"))
    np.testing.assert_array_equal(again.probabilities, first.probabilities)
    assert len(first.feature_indices) == min(len(data.y_test), evaluation.MAX_FEATURE_IMAGES)
    assert first.features.shape == (len(first.feature_indices), 16)  # the 16-unit dense layer feeds the logits
    # New weights make the cache stale.
    os.utime(record.path / "model.weights.h5", ns=(1, 1))
    with pytest.raises(RunStoreError, match="no run"):
        evaluation.evaluate_run(record, data, store=RunStore(tmp_path / "elsewhere"))


def test_mismatched_datasets_are_refused(shapes_result, digits_result):
    store = RunStore()
    shapes = store.save(shapes_result[2], shapes_result[0], shapes_result[1])
    digits = store.save(digits_result[2], digits_result[0], digits_result[1])
    with pytest.raises(ensemble.EnsembleError, match="same dataset.*'shapes'.*'digits'"):
        ensemble.evaluate_ensemble([shapes, digits], store=store)
    with pytest.raises(ensemble.EnsembleError, match="at least two runs"):
        ensemble.evaluate_ensemble([shapes], store=store)


def test_other_class_names_or_shape_are_refused(shapes_result):
    spec, data, result = shapes_result
    store = RunStore()
    a = store.save(result, spec, data)
    renamed = store.save(result, spec, {**data.info(), "class_names": list(data.class_names[::-1])})
    with pytest.raises(ensemble.EnsembleError, match="same class names"):
        ensemble.check_members([a, renamed])
    other_shape = store.save(result, spec, {**data.info(), "input_shape": [32, 32, 1]})
    with pytest.raises(ensemble.EnsembleError, match=r"same input shape.*\(32, 32, 1\)"):
        ensemble.check_members([a, other_shape])
    broken = store.save(result, spec, data)
    (broken.path / "metrics.json").write_text("{")
    with pytest.raises(ensemble.EnsembleError, match="damaged"):
        ensemble.check_members([a, store.load(broken.run_id)])


def test_members_with_other_shapes_are_named(shapes_result):
    spec, data, result = shapes_result
    store = RunStore()
    a = store.save(result, spec, data, name="seed 0")
    b = store.save(result, spec.with_values(seed=1), data, name="seed 1")
    c = store.save(result, spec.with_values(shapes_noise=0.5), data, name="noisier")
    assert ensemble.other_test_images([a, b, c]) == ("seed 1", "noisier")
    assert ensemble.other_test_images([a, a]) == ()


def test_averaging_can_beat_every_member():
    y = np.array([0, 1, 2])
    # Each member gets one image wrong, a different one; the average gets all three right.
    a = np.array([[0.4, 0.6, 0.0], [0.0, 0.9, 0.1], [0.1, 0.0, 0.9]])
    b = np.array([[0.9, 0.1, 0.0], [0.0, 0.4, 0.6], [0.1, 0.0, 0.9]])
    c = np.array([[0.9, 0.0, 0.1], [0.1, 0.9, 0.0], [0.6, 0.0, 0.4]])
    out = ensemble.combine(["a", "b", "c"], [a, b, c], y)
    assert out.member_accuracy == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert out.accuracy == 1.0 and out.gain == pytest.approx(1 / 3)
    np.testing.assert_allclose(out.probabilities[0], [2.2 / 3, 0.7 / 3, 0.1 / 3], rtol=1e-6)
    with pytest.raises(ensemble.EnsembleError, match="one shape"):
        ensemble.average_probabilities([a, a[:2]])
