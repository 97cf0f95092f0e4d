"""What a user waits for in the browser: cold start, page switches, and the first live point after Train.

    python -m benchmarks.bench_latency [--repeats 3] [--pages "Playground,Architecture,Decision quality"]

Each repeat starts a fresh `streamlit run streamlit_app.py` on a free port of
127.0.0.1 with temporary runs and data folders, and drives it with Playwright
and Debian's Chromium (/usr/bin/chromium, headless), one browser context (one
Streamlit session) per scenario:

1. Cold start: seconds from launching the server process until the home page
   ("CNN Playground") has finished its script in a fresh page: the server's
   "script finished" message has arrived, the page reads "notRunning" with no
   loading skeleton or spinner, and it stays so for half a second. When
   /_stcore/health first answers is reported too.
2. Cold Train: right after that, the Playground opened with a small spec in
   the URL (shapes, 1000 images, filters 8,16, 3 epochs, batch 64); as soon as
   its script is done, Train is clicked. Timed from the click as the page gets
   it (a capture-phase listener; Playwright first checks that the button is
   visible and stable, which a user's click does not wait for): the status line
   shows the job (click acknowledged); the first live point (whichever comes
   first of the two below); the first point drawn on the loss chart (for a
   new model, the untrained model's loss on the first batch, sent before the
   first training step compiles); the first trained batch (the "Images /
   second" metric shows a number); the first epoch point (the "Validation
   accuracy" metric shows a number or the loss chart's epoch curve has a
   point); the test accuracy shown (3 epochs done). The training workers were
   started by the home page seconds earlier and may still be importing
   TensorFlow.
3. Warm Train: the same in a new session of the same server, after a training
   has run in it.
4. Page switch: in that session (which has a trained model), from the home
   page to each of `--pages` by a click on the sidebar navigation until the
   page's script is done; each page twice (first visit, then a revisit), going
   back to Home by the sidebar in between (timed too).

A script run's start and finish are timestamped in the page as its messages
arrive from the server (a small hook on the WebSocket that reads the top level
of Streamlit's ForwardMsg protobufs) and as the page shows them (a
MutationObserver on the script state), so page loads and switches are timed to
the millisecond; the Train timings are polled every 0.1 s. Figures are medians
over the repeats, one fresh server each. Bounded: every wait has a timeout,
and every server is stopped (Ctrl+C, then killed with its workers) whatever
happens.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

from benchmarks import common

common.setup_path()

CHROMIUM = "/usr/bin/chromium"
SPEC = {"dataset": "shapes", "sample_size": 1000, "filters": "8,16", "conv_blocks": 2, "epochs": 3, "batch_size": 64}
PAGES = "Playground,Architecture,Decision quality"
QUIET_MS = 500  # the script must stay finished this long to count as done
POLL = 0.1

# Runs in every page before Streamlit's own code, and timestamps (Date.now(), ms):
# - window.__pgStates: each change of the script state Streamlit shows on stApp ("running", "notRunning", ...);
#   the old values of the mutation records keep states that came and went within one batch of mutations.
# - window.__pgClicks: every click the page receives (capture phase, before any handler).
# - window.__pgEvents: Streamlit's own messages about script runs, as the browser receives them from the
#   server: "start" (new_session), "running" / "idle" (session_status_changed) and "finished:N"
#   (script_finished; 0 = a full run finished, 2 = ended early for a rerun, 3 = a fragment run finished).
#   A fast script may start and finish without the stApp attribute ever changing, so these are what say
#   that a run took place. Only the top level of each ForwardMsg protobuf is read.
OBSERVER = """
(() => {
  window.__pgStates = [];
  window.__pgEvents = [];
  window.__pgClicks = [];
  document.addEventListener('click', () => window.__pgClicks.push(Date.now()), true);
  let last = null;
  const push = (now, state) => { if (state !== last) { window.__pgStates.push([now, state]); last = state; } };
  new MutationObserver(records => {
    const now = Date.now();
    for (const r of records) {
      if (r.type === 'attributes' && r.target.getAttribute('data-testid') === 'stApp') push(now, r.oldValue);
    }
    const app = document.querySelector('[data-testid="stApp"]');
    push(now, app ? app.getAttribute('data-test-script-state') : null);
  }).observe(document, {subtree: true, childList: true, attributes: true, attributeOldValue: true,
                        attributeFilter: ['data-test-script-state']});

  const varint = (b, i) => {
    let value = 0, scale = 1;
    for (;;) {
      const byte = b[i++];
      value += (byte & 0x7f) * scale;
      scale *= 128;
      if (byte < 0x80) return [value, i];
    }
  };
  const events = bytes => {  // top-level fields of a ForwardMsg
    const out = [];
    let i = 0;
    while (i < bytes.length) {
      let key, value;
      [key, i] = varint(bytes, i);
      const field = Math.floor(key / 8), wire = key % 8;
      if (wire === 0) {
        [value, i] = varint(bytes, i);
        if (field === 6) out.push('finished:' + value);
      } else if (wire === 2) {
        [value, i] = varint(bytes, i);
        if (field === 4) out.push('start');
        if (field === 9) {  // SessionStatus: field 2 = script_is_running (absent = false)
          const inner = bytes.subarray(i, i + value);
          let running = false;
          for (let j = 0; j < inner.length;) {
            let k, v;
            [k, j] = varint(inner, j);
            [v, j] = varint(inner, j);
            if (k === 16) running = v !== 0;
          }
          out.push(running ? 'running' : 'idle');
        }
        i += value;
      } else if (wire === 1) { i += 8; } else if (wire === 5) { i += 4; } else { break; }
    }
    return out;
  };
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', e => {
        if (!(e.data instanceof ArrayBuffer)) return;
        const now = Date.now();
        try {
          for (const name of events(new Uint8Array(e.data))) window.__pgEvents.push([now, name]);
        } catch (err) { /* not a ForwardMsg */ }
      });
    }
  };
})();
"""

# The page as this benchmark needs it, in one round trip.
SNAPSHOT = """
() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const metrics = {};
  for (const m of document.querySelectorAll('[data-testid="stMetric"]')) {
    const label = m.querySelector('[data-testid="stMetricLabel"]');
    const value = m.querySelector('[data-testid="stMetricValue"]');
    if (label && value) metrics[label.innerText.trim()] = value.innerText.trim();
  }
  const charts = {};
  for (const el of document.querySelectorAll('.js-plotly-plot')) {
    const title = el.layout && el.layout.title;
    // Streamlit's theme wraps the title in <b>...</b>; a chart being replaced and its successor may both be there.
    const name = (typeof title === 'string' ? title : (title && title.text) || '').replace(/<[^>]*>/g, '');
    // Plotly keeps NumPy arrays base64-encoded in `data`; `_fullData` has them decoded.
    const chart = charts[name] = charts[name] || {};
    (el._fullData || []).forEach((t, i) => {
      const key = t.name || String(i);
      chart[key] = Math.max(chart[key] || 0, (t.x && t.x.length) || 0);
    });
  }
  const statuses = Array.from(document.querySelectorAll('[data-testid="stMarkdown"] strong'))
    .map(s => s.innerText.trim())
    .filter(s => /^(Starting|Training|Queued|Done|Stopping|Paused)\\b/.test(s));
  return {
    state: app ? app.getAttribute('data-test-script-state') : null,
    busy: document.querySelectorAll('[data-testid="stSkeleton"], [data-testid="stSpinner"]').length,
    path: location.pathname,
    title: Array.from(document.querySelectorAll('h1')).map(h => h.innerText.trim()),
    exceptions: document.querySelectorAll('[data-testid="stException"]').length,
    states: window.__pgStates || [],
    events: window.__pgEvents || [],
    now: Date.now(),
    metrics, charts, statuses,
  };
}
"""


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (tells a process from a later one with its pid)."""
    fields = common.proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def _descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, start time) of every descendant of `pid`, read from /proc."""
    return [(child, started) for child in common.process_tree(pid)[1:] if (started := _start_time(child)) is not None]


class Server:
    """`streamlit run streamlit_app.py` on a free loopback port, with its own temporary folders."""

    def __init__(self, root: Path, settings: dict[str, str] | None = None):
        """Launch it; `settings` are extra PLAYGROUND_* environment variables."""
        self.port = common.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PLAYGROUND_RUNS_DIR": str(root / "runs"), "PLAYGROUND_DATA_DIR": str(root / "data"),
               "TF_CPP_MIN_LOG_LEVEL": "2", **(settings or {})}
        self.launched = time.time()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=common.ROOT, env=env, stdout=open(root / "server.log", "wb"), stderr=subprocess.STDOUT,
        )

    def wait_healthy(self, timeout: float = 120) -> float:
        """Seconds from launch until /_stcore/health answers."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.base}/_stcore/health", timeout=2)
                return time.time() - self.launched
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"the server did not start within {timeout:g} s")
                time.sleep(0.05)

    def stop(self) -> None:
        """Ctrl+C as a user would (the app stops its workers); kill what is left of its process tree after that."""
        tree = _descendants(self.process.pid)
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        for pid, started in tree:  # only the very processes this server started, still running
            if _start_time(pid) == started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


