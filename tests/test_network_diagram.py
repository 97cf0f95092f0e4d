"""The Playground's network pictures: tiles sized by the tensors, every column in its place, mosaic borders by result."""

import numpy as np
import pytest

from playground.analysis.network_view import NetworkProbe
from playground.model.network import build_model
from playground.spec.experiment import ExperimentSpec
from playground.spec.presets import preset_spec
from playground.ui.network_diagram import (
    HIGHLIGHT, MOSAIC_BORDER, RIGHT, UNKNOWN, WRONG, draw_filter, draw_mosaic, draw_network, enlarge_map,
    mosaic_tiles, network_layout,
)


def views(spec, input_shape=(28, 28, 1), classes=10):
    model = build_model(spec, input_shape, classes)
    image = np.random.default_rng(0).integers(0, 256, input_shape, dtype=np.uint8)
    return NetworkProbe(model).views(image)


def test_tiles_follow_the_tensor_shapes_and_columns_do_not_overlap():
    columns = views(ExperimentSpec().with_values(filters="16,32,96", dense_units="200"))
    width, height, boxes = network_layout(columns)
    assert [b.kind for b in boxes] == ["input", "conv", "conv", "conv", "dense", "output"]
    assert [len(b.tiles) for b in boxes] == [1, 16, 32, 32, 128, 10]  # wide layers: their sample
    sides = [b.tiles[0][2] - b.tiles[0][0] for b in boxes[1:4]]
    assert sides[0] == 2 * sides[1] == pytest.approx(4 * sides[2], abs=2)  # 28, 14, 7 pixels of maps
    for left, right in zip(boxes, boxes[1:]):
        assert left.left + left.width < right.left
    for box in boxes:
        for x0, y0, x1, y1 in box.tiles:
            assert box.left <= x0 < x1 <= box.left + box.width and 0 <= y0 < y1 <= height
    assert width == boxes[-1].left + boxes[-1].width
    wider, _, spread = network_layout(columns, min_width=width + 300)
    assert wider == width + 300 and [b.width for b in spread] == [b.width for b in boxes]


@pytest.mark.parametrize("spec, input_shape", [
    (preset_spec("default", "cifar10"), (32, 32, 3)),
    (preset_spec("default", "digits").with_values(filters="4,8", dense_units=""), (8, 8, 1)),
    (ExperimentSpec().with_values(conv_blocks="0", dense_units="16"), (20, 12, 1)),
])
def test_every_network_draws_at_its_layout_size(spec, input_shape):
    columns = views(spec, input_shape, 3)
    width, height, _ = network_layout(columns)
    picture = draw_network(columns, ("cat", "dog", "<b>bird</b>"), "a cat")
    assert picture.shape == (height, width, 3) and picture.dtype == np.uint8


def test_the_map_looked_at_closer_is_framed():
    columns = views(ExperimentSpec().with_values(filters="4,8", dense_units="16"))
    _, _, boxes = network_layout(columns)
    x0, y0, x1, y1 = boxes[1].tiles[2]
    plain = draw_network(columns)
    framed = draw_network(columns, highlight=("block1", 2))
    assert tuple(framed[y0 - 2, x0]) == HIGHLIGHT and tuple(plain[y0 - 2, x0]) != HIGHLIGHT
    assert np.array_equal(framed[y0:y1, x0:x1], plain[y0:y1, x0:x1])  # the map itself is untouched


def test_the_mosaic_frames_each_image_by_its_result():
    images = np.random.default_rng(0).integers(0, 256, (12, 28, 28, 1), dtype=np.uint8)
    tiles = mosaic_tiles(images, side=40)
    assert tiles.shape == (12, 40, 40, 3)
    correct = np.arange(12) % 3 != 0
    picture = draw_mosaic(tiles, correct, columns=5)
    cell = 40 + 2 * MOSAIC_BORDER + 2
    assert picture.shape == (3 * cell, 5 * cell, 3)
    corners = [tuple(picture[(i // 5) * cell + 1, (i % 5) * cell + 1]) for i in range(12)]
    assert corners == [RIGHT if c else WRONG for c in correct]
    assert tuple(draw_mosaic(tiles, None)[1, 1]) == UNKNOWN  # before the first prediction
    assert np.array_equal(picture[1 + MOSAIC_BORDER:1 + MOSAIC_BORDER + 40, 1 + MOSAIC_BORDER:1 + MOSAIC_BORDER + 40], tiles[0])


def test_a_map_enlarged_and_filters_drawn():
    assert enlarge_map(np.arange(49, dtype=np.uint8).reshape(7, 7), side=140).shape == (140, 140, 3)
    first = draw_filter(np.random.default_rng(0).normal(size=(3, 5, 5)), as_image=True, tile=20)
    assert first.shape == (60, 60, 3)
    deeper = draw_filter(np.array([[[1.0, -1.0], [0.0, 0.5]]] * 10), as_image=False, tile=10, columns=4)
    assert deeper.shape == (3 * 13, 4 * 13, 3)
    assert tuple(deeper[0, 0]) == (214, 39, 40) and tuple(deeper[0, 5]) == (31, 119, 180)  # red +, blue -
    assert tuple(deeper[5, 0]) == (255, 255, 255)  # 0 is white
