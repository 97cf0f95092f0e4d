"""Figures: grid tiling, colour scaling, the network diagram and the timing of a 64-map grid."""

import time
from types import SimpleNamespace

import numpy as np
import plotly.graph_objects as go
import pytest

from playground.analysis import figures as fg


def test_tile_maps_places_map_f_at_row_f_div_columns_and_column_f_mod_columns():
    h, w, count, columns, gap = 3, 4, 7, 3, 1
    maps = np.random.default_rng(0).normal(size=(h, w, count))
    grid = fg.tile_maps(maps, columns=columns, gap=gap)
    rows = 3
    assert grid.shape == (rows * (h + gap) - gap, columns * (w + gap) - gap)
    for f in range(count):
        r, c = divmod(f, columns)
        tile = grid[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w]
        np.testing.assert_allclose(tile, maps[:, :, f], rtol=1e-6)
    # Gaps and the two empty tiles at the end are NaN.
    assert np.isnan(grid[h, :]).all() and np.isnan(grid[:, w]).all()
    assert np.isnan(grid[2 * (h + gap):, 1 * (w + gap):]).all()
    assert np.isfinite(grid).sum() == h * w * count


def test_tile_maps_keeps_rgb_channels_and_default_grid_is_near_square():
    tiles = np.random.default_rng(1).uniform(size=(2, 2, 5, 3))
    grid = fg.tile_maps(tiles, gap=0)
    assert fg.grid_columns(5) == 3
    assert grid.shape == (4, 6, 3)
    np.testing.assert_allclose(grid[2:4, 2:4], tiles[:, :, 4], rtol=1e-6)
    with pytest.raises(fg.FigureError, match=r"Received: shape=\(2, 2\)"):
        fg.tile_maps(np.zeros((2, 2)))


def test_feature_map_grid_scales_each_map_by_its_largest_absolute_value():
    maps = np.stack([np.full((2, 2), 4.0), np.array([[-2.0, 1.0], [0.0, 0.5]])], axis=-1)  # (2, 2, 2)
    figure = fg.feature_map_grid(maps, columns=2)
    z = np.asarray(figure.data[0].z)
    np.testing.assert_allclose(z[:, :2], 1.0)
    np.testing.assert_allclose(z[:, 3:], [[-1.0, 0.5], [0.0, 0.25]])
    index = np.asarray(figure.data[0].customdata)[:, :, 0]
    assert index[0, 0] == 0 and index[0, 3] == 1 and index[0, 2] == -1


def test_map_scale_shares_one_scale_between_before_and_after_the_activation():
    before = np.array([[-3.0, 1.0], [0.5, -0.5]])[:, :, None]
    after = np.maximum(before, 0)
    scale = fg.map_scale(before, after)
    assert scale.tolist() == [3.0]
    z_after = np.asarray(fg.feature_map_grid(after, scale=scale).data[0].z)
    np.testing.assert_allclose(z_after, [[0.0, 1 / 3], [0.5 / 3, 0.0]], rtol=1e-6)
    assert fg.map_scale(np.zeros((2, 2, 1))).tolist() == [1.0]  # a dead map never divides by zero


def test_sixty_four_maps_render_as_one_trace_in_well_under_a_second():
    maps = np.random.default_rng(2).normal(size=(28, 28, 64)).astype(np.float32)
    fg.feature_map_grid(maps[:, :, :2]).to_json()  # Plotly loads its validators on first use
    start = time.perf_counter()
    figure = fg.feature_map_grid(maps, title="64 maps")
    payload = figure.to_json()  # what Streamlit sends to the browser
    seconds = time.perf_counter() - start
    assert len(figure.data) == 1
    assert seconds < 0.25, f"building and serialising 64 maps took {seconds:.3f} s"
    assert len(payload) < 700_000


def test_filter_grid_draws_rgb_filters_as_an_image_and_single_channel_as_a_heatmap():
    rng = np.random.default_rng(3)
    rgb = fg.filter_grid(rng.normal(size=(3, 3, 3, 8)))
    assert isinstance(rgb.data[0], go.Image)
    z = np.asarray(rgb.data[0].z)
    assert z.shape == (3 * 4 - 1, 3 * 4 - 1, 3)
    # Each filter is stretched over the full 0..255 range on its own.
    assert z[:3, :3].min() == 0 and z[:3, :3].max() == 255
    gray = fg.filter_grid(rng.normal(size=(5, 5, 1, 6)))
    assert isinstance(gray.data[0], go.Heatmap)
    with pytest.raises(fg.FigureError, match=r"Received: shape=\(5, 5, 6\)"):
        fg.filter_grid(np.zeros((5, 5, 6)))


