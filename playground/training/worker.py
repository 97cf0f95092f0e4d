"""A training worker process: imports TensorFlow once, then trains the jobs it is sent.

`JobManager` (in `jobs.py`) starts each worker with the multiprocessing "spawn"
context and talks to it over two one-way pipes:

    commands (manager -> worker): {"cmd": "run", "job_id", "spec", "owner", "env",
                                   "continue_from", "step"}
                                  {"cmd": "pause" | "resume" | "step" | "stop" | "discard", "job_id"}
                                  {"cmd": "prepare", "spec", "env"}: load the spec's dataset
                                  into this process's cache while idle, so the next
                                  job's first point does not wait for it
                                  {"cmd": "shutdown"}
    events   (worker -> manager): {"type": "ready", "pid"} once TensorFlow is imported, then per job
                                  the training events of `training.train` plus
                                  "probe_image", "paused", "resumed",
                                  {"type": "checkpoint", "run_id", "epoch"} after an
                                  epoch's weights are saved, and one of
                                  "done" | "failed" | "stopped" with the job's "job_id".

Finished epochs are saved as the job's run (a checkpoint: test set not
evaluated, stop reason "interrupted"; at most one save per CHECKPOINT_INTERVAL_S),
so a worker killed mid-training leaves its last saved epoch behind. The final
save replaces that checkpoint under the same run id; a discarded job deletes it.

The worker never outlives the app: it exits when the command pipe reaches its
end (the manager closed it or its process died) or when its parent changes.
"""

from __future__ import annotations

import gc
import os
import queue
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # the worker imports the training stack only once it runs
    from playground.data.datasets import Dataset
    from playground.runs.store import RunStore
    from playground.spec.experiment import ExperimentSpec
    from playground.training.loop import TrainResult

# Environment variables a job carries from the app, so a warm worker uses the
# settings (runs and data folders) the app has at submit time.
JOB_ENV_PREFIX = "PLAYGROUND_"
CHECKPOINT_INTERVAL_S = 2.0  # at most one checkpoint save per this many seconds of a job
WORKER_NICENESS = 10  # CPU priority of training processes below the web server's (0 = equal)


def kept_epoch_note(epoch: int) -> str:
    """The words telling people which epoch a checkpointed run keeps, e.g. "the run keeps the weights of epoch 3"."""
    return f"the run keeps the weights of epoch {epoch}"


class Outbox:
    """Thread-safe sender of events to the manager (training and control threads both send)."""

    def __init__(self, connection: Connection):
        self._connection = connection
        self._lock = threading.Lock()

    def send(self, event: dict[str, Any]) -> None:
        """Send one event; a closed pipe means the app is gone, so the worker exits."""
        with self._lock:
            try:
                self._connection.send(event)
            except (BrokenPipeError, EOFError, OSError):
                os._exit(0)


class Control:
    """The user's pause / step / stop requests for one running job.

    `wait_if_paused` and `should_stop` are handed to `training.train`, which
    calls them between batches and at each epoch end.
    """

    def __init__(self, job_id: str, outbox: Outbox, *, step: bool = False):
        self.job_id = job_id
        self._outbox = outbox
        self._cond = threading.Condition()
        self._paused = False
        self._pause_at_epoch_end = step  # "step": run to the end of the epoch, then pause
        self.stop_requested = False
        self.discard = False  # stop and throw the model away (Reset, or the session is gone)

    def apply(self, command: str) -> None:
        """Apply "pause", "resume", "step", "stop" or "discard"."""
        with self._cond:
            if command == "pause":
                self._paused = True
            elif command == "resume":
                self._paused = False
                self._pause_at_epoch_end = False
            elif command == "step":
                self._paused = False
                self._pause_at_epoch_end = True
            elif command in ("stop", "discard"):
                self.stop_requested = True
                self.discard = self.discard or command == "discard"
            self._cond.notify_all()

    def should_stop(self) -> bool:
        """True once the user pressed Stop or Reset."""
        return self.stop_requested

    def wait_if_paused(self, epoch_end: bool = False) -> None:
        """Block while the job is paused; a pending step pauses here at the end of an epoch.

        Args:
            epoch_end: True when called after an epoch (and its validation) finished.
        """
        with self._cond:
            if epoch_end and self._pause_at_epoch_end:
                self._pause_at_epoch_end = False
                self._paused = True
            if not self._paused or self.stop_requested:
                return
            self._outbox.send({"type": "paused", "job_id": self.job_id, "epoch_end": epoch_end})
            started = time.monotonic()
            while self._paused and not self.stop_requested:
                self._cond.wait(0.25)
        self._outbox.send({"type": "resumed", "job_id": self.job_id, "paused_seconds": time.monotonic() - started})


