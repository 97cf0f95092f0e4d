"""One Keras build lock: every way the web server makes Keras models waits for it, and threads build correct models."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from playground.model import network
from playground.spec.presets import preset_spec

SHAPE = (16, 16, 1)
CLASSES = 3
BLOCKED_SECONDS = 1.0  # a warmed-up maker finishes well within this when nothing holds the lock
# Each way the web server makes Keras layers or models.
MAKERS = ["build_model", "RunStore.load_model", "import_bundle", "export_keras_code",
          "feature_maps", "gradcam", "saliency", "embeddings"]


def _tiny_spec(seed: int = 0):
    return preset_spec("default", "shapes", seed=seed).with_values(filters="4,8", dense_units="8")


def _save_run():
    """A tiny untrained run in this test's runs folder: (record, store)."""
    from playground.runs.store import RunStore
    from playground.training.loop import TrainResult

    model = network.build_model(_tiny_spec(), SHAPE, CLASSES)
    result = TrainResult(model=model, history={"loss": [1.0]}, test_loss=1.0, test_accuracy=0.5, epochs_completed=1,
                         train_seconds=1.0, images_per_second=10.0, stop_reason="completed", message="",
                         params=model.count_params(), initial_first_conv=None)
    info = {"name": "tiny", "class_names": ("a", "b", "c"), "input_shape": SHAPE}
    store = RunStore()
    return store.save(result, _tiny_spec(), info, name="tiny"), store


def _makers() -> dict:
    """Each way the web server makes Keras layers or models (see MAKERS), as a call that returns once it is done."""
    from playground.analysis import activations
    from playground.runs import bundle

    record, store = _save_run()
    model = network.build_model(_tiny_spec(), SHAPE, CLASSES)
    image = np.full(SHAPE, 128, np.float32)
    exported = bundle.export_bundle(record)
    return {
        "build_model": lambda: network.build_model(_tiny_spec(), SHAPE, CLASSES),
        "RunStore.load_model": lambda: store.load_model(record.run_id),
        "import_bundle": lambda: bundle.import_bundle(exported, "tiny.zip", store=store),
        "export_keras_code": lambda: network.export_keras_code(_tiny_spec(), SHAPE, CLASSES),
        "feature_maps": lambda: activations.feature_maps(model, image, ["block1_conv1"]),
        "gradcam": lambda: activations.gradcam(model, image),
        "saliency": lambda: activations.saliency(model, image, 0),
        "embeddings": lambda: activations.embeddings(model, image[None]),
    }


@pytest.mark.parametrize("name", MAKERS)
def test_every_way_of_making_keras_models_waits_for_the_build_lock(name):
    make = _makers()[name]
    make()  # once without contention: imports, traces and caches are warm
    done = threading.Event()
    errors: list[BaseException] = []

    def work():
        try:
            make()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        done.set()

    with network.BUILD_LOCK:
        worker = threading.Thread(target=work)
        worker.start()
        assert not done.wait(BLOCKED_SECONDS), f"{name} ran while another thread held the build lock"
    assert done.wait(120), f"{name} did not finish once the lock was free"
    worker.join()
    assert errors == []


def test_models_built_from_many_threads_at_once_are_correct_and_distinct():
    specs = [_tiny_spec(seed) for seed in range(8)]
    specs[1::2] = [preset_spec("mini_resnet", "shapes", seed=seed).with_values(filters="4,8") for seed in range(4)]
    expected = [network.build_model(spec, SHAPE, CLASSES) for spec in specs]  # one by one
    built: list = [None] * len(specs)
    start = threading.Barrier(len(specs))

    def build(i):
        start.wait()  # every thread asks at the same moment
        built[i] = network.build_model(specs[i], SHAPE, CLASSES)

    threads = [threading.Thread(target=build, args=(i,)) for i in range(len(specs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({id(model) for model in built}) == len(specs)
    for spec, model, reference in zip(specs, built, expected):
        # The same layers under the same names, and the same seeded initial weights, as when built alone.
        assert [layer.name for layer in model.layers] == [layer.name for layer in reference.layers], spec.preset
        for ours, theirs in zip(model.get_weights(), reference.get_weights(), strict=True):
            np.testing.assert_array_equal(ours, theirs)
    # Models of different seeds are different models, not one model shared.
    assert not np.array_equal(built[0].get_weights()[0], built[2].get_weights()[0])


def test_the_build_lock_is_reentrant():
    with network.BUILD_LOCK:
        assert network.build_model(_tiny_spec(), SHAPE, CLASSES).count_params() > 0
