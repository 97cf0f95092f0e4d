"""The epoch-time estimate: arithmetic, calibration from finished runs, and wording."""

import threading

import pytest

from playground.model import cost


def test_train_images_apply_the_sample_and_the_validation_split():
    assert cost.train_images(60_000, 0, 0.1) == 54_000
    assert cost.train_images(60_000, 1_000, 0.2) == 800
    assert cost.train_images(500, 1_000, 0.0) == 500  # a sample larger than the dataset uses all of it


def test_epoch_seconds_grow_with_flops_and_images():
    base = cost.epoch_seconds(4e6, 50_000, rate=40e9)
    # 3 forward passes per training image, plus the fixed per-image overhead.
    assert base == pytest.approx(50_000 * (3 * 4e6 / 40e9 + cost.PER_IMAGE_OVERHEAD_S))
    assert cost.epoch_seconds(8e6, 50_000, rate=40e9) > base
    assert cost.epoch_seconds(4e6, 100_000, rate=40e9) == pytest.approx(2 * base)
    assert cost.epoch_seconds(4e6, 50_000, rate=80e9) < base
    assert cost.epoch_seconds(4e6, 0) == 0


def test_the_typical_rate_grows_with_the_work_per_image():
    assert cost.typical_rate(cost.REFERENCE_FLOPS) == cost.DEFAULT_RATE
    small, large = cost.typical_rate(4e6), cost.typical_rate(131e6)
    # Measured: the default preset (4 MFLOP) about 100 GFLOP/s, CIFAR whitened (131 MFLOP) about 147.
    assert 90e9 < small < 110e9 and 135e9 < large < 160e9
    assert cost.typical_rate(4e6, speed=0.5) == pytest.approx(small / 2)
    assert cost.epoch_seconds(4e6, 1_000) == pytest.approx(cost.epoch_seconds(4e6, 1_000, rate=small))


def test_calibration_learns_the_machine_speed_and_ignores_tiny_networks():
    calibration = cost.RateCalibration(keep=3)
    assert not calibration.measured and calibration.speed() == 1.0
    assert calibration.rate(5e6) == cost.typical_rate(5e6)
    calibration.record(1e3, 50_000)  # overhead-bound: says nothing about the rate
    calibration.record(5e6, 0)  # no speed reported
    assert not calibration.measured
    # A run of 5 MFLOPs per image at 2,000 images/s: 3 * 5e6 / (1/2000 - overhead) FLOP/s.
    calibration.record(5e6, 2_000)
    measured = 3 * 5e6 / (1 / 2_000 - cost.PER_IMAGE_OVERHEAD_S)
    assert calibration.measured and calibration.rate(5e6) == pytest.approx(measured)
    # The estimate for that same network then gives back its measured epoch time...
    assert cost.epoch_seconds(5e6, 2_000, calibration.rate(5e6)) == pytest.approx(1.0)
    # ... and a wider network is expected to use the machine better, by the typical curve.
    assert calibration.rate(100e6) / calibration.rate(5e6) == pytest.approx(cost.typical_rate(100e6) / cost.typical_rate(5e6))
    for speed in (1_000, 4_000, 4_000, 4_000):  # only the last 3 count
        calibration.record(5e6, speed)
    assert calibration.rate(5e6) == pytest.approx(3 * 5e6 / (1 / 4_000 - cost.PER_IMAGE_OVERHEAD_S))


def test_calibration_is_safe_to_share_between_sessions():
    calibration = cost.RateCalibration(keep=1000)
    threads = [threading.Thread(target=lambda: [calibration.record(5e6, 2_000) for _ in range(200)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calibration._speeds) == 800


@pytest.mark.parametrize("seconds, words", [
    (0.4, "under a second"), (12.3, "12 s"), (59.4, "59 s"), (61, "1 min"), (224, "3 min 40 s"),
    (3_900, "1 h 05 min"),
])
def test_rough_duration(seconds, words):
    assert cost.rough_duration(seconds) == words
