"""Weight averaging: a moving average of the weights over the steps, which validation scores and training ends with."""

import math

import keras
import numpy as np
import pytest
from tiny_runs import cross_entropy, small_spec

from playground.data import datasets
from playground.model import network as models
from playground.spec.experiment import ExperimentSpec
from playground.spec.validation import check
from playground.training import loop as training


@pytest.fixture(scope="module")
def shapes():
    return datasets.load_dataset("shapes")


class TrainedWeights(keras.callbacks.Callback):
    """The trainable weights after every step, as the optimizer left them (before any averaging is copied in)."""

    def __init__(self):
        super().__init__()
        self.steps: list[list[np.ndarray]] = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append([np.array(v.numpy()) for v in self.model.trainable_variables])


def fit_steps(momentum: float, steps: int, seed: int):
    """A 4-filter model fitted `steps` SGD steps of 4 random 8x8 images with weight averaging at `momentum`.

    Returns:
        (model, the TrainedWeights of its steps).
    """
    spec = ExperimentSpec().with_values(filters="4", dense_units="8", batch_size=4, epochs=1, optimizer="sgd",
                                        learning_rate=0.1, schedule="constant", weight_averaging=momentum)
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 256, (4 * steps, 8, 8, 1)).astype(np.float32), rng.integers(0, 3, 4 * steps)
    model = models.build_model(spec, (8, 8, 1), 3)
    models.compile_model(model, spec, steps_per_epoch=steps)
    recorder = TrainedWeights()
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, callbacks=[recorder], verbose=0)
    return model, recorder


def test_fit_ends_with_the_moving_average_of_the_trained_weights():
    model, recorder = fit_steps(0.8, 60, seed=0)
    assert len(recorder.steps) == 60  # past step 40, where the momentum reaches 0.8
    # The average starts at the first step's weights; step t (from 0) keeps min(0.8, t / (t + 10)) of it.
    expected = recorder.steps[0]
    for t, weights in enumerate(recorder.steps[1:], start=1):
        m = min(0.8, t / (t + 10))
        expected = [m * a + (1 - m) * w for a, w in zip(expected, weights)]
    for final, average in zip(model.trainable_variables, expected):
        np.testing.assert_allclose(final.numpy(), average, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(a, w) for a, w in zip(expected, recorder.steps[-1]))  # not the last step's weights


def test_a_short_run_ends_near_its_last_steps_not_its_first():
    model, recorder = fit_steps(0.999, 20, seed=1)

    def distance(a, b):
        return math.sqrt(sum(float(np.sum((np.asarray(p) - np.asarray(q)) ** 2)) for p, q in zip(a, b)))

    final = [v.numpy() for v in model.trainable_variables]
    # 20 steps at momentum 0.999 from the start would leave 98% of the first step's weights in the average.
    assert distance(final, recorder.steps[-1]) < 0.5 * distance(final, recorder.steps[0])


def test_without_weight_averaging_the_optimizer_keeps_no_average():
    model = models.build_model(small_spec(), (28, 28, 1), 3)
    models.compile_model(model, small_spec(), steps_per_epoch=1)
    assert not model.optimizer.use_ema
    models.compile_model(model, small_spec(weight_averaging=0.99), steps_per_epoch=1)
    assert model.optimizer.use_ema and model.optimizer.ema_momentum == 0.99


def test_averaged_weights_swaps_in_the_average_and_back(shapes):
    spec = small_spec(weight_averaging=0.9)
    model = models.build_model(spec, shapes.input_shape, shapes.num_classes)
    models.compile_model(model, spec, steps_per_epoch=4)
    with models.averaged_weights(model):  # before any step there is no average: the weights stay
        untouched = [np.array(v.numpy()) for v in model.trainable_variables]
    x, y = shapes.x_train[:64].astype(np.float32), shapes.y_train[:64]
    for trained, now in zip(untouched, model.trainable_variables):
        np.testing.assert_array_equal(trained, now.numpy())
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # ends holding the average
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[recorder := TrainedWeights()])
    # fit copied the average in at the end; put the last trained weights back to look at both.
    for variable, trained in zip(model.trainable_variables, recorder.steps[-1]):
        variable.assign(trained)
    averages = [np.array(a.numpy()) for a in model.optimizer._model_variables_moving_average]
    with models.averaged_weights(model):
        for variable, average in zip(model.trainable_variables, averages):
            np.testing.assert_array_equal(variable.numpy(), average)
    for variable, trained in zip(model.trainable_variables, recorder.steps[-1]):
        np.testing.assert_array_equal(variable.numpy(), trained)


