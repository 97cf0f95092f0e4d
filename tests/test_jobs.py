"""JobManager with real spawn workers and real tiny trainings on the built-in shapes.

One manager (one warm worker, so jobs queue) serves most tests; each test's
runs go to its own tmp folder because a job carries the PLAYGROUND_* settings
of the moment it was submitted.
"""

import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
import threading
import time

import numpy as np
import pytest

from playground.data import datasets
from playground.training import events, jobs
from playground.training import worker as worker_module
from playground.training.jobs import JobError, JobManager
from playground.runs.store import RunStore
from playground.spec.experiment import ExperimentSpec

# A few hundred 28x28 shapes, two small conv blocks: an epoch takes well under a second.
TINY = ExperimentSpec().with_values(
    dataset="shapes", sample_size="300", filters="4,8", dense_units="16", batch_size="32", epochs="2"
)
SLOW = TINY.with_values(epochs="50", batch_size="8")  # long enough to interrupt
TIMEOUT = 180  # generous: the suite may share two cores with other test processes


def wait_for(condition, timeout=TIMEOUT, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"Timed out waiting for {what}.")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def manager():
    m = JobManager(max_concurrent=1, grace_seconds=60)
    yield m
    pids = m.worker_pids()
    m.shutdown()
    assert not any(alive(pid) for pid in pids), "shutdown left a worker process behind"


@pytest.mark.slow  # starts a worker process (TensorFlow import) and trains for real
def test_submit_trains_saves_and_reports_events(manager):
    job_id = manager.submit("alice", TINY)
    info = manager.wait("alice", job_id, TIMEOUT)
    assert info.state == "done", info.status_line
    summary = info.result.summary
    assert summary.epochs_completed == 2 and summary.stop_reason == "completed"
    assert 0.0 <= summary.test_accuracy <= 1.0
    assert len(info.result.history["loss"]) == 2 and info.result.save_error == "" and info.result.run_id == info.run_id
    record = RunStore().load(info.run_id)
    assert record.owner == "alice" and record.metrics["epochs_completed"] == 2
    assert record.metrics == summary.as_dict()  # one summary: the "done" event's numbers are the run's metrics.json
    assert [r.run_id for r in RunStore().list_runs()] == [info.run_id]  # its checkpoints were replaced

    sent = manager.drain("alice", job_id)
    kinds = [type(e) for e in sent]
    assert kinds[0] is events.ProbeImage and events.Start in kinds and kinds[-1] is events.Done
    assert [e.epoch for e in sent if isinstance(e, events.Epoch)] == [1, 2]
    # Checkpoints (at most one per CHECKPOINT_INTERVAL_S, so a short run may have none) use the run's id.
    saved = [(e.run_id, e.epoch) for e in sent if isinstance(e, events.Checkpoint)]
    assert all(run_id == info.run_id for run_id, _ in saved)
    assert [epoch for _, epoch in saved] == sorted({epoch for _, epoch in saved}) and set(e for _, e in saved) <= {1, 2}
    assert info.checkpoint_epoch == (saved[-1][1] if saved else 0)
    assert any(isinstance(e, events.Probe) and e.maps for e in sent)
    assert manager.drain("alice", job_id) == []  # drained means gone
    # Workers train at a lower CPU priority than the app, so pages stay quick while they train.
    assert info.worker_pid and os.getpriority(os.PRIO_PROCESS, info.worker_pid) >= os.getpriority(os.PRIO_PROCESS, 0) + 1


def _write_two_class_npz(path, names: tuple[str, str]) -> None:
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 256, (40, 8, 8, 1), dtype=np.uint8), y_train=np.arange(40) % 2,
             x_test=rng.integers(0, 256, (10, 8, 8, 1), dtype=np.uint8), y_test=np.arange(10) % 2,
             class_names=np.array(names))


def npz_spec(folder, name: str) -> ExperimentSpec:
    """A one-epoch spec on a new two-class .npz dataset whose classes are cat and dog."""
    path = folder / f"{name}.npz"
    _write_two_class_npz(path, ("cat", "dog"))
    return TINY.with_values(dataset=str(path), epochs="1")


