"""RunRecord: one saved run as read from its folder (light: no TensorFlow, so pages can type with it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playground.spec.experiment import ExperimentSpec

IMPORTED = "imported"  # the stop reason in metrics.json of a run made from an uploaded bundle


@dataclass
class RunRecord:
    """One run folder as read from disk. With `damaged` set, other fields may be empty."""

    run_id: str  # the folder name: sortable creation time plus a short random part
    path: Path  # the run folder
    name: str = ""  # the name people see, e.g. "default on fashion_mnist #3"
    spec: ExperimentSpec | None = None  # the experiment that was trained
    dataset: str = ""  # the dataset name, e.g. "fashion_mnist" or a folder name
    class_names: tuple[str, ...] = ()  # label names, index = class id
    input_shape: tuple[int, int, int] | None = None  # (H, W, C) the model takes
    history: dict[str, list[float]] = field(default_factory=dict)  # per-epoch values, NaN = none
    metrics: dict[str, Any] = field(default_factory=dict)  # test_accuracy, test_loss, train_seconds,
    # images_per_second, params, epochs_completed, stop_reason, test_size
    created: str = ""  # ISO 8601 time, UTC
    owner: str | None = None  # who made it (a browser session id), None = anyone
    message: str = ""  # the run's final message, e.g. why it stopped
    damaged: str | None = None  # why the folder is not a usable run; None when it is

    @property
    def num_classes(self) -> int:
        """Number of classes the model predicts."""
        return len(self.class_names)

    @property
    def imported(self) -> bool:
        """Whether the run was made from an uploaded bundle.

        Its metrics are then the bundle's claims, not numbers measured on this
        server: shown as claims, never ranked. Runs trained here (and runs
        trained further from an imported one) have the stop reason of their
        training instead.
        """
        return self.metrics.get("stop_reason") == IMPORTED
