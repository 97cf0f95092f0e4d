"""Live progress of a training job: fold its events into curves, speed, ETA and the network's live views.

The Playground drains a job's events (`JobManager.drain`) several times a
second and feeds them to a `RunProgress`, which keeps everything the live view
draws: per-epoch train/validation loss and accuracy, the recent batch losses,
images per second, the time left, and the network diagram's views: the newest
diagram of the probe image, and after every finished epoch (0 = before
training) the diagram, the decision picture and the weights, so the page can
replay the epochs after training.

Continuing a model (Train after a run ended) keeps the same RunProgress, so
the curves and the replay go on where they stopped.
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
    probe_image: np.ndarray | None = None  # uint8 (H, W, C), the image the diagram shows now
    probe_label: str = ""
    network: events.Network | None = None  # the newest diagram
    network_label: str = ""  # the label of its probe image
    # After each finished epoch (and before training), for the replay: the diagram with its probe
    # image's label, the decision picture and the weights, by epoch.
    epoch_networks: dict[int, tuple[events.Network, str]] = field(default_factory=dict)
    decision_set: events.DecisionSet | None = None  # the images the decisions follow
    decisions: dict[int, events.Decision] = field(default_factory=dict)
    weights: dict[int, events.Weights] = field(default_factory=dict)
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
                for by_epoch in (self.epoch_networks, self.decisions, self.weights):
                    for epoch in [e for e in by_epoch if e > self.epoch]:
                        del by_epoch[epoch]
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
            case events.ProbeImage():
                self.probe_image = event.image
                self.probe_label = event.label
            case events.Network():
                self.network, self.network_label = event, self.probe_label
                if float(event.epoch).is_integer():  # before training or at an epoch's end
                    self.epoch_networks[int(event.epoch)] = (event, self.probe_label)
            case events.DecisionSet():
                self.decision_set = event
            case events.Decision():
                self.decisions[event.epoch] = event
            case events.Weights():
                self.weights[event.epoch] = event
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

    def map_history(self, column: str, index: int) -> tuple[list[int], np.ndarray]:
        """How feature map `index` of conv column `column` behaved for the probe image after each epoch so far.

        Args:
            column: a conv column's name, e.g. "block1".
            index: the map's index among the block's filters (one of the column's `shown`).

        Returns:
            (epochs, float32 (len(epochs), 3) mean, max and share of zeros), epochs in order.
        """
        epochs, rows = [], []
        for epoch in sorted(self.epoch_networks):
            view = next((c for c in self.epoch_networks[epoch][0].columns if c.name == column), None)
            if view is not None and view.stats is not None and index in view.shown:
                epochs.append(epoch)
                rows.append(view.stats[view.shown.index(index)])
        return epochs, np.asarray(rows, np.float32).reshape(len(rows), 3)


def format_duration(seconds: float | None) -> str:
    """"1:05" for 65 seconds, "1:02:03" beyond an hour, "–" when unknown."""
    if seconds is None or not np.isfinite(seconds):
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
