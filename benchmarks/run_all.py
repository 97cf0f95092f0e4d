"""Every benchmark, one after another, in one report.

    python -m benchmarks.run_all [--quick] [--only NAME ...] [--out PATH] [--cifar DIR]

Runs each benchmark as its own subprocess (`python -m benchmarks.<module> ...`,
so nothing is shared between them), one at a time, and prints one Markdown
report: the date, the machine (CPU model, cores, memory, load average), the
versions (Python, TensorFlow, Keras, Streamlit) and the git commit, then each
benchmark's command line, wall time and output tables (JSON lines left out).
The report is also written to benchmarks/results.md (`--out` to change it).

The full run takes about 75 minutes on a 2-core CPU: time-to-accuracy on
Fashion-MNIST (default preset, 60 s budget, 3 runs; fashion_whitened preset on
all 60,000 training images, 5 min budget, 3 runs), on CIFAR-10 when --cifar
names its unpacked class folders (cifar_whitened preset on all 50,000 training images,
10 min budget, 3 runs: another 30 minutes), app vs bare-fit
throughput, FLOP/s efficiency, cost scaling, time to the first trained batch
without and with a warm-up, Predict per image, browser
latency, and the 10-session load test. `--quick` runs the same benchmarks
with tiny sizes and single repeats (a few minutes) only to check that the
runner and every benchmark work; its figures mean little, and it writes
benchmarks/results-quick.md instead, so the full results are not overwritten.

A benchmark that fails or times out is reported as such (with the end of its
stderr) and the others still run; the exit status is 1 when any failed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from benchmarks import common

# name -> (module and arguments of the full run, of --quick, seconds before it is stopped (full, quick)).
BENCHMARKS: dict[str, tuple[list[str], list[str], tuple[float, float]]] = {
    "training-tta": (
        ["bench_training", "tta", "--dataset", "fashion_mnist", "--preset", "default", "--budget", "60", "--repeats", "3"],
        ["bench_training", "tta", "--dataset", "fashion_mnist", "--preset", "default", "--budget", "10",
         "--sample", "2000", "--epochs", "1", "--repeats", "1"],
        (1800, 300),
    ),
    # The stretch: 93.5% within 5 minutes, with the preset made for it, on all 60,000 training images.
    "training-tta-fashion-whitened": (
        ["bench_training", "tta", "--dataset", "fashion_mnist", "--preset", "fashion_whitened", "--set", "validation_split=0",
         "--budget", "300", "--repeats", "3"],
        ["bench_training", "tta", "--dataset", "fashion_mnist", "--preset", "fashion_whitened", "--budget", "10",
         "--sample", "1000", "--epochs", "1", "--repeats", "1"],
        (3 * 480, 300),
    ),
    # Needs the CIFAR-10 class folders (--cifar DIR); skipped without them.
    "training-tta-cifar": (
        ["bench_training", "tta", "--dataset", "{cifar}", "--preset", "cifar_whitened", "--set", "validation_split=0",
         "--budget", "600", "--repeats", "3"],
        ["bench_training", "tta", "--dataset", "{cifar}", "--preset", "cifar_whitened", "--budget", "20",
         "--sample", "1000", "--epochs", "1", "--repeats", "1"],
        (3 * 900, 300),
    ),
    "training-throughput": (
        ["bench_training", "throughput", "--dataset", "fashion_mnist", "--sample", "20000", "--epochs", "2", "--repeats", "3"],
        ["bench_training", "throughput", "--dataset", "fashion_mnist", "--sample", "1000", "--epochs", "1", "--repeats", "1"],
        (1800, 300),
    ),
    "training-efficiency": (
        ["bench_training", "efficiency", "--dataset", "fashion_mnist", "--sample", "20000", "--repeats", "3"],
        ["bench_training", "efficiency", "--dataset", "fashion_mnist", "--sample", "1000", "--epochs", "1", "--repeats", "1"],
        (1800, 300),
    ),
    # 9 sizes x widths; one repeat each keeps the full run near an hour (x4 filters on 40,000 images is minutes).
    "training-scale": (
        ["bench_training", "scale", "--dataset", "fashion_mnist", "--sample", "20000", "--repeats", "1"],
        ["bench_training", "scale", "--dataset", "fashion_mnist", "--sample", "400", "--repeats", "1"],
        (2400, 600),
    ),
    "first-batch": (
        ["bench_first_batch", "--dataset", "fashion_mnist", "--preset", "default", "--repeats", "5"],
        ["bench_first_batch", "--dataset", "fashion_mnist", "--preset", "default", "--sample", "2000", "--repeats", "1"],
        (900, 300),
    ),
    "predict": (["bench_predict", "--repeats", "30"], ["bench_predict", "--repeats", "20"], (900, 300)),
    "latency": (["bench_latency", "--repeats", "3"], ["bench_latency", "--repeats", "1"], (1800, 600)),
    "load": (["bench_load", "--sessions", "10"], ["bench_load", "--sessions", "2", "--timeout", "300"], (1500, 600)),
    "hostile": (["bench_hostile"], ["bench_hostile", "--cases", "zeros_npz", "icon_bomb"], (1200, 300)),
}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GB"
    except OSError:
        pass
    return "?"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=common.ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_facts() -> list[tuple[str, str]]:
    """(fact, value) pairs for the report's header."""
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    dirty = " (with uncommitted changes)" if _git("status", "--porcelain", "--untracked-files=no") else ""
    return [
        ("CPU", _cpu_model()),
        ("cores", f"{cores} ({usable} usable by this process)"),
        ("memory", _memory_gb()),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
        ("TensorFlow", _version("tensorflow")),
        ("Keras", _version("keras")),
        ("Streamlit", _version("streamlit")),
        ("git commit", (_git("rev-parse", "--short", "HEAD") or "?") + dirty),
        ("load average at start (1, 5, 15 min)", ", ".join(f"{x:.2f}" for x in os.getloadavg())),
    ]


