"""Training workers as Ray actors: an embedded local Ray instance, or a cluster of lab machines.

`JobManager` (jobs.py) talks to every worker the same way, whatever runs it:
it sends the commands of `events.py` and reads the worker's messages from a
pipe. `RayWorker` gives a Ray actor that shape. The actor (`TrainingActor`)
runs the same worker loop as a worker process (`worker.serve`); here, on the
app's side, one thread sends the commands to it in order and another drains
its messages into a local pipe, so the manager's relay reads actors and
processes alike. An actor that dies (its process or its node killed) closes
the pipe, which the manager reads as a worker that ended.

Where no disk is shared (an actor on another node), files travel through Ray:
the continued run's folder and an uploaded dataset file go with the job (Ray's
object store carries large arguments), and every run the actor saves comes
back as a RunFolder message that is written here into the runs folder before
the Checkpoint or Done event naming it is passed on.

    connect("")                   # an embedded local instance (once per process)
    connect("10.0.0.5:6379")      # or join a cluster started with `ray start --head`
    w = RayWorker(threads=2, num_cpus=2)
    w.commands.send(events.RunJob(...)); message = w.events.recv()
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import socket
import tempfile
import threading
import time
import traceback
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from playground.training import events
from playground.training import worker as worker_module

_DRAIN_WAIT_S = 0.25  # how long one drain call waits for the actor's next message
_UNREACHABLE_FOR_S = 8.0  # an actor unreachable this long is given up (its node died)

_connect_lock = threading.Lock()
_ready = threading.Event()
_connect_error: list[BaseException] = []


def connect(address: str = "", *, timeout: float | None = None) -> None:
    """Start an embedded Ray instance, or join the cluster at `address`, once per process.

    Ray ties the life of the processes it starts to the thread that starts them,
    so `ray.init` runs in a thread of its own that lives as long as this process
    (a Streamlit script thread would take the instance down when it ends).

    Args:
        address: "host:port" of a running cluster's head; "" = a local instance without
            a dashboard, sized to this machine's cores.
        timeout: seconds to wait for Ray to answer; default 30 to join a cluster, 120 to start one.

    Raises:
        RuntimeError: Ray could not start or join (one line; the server log has the details).
    """
    import ray

    with _connect_lock:
        if ray.is_initialized():
            return
        _ready.clear()
        _connect_error.clear()
        threading.Thread(target=_keep_ray, args=(address,), name="playground-ray", daemon=True).start()
        timeout = timeout if timeout is not None else (30.0 if address else 120.0)
        if not _ready.wait(timeout):
            if address:
                raise RuntimeError(f"no Ray cluster answered at {address} within {timeout:g} s; check "
                                   f"PLAYGROUND_RAY_ADDRESS and that `ray start --head` runs there.")
            raise RuntimeError(f"Ray did not start on this machine within {timeout:g} s.")
        if _connect_error:
            where = f"join the Ray cluster at {address}" if address else "start Ray on this machine"
            raise RuntimeError(f"Could not {where}: {_first_line(_connect_error[0])}")


def _keep_ray(address: str) -> None:
    import ray

    try:
        options: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING"}
        if address:
            # The nodes of a lab need only Ray and the packages of requirements.txt: this package
            # travels to them with the job (an embedded instance's workers import it from here).
            package = str(Path(__file__).resolve().parent.parent)
            ray.init(address=address, runtime_env={"py_modules": [package], "excludes": ["__pycache__"]}, **options)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, **options)
    except BaseException as exc:  # reported by connect()
        traceback.print_exc(file=sys.stderr)
        _connect_error.append(exc)
        _ready.set()
        return
    _ready.set()
    threading.Event().wait()  # never returns: Ray's processes live as long as this thread


def cluster_capacity() -> tuple[float, float]:
    """(CPUs, GPUs) of the Ray instance this process is connected to, counted over its live nodes."""
    import ray

    resources = ray.cluster_resources()
    return float(resources.get("CPU", 0)), float(resources.get("GPU", 0))


def nodes() -> list[dict[str, Any]]:
    """The live nodes: node id, host name, CPUs and GPUs (for the server log and tests)."""
    import ray

    return [{"node_id": n["NodeID"], "host": n.get("NodeManagerHostname", ""),
             "cpus": n.get("Resources", {}).get("CPU", 0), "gpus": n.get("Resources", {}).get("GPU", 0)}
            for n in ray.nodes() if n.get("Alive")]


class TrainingActor:
    """A worker inside a Ray actor: the worker loop runs in a thread, commands and drains come as calls.

    Args:
        threads: TensorFlow threads (0 = every core the actor may use).
        app_node: the Ray node id of the app; an actor on another node keeps its own
            runs folder and sends saved runs back as RunFolder messages.
    """

    def __init__(self, threads: int, app_node: str):
        import ray

        # Ray sets OpenMP's threads to the CPUs an actor reserves (1 when none): TensorFlow gets its own count.
        os.environ["OMP_NUM_THREADS"] = str(threads or os.cpu_count() or 1)
        self._messages: list[events.WorkerMessage] = []
        self._cond = threading.Condition()
        self._outbox = worker_module.Outbox(self)
        self._controls: dict[str, worker_module.Control] = {}
        self._work = worker_module.start(threads)
        node = ray.get_runtime_context().get_node_id()
        shares_disk = node == app_node
        own_runs = None if shares_disk else Path(tempfile.mkdtemp(prefix="playground-node-")) / "runs"
        place = "this machine" if shares_disk else f"node {node[:8]} ({socket.gethostname()})"
        self.send(events.Ready(pid=os.getpid(), where=f"{place}, {worker_module.device_words()}", node_id=node,
                               shares_disk=shares_disk))
        threading.Thread(target=worker_module.serve, args=(self._work, self._outbox),
                         kwargs={"own_runs_dir": own_runs}, name="training", daemon=True).start()

    def send(self, message: events.WorkerMessage) -> None:
        """Queue one message for the app (the worker loop's outbox calls this)."""
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()

    def command(self, command: events.Command) -> None:
        """Act on one command of the manager (as a worker process does on its pipe)."""
        worker_module.handle_command(command, self._controls, self._work, self._outbox)

    def drain(self, wait: float) -> list[events.WorkerMessage]:
        """The messages since the last drain, oldest first, waiting up to `wait` seconds for one."""
        with self._cond:
            if not self._messages:
                self._cond.wait(wait)
            taken, self._messages = self._messages, []
            return taken


_remote_class: list[Any] = []


def _actor_class() -> Any:
    """TrainingActor as a Ray actor class (made once, after Ray is imported)."""
    import ray

    if not _remote_class:
        # Two calls at once: a drain may wait while a command goes through.
        _remote_class.append(ray.remote(max_concurrency=2, max_restarts=0)(TrainingActor))
    return _remote_class[0]


class RayWorker:
    """One Ray actor, shaped like a worker process for `JobManager`.

    Attributes:
        process: is_alive / join / terminate / kill / pid, like a multiprocessing.Process.
        commands: send(command) / close(), like the command pipe's sending end.
        events: the receiving end of a local pipe with the actor's messages; closed
            at the far end when the actor is gone.

    Args:
        threads: TensorFlow threads in the actor (0 = every core it may use).
        num_cpus: CPUs the actor reserves on its node (Ray places it where they are free);
            0 = none (on one machine, the manager's limit shares the cores out).
        num_gpus: GPUs it reserves (0 = it trains on the CPU).
    """

    def __init__(self, threads: int, num_cpus: float, num_gpus: float = 0):
        import ray

        self.events, self._writer = multiprocessing.Pipe(duplex=False)
        app_node = ray.get_runtime_context().get_node_id()
        self.actor = _actor_class().options(num_cpus=num_cpus, num_gpus=num_gpus).remote(threads, app_node)
        self.pid: int | None = None
        self.shares_disk = True  # until Ready says otherwise
        self._outgoing: queue.Queue[events.Command | None] = queue.Queue()
        self._runs_dir: Path | None = None  # the app's runs folder for the job in progress
        self._shipped: list[str] = []  # runs written here for the job in progress
        self._gone = threading.Event()
        self.process = _ActorProcess(self)
        self.commands = _ActorCommands(self)
        self._pull = threading.Thread(target=self._pull_messages, name="ray-worker-events", daemon=True)
        self._push = threading.Thread(target=self._push_commands, name="ray-worker-commands", daemon=True)
        self._pull.start()
        self._push.start()

    # --------------------------------------------------------- commands

    def _push_commands(self) -> None:
        import ray

        while (command := self._outgoing.get()) is not None:
            if self._gone.is_set():
                continue
            try:
                ray.get(self.actor.command.remote(self._with_files(command)))
            except Exception:  # the actor is gone: the pull thread reports it
                traceback.print_exc(file=sys.stderr)
        self.kill()

    def _with_files(self, command: events.Command) -> events.Command:
        """A RunJob with the files an actor away from this disk needs: the continued run and the dataset file."""
        if not isinstance(command, events.RunJob):
            return command
        from playground.data.catalog import is_named_dataset
        from playground.runs.store import RunStore, RunStoreError
        from playground.spec.experiment import ExperimentSpec

        self._runs_dir = Path(command.env.get("PLAYGROUND_RUNS_DIR", "runs"))
        self._shipped = []
        if self.shares_disk:
            return command
        run_files = dataset_file = None
        if command.continue_from:
            try:
                run_files = RunStore(self._runs_dir).read_files(command.continue_from)
            except RunStoreError:
                pass  # the job fails on the node with the store's own sentence
        dataset = ExperimentSpec.from_json(command.spec).data.dataset
        if not is_named_dataset(dataset) and Path(dataset).is_file():
            dataset_file = Path(dataset).read_bytes()
        return replace(command, run_files=run_files, dataset_file=dataset_file)

    # ----------------------------------------------------------- events

    def _pull_messages(self) -> None:
        import ray

        unreachable_since: float | None = None
        try:
            while not self._gone.is_set():
                try:
                    batch = ray.get(self.actor.drain.remote(_DRAIN_WAIT_S))
                except ray.exceptions.ActorUnavailableError:
                    # The node may be restarting its connection, or dead: give it a few seconds.
                    unreachable_since = unreachable_since or time.monotonic()
                    if time.monotonic() - unreachable_since > _UNREACHABLE_FOR_S:
                        return
                    time.sleep(0.5)
                    continue
                except (ray.exceptions.RayActorError, ray.exceptions.RaySystemError):
                    return  # the actor died
                unreachable_since = None
                for message in batch:
                    self._take(message)
        except (BrokenPipeError, OSError):
            return  # the manager closed its end
        finally:
            self._gone.set()
            self._writer.close()  # the manager reads the end of the pipe as the worker's end
            self.kill()

    def _take(self, message: events.WorkerMessage) -> None:
        """Pass one actor message on to the manager; a RunFolder is written into the runs folder instead."""
        from playground.runs.store import RunStore, RunStoreError

        if isinstance(message, events.Ready):
            self.pid, self.shares_disk = message.pid, message.shares_disk
        elif isinstance(message, events.RunFolder):
            try:
                RunStore(self._runs_dir).write_files(message.run_id, message.files)
                self._shipped.append(message.run_id)
            except RunStoreError:
                traceback.print_exc(file=sys.stderr)  # the job's Done event says the run was not found later
            return
        elif (isinstance(message, events.FromJob) and isinstance(message.event, events.Stopped)
              and not message.event.run_id):
            self._forget_shipped()  # a discarded job (Reset): its checkpoint goes, as on a shared disk
        self._writer.send(message)

    def _forget_shipped(self) -> None:
        from playground.runs.store import RunStore, RunStoreError

        for run_id in self._shipped:
            try:
                RunStore(self._runs_dir).delete(run_id)
            except RunStoreError:
                pass
        self._shipped = []

    # -------------------------------------------------------------- end

    def kill(self) -> None:
        """End the actor now (its job, if any, is lost); never raises."""
        import ray

        self._gone.set()
        try:
            ray.kill(self.actor, no_restart=True)
        except Exception:
            pass


class _ActorProcess:
    """The multiprocessing.Process side of a RayWorker."""

    def __init__(self, owner: RayWorker):
        self._owner = owner

    @property
    def pid(self) -> int | None:
        """The actor's process id once it is ready (on its node's machine)."""
        return self._owner.pid

    def is_alive(self) -> bool:
        """False once the actor is gone (its messages stopped)."""
        return self._owner._pull.is_alive()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the actor's messages have stopped and, on this machine, its process has ended."""
        deadline = time.monotonic() + (timeout if timeout is not None else 3600.0)
        self._owner._pull.join(timeout)
        pid = self._owner.pid
        while pid is not None and self._owner.shares_disk and not self._owner._pull.is_alive() and _running(pid):
            if time.monotonic() >= deadline:
                return
            time.sleep(0.05)

    def terminate(self) -> None:
        """End the actor."""
        self._owner.kill()

    kill = terminate


class _ActorCommands:
    """The command-pipe side of a RayWorker: commands reach the actor one at a time, in order."""

    def __init__(self, owner: RayWorker):
        self._owner = owner

    def send(self, command: events.Command) -> None:
        """Queue a command for the actor."""
        self._owner._outgoing.put(command)

    def close(self) -> None:
        """Send what is queued, then end the actor."""
        self._owner._outgoing.put(None)


def _running(pid: int) -> bool:
    """Whether process `pid` of this machine still runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
