"""RunStore: runs saved, listed, reloaded, renamed and deleted on disk; damaged folders never raise."""

import json
import math
import os
import shutil
import time

import numpy as np
import pytest
import tensorflow as tf

from playground.data import datasets
from playground.runs import store as runs
from playground.training import loop as training
from playground.runs.store import RunStore, RunStoreError
from playground.spec.presets import preset_spec


@pytest.fixture(scope="module")
def shapes():
    return datasets.load_dataset("shapes")


@pytest.fixture(scope="module")
def spec():
    # "dataset" normalisation: its mean and variance must travel in the weights file.
    return preset_spec("default", "shapes").with_values(
        sample_size=300, filters="4,8", dense_units="16", batch_size=32, epochs=2, normalization="dataset")


@pytest.fixture(scope="module")
def trained(spec, shapes):
    return training.train(spec, shapes)


def same_history(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(np.array(a[key]), np.array(b[key]), err_msg=key)


def test_save_then_load_gives_the_same_run_and_predictions(tmp_path, trained, spec, shapes):
    store = RunStore()  # the runs folder of settings: tmp_path/runs (see conftest)
    record = store.save(trained, spec, shapes, owner="session-a")
    assert record.path == tmp_path / "runs" / record.run_id and not record.damaged
    assert sorted(p.name for p in record.path.iterdir()) == [
        "history.json", "initial_first_conv.npy", "meta.json", "metrics.json", "model.weights.h5", "spec.json", "tb"]
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [record.run_id]  # no temporary folder left

    loaded = store.load(record.run_id)
    assert loaded.name == "default on shapes #1" and loaded.owner == "session-a"
    assert loaded.spec == spec and loaded.dataset == "shapes"
    assert loaded.class_names == shapes.class_names and loaded.input_shape == shapes.input_shape
    same_history(loaded.history, trained.history)
    assert loaded.metrics["test_accuracy"] == trained.test_accuracy
    assert loaded.metrics["epochs_completed"] == 2 and loaded.metrics["stop_reason"] == "completed"
    assert loaded.metrics["params"] == trained.params and loaded.message == trained.message
    metrics = json.loads((record.path / "metrics.json").read_text())
    assert list(metrics) == ["test_accuracy", "test_loss", "train_seconds", "images_per_second", "params",
                             "epochs_completed", "stop_reason", "test_size"]  # as every run folder has them
    assert metrics == trained.summary().as_dict()
    meta = json.loads((record.path / "meta.json").read_text())
    assert meta["dataset_info"]["source"] == shapes.source and meta["created"] == loaded.created
    np.testing.assert_array_equal(store.load_initial_first_conv(record.run_id), trained.initial_first_conv)

    model = store.load_model(record.run_id)
    x = shapes.x_test[:64].astype(np.float32)
    np.testing.assert_allclose(model(x, training=False).numpy(), trained.model(x, training=False).numpy(), atol=1e-6)


def test_tensorboard_scalars_per_epoch(trained, spec, shapes):
    record = RunStore().save(trained, spec, shapes)
    scalars = {}
    for split in ("train", "validation"):
        for event_file in (record.path / "tb" / split).iterdir():
            for raw in tf.data.TFRecordDataset(str(event_file)):
                event = tf.compat.v1.Event.FromString(raw.numpy())
                for value in event.summary.value:
                    assert value.metadata.plugin_data.plugin_name == "scalars"
                    number = float(tf.make_ndarray(value.tensor))
                    scalars.setdefault((split, value.tag), []).append((event.step, number))
    assert scalars[("train", "epoch_loss")] == [(1, pytest.approx(trained.history["loss"][0])),
                                                 (2, pytest.approx(trained.history["loss"][1]))]
    assert [s for s, _ in scalars[("validation", "epoch_accuracy")]] == [1, 2]
    assert ("train", "epoch_learning_rate") in scalars


def test_names_owners_rename_and_delete(trained, spec, shapes):
    store = RunStore()
    first = store.save(trained, spec, shapes, owner="a")
    second = store.save(trained, spec, shapes.info(), owner="b")  # a worker sends the info dict
    named = store.save(trained, spec, {**shapes.info(), "prepare": {"light_on_dark": True}}, name="  my   run ")
    assert (first.name, second.name, named.name) == ("default on shapes #1", "default on shapes #2", "my run")
    assert json.loads((named.path / "meta.json").read_text())["prepare"] == {"light_on_dark": True}
    assert first.run_id < second.run_id < named.run_id  # ids sort by creation time

    assert [r.run_id for r in store.list_runs()] == [named.run_id, second.run_id, first.run_id]  # newest first
    assert [r.run_id for r in store.list_runs(owner="a")] == [first.run_id]

    assert store.rename(first.run_id, "best so far").name == "best so far"
    assert store.load(first.run_id).name == "best so far"
    with pytest.raises(RunStoreError, match="1 to 200 characters"):
        store.rename(first.run_id, "   ")

    store.delete(second.run_id)
    assert not second.path.exists()
    assert [r.run_id for r in store.list_runs()] == [named.run_id, first.run_id]
    with pytest.raises(RunStoreError, match="no run folder"):
        store.delete(second.run_id)


def test_delete_refuses_anything_outside_the_root_or_not_a_run(tmp_path):
    store = RunStore(tmp_path / "runs")
    (tmp_path / "runs" / "holiday photos").mkdir(parents=True)
    (tmp_path / "precious").mkdir()
    (tmp_path / "runs" / "link").symlink_to(tmp_path / "precious")
    for run_id in ("../precious", "/etc", "..", ".hidden", "a/b"):
        with pytest.raises(RunStoreError, match="Not a run id"):
            store.delete(run_id)
    with pytest.raises(RunStoreError, match="not inside the runs folder"):
        store.delete("link")
    with pytest.raises(RunStoreError, match="does not look like a run folder"):
        store.delete("holiday photos")
    assert (tmp_path / "precious").is_dir() and (tmp_path / "runs" / "holiday photos").is_dir()


def test_damaged_folders_are_listed_never_raised(tmp_path, trained, spec, shapes):
    store = RunStore()
    good = store.save(trained, spec, shapes)
    root = good.path.parent

    def copy(name):
        shutil.copytree(good.path, root / name)
        return root / name

    (copy("bad-meta") / "meta.json").write_text("{not json")
    (copy("no-weights") / "model.weights.h5").unlink()
    (copy("bad-spec") / "spec.json").write_text(json.dumps({"arch": {"filters": "many"}}))
    (copy("bad-weights") / "model.weights.h5").write_bytes(b"PK\x03\x04 a zip, not HDF5")
    (copy("bad-history") / "history.json").write_text(json.dumps({"loss": ["x"]}))
    (copy("old-format") / "meta.json").write_text(json.dumps({"format": 99}))
    (copy("binary-meta") / "meta.json").write_bytes(b"\xff\xfe\x00")
    (root / "foreign").mkdir()
    (root / "foreign" / "notes.txt").write_text("hello")
    (root / ".tmp-20260101-000000000-abcd").mkdir()  # a save in progress: not listed
    (root / "README.txt").write_text("not a folder: not listed")

    records = {r.run_id: r for r in store.list_runs()}
    assert set(records) == {good.run_id, "bad-meta", "no-weights", "bad-spec", "bad-weights", "bad-history",
                            "old-format", "binary-meta", "foreign"}
    assert records[good.run_id].damaged is None
    expected = {
        "bad-meta": "meta.json is not valid JSON",
        "no-weights": "incomplete run: model.weights.h5 missing",
        "bad-spec": "spec.json is not a valid spec",
        "bad-weights": "model.weights.h5 is not an HDF5 weights file",
        "bad-history": "history.json holds values that are not numbers",
        "old-format": "meta.json is not a run description of format 1",
        "binary-meta": "meta.json is not text",
        "foreign": "not a run folder",
    }
    for run_id, reason in expected.items():
        assert records[run_id].damaged.startswith(reason), (run_id, records[run_id].damaged)
        with pytest.raises(RunStoreError, match="cannot be used"):
            store.load_model(run_id)
    assert records["no-weights"].name == good.name  # what could be read is still shown

    store.delete("bad-meta")  # damaged runs can be cleaned up
    assert not (root / "bad-meta").exists()


def test_weights_that_do_not_fit_the_spec_are_refused(trained, spec, shapes):
    store = RunStore()
    record = store.save(trained, spec, shapes)
    (record.path / "spec.json").write_text(spec.with_values(filters="8,8").to_json())
    with pytest.raises(RunStoreError, match="do not fit its spec"):
        store.load_model(record.run_id)


def test_unwritable_runs_folder_gives_a_clear_error(tmp_path, trained, spec, shapes):
    (tmp_path / "a file").write_text("")
    store = RunStore(tmp_path / "a file" / "runs")
    with pytest.raises(RunStoreError) as info:
        store.save(trained, spec, shapes)
    message = str(info.value)
    assert message.startswith(f"Cannot save the run in {tmp_path / 'a file' / 'runs'} (")
    assert "writable runs folder" in message and "\n" not in message
    assert store.list_runs() == []
    probabilities = trained.model(shapes.x_test[:2].astype(np.float32), training=False).numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0)  # the model in memory still works