def run_one(args: list[str], timeout: float) -> tuple[int | None, float, str, str]:
    """Run `python -m benchmarks.<args[0]> <args[1:]>`: (exit status or None on timeout, seconds, stdout, stderr)."""
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{args[0]}", *args[1:]],
            cwd=common.ROOT, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"},
        )
        return proc.returncode, time.monotonic() - started, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        # subprocess.run kills the child on a timeout; what it printed so far is kept.
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return None, time.monotonic() - started, out, err


def section(name: str, args: list[str], status: int | None, seconds: float, stdout: str, stderr: str, timeout: float,
            failed: bool) -> str:
    """One benchmark's part of the report."""
    lines = [f"## {name}", "", f"`python -m benchmarks.{' '.join(args)}` — {seconds:,.0f} s"]
    if status is None:
        lines[-1] += f", **stopped after {timeout:,.0f} s**"
    elif status != 0:
        lines[-1] += f", exit status {status}"
    lines.append("")
    kept = [line for line in stdout.rstrip().splitlines() if not line.lstrip().startswith("{")]  # JSON lines
    text = "\n".join(kept).strip()
    if text:
        # Markdown tables (with a sentence or two around them) stay as they are; fixed-width text goes in a block.
        is_markdown = any(line.lstrip().startswith("|") for line in kept)
        lines += [text] if is_markdown else ["```text", text, "```"]
    else:
        lines.append("(no output)")
    if failed and stderr.strip():
        lines += ["", "Last lines of its stderr:", "", "```text", *stderr.rstrip().splitlines()[-25:], "```"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and single repeats: checks that everything runs")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), metavar="NAME",
                        help=f"run only these benchmarks ({', '.join(BENCHMARKS)})")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the report (default benchmarks/results.md, results-quick.md with --quick)")
    parser.add_argument("--cifar", type=Path, default=None,
                        help="the CIFAR-10 class folders (train/<class>/*.jpg, test/<class>/*.jpg) for training-tta-cifar")
    args = parser.parse_args(argv)
    out = args.out or common.ROOT / "benchmarks" / ("results-quick.md" if args.quick else "results.md")
    names = args.only or list(BENCHMARKS)

    started = datetime.datetime.now().astimezone()
    header = [f"# Benchmark results{' (--quick: a check of the runner, not measurements)' if args.quick else ''}", "",
              f"Run on {started:%Y-%m-%d %H:%M %Z} with `python -m benchmarks.run_all"
              f"{' --quick' if args.quick else ''}{' --only ' + ' '.join(args.only) if args.only else ''}`.", "",
              common.table(["machine", ""], machine_facts())]
    print("\n".join(header), flush=True)
    sections, failed, summary = [], [], []
    for name in names:
        full, quick, (full_timeout, quick_timeout) = BENCHMARKS[name]
        bench_args, timeout = (quick, quick_timeout) if args.quick else (full, full_timeout)
        if "{cifar}" in bench_args:
            if args.cifar is None:
                summary.append([name, "skipped (no --cifar folder)", 0.0])
                continue
            bench_args = [str(args.cifar) if a == "{cifar}" else a for a in bench_args]
        print(f"\n... {name}: python -m benchmarks.{' '.join(bench_args)}", file=sys.stderr, flush=True)
        status, seconds, stdout, stderr = run_one(bench_args, timeout)
        if status == 0:
            outcome = "ok"
        elif name == "predict" and status == 1 and "misses the" in stdout:
            outcome = "ok (misses its 100 ms goal)"  # a result, not a failure: bench_predict exits 1 then
        else:
            outcome = "timed out" if status is None else f"failed (exit {status})"
            failed.append(name)
        summary.append([name, outcome, seconds])
        text = section(name, bench_args, status, seconds, stdout, stderr, timeout, name in failed)
        sections.append(text)
        print("\n" + text, flush=True)
    finished = datetime.datetime.now().astimezone()
    footer = [f"Finished {finished:%Y-%m-%d %H:%M %Z} ({(finished - started).total_seconds() / 60:,.1f} min); "
              f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}.", "",
              common.table(["benchmark", "status", "wall s"], summary)]
    if failed:
        footer += ["", f"Failed or timed out: {', '.join(failed)}."]
    print("\n" + "\n".join(footer), flush=True)
    out.write_text("\n\n".join(["\n".join(header), *sections, "\n".join(footer)]) + "\n")
    print(f"\n(written to {out})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