def rename_classes(spec: ExperimentSpec) -> None:
    """Call the classes of the spec's dataset ant and bee, in a file of the same size and time.

    A job then still sees cat and dog only when a worker loaded the data before (a "prepare").
    """
    path = spec.data.dataset
    stamp = os.stat(path)
    _write_two_class_npz(path, ("ant", "bee"))
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert os.stat(path).st_size == stamp.st_size


def trained_class_names(manager, owner: str, spec: ExperimentSpec) -> tuple[str, ...]:
    info = manager.wait(owner, manager.submit(owner, spec), TIMEOUT)
    assert info.state == "done", info.status_line
    return RunStore().load(info.run_id).class_names


def workers_idle(manager) -> bool:
    """No job on any worker, and no "prepare" loading or waiting."""
    with manager._lock:
        return all(w.job is None and not w.preparing and w.next_prepare is None for w in manager._workers)


@pytest.mark.slow
def test_an_idle_worker_prepares_the_next_jobs_data(manager, tmp_path):
    spec = npz_spec(tmp_path, "pets")
    wait_for(lambda: workers_idle(manager), what="an idle worker")
    assert manager.prepare(spec)
    wait_for(lambda: workers_idle(manager), what="the worker to load the data")
    rename_classes(spec)
    assert trained_class_names(manager, "p", spec) == ("cat", "dog")


@pytest.mark.slow
def test_prepares_are_bounded_deduplicated_and_give_way_to_jobs(manager, tmp_path):
    a, b, c, d, e = (npz_spec(tmp_path, name) for name in "abcde")
    wait_for(lambda: workers_idle(manager), what="an idle worker")
    # While the worker loads one prepare, only the newest asked for meanwhile waits (c replaces b).
    # (Holding the manager's lock keeps the worker's answer from arriving in between.)
    with manager._lock:
        assert manager.prepare(a) and manager.prepare(b) and manager.prepare(c)
        assert not manager.prepare(a) and not manager.prepare(c)  # loading, and waiting
    wait_for(lambda: workers_idle(manager), what="the prepares to end")
    assert not manager.prepare(c)  # loaded, and its network warm: never prepared twice
    # (a's data is loaded too, but c's network is the warm one: `prepare(a)` would warm a's up.)
    for spec in (a, b, c):
        rename_classes(spec)
    assert trained_class_names(manager, "p", a) == ("cat", "dog")
    assert trained_class_names(manager, "p", b) == ("ant", "bee")  # replaced by c: never loaded
    assert trained_class_names(manager, "p", c) == ("cat", "dog")

    # A job goes first: the prepare waiting behind d is dropped.
    wait_for(lambda: workers_idle(manager), what="an idle worker")
    with manager._lock:
        assert manager.prepare(d) and manager.prepare(e)
        job_id = manager.submit("p", TINY.with_values(epochs="1"))
    assert manager.wait("p", job_id, TIMEOUT).state == "done"
    rename_classes(e)
    assert trained_class_names(manager, "p", e) == ("ant", "bee")  # never loaded
    assert workers_idle(manager)


def test_a_workers_queue_runs_jobs_first_and_holds_one_prepare():
    work = worker_module.WorkQueue()
    prepares = [events.PrepareData(spec=str(i), env={}) for i in range(3)]
    jobs_in = [(events.RunJob(job_id=str(i), owner="o", spec="{}", env={}, continue_from=None, step=False),
                worker_module.Control(str(i), outbox=None)) for i in range(2)]
    work.add_prepare(prepares[0])
    work.add_prepare(prepares[1])  # replaces the one still waiting
    assert work.take() is prepares[1]
    work.add_prepare(prepares[2])
    work.add_job(*jobs_in[0])  # drops the waiting prepare
    work.add_prepare(prepares[0])  # ignored while a job waits
    work.add_job(*jobs_in[1])
    assert [work.take(), work.take()] == jobs_in
    threading.Timer(0.3, work.close).start()
    assert work.take() is None  # nothing to do: it waited until shut down


