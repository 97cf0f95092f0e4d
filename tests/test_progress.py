"""RunProgress folds job events into curves, speed, ETA and the network diagram's live views."""

import time

import numpy as np
import pytest

from playground.training import events
from playground.training.progress import RunProgress, format_duration


def network(position: float, value: int) -> events.Network:
    """A diagram of a one-block network whose two maps hold `value` (their statistics: value, value, no zeros)."""
    return events.Network(epoch=position, columns=(
        events.Column("input", "input", np.zeros((4, 4, 1), np.uint8), 1, (0,), (4, 4, 1)),
        events.Column("block1", "conv", np.full((2, 4, 4), value, np.uint8), 8, (0, 7), (4, 4, 8), (2, 2),
                      np.array([[value, value, 0.0]] * 2, np.float32)),
        events.Column("output", "output", np.array([255, 0], np.uint8), 2, (0, 1), (2,)),
    ))


def job_events(first_epoch: int, epochs: int, steps: int = 4):
    """Events as `training.train` sends them for epochs first_epoch + 1 .. epochs, live views included."""
    yield events.Start(epochs=epochs, initial_epoch=first_epoch, steps_per_epoch=steps, batch_size=32, params=1000,
                       train_size=128, val_size=16)
    yield events.Probe(epoch=first_epoch, maps={"block1_act1": np.zeros((4, 4, 2), np.float32)})
    yield events.ProbeImage(image=np.zeros((4, 4, 1), np.uint8), label="cat")
    yield network(first_epoch, first_epoch)
    yield events.Decision(epoch=first_epoch, predicted=np.zeros(2, np.int16), correct=np.array([True, False]),
                          points=np.zeros((2, 2), np.float16))
    for epoch in range(first_epoch + 1, epochs + 1):
        for step in range(1, steps + 1):
            yield events.Batch(epoch=epoch, step=step, steps=steps, seen=min(32 * step, 128), loss=1.0 / epoch,
                               accuracy=0.5, images_per_second=100.0, elapsed=float(step))
        yield network(epoch - 0.5, 100 + epoch)  # a refresh half-way through the epoch
        yield events.Epoch(epoch=epoch, loss=1.0 / epoch, accuracy=0.5, val_loss=1.1 / epoch, val_accuracy=0.4,
                           seconds=1.0, images_per_second=120.0, lr=0.001, elapsed=float(steps))
        yield events.Probe(epoch=epoch, maps={"block1_act1": np.ones((4, 4, 2), np.float32) * epoch})
        yield network(epoch, epoch)
        yield events.Decision(epoch=epoch, predicted=np.ones(2, np.int16), correct=np.array([False, True]),
                              points=np.full((2, 2), epoch, np.float16))
        yield events.Weights(epoch=epoch, counts={"dense": np.full(3, epoch, np.int32)},
                             edges={"dense": np.arange(4, dtype=np.float32)}, kernels={})


def test_events_become_curves_speed_and_the_live_views():
    p = RunProgress()
    p.update(list(job_events(0, 3)))
    history = p.history()
    assert history["epoch"] == [1.0, 2.0, 3.0]
    assert history["val_loss"] == pytest.approx([1.1, 0.55, 1.1 / 3])
    assert p.epoch == 3 and p.fraction_done == 1.0 and p.images_per_second == 120.0
    assert [round(x, 2) for x, _, _ in p.batch_points[:4]] == [0.25, 0.5, 0.75, 1.0]  # position in epochs
    # The newest diagram, and one per finished epoch (0 = before training) for the replay; mid-epoch ones pass.
    assert p.network.epoch == 3 and p.network_label == "cat"
    assert sorted(p.epoch_networks) == [0, 1, 2, 3] and p.epoch_networks[2][0].columns[1].values[0, 0, 0] == 2
    assert sorted(p.decisions) == [0, 1, 2, 3] and sorted(p.weights) == [1, 2, 3]
    epochs, stats = p.map_history("block1", 7)
    assert epochs == [0, 1, 2, 3] and stats[:, 0].tolist() == [0, 1, 2, 3] and stats.shape == (4, 3)
    epochs, stats = p.map_history("block1", 3)  # a map the column does not show
    assert epochs == [] and stats.shape == (0, 3)


