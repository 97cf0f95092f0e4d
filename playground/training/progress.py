"""Live progress of a training job: fold its events into curves, speed and ETA.

The Playground drains a job's events (`JobManager.drain`) several times a
second and feeds them to a `RunProgress`, which keeps everything the live view
draws: per-epoch train/validation loss and accuracy, the recent batch losses,
images per second, the time left, and the newest feature maps of the probe
image. `feature_grid` turns those maps into one compact picture.

Continuing a model (Train after a run ended) keeps the same RunProgress, so
the curves go on where they stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from playground.training import events
from playground.training.events import HISTORY_KEYS


@dataclass
class RunProgress:
    """Everything the live view shows about one model's training, across its jobs."""

    epochs: int = 0  # the epoch the current job trains up to
    steps_per_epoch: int = 0
    batch_size: int = 0
    params: int = 0
    train_size: int = 0
    val_size: int = 0
    # One per finished epoch: "epoch" (from 1), the HISTORY_KEYS (val_* absent without validation),
    # "seconds" and "images_per_second".
    epoch_rows: list[dict[str, float]] = field(default_factory=list)
    batch_points: list[tuple[float, float, float]] = field(default_factory=list)  # (epoch position, loss, accuracy)
    epoch: int = 0  # epochs finished
    step: int = 0  # batches finished in the current epoch
    images_per_second: float = 0.0
    probe_image: np.ndarray | None = None  # uint8 (H, W, C)
    probe_label: str = ""
    probe_maps: dict[str, np.ndarray] | None = None  # layer name -> float32 (H, W, F)
    probe_epoch: int = 0
    paused: bool = False
    job_started: float | None = None  # time.monotonic() of this job's start event
    job_first_epoch: int = 0  # epochs finished before this job began

    def update(self, job_events: list[events.JobEvent]) -> None:
        """Fold a list of job events (oldest first) into the progress."""
        for event in job_events:
            self.apply(event)

    def apply(self, event: events.JobEvent) -> None:
        """Fold one job event into the progress (events it has no use for change nothing)."""
        match event:
            case events.Start():
                self.epochs = event.epochs
                self.steps_per_epoch = event.steps_per_epoch
                self.batch_size = event.batch_size
                self.params = event.params
                self.train_size = event.train_size
                self.val_size = event.val_size
                self.job_started = time.monotonic()
                self.job_first_epoch = self.epoch = event.initial_epoch
                # A continued model keeps its curves; anything past its last saved epoch goes.
                self.epoch_rows = [row for row in self.epoch_rows if row["epoch"] <= self.epoch]
                self.batch_points = [pt for pt in self.batch_points if pt[0] <= self.epoch]
                self.step = 0
                self.paused = False
            case events.Batch():
                self.step = event.step
                self.epoch = event.epoch - 1  # epochs finished: the one in progress counts from 1
                if event.images_per_second is not None:  # None for the untrained model's point
                    self.images_per_second = event.images_per_second
                position = self.epoch + (self.step / event.steps if event.steps else 0.0)
                self.batch_points.append((position, event.loss, event.accuracy))
            case events.Epoch():
                row = {"epoch": event.epoch, "loss": event.loss, "accuracy": event.accuracy,
                       "val_loss": event.val_loss, "val_accuracy": event.val_accuracy, "lr": event.lr,
                       "seconds": event.seconds, "images_per_second": event.images_per_second}
                self.epoch_rows.append({key: float(value) for key, value in row.items() if value is not None})
                self.epoch = event.epoch
                self.step = 0
                self.images_per_second = event.images_per_second
            case events.Probe():
                self.probe_maps = event.maps
                self.probe_epoch = event.epoch
            case events.ProbeImage():
                self.probe_image = event.image
                self.probe_label = event.label
            case events.Paused():
                self.paused = True
            case events.Resumed():
                self.paused = False
                if self.job_started is not None:
                    self.job_started += event.paused_seconds  # paused time is not training time

    @property
    def fraction_done(self) -> float:
        """Share of this job's batches done, 0..1."""
        total = (self.epochs - self.job_first_epoch) * self.steps_per_epoch
        if total <= 0:
            return 0.0
        done = (self.epoch - self.job_first_epoch) * self.steps_per_epoch + self.step
        return float(min(max(done / total, 0.0), 1.0))

    def eta_seconds(self) -> float | None:
        """Seconds until this job's last epoch ends, from the pace so far; None before the first batches."""
        fraction = self.fraction_done
        if self.job_started is None or fraction <= 0.02 or self.paused:
            return None
        elapsed = time.monotonic() - self.job_started
        return max(elapsed * (1.0 - fraction) / fraction, 0.0)

    def history(self) -> dict[str, list[float]]:
        """Per-epoch curves: {"epoch": [...], "loss": [...], "val_loss": [...], ...}."""
        keys = ("epoch",) + HISTORY_KEYS
        return {key: [row.get(key, np.nan) for row in self.epoch_rows] for key in keys}


def format_duration(seconds: float | None) -> str:
    """"1:05" for 65 seconds, "1:02:03" beyond an hour, "–" when unknown."""
    if seconds is None or not np.isfinite(seconds):
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def feature_grid(maps: np.ndarray, *, max_maps: int = 16, columns: int = 8, tile: int = 40, gap: int = 2) -> np.ndarray:
    """Tile the feature maps of one layer into one gray image.

    Each map is scaled to 0..255 on its own (a constant map is mid-gray) and
    resized with nearest-neighbour sampling to `tile` x `tile` pixels, so
    layers of different sizes give tiles of the same size.

    Args:
        maps: float (H, W, F) activations of one image in one layer.
        max_maps: first maps shown.
        columns: maps per row.
        tile: tile size in pixels.
        gap: pixels of white between tiles.

    Returns:
        uint8 (height, width) image; (0, 0) when there are no maps.
    """
    a = np.asarray(maps, dtype=np.float32)
    if a.ndim != 3 or a.shape[-1] == 0 or a.shape[0] == 0 or a.shape[1] == 0:
        return np.zeros((0, 0), np.uint8)
    count = min(a.shape[-1], max_maps)
    cols = min(columns, count)
    rows = -(-count // cols)
    # Nearest-neighbour source row/column of every tile pixel.
    ys = np.arange(tile) * a.shape[0] // tile
    xs = np.arange(tile) * a.shape[1] // tile
    grid = np.full((rows * (tile + gap) - gap, cols * (tile + gap) - gap), 255, np.uint8)
    for i in range(count):
        m = np.nan_to_num(a[..., i])
        lo, hi = float(m.min()), float(m.max())
        scaled = np.full(m.shape, 128.0) if hi - lo < 1e-12 else (m - lo) * (255.0 / (hi - lo))
        r, c = divmod(i, cols)
        y, x = r * (tile + gap), c * (tile + gap)
        grid[y: y + tile, x: x + tile] = scaled[np.ix_(ys, xs)].astype(np.uint8)
    return grid
