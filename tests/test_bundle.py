"""Bundles: export and import round trip, and every way an upload is refused."""

from __future__ import annotations

import io
import json
import math
import struct
import warnings
import zipfile

import h5py
import keras
import numpy as np
import pytest

from playground.runs import bundle
from playground.runs.bundle import BundleError, export_bundle, export_keras_file, import_bundle, read_bundle
from playground.model.network import build_model, export_keras_code
from playground.analysis.predict import Predictor
from playground.runs.store import RunStore
from playground.settings import get_settings
from playground.spec.presets import preset_spec
from playground.training.loop import TrainResult


def _saved_run(spec, input_shape, class_names, *, owner="alice", dataset_name=None, store=None):
    """A run on disk whose weights are far from the spec's seeded initial ones."""
    model = build_model(spec, input_shape, len(class_names))
    rng = np.random.default_rng(7)
    # Shift every weight, so a model that failed to load its weights would answer differently.
    model.set_weights([w + np.abs(rng.normal(0, 0.05, w.shape)).astype(w.dtype) for w in model.get_weights()])
    result = TrainResult(
        model=model, history={"loss": [1.0], "accuracy": [0.5], "val_loss": [1.1], "val_accuracy": [0.4], "lr": [0.001]},
        test_loss=1.0, test_accuracy=0.5, epochs_completed=1, train_seconds=2.0, images_per_second=100.0,
        stop_reason="completed", message="done", params=model.count_params(), initial_first_conv=None,
    )
    data = {"name": dataset_name or spec.data.dataset, "class_names": class_names, "input_shape": input_shape}
    return (store or RunStore()).save(result, spec, data, name="my run", owner=owner)


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory):
    """The default network on Fashion-MNIST's shape, saved once for the module in its own store."""
    store = RunStore(tmp_path_factory.mktemp("source-runs"))
    return _saved_run(preset_spec("default", "fashion_mnist"), (28, 28, 1), tuple(f"c{i}" for i in range(10)), store=store)


@pytest.fixture(scope="module")
def fashion_bundle(fashion_run) -> bytes:
    return export_bundle(fashion_run)


