"""Background training: warm workers, a server-wide limit, a fair-share queue, per-session jobs.

Training never runs in the Streamlit script thread. One `JobManager` per
server process (`get_manager()`) keeps `max_concurrent` warm workers; each
imports TensorFlow at start and waits, so a job starts within a second. A
worker is a Ray actor (`ray_engine.py`: an embedded local Ray instance, or the
lab's cluster at `settings.ray_address`, where each actor reserves
`cpus_per_run` CPUs on whichever node has them) or, with the "processes"
engine, a process of this one started with the multiprocessing "spawn"
context; both speak the same commands and events. Jobs beyond the limit wait
in a queue ordered by fair share (a student's second run goes behind
everyone's first; equal shares keep their order of arrival), whose position
their owner sees, as they see where their job trains (`JobInfo.where`).

Every job belongs to an owner (the browser session id). Every method takes the
owner and only ever shows or changes that owner's jobs; another owner's job id
is answered exactly like an unknown one. A fair share for everyone: an owner
has one active job at a time, a client (the browser's network address, all its
tabs together) `settings.jobs_per_client`, and a new model is refused while the
owner keeps `settings.runs_per_session` saved runs or all runs together take
more than `settings.runs_total_mb`, and a run estimated to train longer than
`settings.run_budget_minutes` at the server's speed is refused before it queues.

    manager = get_manager()
    job_id = manager.submit(owner, spec, client=ip)   # queued, then starting, running ...
    manager.heartbeat(owner)                          # the page is still open
    new_events = manager.drain(owner, job_id)         # the job's events (see events.py) since the last drain
    manager.pause(owner, job_id); manager.step(owner, job_id); manager.resume(owner, job_id)
    manager.stop(owner, job_id)                       # ends early; the model is evaluated and saved
    manager.stop(owner, job_id, discard=True)         # Reset: ends and throws the model away
    manager.set_probe(owner, job_id, probe)           # the live network diagram shows another image
    info = manager.info(owner, job_id)                # state, queue position, run_id, result

States: "queued" -> "starting" -> "running" <-> "paused", then one of "done"
(a result, maybe stopped early), "stopped" (cancelled, reset, or the worker
died) or "failed" (one-line reason). A stop in flight shows as "stopping".

A background thread relays worker events into per-job lists, notices a killed
worker (its job becomes "stopped: the training process ended unexpectedly",
with `run_id` set to the run its worker saved after the last finished epoch,
if any, and a replacement starts), cancels jobs whose owner sent no heartbeat
for `grace_seconds`, stops (as Stop does: the model is evaluated and saved)
jobs left paused for `pause_timeout` seconds, so no one holds a worker for
good, and feeds the queue. Workers are daemons, also exit when the app's end of
their pipe closes, and are shut down at exit.

"Prepare" commands (`prepare`) let an idle worker load the data a page
shows before Train is pressed; they never delay a job: a worker holds at most
one (the newest waits in the manager until it is done), a job dispatched to
it drops the waiting one, and data a worker has loaded is not prepared again.

When the app's manager starts (`get_manager`), what workers killed while
saving left behind is swept: temporary run folders and partial uploads older
than LEFTOVER_AGE_S.
"""

from __future__ import annotations

import atexit
import json
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
from pathlib import Path
from typing import Any, Callable

from playground.child_process import main_module_hidden
from playground.data.catalog import data_key
from playground.training import events
from playground.training import worker as worker_module
from playground.settings import get_settings
from playground.spec.experiment import ExperimentSpec, graph_key

ACTIVE_STATES = ("queued", "starting", "running", "paused", "stopping")
FINAL_STATES = ("done", "stopped", "failed")
WORKER_DIED = "the training process ended unexpectedly"
SESSION_GONE = "cancelled: the browser session ended"
RESET = "reset: the model was thrown away"