@pytest.mark.slow
def test_the_first_point_can_be_awaited(manager):
    job_id = manager.submit("w", TINY.with_values(epochs="1"))
    wait_for(lambda: manager.info("w", job_id).worker_ready, what="the worker to have TensorFlow loaded")
    assert manager.wait_for_event("w", job_id, events.Batch, TIMEOUT)
    first = [e for e in manager.drain("w", job_id) if isinstance(e, events.Batch)][0]
    assert first.step == 0 and math.isfinite(first.loss)  # the untrained model's point
    assert manager.wait("w", job_id, TIMEOUT).state == "done"
    manager.drain("w", job_id)
    assert not manager.wait_for_event("w", job_id, events.Batch, 5)  # an ended job has nothing more to wait for


@pytest.mark.slow
def test_queue_is_fifo_with_visible_positions(manager):
    first = manager.submit("a", TINY.with_values(epochs="1"))
    second = manager.submit("b", TINY.with_values(epochs="1"))
    third = manager.submit("c", TINY.with_values(epochs="1"))
    fourth = manager.submit("d", TINY.with_values(epochs="1"))
    assert manager.info("a", first).queue_position is None
    assert [manager.info(o, j).queue_position for o, j in [("b", second), ("c", third), ("d", fourth)]] == [1, 2, 3]
    assert manager.info("b", second).status_line == "queued: position 1 of 3"

    manager.stop("c", third)  # a queued job is cancelled at once and leaves the queue
    assert manager.info("c", third).state == "stopped"
    assert manager.info("d", fourth).queue_position == 2

    for owner, job_id in [("a", first), ("b", second), ("d", fourth)]:
        assert manager.wait(owner, job_id, TIMEOUT).state == "done"
    started = [manager.info(o, j).started for o, j in [("a", first), ("b", second), ("d", fourth)]]
    assert started == sorted(started)


def test_the_queue_puts_a_students_second_run_behind_everyones_first(manager):
    first = manager.submit("veteran", TINY.with_values(epochs="1"))
    assert manager.wait("veteran", first, TIMEOUT).state == "done"
    busy = manager.submit("busy", SLOW)  # holds the only worker
    again = manager.submit("veteran", TINY.with_values(epochs="1"))  # their second run
    newcomer = manager.submit("newcomer", TINY.with_values(epochs="1"))  # a first run, submitted later
    late = manager.submit("late", TINY.with_values(epochs="1"))
    try:
        positions = {owner: manager.info(owner, job).queue_position
                     for owner, job in [("veteran", again), ("newcomer", newcomer), ("late", late)]}
        assert positions == {"newcomer": 1, "late": 2, "veteran": 3}
    finally:
        for owner, job in [("veteran", again), ("newcomer", newcomer), ("late", late), ("busy", busy)]:
            manager.stop(owner, job, discard=True)
    assert manager.wait("busy", busy, TIMEOUT).state == "stopped"