def test_a_loaded_model_continues_with_its_history(trained, spec, shapes):
    store = RunStore()
    record = store.save(trained, spec, shapes)
    model = store.load_model(record.run_id)
    more = training.train(spec.with_values(epochs=3), shapes, model=model, initial_epoch=2)
    assert more.epochs_completed == 3 and len(more.history["loss"]) == 3
    assert more.history["loss"][:2] == trained.history["loss"]
    np.testing.assert_array_equal(more.initial_first_conv, trained.initial_first_conv)
    assert all(math.isfinite(v) for v in more.history["val_loss"])


def test_checkpoints_then_the_final_save_make_one_run(tmp_path, spec, shapes):
    store = RunStore()
    run_id = store.new_run_id()
    x = shapes.x_test[:32].astype(np.float32)
    checkpoints = []

    def checkpoint(progress):  # as a training worker does after every finished epoch
        record = store.save(progress, spec, shapes, owner="a", run_id=run_id)
        loaded = store.load_model(run_id)(x, training=False).numpy()
        listed = [r.run_id for r in store.list_runs()]
        checkpoints.append((record, loaded, progress.model(x, training=False).numpy(), listed))
        if len(checkpoints) == 1:
            store.rename(run_id, "my run")  # renamed on another page while it trains

    result = training.train(spec, shapes, on_epoch_end=checkpoint)
    assert [c[0].run_id for c in checkpoints] == [run_id, run_id]
    for epoch, (record, loaded, live, listed) in enumerate(checkpoints, start=1):
        assert listed == [run_id]  # listed while training, once
        assert record.metrics["epochs_completed"] == epoch and len(record.history["loss"]) == epoch
        assert record.metrics["stop_reason"] == "interrupted" and math.isnan(record.metrics["test_accuracy"])
        assert record.message.startswith(f"Interrupted after epoch {epoch} of 2") and record.owner == "a"
        np.testing.assert_allclose(loaded, live, atol=1e-6)  # the weights of that epoch
    first, second = checkpoints[0][0], checkpoints[1][0]
    assert first.name == "default on shapes #1" and second.name == "my run" and second.created == first.created
    assert json.loads((first.path / "metrics.json").read_text())["test_accuracy"] is None  # unknown, not a number

    final = store.save(result, spec, shapes, owner="a", run_id=run_id)
    assert [r.run_id for r in store.list_runs()] == [run_id]  # replaced, not a second run
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [run_id]  # no temporary folder left
    assert final.name == "my run" and final.created == first.created
    assert final.metrics["test_accuracy"] == result.test_accuracy and final.metrics["stop_reason"] == "completed"
    np.testing.assert_allclose(store.load_model(run_id)(x, training=False).numpy(),
                               result.model(x, training=False).numpy(), atol=1e-6)


