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
from typing import Any

import numpy as np

EPOCH_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr")


@dataclass
class RunProgress:
    """Everything the live view shows about one model's training, across its jobs."""

    epochs: int = 0  # the epoch the current job trains up to
    steps_per_epoch: int = 0
    batch_size: int = 0
    params: int = 0
    train_size: int = 0
    val_size: int = 0
    epoch_rows: list[dict[str, float]] = field(default_factory=list)  # one per finished epoch, with "epoch" (1-based)
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

    def update(self, events: list[dict[str, Any]]) -> None:
        """Fold a list of job events (oldest first) into the progress."""
        for event in events:
            self.apply(event)

    def apply(self, event: dict[str, Any]) -> None:
        """Fold one job event into the progress."""
        kind = event.get("type")
        if kind == "start":
            self.epochs = int(event.get("epochs", 0))
            self.steps_per_epoch = int(event.get("steps_per_epoch", 0))
            self.batch_size = int(event.get("batch_size", self.batch_size) or 0)
            self.params = int(event.get("params", 0))
            self.train_size = int(event.get("train_size", 0))
            self.val_size = int(event.get("val_size", 0))
            self.job_started = time.monotonic()
            self.job_first_epoch = int(event.get("initial_epoch", self.epoch))
            self.epoch = self.job_first_epoch
            # A continued model keeps its curves; anything past its last saved epoch goes.
            self.epoch_rows = [row for row in self.epoch_rows if row["epoch"] <= self.epoch]
            self.batch_points = [pt for pt in self.batch_points if pt[0] <= self.epoch]
            self.step = 0
            self.paused = False
        elif kind == "batch":
            # "epoch" is the epoch in progress (from 1), "step" the batches done in it (from 1).
            self.step = int(event.get("step", 0))
            self.epoch = int(event.get("epoch", self.epoch + 1)) - 1
            self.images_per_second = float(event.get("images_per_second", self.images_per_second))
            steps = int(event.get("steps", self.steps_per_epoch) or 0)
            position = self.epoch + (self.step / steps if steps else 0.0)
            self.batch_points.append((position, float(event.get("loss", np.nan)), float(event.get("accuracy", np.nan))))
        elif kind == "epoch":
            row = {"epoch": float(event.get("epoch", self.epoch + 1))}  # epochs finished, from 1
            for key in EPOCH_KEYS + ("seconds", "images_per_second"):
                if event.get(key) is not None:
                    row[key] = float(event[key])
            self.epoch_rows.append(row)
            self.epoch = int(row["epoch"])
            self.step = 0
            if "images_per_second" in row:
                self.images_per_second = row["images_per_second"]
        elif kind == "probe":
            self.probe_maps = event.get("maps")
            self.probe_epoch = int(event.get("epoch", self.epoch))
        elif kind == "probe_image":
            self.probe_image = event.get("image")
            self.probe_label = str(event.get("label", ""))
        elif kind == "paused":
            self.paused = True
        elif kind == "resumed":
            self.paused = False
            if self.job_started is not None:
                self.job_started += float(event.get("paused_seconds", 0.0))  # paused time is not training time

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
        keys = ("epoch",) + EPOCH_KEYS
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
