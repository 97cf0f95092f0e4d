"""Browser-test fixtures: a real `streamlit run` server and a real Chromium, for every page's tests.

    @pytest.mark.browser
    def test_something(app_server, page):
        page.goto(app_server.url("Playground", dataset="shapes", epochs=2))
        wait_for_app(page)
        ...

`app_server` (session scope) starts `streamlit run streamlit_app.py` on a free
port with its own runs and data folders (`app_server.runs_dir`,
`app_server.data_dir`) and waits for /_stcore/health. `browser` (session
scope) is Debian's Chromium driven by Playwright's sync API; `page` is a fresh
page in a fresh context (its own browser session) per test, and
`new_page()` opens more, for tests that need several users at once.
Helpers for the tests themselves live in `browser_helpers.py` (imported as
`from browser_helpers import wait_for_app, screenshot, ...`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 90  # a cold server imports Streamlit; TensorFlow loads in the background


@dataclass(frozen=True)
class AppServer:
    """A running Streamlit server."""

    base_url: str  # e.g. "http://localhost:8765"
    runs_dir: Path
    data_dir: Path
    process: subprocess.Popen
    log: Path  # the server's stdout and stderr

    def url(self, page: str = "", **params: object) -> str:
        """The address of a page ("" = home, "Playground", "Architecture", ...) with query parameters."""
        query = f"?{urlencode({k: str(v) for k, v in params.items()})}" if params else ""
        return f"{self.base_url}/{page}{query}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def app_server(tmp_path_factory) -> AppServer:
    """`streamlit run streamlit_app.py` on a free port, with temporary runs and data folders."""
    root = tmp_path_factory.mktemp("app_server")
    port = _free_port()
    env = {
        **os.environ,
        "PLAYGROUND_RUNS_DIR": str(root / "runs"),
        "PLAYGROUND_DATA_DIR": str(root / "data"),
        "PLAYGROUND_MAX_CONCURRENT": os.environ.get("PLAYGROUND_TEST_MAX_CONCURRENT", "2"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    log = root / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
             "--server.port", str(port), "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    server = AppServer(f"http://localhost:{port}", root / "runs", root / "data", process, log)
    deadline = time.monotonic() + STARTUP_SECONDS
    while not _healthy(server.base_url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"streamlit run did not come up on port {port}:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.3)
    yield server
    # Ctrl+C, as a user would stop it: the app shuts its training workers down on exit.
    process.send_signal(signal.SIGINT)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium through Playwright (it cannot download its own browser here)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Browser tests need Chromium at {CHROMIUM}: install it with `apt-get install -y chromium`.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser):
    """A factory of pages, each in its own context (its own Streamlit session); all closed after the test."""
    contexts = []

    def make(width: int = 1400, height: int = 1000):
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    """One fresh browser page."""
    return new_page()


SERVER_LOG_LINES = 60  # the end of the server's log shown under a failed browser test


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed browser test shows the end of the server's log next to its traceback (CI keeps nothing else)."""
    outcome = yield
    report = outcome.get_result()
    server = getattr(item, "funcargs", {}).get("app_server")
    if report.when == "call" and report.failed and isinstance(server, AppServer):
        lines = server.log.read_text(errors="replace").splitlines()[-SERVER_LOG_LINES:]
        report.sections.append(("the server's log (its last lines)", "\n".join(lines)))
