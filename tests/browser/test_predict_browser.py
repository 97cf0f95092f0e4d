"""The Predict and Your data pages in Chromium: real uploads, a drawn digit, the link to train.

Screenshots: test-artifacts/predict_upload.png, predict_drawing.png, your_data.png.
"""

from __future__ import annotations

import io
import re
import time
import zipfile
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from browser_helpers import screenshot, wait_for_app, wait_until
from PIL import Image, ImageDraw

from playground.model.network import build_model
from playground.runs.store import RunStore
from playground.spec.presets import preset_spec
from playground.training.loop import TrainResult

pytestmark = pytest.mark.browser
RUN_NAME = "predict page browser test"
CLASSES = ("circle", "square", "triangle", "cross", "ring")


@pytest.fixture(scope="module")
def shapes_run(app_server):
    """A small network on the shapes dataset's shape, saved where the server looks for runs."""
    spec = preset_spec("default", "shapes").with_values(filters="8,16", dense_units="32")
    model = build_model(spec, (28, 28, 1), len(CLASSES))
    result = TrainResult(model=model, history={"loss": [1.0]}, test_loss=1.0, test_accuracy=0.5, epochs_completed=1,
                         train_seconds=1.0, images_per_second=10.0, stop_reason="completed", message="",
                         params=model.count_params(), initial_first_conv=None)
    info = {"name": "shapes", "class_names": CLASSES, "input_shape": (28, 28, 1)}
    return RunStore(app_server.runs_dir).save(result, spec, info, name=RUN_NAME)


def _open_predict(page, app_server):
    page.goto(app_server.url("Predict"))
    wait_for_app(page)
    picker = page.locator('[data-testid="stSelectbox"]').first
    picker.click()
    page.locator('[role="option"]', has_text=RUN_NAME).first.click()
    time.sleep(0.5)
    wait_for_app(page)
    assert page.locator('input[aria-label="Run"]').input_value().startswith(RUN_NAME)
    page.get_by_text(f"{RUN_NAME}: {len(CLASSES)} classes").wait_for()


def _drawn_ring(tmp_path) -> str:
    """A photo-like picture of a dark ring drawn on white paper, 600x600."""
    image = Image.new("RGB", (600, 600), (245, 242, 235))
    ImageDraw.Draw(image).ellipse((150, 140, 460, 450), outline=(20, 20, 30), width=40)
    path = tmp_path / "ring.jpg"
    image.save(path, quality=90)
    return str(path)


def test_upload_shows_probabilities_and_one_line_for_a_broken_file(page, app_server, shapes_run, tmp_path):
    _open_predict(page, app_server)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    page.locator('[data-testid="stFileUploader"] input[type=file]').first.set_input_files([_drawn_ring(tmp_path), str(broken)])
    page.wait_for_selector("text=ring.jpg →", timeout=60_000)
    wait_for_app(page)

    alerts = page.locator('[data-testid="stAlert"]').all_inner_texts()
    errors = [a for a in alerts if "broken.png" in a]
    assert len(errors) == 1, alerts
    (line,) = [part for part in errors[0].splitlines() if "broken.png" in part]
    assert line.startswith("broken.png: ") and "damaged" in line
    assert not page.locator('[data-testid="stException"]').count()
    # Probabilities of every class and the Grad-CAM overlay are drawn (Plotly loads lazily).
    wait_until(lambda: page.locator(".js-plotly-plot").count() >= 2, 30, "the probability and Grad-CAM charts never appeared")
    bars = page.evaluate("() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => (el.data || [])[0]?.y || [])")
    assert list(CLASSES) in [list(y) for y in bars]
    assert page.get_by_text("as the network sees it").count() == 1
    assert "inverted" in page.get_by_text("Server time").first.inner_text()
    screenshot(page, "predict_upload")


def test_drawn_digit_is_predicted(page, app_server, shapes_run):
    _open_predict(page, app_server)
    page.get_by_role("tab", name="Draw").click()
    canvas = page.locator('[data-testid="stTabPanel"]:visible canvas').last
    canvas.wait_for()
    box = canvas.bounding_box()
    # A square, drawn as a user would with the mouse.
    corners = [(70, 70), (210, 70), (210, 210), (70, 210), (70, 70)]
    page.mouse.move(box["x"] + corners[0][0], box["y"] + corners[0][1])
    page.mouse.down()
    for x, y in corners[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=10)
    page.mouse.up()
    page.wait_for_selector("text=drawing →", timeout=60_000)
    wait_for_app(page)
    headline = page.get_by_text("drawing →").inner_text()
    assert any(name in headline for name in CLASSES)
    wait_until(lambda: page.locator(".js-plotly-plot").count() >= 2, 30, "the charts for the drawing never appeared")
    screenshot(page, "predict_drawing")


def _class_zip() -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, colour in (("red", (200, 30, 30)), ("green", (30, 180, 40)), ("blue", (30, 40, 200))):
            for i in range(12):
                pixels = np.clip(np.array(colour) + rng.normal(0, 25, (20, 20, 3)), 0, 255).astype(np.uint8)
                out = io.BytesIO()
                Image.fromarray(pixels).save(out, format="PNG")
                zf.writestr(f"colours/{name}/{i:02d}.png", out.getvalue())
        zf.writestr("colours/notes.txt", "not a picture")
    return buffer.getvalue()


def test_your_data_upload_and_train_link(page, app_server, tmp_path):
    archive = tmp_path / "colours.zip"
    archive.write_bytes(_class_zip())
    page.goto(app_server.url("Your_data"))
    wait_for_app(page)
    page.locator('[data-testid="stFileUploader"] input[type=file]').first.set_input_files(str(archive))
    page.wait_for_selector("text=Train on this dataset", timeout=60_000)
    wait_for_app(page)
    metrics = dict(zip(page.locator('[data-testid="stMetricLabel"]').all_inner_texts(),
                       page.locator('[data-testid="stMetricValue"]').all_inner_texts()))
    assert metrics["Classes"] == "3" and metrics["Skipped files"] == "1"
    for name in ("red", "green", "blue"):
        assert page.get_by_text(name, exact=True).count() >= 1
    screenshot(page, "your_data")

    link = page.locator('a:has-text("Train on this dataset")')
    # The upload is kept in this browser session's own folder under the uploads folder.
    assert re.match(r"Playground\?dataset=[0-9a-f]{16}%2Fcolours-[0-9a-f]{12}\.npz&", link.get_attribute("href"))
    link.click()
    try:
        wait_until(lambda: "/Playground" in page.url, 30, "")
    except AssertionError:
        # On a busy machine a click that lands while the page is still settling is sometimes
        # dropped by the browser; a person would click again, if the link is still there (a slow
        # navigation may have replaced the page meanwhile).
        if "/Playground" not in page.url and link.count():
            link.click()
        wait_until(lambda: "/Playground" in page.url, 60, f"the link did not open the Playground: {page.url}")
    dataset = unquote(page.url).split("dataset=", 1)[1].split("&", 1)[0]
    assert Path(dataset).name.startswith("colours-"), page.url
    # The Playground takes the uploaded dataset: its dataset picker shows it (a cold Playground
    # imports TensorFlow and builds the layer table first, which takes a while on 2 busy cores).
    wait_until(lambda: page.evaluate(
        "() => Array.from(document.querySelectorAll('input[role=combobox]')).some(e => e.value.includes('colours-'))"
    ), 180, "the Playground's dataset picker never showed the uploaded dataset")
    screenshot(page, "your_data_to_playground")
