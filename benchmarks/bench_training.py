"""Training benchmarks: time-to-accuracy, app vs bare-fit throughput, FLOP/s efficiency, cost scaling.

    python -m benchmarks.bench_training tta [--dataset fashion_mnist] [--preset default] [--budget 60] [--repeats 3]
        [--set label_smoothing=0.1 ...]
    python -m benchmarks.bench_training throughput [--dataset fashion_mnist] [--sample 20000] [--epochs 2] [--repeats 3]
    python -m benchmarks.bench_training efficiency [--dataset fashion_mnist] [--sample 20000]
    python -m benchmarks.bench_training scale [--dataset fashion_mnist]

Each measurement trains in a fresh process (see common.run_child); figures are
medians of the repeats, and the throughput ratio is taken from app and bare
runs alternated in one invocation, so both see the same machine load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from benchmarks import common

common.setup_path()

from playground.model import cost  # noqa: E402  (after setup_path)


# ---------------------------------------------------------------------------
# Children: one measurement each, in a fresh process.
# ---------------------------------------------------------------------------


def _spec(args):
    from playground.spec.presets import preset_spec

    spec = preset_spec(args.preset, dataset=args.dataset, seed=args.seed)
    changes = {}
    if args.sample:
        changes["sample_size"] = args.sample
    if args.epochs:
        changes["epochs"] = args.epochs
    if args.budget:
        changes["time_budget"] = args.budget
    if args.width != 1:
        changes["filters"] = ",".join(str(f * args.width) for f in spec.arch.filters)
    changes.update(_settings(args))
    return spec.with_values(**changes)


def _settings(args) -> dict[str, str]:
    """The --set FIELD=VALUE changes to the preset, in order."""
    pairs = [item.split("=", 1) for item in args.set]
    if any(len(pair) != 2 for pair in pairs):
        raise SystemExit(f"--set takes FIELD=VALUE. Received: {args.set}")
    return dict(pairs)


def child_train(args) -> dict:
    """The library's training path (what a worker runs), with the test accuracy at the end."""
    from playground.data import datasets
    from playground.training import loop as training

    training.configure_threads()
    spec = _spec(args)
    dataset = datasets.load_for_spec(spec)
    result = training.train(spec, dataset)
    return {
        "test_accuracy": result.test_accuracy,
        **{f"{views}_tta_accuracy": accuracy for views, accuracy in _tta_accuracies(result.model, dataset).items()},
        "epochs": result.epochs_completed,
        "train_seconds": result.train_seconds,
        "images_per_second": result.images_per_second,
        "seconds_per_epoch": result.train_seconds / max(result.epochs_completed, 1),
        "params": result.params,
        "stop_reason": result.stop_reason,
    }


TTA_COLUMNS = ("none", "flip", "shift", "flip_shift")  # the trained model scored with each of these test-time augmentations


def _tta_accuracies(model, dataset) -> dict[str, float]:
    """Test accuracy of the trained model under each of TTA_COLUMNS (the spec's own choice is `test_accuracy`)."""
    from playground.training.loop import test_scores

    chosen, out = model.test_time_augmentation, {}
    for views in TTA_COLUMNS:
        model.test_time_augmentation = views  # read by predict_probabilities, which test_scores goes through
        out[views] = test_scores(model, dataset.x_test, dataset.y_test)[1]
    model.test_time_augmentation = chosen
    return out


def child_bare_fit(args) -> dict:
    """A bare `model.fit` of the same model on the same images, batch size and thread settings."""
    import numpy as np

    from playground.data import datasets
    from playground.model import network as models
    from playground.training import loop as training

    training.configure_threads()
    spec = _spec(args)
    dataset = datasets.load_for_spec(spec)
    x, y, _, _ = datasets.split_train_validation(dataset, spec.data.sample_size, spec.data.validation_split, spec.seed)
    batch = spec.train.batch_size
    steps = int(np.ceil(len(x) / batch))
    model = models.build_model(spec, dataset.input_shape, dataset.num_classes, x_sample=x)
    models.compile_model(model, spec, steps)
    model.fit(x[:batch], y[:batch], batch_size=batch, epochs=1, verbose=0)  # trace and compile, not timed
    started = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=spec.train.epochs, verbose=0, shuffle=True)
    seconds = time.perf_counter() - started
    return {"images_per_second": len(x) * spec.train.epochs / seconds, "seconds": seconds}


