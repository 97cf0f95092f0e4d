"""The Playground in Chromium against a real `streamlit run`: live training, and two users at once."""

import re

import pytest
from browser_helpers import chart_points, chart_traces, screenshot, wait_for_app, wait_until

from playground.runs.store import RunStore
from playground.ui.home import page_files, page_title

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a server, a browser and real trainings

SMALL = {"dataset": "shapes", "sample_size": 300, "filters": "4,8", "epochs": 2, "batch_size": 16, "dense_units": 16}
TRAINING = 240  # seconds; generous, the machine may be busy with other tests
FIRST_LOAD = 180  # the server's first Playground imports TensorFlow to build the layer table
EXCEPTION = '[data-testid="stException"]'


def button(page, label):
    return page.get_by_role("button", name=label, exact=True)


def metric_value(page, label: str) -> str | None:
    """The value of the st.metric labelled `label`, or None when it is not shown."""
    for text in page.locator('[data-testid="stMetric"]').all_inner_texts():
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines and lines[0] == label:
            return lines[-1]
    return None


def test_train_shows_live_curves_feature_maps_and_test_accuracy(app_server, page):
    page.goto(app_server.url("Playground", **SMALL))
    wait_for_app(page, FIRST_LOAD)
    # The layer table of the untrained network (the grid itself is a canvas; its caption is text).
    assert page.get_by_text(re.compile(r"Input 28 × 28 × 1 · 5 classes · [\d,]+ parameters")).count()
    assert re.search(r"[?&]filters=4%2C8", page.url) and "epochs=2" in page.url  # the spec stays in the URL

    # Step: one epoch, then a pause; the curves and feature maps are already there.
    button(page, "Step").click()
    wait_until(lambda: page.get_by_text("Paused after epoch 1").count(), TRAINING, "Step did not pause after epoch 1.")
    wait_for_app(page)  # a paused page stops refreshing
    wait_until(lambda: sum(chart_points(page)) > 0, 10, "The live charts got no points.")
    loss_during = chart_traces(page)[0]
    assert loss_during["train"] == loss_during["validation"] == 1 and loss_during["train (batches)"] > 0
    assert metric_value(page, "Epoch") == "1 / 2"
    assert page.get_by_text("feature maps after epoch 1").count() >= 1

    # Train resumes the same run: the curves go on and the test accuracy appears.
    button(page, "Train").click()
    wait_until(lambda: metric_value(page, "Test accuracy"), TRAINING, "No test accuracy after training.")
    wait_for_app(page)
    accuracy = metric_value(page, "Test accuracy")
    assert re.fullmatch(r"\d+\.\d%", accuracy)
    assert metric_value(page, "Epoch") == "2 / 2"
    loss = chart_traces(page)[0]
    assert loss["train"] == loss["validation"] == 2  # the same curves, one epoch longer
    assert loss["train (batches)"] > loss_during["train (batches)"]
    assert page.locator(EXCEPTION).count() == 0
    for other in page_files():  # links to the other pages that exist
        if other.name != "1_Playground.py":
            assert page.get_by_role("link", name=page_title(other)).count() >= 1, other.name
    screenshot(page, "playground")


def test_two_users_training_at_once_each_see_only_their_own_run(app_server, new_page):
    first, second = new_page(), new_page()
    first.goto(app_server.url("Playground", **{**SMALL, "epochs": 2, "seed": 1}))
    second.goto(app_server.url("Playground", **{**SMALL, "epochs": 3, "seed": 2}))
    for page in (first, second):
        wait_for_app(page, FIRST_LOAD)
    before = {r.run_id for r in RunStore(app_server.runs_dir).list_runs()}
    button(first, "Train").click()
    button(second, "Train").click()

    for page in (first, second):
        wait_until(lambda: metric_value(page, "Test accuracy"), TRAINING, "A user's run did not finish.")
    assert metric_value(first, "Epoch") == "2 / 2" and metric_value(second, "Epoch") == "3 / 3"

    new = [r for r in RunStore(app_server.runs_dir).list_runs() if r.run_id not in before]
    assert sorted(r.metrics["epochs_completed"] for r in new) == [2, 3]
    assert len({r.owner for r in new}) == 2  # one run per browser session
    for page, epochs in ((first, 2), (second, 3)):
        run = next(r for r in new if r.metrics["epochs_completed"] == epochs)
        assert metric_value(page, "Test accuracy") == f"{run.metrics['test_accuracy']:.1%}"
        assert page.locator(EXCEPTION).count() == 0
