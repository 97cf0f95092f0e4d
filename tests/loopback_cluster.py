"""A real two-node Ray cluster on 127.0.0.1 for tests: a head and a second node, each started with `ray start`.

Each node runs `ray start ... --block` in a session of its own, with its own
short temporary folder (Ray's sockets live there) and token authentication
turned off explicitly (RAY_AUTH_MODE=disabled), so nothing depends on what
~/.ray holds. A node ends by killing its session: `ray stop` would end every
Ray instance of the user.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_command() -> str:
    return str(Path(sys.executable).with_name("ray")) if Path(sys.executable).with_name("ray").exists() else "ray"


class LoopbackCluster:
    """A head node and worker nodes on this machine; `address` is what drivers join."""

    def __init__(self) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[tuple[subprocess.Popen, Path]] = []

    def env(self) -> dict[str, str]:
        """The environment of a process that joins the cluster."""
        return {**os.environ, **RAY_ENV}

    def _start(self, args: list[str]) -> subprocess.Popen:
        temp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: socket paths are at most 108 bytes
        log = open(temp / "start.log", "wb")
        process = subprocess.Popen([_ray_command(), "start", *args, "--temp-dir", str(temp), "--block",
                                    "--disable-usage-stats"],
                                   env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.nodes.append((process, temp))
        return process

    def start_head(self, cpus: int) -> None:
        """Start the head with `cpus` CPUs; returns once it answers on its port."""
        self._start(["--head", "--port", str(self.port), "--num-cpus", str(cpus), "--include-dashboard=false",
                     "--ray-client-server-port", str(free_port()), "--node-ip-address", "127.0.0.1"])
        self._wait_for_nodes(1)

    def add_node(self, cpus: int) -> int:
        """Start another node with `cpus` CPUs; returns its index in `nodes` once the cluster counts it."""
        self._start(["--address", self.address, "--num-cpus", str(cpus), "--node-ip-address", "127.0.0.1"])
        self._wait_for_nodes(len(self.nodes))
        return len(self.nodes) - 1

    def kill_node(self, index: int) -> None:
        """Kill node `index` at once, with every process it started (its raylet and its workers)."""
        process, _ = self.nodes[index]
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(10)

    def stop(self) -> None:
        """Kill every node, newest first, and delete their folders."""
        for index in reversed(range(len(self.nodes))):
            self.kill_node(index)
        for _, temp in self.nodes:
            shutil.rmtree(temp, ignore_errors=True)

    def _wait_for_nodes(self, count: int, timeout: float = 90.0) -> None:
        """Wait until `count` nodes are alive, asked from a short-lived driver process."""
        script = ("import ray, sys, os; ray.init(address=sys.argv[1], logging_level='ERROR'); "
                  "print(sum(n['Alive'] for n in ray.nodes()), flush=True); os._exit(0)")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process, temp in self.nodes:
                if process.poll() is not None:
                    raise RuntimeError(f"A Ray node ended at start: {(temp / 'start.log').read_text()[-2000:]}")
            answer = subprocess.run([sys.executable, "-c", script, self.address], env=self.env(),
                                    capture_output=True, text=True, timeout=60)
            if answer.stdout.strip().isdigit() and int(answer.stdout.strip()) >= count:
                return
            time.sleep(1.0)
        raise RuntimeError(f"The Ray cluster did not reach {count} nodes in {timeout:g} s.")
