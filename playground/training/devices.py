"""Which devices train: the CPU, one GPU (with mixed precision), or several through tf.distribute.

The same training code runs everywhere: `training_strategy()` returns the
default strategy for one device and a `MirroredStrategy` for several, and
`use_mixed_precision()` switches Keras to float16 compute on GPUs that have
tensor cores. Tests exercise the multi-device path on the CPU by splitting it
into logical devices (`split_cpu`).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from playground.settings import get_settings


@dataclass(frozen=True)
class DeviceInfo:
    """What this process trains on."""

    gpus: tuple[str, ...]  # names of the visible GPUs, e.g. ("/physical_device:GPU:0",)
    replicas: int  # devices a training step is spread over
    mixed_precision: bool  # float16 compute with float32 variables

    def describe(self) -> str:
        """One line for the UI and the CLI, e.g. "2 GPUs (MirroredStrategy), mixed precision"."""
        if not self.gpus:
            base = "CPU" if self.replicas == 1 else f"CPU split into {self.replicas} devices (MirroredStrategy)"
        elif len(self.gpus) == 1:
            base = "1 GPU"
        else:
            base = f"{len(self.gpus)} GPUs (MirroredStrategy)"
        return base + (", mixed precision" if self.mixed_precision else "")


def split_cpu(count: int) -> None:
    """Split the CPU into `count` logical devices (must run before TensorFlow initialises them).

    Args:
        count: number of logical CPU devices, >= 1.

    Raises:
        ValueError: when `count` < 1.
        RuntimeError: when TensorFlow has already initialised its devices.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1. Received: count={count}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def training_strategy() -> tf.distribute.Strategy:
    """The strategy to build and fit models under.

    Returns:
        `MirroredStrategy` over all GPUs when there are several, over the logical
        CPUs when the CPU was split with `split_cpu`, else the default strategy.
    """
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    cpus = tf.config.list_logical_devices("CPU")
    if not gpus and len(cpus) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in cpus])
    return tf.distribute.get_strategy()


def supports_mixed_precision() -> bool:
    """True when every visible GPU has tensor cores (compute capability >= 7.0)."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return False
    for gpu in gpus:
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
        if tuple(capability) < (7, 0):
            return False
    return True


def use_mixed_precision(enabled: bool | None = None) -> bool:
    """Set Keras' global dtype policy: "mixed_float16" on capable GPUs, "float32" otherwise.

    Args:
        enabled: force on/off; None decides from the hardware (and the
            PLAYGROUND_MIXED_PRECISION environment variable, "0" to disable).

    Returns:
        Whether mixed precision is now on.
    """
    if enabled is None:
        enabled = supports_mixed_precision() and get_settings().mixed_precision
    keras.mixed_precision.set_global_policy("mixed_float16" if enabled else "float32")
    return enabled


def device_info() -> DeviceInfo:
    """The devices training will use in this process, as `training_strategy` sees them."""
    gpus = tuple(d.name for d in tf.config.list_physical_devices("GPU"))
    return DeviceInfo(
        gpus=gpus,
        replicas=training_strategy().num_replicas_in_sync,
        mixed_precision=keras.mixed_precision.global_policy().name == "mixed_float16",
    )