def child_app(args) -> dict:
    """The app's path: a warm spawn worker, progress events relayed and drained twice a second."""
    from playground.training.jobs import JobManager

    manager = JobManager(max_concurrent=1, grace_seconds=3600)
    try:
        time.sleep(8)  # let the worker import TensorFlow: a warm worker, as in the app
        job = manager.submit("bench", _spec(args))
        events = 0
        while True:
            events += len(manager.drain("bench", job))
            info = manager.info("bench", job)
            if not info.active:
                break
            time.sleep(0.5)  # the Playground page's fragment polls at this rate
        if info.state != "done":
            raise RuntimeError(f"job ended {info.state}: {info.message}")
        return {"images_per_second": info.result.summary.images_per_second, "events": events,
                "test_accuracy": info.result.summary.test_accuracy}
    finally:
        manager.shutdown()


def child_peak() -> dict:
    """This machine's float32 matrix-multiply rate (FLOP/s), the best of several 2048^3 products."""
    import tensorflow as tf

    from playground.training import loop as training

    training.configure_threads()
    n = 2048
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    best = 0.0
    for _ in range(8):
        started = time.perf_counter()
        tf.linalg.matmul(a, b).numpy()
        best = max(best, 2 * n**3 / (time.perf_counter() - started))
    return {"flops_per_second": best}


def child_flops(args) -> dict:
    """Forward FLOPs per image of the spec's model, from the layer table."""
    from playground.data import datasets
    from playground.model import network as models
    from playground.model.table import layer_table

    spec = _spec(args)
    dataset = datasets.load_for_spec(spec)
    model = models.build_model(spec, dataset.input_shape, dataset.num_classes)
    return {"forward_flops": sum(row.flops for row in layer_table(model))}


CHILDREN = {"train": child_train, "bare": child_bare_fit, "app": child_app, "flops": child_flops}


# ---------------------------------------------------------------------------
# Parents: repeat children, print tables.
# ---------------------------------------------------------------------------


def _child_args(args, **overrides) -> list[str]:
    values = {"dataset": args.dataset, "preset": args.preset, "seed": args.seed, "sample": args.sample,
              "epochs": args.epochs, "budget": args.budget, "width": args.width, **overrides}
    out = []
    for key, value in values.items():
        out += [f"--{key}", str(value)]
    for item in args.set:
        out += ["--set", item]
    return out


# Seconds a time-to-accuracy child may take beyond its training budget: loading the data (a minute for CIFAR-10's
# JPEG folders), building the model, and scoring the test set under every TTA_COLUMNS choice.
TTA_CHILD_OVERHEAD = 1200


def bench_tta(args) -> str:
    timeout = max(common.CHILD_TIMEOUT, args.budget + TTA_CHILD_OVERHEAD)  # a long budget must not kill its own run
    rows = [common.run_child("bench_training", ["train", *_child_args(args, seed=args.seed + i)], timeout=timeout)
            for i in range(args.repeats)]
    accuracy = common.median([r["test_accuracy"] for r in rows])
    return common.table(
        ["dataset", "preset", "budget s", "runs", "median test acc", "min", "max",
         *(f"TTA {views} (median)" for views in TTA_COLUMNS), "median train s", "median epochs", "images/s", "peak MB"],
        [[args.dataset, " ".join([args.preset, *args.set]), args.budget, len(rows), accuracy,
          min(r["test_accuracy"] for r in rows), max(r["test_accuracy"] for r in rows),
          *(common.median([r[f"{views}_tta_accuracy"] for r in rows]) for views in TTA_COLUMNS),
          common.median([r["train_seconds"] for r in rows]), common.median([r["epochs"] for r in rows]),
          common.median([r["images_per_second"] for r in rows]), max(r["peak_rss_mb"] for r in rows)]],
    )


