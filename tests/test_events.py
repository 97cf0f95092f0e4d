"""The protocol records of events.py: every kind crosses a process pipe whole, and stays light to import."""

import dataclasses
import multiprocessing
import subprocess
import sys

import numpy as np

from playground.training import events

SUMMARY = events.TrainSummary(test_accuracy=0.9, test_loss=0.3, train_seconds=2.5, images_per_second=800.0,
                              params=1234, epochs_completed=2, stop_reason="completed", test_size=100)

# One record of every kind (numpy arrays where the protocol has them).
RECORDS = [
    events.Start(epochs=2, initial_epoch=0, steps_per_epoch=10, batch_size=32, params=1234, train_size=320,
                 val_size=80),
    events.Batch(epoch=1, step=0, steps=10, seen=0, loss=2.3, accuracy=0.1, images_per_second=None, elapsed=0.0),
    events.Epoch(epoch=1, loss=1.0, accuracy=0.6, val_loss=None, val_accuracy=None, seconds=1.5,
                 images_per_second=900.0, lr=0.001, elapsed=1.5),
    events.Probe(epoch=1, maps={"block1_act1": np.arange(24, dtype=np.float32).reshape(2, 3, 4)}),
    events.ProbeImage(image=np.full((28, 28, 1), 7, np.uint8), label="circle"),
    events.Network(epoch=1.5, columns=(
        events.Column("input", "input", np.zeros((8, 8, 1), np.uint8), 1, (0,), (8, 8, 1)),
        events.Column("block1", "conv", np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4), 64, (0, 63), (8, 8, 64),
                      (4, 4), np.ones((2, 3), np.float32)),
        events.Column("output", "output", np.array([255, 0], np.uint8), 2, (0, 1), (2,)),
    )),
    events.DecisionSet(images=np.ones((4, 8, 8, 1), np.uint8), labels=np.array([0, 0, 1, 1], np.int16),
                       class_names=("cat", "dog")),
    events.Decision(epoch=1, predicted=np.array([0, 1, 1, 1], np.int16), correct=np.array([True, False, True, True]),
                    points=np.arange(8, dtype=np.float16).reshape(4, 2)),
    events.Weights(epoch=1, counts={"block1_conv1": np.arange(30, dtype=np.int32)},
                   edges={"block1_conv1": np.linspace(-1, 1, 31, dtype=np.float32)},
                   kernels={"block1": events.Kernels("block1_conv1", np.ones((2, 1, 3, 3), np.float16), (0,), 1)}),
    events.Checkpoint(run_id="20260101-000000000-ab12", epoch=1),
    events.Paused(epoch_end=True),
    events.Resumed(paused_seconds=3.5),
    events.Done(summary=SUMMARY, message="Trained 2 epochs.", history={"loss": [1.0, 0.5]}, run_id="r",
                save_error=""),
    events.Failed(message="no such dataset", dataset_error=True, run_id=None),
    events.Stopped(),
    events.Ready(pid=42, where="node 1a2b3c4d (lab-pc-3), CPU", node_id="1a2b3c4d", shares_disk=False),
    events.Prepared(),
    events.RunFolder(run_id="r", files={"meta.json": b"{}", "tb/events": bytes(range(256))}),
    events.RunJob(job_id="j", owner="alice", spec="{}", env={"PLAYGROUND_RUNS_DIR": "/tmp/runs"}, continue_from=None,
                  step=True),
    events.ControlJob(job_id="j", action="pause"),
    events.SetProbe(job_id="j", probe=events.ProbeImage(image=np.zeros((8, 8, 3), np.uint8), label="your picture")),
    events.PrepareData(spec="{}", env={}),
    events.RunJob(job_id="j", owner="bob", spec="{}", env={}, continue_from="r", step=False,
                  run_files={"model.weights.h5": b"\x89HDF"}, dataset_file=b"PK\x03\x04"),
    events.Shutdown(),
]


def _echo(connection) -> None:
    """In a spawned process: send back everything received, until None."""
    while (record := connection.recv()) is not None:
        connection.send(record)


def same(a, b) -> bool:
    """Equal records, numpy arrays compared by value and dtype, nested records, dicts and tuples item by item."""
    if type(a) is not type(b):
        return False
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b) and a.dtype == b.dtype
    return a == b


def test_every_kind_crosses_a_process_pipe_whole():
    context = multiprocessing.get_context("spawn")  # as the job manager starts its workers
    here, there = context.Pipe()
    child = context.Process(target=_echo, args=(there,), daemon=True)
    child.start()
    assert not same(RECORDS[3], dataclasses.replace(RECORDS[3], maps={"block1_act1": np.zeros((2, 3, 4), np.float32)}))
    network = RECORDS[5]
    changed = dataclasses.replace(network.columns[1], values=np.zeros((2, 4, 4), np.uint8))
    assert not same(network, dataclasses.replace(network, columns=(network.columns[0], changed, network.columns[2])))
    try:
        for record in [*RECORDS, events.FromJob(job_id="j", event=RECORDS[3])]:
            here.send(record)
            assert here.poll(60), f"no answer for {record!r}"
            assert same(here.recv(), record), record
        here.send(None)
        child.join(30)
    finally:
        if child.is_alive():
            child.kill()


def test_the_declared_kinds_cover_every_record():
    declared = {*events.TrainingEvent.__args__, *events.JobEvent.__args__, *events.WorkerMessage.__args__,
                *events.Command.__args__}
    assert declared == {type(r) for r in RECORDS} | {events.FromJob}
    assert set(events.TrainingEvent.__args__) <= set(events.JobEvent.__args__)
    assert set(events.FINAL_EVENTS) <= set(events.JobEvent.__args__)


def test_a_summary_has_the_keys_of_metrics_json():
    assert list(SUMMARY.as_dict()) == ["test_accuracy", "test_loss", "train_seconds", "images_per_second", "params",
                                       "epochs_completed", "stop_reason", "test_size"]


def test_the_web_server_side_imports_neither_numpy_nor_tensorflow():
    code = ("import sys, playground.training.events, playground.training.jobs; "
            "print('numpy' in sys.modules, 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