_KEEP_FINISHED_PER_OWNER = 10  # finished jobs remembered per owner
_MAX_UNDRAINED_EVENTS = 5000  # beyond this, the oldest undrained batch events are dropped
_FAILED_STARTS_BEFORE_GIVING_UP = 3  # workers that die before ever being ready, in a row
JOURNAL_NAME = ".active-jobs.json"  # in the runs folder: the app's jobs in progress, read when it starts again
LEFTOVER_AGE_S = 600.0
WORKER_START_GRACE_S = 120.0  # a worker gets jobs before it is ready for this long (it is importing TensorFlow)  # temporary files younger than this may belong to a save in progress: the sweep leaves them


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
    stop_note: str = ""  # why the manager stopped the job on its own (left paused too long); "" when it did not
    where: str = ""  # where it trains, e.g. "this machine, CPU" or "node 1a2b3c4d (lab-pc-3), 1 GPU"; "" until known

    @property
    def active(self) -> bool:
        """True while queued, starting, running, paused or stopping."""
        return self.state in ACTIVE_STATES

    @property
    def status_line(self) -> str:
        """One line for the page, e.g. "queued: position 2 of 3" or "stopped: <why>"."""
        if self.state == "done" and self.stop_note:
            return self.stop_note
        if self.state == "queued":
            return f"queued: position {self.queue_position} of {self.queue_length}"
        if self.state == "stopped":
            return self.message or "stopped"
        if self.state == "failed":
            return f"failed: {self.message}"
        return self.state


@dataclass(frozen=True)
class LostJob:
    """A job the app was running or queueing when it last ended (read from its journal at start)."""

    client: str | None  # the browser address that submitted it; None = the server's own machine
    state: str  # "queued", "starting", "running", "paused" or "stopping" when the app ended
    dataset: str  # the dataset it trained on
    run_id: str | None  # the run its worker saved after its last finished epoch; None = none
    epoch: int  # that epoch; 0 = none

    def notice(self) -> str:
        """One sentence for the page that submitted it."""
        from playground.data.catalog import dataset_title, is_named_dataset

        what = dataset_title(self.dataset) if is_named_dataset(self.dataset) else "your own data"
        doing = "waiting in the queue" if self.state == "queued" else "training"
        kept = (f"; epoch {self.epoch} is kept as a saved run (Compare runs)" if self.run_id and self.epoch
                else "")
        return f"The server restarted while your run on {what} was {doing}, so it did not finish{kept}. Press Train to start it again."


@dataclass(eq=False)
class _Worker:
    process: Any  # multiprocessing Process
    commands: Connection  # we send
    events: Connection  # we receive
    ready: bool = False
    gpu: bool = False  # a Ray actor that reserved a GPU
    started: float = field(default_factory=time.monotonic)  # when it was started
    where: str = ""  # where it trains, for people (from its Ready message)
    job: "_Job | None" = None
    # Data keys (see `data.catalog.data_key`) of the latest jobs and "prepare" commands sent to it, oldest
    # first: the datasets its cache probably holds, so they are not prepared again.
    prepared: list[tuple[Any, ...]] = field(default_factory=list)
    preparing: bool = False  # a PrepareData was sent and the worker has not answered it (events.Prepared)
    warm: tuple[tuple[Any, ...], str] | None = None  # (data key, graph key) of the model its last prepare warmed
    # The newest prepare asked for meanwhile, (data key, command): sent when the worker answers, dropped by a job.
    next_prepare: tuple[tuple[tuple[Any, ...], str], events.PrepareData] | None = None

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
    client: str | None = None  # the browser's network address; None = unknown (no per-client cap)
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
    paused_since: float | None = None  # time.monotonic() of its last Paused event; None while not paused
    stop_note: str = ""  # why the manager stopped it on its own
    probe: events.ProbeImage | None = None  # the probe image picked while it was queued (sent when it starts)
    events: list[events.JobEvent] = field(default_factory=list)  # not drained yet, oldest first


