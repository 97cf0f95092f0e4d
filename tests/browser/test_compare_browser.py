"""Compare runs and the class challenge in Chromium against a real `streamlit run`.

Runs are saved into the server's runs folder by the test (as the command line
would), which is independent of how the Playground page trains.
"""

import pytest
from browser_helpers import screenshot, wait_for_app, wait_until

from playground.data import datasets
from playground.training import loop as training
from playground.runs.leaderboard import CHALLENGE_FOLDER, Challenge, ChallengeBoard
from playground.runs.store import RunStore
from playground.spec.experiment import ExperimentSpec

pytestmark = pytest.mark.browser

EXCEPTION = '[data-testid="stException"]'
TRACE_NAMES = """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
    .map(el => (el.data || []).map(t => t.name))"""


@pytest.fixture
def two_runs(app_server):
    """Two tiny shapes runs (different learning rates) saved where the server reads runs, as the CLI would."""
    store = RunStore(app_server.runs_dir)
    saved = []
    for name, lr in (("browser run A", 0.001), ("browser run B", 0.003)):
        spec = ExperimentSpec().with_values(dataset="shapes", sample_size=200, filters="4,8", dense_units="16",
                                            epochs=2, batch_size=32, learning_rate=lr)
        data = datasets.load_for_spec(spec)
        saved.append(store.save(training.train(spec, data), spec, data, name=name))
    return saved


@pytest.mark.slow  # trains two tiny runs and evaluates them in the server: tens of seconds
def test_compare_overlays_two_runs_and_ensembles_them(app_server, new_page, two_runs):
    page = new_page(height=2200)  # Streamlit scrolls inside the page: a tall window shows it all at once
    page.goto(app_server.url("Compare_runs"))
    page.get_by_role("heading", name="Compare runs").wait_for(timeout=120_000)
    wait_for_app(page, 120)
    # The two newest runs are chosen by default; their curves share one chart.
    traces = wait_until(
        lambda: [names for names in page.evaluate(TRACE_NAMES) if {"browser run A", "browser run B"} <= set(names)],
        60, "The overlay chart never showed both runs.",
    )
    # One validation and one training curve per run, for loss and for accuracy.
    assert traces[0].count("browser run A") == 4 and traces[0].count("browser run B") == 4
    assert page.get_by_text("learning_rate", exact=True).count() >= 1  # the column of the one field that differs

    page.get_by_role("button", name="Evaluate the ensemble").click()
    page.get_by_text("Ensemble test accuracy").wait_for(timeout=120_000)
    wait_for_app(page, 120)
    assert page.locator(EXCEPTION).count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    screenshot(page, "compare_runs")


def test_challenge_board_updates_live_for_every_session(app_server, new_page):
    board = ChallengeBoard(app_server.runs_dir / CHALLENGE_FOLDER)  # the real scorer: accuracy measured here
    board.set_challenge(Challenge("shapes", 0.2, 10_000, "Live board test"))
    before = len(board.entries())
    # A student elsewhere trained a tiny shapes run, saved where the server reads runs.
    spec = ExperimentSpec().with_values(dataset="shapes", sample_size=200, filters="4,8", dense_units="16",
                                        epochs=1, batch_size=32)
    data = datasets.load_for_spec(spec)
    record = RunStore(app_server.runs_dir).save(training.train(spec, data), spec, data, name="live",
                                                owner="another-session")
    watchers = [new_page(height=1200), new_page(height=1200)]
    for page in watchers:
        page.goto(app_server.url("Class_challenge"))
        page.get_by_text(f"Leaderboard ({before})").wait_for(timeout=120_000)
    board.submit(record, "Live Student", "another-session")  # as the page would, through the board
    for page in watchers:  # no reload: the board's fragment polls the file
        page.get_by_text(f"Leaderboard ({before + 1})").wait_for(timeout=30_000)
        page.get_by_text("Live Student").first.wait_for(state="attached", timeout=10_000)  # a data-grid cell (drawn on a canvas)
        assert page.locator(EXCEPTION).count() == 0
    screenshot(watchers[0], "class_challenge")