def bench_throughput(args) -> str:
    app, bare = [], []
    for _ in range(args.repeats):  # alternated, so both see the same load
        app.append(common.run_child("bench_training", ["app", *_child_args(args)])["images_per_second"])
        bare.append(common.run_child("bench_training", ["bare", *_child_args(args)])["images_per_second"])
    ratios = [a / b for a, b in zip(app, bare)]
    return common.table(
        ["dataset", "images", "epochs", "app images/s (median)", "bare fit images/s (median)", "ratio (median of pairs)", "ratios"],
        [[args.dataset, args.sample, args.epochs, common.median(app), common.median(bare), common.median(ratios),
          ", ".join(f"{r:.2f}" for r in ratios)]],
    )


def _with_onednn(enabled: bool, fn):
    """Call `fn` with TF_ENABLE_ONEDNN_OPTS set for the children it starts."""
    before = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if enabled else "0"
    try:
        return fn()
    finally:
        if before is None:
            os.environ.pop("TF_ENABLE_ONEDNN_OPTS")
        else:
            os.environ["TF_ENABLE_ONEDNN_OPTS"] = before


def bench_efficiency(args) -> str:
    peak = common.median([common.run_child("bench_training", ["peak"])["flops_per_second"] for _ in range(3)])
    flops = common.run_child("bench_training", ["flops", *_child_args(args)])["forward_flops"]
    on, off = [], []
    for _ in range(args.repeats):  # alternated, so both see the same load
        for enabled, rates in ((True, on), (False, off)):
            rates.append(_with_onednn(enabled, lambda: common.run_child(
                "bench_training", ["train", *_child_args(args)]))["images_per_second"])
    rows = []
    for label, rates in (("on (the app's setting)", on), ("off", off)):
        achieved = common.median(rates) * flops * cost.TRAIN_FLOPS_PER_FORWARD
        rows.append([args.preset, label, flops / 1e6, common.median(rates), achieved / 1e9, peak / 1e9, achieved / peak])
    return common.table(
        ["preset", "oneDNN", "forward MFLOP/image", "images/s", "achieved GFLOP/s (3x forward)", "matmul peak GFLOP/s",
         "fraction of peak"], rows,
    ) + f"\n\noneDNN on/off speed ratio: {common.median(on) / common.median(off):.2f}"


def bench_scale(args) -> str:
    from playground.spec.experiment import DataSpec

    rows = []
    base = args.sample or 8000
    for width in (1, 2, 4):
        flops = common.run_child("bench_training", ["flops", *_child_args(args, width=width)])["forward_flops"]
        for sample in (base // 2, base, base * 2):
            r = [common.run_child("bench_training", ["train", *_child_args(args, sample=sample, width=width, epochs=1)])
                 for _ in range(args.repeats)]
            images = cost.train_images(sample, sample, DataSpec().validation_split)
            rows.append([sample, f"x{width}", r[0]["params"], flops / 1e6, common.median([x["seconds_per_epoch"] for x in r]),
                         cost.epoch_seconds(flops, images), common.median([x["images_per_second"] for x in r]),
                         max(x["peak_rss_mb"] for x in r)])
    return common.table(["train images", "filters", "params", "forward MFLOP", "s/epoch", "estimated s/epoch (default rate)",
                         "images/s", "peak MB"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("what", choices=["tta", "throughput", "efficiency", "scale", *CHILDREN, "peak"])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample", type=int, default=0, help="training images (0 = all)")
    parser.add_argument("--epochs", type=int, default=0, help="0 = the preset's")
    parser.add_argument("--budget", type=float, default=0, help="time budget in seconds (0 = none)")
    parser.add_argument("--width", type=int, default=1, help="filter multiplier")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="change one setting of the preset, e.g. --set label_smoothing=0.1 (repeatable)")
    args = parser.parse_args(argv)
    if args.child:
        common.emit(child_peak() if args.what == "peak" else CHILDREN[args.what](args))
        return
    if args.what in ("throughput", "efficiency", "scale") and not args.sample:
        args.sample = 20000
    if args.what in ("throughput",) and not args.epochs:
        args.epochs = 2
    runner = {"tta": bench_tta, "throughput": bench_throughput, "efficiency": bench_efficiency, "scale": bench_scale}
    print(runner[args.what](args))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
