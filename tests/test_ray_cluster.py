"""Training on a real two-node Ray cluster on 127.0.0.1: runs spread over nodes, travel back, survive a node's death."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from loopback_cluster import LoopbackCluster

from playground.data import builtin

pytestmark = pytest.mark.slow  # starts two Ray nodes and trains several small runs on them: about a minute

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cluster():
    c = LoopbackCluster()
    try:
        c.start_head(cpus=1)
        c.add_node(cpus=1)
        yield c
    finally:
        c.stop()


def write_dataset(path: Path) -> Path:
    """A small uploaded-style dataset: 300 training and 200 test images of the built-in shapes."""
    shapes = builtin.load_shapes(0.2, 0)
    np.savez_compressed(path, x_train=shapes.x_train[:300], y_train=shapes.y_train[:300],
                        x_test=shapes.x_test[:200], y_test=shapes.y_test[:200])
    return path


def test_runs_spread_over_nodes_come_back_and_a_dead_node_keeps_its_checkpoint(cluster, tmp_path):
    (tmp_path / "uploads").mkdir()
    dataset = write_dataset(tmp_path / "uploads" / "shapes-0001.npz")
    env = {**cluster.env(), "PLAYGROUND_RAY_ADDRESS": cluster.address, "PLAYGROUND_CPUS_PER_RUN": "1",
           "PLAYGROUND_RUNS_DIR": str(tmp_path / "runs"), "PLAYGROUND_DATA_DIR": str(tmp_path / "data"),
           "PYTHONPATH": str(ROOT)}
    app = subprocess.Popen([sys.executable, str(ROOT / "tests" / "cluster_app.py"), str(dataset)], cwd=tmp_path,
                           env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    steps = {}
    try:
        for line in app.stdout:
            if not line.startswith("{"):
                continue
            step = json.loads(line)
            steps[step["step"]] = step
            if step["step"] == "kill":
                cluster.kill_node(1)  # the second node, with the run that is not on the app's machine
                app.stdin.write("killed\n")
                app.stdin.flush()
        app.wait(60)
    finally:
        if app.poll() is None:
            app.kill()
    assert "after_kill" in steps, f"the app stopped early: {steps}"
    assert steps["joined"]["slots"] == 2 and steps["joined"]["nodes"] == 2

    # One run on each node: one on the app's machine, one on the other node, whose saved run came back.
    runs = steps["trained"]["runs"]
    assert steps["trained"]["isolated"]
    assert sorted(run["where"].split(",")[0].split(" ")[0] for run in runs.values()) == ["node", "this"], runs
    for owner, run in runs.items():
        assert run["state"] == "done" and run["run_id"] and run["saved_owner"] == owner, run
        assert (tmp_path / "runs" / run["run_id"] / "model.weights.h5").is_file()
    assert steps["continued"]["state"] == "done" and steps["continued"]["epochs"] == 4

    # The node's death stops its run with the epochs it had saved; the other run goes on.
    after = steps["after_kill"]
    assert after["state"] == "stopped" and "ended unexpectedly" in after["message"], after
    kept = re.search(r"keeps the weights of epoch (\d+)", after["message"])
    assert after["run_saved"] and kept and int(kept.group(1)) >= steps["kill"]["checkpoint"] >= 1, after
    assert after["other_was"] == "running" and after["other_state"] == "done" and after["other_run"]
