"""The Architecture, Activations and Preprocessing pages in Chromium after a tiny training.

A real tiny run is trained in this process (shapes, 200 images, `tests/tiny_runs.py`)
and saved into the server's runs folder; each page is then opened as a user would, must draw its
Plotly charts without any exception element, and is saved as a screenshot in
test-artifacts/.
"""

import statistics
import time

import numpy as np
import pytest
from browser_helpers import ARTIFACTS, screenshot, wait_for_app, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a server, a browser and a training: about a minute

EXCEPTION = '[data-testid="stException"]'


@pytest.fixture(scope="module")
def trained(app_server):
    """One tiny run (shapes, 200 images, filters 4 and 8) saved where the server looks for runs."""
    import tiny_runs
    from playground.runs.store import RunStore

    spec, data, result = tiny_runs.trained("shapes")
    return RunStore(app_server.runs_dir).save(result, spec, data, name="browser tiny run")


def _charts_drawn(page, timeout=90.0) -> float:
    """Wait until every Plotly chart on the page is drawn; return the seconds it took."""
    start = time.monotonic()
    wait_until(
        lambda: page.locator(".js-plotly-plot").count() > 0
        and page.locator('[data-testid="stSkeleton"]').count() == 0
        and page.locator('[data-testid="stPlotlyChart"]').count() == page.locator(".js-plotly-plot").count(),
        timeout, "The page's Plotly charts were not drawn.",
    )
    return time.monotonic() - start


def _open(page, app_server, name, **params):
    page.goto(app_server.url(name, **params))
    wait_for_app(page, timeout=120)
    seconds = _charts_drawn(page)
    assert page.locator(EXCEPTION).count() == 0, page.locator(EXCEPTION).first.inner_text()
    return seconds


@pytest.fixture
def page(new_page):
    """A tall page, so that the screenshots show whole pages (Streamlit scrolls inside its main area)."""
    tall = new_page(1400, 3200)
    tall.set_default_timeout(90_000)  # a tall page of charts on a busy 2-core machine can take a while
    return tall


def test_architecture_page(app_server, trained, page):
    _open(page, app_server, "Architecture")
    assert page.get_by_text("browser tiny run").count() > 0
    assert page.get_by_text("Download the Keras code").count() == 1
    screenshot(page, "inspect_architecture")
    # The explainer: SAME padding with stride 2 on the 5x5 image pads the odd pixel after.
    page.get_by_text("SAME", exact=True).first.click()
    wait_for_app(page)
    page.get_by_role("slider", name="Stride S").focus()
    page.keyboard.press("ArrowRight")
    wait_for_app(page)
    wait_until(lambda: page.get_by_text("(5 + 2·1 − 3) / 2 + 1", exact=False).count() > 0, 30,
               "The output-size formula did not follow SAME padding and stride 2.")
    _charts_drawn(page)
    assert page.locator(EXCEPTION).count() == 0
    screenshot(page, "inspect_architecture_same_stride2")


def test_activations_page(app_server, trained, page):
    seconds = _open(page, app_server, "Activations")
    assert page.get_by_text("The network says").count() == 1
    assert page.get_by_text("ReLU set").count() >= 1
    # Two grids per conv layer, filters before/after, image, probabilities and three heatmaps.
    assert page.locator(".js-plotly-plot").count() >= 11
    print(f"Activations: charts drawn {seconds:.2f} s after the script finished")
    screenshot(page, "inspect_activations")
    page.get_by_role("button", name="Random image").click()
    wait_until(lambda: page.get_by_label("Test image (0 to 999)").input_value() != "0", 60,
               "Random image did not pick another test image.")
    wait_for_app(page)
    _charts_drawn(page)
    assert page.locator(EXCEPTION).count() == 0


def test_activations_page_untrained(app_server, trained, page):
    _open(page, app_server, "Activations", dataset="shapes", filters="4,8")
    page.get_by_text("The Playground's settings (untrained)").click()
    wait_for_app(page, timeout=120)
    _charts_drawn(page)
    assert page.locator(EXCEPTION).count() == 0
    assert page.get_by_text("Untrained network").count() == 1
    screenshot(page, "inspect_activations_untrained")


def test_preprocessing_page(app_server, trained, page):
    _open(page, app_server, "Preprocessing")
    assert page.get_by_text("Every augmentation is off").count() == 1
    page.get_by_label("Random horizontal flip").check(force=True)
    wait_until(lambda: page.get_by_text("Every augmentation is off").count() == 0, 60,
               "Switching the flip on did not rerun the augmentations.")
    wait_for_app(page)
    _charts_drawn(page)
    assert page.locator(EXCEPTION).count() == 0
    screenshot(page, "inspect_preprocessing")


def test_sixty_four_feature_maps_draw_in_well_under_a_second(browser, tmp_path):
    """Plotly.js (the one plotly.py ships) draws the 64-map grid figure in Chromium; the median of 5 draws is timed."""
    import plotly.offline

    from playground.analysis import figures

    maps = np.random.default_rng(0).normal(size=(28, 28, 64)).astype(np.float32)
    figures.feature_map_grid(maps[:, :, :2]).to_json()  # Plotly loads its validators on first use
    start = time.perf_counter()
    payload = figures.feature_map_grid(maps, title="64 maps").to_json()
    built = time.perf_counter() - start
    html = tmp_path / "plotly.html"
    html.write_text("<html><head><meta charset='utf-8'><script>" + plotly.offline.get_plotlyjs()
                    + "</script></head><body><div id='grid' style='width:700px'></div></body></html>")
    page = browser.new_page()
    page.goto(html.as_uri())
    times = page.evaluate(
        """async (text) => {
            const figure = JSON.parse(text), out = [];
            for (let i = 0; i < 5; i++) {
                const t0 = performance.now();
                await Plotly.newPlot('grid', figure.data, figure.layout);
                out.push(performance.now() - t0);
            }
            return out;
        }""",
        payload,
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "inspect_64_maps.png"))
    page.close()
    median = statistics.median(times) / 1000
    print(f"64 maps: figure built and serialised in {built * 1000:.0f} ms ({len(payload) / 1e3:.0f} kB); "
          f"Plotly.newPlot {', '.join(f'{t:.0f}' for t in times)} ms")
    assert median < 1.0, f"drawing 64 feature maps took {median:.2f} s (median of 5)"
