"""A model built and its training and evaluation steps traced before Train is pressed.

The first training step of a new Keras model costs seconds on a CPU (about 2.3 s of the
3.2 s from `loop.train` to the first trained batch for the default preset on
Fashion-MNIST): TensorFlow traces `train_step` into a graph (Python runs the model,
the loss, the gradients and the optimizer once), then optimises and instantiates the
graph on its first run. The evaluation step does the same at the end of the first
epoch. `warm_up(spec, dataset)` pays for all of that ahead of time, while the user is
still on the page (a training worker calls it when it prepares the page's data): it
builds and compiles the model exactly as `loop.train` would, runs one training step
and one evaluation step on a few images, then puts every variable (weights,
batch-norm statistics, random-seed states, optimizer slots and step count) back to
its value as built. `loop.train` then takes that model (`claim`) instead of building
one, so its first step runs a graph that is already traced and optimised.

Results are those of a model built by `train` itself: same initial values, same
graph, same batches, so the same weights and history for the same seed (see
tests/test_warmup.py).

A warm model fits a later `train` call when everything that shapes its graph or its
constants is equal (`graph_key`: the spec without its seed, preset name and time
budget; the learning-rate schedule's length is a constant of the graph, so the epochs,
batch size and number of training images count), it is the same dataset object (the
per-process cache of `datasets.load_for_spec` returns one), and the dtype policy and
device strategy are unchanged. The seed need not match: a warm model for another seed
gets the initial values of a model built with the new seed (one build, about 0.2 s,
still no tracing).

One model is kept warm per process. `train` takes it whether it fits or not (a
training that does not use it is a sign that the page has moved on), and the next
`warm_up` replaces it.

    warm_up(spec, load_for_spec(spec))     # in the worker, before any job
    train(spec, load_for_spec(spec), ...)  # first trained batch in well under a second
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass, replace

import keras
import numpy as np

from playground.data import datasets
from playground.model import network as models
from playground.spec.experiment import ExperimentSpec, graph_key
from playground.spec.validation import validate
from playground.training import devices
from playground.training import loop

WARM_EVAL_IMAGES = 64  # images of the evaluation step run at warm-up (its shape does not matter: batch dim is None)


@dataclass
class _Warm:
    """The warm model and what is needed to hand it out fresh."""

    key: tuple  # graph_key(...) plus dtype policy and replicas
    dataset: weakref.ref  # the Dataset it was built for
    seed: int  # the seed its initial values come from
    model: keras.Model  # compiled, train/test functions traced and run once
    model_variables: int  # how many of `variables` are the model's (the rest are the optimizer's)
    variables: list  # model.variables + optimizer.variables, in a fixed order
    initial: list[np.ndarray]  # their values as built (seed `seed`)


_lock = threading.Lock()  # held while a model is being warmed or claimed: one at a time
_warm: _Warm | None = None


def warm_up(spec: ExperimentSpec, dataset: datasets.Dataset) -> bool:
    """Build the model of `spec`, trace and run its training and evaluation steps once, and keep it for `train`.

    Safe to call from any thread of the process (a training worker calls it while
    idle, before a job): Keras layers, models and optimizer variables are made
    under `model.network.BUILD_LOCK`, and a `train` that starts meanwhile waits for
    the warm-up to finish before it looks for a warm model. Calling it again with
    a spec of the same graph and the same dataset does nothing; another spec
    replaces the warm model. Costs about 2.5 s for the default preset on a 2-core
    CPU, and the memory of one model.

    Args:
        spec: the experiment the next `train` call is expected to run (the page's spec).
        dataset: the dataset `train` will get (`datasets.load_for_spec(spec)`: the same object).

    Returns:
        True when a model was built and traced now; False when one for this
        graph and dataset was already warm, or when the spec leaves no
        training images (there is nothing to warm; `train` reports it).

    Raises:
        SpecError: when the spec is impossible for this dataset.
    """
    global _warm
    spec = validate(spec, dataset.input_shape)
    loop.configure_threads()
    with _lock:
        if _warm is not None and _fits(_warm, spec, dataset):
            return False
        _warm = None  # the old model goes before the new one is built
        loop.set_random_seed(spec.seed)  # as `train` does before it builds
        x_train, y_train, x_val, y_val = datasets.split_train_validation(
            dataset, spec.data.sample_size, spec.data.validation_split, spec.seed
        )
        if len(x_train) == 0:
            return False
        batch_size = min(spec.train.batch_size, len(x_train))
        steps_per_epoch = math.ceil(len(x_train) / batch_size)
        with devices.training_strategy().scope():
            devices.use_mixed_precision()
            with models.BUILD_LOCK:
                model = models.build_model(spec, dataset.input_shape, dataset.num_classes, x_sample=x_train)
                models.compile_model(model, spec, steps_per_epoch)
                model.optimizer.build(model.trainable_variables)  # its slots exist now, so their values can be kept
            model_variables = list(model.variables)
            variables = model_variables + list(model.optimizer.variables)
            initial = [np.array(v.numpy()) for v in variables]
            # One real step of each kind: tracing, graph optimisation and kernel set-up happen here, not in `train`.
            # The pipelines have the element types of train's own (uint8 images, the dataset's labels).
            model.fit(loop._training_batches(x_train[:batch_size], y_train[:batch_size], batch_size, spec.seed, 0, 1),
                      epochs=1, steps_per_epoch=1, shuffle=False, verbose=0)
            x_eval, y_eval = (x_val, y_val) if len(x_val) else (x_train, y_train)
            model.evaluate(loop._eval_batches(x_eval[:WARM_EVAL_IMAGES], y_eval[:WARM_EVAL_IMAGES]), verbose=0)
            _assign(variables, initial)
        _warm = _Warm(key=_key(spec), dataset=weakref.ref(dataset), seed=spec.seed, model=model,
                      model_variables=len(model_variables), variables=variables, initial=initial)
    return True


def is_warm(spec: ExperimentSpec, dataset: datasets.Dataset) -> bool:
    """True when a warm model is waiting that `train(spec, dataset)` would use (any seed)."""
    with _lock:
        return _warm is not None and _fits(_warm, validate(spec, dataset.input_shape), dataset)


def warm_model() -> keras.Model | None:
    """The model waiting for the next `train` call, or None (for tests and diagnostics)."""
    with _lock:
        return None if _warm is None else _warm.model


def discard() -> None:
    """Drop the warm model, if any (its memory is freed with the next garbage collection)."""
    global _warm
    with _lock:
        _warm = None


def claim(spec: ExperimentSpec, dataset: datasets.Dataset, x_train: np.ndarray) -> keras.Model | None:
    """Take the warm model for a `train` call, with fresh initial values for `spec.seed`; None when none fits.

    The warm model is taken out either way (see the module's docstring). Waits
    while a warm-up is in progress. Called by `loop.train` inside the training
    strategy's scope, after the global seed is set and the dtype policy chosen.

    Args:
        spec: the validated experiment about to be trained.
        dataset: its dataset.
        x_train: the training images `train` uses (the "dataset" normaliser's
            statistics when a model must be built for another seed).

    Returns:
        The compiled model with its training and evaluation steps traced, its
        variables as a model newly built for `spec` has them and its optimizer
        at step 0; or None.
    """
    global _warm
    with _lock:
        warm, _warm = _warm, None
        if warm is None or not _fits(warm, spec, dataset):
            return None
        values = warm.initial
        if spec.seed != warm.seed:
            # (`train` has seeded everything for spec.seed, TensorFlow's caches cleared with it: the first step
            # sets its graph up again, about 0.3 s, but nothing is traced.)
            fresh = models.build_model(spec, dataset.input_shape, dataset.num_classes, x_sample=x_train)
            built = [np.array(v.numpy()) for v in fresh.variables]
            kept = values[:warm.model_variables]
            if len(built) != len(kept) or any(a.shape != b.shape or a.dtype != b.dtype for a, b in zip(built, kept)):
                return None
            values = built + values[warm.model_variables:]
        _assign(warm.variables, values)
        return warm.model


def _key(spec: ExperimentSpec) -> tuple:
    strategy = devices.training_strategy()
    return (graph_key(spec), keras.mixed_precision.global_policy().name, type(strategy).__name__,
            strategy.num_replicas_in_sync)


def _fits(warm: _Warm, spec: ExperimentSpec, dataset: datasets.Dataset) -> bool:
    return warm.dataset() is dataset and warm.key == _key(spec)


def _assign(variables: list, values: list[np.ndarray]) -> None:
    for variable, value in zip(variables, values):
        variable.assign(value)

