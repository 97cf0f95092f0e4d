"""The Playground in Chromium against a real `streamlit run`: live training, the living network, two users at once."""

import io
import re
import time

import numpy as np
import pytest
from browser_helpers import chart_points, chart_traces, screenshot, wait_for_app, wait_until
from PIL import Image

from playground.runs.store import RunStore
from playground.training.events import Column
from playground.ui.home import page_files, page_title
from playground.ui.network_diagram import network_layout
from playground.ui.network_panel import DIAGRAM_WIDTH

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
    assert page.get_by_text("The network after epoch 1").count() >= 1

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


# Long enough (a few seconds an epoch) for several refreshes of the diagram within each epoch.
LIVING = {"dataset": "shapes", "sample_size": 5000, "filters": "4,8", "epochs": 4, "batch_size": 8, "dense_units": 16}


def address(page) -> str:
    """The page's address as the browser has it now (`page.url` changes only when Playwright hears of it)."""
    return page.evaluate("location.href")


def image_element(page, caption: str):
    """The st.image whose caption contains `caption`."""
    return page.locator('[data-testid="stImage"]').filter(has_text=caption).first


def pixels(element) -> np.ndarray:
    """A screenshot of `element` as uint8 (h, w, 3)."""
    return np.asarray(Image.open(io.BytesIO(element.screenshot())).convert("RGB"))


def first_block(diagram: np.ndarray) -> np.ndarray:
    """The part of a screenshot of LIVING's diagram where block1's feature maps are drawn."""
    shapes = [("input", "input", (28, 28, 1), 1), ("block1", "conv", (28, 28, 4), 4), ("block2", "conv", (14, 14, 8), 8),
              ("dense1", "dense", (16,), 16), ("output", "output", (5,), 5)]
    columns = [Column(name, kind, np.zeros(0, np.uint8), n, tuple(range(n)), shape) for name, kind, shape, n in shapes]
    width, _, boxes = network_layout(columns, DIAGRAM_WIDTH)
    tiles = np.array(boxes[1].tiles)
    scale = diagram.shape[1] / width  # the picture is shown stretched to the page
    x0, y0 = (tiles[:, :2].min(axis=0) * scale).astype(int)
    x1, y1 = (tiles[:, 2:].max(axis=0) * scale).astype(int)
    return diagram[y0:y1, x0:x1]


def differ(a: np.ndarray, b: np.ndarray) -> bool:
    """Two screenshots of the same element differ beyond a pixel of anti-aliasing."""
    return a.shape != b.shape or np.abs(a.astype(int) - b.astype(int)).max() > 40


def test_the_living_network_changes_as_it_trains_and_replays_its_epochs(app_server, page):
    page.goto(app_server.url("Playground", **LIVING))
    wait_for_app(page, FIRST_LOAD)
    diagram = image_element(page, "The network")
    assert "untrained" in diagram.inner_text()  # drawn before training, from the untrained network
    button(page, "Train").click()
    wait_until(lambda: page.get_by_text(re.compile(r"Training: epoch")).count(), TRAINING, "Training did not start.")

    # While it trains: block1's maps change from one refresh to the next, and the mosaic's borders between epochs.
    blocks, mosaics = [], {}
    deadline = time.monotonic() + TRAINING
    while time.monotonic() < deadline and not metric_value(page, "Test accuracy"):
        try:
            blocks.append(first_block(pixels(image_element(page, "The network live"))))
            mosaic = image_element(page, " right ")
            epoch = re.search(r"right (before training|after epoch \d+)", mosaic.inner_text(timeout=1000)).group(1)
            mosaics.setdefault(epoch, pixels(mosaic))
        except Exception:  # the page replaced the element while we looked: look again
            pass
        time.sleep(0.3)
    assert len(blocks) >= 2, "No live refreshes of the diagram were seen."
    assert any(differ(a, b) for a, b in zip(blocks, blocks[1:])), "block1's feature maps never changed while training."
    assert len(mosaics) >= 2, f"The decision picture was seen at too few epochs: {list(mosaics)}"
    seen = list(mosaics.values())
    assert differ(seen[0], seen[-1]), f"The mosaic's borders did not change between {list(mosaics)}"

    # After training: the replay slider shows epoch 1 otherwise than the last epoch.
    wait_until(lambda: metric_value(page, "Test accuracy"), TRAINING, "No test accuracy after training.")
    wait_for_app(page)
    last = pixels(image_element(page, f"The network after epoch {LIVING['epochs']}"))
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="Replay the epochs").get_by_role("slider")
    slider.focus()
    page.keyboard.press("Home")  # before training
    page.keyboard.press("ArrowRight")  # epoch 1
    wait_until(lambda: image_element(page, "The network after epoch 1").count(), 30, "The replay did not show epoch 1.")
    wait_for_app(page)
    replayed = pixels(image_element(page, "The network after epoch 1"))
    assert differ(first_block(replayed), first_block(last))
    assert page.get_by_text(re.compile(r"right after epoch 1 ")).count() == 1  # the mosaic replays with it
    assert page.locator(EXCEPTION).count() == 0


def test_the_diagrams_buttons_edit_the_network(app_server, page):
    page.goto(app_server.url("Playground", **SMALL))
    wait_for_app(page, FIRST_LOAD)
    assert page.get_by_text(re.compile(r"Input 28 × 28 × 1 · 5 classes")).count()
    button(page, "+ block").click()  # the page follows: sidebar, link and layer table
    wait_until(lambda: re.search(r"conv_blocks=3&filters=4%2C8%2C16&", address(page)), 30,
               "The link did not follow the new block.")
    wait_for_app(page)
    blocks = page.locator('[data-testid="stSlider"]').filter(has_text="Conv blocks")
    assert blocks.locator('[data-testid="stSliderThumbValue"]').inner_text() == "3"  # the sidebar's slider moved too
    for blocks in (2, 1, 0):
        button(page, "− block").click()
        wait_until(lambda: f"conv_blocks={blocks}&" in address(page), 30, f"No block went ({blocks + 1} left).")
        wait_for_app(page)
    button(page, "− block").click()  # one too many: explained, nothing changes
    wait_until(lambda: page.get_by_text(re.compile("must be between 0 and 8")).count(), 30, "No explanation.")
    assert "conv_blocks=0" in address(page) and page.locator(EXCEPTION).count() == 0


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
