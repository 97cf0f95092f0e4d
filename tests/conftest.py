"""Shared pytest set-up: quiet TensorFlow, and runs/data folders inside each test's tmp dir."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYTHONHASHSEED", "0")

import pytest


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    """Each test saves runs and data under its own temporary folder, never in the checkout."""
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "data"))


def pytest_collection_modifyitems(config, items):
    """Browser tests get one retry: a real Chromium against a real server on a busy 2-core
    machine can miss a timing once. A real bug fails both tries."""
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=2))