def test_display_rgb_keeps_pixels_and_stretches_other_ranges():
    pixels = np.array([[0.0, 128.0], [200.0, 255.0]])
    np.testing.assert_array_equal(fg.display_rgb(pixels)[:, :, 1], pixels.astype(np.uint8))
    whitened = np.array([[-1.0, 0.0], [1.0, 3.0]])[:, :, None]
    out = fg.display_rgb(whitened)
    assert out.shape == (2, 2, 3) and out.min() == 0 and out.max() == 255


def test_heatmap_overlay_needs_the_image_size():
    image = np.zeros((6, 6, 1))
    figure = fg.heatmap_overlay(image, np.ones((6, 6)) * 0.5)
    assert isinstance(figure.data[0], go.Image) and isinstance(figure.data[1], go.Heatmap)
    with pytest.raises(fg.FigureError, match=r"Received: shape=\(5, 6\)"):
        fg.heatmap_overlay(image, np.ones((5, 6)))


def test_pixel_histograms_give_fractions_that_sum_to_one():
    rng = np.random.default_rng(4)
    arrays = {"original": rng.uniform(0, 255, 500), "whitened": rng.normal(size=300)}
    figure = fg.pixel_histograms(arrays, bins=20)
    assert [t.name for t in figure.data] == ["original", "whitened"]
    for trace in figure.data:
        assert np.asarray(trace.y).sum() == pytest.approx(1.0)
        assert len(trace.x) == 20
    assert figure.data[1].xaxis == "x2"  # separate x ranges side by side
    assert fg.pixel_histograms(arrays, overlay=True).layout.showlegend is True


def test_image_row_and_probability_bars_check_their_inputs():
    figure = fg.image_row([np.zeros((4, 4, 1)), np.zeros((4, 4, 3))], ["gray", "rgb"])
    assert isinstance(figure.data[0], go.Heatmap) and isinstance(figure.data[1], go.Image)
    with pytest.raises(fg.FigureError, match="1 image"):
        fg.image_row([np.zeros((4, 4))], ["a", "b"])
    bars = fg.probability_bars(np.array([0.2, 0.8]), ["cat", "dog"], highlight=1)
    assert list(bars.data[0].marker.color) == ["#7f9fbf", "#d62728"]


def _row(name, shape, params=0, kind=""):
    return SimpleNamespace(name=name, kind=kind, output_shape=shape, params=params)


def test_network_diagram_draws_one_box_per_shape_change_sized_by_the_shape():
    rows = [
        _row("image", (None, 28, 28, 1)), _row("normalize", (None, 28, 28, 1)),
        _row("block1_conv1", (None, 28, 28, 32), 320), _row("block1_bn1", (None, 28, 28, 32), 128),
        _row("block1_act1", (None, 28, 28, 32)), _row("block1_pool", (None, 14, 14, 32)),
        _row("block2_conv1", (None, 14, 14, 64), 18496), _row("block2_act1", (None, 14, 14, 64)),
        _row("block2_pool", (None, 7, 7, 64)), _row("flatten", (None, 3136)),
        _row("dense1", (None, 128), 401536), _row("dense1_act", (None, 128)), _row("dense1_dropout", (None, 128)),
        _row("logits", (None, 10), 1290), _row("probabilities", (None, 10)),
    ]
    figure = fg.network_diagram(rows)
    names = [t.name for t in figure.data]
    assert names == ["image", "block1_conv1", "block1_pool", "block2_conv1", "block2_pool", "flatten", "dense1", "logits"]

    def extent(trace):
        xs, ys = np.asarray(trace.x), np.asarray(trace.y)
        return xs.max() - xs.min(), ys.max() - ys.min()

    boxes = dict(zip(names, figure.data))
    # Height follows the spatial size, width the channels.
    assert extent(boxes["block1_conv1"])[1] > extent(boxes["block1_pool"])[1]
    assert extent(boxes["block2_conv1"])[0] > extent(boxes["block1_conv1"])[0]
    conv_hover = boxes["block1_conv1"].text
    assert "block1_bn1" in conv_hover and "28×28×32" in conv_hover and "448 parameters" in conv_hover
    # The same rows as dicts (dataclasses.asdict of LayerRow) draw the same boxes.
    assert [t.name for t in fg.network_diagram([vars(r) for r in rows]).data] == names
    with pytest.raises(fg.FigureError):
        fg.network_diagram([])


def test_matrix_figure_writes_values_and_outlines_the_window():
    values = np.array([[1.0, -0.5], [np.nan, 2.25]])
    figure = fg.matrix_figure(values, highlight=(0, 0, 1, 2), muted=np.array([[False, True], [False, False]]))
    assert [list(row) for row in figure.data[0].text] == [["1", "-0.5"], ["", "2.25"]]
    shape = figure.layout.shapes[0]
    assert (shape.x0, shape.x1, shape.y0, shape.y1) == (-0.5, 1.5, -0.5, 0.5)
    assert len(figure.data) == 2  # the heatmap and the grey padding markers