def _zip(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def test_round_trip_predicts_identically_and_belongs_to_the_importer(fashion_run, fashion_bundle):
    data = fashion_bundle
    assert sorted(_members(data)) == sorted(bundle.BUNDLE_FILES)
    imported = import_bundle(data, "my-run.bundle.zip", owner="bob")
    assert imported.run_id != fashion_run.run_id
    assert imported.owner == "bob" and imported.name == "my run (imported)"
    assert imported.spec == fashion_run.spec
    assert imported.class_names == fashion_run.class_names and imported.input_shape == fashion_run.input_shape
    assert imported.metrics["test_accuracy"] == pytest.approx(0.5)

    original = Predictor.from_run(fashion_run.run_id, RunStore(fashion_run.path.parent))
    copy = Predictor.from_run(imported.run_id)
    images = np.random.default_rng(0).integers(0, 256, (6, 28, 28, 1)).astype(np.float32)
    np.testing.assert_array_equal(original.probabilities(images), copy.probabilities(images))
    fresh = build_model(fashion_run.spec, (28, 28, 1), 10)  # the seeded initial weights
    assert not np.allclose(fresh(images, training=False).numpy(), copy.probabilities(images))
    # Picture preparation travels too: Fashion-MNIST is light on dark.
    assert copy.light_on_dark and not copy.center


def test_round_trip_of_a_dataset_normalised_colour_model():
    spec = preset_spec("default", "cifar10").with_values(normalization="dataset", filters="4,8", dense_units="16")
    run = _saved_run(spec, (32, 32, 3), ("cat", "dog", "ship"))
    imported = import_bundle(export_bundle(run), "b.zip", owner="bob")
    images = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(Predictor.from_run(run.run_id).probabilities(images),
                                  Predictor.from_run(imported.run_id).probabilities(images))


def test_keras_export_is_a_loadable_keras_file_with_the_same_answers(fashion_run, tmp_path):
    model = RunStore(fashion_run.path.parent).load_model(fashion_run.run_id)
    data = export_keras_file(model)
    assert data[:2] == b"PK"
    path = tmp_path / "ours.keras"
    path.write_bytes(data)
    loaded = keras.saving.load_model(path)  # our own file, just written: the download works in Keras
    images = np.random.default_rng(2).integers(0, 256, (2, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded(images, training=False).numpy(), model(images, training=False).numpy(), atol=1e-6)


def test_keras_code_export_rebuilds_the_architecture(fashion_run):
    code = export_keras_code(fashion_run.spec, fashion_run.input_shape, len(fashion_run.class_names))
    namespace: dict = {}
    exec(compile(code, "exported.py", "exec"), namespace)  # the code we generated, run as a user would
    built = [v for v in namespace.values() if isinstance(v, keras.Model)]
    model = built[0] if built else namespace["build_model"]()
    assert model.count_params() == fashion_run.metrics["params"]


def test_keras_files_are_refused_by_name_and_by_content(fashion_run):
    keras_bytes = export_keras_file(RunStore(fashion_run.path.parent).load_model(fashion_run.run_id))
    with pytest.raises(BundleError, match=r"^model\.keras is a Keras model file, which is refused because loading one can run code"):
        import_bundle(keras_bytes, "model.keras", owner="bob")
    with pytest.raises(BundleError, match=r"^renamed\.zip is a Keras model file"):
        import_bundle(keras_bytes, "renamed.zip", owner="bob")
    assert RunStore().list_runs(owner="bob") == []


@pytest.mark.parametrize("entry", ["../spec.json", "/etc/spec.json", "sub/spec.json", "..\\meta.json", "spec.json/"])
def test_entries_outside_the_three_files_are_refused(fashion_bundle, entry):
    members = _members(fashion_bundle)
    members[entry] = b"{}"
    with pytest.raises(BundleError, match="unexpected entry"):
        import_bundle(_zip(members), "evil.zip", owner="bob")


def test_missing_and_duplicated_members_are_refused(fashion_bundle):
    members = _members(fashion_bundle)
    del members["meta.json"]
    with pytest.raises(BundleError, match="lacks meta.json"):
        read_bundle(_zip(members), "b.zip")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf, pytest.warns(UserWarning):
        for name, data in _members(fashion_bundle).items():
            zf.writestr(name, data)
        zf.writestr("spec.json", b"{}")
    with pytest.raises(BundleError, match="more than once"):
        read_bundle(buffer.getvalue(), "b.zip")


def test_oversized_uploads_and_zip_bombs_are_refused(fashion_bundle):
    data = fashion_bundle
    with pytest.raises(BundleError, match="over the limit"):
        read_bundle(data, "big.zip", max_bytes=len(data) - 1)
    members = _members(data)
    members["model.weights.h5"] = members["model.weights.h5"][:8] + bytes(20 << 20)  # 20 MB of zeros
    with pytest.raises(BundleError, match="zip bomb"):
        read_bundle(_zip(members), "bomb.zip")
    # 4 MB that compress about 8:1 (no bomb), in an upload under a 1 MB limit.
    members["model.weights.h5"] = b"\x89HDF\r\n\x1a\n" + np.random.default_rng(0).integers(0, 2, 4 << 20, dtype=np.uint8).tobytes()
    small = _zip(members)
    assert len(small) < 1 << 20
    with pytest.raises(BundleError, match="model.weights.h5 unpacks to 4.0 MB, over the limit of 1.0 MB"):
        read_bundle(small, "dense.zip", max_bytes=1 << 20)
    members["spec.json"] = b" " * (2 << 20)
    with pytest.raises(BundleError, match="spec.json unpacks to"):
        read_bundle(_zip({**members, "model.weights.h5": _members(data)["model.weights.h5"]}), "s.zip")


@pytest.mark.parametrize(
    "spec_text, message",
    [
        (b"not json", "not valid JSON"),
        (b'{"arch": {"kernel_size": "big"}}', "kernel_size"),
        (b'{"arch": {"wings": 2}}', "Unknown setting"),
        (b'{"arch": {"conv_blocks": 6, "filters": [8, 8, 8, 8, 8, 8]}}', "impossible network"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_malformed_specs_are_refused(fashion_bundle, spec_text, message):
    members = _members(fashion_bundle)
    members["spec.json"] = spec_text
    with pytest.raises(BundleError, match=message) as info:
        import_bundle(_zip(members), "b.zip", owner="bob")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format": "something-else"}, "does not describe a CNN Playground bundle"),
        ({"version": 99}, "version 99 is not supported"),
        ({"class_names": ["only one"]}, "class names"),
        ({"class_names": ["a", "b\nc"] + [f"c{i}" for i in range(8)]}, "class names"),
        ({"input_shape": [28, 28, 2]}, "input shape"),
        ({"input_shape": [28, 28]}, "input shape"),
        ({"input_shape": [5000, 28, 1]}, "input shape"),
        ({"prepare": {"light_on_dark": "yes", "center": False}}, "prepare options"),
    ],
)
def test_malformed_meta_is_refused(fashion_bundle, change, message):
    members = _members(fashion_bundle)
    meta = json.loads(members["meta.json"])
    meta.update(change)
    members["meta.json"] = json.dumps(meta).encode()
    with pytest.raises(BundleError, match=message):
        import_bundle(_zip(members), "b.zip", owner="bob")


@pytest.mark.parametrize("change", [{"filters": "doubled"}, {"dense_units": [128, 8]}, {"batch_norm": False}])
def test_weights_that_do_not_fit_the_spec_are_refused(fashion_bundle, change):
    members = _members(fashion_bundle)
    spec = json.loads(members["spec.json"])
    if change.get("filters") == "doubled":  # as many blocks, twice the filters each
        change = {"filters": [2 * f for f in spec["arch"]["filters"]]}
    spec["arch"].update(change)
    members["spec.json"] = json.dumps(spec).encode()
    with pytest.raises(BundleError, match="does not fit the network"):
        import_bundle(_zip(members), "b.zip", owner="bob")
    members = _members(fashion_bundle)
    members["model.weights.h5"] = b"not hdf5 at all"
    with pytest.raises(BundleError, match="not an HDF5 weights file"):
        import_bundle(_zip(members), "b.zip", owner="bob")
    assert RunStore().list_runs(owner="bob") == []


@pytest.mark.parametrize(
    "data, message",
    [(b"", "empty"), (b"hello", "not a zip file"), (b"\x89HDF\r\n\x1a\n" + bytes(100), "bare HDF5 weights file")],
)
def test_uploads_that_are_not_bundles(data, message):
    with pytest.raises(BundleError, match=message):
        read_bundle(data, "x.zip")


def test_a_dataset_path_in_a_foreign_spec_cannot_point_outside_the_uploads_folder():
    spec = preset_spec("default", "/etc/secret/pets.zip").with_values(filters="4,8", dense_units="16")
    run = _saved_run(spec, (28, 28, 3), ("cat", "dog"), dataset_name="pets.zip")
    imported = import_bundle(export_bundle(run), "b.zip", owner="bob")
    uploads = get_settings().uploads_dir
    assert imported.spec.data.dataset == str(uploads / "pets.zip")
    assert imported.spec.arch == run.spec.arch


def test_export_filename_is_safe():
    class Run:
        name, run_id = "../my run: v2/..", "r1"
    assert bundle.export_filename(Run, ".bundle.zip") == "my-run-v2.bundle.zip"


def _many_entries(count: int) -> bytes:
    """A zip of `count` empty entries, all named spec.json (a few hundred kB: about 100 bytes each)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name"
        for _ in range(count):
            zf.writestr("spec.json", b"")
    return buffer.getvalue()


def test_a_zip_of_many_entries_is_refused_before_it_is_parsed(monkeypatch):
    many = _many_entries(30_000)
    assert len(many) < 4 << 20

    def never(*args, **kwargs):
        raise AssertionError("zipfile parsed a directory that should have been refused first")

    monkeypatch.setattr(bundle.zipfile, "ZipFile", never)
    with pytest.raises(BundleError, match=r"^many\.zip lists 30,000 entries; a bundle holds only spec\.json, ") as info:
        read_bundle(many, "many.zip")
    assert "\n" not in str(info.value)
    # The end record's counts may lie: the size of the directory, which zipfile reads whole, is capped too.
    lying = many[:-14] + struct.pack("<HH", 3, 3) + many[-10:]  # the two entry counts of the end record
    with pytest.raises(BundleError, match=r"^lying\.zip has a zip directory of [\d,]+ bytes"):
        read_bundle(lying, "lying.zip")


def test_duplicate_names_are_found_in_linear_time():
    # A few more entries than a bundle holds are parsed, and the duplicate is named (the check counts names once).
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(bundle.MAX_ZIP_ENTRIES):
            zf.writestr("meta.json", b"{}")
    with pytest.raises(BundleError, match="holds 'meta.json' more than once"):
        read_bundle(buffer.getvalue(), "d.zip")


def _edit_weights(data: bytes, tmp_path, edit) -> bytes:
    """The bundle `data` with its model.weights.h5 changed by `edit(h5py.File)` (opened read-write)."""
    members = _members(data)
    path = tmp_path / "edited.weights.h5"
    path.write_bytes(members["model.weights.h5"])
    with h5py.File(path, "r+") as f:
        edit(f, tmp_path)
    members["model.weights.h5"] = path.read_bytes()
    return _zip(members)


def _replace(f, name, **dataset):
    del f[name]
    f.create_dataset(name, **dataset)


KERNEL = "layers/dense/vars/0"  # the first dense layer's kernel in Keras' layout
BIAS = "layers/dense/vars/1"


@pytest.mark.parametrize("edit, message", [
    # 4 GiB of float32 declared, gzip-compressed and never written: a few kB on disk, read whole by Keras.
    (lambda f, tmp: _replace(f, KERNEL, shape=(1 << 30,), dtype="float32", chunks=(1 << 16,), compression="gzip"),
     r"does not fit the network in spec\.json \(it holds /layers/dense/vars/0 of shape \(1073741824,\)"),
    (lambda f, tmp: f.create_dataset("layers/dense/vars/2", data=np.zeros(f[BIAS].shape, np.float32)),
     r"does not fit the network in spec\.json \(it holds /layers/dense/vars/2"),
    (lambda f, tmp: _replace(f, KERNEL, data=np.zeros(f[KERNEL].shape, np.int32)),
     r"it holds /layers/dense/vars/0 of shape \(\d+, \d+\), int32"),
    (lambda f, tmp: _replace(f, BIAS, shape=f[BIAS].shape, dtype="float32", chunks=(1 << 20,), maxshape=(None,)),
     r"stores /layers/dense/vars/1 in chunks larger than the array itself"),
    (lambda f, tmp: f.create_dataset("optimizer/vars/0", shape=(1 << 30,), dtype="float32", chunks=(1 << 16,), compression="gzip"),
     r"holds optimizer state /optimizer/vars/0 of shape \(1073741824,\)"),
    (lambda f, tmp: f.__delitem__(BIAS), r"it lacks a weight of shape \(\d+,\)"),
])
def test_a_weights_file_is_checked_before_keras_reads_it(fashion_bundle, tmp_path, monkeypatch, edit, message):
    def read(*args, **kwargs):
        raise AssertionError("Keras read the weights before they were checked")

    monkeypatch.setattr(keras.Model, "load_weights", read)
    crafted = _edit_weights(fashion_bundle, tmp_path, edit)
    assert len(crafted) < 2 * len(fashion_bundle)  # small on disk, whatever it declares
    with pytest.raises(BundleError, match=message) as info:
        import_bundle(crafted, "crafted.zip", owner="bob")
    assert str(info.value).startswith("crafted.zip: model.weights.h5 ") and "\n" not in str(info.value)
    assert RunStore().list_runs(owner="bob") == []


def test_weights_never_come_from_another_file_on_the_server(fashion_bundle, tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(10_000, dtype=np.float32).tobytes())

    def external_storage(f, tmp):  # the bias's numbers read from a file on the server
        shape = f[BIAS].shape
        _replace(f, BIAS, shape=shape, dtype="float32", external=[(str(secret), 0, h5py.h5f.UNLIMITED)])

    def external_link(f, tmp):
        with h5py.File(tmp / "other.h5", "w") as other:
            other.create_dataset("bias", data=np.ones(f[BIAS].shape, np.float32))
        del f[BIAS]
        f[BIAS] = h5py.ExternalLink(str(tmp / "other.h5"), "/bias")

    for edit, message in [(external_storage, "which is not a plain array of numbers stored in the file"),
                          (external_link, "links /layers/dense/vars/1 to somewhere else")]:
        with pytest.raises(BundleError, match=message):
            import_bundle(_edit_weights(fashion_bundle, tmp_path, edit), "crafted.zip", owner="bob")
    assert RunStore().list_runs(owner="bob") == []


def test_a_trained_runs_bundle_with_its_optimizer_state_imports(tmp_path):
    import tiny_runs

    spec, data, result = tiny_runs.trained("shapes")
    run = RunStore(tmp_path / "source").save(result, spec, data, name="trained")
    with h5py.File(run.path / "model.weights.h5") as f:
        assert "optimizer" in f  # Adam's step counter and moments travel in exported bundles
    imported = import_bundle(export_bundle(run), "t.zip", owner="bob")
    assert imported.imported and imported.metrics["test_accuracy"] == pytest.approx(run.metrics["test_accuracy"])


def test_odd_numbers_in_meta_json_are_claims_dropped_never_a_traceback(fashion_bundle):
    members = _members(fashion_bundle)
    text = members["meta.json"].decode()
    meta = json.loads(text)
    meta["metrics"] = {"test_accuracy": "NAN_HERE", "test_loss": 1e999, "train_seconds": -1, "images_per_second": "fast",
                       "epochs_completed": "INF_HERE", "params": 10**30}
    members["meta.json"] = (json.dumps(meta).replace('"NAN_HERE"', "NaN").replace('"INF_HERE"', "Infinity")).encode()
    imported = import_bundle(_zip(members), "odd.zip", owner="bob")
    assert imported.imported
    m = imported.metrics
    assert all(math.isnan(m[k]) for k in ("test_accuracy", "test_loss", "train_seconds", "images_per_second"))
    assert m["epochs_completed"] == 0 and m["params"] == build_model(imported.spec, (28, 28, 1), 10).count_params()
    assert bundle.claimed_metrics({"test_accuracy": 0.93, "epochs_completed": 3.0, "train_seconds": 1e400})["test_accuracy"] == 0.93
    assert bundle.claimed_metrics([1, 2])["epochs_completed"] == 0


@pytest.mark.parametrize("member", ["spec.json", "meta.json"])
@pytest.mark.parametrize("text", [b"[" * 100_000 + b"]" * 100_000, b'{"seed": ' + b"9" * 5000 + b"}"],
                         ids=["nested", "long number"])
def test_json_nested_too_deep_or_numbers_too_long_are_refused_in_one_line(fashion_bundle, member, text):
    members = _members(fashion_bundle)
    members[member] = text
    with pytest.raises(BundleError, match=f"{member} is not valid JSON") as info:
        read_bundle(_zip(members), "b.zip")
    assert "\n" not in str(info.value)
