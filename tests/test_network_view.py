"""The network diagram's data: every column has the shapes the layer table says, for every preset and input."""

import numpy as np
import pytest

from playground.analysis.network_view import (
    MAX_MAPS, DecisionProbe, NetworkProbe, WeightsProbe, decision_sample, diagram_layers, filter_kernels,
    stable_projection, weight_histograms,
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
    first, second = probe.view(0), probe.view(1)
    assert (first.epoch, second.epoch) == (0, 1)
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


@pytest.mark.parametrize("preset, dataset", CASES)
def test_the_filters_follow_the_maps_each_column_shows(preset, dataset):
    input_shape, classes = SHAPES[dataset]
    model = build_model(preset_spec(preset, dataset), input_shape, classes)
    views = {v.name: v for v in NetworkProbe(model).views(np.zeros(input_shape, np.uint8))}
    kernels = filter_kernels(model)
    assert set(kernels) == {name for name, v in views.items() if v.kind == "conv"}
    for name, k in kernels.items():
        kernel = model.get_layer(k.layer).kernel.numpy()  # (k, k, C_in, F)
        assert k.layer.startswith(f"{name}_conv") and k.total_inputs == kernel.shape[2]
        assert k.weights.shape == (len(views[name].shown), len(k.inputs), kernel.shape[0], kernel.shape[1])
        assert k.weights.dtype == np.float16 and len(k.inputs) == min(kernel.shape[2], MAX_MAPS)
        first, last = views[name].shown[0], views[name].shown[-1]
        np.testing.assert_allclose(k.weights[-1, 0], kernel[:, :, k.inputs[0], last], atol=1e-3)
        np.testing.assert_allclose(k.weights[0, -1], kernel[:, :, k.inputs[-1], first], atol=1e-3)


def test_a_compiled_probe_draws_what_an_eager_one_draws_and_gives_the_probe_maps():
    model = build_model(ExperimentSpec().with_values(filters="4,8,8", dense_units="16"), (28, 28, 1), 10)
    image = np.random.default_rng(3).integers(0, 256, (28, 28, 1), dtype=np.uint8)
    eager, compiled = NetworkProbe(model).views(image), NetworkProbe(model, compiled=True).views(image)
    for a, b in zip(eager, compiled):
        assert a.name == b.name and np.abs(a.values.astype(int) - b.values.astype(int)).max() <= 1
    maps = NetworkProbe(model).feature_maps(image, 2)
    assert {name: m.shape for name, m in maps.items()} == {"block1_act1": (28, 28, 4), "block2_act1": (14, 14, 8)}
    assert all(m.dtype == np.float32 for m in maps.values())


def test_the_decision_sample_takes_the_first_few_of_each_class():
    labels = np.array([2, 0, 1, 0, 2, 1, 0, 2, 1, 1])
    assert decision_sample(labels, 3, most=6).tolist() == [1, 3, 2, 5, 0, 4]
    assert decision_sample(labels, 3, most=2).tolist() == [1, 2, 0]  # at least one of each class
    assert decision_sample(np.array([0, 0, 0]), 2, most=4).tolist() == [0, 1]  # a class without images gives none


def test_the_weights_probe_keeps_its_bins_and_sends_the_filters():
    model = build_model(preset_spec("default", "digits").with_values(filters="4", dense_units="8"), (8, 8, 1), 10)
    probe = WeightsProbe(model)
    first = probe.view(0)
    kernel = model.get_layer("block1_conv1").kernel
    kernel.assign(kernel.numpy() * 3)  # training moved the weights
    second = probe.view(1)
    assert (first.epoch, second.epoch) == (0, 1) and set(first.counts) == {"block1_conv1", "dense1", "logits"}
    assert all(np.array_equal(first.edges[k], second.edges[k]) for k in first.edges)
    assert not np.array_equal(first.counts["block1_conv1"], second.counts["block1_conv1"])
    assert set(second.kernels) == {"block1"} and second.kernels["block1"].weights.shape == (4, 1, 3, 3)
