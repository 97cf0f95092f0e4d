"""Background training: warm worker processes, a server-wide limit, a FIFO queue, per-session jobs.

Training never runs in the Streamlit script thread. One `JobManager` per
server process (`get_manager()`) keeps `max_concurrent` worker processes
started with the multiprocessing "spawn" context; each imports TensorFlow at
start and waits, so a job starts within a second. Jobs beyond the limit wait
in a first-in, first-out queue whose position their owner sees.

Every job belongs to an owner (the browser session id). Every method takes the
owner and only ever shows or changes that owner's jobs; another owner's job id
is answered exactly like an unknown one.

    manager = get_manager()
    job_id = manager.submit(owner, spec)              # queued, then starting, running ...
    manager.heartbeat(owner)                          # the page is still open
    new_events = manager.drain(owner, job_id)         # the job's events (see events.py) since the last drain
    manager.pause(owner, job_id); manager.step(owner, job_id); manager.resume(owner, job_id)
    manager.stop(owner, job_id)                       # ends early; the model is evaluated and saved
    manager.stop(owner, job_id, discard=True)         # Reset: ends and throws the model away
    info = manager.info(owner, job_id)                # state, queue position, run_id, result

States: "queued" -> "starting" -> "running" <-> "paused", then one of "done"
(a result, maybe stopped early), "stopped" (cancelled, reset, or the worker
died) or "failed" (one-line reason). A stop in flight shows as "stopping".

A background thread relays worker events into per-job lists, notices a killed
worker (its job becomes "stopped: the training process ended unexpectedly",
with `run_id` set to the run its worker saved after the last finished epoch,
if any, and a replacement starts), cancels jobs whose owner sent no heartbeat
for `grace_seconds`, and feeds the queue. Workers are daemons, also exit when the
app's end of their pipe closes, and are shut down at exit.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import sys
import threading
import time
import traceback
import types
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable

from playground.child_process import main_module_hidden
from playground.data.catalog import data_key
from playground.training import events
from playground.training import worker as worker_module
from playground.settings import get_settings
from playground.spec.experiment import ExperimentSpec

ACTIVE_STATES = ("queued", "starting", "running", "paused", "stopping")
FINAL_STATES = ("done", "stopped", "failed")
WORKER_DIED = "the training process ended unexpectedly"
SESSION_GONE = "cancelled: the browser session ended"
RESET = "reset: the model was thrown away"

_KEEP_FINISHED_PER_OWNER = 10  # finished jobs remembered per owner
_MAX_UNDRAINED_EVENTS = 5000  # beyond this, the oldest undrained batch events are dropped
_FAILED_STARTS_BEFORE_GIVING_UP = 3  # workers that die before ever being ready, in a row


class JobError(ValueError):
    """A job request that cannot be honoured, explained in one sentence."""


@dataclass(frozen=True)
class JobInfo:
    """A snapshot of one job, as its owner may see it."""

    job_id: str
    owner: str
    spec: ExperimentSpec
    state: str  # one of ACTIVE_STATES or FINAL_STATES
    message: str  # why it stopped or failed, or a note about the result ("" when none)
    queue_position: int | None  # 1 = next to start; None when not queued
    queue_length: int  # jobs waiting server-wide
    epoch: int  # epochs finished so far (counting from the model's first epoch)
    epochs: int  # epochs this job trains up to (0 until training starts)
    run_id: str | None  # the saved run, once done (or stopped or failed with a checkpoint)
    result: events.Done | None  # once done: the result's summary numbers, message, history and save error
    continue_from: str | None  # the run whose model this job keeps training
    worker_pid: int | None  # the process training it
    submitted: float  # time.time() of submit
    started: float | None
    finished: float | None
    dataset_error: bool = False  # failed because the dataset could not be loaded
    checkpoint_epoch: int = 0  # the last epoch the worker saved as the job's run while training; 0 = none
    worker_ready: bool = False  # its worker has TensorFlow imported (a fresh worker takes seconds to get there)

    @property
    def active(self) -> bool:
        """True while queued, starting, running, paused or stopping."""
        return self.state in ACTIVE_STATES

    @property
    def status_line(self) -> str:
        """One line for the page, e.g. "queued: position 2 of 3" or "stopped: <why>"."""
        if self.state == "queued":
            return f"queued: position {self.queue_position} of {self.queue_length}"
        if self.state == "stopped":
            return self.message or "stopped"
        if self.state == "failed":
            return f"failed: {self.message}"
        return self.state


@dataclass(eq=False)
class _Worker:
    process: Any  # multiprocessing Process
    commands: Connection  # we send
    events: Connection  # we receive
    ready: bool = False
    job: "_Job | None" = None
    # Data keys (see `data.catalog.data_key`) of the latest jobs and "prepare" commands sent to it, oldest
    # first: the datasets its cache probably holds, so they are not prepared again.
    prepared: list[tuple[Any, ...]] = field(default_factory=list)

    def remember(self, key: tuple[Any, ...]) -> None:
        """Note that this worker has loaded (or is loading) the data of `key`."""
        from playground.data.datasets import MAX_CACHED  # (numpy and the readers: only once a job or page needs them)

        if key in self.prepared:
            self.prepared.remove(key)
        self.prepared = [*self.prepared, key][-MAX_CACHED:]


@dataclass(eq=False)
class _Job:
    job_id: str
    owner: str
    spec: ExperimentSpec
    continue_from: str | None
    step: bool
    env: dict[str, str]
    submitted: float = field(default_factory=time.time)
    state: str = "queued"
    message: str = ""
    stop_requested: bool = False
    discard: bool = False
    epoch: int = 0
    epochs: int = 0
    run_id: str | None = None
    checkpoint_run_id: str | None = None  # the run the worker saved after its last finished epoch
    checkpoint_epoch: int = 0  # that epoch; 0 = nothing saved yet
    result: events.Done | None = None
    dataset_error: bool = False
    worker: _Worker | None = None
    started: float | None = None
    finished: float | None = None
    events: list[events.JobEvent] = field(default_factory=list)  # not drained yet, oldest first


class JobManager:
    """Worker processes, the queue and every session's jobs; safe to call from any thread.

    Args:
        max_concurrent: jobs that train at once (= warm workers); default
            `settings.max_concurrent_runs`.
        grace_seconds: a job whose owner sent no heartbeat for this long is
            cancelled; default `settings.session_grace_seconds`.
        threads: TensorFlow threads per worker; default all cores when one
            job trains at a time, else the cores shared out between workers.
    """

    def __init__(self, max_concurrent: int | None = None, grace_seconds: float | None = None, *, threads: int | None = None):
        settings = get_settings()
        self.max_concurrent = max(1, max_concurrent or settings.max_concurrent_runs)
        self.grace_seconds = settings.session_grace_seconds if grace_seconds is None else float(grace_seconds)
        cores = os.cpu_count() or 1
        self._threads = threads if threads is not None else (0 if self.max_concurrent == 1 else max(1, cores // self.max_concurrent))
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._workers: list[_Worker] = []
        self._jobs: dict[str, _Job] = {}
        self._queue: list[_Job] = []
        self._seen: dict[str, float] = {}  # owner -> time.monotonic() of the last heartbeat
        self._liveness: Callable[[str], bool | None] | None = None
        self._failed_starts = 0
        self._broken = ""  # set when workers cannot start at all
        self.closed = False
        for _ in range(self.max_concurrent):
            self._start_worker()
        self._thread = threading.Thread(target=self._relay, name="playground-jobs", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- API

    def submit(self, owner: str, spec: ExperimentSpec, *, continue_from: str | None = None, step: bool = False) -> str:
        """Queue a training job for `owner`.

        Args:
            owner: the session id that may see and control the job.
            spec: the experiment (checked by the worker; problems end the job as "failed").
            continue_from: a run id whose saved model trains `spec.train.epochs` more epochs.
            step: pause after the first epoch (the Step button on a fresh model).

        Returns:
            The job id.

        Raises:
            JobError: when the owner already has an active job, or the manager is shut down.
        """
        with self._lock:
            if self.closed:
                raise JobError("The job manager is shut down; restart the app to train again.")
            if self._broken:
                raise JobError(self._broken)
            for job in self._jobs.values():
                if job.owner == owner and job.state in ACTIVE_STATES and not job.stop_requested:
                    raise JobError(f"This session already has a run in progress (job {job.job_id[:8]}); stop it before starting another.")
            job = _Job(
                job_id=uuid.uuid4().hex,
                owner=owner,
                spec=spec,
                continue_from=continue_from,
                step=step,
                env=_job_env(),
            )
            self._jobs[job.job_id] = job
            self._queue.append(job)
            self._seen[owner] = time.monotonic()
            self._dispatch()
            self._forget_old(owner)
            self._changed.notify_all()
            return job.job_id

    def prepare(self, spec: ExperimentSpec) -> None:
        """Let the worker that takes the next job load `spec`'s data now, while it is idle.

        The Playground calls this whenever it is drawn without a run in
        progress, so pressing Train does not wait for the data. Nothing happens
        while jobs are queued or every worker is busy, and a worker is not asked
        for data it has loaded recently.
        """
        key = data_key(spec)
        with self._lock:
            if self.closed or self._queue:
                return
            w = next((w for w in self._workers if w.job is None), None)  # the one `_dispatch` picks next
            if w is None or key in w.prepared:
                return
            w.remember(key)
            self._send(w, events.PrepareData(spec=spec.to_json(indent=None), env=_job_env()))

    def info(self, owner: str, job_id: str) -> JobInfo:
        """The owner's job `job_id` as a snapshot. Raises JobError for any other job."""
        with self._lock:
            return self._snapshot(self._get(owner, job_id))

    def jobs(self, owner: str) -> list[JobInfo]:
        """All jobs of `owner` that are remembered, oldest first."""
        with self._lock:
            return [self._snapshot(j) for j in sorted(self._jobs.values(), key=lambda j: j.submitted) if j.owner == owner]

    def drain(self, owner: str, job_id: str) -> list[events.JobEvent]:
        """Events of the owner's job since the last drain, oldest first (then forgotten)."""
        with self._lock:
            job = self._get(owner, job_id)
            drained, job.events = job.events, []
            return drained

    def pause(self, owner: str, job_id: str) -> None:
        """Pause after the current batch; weights and optimizer state stay in the worker."""
        self._command(owner, job_id, "pause")

    def resume(self, owner: str, job_id: str) -> None:
        """Continue a paused job on the same curves."""
        self._command(owner, job_id, "resume")

    def step(self, owner: str, job_id: str) -> None:
        """Train to the end of the current epoch (one more epoch when paused at an epoch end), then pause."""
        self._command(owner, job_id, "step")

    def stop(self, owner: str, job_id: str, *, discard: bool = False) -> None:
        """End the owner's job: a queued one is cancelled at once; a running one ends after its batch.

        Args:
            owner: the session id.
            job_id: the job.
            discard: throw the model away instead of evaluating and saving it (Reset).
        """
        with self._lock:
            job = self._get(owner, job_id)
            self._stop(job, RESET if discard else "stopped before training started", discard=discard)

    def heartbeat(self, owner: str) -> None:
        """Tell the manager that `owner`'s browser session is still open."""
        with self._lock:
            self._seen[owner] = time.monotonic()

    def set_liveness(self, probe: Callable[[str], bool | None] | None) -> None:
        """Install a function owner -> True (session connected), False or None (unknown).

        A connected session counts as a heartbeat, so a job keeps running while
        its user looks at another page. The app passes Streamlit's session table.
        """
        with self._lock:
            self._liveness = probe

    def wait(self, owner: str, job_id: str, timeout: float, states: tuple[str, ...] = FINAL_STATES) -> JobInfo:
        """Block until the owner's job reaches one of `states` (default: finished) or `timeout` passes.

        Returns:
            The last snapshot (check its state: it may not be in `states` after a timeout).
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                job = self._get(owner, job_id)
                left = deadline - time.monotonic()
                if job.state in states or left <= 0:
                    return self._snapshot(job)
                self._changed.wait(min(left, 0.5))

    def wait_for_event(self, owner: str, job_id: str, kind: type[events.JobEvent], timeout: float) -> bool:
        """Block until an undrained event of class `kind` waits for the owner's job, the job ends, or `timeout` passes.

        Args:
            owner: the session id that owns the job.
            job_id: the job.
            kind: an event class, e.g. events.Batch.
            timeout: seconds to wait at most.

        Returns:
            True when such an event is waiting to be drained.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                job = self._get(owner, job_id)
                if any(isinstance(event, kind) for event in job.events):
                    return True
                left = deadline - time.monotonic()
                if job.state in FINAL_STATES or left <= 0:
                    return False
                self._changed.wait(left)

    def worker_pids(self) -> list[int]:
        """Process ids of the worker processes (for the server log and tests)."""
        with self._lock:
            return [w.process.pid for w in self._workers]

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop every job and worker; safe to call more than once."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            workers = list(self._workers)
            for job in self._jobs.values():
                if job.state in ACTIVE_STATES:
                    self._finish(job, "stopped", "stopped: the app is shutting down")
            for w in workers:
                self._send(w, events.Shutdown())
                w.commands.close()
        deadline = time.monotonic() + timeout
        for w in workers:
            w.process.join(max(0.1, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.terminate()
                w.process.join(1.0)
            if w.process.is_alive():
                w.process.kill()
                w.process.join(1.0)
        self._thread.join(2.0)
        for w in workers:
            w.events.close()

    # ------------------------------------------------------------ internals

    def _get(self, owner: str, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None or job.owner != owner:
            raise JobError(f"There is no job {str(job_id)[:12]!r} in this session.")
        return job

    def _snapshot(self, job: _Job) -> JobInfo:
        state = "stopping" if job.stop_requested and job.state in ("starting", "running", "paused") else job.state
        return JobInfo(
            job_id=job.job_id,
            owner=job.owner,
            spec=job.spec,
            state=state,
            message=job.message,
            queue_position=self._queue.index(job) + 1 if job in self._queue else None,
            queue_length=len(self._queue),
            epoch=job.epoch,
            epochs=job.epochs,
            run_id=job.run_id,
            result=job.result,
            continue_from=job.continue_from,
            worker_pid=job.worker.process.pid if job.worker else None,
            submitted=job.submitted,
            started=job.started,
            finished=job.finished,
            dataset_error=job.dataset_error,
            checkpoint_epoch=job.checkpoint_epoch,
            worker_ready=bool(job.worker and job.worker.ready),
        )

    def _command(self, owner: str, job_id: str, command: events.ControlAction) -> None:
        with self._lock:
            job = self._get(owner, job_id)
            if job.state == "queued" and command == "step":
                job.step = True  # it will pause after its first epoch
            elif job.state in ("starting", "running", "paused") and not job.stop_requested:
                self._send(job.worker, events.ControlJob(job_id=job.job_id, action=command))
            elif job.state not in ("queued",):
                raise JobError(f"The job is {self._snapshot(job).state}, so it cannot {command}.")

    def _stop(self, job: _Job, message: str, *, discard: bool) -> None:
        # Caller holds the lock.
        if job.state == "queued":
            self._queue.remove(job)
            self._finish(job, "stopped", message)
        elif job.state in ("starting", "running", "paused"):
            job.stop_requested = True
            job.discard = job.discard or discard
            if discard:
                job.message = message
            self._send(job.worker, events.ControlJob(job_id=job.job_id, action="discard" if discard else "stop"))
        self._changed.notify_all()

    def _finish(self, job: _Job, state: str, message: str = "") -> None:
        # Caller holds the lock.
        job.state = state
        if message:
            job.message = message
        job.finished = time.time()
        if job.worker is not None and job.worker.job is job:
            job.worker.job = None
        self._changed.notify_all()

    def _send(self, w: _Worker | None, command: events.Command) -> None:
        if w is None:
            return
        try:
            w.commands.send(command)
        except (BrokenPipeError, OSError):
            pass  # the relay thread notices the dead worker and reports its job

    def _start_worker(self) -> None:
        # Caller holds the lock (or is the constructor).
        command_reader, command_writer = self._context.Pipe(duplex=False)
        event_reader, event_writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=worker_module.main,
            args=(command_reader, event_writer, self._threads),
            name="playground-worker",
            daemon=True,
        )
        with main_module_hidden():
            process.start()
        # Close our copies of the worker's ends: its death then reads as end-of-file here,
        # and ours reads as end-of-file there.
        command_reader.close()
        event_writer.close()
        self._workers.append(_Worker(process=process, commands=command_writer, events=event_reader))

    def _dispatch(self) -> None:
        # Caller holds the lock: hand queued jobs to idle workers, oldest first.
        for w in self._workers:
            if not self._queue:
                return
            if w.job is None:
                job = self._queue.pop(0)
                w.job, job.worker = job, w
                w.remember(data_key(job.spec))
                job.state, job.started = "starting", time.time()
                self._send(w, events.RunJob(
                    job_id=job.job_id,
                    owner=job.owner,
                    spec=job.spec.to_json(indent=None),
                    env=job.env,
                    continue_from=job.continue_from,
                    step=job.step,
                ))

    def _relay(self) -> None:
        last_housekeeping = 0.0
        while not self.closed:
            try:
                self._relay_once()
                if time.monotonic() - last_housekeeping >= 0.5:
                    last_housekeeping = time.monotonic()
                    self._housekeeping()
            except Exception:  # the relay must outlive any surprise; the server log gets the reason
                traceback.print_exc(file=sys.stderr)
                time.sleep(0.5)

    def _relay_once(self) -> None:
        with self._lock:
            by_connection = {w.events: w for w in self._workers}
        if not by_connection:
            time.sleep(0.2)
            return
        for connection in wait(list(by_connection), timeout=0.2):
            w = by_connection[connection]
            try:
                for _ in range(200):  # take what is there, without starving the others
                    self._on_event(w, connection.recv())
                    if not connection.poll():
                        break
            except (EOFError, OSError):
                self._on_worker_exit(w)

    def _on_event(self, w: _Worker, message: events.WorkerMessage) -> None:
        with self._lock:
            if isinstance(message, events.Ready):
                w.ready = True
                self._failed_starts = 0
                return
            job = self._jobs.get(message.job_id)
            if job is None or job.state in FINAL_STATES:
                return  # a job forgotten or already ended (e.g. shut down)
            event = message.event
            match event:
                case events.Start():
                    job.epochs = event.epochs
                    if job.state == "starting":
                        job.state = "running"
                case events.Epoch():
                    job.epoch = event.epoch
                case events.Checkpoint():
                    job.checkpoint_run_id = event.run_id
                    job.checkpoint_epoch = event.epoch
                case events.Paused():
                    job.state = "paused"
                case events.Resumed():
                    job.state = "running"
                case events.Done():
                    job.run_id = event.run_id
                    job.result = event
                    job.epoch = event.summary.epochs_completed
                    self._finish(job, "done", event.save_error or event.message)
                case events.Failed():
                    job.dataset_error = event.dataset_error
                    job.run_id = event.run_id  # the last checkpoint, when training had finished an epoch
                    self._finish(job, "failed", event.message)
                case events.Stopped():
                    self._finish(job, "stopped", job.message or RESET)
            self._append_event(job, event)
            if isinstance(event, events.FINAL_EVENTS):
                self._dispatch()
            self._changed.notify_all()

    def _append_event(self, job: _Job, event: events.JobEvent) -> None:
        if isinstance(event, events.Probe):
            # Only the newest feature maps matter to a page that has not looked for a while.
            job.events = [e for e in job.events if not isinstance(e, events.Probe)]
        job.events.append(event)
        if len(job.events) > _MAX_UNDRAINED_EVENTS:
            half = len(job.events) // 2
            job.events = [e for e in job.events[:half] if not isinstance(e, events.Batch)] + job.events[half:]

    def _on_worker_exit(self, w: _Worker) -> None:
        with self._lock:
            if w not in self._workers:
                return
            self._workers.remove(w)
            w.process.join(1.0)
            w.events.close()
            w.commands.close()
            if self.closed:
                return
            job = w.job
            if job is not None and job.state in ACTIVE_STATES:
                message = f"stopped: {WORKER_DIED}"
                if job.checkpoint_run_id:
                    job.run_id = job.checkpoint_run_id  # the run as saved after its last finished epoch
                    message = f"{message}; {worker_module.kept_epoch_note(job.checkpoint_epoch)}"
                self._finish(job, "stopped", message)
                self._append_event(job, events.Stopped(message=job.message, run_id=job.run_id))
            if not w.ready:
                self._failed_starts += 1
            if self._failed_starts >= _FAILED_STARTS_BEFORE_GIVING_UP:
                self._broken = "The training processes cannot start on this server; see the server log for the reason."
                for queued in list(self._queue):
                    self._queue.remove(queued)
                    self._finish(queued, "failed", self._broken)
            else:
                self._start_worker()
                self._dispatch()
            self._changed.notify_all()

    def _housekeeping(self) -> None:
        with self._lock:
            if self.closed:
                return
            for w in list(self._workers):
                if not w.process.is_alive():
                    # Normally seen as end-of-file first; this covers a pipe that stays open.
                    self._on_worker_exit(w)
            now = time.monotonic()
            owners = {job.owner for job in self._jobs.values() if job.state in ACTIVE_STATES}
            for owner in owners:
                if self._liveness is not None:
                    try:
                        alive = self._liveness(owner)
                    except Exception:
                        alive = None
                    if alive:
                        self._seen[owner] = now
                if now - self._seen.get(owner, now) > self.grace_seconds:
                    for job in list(self._jobs.values()):
                        if job.owner == owner and job.state in ACTIVE_STATES and not job.discard:
                            self._stop(job, SESSION_GONE, discard=True)
            # Forget owners gone for long, with their finished jobs.
            for owner, seen in list(self._seen.items()):
                if now - seen > self.grace_seconds + 600 and owner not in owners:
                    del self._seen[owner]
                    for job_id in [j.job_id for j in self._jobs.values() if j.owner == owner]:
                        del self._jobs[job_id]
            self._dispatch()

    def _forget_old(self, owner: str) -> None:
        finished = [j for j in self._jobs.values() if j.owner == owner and j.state in FINAL_STATES]
        finished.sort(key=lambda j: j.submitted)
        for job in finished[:-_KEEP_FINISHED_PER_OWNER]:
            del self._jobs[job.job_id]


def _job_env() -> dict[str, str]:
    """The app's settings (PLAYGROUND_* variables) a worker applies before working for it."""
    return {k: v for k, v in os.environ.items() if k.startswith(worker_module.JOB_ENV_PREFIX)}


# The manager must outlive a reload of this module (Streamlit's file watcher re-imports
# changed modules while the server runs), or a reload would orphan running jobs and
# start a second set of workers. So it lives in a holder module that is never reloaded.
_holder = sys.modules.setdefault("_playground_job_manager", types.ModuleType("_playground_job_manager"))
if not hasattr(_holder, "lock"):
    _holder.lock = threading.Lock()
    _holder.manager = None


def get_manager() -> JobManager:
    """The process-wide JobManager, created (and its workers started) on first use."""
    with _holder.lock:
        if _holder.manager is None or _holder.manager.closed:
            _holder.manager = JobManager()
            atexit.register(_holder.manager.shutdown)
        return _holder.manager


def running_manager() -> JobManager | None:
    """The process-wide JobManager if it has been started, else None (never starts one)."""
    manager = _holder.manager
    return manager if manager is not None and not manager.closed else None
