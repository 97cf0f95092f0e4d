"""Load test: many browser sessions train at once against one server, on loopback only.

    python -m benchmarks.bench_load [--sessions 10] [--max-concurrent 1] [--timeout 900]

Starts `streamlit run streamlit_app.py` on a free port of 127.0.0.1 with
temporary runs and data folders, opens `--sessions` Chromium contexts (each its
own Streamlit session) on the Playground with a small training in the URL
(each with its own seed), and clicks Train in all of them. While they train and
queue, a fresh context loads the home page every few seconds and times it. At
the end it checks that every session finished through the queue and shows the
test accuracy of its OWN run (matched by seed in the saved runs), that each run
has a different owner, and reports the peak memory of the server and its
workers. Bounded: every wait has a timeout; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

from benchmarks import bench_latency, common

common.setup_path()

SMALL = {"dataset": "shapes", "sample_size": 300, "filters": "4,8", "epochs": 2, "batch_size": 32, "dense_units": 16}
HOME_INTERVAL_S = 2.0  # pause between two timed home-page loads


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, from /proc (MB)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (OSError, StopIteration):
            continue
        stack += [int(c) for c in children]
    return total / 1024


def _metric(page, label: str) -> str | None:
    for text in page.locator('[data-testid="stMetric"]').all_inner_texts():
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines and lines[0] == label:
            return lines[-1]
    return None


def _wait_script_done(page, timeout: float) -> None:
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = page.locator('[data-testid="stApp"]').get_attribute("data-test-script-state")
        if state == "notRunning" and not page.locator('[data-testid="stSkeleton"]').count():
            return
        time.sleep(0.2)
    raise TimeoutError("the page kept running its script")


def run(sessions: int, max_concurrent: int, timeout: float) -> dict:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    from playground.runs import RunStore

    root = Path(tempfile.mkdtemp(prefix="pg-load-"))
    port = _free_port()
    env = {**os.environ, "PLAYGROUND_RUNS_DIR": str(root / "runs"), "PLAYGROUND_DATA_DIR": str(root / "data"),
           "PLAYGROUND_MAX_CONCURRENT": str(max_concurrent), "PLAYGROUND_PRIVATE_RUNS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=common.ROOT, env=env, stdout=open(root / "server.log", "wb"), stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    peak_mb, home_seconds, home_failures, pages = 0.0, [], 0, []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/_stcore/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not start")
                time.sleep(0.3)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
            for i in range(sessions):
                page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
                page.set_default_timeout(60_000)
                page.goto(f"{base}/Playground?{urlencode({**SMALL, 'seed': i + 1})}")
                pages.append(page)
            for page in pages:
                _wait_script_done(page, 240)
            started = time.monotonic()
            for page in pages:
                page.get_by_role("button", name="Train", exact=True).click()
            done: dict[int, str] = {}
            next_home = time.monotonic()
            while len(done) < sessions and time.monotonic() - started < timeout:
                peak_mb = max(peak_mb, _tree_rss_mb(server.pid))
                for i, page in enumerate(pages):
                    if i not in done and (value := _metric(page, "Test accuracy")):
                        done[i] = value
                if time.monotonic() >= next_home:  # the home page, loaded by someone else meanwhile
                    home = bench_latency.new_page(browser)
                    t0 = time.time()
                    try:
                        home.goto(base + "/", timeout=60_000)
                        # Done as bench_latency judges it: the script's finish message arrived and the page settled.
                        done_ms = bench_latency.wait_done(home, t0 * 1000, 60, path="/", title="CNN Playground")
                        home_seconds.append(done_ms / 1000 - t0)
                    except (PlaywrightError, TimeoutError):
                        home_failures += 1  # not loaded within 60 s
                    home.context.close()
                    next_home = time.monotonic() + HOME_INTERVAL_S
                time.sleep(1.0)
            elapsed = time.monotonic() - started
            exceptions = sum(p.locator('[data-testid="stException"]').count() for p in pages)
            browser.close()
        runs = [r for r in RunStore(root / "runs").list_runs() if not r.damaged]
        own = 0
        for i, value in done.items():
            match = [r for r in runs if r.spec.seed == i + 1]
            if len(match) == 1 and f"{match[0].metrics['test_accuracy']:.1%}" == value:
                own += 1
        return {
            "sessions": sessions, "max_concurrent": max_concurrent, "finished": len(done),
            "pages_showing_their_own_run": own, "distinct_owners": len({r.owner for r in runs}),
            "runs_saved": len(runs), "exception_elements": exceptions, "seconds_all_done": round(elapsed, 1),
            "home_loads": len(home_seconds), "home_not_loaded_in_60s": home_failures, "home_median_s": round(common.median(home_seconds), 2),
            "home_max_s": round(max(home_seconds, default=float("nan")), 2),
            "home_under_2s": sum(t < 2.0 for t in home_seconds),
            "peak_server_tree_mb": round(peak_mb), "server_alive": server.poll() is None,
        }
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--max-concurrent", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    result = run(args.sessions, args.max_concurrent, args.timeout)
    print(common.table(list(result), [list(result.values())]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
