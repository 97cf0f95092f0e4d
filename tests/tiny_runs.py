"""Real tiny training runs shared by the decision-quality, ensemble and page tests.

Training is the slow part of those tests (several seconds each on 2 cores),
so each tiny run is trained once per test process and saved by each test
into its own runs folder with `RunStore.save`.
"""

import functools

import numpy as np

from playground.data import datasets
from playground.training import loop as training
from playground.spec.experiment import ExperimentSpec
from playground.spec.presets import preset_spec

# 200 shapes images, two small conv blocks, 2 epochs: a few seconds on a CPU.
TINY = dict(sample_size=200, filters="4,8", dense_units="16", epochs=2, batch_size=32)


@functools.cache
def trained(dataset: str = "shapes", epochs: int = 2):
    """(spec, dataset, TrainResult) of a tiny run on `dataset`, trained once per process."""
    spec = ExperimentSpec().with_values(dataset=dataset, **{**TINY, "epochs": epochs})
    data = datasets.load_for_spec(spec)
    return spec, data, training.train(spec, data)


def small_spec(**changes):
    """The default preset on shapes, shrunk to train in about a second."""
    values = dict(sample_size=400, validation_split=0.2, filters="4,8", dense_units="16", batch_size=32, epochs=2)
    values.update(changes)
    return preset_spec("default", "shapes").with_values(**values)


def cross_entropy(model, x, y) -> float:
    """The mean cross-entropy of `model`'s predicted probabilities for images `x` (N, H, W, C) with labels `y`."""
    probabilities = np.asarray(model.predict(x, verbose=0))  # (N, classes)
    return float(np.mean(-np.log(probabilities[np.arange(len(y)), y])))
