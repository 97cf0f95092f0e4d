"""Run comparison helpers: which spec fields differ, table rows (damaged and interrupted runs too), run labels,
who may manage a run."""

import math
from pathlib import Path

from playground.runs.compare import accuracy_text, differing_fields, largest_task_group, may_manage, run_row, task_key
from playground.runs.record import RunRecord
from playground.spec.experiment import ExperimentSpec
from playground.spec.presets import preset_spec
from playground.ui.run_picker import run_label


def record(spec=ExperimentSpec(), **changes):
    base = dict(run_id="20250101-000000000-abcd", path=Path("/runs/x"), name="run", spec=spec,
                dataset="shapes", metrics={"test_accuracy": 0.9, "params": 1234, "train_seconds": 3.5,
                                          "images_per_second": 800.0, "epochs_completed": 2, "stop_reason": "completed"},
                created="2025-01-01T10:20:30+00:00", owner="me")
    base.update(changes)
    return RunRecord(**base)


def test_differing_fields_names_only_what_changed():
    a = ExperimentSpec().with_values(dataset="shapes", filters="8,16", learning_rate=0.01)
    b = a.with_values(filters="8,32", batch_norm=False)
    c = a.with_values(learning_rate=0.001)
    assert differing_fields([a, b]) == ["filters", "batch_norm"]
    assert differing_fields([a, b, c]) == ["filters", "batch_norm", "learning_rate"]
    assert differing_fields([a, a]) == [] and differing_fields([a]) == []
    # Presets change many fields; the preset and dataset names have columns of their own.
    assert "dataset" not in differing_fields([a, a.with_values(dataset="digits")])
    assert "preset" not in differing_fields([preset_spec("lenet5"), preset_spec("mini_vgg")])
    assert {"kernel_size", "activation"} <= set(differing_fields([preset_spec("lenet5"), preset_spec("mini_vgg")]))


def test_run_row_columns_and_damaged_rows():
    spec = ExperimentSpec().with_values(dataset="shapes", filters="8,16", dense_units="")
    row = run_row(record(spec), ["filters", "dense_units", "batch_norm"])
    assert row["filters"] == "8,16" and row["dense_units"] == "none" and row["batch_norm"] == "yes"
    assert (row["name"], row["dataset"], row["preset"], row["parameters"], row["test accuracy"]) == ("run", "shapes", "default", 1234, 0.9)
    assert row["created"] == "2025-01-01 10:20" and row["status"] == "completed"
    assert list(row)[:8] == ["name", "dataset", "preset", "test accuracy", "parameters", "train seconds", "images/s", "epochs trained"]
    broken = run_row(record(None, name="", metrics={"test_accuracy": math.nan}, damaged="metrics.json is not valid JSON"), ["filters"])
    assert broken["status"] == "damaged: metrics.json is not valid JSON"
    assert broken["test accuracy"] is None and broken["filters"] == "" and broken["name"] == "20250101-000000000-abcd"


def test_a_run_saved_after_an_epoch_has_no_test_accuracy_and_says_so():
    # As RunStore reads a checkpoint: the test accuracy stored as null comes back as NaN.
    interrupted = record(ExperimentSpec().with_values(dataset="shapes"), metrics={
        "test_accuracy": math.nan, "test_loss": math.nan, "params": 1234, "train_seconds": 3.5,
        "images_per_second": 800.0, "epochs_completed": 3, "stop_reason": "interrupted", "test_size": 0})
    row = run_row(interrupted)
    assert row["test accuracy"] is None and row["epochs trained"] == 3 and row["status"] == "interrupted"
    assert run_label(interrupted) == "run · shapes · test acc – · 2025-01-01 10:20"
    assert run_label(record(ExperimentSpec().with_values(dataset="shapes"))) == "run · shapes · test acc 90.0% · 2025-01-01 10:20"


def test_task_groups_for_ensembles():
    shapes = [record(ExperimentSpec().with_values(dataset="shapes"), run_id=f"s{i}", class_names=("a", "b"), input_shape=(28, 28, 1)) for i in range(2)]
    digits = [record(ExperimentSpec().with_values(dataset="digits"), run_id=f"d{i}", class_names=("0", "1"), input_shape=(8, 8, 1)) for i in range(3)]
    assert [r.run_id for r in largest_task_group([shapes[0], *digits, shapes[1]])] == ["d0", "d1", "d2"]
    assert [r.run_id for r in largest_task_group([shapes[0], digits[0], shapes[1]])] == ["s0", "s1"]
    assert largest_task_group([]) == []
    assert task_key(shapes[0]) == ("shapes", ("a", "b"), (28, 28, 1))


def test_may_manage():
    assert may_manage(record(owner="other"), "me", protected=False)
    assert may_manage(record(owner=None), "me", protected=False)
    assert may_manage(record(owner="me"), "me", protected=True)
    assert not may_manage(record(owner="other"), "me", protected=True)
    # With a teacher code, runs saved from the command line (no owner) are the teacher's: the code unlocks them.
    assert not may_manage(record(owner=None), "me", protected=True)
    assert not may_manage(record(owner=None), "", protected=True)


def test_an_imported_runs_numbers_are_shown_as_claims_never_in_the_sorted_columns():
    spec = ExperimentSpec().with_values(dataset="shapes")
    imported = record(spec, metrics={"test_accuracy": 0.95, "test_loss": 0.1, "params": 1234, "train_seconds": 0.01,
                                     "images_per_second": 1e9, "epochs_completed": 2, "stop_reason": "imported"})
    assert imported.imported and not record(spec).imported
    row = run_row(imported)
    assert row["test accuracy"] is None and row["train seconds"] is None and row["images/s"] is None
    assert row["epochs trained"] is None and row["parameters"] == 1234  # the count of the rebuilt model is measured
    assert row["status"] == "imported: claimed 95.0%"
    assert accuracy_text(imported) == "claimed 95.0%"
    assert run_label(imported) == "run · shapes · claimed 95.0% · 2025-01-01 10:20"
    unclaimed = record(spec, metrics={"test_accuracy": math.nan, "params": 1234, "stop_reason": "imported"})
    assert accuracy_text(unclaimed) == "no claimed accuracy" and run_row(unclaimed)["status"] == "imported: no claimed accuracy"
