"""Load test: many browser sessions train at once against one server, on loopback only.

    python -m benchmarks.bench_load [--sessions 10] [--max-concurrent 1] [--timeout 900]
                                    [--engine ray|processes] [--cluster]

Starts `streamlit run streamlit_app.py` on a free port of 127.0.0.1 with
temporary runs and data folders, opens `--sessions` Chromium contexts (each its
own Streamlit session) on the Playground with a small training in the URL
(each with its own seed), and clicks Train in all of them. While they train and
queue, a fresh context of a second Chromium (the visitor's) loads the home page
every few seconds and times it, alternately in a new tab (Streamlit's scripts
cached, as for a returning user) and in a new browser context (a first visit):
until the page is done, and the server's part (its first message to its
script's finish). The same loads are timed on the idle server first, for
comparison.

All the students' browsers share this machine's cores with the server here (in
a class each runs on the student's own computer). `--students-niceness N` runs
the students' Chromium at a lower CPU priority to model that; the default, 0,
gives everything the same priority, the harder case. The CPU seconds each part
used are reported.

The server trains with the default engine (an embedded Ray instance), or
`--engine processes`; `--cluster` starts a two-node Ray cluster on 127.0.0.1
(a head and a second node, one run on each: `PLAYGROUND_CPUS_PER_RUN`=1) and
points the server at it, as a lab would; the nodes' CPU seconds are reported.

At the end it checks that every session finished through the queue and shows the
test accuracy of its OWN run (matched by seed in the saved runs), that each run
has a different owner, and reports the peak memory of the server and its
workers. Bounded: every wait has a timeout; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from benchmarks import bench_latency, common

common.setup_path()

SMALL = {"dataset": "shapes", "sample_size": 300, "filters": "4,8", "epochs": 2, "batch_size": 32, "dense_units": 16}
HOME_INTERVAL_S = 2.0  # pause between two timed home-page loads
IDLE_HOME_LOADS = 3  # home-page loads timed before the load starts, for comparison
STUDENTS_FLAG = "--class-students"  # an extra switch (Chromium ignores it) that marks the students' browser


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, from /proc (MB)."""
    total = 0
    for current in common.process_tree(pid):
        try:
            with open(f"/proc/{current}/status") as status:
                total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total / 1024


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far."""
    fields = [f for f in map(common.proc_stat, pids) if f]
    return sum(int(f[11]) + int(f[12]) for f in fields) / os.sysconf("SC_CLK_TCK")


def _cpu_by_part(server: int, students: int) -> dict[str, float]:
    """CPU seconds used so far by the server process, its workers and the students' browser."""
    server_tree = common.process_tree(server)
    return {"server": _cpu_seconds(server_tree[:1]), "workers": _cpu_seconds(server_tree[1:]),
            "students_browser": _cpu_seconds(common.process_tree(students))}


def _marked_browser() -> int:
    """The pid of the students' Chromium (the process launched with STUDENTS_FLAG)."""
    for entry in Path("/proc").iterdir():
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if STUDENTS_FLAG.encode() in arguments and not any(a.startswith(b"--type=") for a in arguments):
            return int(entry.name)
    raise RuntimeError("the students' browser process was not found")


def _renice_tree(pid: int, niceness: int) -> None:
    """Set the niceness of every thread of a process tree (Linux keeps one per thread)."""
    for current in common.process_tree(pid):
        try:
            threads = [int(t) for t in os.listdir(f"/proc/{current}/task")]
        except OSError:
            continue
        for thread in threads:
            try:
                os.setpriority(os.PRIO_PROCESS, thread, niceness)
            except OSError:
                pass  # gone, or not ours


def _metric(page, label: str) -> str | None:
    for text in page.locator('[data-testid="stMetric"]').all_inner_texts():
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines and lines[0] == label:
            return lines[-1]
    return None


def _time_home(visitor, base: str, first_visit: bool) -> tuple[float, float] | None:
    """Load the home page as a new Streamlit session of the visitor's browser.

    Args:
        visitor: the visitor's browser context.
        first_visit: True = in a new context (a browser with nothing cached, so
            Streamlit's scripts are fetched and compiled again); False = in a
            new tab of `visitor`, whose cache holds them (a returning user).

    Returns:
        (seconds until the page is done, as bench_latency judges it: the
        script's finish message arrived and the page settled; seconds from the
        server's first message to its script-finished message, which is the
        server's part), or None when it did not load within 60 s.
    """
    from playwright.sync_api import Error as PlaywrightError

    page = bench_latency.new_page(visitor.browser) if first_visit else visitor.new_page()
    t0 = time.time()
    try:
        page.goto(base + "/", timeout=60_000)
        done_ms = bench_latency.wait_done(page, t0 * 1000, 60, path="/", title="CNN Playground")
        events = page.evaluate("window.__pgEvents")
        start = next(t for t, name in events if name == "start")
        finished = next(t for t, name in events if name == "finished:0" and t >= start)
        return done_ms / 1000 - t0, (finished - start) / 1000
    except (PlaywrightError, TimeoutError, StopIteration):
        return None
    finally:
        (page.context if first_visit else page).close()


def _median(loads: list[tuple[bool, float, float]], first_visit: bool, index: int) -> float:
    """Median of field `index` of the timed home loads of one kind (first visits or returning ones)."""
    return round(common.median([t[index] for t in loads if t[0] == first_visit]), 2)


def _wait_script_done(page, timeout: float) -> None:
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = page.locator('[data-testid="stApp"]').get_attribute("data-test-script-state")
        if state == "notRunning" and not page.locator('[data-testid="stSkeleton"]').count():
            return
        time.sleep(0.2)
    raise TimeoutError("the page kept running its script")


