"""The app's side of the loopback-cluster test: a JobManager joined to a Ray cluster, run as its own process.

It joins the cluster named by PLAYGROUND_RAY_ADDRESS (one process holds one Ray
connection, and the test process may hold an embedded instance already), and
reports each step as one JSON line on stdout. The test reads them and kills a
node when told "kill".

    python tests/cluster_app.py DATASET.npz
"""

from __future__ import annotations

import json
import os
import sys
import time

from playground.runs.store import RunStore
from playground.training.jobs import JobError, JobManager
from playground.training import ray_engine
from playground.spec.experiment import ExperimentSpec

TIMEOUT = 240.0


def say(**fields) -> None:
    """One JSON line for the test."""
    print(json.dumps(fields), flush=True)


def main(dataset: str) -> None:
    manager = JobManager()  # joins PLAYGROUND_RAY_ADDRESS; PLAYGROUND_CPUS_PER_RUN=1: one run per node
    say(step="joined", slots=manager.max_concurrent, nodes=len(ray_engine.nodes()))

    # 1. Two students train at once on an uploaded .npz: each node takes one run.
    spec = ExperimentSpec().with_values(dataset=dataset, filters="4,8", dense_units="16", batch_size=32, epochs=3,
                                        validation_split=0.2)
    jobs = {owner: manager.submit(owner, spec) for owner in ("alice", "bob")}
    try:
        manager.info("alice", jobs["bob"])
        isolated = False
    except JobError:
        isolated = True
    finished = {owner: manager.wait(owner, job_id, TIMEOUT) for owner, job_id in jobs.items()}
    store = RunStore()
    say(step="trained", isolated=isolated,
        runs={owner: {"state": info.state, "where": info.where, "run_id": info.run_id, "message": info.message,
                      "saved_owner": store.load(info.run_id).owner if info.run_id else None,
                      "accuracy": info.result.summary.test_accuracy if info.result else None}
              for owner, info in finished.items()})

    # 2. Bob keeps training his model: its saved folder travels to whichever node takes the job.
    more = manager.submit("bob", spec.with_values(epochs=1), continue_from=finished["bob"].run_id)
    info = manager.wait("bob", more, TIMEOUT)
    say(step="continued", state=info.state, where=info.where, epochs=info.result.summary.epochs_completed if info.result else 0)

    # 3. Two long runs; the node away from the app is killed once its run has saved an epoch.
    long = spec.with_values(epochs=200, batch_size=8)
    jobs = {owner: manager.submit(owner, long) for owner in ("carol", "dave")}
    deadline = time.monotonic() + TIMEOUT
    remote = None
    while remote is None and time.monotonic() < deadline:
        for owner, job_id in jobs.items():
            info = manager.info(owner, job_id)
            if info.where.startswith("node") and info.checkpoint_epoch >= 1:
                remote = owner
        time.sleep(0.2)
    local = next(owner for owner in jobs if owner != remote)
    say(step="kill", remote=remote, checkpoint=manager.info(remote, jobs[remote]).checkpoint_epoch)
    assert sys.stdin.readline().strip() == "killed"
    lost = manager.wait(remote, jobs[remote], TIMEOUT)
    still = manager.info(local, jobs[local])
    manager.stop(local, jobs[local])
    kept = manager.wait(local, jobs[local], TIMEOUT)
    say(step="after_kill", state=lost.state, message=lost.message, run_id=lost.run_id,
        run_saved=bool(lost.run_id) and lost.run_id in {r.run_id for r in store.list_runs()},
        other_was=still.state, other_state=kept.state, other_run=kept.run_id)
    manager.shutdown()
    os._exit(0)  # a Ray driver may crash at exit after one of its nodes died


if __name__ == "__main__":
    main(sys.argv[1])
