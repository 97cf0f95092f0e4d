"""RunProgress folds job events into curves, speed and ETA; feature_grid tiles feature maps."""

import time

import numpy as np
import pytest

from playground.training import events
from playground.training.progress import RunProgress, feature_grid, format_duration


def job_events(first_epoch: int, epochs: int, steps: int = 4):
    """Events as `training.train` sends them for epochs first_epoch + 1 .. epochs."""
    yield events.Start(epochs=epochs, initial_epoch=first_epoch, steps_per_epoch=steps, batch_size=32, params=1000,
                       train_size=128, val_size=16)
    for epoch in range(first_epoch + 1, epochs + 1):
        for step in range(1, steps + 1):
            yield events.Batch(epoch=epoch, step=step, steps=steps, seen=min(32 * step, 128), loss=1.0 / epoch,
                               accuracy=0.5, images_per_second=100.0, elapsed=float(step))
        yield events.Epoch(epoch=epoch, loss=1.0 / epoch, accuracy=0.5, val_loss=1.1 / epoch, val_accuracy=0.4,
                           seconds=1.0, images_per_second=120.0, lr=0.001, elapsed=float(steps))
        yield events.Probe(epoch=epoch, maps={"block1_act1": np.ones((4, 4, 2), np.float32) * epoch})


def test_events_become_curves_speed_and_probe():
    p = RunProgress()
    p.update(list(job_events(0, 3)))
    history = p.history()
    assert history["epoch"] == [1.0, 2.0, 3.0]
    assert history["val_loss"] == pytest.approx([1.1, 0.55, 1.1 / 3])
    assert p.epoch == 3 and p.fraction_done == 1.0 and p.images_per_second == 120.0
    assert [round(x, 2) for x, _, _ in p.batch_points[:4]] == [0.25, 0.5, 0.75, 1.0]  # position in epochs
    assert p.probe_epoch == 3 and p.probe_maps["block1_act1"][0, 0, 0] == 3


def test_a_continued_model_keeps_its_curves():
    p = RunProgress()
    p.update(list(job_events(0, 2)))
    p.update(list(job_events(2, 4)))
    assert p.history()["epoch"] == [1.0, 2.0, 3.0, 4.0]
    assert p.job_first_epoch == 2 and p.fraction_done == 1.0


def test_eta_follows_the_pace_and_ignores_paused_time():
    p = RunProgress()
    sent = list(job_events(0, 2, steps=10))
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


def test_feature_grid_tiles_each_map_scaled_on_its_own():
    maps = np.zeros((7, 7, 10), np.float32)
    maps[..., 0] = np.arange(49).reshape(7, 7)  # a ramp: full 0..255 range
    maps[..., 1] = 5.0  # constant: mid-gray
    grid = feature_grid(maps, max_maps=9, columns=4, tile=14, gap=2)
    assert grid.dtype == np.uint8 and grid.shape == (3 * 16 - 2, 4 * 16 - 2)
    first, second = grid[:14, :14], grid[:14, 16:30]
    assert first.min() == 0 and first.max() == 255 and first[0, 0] == 0 and first[-1, -1] == 255
    assert np.all(second == 128)
    assert np.all(grid[14:16, :] == 255)  # the gap between rows
    assert feature_grid(np.zeros((0, 0, 0))).shape == (0, 0)


def test_format_duration():
    assert [format_duration(s) for s in (None, 5, 65, 3723)] == ["–", "0:05", "1:05", "1:02:03"]
