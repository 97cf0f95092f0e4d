"""Shared helpers of the benchmarks: fresh processes, process trees, medians and tables.

Every measurement that trains runs in a fresh Python process (spawned with
`run_child`), so TensorFlow's thread pools, caches and memory start clean and
peak memory can be read per measurement.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]


def setup_path() -> None:
    """Make `import playground` work when a benchmark is run as a script."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


CHILD_TIMEOUT = 1800  # seconds a benchmark child may run unless its caller allows more


def run_child(module: str, args: Sequence[str], timeout: float = CHILD_TIMEOUT) -> dict[str, Any]:
    """Run `python -m benchmarks.<module> --child ...` and return the JSON of its last stdout line.

    Args:
        module: the benchmark module name, e.g. "bench_training".
        args: its command-line arguments.
        timeout: seconds before the child is killed.

    Returns:
        The child's result dict (with "peak_rss_mb", see `emit`).
    """
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", "--child", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {module} {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def emit(result: dict[str, Any]) -> None:
    """Print a child's result as the last stdout line (read by `run_child`), adding its peak memory."""
    # ru_maxrss is in KiB on Linux: the largest resident set this process ever had.
    result = {**result, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (index 0 = state), or None when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_tree(pid: int) -> list[int]:
    """`pid` followed by all its descendants, read from /proc (children of every thread count)."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        found.append(current)
        for task in tasks:
            try:
                stack += [int(c) for c in Path(f"/proc/{current}/task/{task}/children").read_text().split()]
            except OSError:
                continue
    return found


def median(values: Sequence[float]) -> float:
    """The median of `values` (NaN when empty)."""
    return statistics.median(values) if values else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (pasted into the README as it is)."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
