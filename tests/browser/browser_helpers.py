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


def script_state(page) -> str | None:
    """Streamlit's script state as the page shows it: "initial", "running", "notRunning", ..."""
    return page.locator('[data-testid="stApp"]').get_attribute("data-test-script-state")


def wait_for_app(page, timeout: float = 60.0) -> None:
    """Wait until the page shows the app and Streamlit has finished running the script.

    "Finished" means: the script is not running and no loading skeleton or
    spinner is shown, three times in a row 0.2 s apart.
    """
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        busy = (
            script_state(page) != "notRunning"
            or page.locator('[data-testid="stSkeleton"]').count()
            or page.locator('[data-testid="stSpinner"]').count()
        )
        quiet = 0 if busy else quiet + 1
        if quiet >= 3:
            return
        time.sleep(0.2)
    raise AssertionError(f"The app was still running its script after {timeout:g} s.")


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
    """Number of data points in each Plotly chart on the page, in page order (stale ones left out)."""
    return [sum(trace.values()) for trace in chart_traces(page)]


def chart_traces(page) -> list[dict[str, int]]:
    """{trace name: number of points} of each Plotly chart on the page, in page order.

    Charts Streamlit is about to replace (marked stale during a rerun) are left out.
    Plotly keeps NumPy data base64-encoded in `data`; `_fullData` has it decoded.
    """
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
               .filter(el => !el.closest('[data-stale="true"]'))
               .map(el => Object.fromEntries((el._fullData || []).map(
                   (t, i) => [t.name || String(i), (t.x && t.x.length) || 0])))"""
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
