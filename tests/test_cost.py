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


def test_calibration_learns_the_median_rate_and_ignores_tiny_networks():
    calibration = cost.RateCalibration(keep=3)
    assert not calibration.measured and calibration.rate() == cost.DEFAULT_RATE
    calibration.record(1e3, 50_000)  # overhead-bound: says nothing about the rate
    calibration.record(5e6, 0)  # no speed reported
    assert not calibration.measured
    # A run of 5 MFLOPs per image at 2,000 images/s: 3 * 5e6 / (1/2000 - overhead) FLOP/s.
    calibration.record(5e6, 2_000)
    expected = 3 * 5e6 / (1 / 2_000 - cost.PER_IMAGE_OVERHEAD_S)
    assert calibration.measured and calibration.rate() == pytest.approx(expected)
    # The estimate for that same network then gives back its measured epoch time.
    assert cost.epoch_seconds(5e6, 2_000, calibration.rate()) == pytest.approx(1.0)
    for speed in (1_000, 4_000, 4_000, 4_000):  # only the last 3 count
        calibration.record(5e6, speed)
    assert calibration.rate() == pytest.approx(3 * 5e6 / (1 / 4_000 - cost.PER_IMAGE_OVERHEAD_S))


def test_calibration_is_safe_to_share_between_sessions():
    calibration = cost.RateCalibration(keep=1000)
    threads = [threading.Thread(target=lambda: [calibration.record(5e6, 2_000) for _ in range(200)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calibration._rates) == 800


@pytest.mark.parametrize("seconds, words", [
    (0.4, "under a second"), (12.3, "12 s"), (59.4, "59 s"), (61, "1 min"), (224, "3 min 40 s"),
    (3_900, "1 h 05 min"),
])
def test_rough_duration(seconds, words):
    assert cost.rough_duration(seconds) == words