def test_a_run_over_the_servers_budget_is_refused_before_it_queues(manager, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_RUN_BUDGET_MINUTES", "5")
    with pytest.raises(JobError, match=r"about 6 min .* more than the 5 min one run may take here"):
        manager.submit("big", TINY, estimated_seconds=360)
    assert manager.jobs("big") == []
    assert jobs.budget_problem(299, 300) == "" and jobs.budget_problem(None, 300) == ""


@pytest.mark.slow  # starts two managers, each with its worker
def test_a_restarted_app_tells_each_browser_about_its_runs_that_did_not_finish(tmp_path):
    journal = tmp_path / "runs" / jobs.JOURNAL_NAME
    first = JobManager(max_concurrent=1, journal=journal)
    try:
        running = first.submit("alice", SLOW, client="10.0.0.7")
        first.submit("bob", TINY, client="10.0.0.8")  # waits in the queue behind alice's
        wait_for(lambda: first.info("alice", running).checkpoint_epoch >= 1, timeout=TIMEOUT, what="a checkpoint")
        wait_for(lambda: '"run_id": "' in journal.read_text(), what="the journal to hold the checkpoint")
    finally:
        first.shutdown()  # as when the server is stopped (a crash leaves the journal as last written)
    second = JobManager(max_concurrent=1, journal=journal)
    try:
        assert second.lost_jobs("10.0.0.9") == []
        [bob] = second.lost_jobs("10.0.0.8")
        assert bob.state == "queued" and bob.run_id is None and "waiting in the queue" in bob.notice()
        [alice] = second.lost_jobs("10.0.0.7")
        assert alice.state == "running" and alice.run_id and alice.epoch >= 1 and f"epoch {alice.epoch} is kept as a saved run" in alice.notice()
        assert second.lost_jobs("10.0.0.7") == []  # told once
    finally:
        second.shutdown()


def test_sessions_see_and_control_only_their_own_jobs(manager):
    job_id = manager.submit("alice", SLOW)
    try:
        for call in (manager.info, manager.drain, manager.pause, manager.resume, manager.step, manager.stop):
            with pytest.raises(JobError, match="no job"):
                call("mallory", job_id)
        assert manager.jobs("mallory") == []
        assert job_id in [j.job_id for j in manager.jobs("alice")]
        with pytest.raises(JobError, match="already has a run"):
            manager.submit("alice", TINY)
    finally:
        manager.stop("alice", job_id, discard=True)
    assert manager.wait("alice", job_id, TIMEOUT).state == "stopped"


@pytest.mark.slow
def test_pause_step_resume_continue_the_same_curves(manager):
    job_id = manager.submit("alice", TINY.with_values(epochs="3", batch_size="8"))
    manager.pause("alice", job_id)  # reaches the worker before the first batch ends
    paused = wait_for(lambda: manager.info("alice", job_id).state == "paused" and manager.info("alice", job_id),
                      what="the pause")
    assert paused.epoch == 0

    manager.step("alice", job_id)  # finish this epoch, then pause again
    assert manager.info("alice", job_id).state == "running"  # at once: the page answering the click refreshes
    after_step = wait_for(lambda: (i := manager.info("alice", job_id)).state == "paused" and i.epoch == 1 and i,
                          what="the end of the stepped epoch")
    assert after_step.epoch == 1
    time.sleep(1.0)
    assert manager.info("alice", job_id).epoch == 1  # still paused: no further epoch

    manager.resume("alice", job_id)
    assert manager.info("alice", job_id).state == "running"
    done = manager.wait("alice", job_id, TIMEOUT)
    assert done.state == "done" and done.result.summary.epochs_completed == 3
    sent = manager.drain("alice", job_id)
    assert [e.epoch for e in sent if isinstance(e, events.Epoch)] == [1, 2, 3]
    assert [type(e) for e in sent].count(events.Start) == 1  # one job, one continuous run
    assert [type(e) for e in sent if isinstance(e, (events.Paused, events.Resumed))] == [
        events.Paused, events.Resumed, events.Paused, events.Resumed]


@pytest.mark.slow
def test_stop_ends_early_and_keeps_the_model(manager):
    job_id = manager.submit("alice", SLOW)
    wait_for(lambda: manager.info("alice", job_id).epoch >= 1, what="the first epoch")
    manager.stop("alice", job_id)
    done = manager.wait("alice", job_id, TIMEOUT)
    assert done.state == "done" and done.result.summary.stop_reason == "stopped"
    assert 1 <= done.result.summary.epochs_completed < 50
    assert RunStore().load(done.run_id).metrics["stop_reason"] == "stopped"


@pytest.mark.slow
def test_jobs_of_a_session_that_is_gone_are_cancelled(manager):
    present = threading.Event()

    def keep_page_open():  # "present" keeps heartbeating, as its open page does
        while not present.is_set():
            manager.heartbeat("present")
            time.sleep(0.2)

    heart = threading.Thread(target=keep_page_open, daemon=True)
    heart.start()
    manager.grace_seconds = 1.0
    try:
        running = manager.submit("ghost", SLOW)
        queued = manager.submit("ghost-2", TINY)
        keeper = manager.submit("present", TINY)
        assert manager.wait("ghost-2", queued, 10).status_line == jobs.SESSION_GONE
        assert manager.wait("ghost", running, TIMEOUT).status_line == jobs.SESSION_GONE
        assert manager.wait("present", keeper, TIMEOUT).state == "done"
    finally:
        manager.grace_seconds = 60
        present.set()
        heart.join()
    assert RunStore().list_runs(owner="ghost") == []  # cancelled runs are not saved


def checkpoint_events(manager, owner, job_id, seen):
    """Drain the job's events into `seen`; return the Checkpoint events so far."""
    seen.extend(manager.drain(owner, job_id))
    return [e for e in seen if isinstance(e, events.Checkpoint)]


@pytest.mark.slow
def test_a_killed_worker_is_reported_and_replaced(manager):
    job_id = manager.submit("alice", SLOW)
    seen = []
    wait_for(lambda: checkpoint_events(manager, "alice", job_id, seen), what="the first saved epoch")
    info = manager.info("alice", job_id)
    os.kill(info.worker_pid, signal.SIGKILL)  # while it trains: maybe in the middle of saving an epoch
    ended = manager.wait("alice", job_id, 30)
    assert ended.state == "stopped" and ended.run_id and ended.checkpoint_epoch >= 1
    saved = checkpoint_events(manager, "alice", job_id, seen)
    assert saved[-1] == events.Checkpoint(run_id=ended.run_id, epoch=ended.checkpoint_epoch)
    assert ended.status_line == (f"stopped: the training process ended unexpectedly; "
                                 f"the run keeps the weights of epoch {ended.checkpoint_epoch}")
    assert seen[-1] == events.Stopped(message=ended.message, run_id=ended.run_id)
    assert info.worker_pid not in manager.worker_pids()

    # The run keeps its last saved epoch: listed once, loadable, its model predicts.
    store = RunStore()
    assert [r.run_id for r in store.list_runs(owner="alice")] == [ended.run_id]
    record = store.load(ended.run_id)
    assert not record.damaged and record.metrics["epochs_completed"] == ended.checkpoint_epoch
    assert record.metrics["stop_reason"] == "interrupted" and math.isnan(record.metrics["test_accuracy"])
    assert len(record.history["loss"]) == ended.checkpoint_epoch
    data = datasets.load_for_spec(record.spec)
    probabilities = store.load_model(ended.run_id)(data.x_test[:8].astype(np.float32), training=False).numpy()
    assert probabilities.shape == (8, len(record.class_names)) and np.allclose(probabilities.sum(axis=1), 1.0)

    next_job = manager.submit("alice", TINY.with_values(epochs="1"))
    done = manager.wait("alice", next_job, TIMEOUT)
    assert done.state == "done" and done.run_id != ended.run_id
    assert {r.run_id for r in store.list_runs(owner="alice")} == {ended.run_id, done.run_id}


@pytest.mark.slow
def test_a_worker_killed_before_its_first_epoch_leaves_no_run(manager):
    job_id = manager.submit("alice", SLOW)
    manager.pause("alice", job_id)  # holds it after its first batch, so no epoch can finish
    info = wait_for(lambda: (i := manager.info("alice", job_id)).state == "paused" and i, what="the pause")
    os.kill(info.worker_pid, signal.SIGKILL)
    ended = manager.wait("alice", job_id, 30)
    assert ended.state == "stopped" and ended.run_id is None and ended.checkpoint_epoch == 0
    assert ended.status_line == "stopped: the training process ended unexpectedly"
    assert RunStore().list_runs() == []


@pytest.mark.slow
def test_a_killed_continuation_keeps_the_run_it_continued(manager):
    first = manager.wait("alice", manager.submit("alice", TINY), TIMEOUT)
    store = RunStore()
    before = store.load(first.run_id)
    job_id = manager.submit("alice", SLOW, continue_from=first.run_id)
    seen = []
    wait_for(lambda: checkpoint_events(manager, "alice", job_id, seen), what="the first saved epoch")
    os.kill(manager.info("alice", job_id).worker_pid, signal.SIGKILL)
    ended = manager.wait("alice", job_id, 30)
    assert ended.state == "stopped" and ended.run_id not in (None, first.run_id)
    assert ended.checkpoint_epoch >= 3  # counted from the continued model's first epoch

    after = store.load(first.run_id)  # the continued run is untouched
    assert after.metrics == before.metrics and after.history == before.history
    continued = store.load(ended.run_id)
    assert continued.metrics["epochs_completed"] == ended.checkpoint_epoch
    assert continued.history["loss"][:2] == before.history["loss"]
    assert {r.run_id for r in store.list_runs()} == {first.run_id, ended.run_id}


@pytest.mark.slow
def test_results_arrive_even_when_the_run_cannot_be_saved(manager, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the runs folder should be")
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(blocker / "runs"))
    job_id = manager.submit("alice", TINY.with_values(epochs="1"))
    done = manager.wait("alice", job_id, TIMEOUT)
    assert done.state == "done" and done.run_id is None
    assert 0.0 <= done.result.summary.test_accuracy <= 1.0 and done.result.run_id is None
    assert done.result.save_error.startswith("The run could not be saved") and done.message == done.result.save_error


def test_commands_on_finished_jobs_are_refused(manager):
    job_id = manager.submit("carol", TINY)
    manager.stop("carol", job_id, discard=True)
    manager.wait("carol", job_id, TIMEOUT)
    with pytest.raises(JobError, match="cannot pause"):
        manager.pause("carol", job_id)


@pytest.mark.slow  # starts its own app process and worker
def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children, their children, ...), from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