def main(commands: Connection, events: Connection, threads: int = 0) -> None:
    """Entry point of a worker process.

    Args:
        commands: receiving end of the manager's command pipe.
        events: sending end of the event pipe.
        threads: TensorFlow intra/inter-op threads; 0 = every core this process may use.
    """
    # Ctrl+C in the terminal reaches the whole process group; the app decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Training takes every core it is given; a lower CPU priority lets the web server
    # answer pages and slider moves at once while it trains, at little cost to training
    # (the server is idle most of the time).
    _lower_priority(WORKER_NICENESS)
    outbox = Outbox(events)
    parent = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()

    # The training stack, imported now so the first job starts at once; thread pools are
    # fixed before TensorFlow runs its first op.
    from playground.data import datasets  # noqa: F401
    from playground.runs import store as runs  # noqa: F401
    from playground.training import loop as training  # noqa: F401

    training.configure_threads(threads or None, threads or None)

    jobs: queue.Queue[tuple[dict[str, Any], Control | None] | None] = queue.Queue()
    threading.Thread(target=_read_commands, args=(commands, jobs, outbox), name="commands", daemon=True).start()
    outbox.send({"type": "ready", "pid": os.getpid()})
    while True:
        item = jobs.get()
        if item is None:
            break
        message, control = item
        if control is None:  # a "prepare" command, not a job
            prepare_data(message)
            continue
        run_job(message, control, outbox)
        gc.collect()
    os._exit(0)


def _lower_priority(increment: int) -> None:
    """Raise this process's niceness by `increment` where the OS allows it (never fatal)."""
    try:
        os.nice(increment)
    except (AttributeError, OSError):  # no os.nice (Windows) or not permitted
        pass


def _watch_parent(parent: int) -> None:
    # The command pipe normally tells us the app is gone; this also covers a parent
    # killed while something else still holds the pipe open.
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def _read_commands(commands: Connection, jobs: queue.Queue, outbox: Outbox) -> None:
    controls: dict[str, Control] = {}
    while True:
        try:
            message = commands.recv()
        except (EOFError, OSError):
            os._exit(0)  # the app closed the pipe or died: never leave an orphan behind
        command = message.get("cmd")
        if command == "run":
            control = Control(message["job_id"], outbox, step=bool(message.get("step")))
            controls = {message["job_id"]: control}  # one job at a time; older controls are done
            jobs.put((message, control))
        elif command == "prepare":
            jobs.put((message, None))
        elif command == "shutdown":
            for control in controls.values():
                control.apply("discard")
            jobs.put(None)
            return
        elif message.get("job_id") in controls:
            controls[message["job_id"]].apply(command)


def _apply_job_env(job: dict[str, Any]) -> None:
    """Take over the app's PLAYGROUND_* settings that came with a command (runs and data folders)."""
    for name, value in job.get("env", {}).items():
        if name.startswith(JOB_ENV_PREFIX):
            os.environ[name] = value


def prepare_data(message: dict[str, Any]) -> None:
    """Load the dataset of a "prepare" command into the process's cache, quietly.

    Only data that is already here is loaded: a named dataset that would need a
    download is left for the job. Any failure is left for the job too, which
    loads the same data again and reports it.

    Args:
        message: the "prepare" command: {"cmd", "spec" (JSON), "env"}.
    """
    from playground.data import datasets
    from playground.data.catalog import is_named_dataset
    from playground.spec.experiment import ExperimentSpec

    _apply_job_env(message)
    try:
        spec = ExperimentSpec.from_json(message["spec"])
        name = spec.data.dataset
        if is_named_dataset(name) and not any(
                s.name == name and s.available_locally for s in datasets.dataset_status()):
            return
        datasets.load_for_spec(spec)
    except Exception:  # best effort: a failure here must never end the worker
        pass