def test_a_refresh_within_an_epoch_shows_at_once_but_is_not_replayed():
    p = RunProgress()
    events_ = list(job_events(0, 1))
    p.update(events_[: events_.index(next(e for e in events_ if isinstance(e, events.Epoch)))])
    assert p.network.epoch == 0.5 and p.network.columns[1].values[0, 0, 0] == 101
    assert sorted(p.epoch_networks) == [0]


def test_a_new_probe_image_labels_the_diagrams_that_follow():
    p = RunProgress()
    p.update(list(job_events(0, 1)))
    p.update([events.ProbeImage(image=np.ones((4, 4, 1), np.uint8), label="dog"), network(1.2, 9)])
    assert p.network_label == "dog" and p.epoch_networks[1][1] == "cat"


def test_a_continued_model_keeps_its_curves_and_replay():
    p = RunProgress()
    p.update(list(job_events(0, 3)))
    p.update(list(job_events(2, 4)))  # continued from its run saved after epoch 2
    assert p.history()["epoch"] == [1.0, 2.0, 3.0, 4.0]
    assert p.job_first_epoch == 2 and p.fraction_done == 1.0
    assert sorted(p.epoch_networks) == [0, 1, 2, 3, 4] and sorted(p.weights) == [1, 2, 3, 4]
    p.apply(events.Start(epochs=5, initial_epoch=1, steps_per_epoch=4, batch_size=32, params=1000, train_size=128,
                         val_size=16))  # a run continued from an earlier save: what came after it goes
    assert sorted(p.epoch_networks) == [0, 1] and sorted(p.decisions) == [0, 1] and sorted(p.weights) == [1]


def test_eta_follows_the_pace_and_ignores_paused_time():
    p = RunProgress()
    sent = [e for e in job_events(0, 2, steps=10) if isinstance(e, (events.Start, events.Batch))]
    p.update(sent[:6])  # start + 5 of 20 batches
    assert p.fraction_done == pytest.approx(0.25)
    p.job_started = time.monotonic() - 10.0  # 10 s for a quarter: 30 s to go
    assert p.eta_seconds() == pytest.approx(30.0, abs=0.5)
    p.apply(events.Paused(epoch_end=False))
    assert p.eta_seconds() is None
    p.apply(events.Resumed(paused_seconds=5.0))  # the pause does not count as training
    assert p.eta_seconds() == pytest.approx(15.0, abs=0.5)


def test_the_untrained_point_and_a_run_without_validation():
    p = RunProgress()
    p.update([
        events.Start(epochs=1, initial_epoch=0, steps_per_epoch=2, batch_size=8, params=10, train_size=16, val_size=0),
        events.Batch(epoch=1, step=0, steps=2, seen=0, loss=2.3, accuracy=0.1, images_per_second=None, elapsed=0.0),
    ])
    assert p.batch_points == [(0.0, 2.3, 0.1)] and p.images_per_second == 0.0  # no speed before any training
    p.apply(events.Epoch(epoch=1, loss=1.0, accuracy=0.6, val_loss=None, val_accuracy=None, seconds=0.5,
                         images_per_second=50.0, lr=0.01, elapsed=0.5))
    assert "val_loss" not in p.epoch_rows[0] and np.isnan(p.history()["val_loss"][0])
    p.apply(events.ProbeImage(image=np.zeros((4, 4, 1), np.uint8), label="cat"))
    p.apply(events.Checkpoint(run_id="r", epoch=1))  # nothing to draw
    assert p.probe_label == "cat" and p.epoch == 1 and p.images_per_second == 50.0


def test_format_duration():
    assert [format_duration(s) for s in (None, 5, 65, 3723)] == ["–", "0:05", "1:05", "1:02:03"]