def run(sessions: int, max_concurrent: int, timeout: float, students_niceness: int, engine: str = "ray",
        cluster: bool = False) -> dict:
    root = Path(tempfile.mkdtemp(prefix="pg-load-"))
    settings = {"PLAYGROUND_MAX_CONCURRENT": str(max_concurrent), "PLAYGROUND_PRIVATE_RUNS": "1", "PLAYGROUND_ENGINE": engine}
    lab = None
    if cluster:
        sys.path.insert(0, str(common.ROOT / "tests"))
        from loopback_cluster import RAY_ENV, LoopbackCluster

        lab = LoopbackCluster()
        lab.start_head(cpus=1)
        lab.add_node(cpus=1)
        settings.update(RAY_ENV, PLAYGROUND_ENGINE="ray", PLAYGROUND_RAY_ADDRESS=lab.address, PLAYGROUND_CPUS_PER_RUN="1")
    try:
        return _run(root, settings, sessions, timeout, students_niceness, lab) | {"engine": settings["PLAYGROUND_ENGINE"],
                                                                                 "cluster_nodes": 2 if lab else 0}
    finally:
        if lab is not None:
            lab.stop()


def _run(root: Path, settings: dict[str, str], sessions: int, timeout: float, students_niceness: int, lab) -> dict:
    from playwright.sync_api import sync_playwright

    from playground.runs.store import RunStore

    max_concurrent = int(settings["PLAYGROUND_MAX_CONCURRENT"])
    node_pids = [process.pid for process, _ in lab.nodes] if lab else []
    server = bench_latency.Server(root, settings)
    base = server.base
    peak_mb, home_loads, home_failures, pages = 0.0, [], 0, []
    try:
        server.wait_healthy()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                         args=["--no-sandbox", STUDENTS_FLAG])
            visitor_browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
            visitor = bench_latency.new_page(visitor_browser).context
            students = _marked_browser()
            _renice_tree(students, students_niceness)
            _time_home(visitor, base, True)  # the server's first run of the home page imports the pages' modules
            idle = [(first, *timing) for first in (False, True) for _ in range(IDLE_HOME_LOADS)
                    if (timing := _time_home(visitor, base, first)) is not None]
            for i in range(sessions):
                page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
                page.set_default_timeout(60_000)
                page.goto(f"{base}/Playground?{urlencode({**SMALL, 'seed': i + 1})}")
                pages.append(page)
            for page in pages:
                _wait_script_done(page, 240)
            _renice_tree(students, students_niceness)  # the renderers started since
            cpu_before = _cpu_by_part(server.process.pid, students)
            cluster_before = _cpu_seconds([pid for node in node_pids for pid in common.process_tree(node)])
            started = time.monotonic()
            for page in pages:
                page.get_by_role("button", name="Train", exact=True).click()
            done: dict[int, str] = {}
            next_home = time.monotonic()
            while len(done) < sessions and time.monotonic() - started < timeout:
                peak_mb = max(peak_mb, _tree_rss_mb(server.process.pid))
                for i, page in enumerate(pages):
                    if i not in done and (value := _metric(page, "Test accuracy")):
                        done[i] = value
                if time.monotonic() >= next_home:  # the home page, loaded by someone else meanwhile
                    first_visit = len(home_loads) % 2 == 1  # alternately a returning and a first visit
                    timing = _time_home(visitor, base, first_visit)
                    if timing is None:
                        home_failures += 1
                    else:
                        home_loads.append((first_visit, *timing))
                    next_home = time.monotonic() + HOME_INTERVAL_S
                time.sleep(1.0)
            elapsed = time.monotonic() - started
            cpu = {name: round(seconds - cpu_before[name]) for name, seconds in _cpu_by_part(server.process.pid, students).items()}
            # (processes that ended meanwhile are not counted: an estimate from below)
            cpu["cluster"] = round(_cpu_seconds([pid for node in node_pids for pid in common.process_tree(node)]) - cluster_before)
            exceptions = sum(p.locator('[data-testid="stException"]').count() for p in pages)
            browser.close()
            visitor_browser.close()
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
            "home_loads": len(home_loads), "home_not_loaded_in_60s": home_failures,
            "home_returning_median_s": _median(home_loads, False, 1), "home_first_visit_median_s": _median(home_loads, True, 1),
            "home_max_s": round(max((t[1] for t in home_loads), default=float("nan")), 2),
            "home_under_2s": sum(t[1] < 2.0 for t in home_loads),
            "home_script_median_s": round(common.median([t[2] for t in home_loads]), 2),
            "home_script_max_s": round(max((t[2] for t in home_loads), default=float("nan")), 2),
            "idle_home_returning_median_s": _median(idle, False, 1), "idle_home_first_visit_median_s": _median(idle, True, 1),
            "peak_server_tree_mb": round(peak_mb), "server_alive": server.process.poll() is None,
            "students_niceness": students_niceness, "cpu_s_server": cpu["server"], "cpu_s_workers": cpu["workers"],
            "cpu_s_students_browser": cpu["students_browser"], "cpu_s_cluster_nodes": cpu["cluster"],
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--max-concurrent", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--students-niceness", type=int, default=0,
                        help="CPU niceness of the students' browser (0 = the same priority as the server; 19 = the lowest)")
    parser.add_argument("--engine", choices=("ray", "processes"), default="ray")
    parser.add_argument("--cluster", action="store_true", help="train on a two-node Ray cluster on 127.0.0.1")
    args = parser.parse_args()
    result = run(args.sessions, args.max_concurrent, args.timeout, args.students_niceness, args.engine, args.cluster)
    print(common.table(list(result), [list(result.values())]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