def run_job(job: dict[str, Any], control: Control, outbox: Outbox) -> None:
    """Train one job, checkpointing finished epochs, and report how it ended ("done", "failed" or "stopped").

    Args:
        job: the "run" command (see the module docstring).
        control: the job's pause/step/stop state.
        outbox: where events go.
    """
    from playground.data import datasets
    from playground.runs import store as runs
    from playground.training import loop as training
    from playground.spec.experiment import ExperimentSpec, SpecError

    job_id = job["job_id"]

    def emit(event: dict[str, Any]) -> None:
        outbox.send({**event, "job_id": job_id})

    _apply_job_env(job)
    store = runs.RunStore()
    # A new run id even when continuing: the continued run stays as it was, whatever happens to this job.
    checkpoint = _Checkpoint(store, job.get("owner"), emit)
    try:
        spec = ExperimentSpec.from_json(job["spec"])
        dataset = datasets.load_for_spec(spec)
        model, initial_epoch = None, 0
        if job.get("continue_from"):
            # The saved model remembers its history, so the curves go on where they stopped.
            previous = store.load(job["continue_from"])
            model = store.load_model(job["continue_from"])
            initial_epoch = int(previous.metrics.get("epochs_completed", 0))
            # `epochs` counts from the start of the model's life: train `spec.epochs` more.
            spec = spec.with_values(epochs=initial_epoch + spec.train.epochs)
        probe = dataset.x_test[0]
        emit({"type": "probe_image", "image": probe, "label": dataset.class_names[int(dataset.y_test[0])]})
        result = training.train(
            spec,
            dataset,
            model=model,
            initial_epoch=initial_epoch,
            on_progress=emit,
            should_stop=control.should_stop,
            wait_if_paused=control.wait_if_paused,
            probe_image=probe,
            on_epoch_end=lambda progress: checkpoint.save(progress, spec, dataset),
        )
    except (datasets.DatasetError, SpecError) as exc:
        emit({"type": "failed", "message": str(exc), "dataset_error": isinstance(exc, datasets.DatasetError)})
        return
    except Exception as exc:  # report any failure as one line; the traceback goes to the server log
        traceback.print_exc(file=sys.stderr)
        first_line = (str(exc).strip().splitlines() or [""])[0]
        message = f"Training failed: {type(exc).__name__}: {first_line}"
        kept = checkpoint.epoch  # the finished epochs stay usable as the job's run
        emit({"type": "failed", "message": f"{message}; {kept_epoch_note(kept)}" if kept else message,
              "dataset_error": False, "run_id": checkpoint.run_id if kept else None})
        return
    if control.discard:
        checkpoint.discard()
        emit({"type": "stopped"})
        return
    summary = {
        "test_accuracy": float(result.test_accuracy),
        "test_loss": float(result.test_loss),
        "epochs_completed": int(result.epochs_completed),
        "train_seconds": float(result.train_seconds),
        "images_per_second": float(result.images_per_second),
        "stop_reason": result.stop_reason,
        "message": result.message,
        "params": int(result.params),
        "history": {key: [float(v) for v in values] for key, values in result.history.items()},
    }
    run_id, save_error = None, ""
    try:
        # Replaces the last checkpoint: one run per job.
        record = store.save(result, spec, dataset, owner=job.get("owner"), run_id=checkpoint.run_id)
        run_id = record.run_id
    except Exception as exc:  # an unwritable folder must not lose the results on screen
        if checkpoint.epoch:
            run_id = checkpoint.run_id
            save_error = f"The final run could not be saved ({exc}); {kept_epoch_note(checkpoint.epoch)}."
        else:
            save_error = f"The run could not be saved, so it will not appear on the other pages: {exc}"
    emit({"type": "done", "run_id": run_id, "save_error": save_error, **summary})
    del result, model
    import keras

    keras.backend.clear_session()


class _Checkpoint:
    """Saves a job's run after finished epochs, under the run id its final save will use.

    A save costs about 0.1 s, so epochs shorter than CHECKPOINT_INTERVAL_S are saved
    only every that many seconds: a kill then loses at most that much training, and
    toy runs with sub-second epochs do not slow down by a third.

    Args:
        store: the job's `runs.RunStore`.
        owner: the job's owner, stored with the run.
        emit: sends an event of this job to the manager.
    """

    def __init__(self, store: RunStore, owner: str | None, emit: Callable[[dict[str, Any]], None]):
        self.store = store
        self.owner = owner
        self.run_id: str = store.new_run_id()
        self.epoch = 0  # the epoch whose weights the saved run holds; 0 = nothing saved
        self._emit = emit
        self._last_save = time.monotonic()  # the job's start counts as a save for the interval

    def save(self, progress: TrainResult, spec: ExperimentSpec, dataset: Dataset) -> None:
        """Save the run so far (for `training.train`'s on_epoch_end) and report it with a "checkpoint" event.

        Args:
            progress: the TrainResult snapshot of the finished epoch.
            spec: the spec being trained.
            dataset: the dataset it trains on.
        """
        from playground.runs.store import RunStoreError

        if time.monotonic() - self._last_save < CHECKPOINT_INTERVAL_S:
            return
        self._last_save = time.monotonic()
        try:
            self.store.save(progress, spec, dataset, owner=self.owner, run_id=self.run_id)
        except RunStoreError:
            return  # e.g. an unwritable folder: training goes on, and the final save reports it
        except Exception:  # a checkpoint must never end the training; the traceback goes to the server log
            traceback.print_exc(file=sys.stderr)
            return
        self.epoch = progress.epochs_completed
        # Sent right after the save: a kill in between leaves a run one epoch ahead of what the manager knows.
        self._emit({"type": "checkpoint", "run_id": self.run_id, "epoch": self.epoch})

    def discard(self) -> None:
        """Delete the saved run (the job was reset or its session ended); never raises."""
        from playground.runs.store import RunStoreError

        if self.epoch:
            try:
                self.store.delete(self.run_id)
            except RunStoreError:
                pass  # already deleted by its owner on another page