def _snapshot(page) -> dict:
    return page.evaluate(SNAPSHOT)


def wait_done(page, since_ms: float, timeout: float, path: str | None = None, title: str | None = None) -> float:
    """Wait until a run of the page's script after `since_ms` has finished; return when it finished (epoch ms).

    Done: since `since_ms` the browser has received a script run's start and,
    as the last word on full runs, its successful finish (fragment runs aside);
    the page shows the script as "notRunning" with no skeleton or spinner; the
    address is `path` and an h1 reads `title` (when given); and all of that for
    QUIET_MS. The time returned is the later of the finish message's arrival
    and the page's last change of its script state after `since_ms`.
    """
    deadline = time.monotonic() + timeout
    snap: dict = {}
    while time.monotonic() < deadline:
        snap = _snapshot(page)
        runs = [(ts, name) for ts, name in snap["events"] if ts >= since_ms and name != "finished:3"
                and (name == "start" or name.startswith("finished:"))]
        if runs and runs[-1][1] == "finished:0" and any(name == "start" for _, name in runs):
            done_ms = max([runs[-1][0]] + [ts for ts, _ in snap["states"] if ts >= since_ms])
            ready = (snap["state"] == "notRunning" and not snap["busy"]
                     and (path is None or snap["path"] == path) and (title is None or title in snap["title"]))
            if ready and snap["now"] - done_ms >= QUIET_MS:
                return done_ms
        time.sleep(0.05)
    seen = {k: snap.get(k) for k in ("state", "busy", "path", "title", "exceptions")}
    changes = [(round((ts - since_ms) / 1000, 2), state) for ts, state in snap.get("states", [])[-6:]]
    events = [(round((ts - since_ms) / 1000, 2), name) for ts, name in snap.get("events", [])[-8:]]
    raise TimeoutError(f"the page {path or ''} did not finish its script within {timeout:g} s: now {seen}; "
                       f"last script-state changes (s after start, state): {changes}; last run messages: {events}")


