"""Helpers for browser tests: wait for Streamlit, read Plotly charts, save screenshots.

Screenshots go to `test-artifacts/` (git-ignored); `keep_copy` puts a good one
into the repository (e.g. docs/ for the README).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


def wait_for_app(page, timeout: float = 60.0) -> None:
    """Wait until the page shows the app and Streamlit has finished running the script."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count()
        if not running and page.locator('[data-testid="stMain"]').count():
            return
        time.sleep(0.2)
    raise AssertionError("The app was still running its script after the timeout.")


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot as test-artifacts/<name>.png and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def keep_copy(path: Path, target: Path) -> None:
    """Copy a screenshot into the repository (e.g. docs/) for the README."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)


def chart_points(page) -> list[int]:
    """Number of data points in each Plotly chart on the page, in page order."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(
               el => (el.data || []).reduce((n, t) => n + ((t.x && t.x.length) || 0), 0))"""
    )


def wait_until(condition, timeout: float, message: str, interval: float = 0.25):
    """Poll `condition()` until it returns something truthy; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(message)