class JobManager:
    """Worker processes, the queue and every session's jobs; safe to call from any thread.

    Args:
        max_concurrent: jobs that train at once (= warm workers); default
            `settings.max_concurrent_runs`, else half the cores here, or with a Ray
            cluster its CPUs divided by `settings.cpus_per_run`.
        grace_seconds: a job whose owner sent no heartbeat for this long is
            cancelled; default `settings.session_grace_seconds`.
        threads: TensorFlow threads per worker; default all cores when one
            job trains at a time, else the cores shared out between workers.
        pause_timeout: a job paused (or stepped) for this long is stopped, its
            model evaluated and saved; default `settings.pause_timeout_seconds`.
    """

    def __init__(self, max_concurrent: int | None = None, grace_seconds: float | None = None, *,
                 threads: int | None = None, pause_timeout: float | None = None, engine: str | None = None,
                 journal: Path | None = None):
        settings = get_settings()
        self._journal = journal
        self._journal_text = ""  # what the journal holds now
        self._lost = _read_journal(journal) if journal is not None else []
        self.engine = engine or settings.engine
        self.grace_seconds = settings.session_grace_seconds if grace_seconds is None else float(grace_seconds)
        self.pause_timeout = settings.pause_timeout_seconds if pause_timeout is None else float(pause_timeout)
        cores = os.cpu_count() or 1
        self._cluster = self.engine == "ray" and bool(settings.ray_address)
        self._gpu_slots = 0  # workers that reserve one GPU each (a cluster's GPUs; Ray hides GPUs from the others)
        unreachable = ""  # why Ray could not be started or joined
        if self.engine == "ray":
            from playground.training import ray_engine

            try:
                ray_engine.connect(settings.ray_address)
                if self._cluster:
                    self._gpu_slots = int(ray_engine.cluster_capacity()[1])
            except RuntimeError as exc:  # pages still work; Train says why it cannot
                unreachable = f"Training is not available: {exc}"
                self._cluster = False
        self.max_concurrent = max(1, max_concurrent or settings.max_concurrent_runs or self._auto_slots(cores))
        self._threads = threads if threads is not None else (0 if self.max_concurrent == 1 else max(1, cores // self.max_concurrent))
        # CPUs one Ray actor reserves on a cluster: as many as a worker process here would use.
        self._cpus_per_run = settings.cpus_per_run or max(1, cores // self.max_concurrent)
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._workers: list[_Worker] = []
        self._jobs: dict[str, _Job] = {}
        self._queue: list[_Job] = []
        self._seen: dict[str, float] = {}  # owner -> time.monotonic() of the last heartbeat
        self._trained: dict[str, int] = {}  # owner -> jobs of theirs that have started: their place in the queue
        self._liveness: Callable[[str], bool | None] | None = None
        self._failed_starts = 0
        self._broken = unreachable  # set when workers cannot start at all
        self.closed = False
        for _ in range(0 if self._broken else self.max_concurrent):
            self._start_worker()
        self._thread = threading.Thread(target=self._relay, name="playground-jobs", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- API

    def submit(self, owner: str, spec: ExperimentSpec, *, continue_from: str | None = None, step: bool = False,
               client: str | None = None, estimated_seconds: float | None = None) -> str:
        """Queue a training job for `owner`.

        Args:
            owner: the session id that may see and control the job.
            spec: the experiment (checked by the worker; problems end the job as "failed").
            continue_from: a run id whose saved model trains `spec.train.epochs` more epochs
                (not a new run for the owner's quota of saved runs).
            step: pause after the first epoch (the Step button on a fresh model).
            client: the browser's network address, shared by all its tabs: at most
                `settings.jobs_per_client` active jobs per client. None = unknown (no such cap).
            estimated_seconds: the training time the page estimated at this server's speed
                (`model.cost`); more than `settings.run_budget_minutes` is refused. None = not estimated.

        Returns:
            The job id.

        Raises:
            JobError: one sentence, when the owner already has an active job, the client has
                its share, the run would cost more than one run may, the owner's saved runs
                or the runs folder are full, or the manager is shut down.
        """
        settings = get_settings()
        too_long = budget_problem(estimated_seconds, settings.run_budget_minutes * 60)
        if too_long:
            raise JobError(too_long)
        full = _runs_quota_problem(owner, new_model=continue_from is None)  # reads the runs folder: not under the lock
        with self._lock:
            if self.closed:
                raise JobError("The job manager is shut down; restart the app to train again.")
            if self._broken:
                raise JobError(self._broken)
            active = [job for job in self._jobs.values() if job.state in ACTIVE_STATES and not job.stop_requested]
            for job in active:
                if job.owner == owner:
                    raise JobError(f"This session already has a run in progress (job {job.job_id[:8]}); stop it before starting another.")
            if client is not None and sum(job.client == client for job in active) >= settings.jobs_per_client:
                raise JobError(f"This computer already has {_count(settings.jobs_per_client, 'run')} in progress in "
                               f"other tabs or windows, as many as one computer may have; stop one before starting another.")
            if full:
                raise JobError(full)
            job = _Job(
                job_id=uuid.uuid4().hex,
                owner=owner,
                spec=spec,
                continue_from=continue_from,
                step=step,
                env=_job_env(),
                client=client,
            )
            self._jobs[job.job_id] = job
            self._enqueue(job)
            self._seen[owner] = time.monotonic()
            self._dispatch()
            self._forget_old(owner)
            self._changed.notify_all()
            return job.job_id

    def prepare(self, spec: ExperimentSpec) -> bool:
        """Let the worker that takes the next job load `spec`'s data now, while it is idle.

        The Playground calls this whenever it is drawn without a run in
        progress, so pressing Train does not wait for the data, nor for
        TensorFlow to trace the network's training step: the worker loads the
        data and warms the spec's model up (`warmup.warm_up`). Nothing happens
        while jobs are queued or every worker is busy, and a worker is not asked
        again for data it has loaded recently with the network it has warm
        (`graph_key`: the seed does not count). While the worker is still
        preparing, this one waits here instead, replacing any other waiting one.

        Returns:
            True when the data will be prepared (sent now, or waiting); False when nothing was done.
        """
        key = (data_key(spec), graph_key(spec))
        with self._lock:
            if self.closed or self._queue:
                return False
            w = next((w for w in self._workers if w.job is None), None)  # the one `_dispatch` picks next
            if w is None or (key[0] in w.prepared and w.warm == key) or (w.next_prepare is not None and w.next_prepare[0] == key):
                return False
            command = events.PrepareData(spec=spec.to_json(indent=None), env=_job_env())
            if w.preparing:
                w.next_prepare = (key, command)
            else:
                self._send_prepare(w, key, command)
            return True

    def lost_jobs(self, client: str | None) -> list[LostJob]:
        """The jobs from `client` that the app's previous run ended before they finished; each is told once.

        Args:
            client: the browser's network address (None = the server's own machine).

        Returns:
            Those jobs, oldest first; they are forgotten here.
        """
        with self._lock:
            mine = [lost for lost in self._lost if lost.client == client]
            self._lost = [lost for lost in self._lost if lost.client != client]
            return mine

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

    def set_probe(self, owner: str, job_id: str, probe: events.ProbeImage) -> None:
        """Let the owner's job draw its live network diagram for `probe` (no effect once it is ending or ended).

        Args:
            owner: the session id.
            job_id: the job.
            probe: the image, the size of the job's input; a queued job takes it when it starts.
        """
        with self._lock:
            job = self._get(owner, job_id)
            if job.state == "queued":
                job.probe = probe
            elif job.state in ("starting", "running", "paused") and not job.stop_requested:
                self._send(job.worker, events.SetProbe(job_id=job.job_id, probe=probe))

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
            return [w.process.pid for w in self._workers if w.process.pid is not None]

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop every job and worker; safe to call more than once."""
        with self._lock:
            if self.closed:
                return
            self._write_journal()  # the jobs ended now are the ones to tell about at the next start
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
            stop_note=job.stop_note,
            where=job.worker.where if job.worker else "",
        )

    def _command(self, owner: str, job_id: str, command: events.ControlAction) -> None:
        with self._lock:
            job = self._get(owner, job_id)
            if job.state == "queued" and command == "step":
                job.step = True  # it will pause after its first epoch
            elif job.state in ("starting", "running", "paused") and not job.stop_requested:
                self._send(job.worker, events.ControlJob(job_id=job.job_id, action=command))
                if job.state == "paused" and command in ("resume", "step"):
                    # The worker goes on as soon as it reads the command; say so now, not when its
                    # Resumed comes back, so the page that answers the click refreshes for a running job.
                    job.state, job.paused_since = "running", None
                    self._changed.notify_all()
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

    def _send_prepare(self, w: _Worker, key: tuple[tuple[Any, ...], str], command: events.PrepareData) -> None:
        # Caller holds the lock; `w` is idle and holds no prepare. `key` = (data key, graph key).
        w.remember(key[0])
        w.warm = key
        w.preparing = True
        self._send(w, command)

    def _auto_slots(self, cores: int) -> int:
        """Jobs at once when no setting says: half the cores here, or what a joined Ray cluster holds.

        On a cluster: one run per GPU (each with one CPU), and one per `cpus_per_run` of the other CPUs.
        """
        settings = get_settings()
        if self._cluster:
            from playground.training import ray_engine

            cpus, gpus = ray_engine.cluster_capacity()
            return max(1, int(gpus) + int(max(0.0, cpus - int(gpus)) // (settings.cpus_per_run or 1)))
        return max(1, cores // 2)

    def _start_worker(self) -> None:
        # Caller holds the lock (or is the constructor).
        if self.engine == "ray":
            from playground.training import ray_engine

            # On a cluster each actor reserves its CPUs, so Ray places it on a node that has them; on this
            # machine alone `max_concurrent` shares the cores out, as it does between worker processes.
            gpu = sum(w.gpu for w in self._workers) < self._gpu_slots
            if gpu:
                w = ray_engine.RayWorker(0, num_cpus=1, num_gpus=1)
            else:
                w = ray_engine.RayWorker(self._threads, num_cpus=self._cpus_per_run if self._cluster else 0)
            self._workers.append(_Worker(process=w.process, commands=w.commands, events=w.events, gpu=gpu))
            return
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

    def _enqueue(self, job: _Job) -> None:
        """Queue by fair share: behind every waiting job whose owner has started as many jobs or fewer.

        So a student's second run waits behind everyone's first, and runs of owners
        with equal shares keep their order of arrival.
        """
        share = self._trained.get(job.owner, 0)
        index = next((i for i, queued in enumerate(self._queue) if self._trained.get(queued.owner, 0) > share),
                     len(self._queue))
        self._queue.insert(index, job)

    def _dispatch(self) -> None:
        # Caller holds the lock: hand queued jobs to idle workers, oldest first.
        for w in self._workers:
            if not self._queue:
                return
            # A Ray actor that is not ready after its start-up grace waits for a node with free CPUs:
            # jobs wait in the queue rather than behind it.
            if w.job is None and (w.ready or time.monotonic() - w.started < WORKER_START_GRACE_S):
                job = self._queue.pop(0)
                w.job, job.worker = job, w
                self._trained[job.owner] = self._trained.get(job.owner, 0) + 1
                # The job goes first: a prepare waiting here is dropped, and so is one the worker has not begun.
                w.next_prepare, w.preparing = None, False
                w.remember(data_key(job.spec))
                w.warm = None  # the job takes the warm model
                job.state, job.started = "starting", time.time()
                self._send(w, events.RunJob(
                    job_id=job.job_id,
                    owner=job.owner,
                    spec=job.spec.to_json(indent=None),
                    env=job.env,
                    continue_from=job.continue_from,
                    step=job.step,
                ))
                if job.probe is not None:
                    self._send(w, events.SetProbe(job_id=job.job_id, probe=job.probe))

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
                w.ready, w.where = True, message.where
                self._failed_starts = 0
                self._dispatch()
                self._changed.notify_all()
                return
            if isinstance(message, events.Prepared):
                w.preparing = False
                waiting, w.next_prepare = w.next_prepare, None
                if waiting is not None and w.job is None and not self._queue:
                    self._send_prepare(w, *waiting)
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
                    job.paused_since = time.monotonic()
                case events.Resumed():
                    job.state = "running"
                    job.paused_since = None
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
        if isinstance(event, (events.Probe, events.Network)):
            # Only the newest feature maps and live diagram matter to a page that has not looked for a while;
            # a diagram at an epoch's end (whole epoch) is kept for the replay.
            job.events = [e for e in job.events if not (
                isinstance(e, events.Probe) and isinstance(event, events.Probe)
                or isinstance(e, events.Network) and isinstance(event, events.Network) and e.epoch != int(e.epoch))]
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
            for job in self._jobs.values():
                if (job.state == "paused" and not job.stop_requested and job.paused_since is not None
                        and now - job.paused_since >= self.pause_timeout):
                    job.stop_note = (f"stopped after {duration_words(self.pause_timeout)} paused: the model so far "
                                     f"was evaluated and saved, and the training process is free for others")
                    self._stop(job, "", discard=False)
            # Forget owners gone for long, with their finished jobs.
            for owner, seen in list(self._seen.items()):
                if now - seen > self.grace_seconds + 600 and owner not in owners:
                    del self._seen[owner]
                    self._trained.pop(owner, None)
                    for job_id in [j.job_id for j in self._jobs.values() if j.owner == owner]:
                        del self._jobs[job_id]
            self._dispatch()
            self._write_journal()

    def _write_journal(self) -> None:
        # Caller holds the lock. Written only when it changes (a few hundred bytes per job).
        if self._journal is None:
            return
        active = [{"client": job.client, "state": job.state, "dataset": job.spec.data.dataset,
                   "run_id": job.checkpoint_run_id, "epoch": job.checkpoint_epoch}
                  for job in sorted(self._jobs.values(), key=lambda j: j.submitted) if job.state in ACTIVE_STATES]
        text = json.dumps(active)
        if text == self._journal_text:
            return
        try:
            self._journal.parent.mkdir(parents=True, exist_ok=True)
            temp = self._journal.with_name(self._journal.name + ".tmp")
            temp.write_text(text)
            os.replace(temp, self._journal)
            self._journal_text = text
        except OSError:
            pass  # an unwritable runs folder: the runs cannot be saved either, and say so

    def _forget_old(self, owner: str) -> None:
        finished = [j for j in self._jobs.values() if j.owner == owner and j.state in FINAL_STATES]
        finished.sort(key=lambda j: j.submitted)
        for job in finished[:-_KEEP_FINISHED_PER_OWNER]:
            del self._jobs[job.job_id]


def duration_words(seconds: float) -> str:
    """A duration as people say it: "1 second", "90 seconds", "5 minutes"."""
    return _count(seconds / 60, "minute") if seconds >= 60 and seconds % 60 == 0 else _count(seconds, "second")


def _count(number: float, noun: str) -> str:
    """ "1 run", "3 runs", "0.5 seconds"."""
    return f"{number:g} {noun}{'' if number == 1 else 's'}"


def budget_problem(estimated_seconds: float | None, budget_seconds: float) -> str:
    """Why a run estimated to train `estimated_seconds` may not start on this server; "" when it may.

    Args:
        estimated_seconds: its training time at this server's measured speed; None = unknown (allowed).
        budget_seconds: the most one run may take (`settings.run_budget_minutes`, in seconds).
    """
    from playground.model.cost import rough_duration

    if estimated_seconds is None or estimated_seconds <= budget_seconds:
        return ""
    return (f"This run would train for about {rough_duration(estimated_seconds)} at this server's speed, more than "
            f"the {rough_duration(budget_seconds)} one run may take here; use fewer epochs, fewer images, a smaller "
            f"network or a time budget.")


def _runs_quota_problem(owner: str, *, new_model: bool) -> str:
    """Why `owner` may not train now because the saved runs are at their quota (settings); "" when it may.

    Args:
        owner: the session that would save the run.
        new_model: a new model (a new saved run); a continued one does not count against the owner's runs.
    """
    from playground.runs.store import RunStore  # (the web server has TensorFlow once a page built a network)

    settings = get_settings()
    store = RunStore()
    if new_model and store.count_runs(owner) >= settings.runs_per_session:
        return (f"This session has {_count(settings.runs_per_session, 'saved run')}, as many as one session may "
                f"keep; delete some on Compare runs before training a new model.")
    if store.total_bytes() >= settings.runs_total_mb * 1024**2:
        return (f"The saved runs of this server take their whole {settings.runs_total_mb:,} MB; "
                f"delete some on Compare runs (or ask the teacher to) before training again.")
    return ""


def _read_journal(path: Path) -> list[LostJob]:
    """The jobs a journal lists (what the app was doing when it ended), then the journal emptied; [] when unreadable."""
    try:
        entries = json.loads(path.read_text())
        path.unlink()
    except (OSError, ValueError):
        return []
    lost = []
    for entry in entries if isinstance(entries, list) else []:
        try:
            lost.append(LostJob(client=entry["client"] if isinstance(entry["client"], str) else None,
                                state=str(entry["state"]), dataset=str(entry["dataset"]),
                                run_id=entry["run_id"] if isinstance(entry["run_id"], str) else None,
                                epoch=int(entry["epoch"])))
        except (KeyError, TypeError, ValueError):
            continue  # a damaged entry is skipped, never fatal
    return lost


def sweep_leftovers(min_age_s: float = LEFTOVER_AGE_S) -> None:
    """Delete what processes killed while saving left behind: temporary run folders and partial uploads.

    Only what has not changed for `min_age_s` seconds goes, so a save in
    progress is never touched. Never raises (the server log gets the reason).
    """
    try:
        from playground.data.uploads import sweep_partial_files
        from playground.runs.store import RunStore

        RunStore().sweep_temporary(min_age_s)
        sweep_partial_files(min_age_s)
    except Exception:
        traceback.print_exc(file=sys.stderr)


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
    """The process-wide JobManager, created (and its workers started) on first use.

    Before it starts, the leftovers of killed saves are swept (`sweep_leftovers`). Its
    journal (JOURNAL_NAME in the runs folder) keeps the jobs in progress, so after a
    restart each browser is told about its jobs that did not finish (`lost_jobs`).
    """
    with _holder.lock:
        if _holder.manager is None or _holder.manager.closed:
            sweep_leftovers()
            _holder.manager = JobManager(journal=get_settings().runs_dir / JOURNAL_NAME)
            atexit.register(_holder.manager.shutdown)
        return _holder.manager


def start_manager() -> None:
    """Start the process-wide JobManager in the background, so the page that asks need not wait.

    Starting it takes seconds (an embedded Ray instance, workers importing
    TensorFlow); the home page calls this, and the first page that needs the
    manager (`get_manager`) waits only for what is left.
    """
    if running_manager() is None and not _holder.lock.locked():
        threading.Thread(target=get_manager, name="playground-start", daemon=True).start()


def running_manager() -> JobManager | None:
    """The process-wide JobManager if it has been started, else None (never starts one)."""
    manager = _holder.manager
    return manager if manager is not None and not manager.closed else None