def new_page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(OBSERVER)
    page = context.new_page()
    page.set_default_timeout(60_000)
    return page


def cold_start(browser, server: Server) -> dict:
    """Launch -> health; launch -> the home page finished in a fresh page."""
    health = server.wait_healthy()
    page = new_page(browser)
    try:
        page.goto(server.base + "/", timeout=120_000)
        done_ms = wait_done(page, 0, 180, path="/", title="CNN Playground")
        return {"health_s": health, "home_s": done_ms / 1000 - server.launched}
    finally:
        page.context.close()


def train(page, server: Server, seed: int, timeout: float) -> dict:
    """Open the Playground with SPEC, click Train when it is done, and time what appears (seconds after the click)."""
    started = time.time()
    page.goto(f"{server.base}/Playground?{urlencode({**SPEC, 'seed': seed})}", timeout=120_000)
    opened = wait_done(page, started * 1000, 180, path="/Playground", title="CNN Playground") / 1000 - started
    button = page.get_by_role("button", name="Train", exact=True)
    button.wait_for(state="visible")
    requested = time.time()
    button.click()
    clicks = [t for t in page.evaluate("window.__pgClicks") if t >= requested * 1000 - 50]
    clicked = clicks[0] / 1000 if clicks else requested  # the page's own clock: the same machine
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and "done" not in seen:
        snap = _snapshot(page)
        now = time.time() - clicked
        loss = snap["charts"].get("Loss", {})
        metrics = snap["metrics"]
        marks = {
            "ack": bool(snap["statuses"]),  # the status line shows the job
            # Set by the first trained batch (the untrained model's point before the first step has no speed).
            "batch_metric": any(ch.isdigit() for ch in metrics.get("Images / second", "")),
            "epoch_metric": any(ch.isdigit() for ch in metrics.get("Validation accuracy", "")),
            "loss_batch": loss.get("train (batches)", 0) > 0,
            "loss_epoch": loss.get("train", 0) > 0,
            "done": "Test accuracy" in metrics,
        }
        for name, hit in marks.items():
            if hit and name not in seen:
                seen[name] = now
        if snap["exceptions"]:
            raise RuntimeError("the Playground shows an exception")
        time.sleep(POLL)
    if "done" not in seen:
        raise TimeoutError(f"the training did not finish within {timeout:g} s (seen: {seen})")

    def first(*names: str) -> float:
        return min((seen[n] for n in names if n in seen), default=float("nan"))

    return {
        "page_done_s": opened,
        "click_after_launch_s": clicked - server.launched,
        "ack": first("ack"),
        # Any live data: a point on the loss chart (for a new model the first one is the untrained
        # model's loss on the first batch, sent before the first step compiles) or the speed metric.
        "first_live_point": first("batch_metric", "epoch_metric", "loss_batch", "loss_epoch"),
        "first_loss_chart_point": first("loss_batch", "loss_epoch"),
        "first_trained_batch": first("batch_metric", "epoch_metric"),  # "Images / second" shows a number
        "first_epoch_point": first("epoch_metric", "loss_epoch"),
        "done": first("done"),
        "seen": seen,
    }


