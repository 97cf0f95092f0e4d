"""Time to the first trained batch in a warm worker, without and with a warm-up (`playground.training.warmup`).

    python -m benchmarks.bench_first_batch [--dataset fashion_mnist] [--preset default] [--repeats 5] [--sample 0]

Each measurement runs in a fresh process set up as a training worker is before a
job: TensorFlow imported, thread pools configured, the dataset loaded (the
"prepare" a worker carries out while the user is on the page). A "warm" process
then also calls `warm_up(spec, dataset)`, as a worker does when it prepares, and
waits a second (the user moving to the Train button). Then `train` is called as a
worker calls it (events, the probe image, the live views of the network diagram),
and the times from that call to its events are read: the first point of the
curves (the untrained model's loss, a Batch at step 0), and the first trained
batch (the first Batch after a training step). Training is stopped right after
it. Cold and warm processes alternate, so both see the same machine load;
figures are medians over the repeats.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks import common

common.setup_path()


def child(args) -> dict:
    """One measurement in this fresh process: {"warm_up_s", "step0_s", "first_batch_s", ...}."""
    from playground.data import datasets
    from playground.spec.presets import preset_spec
    from playground.training import events, warmup
    from playground.training import loop as training

    training.configure_threads()
    spec = preset_spec(args.preset, dataset=args.dataset, seed=args.seed)
    if args.sample:
        spec = spec.with_values(sample_size=args.sample)
    dataset = datasets.load_for_spec(spec)
    warm_up_seconds = 0.0
    if args.warm:
        began = time.perf_counter()
        warmup.warm_up(spec, dataset)
        warm_up_seconds = time.perf_counter() - began
        time.sleep(1.0)
    probe = events.ProbeImage(image=dataset.x_test[0], label=dataset.class_names[int(dataset.y_test[0])])
    seen: dict[str, float] = {}
    began = time.perf_counter()

    def on_progress(event) -> None:
        if isinstance(event, events.Batch):
            seen.setdefault("step0_s" if event.step == 0 else "first_batch_s", time.perf_counter() - began)

    result = training.train(spec, dataset, on_progress=on_progress, should_stop=lambda: "first_batch_s" in seen,
                            probe_image=probe.image, live_probe=lambda: probe)
    return {"warm_up_s": warm_up_seconds, **seen, "used_warm_model": bool(args.warm and warmup.warm_model() is None),
            "stop_reason": result.stop_reason}


def run(args) -> str:
    rows = {"cold": [], "warm": []}
    for _ in range(args.repeats):  # alternated, so both see the same load
        for kind in ("cold", "warm"):
            child_args = ["--dataset", args.dataset, "--preset", args.preset, "--seed", str(args.seed),
                          "--sample", str(args.sample)] + (["--warm"] if kind == "warm" else [])
            rows[kind].append(common.run_child("bench_first_batch", child_args))
    table = []
    for kind, results in rows.items():
        first = [r["first_batch_s"] for r in results]
        step0 = [r["step0_s"] for r in results]
        table.append([kind, len(results), common.median(step0), common.median(first), min(first), max(first),
                      common.median([r["warm_up_s"] for r in results]) if kind == "warm" else "-",
                      max(r["peak_rss_mb"] for r in results)])
    cold, warm = (common.median([r["first_batch_s"] for r in rows[k]]) for k in ("cold", "warm"))
    unused = sum(not r["used_warm_model"] for r in rows["warm"])
    note = f" ({unused} warm run(s) did not use the warm model!)" if unused else ""
    return common.table(
        ["worker", "runs", "first point (step 0) s", "first trained batch s (median)", "min", "max",
         "warm-up s (before the job)", "peak MB"], table,
    ) + f"\n\n{args.dataset}, preset {args.preset}: the first trained batch comes {cold / warm:.1f}x sooner after a warm-up{note}."


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample", type=int, default=0, help="training images (0 = all)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.child:
        common.emit(child(args))
        return
    print(run(args))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