@pytest.mark.parametrize("engine", ["ray", "processes"])
def test_workers_exit_when_the_app_process_dies(tmp_path, engine):
    script = textwrap.dedent(
        f"""
        import sys, time
        from playground.training.jobs import JobManager
        m = JobManager(max_concurrent=1, engine={engine!r})
        while not m.worker_pids():  # a Ray actor tells its process id once it is ready
            time.sleep(0.1)
        print(*m.worker_pids(), flush=True)
        time.sleep(600)
        """
    )
    app = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                           cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        pids = [int(p) for p in app.stdout.readline().split()]
        assert pids and all(alive(p) for p in pids)
        # With Ray: its local instance too, and the actors below it. Ray's two agents (dashboard and
        # runtime env) notice that their raylet ended by themselves, about a minute later: not waited for here.
        started = [pid for pid in descendants(app.pid) if "Agent" not in Path(f"/proc/{pid}/cmdline").read_text()]
        assert set(pids) <= set(started)
        app.kill()  # no atexit, no clean shutdown: the workers must notice on their own
        app.wait(10)
        wait_for(lambda: not any(alive(p) for p in started), timeout=30, what="the workers to exit")
    finally:
        if app.poll() is None:
            app.kill()


def test_a_worker_remembers_the_data_it_has_loaded_recently():
    w = jobs._Worker(process=None, commands=None, events=None)
    for seed in range(datasets.MAX_CACHED + 2):
        w.remember(("shapes", 0.2, seed))
    assert w.prepared == [("shapes", 0.2, seed) for seed in range(2, datasets.MAX_CACHED + 2)]  # as many as it caches
    w.remember(("shapes", 0.2, 3))  # loaded again: now the most recent
    assert w.prepared[-1] == ("shapes", 0.2, 3) and len(w.prepared) == datasets.MAX_CACHED