def page_switches(page, server: Server, titles: list[str]) -> dict[str, list[float]]:
    """From Home to each page by the sidebar and back, twice: {label: [seconds, ...]}."""
    out: dict[str, list[float]] = {}

    def go(path: str, label: str) -> None:
        link = page.locator(f'[data-testid="stSidebarNavLink"][href="{server.base}{path}"]')
        link.wait_for(state="visible", timeout=30_000)
        since = page.evaluate("Date.now()")
        link.click()
        done_ms = wait_done(page, since, 120, path=path)
        out.setdefault(label, []).append((done_ms - since) / 1000)

    go("/", "to Home (first)")
    for visit in ("first visit", "revisit"):
        for title in titles:
            go("/" + title.replace(" ", "_"), f"Home -> {title} ({visit})")
            go("/", "back to Home")
    return out


def run(repeats: int, titles: list[str], train_timeout: float) -> dict:
    from playwright.sync_api import sync_playwright

    samples: dict[str, list[float]] = {}

    def add(label: str, value: float) -> None:
        samples.setdefault(label, []).append(value)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            for i in range(repeats):
                root = Path(tempfile.mkdtemp(prefix="pg-latency-"))
                server = Server(root)
                try:
                    start = cold_start(browser, server)
                    add("cold start: server answers /health", start["health_s"])
                    add("cold start: home page done", start["home_s"])
                    for kind, seed in (("cold", 2 * i + 1), ("warm", 2 * i + 2)):
                        page = new_page(browser)
                        result = train(page, server, seed, train_timeout)
                        add(f"{kind} Train: Playground with the spec opened (page done)", result["page_done_s"])
                        if kind == "cold":
                            add("cold Train: clicked, s after server launch", result["click_after_launch_s"])
                        add(f"{kind} Train: click acknowledged (status line)", result["ack"])
                        add(f"{kind} Train: first live point (any data shown)", result["first_live_point"])
                        add(f"{kind} Train: first point drawn on the loss chart", result["first_loss_chart_point"])
                        add(f"{kind} Train: first trained batch (Images / second shown)", result["first_trained_batch"])
                        add(f"{kind} Train: first epoch point", result["first_epoch_point"])
                        add(f"{kind} Train: test accuracy shown (3 epochs done)", result["done"])
                        if kind == "cold":
                            page.context.close()
                    for label, values in page_switches(page, server, titles).items():
                        for value in values:
                            add(f"page switch: {label}", value)
                    page.context.close()
                except Exception:
                    log = (root / "server.log").read_text(errors="replace")[-2000:]
                    sys.stderr.write(f"server log (last 2000 chars):\n{log}\n")
                    raise
                finally:
                    server.stop()
                    shutil.rmtree(root, ignore_errors=True)
        finally:
            browser.close()
    def stats(values: list[float]) -> dict:
        finite = [v for v in values if v == v]  # NaN: never seen
        if not finite:
            return {"median": None, "min": None, "max": None, "n": 0}
        return {"median": round(common.median(finite), 3), "min": round(min(finite), 3), "max": round(max(finite), 3),
                "n": len(finite)}

    return {"repeats": repeats, "spec": SPEC, "cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
            "seconds": {label: stats(values) for label, values in samples.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="fresh servers (each: one cold and one warm Train)")
    parser.add_argument("--pages", default=PAGES, help="comma-separated page titles for the page-switch timings")
    parser.add_argument("--train-timeout", type=float, default=300, help="seconds a Train may take to finish")
    args = parser.parse_args()
    titles = [t.strip() for t in args.pages.split(",") if t.strip()]
    result = run(max(1, args.repeats), titles, args.train_timeout)
    rows = [[label, s["n"], *("–" if s[k] is None else s[k] for k in ("median", "min", "max"))]
            for label, s in result["seconds"].items()]
    print(common.table(["measurement", "n", "median s", "min s", "max s"], rows))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
