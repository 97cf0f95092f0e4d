"""The network diagram's live views from real trainings: `train(live_probe=...)`, and a job whose probe image changes.

Tiny networks on the built-in shapes (a second or two each); the job test starts a
worker process (a TensorFlow import) as tests/test_jobs.py does.
"""

import time

import numpy as np
import pytest
from tiny_runs import small_spec

from playground.analysis.network_view import decision_sample
from playground.data import datasets
from playground.model.table import layer_table
from playground.training import callbacks, events
from playground.training import loop as training
from playground.training.jobs import JobManager

TIMEOUT = 180


@pytest.fixture(scope="module")
def shapes():
    return datasets.load_dataset("shapes")


def test_training_sends_the_diagram_the_decisions_and_the_weights(shapes, monkeypatch):
    monkeypatch.setattr(callbacks, "NETWORK_EVENT_INTERVAL", 0.0)  # a diagram after every batch
    monkeypatch.setattr(callbacks, "NETWORK_TIME_SHARE", 1e9)
    probes = [events.ProbeImage(shapes.x_test[0], "first")]
    sent = []

    def record(event):
        sent.append(event)
        if isinstance(event, events.Batch) and event.epoch == 2 and len(probes) == 1:
            probes.append(events.ProbeImage(shapes.x_test[1], "second"))  # picked while it trains

    result = training.train(small_spec(), shapes, on_progress=record, live_probe=lambda: probes[-1])
    chosen = next(e for e in sent if isinstance(e, events.DecisionSet))
    assert sent.index(chosen) < next(i for i, e in enumerate(sent) if isinstance(e, events.Network))
    # A few validation images of each class: up to 20 of each of the 5.
    _, _, x_val, y_val = datasets.split_train_validation(shapes, 400, 0.2, small_spec().seed)
    picked = decision_sample(y_val, 5)
    assert np.array_equal(chosen.images, x_val[picked]) and np.array_equal(chosen.labels, y_val[picked])
    assert chosen.class_names == tuple(shapes.class_names) and 0 < min(np.bincount(chosen.labels)) <= 20

    networks = [e for e in sent if isinstance(e, events.Network)]
    ends = [e.epoch for e in networks if float(e.epoch).is_integer()]
    assert ends == [0.0, 1.0, 2.0] and len(networks) > len(ends)  # and refreshes within the epochs
    assert [d.epoch for d in sent if isinstance(d, events.Decision)] == [0, 1, 2]
    assert [w.epoch for w in sent if isinstance(w, events.Weights)] == [0, 1, 2]
    rows = {row.name: row for row in layer_table(result.model)}
    last = networks[-1].columns
    assert [c.kind for c in last] == ["input", "conv", "conv", "dense", "output"]
    assert last[1].shape == tuple(rows["block1_act1"].output_shape) and last[3].shape == (16,)
    assert not np.array_equal(networks[0].columns[1].values, last[1].values)  # the maps changed as it trained
    assert np.array_equal(networks[0].columns[0].values, shapes.x_test[0])
    assert np.array_equal(last[0].values, shapes.x_test[1])  # the new pick, from the next refresh on
    assert [e.label for e in sent if isinstance(e, events.ProbeImage)] == ["first", "second"]

    decisions = [d for d in sent if isinstance(d, events.Decision)]
    assert np.array_equal(decisions[-1].correct, decisions[-1].predicted == chosen.labels)
    weights = [w for w in sent if isinstance(w, events.Weights)]
    assert set(weights[0].counts) == {"block1_conv1", "block2_conv1", "dense1", "logits"}
    assert not np.array_equal(weights[0].counts["block1_conv1"], weights[-1].counts["block1_conv1"])
    assert weights[-1].kernels["block2"].weights.shape == (8, 4, 3, 3)


def test_without_validation_the_decision_set_is_test_images(shapes):
    sent = []
    training.train(small_spec(validation_split=0.0, epochs=1), shapes, on_progress=sent.append,
                   live_probe=lambda probe=events.ProbeImage(shapes.x_test[0], "x"): probe)
    chosen = next(e for e in sent if isinstance(e, events.DecisionSet))
    labels = shapes.y_test
    first = [int(np.flatnonzero(labels == k)[0]) for k in range(5)]
    assert np.array_equal(chosen.images[::20], shapes.x_test[first])


@pytest.mark.slow  # starts a worker process and trains for real
def test_a_job_draws_the_probe_image_picked_while_it_is_queued_and_while_it_trains():
    manager = JobManager(max_concurrent=1, grace_seconds=60)
    try:
        shapes = datasets.load_dataset("shapes", shapes_noise=0.2, seed=0)
        spec = small_spec(epochs=6, sample_size=1000, batch_size=16)
        queued = manager.submit("alice", spec.with_values(epochs=1))  # the worker's first job
        second = manager.submit("alice-2", spec)
        picked = events.ProbeImage(shapes.x_test[5], "picked while queued")
        manager.set_probe("alice-2", second, picked)
        manager.wait("alice", queued, TIMEOUT)
        seen = []
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and not any(isinstance(e, events.Network) for e in seen):
            seen += manager.drain("alice-2", second)
            time.sleep(0.1)
        first = next(e for e in seen if isinstance(e, events.Network))
        assert np.array_equal(first.columns[0].values, picked.image)
        later = events.ProbeImage(shapes.x_test[7], "picked while training")
        manager.set_probe("alice-2", second, later)
        while time.monotonic() < deadline:
            seen += manager.drain("alice-2", second)
            if any(isinstance(e, events.Network) and np.array_equal(e.columns[0].values, later.image) for e in seen):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("The job never drew the image picked while it trained.")
        labels = [e.label for e in seen if isinstance(e, events.ProbeImage)]
        assert labels[-1] == "picked while training" and "picked while queued" in labels
        manager.stop("alice-2", second, discard=True)
        manager.wait("alice-2", second, TIMEOUT)
    finally:
        manager.shutdown()