@pytest.mark.slow
def test_a_job_left_paused_is_stopped_and_keeps_its_model(manager):
    manager.pause_timeout = 1.0
    try:
        job_id = manager.submit("idle", TINY.with_values(epochs="5"), step=True)  # one epoch, then paused
        done = manager.wait("idle", job_id, 60)
    finally:
        manager.pause_timeout = 300.0
    assert done.state == "done", done.status_line
    assert done.status_line == ("stopped after 1 second paused: the model so far was evaluated and saved, "
                                "and the training process is free for others")
    summary = done.result.summary
    assert summary.stop_reason == "stopped" and summary.epochs_completed == 1 and 0.0 <= summary.test_accuracy <= 1.0
    record = RunStore().load(done.run_id)  # kept, as the Stop button keeps it
    assert not record.damaged and record.owner == "idle" and record.metrics == summary.as_dict()
    kinds = [type(e) for e in manager.drain("idle", job_id)]
    assert kinds.count(events.Paused) == 1 and kinds[-1] is events.Done


def test_one_computer_gets_its_share_of_runs_whatever_its_tabs(manager, monkeypatch):
    started = [("tab-1", manager.submit("tab-1", SLOW, client="10.0.0.7"))]
    try:
        with pytest.raises(JobError, match="^This computer already has 1 run in progress in other tabs or windows"):
            manager.submit("tab-2", TINY, client="10.0.0.7")  # another session of the same computer
        started.append(("tab-3", manager.submit("tab-3", TINY, client="10.0.0.8")))  # another computer
        started.append(("tab-4", manager.submit("tab-4", TINY)))  # no address (the server's own machine): no cap
        monkeypatch.setenv("PLAYGROUND_JOBS_PER_CLIENT", "2")
        started.append(("tab-2", manager.submit("tab-2", TINY, client="10.0.0.7")))
        with pytest.raises(JobError, match="already has 2 runs in progress"):
            manager.submit("tab-5", TINY, client="10.0.0.7")
        manager.stop("tab-1", started[0][1], discard=True)  # a job being stopped no longer counts
        started.append(("tab-5", manager.submit("tab-5", TINY, client="10.0.0.7")))
    finally:
        for owner, job_id in started:
            if manager.info(owner, job_id).active:
                manager.stop(owner, job_id, discard=True)
    for owner, job_id in started:
        assert manager.wait(owner, job_id, TIMEOUT).state == "stopped"


