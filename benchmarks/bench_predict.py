"""Server time per uploaded image on the Predict page: decode + prepare + forward pass.

    python benchmarks/bench_predict.py [--repeats 30]

Builds the default preset for a 28x28 gray dataset (Fashion-MNIST shape) and
for CIFAR-10's 32x32 colour shape, loads each into a `Predictor` (the model
the page keeps per session), then times `Predictor.predict_bytes` on a
phone-size JPEG (3000x4000), a small PNG (28x28) and a 640x480 JPEG, and
prints the median, 90th percentile and best of the repeats. The product's
goal is <= 100 ms per image once the model is loaded. Grad-CAM, which the
page draws as well, is timed separately.

Weights are untrained: the time of a forward pass does not depend on their values.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from playground.analysis import activations  # noqa: E402
from playground.model.network import build_model  # noqa: E402
from playground.analysis.predict import Predictor  # noqa: E402
from playground.spec.presets import preset_spec  # noqa: E402

GOAL_SECONDS = 0.100


def photo(height: int, width: int) -> np.ndarray:
    """A photo-like uint8 (height, width, 3) picture: smooth gradients plus sensor noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width, yy / height, 0.5 + 0.5 * np.sin(xx / 97 + yy / 131)], axis=-1) * 255
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def encoded(pixels: np.ndarray, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def timings(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed predictions per row (at least 20)")
    args = parser.parse_args()
    repeats = max(20, args.repeats)

    images = {
        "phone JPEG 3000x4000": encoded(photo(4000, 3000), "JPEG", quality=90),
        "JPEG 640x480": encoded(photo(480, 640), "JPEG", quality=90),
        "small PNG 28x28": encoded(photo(28, 28)[:, :, 0], "PNG"),
    }
    models = {
        "default, 28x28x1": (preset_spec("default", "fashion_mnist"), (28, 28, 1), 10, True),
        "default, 32x32x3": (preset_spec("default", "cifar10"), (32, 32, 3), 10, False),
    }
    print(f"CPU threads: {os.cpu_count()}; {repeats} timed predictions per row after one warm-up\n")
    header = f"{'model':<18} {'image':<22} {'bytes':>10} {'median ms':>10} {'p90 ms':>8} {'best ms':>8}"
    print(header)
    print("-" * len(header))
    worst = 0.0
    for model_name, (spec, shape, classes, light_on_dark) in models.items():
        started = time.perf_counter()
        predictor = Predictor(build_model(spec, shape, classes), [str(i) for i in range(classes)], light_on_dark=light_on_dark)
        load = time.perf_counter() - started
        for image_name, data in images.items():
            t = timings(lambda: predictor.predict_bytes(data, image_name), repeats)
            median = statistics.median(t)
            worst = max(worst, median)
            p90 = statistics.quantiles(t, n=10)[-1]
            print(f"{model_name:<18} {image_name:<22} {len(data):>10,} {median * 1000:>10.1f} {p90 * 1000:>8.1f} {min(t) * 1000:>8.1f}")
        prepared = predictor.predict_bytes(images["small PNG 28x28"], "x").image
        cam = timings(lambda: activations.gradcam(predictor.model, prepared), max(5, repeats // 4))
        forward = timings(lambda: predictor.probabilities(prepared[None]), repeats)
        print(f"{model_name:<18} {'(forward pass only)':<22} {'':>10} {statistics.median(forward) * 1000:>10.1f}")
        print(f"{model_name:<18} {'(Grad-CAM, per image)':<22} {'':>10} {statistics.median(cam) * 1000:>10.1f}")
        print(f"{model_name:<18} {'(model build + trace)':<22} {'':>10} {load * 1000:>10.1f}")
    verdict = "meets" if worst <= GOAL_SECONDS else "misses"
    print(f"\nSlowest median {worst * 1000:.1f} ms per image: {verdict} the {GOAL_SECONDS * 1000:.0f} ms goal.")
    return 0 if worst <= GOAL_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
