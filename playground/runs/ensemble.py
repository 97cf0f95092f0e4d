"""Ensembles of saved runs: average the members' probabilities on one test set.

Averaging the softmax outputs of several independently trained networks
usually beats each of them (the errors of different runs are partly
independent), which is why the classic courses end with "train a few and
average". Members must classify the same thing: the same dataset, the same
class names in the same order and the same input shape; anything else is
refused with one sentence saying what differs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Sequence

import numpy as np

from playground.analysis import metrics
from playground.data.dataset import Dataset
from playground.runs.record import RunRecord

if TYPE_CHECKING:  # the store imports TensorFlow; it is imported only when a model is loaded
    from playground.runs.store import RunStore


class EnsembleError(ValueError):
    """Runs that cannot be averaged together, explained in one sentence."""


@dataclass(frozen=True)
class EnsembleResult:
    """The ensemble's test accuracy next to each member's, all on the same test images."""

    names: tuple[str, ...]  # member run names, in the order given
    member_accuracy: tuple[float, ...]  # test accuracy of each member
    member_loss: tuple[float, ...]  # test cross-entropy of each member
    accuracy: float  # test accuracy of the averaged probabilities
    loss: float  # test cross-entropy of the averaged probabilities
    probabilities: np.ndarray  # float32 (N, C) averaged probabilities
    other_data: tuple[str, ...] = ()  # members whose own test images differ from the ones scored here

    @property
    def gain(self) -> float:
        """Ensemble accuracy minus the best member's (positive: the ensemble helps)."""
        return self.accuracy - max(self.member_accuracy)


def other_test_images(records: Sequence[RunRecord]) -> tuple[str, ...]:
    """Names of members whose own test set differs from the first member's.

    Only the built-in "shapes" images depend on the spec (its noise and seed
    draw them); every other dataset has one fixed test set. Such members are
    scored on the first member's images, so their accuracy there can differ
    from the one saved with the run.
    """
    first = records[0].spec
    if first.data.dataset != "shapes":
        return ()
    return tuple(
        r.name for r in records[1:]
        if (r.spec.data.shapes_noise, r.spec.seed) != (first.data.shapes_noise, first.seed)
    )


def check_members(records: Sequence[RunRecord]) -> None:
    """Raise EnsembleError unless `records` are at least two undamaged runs of the same classification task.

    Args:
        records: the runs (name, damaged, spec, class_names, input_shape are read).
    """
    if len(records) < 2:
        raise EnsembleError(f"An ensemble needs at least two runs. Received: {len(records)}")
    for r in records:
        if r.damaged:
            raise EnsembleError(f"A damaged run cannot be part of an ensemble. Received: run {r.name!r} ({r.damaged})")
    first = records[0]
    for r in records[1:]:
        if r.spec.data.dataset != first.spec.data.dataset:
            raise EnsembleError(
                f"Ensemble members must be trained on the same dataset. Received: {first.name!r} on {first.spec.data.dataset!r} and {r.name!r} on {r.spec.data.dataset!r}"
            )
        if tuple(r.class_names) != tuple(first.class_names):
            raise EnsembleError(
                f"Ensemble members must have the same class names in the same order. Received: {first.name!r} has {list(first.class_names)} and {r.name!r} has {list(r.class_names)}"
            )
        if tuple(r.input_shape) != tuple(first.input_shape):
            raise EnsembleError(
                f"Ensemble members must take the same input shape. Received: {first.name!r} takes {tuple(first.input_shape)} and {r.name!r} takes {tuple(r.input_shape)}"
            )


def average_probabilities(member_probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of the members' (N, C) probability arrays, float32 (N, C)."""
    arrays = [np.asarray(p, dtype=np.float64) for p in member_probabilities]
    if not arrays or any(a.ndim != 2 or a.shape != arrays[0].shape for a in arrays):
        raise EnsembleError(f"Member probabilities must all be (N, C) arrays of one shape. Received: shapes {[a.shape for a in arrays]}")
    return np.mean(arrays, axis=0).astype(np.float32)


def combine(names: Sequence[str], member_probabilities: Sequence[np.ndarray], y_true: np.ndarray) -> EnsembleResult:
    """Score each member and their average against the same labels.

    Args:
        names: one name per member.
        member_probabilities: one (N, C) array per member, rows in test-set order.
        y_true: (N,) true classes.
    """
    if len(names) != len(member_probabilities):
        raise EnsembleError(f"Give one name per member. Received: {len(names)} names for {len(member_probabilities)} members")
    averaged = average_probabilities(member_probabilities)
    return EnsembleResult(
        names=tuple(str(n) for n in names),
        member_accuracy=tuple(metrics.accuracy(y_true, np.asarray(p).argmax(axis=1)) for p in member_probabilities),
        member_loss=tuple(metrics.log_loss(y_true, p) for p in member_probabilities),
        accuracy=metrics.accuracy(y_true, averaged.argmax(axis=1)),
        loss=metrics.log_loss(y_true, averaged),
        probabilities=averaged,
    )


def evaluate_ensemble(records: Sequence[RunRecord], *, dataset: Dataset | None = None,
                      store: RunStore | None = None) -> EnsembleResult:
    """Check the members, evaluate each on one test set (cached per run) and average them.

    Args:
        records: two or more runs of the same task.
        dataset: the test data; default the first member's dataset (`data.datasets.load_for_spec`).
        store: the RunStore that loads models (default: a new RunStore()).

    Returns:
        The EnsembleResult; every member is scored on the same test images
        (the first member's), and `other_data` names members trained on
        differently drawn data.
    """
    from playground.runs.evaluation import evaluate_run

    check_members(records)
    if dataset is None:
        from playground.data.datasets import load_for_spec

        dataset = load_for_spec(records[0].spec)
    evaluations = [evaluate_run(r, dataset, store=store) for r in records]
    result = combine([r.name for r in records], [e.probabilities for e in evaluations], evaluations[0].y_true)
    return replace(result, other_data=other_test_images(records))
