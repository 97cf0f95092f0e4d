"""A training worker process: imports TensorFlow once, then trains the jobs it is sent.

`JobManager` (in `jobs.py`) starts each worker with the multiprocessing "spawn"
context and talks to it over two one-way pipes, with the records of
`events.py`: commands (RunJob, ControlJob, SetProbe, PrepareData, Shutdown) come in;
Ready goes out once TensorFlow is imported, then, for each job, its events
wrapped in FromJob: the training events of `loop.train` plus ProbeImage,
Paused, Resumed, Checkpoint after an epoch's weights are saved, and one of
Done, Failed or Stopped at the end; Prepared follows each "prepare" carried out.
Jobs run in the order they came; a "prepare" waits only while no job does
(see `WorkQueue`).

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
import shutil
import signal
import sys
import threading
import time
import traceback
from collections import deque
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from playground.training import events

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
    """Thread-safe sender of events to the manager (training and control threads both send).

    Args:
        connection: the event pipe, or anything with its `send(message)` (a Ray actor's event buffer).
    """

    def __init__(self, connection: Connection | Any):
        self._connection = connection
        self._lock = threading.Lock()

    def send(self, message: events.WorkerMessage) -> None:
        """Send one message; a closed pipe means the app is gone, so the worker exits."""
        with self._lock:
            try:
                self._connection.send(message)
            except (BrokenPipeError, EOFError, OSError):
                os._exit(0)


class Control:
    """The user's pause / step / stop requests for one running job, and the probe image they picked.

    `wait_if_paused` and `should_stop` are handed to `training.train`, which
    calls them between batches and at each epoch end; `probe` tells its live
    views which image to draw.
    """

    def __init__(self, job_id: str, outbox: Outbox, *, step: bool = False):
        self.job_id = job_id
        self._outbox = outbox
        self._cond = threading.Condition()
        self._paused = False
        self._pause_at_epoch_end = step  # "step": run to the end of the epoch, then pause
        self.stop_requested = False
        self.discard = False  # stop and throw the model away (Reset, or the session is gone)
        self._probe: events.ProbeImage | None = None  # the user's pick (SetProbe); None = the job's default

    def set_probe(self, probe: events.ProbeImage) -> None:
        """Draw the network diagram for `probe` from its next refresh on (one assignment: no lock needed)."""
        self._probe = probe

    def probe(self, default: events.ProbeImage) -> events.ProbeImage:
        """The probe image to draw now: the user's latest pick when it has `default`'s shape, else `default`."""
        chosen = self._probe
        return chosen if chosen is not None and chosen.image.shape == default.image.shape else default

    def apply(self, action: events.ControlAction) -> None:
        """Apply "pause", "resume", "step", "stop" or "discard"."""
        with self._cond:
            if action == "pause":
                self._paused = True
            elif action == "resume":
                self._paused = False
                self._pause_at_epoch_end = False
            elif action == "step":
                self._paused = False
                self._pause_at_epoch_end = True
            elif action in ("stop", "discard"):
                self.stop_requested = True
                self.discard = self.discard or action == "discard"
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
            self._outbox.send(events.FromJob(self.job_id, events.Paused(epoch_end=epoch_end)))
            started = time.monotonic()
            while self._paused and not self.stop_requested:
                self._cond.wait(0.25)
        self._outbox.send(events.FromJob(self.job_id, events.Resumed(paused_seconds=time.monotonic() - started)))


class WorkQueue:
    """What the worker does next: its jobs in the order they came, else the newest "prepare" command.

    At most one prepare waits (a newer one replaces it), and a job arriving
    drops it, so preparing data for a page never delays a job. Filled by the
    command thread, emptied by the main thread.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._jobs: deque[tuple[events.RunJob, Control]] = deque()
        self._prepare: events.PrepareData | None = None
        self._closed = False

    def add_job(self, job: events.RunJob, control: Control) -> None:
        """Queue a job (behind the jobs already queued); a waiting prepare is dropped."""
        with self._cond:
            self._jobs.append((job, control))
            self._prepare = None
            self._cond.notify_all()

    def add_prepare(self, command: events.PrepareData) -> None:
        """Let `command` wait for an idle moment, replacing a prepare still waiting; ignored while a job waits."""
        with self._cond:
            if not self._jobs:
                self._prepare = command
                self._cond.notify_all()

    def close(self) -> None:
        """Make `take` return None from now on (shut down)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self) -> tuple[events.RunJob, Control] | events.PrepareData | None:
        """Block until there is work: the oldest job, else the waiting prepare; None once closed."""
        with self._cond:
            while not (self._closed or self._jobs or self._prepare is not None):
                self._cond.wait()
            if self._closed:
                return None
            if self._jobs:
                return self._jobs.popleft()
            command, self._prepare = self._prepare, None
            return command


def main(commands: Connection, event_pipe: Connection, threads: int = 0) -> None:
    """Entry point of a worker process.

    Args:
        commands: receiving end of the manager's command pipe.
        event_pipe: sending end of the event pipe.
        threads: TensorFlow intra/inter-op threads; 0 = every core this process may use.
    """
    # Ctrl+C in the terminal reaches the whole process group; the app decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    outbox = Outbox(event_pipe)
    parent = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()
    work = start(threads)
    threading.Thread(target=_read_commands, args=(commands, work, outbox), name="commands", daemon=True).start()
    outbox.send(events.Ready(pid=os.getpid(), where="this machine, " + device_words()))
    serve(work, outbox)
    os._exit(0)


def start(threads: int) -> WorkQueue:
    """Make this process a worker: low CPU priority, the training stack imported, thread pools fixed.

    Args:
        threads: TensorFlow intra/inter-op threads; 0 = every core this process may use.

    Returns:
        The empty WorkQueue that `serve` works through.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Training takes every core it is given; a lower CPU priority lets the web server
    # answer pages and slider moves at once while it trains, at little cost to training
    # (the server is idle most of the time).
    _lower_priority(WORKER_NICENESS)
    # The training stack, imported now so the first job starts at once; thread pools are
    # fixed before TensorFlow runs its first op.
    from playground.data import datasets  # noqa: F401
    from playground.runs import store as runs  # noqa: F401
    from playground.training import loop as training  # noqa: F401

    training.configure_threads(threads or None, threads or None)
    return WorkQueue()


def serve(work: WorkQueue, outbox: Outbox, *, own_runs_dir: Path | None = None) -> None:
    """Carry out the jobs and prepares of `work` until it is closed.

    Args:
        work: filled by `handle_command`.
        outbox: where events go.
        own_runs_dir: a runs folder of this machine, for a worker that does not share the
            app's disk: runs are saved there and each save is sent as a RunFolder message.
            None = save into the app's runs folder.
    """
    while (item := work.take()) is not None:
        if isinstance(item, events.PrepareData):
            prepare_data(item)
            outbox.send(events.Prepared())
            continue
        job, control = item
        run_job(job, control, outbox, own_runs_dir=own_runs_dir)
        gc.collect()


def device_words() -> str:
    """What this process trains on, for people: "CPU" or "1 GPU" (TensorFlow's visible devices)."""
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    return f"{gpus} GPU" if gpus else "CPU"


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


def _read_commands(commands: Connection, work: WorkQueue, outbox: Outbox) -> None:
    controls: dict[str, Control] = {}
    while True:
        try:
            command: events.Command = commands.recv()
        except (EOFError, OSError):
            os._exit(0)  # the app closed the pipe or died: never leave an orphan behind
        if not handle_command(command, controls, work, outbox):
            return


def handle_command(command: events.Command, controls: dict[str, Control], work: WorkQueue, outbox: Outbox) -> bool:
    """Act on one command from the manager.

    Args:
        command: the command.
        controls: the running job's Control by job id (updated here).
        work: the worker's queue.
        outbox: where the job's events go.

    Returns:
        False after Shutdown (the running job is discarded and `work` closed), else True.
    """
    match command:
        case events.RunJob():
            control = Control(command.job_id, outbox, step=command.step)
            controls.clear()  # one job at a time; older controls are done
            controls[command.job_id] = control
            work.add_job(command, control)
        case events.PrepareData():
            work.add_prepare(command)
        case events.Shutdown():
            for control in controls.values():
                control.apply("discard")
            work.close()
            return False
        case events.ControlJob() if command.job_id in controls:
            controls[command.job_id].apply(command.action)
        case events.SetProbe() if command.job_id in controls:
            controls[command.job_id].set_probe(command.probe)
    return True


def _apply_job_env(command: events.RunJob | events.PrepareData) -> None:
    """Take over the app's PLAYGROUND_* settings that came with a command (runs and data folders)."""
    for name, value in command.env.items():
        if name.startswith(JOB_ENV_PREFIX):
            os.environ[name] = value


def prepare_data(command: events.PrepareData) -> None:
    """Get ready for a job of the command's spec, quietly: its dataset loaded, its model built and traced.

    Only data that is already here is loaded: a named dataset that would need a
    download is left for the job. The model is warmed up (`warmup.warm_up`), so a
    job of this spec trains its first batch in well under a second. Any failure
    is left for the job, which loads the same data again and reports it.

    Args:
        command: the PrepareData command.
    """
    from playground.data import datasets
    from playground.data.catalog import is_named_dataset
    from playground.spec.experiment import ExperimentSpec
    from playground.training import warmup

    _apply_job_env(command)
    try:
        spec = ExperimentSpec.from_json(command.spec)
        name = spec.data.dataset
        if is_named_dataset(name) and not any(
                s.name == name and s.available_locally for s in datasets.dataset_status()):
            return
        warmup.warm_up(spec, datasets.load_for_spec(spec))
    except Exception:  # best effort: a failure here must never end the worker
        pass


def run_job(job: events.RunJob, control: Control, outbox: Outbox, *, own_runs_dir: Path | None = None) -> None:
    """Train one job, checkpointing finished epochs, and report how it ended (Done, Failed or Stopped).

    Args:
        job: the RunJob command.
        control: the job's pause/step/stop state.
        outbox: where events go.
        own_runs_dir: a runs folder of this machine when it does not share the app's disk:
            the job's files come with the command (the continued run, an uploaded dataset),
            its saves go there and each is sent as a RunFolder message before the event that
            names it; the job's folders there are deleted when it ends. None = the app's folders.
    """
    from playground.runs import store as runs

    _apply_job_env(job)
    if own_runs_dir is None:
        _train_job(job, control, outbox, runs.RunStore(), ship=None)
        return
    store = runs.RunStore(own_runs_dir)

    def ship(run_id: str) -> None:
        outbox.send(events.RunFolder(run_id=run_id, files=store.read_files(run_id)))

    try:
        _train_job(job, control, outbox, store, ship=ship)
    finally:
        for folder in own_runs_dir.iterdir() if own_runs_dir.is_dir() else ():
            shutil.rmtree(folder, ignore_errors=True)  # what reached the app is kept there


def _train_job(job: events.RunJob, control: Control, outbox: Outbox, store: RunStore,
               ship: Callable[[str], None] | None) -> None:
    """`run_job` with the job's runs folder chosen: `ship(run_id)` (when given) sends a saved run to the app."""
    from playground.data import datasets
    from playground.training import loop as training
    from playground.spec.experiment import ExperimentSpec, SpecError

    def emit(event: events.JobEvent) -> None:
        outbox.send(events.FromJob(job.job_id, event))

    # A new run id even when continuing: the continued run stays as it was, whatever happens to this job.
    checkpoint = _Checkpoint(store, job.owner, emit, ship)
    try:
        spec = ExperimentSpec.from_json(job.spec)
        if job.dataset_file is not None:
            _keep_dataset_copy(spec.data.dataset, job.dataset_file, store.root.parent / "datasets")
        if job.continue_from and job.run_files is not None:
            store.write_files(job.continue_from, job.run_files)
        dataset = datasets.load_for_spec(spec)
        model, initial_epoch = None, 0
        if job.continue_from:
            # The saved model remembers its history, so the curves go on where they stopped.
            previous = store.load(job.continue_from)
            model = store.load_model(job.continue_from)
            initial_epoch = int(previous.metrics.get("epochs_completed", 0))
            # `epochs` counts from the start of the model's life: train `spec.epochs` more.
            spec = spec.with_values(epochs=initial_epoch + spec.train.epochs)
        probe = events.ProbeImage(image=dataset.x_test[0], label=dataset.class_names[int(dataset.y_test[0])])
        emit(probe)
        result = training.train(
            spec,
            dataset,
            model=model,
            initial_epoch=initial_epoch,
            on_progress=emit,
            should_stop=control.should_stop,
            wait_if_paused=control.wait_if_paused,
            probe_image=probe.image,
            live_probe=lambda: control.probe(probe),
            on_epoch_end=lambda progress: checkpoint.save(progress, spec, dataset),
        )
    except (datasets.DatasetError, SpecError) as exc:
        emit(events.Failed(message=str(exc), dataset_error=isinstance(exc, datasets.DatasetError), run_id=None))
        return
    except Exception as exc:  # report any failure as one line; the traceback goes to the server log
        traceback.print_exc(file=sys.stderr)
        first_line = (str(exc).strip().splitlines() or [""])[0]
        message = f"Training failed: {type(exc).__name__}: {first_line}"
        kept = checkpoint.epoch  # the finished epochs stay usable as the job's run
        emit(events.Failed(message=f"{message}; {kept_epoch_note(kept)}" if kept else message,
                           dataset_error=False, run_id=checkpoint.run_id if kept else None))
        return
    if control.discard:
        checkpoint.discard()
        emit(events.Stopped())
        return
    run_id, save_error = None, ""
    try:
        # Replaces the last checkpoint: one run per job.
        record = store.save(result, spec, dataset, owner=job.owner, run_id=checkpoint.run_id)
        if ship is not None:
            ship(record.run_id)
        run_id = record.run_id
    except Exception as exc:  # an unwritable folder must not lose the results on screen
        if checkpoint.epoch:
            run_id = checkpoint.run_id
            save_error = f"The final run could not be saved ({exc}); {kept_epoch_note(checkpoint.epoch)}."
        else:
            save_error = f"The run could not be saved, so it will not appear on the other pages: {exc}"
    emit(events.Done(
        summary=result.summary(), message=result.message,
        history={key: [float(v) for v in values] for key, values in result.history.items()},
        run_id=run_id, save_error=save_error,
    ))
    del result, model
    import keras

    keras.backend.clear_session()


def _keep_dataset_copy(name: str, data: bytes, folder: Path) -> None:
    """Store the dataset file a spec names (`name`, a path on the app's machine) here, and read it from there.

    Kept under its content hash, with its own file name (which names the dataset);
    a copy already here is used as it is.
    """
    import hashlib

    from playground.data import datasets

    copy = folder / hashlib.sha256(data).hexdigest()[:32] / Path(name).name
    if not copy.is_file():
        copy.parent.mkdir(parents=True, exist_ok=True)
        partial = copy.with_name(copy.name + ".part")
        partial.write_bytes(data)
        os.replace(partial, copy)
    datasets.use_copy(name, copy)


class _Checkpoint:
    """Saves a job's run after finished epochs, under the run id its final save will use.

    A save costs about 0.1 s, so epochs shorter than CHECKPOINT_INTERVAL_S are saved
    only every that many seconds: a kill then loses at most that much training, and
    toy runs with sub-second epochs do not slow down by a third.

    Args:
        store: the job's `runs.RunStore`.
        owner: the job's owner, stored with the run.
        emit: sends an event of this job to the manager.
        ship: sends a saved run's files to the app (a worker away from its disk); None = shared disk.
    """

    def __init__(self, store: RunStore, owner: str | None, emit: Callable[[events.JobEvent], None],
                 ship: Callable[[str], None] | None = None):
        self.store = store
        self.owner = owner
        self._ship = ship
        self.run_id: str = store.new_run_id()
        self.epoch = 0  # the epoch whose weights the saved run holds; 0 = nothing saved
        self._emit = emit
        self._last_save = time.monotonic()  # the job's start counts as a save for the interval

    def save(self, progress: TrainResult, spec: ExperimentSpec, dataset: Dataset) -> None:
        """Save the run so far (for `training.train`'s on_epoch_end) and report it with a Checkpoint event.

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
            if self._ship is not None:
                self._ship(self.run_id)
        except RunStoreError:
            return  # e.g. an unwritable folder: training goes on, and the final save reports it
        except Exception:  # a checkpoint must never end the training; the traceback goes to the server log
            traceback.print_exc(file=sys.stderr)
            return
        self.epoch = progress.epochs_completed
        # Sent right after the save: a kill in between leaves a run one epoch ahead of what the manager knows.
        self._emit(events.Checkpoint(run_id=self.run_id, epoch=self.epoch))

    def discard(self) -> None:
        """Delete the saved run (the job was reset or its session ended); never raises."""
        from playground.runs.store import RunStoreError

        if self.epoch:
            try:
                self.store.delete(self.run_id)
            except RunStoreError:
                pass  # already deleted by its owner on another page