def test_a_run_with_weight_averaging_is_scored_with_the_weights_it_ends_with(shapes):
    spec = small_spec(weight_averaging=0.9, epochs=2)
    result = training.train(spec, shapes)
    assert result.test_loss == pytest.approx(cross_entropy(result.model, shapes.x_test, shapes.y_test), rel=1e-4)
    _, _, x_val, y_val = datasets.split_train_validation(shapes, spec.data.sample_size, spec.data.validation_split,
                                                         spec.seed)
    assert result.history["val_loss"][-1] == pytest.approx(cross_entropy(result.model, x_val, y_val), rel=1e-4)
    # Continuing the run averages on from there and ends with finite, averaged weights again.
    again = training.train(spec.with_values(epochs=3), shapes, model=result.model, initial_epoch=2)
    assert again.epochs_completed == 3 and all(np.isfinite(w).all() for w in again.model.get_weights())
    assert again.history["val_loss"][-1] == pytest.approx(cross_entropy(again.model, x_val, y_val), rel=1e-4)


def test_a_diverged_run_with_weight_averaging_ends_with_its_last_good_weights(shapes):
    spec = small_spec(optimizer="sgd", learning_rate=10, batch_norm=False, epochs=3, weight_decay=0.0,
                      weight_averaging=0.9)
    result = training.train(spec, shapes)
    assert result.stop_reason == "diverged"
    assert all(np.isfinite(w).all() for w in result.model.get_weights())
    assert math.isfinite(result.test_loss)
    # The average starts again from the weights put back, so a continued run cannot copy in what diverged.
    for variable, average in zip(result.model.trainable_variables, result.model.optimizer._model_variables_moving_average):
        np.testing.assert_array_equal(variable.numpy(), average.numpy())


def test_weight_averaging_is_a_later_field_with_bounds():
    assert "weight_averaging" not in ExperimentSpec().to_dict()["train"]  # older specs keep their JSON and id
    spec = ExperimentSpec().with_values(weight_averaging=0.99)
    assert spec.to_dict()["train"]["weight_averaging"] == 0.99
    assert ExperimentSpec.from_query_params(spec.to_query_params()) == spec
    assert ExperimentSpec().spec_id() != spec.spec_id()
    problems = check(ExperimentSpec().with_values(weight_averaging=1.0))
    assert [p.field_name for p in problems] == ["weight_averaging"]
    assert "0 (off) or up to 0.9999" in problems[0].message
    assert "moving average of the trained weights over the steps (momentum 0.99)" in models.export_keras_code(
        spec, (28, 28, 1), 10)


def test_a_saved_model_that_averages_its_weights_loads_again(tmp_path):
    from playground.runs import bundle

    model, _ = fit_steps(0.9, 4, seed=2)
    path = tmp_path / "model.keras"
    path.write_bytes(bundle.export_keras_file(model))
    loaded = keras.saving.load_model(path)
    assert loaded.optimizer.use_ema and loaded.optimizer.ema_momentum == 0.9
    assert isinstance(loaded.optimizer, models._WarmingAverage)
    x = np.random.default_rng(3).integers(0, 256, (4, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["adamw", "nesterov"])
def test_a_run_that_averages_its_weights_goes_through_a_bundle(shapes, tmp_path, optimizer):
    from playground.analysis.predict import Predictor
    from playground.runs.bundle import export_bundle, import_bundle
    from playground.runs.store import RunStore

    spec = small_spec(weight_averaging=0.99, optimizer=optimizer, epochs=1)
    store = RunStore(tmp_path / "runs")
    run = store.save(training.train(spec, shapes), spec, shapes, name="averaged", owner="alice")
    # Its weights file holds the optimizer's state with the averages; a bundle of it imports as any other.
    imported = import_bundle(export_bundle(run), "averaged.bundle.zip", owner="bob", store=store)
    assert imported.spec == spec
    images = shapes.x_test[:4].astype(np.float32)
    np.testing.assert_array_equal(Predictor.from_run(run.run_id, store).probabilities(images),
                                  Predictor.from_run(imported.run_id, store).probabilities(images))
