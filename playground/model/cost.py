"""What a training run will cost before it starts: seconds per epoch from FLOPs and a measured rate.

One training step of an image costs about three forward passes (forward,
backward to the activations, backward to the weights), so

    seconds per image = 3 * forward FLOPs / rate + overhead

where `rate` is the FLOP/s this machine achieves while training and `overhead`
the fixed cost of an image whatever the network (input pipeline, per-batch
Python and framework work). A `RateCalibration` learns the rate from the runs
that finished on this server, so the estimate follows the machine it runs on;
until then it uses DEFAULT_RATE.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque

TRAIN_FLOPS_PER_FORWARD = 3  # a training step costs about three forward passes
# Training FLOP/s on a 2-core x86 CPU with oneDNN, and the seconds per image that do
# not depend on the network: fitted to the README's scale table (`python -m
# benchmarks.bench_training scale`), where the default preset at 1x, 2x and 4x its
# filters trains at 47, 74 and 93 GFLOP/s (wider layers use the cores better).
# With these two, the estimate is within about 20% of those three steady epochs.
DEFAULT_RATE = 80e9
PER_IMAGE_OVERHEAD_S = 100e-6
# Runs whose FLOPs are this small are dominated by the overhead and say nothing about the rate.
MIN_FLOPS_FOR_CALIBRATION = 1e6


def epoch_seconds(forward_flops: float, train_images: int, rate: float = DEFAULT_RATE) -> float:
    """Estimated seconds of one epoch.

    Args:
        forward_flops: FLOPs of one image's forward pass (sum of the layer table).
        train_images: images trained on per epoch (validation excluded).
        rate: training FLOP/s of this machine.

    Returns:
        Seconds (0 for no images).
    """
    per_image = TRAIN_FLOPS_PER_FORWARD * max(forward_flops, 0) / rate + PER_IMAGE_OVERHEAD_S
    return max(train_images, 0) * per_image


def train_images(dataset_train_size: int, sample_size: int, validation_split: float) -> int:
    """Images per epoch: the sample (or the whole training set) less the validation share.

    Args:
        dataset_train_size: training images the dataset has.
        sample_size: the spec's sample size (0 = all).
        validation_split: the spec's held-out fraction.

    Returns:
        The number of images one epoch trains on.
    """
    used = min(sample_size, dataset_train_size) if sample_size else dataset_train_size
    return max(0, used - int(round(used * validation_split)))


class RateCalibration:
    """The training FLOP/s seen in recent runs, shared by every session of a server (thread-safe)."""

    def __init__(self, keep: int = 20):
        """Args: keep: how many recent runs the median is taken over."""
        self._rates: deque[float] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def record(self, forward_flops: float, images_per_second: float) -> None:
        """Learn from a finished run: its forward FLOPs per image and the images/second it trained at.

        Runs too small to tell the rate from the overhead, or with no speed, are ignored.
        """
        if forward_flops < MIN_FLOPS_FOR_CALIBRATION or not images_per_second or images_per_second <= 0:
            return
        compute_seconds = 1.0 / images_per_second - PER_IMAGE_OVERHEAD_S
        if compute_seconds <= 0:
            return
        with self._lock:
            self._rates.append(TRAIN_FLOPS_PER_FORWARD * forward_flops / compute_seconds)

    @property
    def measured(self) -> bool:
        """True once a run on this server has set the rate."""
        with self._lock:
            return bool(self._rates)

    def rate(self) -> float:
        """The median rate of the recent runs, or DEFAULT_RATE before any."""
        with self._lock:
            return statistics.median(self._rates) if self._rates else DEFAULT_RATE


def rough_duration(seconds: float) -> str:
    """An estimate in words: "under a second", "12 s", "3 min 40 s", "1 h 05 min"."""
    if seconds < 1:
        return "under a second"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        minutes, rest = divmod(int(round(seconds / 10) * 10), 60)  # to 10 s: it is an estimate
        return f"{minutes} min {rest:02d} s" if rest else f"{minutes} min"
    hours, minutes = divmod(int(round(seconds / 60)), 60)
    return f"{hours} h {minutes:02d} min"