@pytest.mark.slow
def test_saved_runs_have_a_quota_per_session_and_in_total(manager, monkeypatch, tmp_path):
    monkeypatch.setenv("PLAYGROUND_RUNS_PER_SESSION", "1")
    first = manager.wait("q", manager.submit("q", TINY.with_values(epochs="1")), TIMEOUT)
    assert first.state == "done", first.status_line
    with pytest.raises(JobError, match="^This session has 1 saved run, .*; delete some on Compare runs"):
        manager.submit("q", TINY)
    continued = manager.wait("q", manager.submit("q", TINY, continue_from=first.run_id), TIMEOUT)
    assert continued.state == "done"  # a continued model is not a new one
    assert manager.wait("r", manager.submit("r", TINY.with_values(epochs="1")), TIMEOUT).state == "done"

    monkeypatch.setenv("PLAYGROUND_RUNS_TOTAL_MB", "2")
    (tmp_path / "runs" / "notes.bin").write_bytes(bytes(2 * 1024**2))  # the runs folder is full
    for owner, continue_from in (("s", None), ("q", continued.run_id)):
        with pytest.raises(JobError, match="take their whole 2 MB; delete some on Compare runs"):
            manager.submit(owner, TINY, continue_from=continue_from)
    assert manager.jobs("s") == []


@pytest.mark.slow  # starts the app's manager, with its worker
def test_the_apps_manager_sweeps_leftovers_at_start(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    killed_save = runs / ".tmp-20260101-000000000-ab12-cd34"
    killed_save.mkdir(parents=True)
    (killed_save / "model.weights.h5").write_bytes(bytes(1000))
    live_save = runs / ".tmp-20260101-000000001-ab12-ef56"
    live_save.mkdir()
    partial = tmp_path / "data" / "uploads" / "0123456789abcdef" / "pets-0123.npz.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(bytes(1000))
    hour_ago = time.time() - 3600
    for path in (killed_save / "model.weights.h5", killed_save, partial):
        os.utime(path, (hour_ago, hour_ago))
    monkeypatch.setattr(jobs._holder, "manager", None)  # as in a fresh app (another test may have started one)
    manager = jobs.get_manager()
    try:
        assert not killed_save.exists() and not partial.exists()
        assert live_save.is_dir() and partial.parent.is_dir()
    finally:
        manager.shutdown()
