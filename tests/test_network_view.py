"""The network diagram's data: every column has the shapes the layer table says, for every preset and input."""

import numpy as np
import pytest

from playground.analysis.network_view import (
    MAX_MAPS, DecisionProbe, NetworkProbe, diagram_layers, stable_projection, weight_histograms,
)
from playground.model.network import build_model
from playground.model.table import layer_table
from playground.spec.experiment import ExperimentSpec
from playground.spec.presets import PRESETS, preset_spec
from playground.spec.validation import check

SHAPES = {"fashion_mnist": ((28, 28, 1), 10), "cifar10": ((32, 32, 3), 10), "digits": ((8, 8, 1), 10)}
# Every preset on every input that it fits (a VALID 5x5 network does not fit the 8x8 digits).
CASES = [(preset, dataset) for preset in PRESETS for dataset in SHAPES
         if not check(preset_spec(preset, dataset), SHAPES[dataset][0])]


@pytest.mark.parametrize("preset, dataset", CASES)
def test_every_column_has_the_shape_the_layer_table_says(preset, dataset):
    input_shape, classes = SHAPES[dataset]
    spec = preset_spec(preset, dataset)
    model = build_model(spec, input_shape, classes)
    rows = {row.name: row for row in layer_table(model)}
    image = np.random.default_rng(0).integers(0, 256, input_shape, dtype=np.uint8)
    views = NetworkProbe(model).views(image)
    assert [v.kind for v in views] == ["input"] + ["conv"] * spec.arch.conv_blocks + ["dense"] * len(spec.arch.dense_units) + ["output"]
    assert views[0].values.shape == input_shape
    for view, (_, kind, layer, pooled) in zip(views[1:], diagram_layers(model)):
        assert view.shape == tuple(rows[layer].output_shape), view.name
        assert view.values.dtype == np.uint8
        if kind == "conv":
            h, w, filters = view.shape
            assert view.total == filters and len(view.shown) == min(filters, MAX_MAPS) == len(view.values)
            assert view.stats.shape == (len(view.shown), 3)
            if pooled is not None:
                assert pooled == tuple(rows[f"{view.name}_pool"].output_shape[:2])
        elif kind == "output":
            assert view.total == classes and abs(int(view.values.sum()) - 255) <= classes


def test_a_wide_block_shows_an_even_sample_and_counts_all_its_maps():
    spec = ExperimentSpec().with_values(filters="96,8", dense_units="")
    model = build_model(spec, (28, 28, 1), 10)
    wide = NetworkProbe(model).views(np.zeros((28, 28, 1), np.uint8))[1]
    assert wide.total == 96 and len(wide.shown) == MAX_MAPS and wide.shown[0] == 0 and wide.shown[-1] == 95


def test_decision_probe_keeps_its_axes_from_one_call_to_the_next():
    model = build_model(preset_spec("default", "digits").with_values(filters="8,16", dense_units="16"), (8, 8, 1), 10)
    rng = np.random.default_rng(1)
    images, labels = rng.integers(0, 256, (40, 8, 8, 1), dtype=np.uint8), np.arange(40) % 10
    probe = DecisionProbe(model, images, labels)
    first, second = probe.view(), probe.view()
    assert first.points.shape == (40, 2) and first.correct.dtype == bool
    np.testing.assert_allclose(first.points.astype(float), second.points.astype(float), atol=1e-2)
    assert np.array_equal(first.correct, first.predicted == labels)


def test_stable_projection_undoes_a_flip_of_the_axes():
    features = np.random.default_rng(2).normal(size=(50, 6)) * [5, 3, 1, 1, 1, 1]
    before = stable_projection(features, None)
    after = stable_projection(features * [-1, 1, 1, 1, 1, 1], before)  # the same layout, mirrored
    np.testing.assert_allclose(after, before, atol=1e-6)


def test_weight_histograms_keep_their_bins_between_epochs():
    model = build_model(preset_spec("default", "digits").with_values(filters="4", dense_units="8"), (8, 8, 1), 10)
    counts, edges = weight_histograms(model)
    assert set(counts) == {"block1_conv1", "dense1", "logits"}
    assert counts["block1_conv1"].sum() == 3 * 3 * 1 * 4
    again, same_edges = weight_histograms(model, edges)
    assert all(np.array_equal(edges[k], same_edges[k]) and np.array_equal(counts[k], again[k]) for k in counts)
