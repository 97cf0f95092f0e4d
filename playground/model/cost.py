"""What a training run will cost before it starts: seconds per epoch from FLOPs and a measured rate.

One training step of an image costs about three forward passes (forward,
backward to the activations, backward to the weights), so

    seconds per image = 3 * forward FLOPs / rate + overhead

where `rate` is the FLOP/s this machine achieves while training and `overhead`
the fixed cost of an image whatever the network (input pipeline, per-batch
Python and framework work). The rate grows with the work per image: wide
convs keep the vector units busy, small ones wait on memory and per-op
overhead (`typical_rate`). A `RateCalibration` learns from the runs that
finished on this server how fast this machine is next to that curve, so the
estimate follows the machine it runs on, whichever networks taught it.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque

TRAIN_FLOPS_PER_FORWARD = 3  # a training step costs about three forward passes
# Training FLOP/s on a 2-core x86 CPU with oneDNN for a network of REFERENCE_FLOPS
# per image, how the rate grows with the FLOPs per image, and the seconds per image
# that do not depend on the network. Fitted to `python -m benchmarks.bench_training tta`
# on this project's machine: the default preset (4 MFLOP per image) trains 6,700
# images/s on Fashion-MNIST, about 100 GFLOP/s for its convs, and CIFAR whitened (131
# MFLOP, convs of 64-256 filters) 373 images/s, about 147 GFLOP/s. Machines of the same
# kind have measured up to 1.7 times slower; the calibration learns that.
DEFAULT_RATE = 118e9
REFERENCE_FLOPS = 16e6
SIZE_EXPONENT = 0.11
PER_IMAGE_OVERHEAD_S = 30e-6
# Runs whose FLOPs are this small are dominated by the overhead and say nothing about the rate.
MIN_FLOPS_FOR_CALIBRATION = 1e6


def typical_rate(forward_flops: float, speed: float = 1.0) -> float:
    """Training FLOP/s of a network of `forward_flops` per image on a 2-core CPU, times `speed`.

    Args:
        forward_flops: FLOPs of one image's forward pass.
        speed: this machine next to the one the constants were measured on
            (`RateCalibration.speed`).
    """
    return speed * DEFAULT_RATE * (max(forward_flops, MIN_FLOPS_FOR_CALIBRATION) / REFERENCE_FLOPS) ** SIZE_EXPONENT


def epoch_seconds(forward_flops: float, train_images: int, rate: float | None = None) -> float:
    """Estimated seconds of one epoch.

    Args:
        forward_flops: FLOPs of one image's forward pass (sum of the layer table).
        train_images: images trained on per epoch (validation excluded).
        rate: training FLOP/s of this machine for this network; default `typical_rate(forward_flops)`.

    Returns:
        Seconds (0 for no images).
    """
    rate = typical_rate(forward_flops) if rate is None else rate
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
    """How fast recent runs trained next to `typical_rate`, shared by every session of a server (thread-safe)."""

    def __init__(self, keep: int = 20):
        """Args: keep: how many recent runs the median is taken over."""
        self._speeds: deque[float] = deque(maxlen=keep)  # measured rate / typical rate, one per run
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
        measured = TRAIN_FLOPS_PER_FORWARD * forward_flops / compute_seconds
        with self._lock:
            self._speeds.append(measured / typical_rate(forward_flops))

    @property
    def measured(self) -> bool:
        """True once a run on this server has set the rate."""
        with self._lock:
            return bool(self._speeds)

    def speed(self) -> float:
        """The median of the recent runs' measured / typical rates, or 1 before any."""
        with self._lock:
            return statistics.median(self._speeds) if self._speeds else 1.0

    def rate(self, forward_flops: float) -> float:
        """The training FLOP/s to expect on this server for a network of `forward_flops` per image."""
        return typical_rate(forward_flops, self.speed())


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