def test_replacing_a_run_where_folders_cannot_be_swapped(tmp_path, trained, spec, shapes, monkeypatch):
    monkeypatch.setattr(runs, "_exchange", lambda first, second: False)  # e.g. macOS or Windows
    store = RunStore()
    earlier = store.save(trained, spec, shapes, name="earlier")
    replaced = store.save(trained, spec.with_values(seed=7), shapes, run_id=earlier.run_id)
    assert replaced.run_id == earlier.run_id and replaced.name == "earlier" and replaced.spec.seed == 7
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [earlier.run_id]


def test_a_failed_save_keeps_the_run_it_would_replace(tmp_path, trained, spec, shapes, monkeypatch):
    store = RunStore()
    earlier = store.save(trained, spec, shapes)

    def disk_full(folder, history):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runs, "_write_tensorboard", disk_full)
    with pytest.raises(RunStoreError, match="No space left on device"):
        store.save(trained, spec.with_values(seed=7), shapes, run_id=earlier.run_id)
    assert store.load(earlier.run_id).spec == spec and store.load_model(earlier.run_id) is not None
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [earlier.run_id]


def test_saving_under_an_id_never_replaces_a_folder_that_is_not_a_run(tmp_path, trained, spec, shapes):
    store = RunStore()
    (tmp_path / "runs" / "holiday photos").mkdir(parents=True)
    (tmp_path / "runs" / "holiday photos" / "beach.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(RunStoreError, match="is not a run folder, so no run was saved over it"):
        store.save(trained, spec, shapes, run_id="holiday photos")
    with pytest.raises(RunStoreError, match="Not a run id"):
        store.save(trained, spec, shapes, run_id="../elsewhere")
    assert [p.name for p in (tmp_path / "runs" / "holiday photos").iterdir()] == ["beach.jpg"]


def _age(path, days):
    """Make `path` and everything in it look last changed `days` days ago."""
    then = time.time() - days * 86400
    for item in [*path.rglob("*"), path]:
        os.utime(item, (then, then), follow_symlinks=False)


def test_counts_and_size_for_the_quotas_read_no_weights(tmp_path, trained, spec, shapes):
    store = RunStore()
    assert store.count_runs("a") == 0 and store.total_bytes() == 0  # no runs folder yet
    first = store.save(trained, spec, shapes, owner="a")
    store.save(trained, spec, shapes, owner="a")
    store.save(trained, spec, shapes, owner="b")
    store.save(trained, spec, shapes)  # the command line's: no owner
    (tmp_path / "runs" / "foreign").mkdir()
    assert (store.count_runs("a"), store.count_runs("b"), store.count_runs("nobody")) == (2, 1, 0)
    on_disk = sum(p.stat().st_size for p in (tmp_path / "runs").rglob("*") if p.is_file())
    assert store.total_bytes() == on_disk > 0
    # Counting reads meta.json alone: a damaged run (its weights gone) still counts for its owner.
    (first.path / "model.weights.h5").unlink()
    assert store.load(first.run_id).damaged and store.count_runs("a") == 2


def test_leftovers_of_killed_saves_are_swept_when_old(tmp_path, trained, spec, shapes):
    store = RunStore()
    run = store.save(trained, spec, shapes)
    root = tmp_path / "runs"
    killed_save = root / f".tmp-{run.run_id}-ab12"
    shutil.copytree(run.path, killed_save)  # a worker killed while saving: a whole folder left behind
    (root / f".tmp-deleting-{run.run_id}x").mkdir()  # ... or while deleting
    (root / ".tmp-meta.json").write_text("{}")
    live_save = root / f".tmp-{run.run_id}-cd34"
    live_save.mkdir()  # a save in progress
    for old in (killed_save, root / f".tmp-deleting-{run.run_id}x", root / ".tmp-meta.json"):
        _age(old, 1)
    assert store.sweep_temporary(min_age_s=600) == 3
    assert sorted(p.name for p in root.iterdir()) == sorted([run.run_id, live_save.name])
    assert store.load(run.run_id).damaged is None  # runs themselves are never swept, however old
    assert RunStore(tmp_path / "missing").sweep_temporary() == 0


def test_the_teacher_clears_runs_not_changed_for_days(tmp_path, trained, spec, shapes):
    store = RunStore()
    old = store.save(trained, spec, shapes, owner="a")
    damaged = store.save(trained, spec, shapes, owner="b")
    (damaged.path / "spec.json").unlink()
    renamed = store.save(trained, spec, shapes, owner="c")
    fresh = store.save(trained, spec, shapes, owner="d")
    foreign = tmp_path / "runs" / "holiday photos"
    foreign.mkdir()
    for path in (old.path, damaged.path, renamed.path, foreign):
        _age(path, 40)
    store.rename(renamed.run_id, "still in use")  # a change: it stays
    expected_bytes = sum(p.stat().st_size for folder in (old.path, damaged.path) for p in folder.rglob("*")
                         if p.is_file())

    assert store.clear_older_than(30) == (2, expected_bytes)
    assert {r.run_id for r in store.list_runs()} == {renamed.run_id, fresh.run_id, "holiday photos"}
    assert store.clear_older_than(30) == (0, 0)
    assert store.clear_older_than(0)[0] == 2  # everything that is a run; the foreign folder stays
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["holiday photos"]
