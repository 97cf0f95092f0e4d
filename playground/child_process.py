"""Work in a fresh child process: training workers, and decoding untrusted uploads away from the web server.

Children are started with the "spawn" context (never fork after TensorFlow
is imported), without re-running the parent's `__main__`, and, for one-off
work, with a memory ceiling and a time limit, so a hostile file can cost the
child its life but never the server its memory.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
import types
from multiprocessing.connection import Connection
from typing import Any, Callable, Iterator

_main_lock = threading.Lock()


@contextlib.contextmanager
def main_module_hidden() -> Iterator[None]:
    """Start spawn children without re-running this process's `__main__` in them.

    Spawn normally imports the parent's main script into the child. Under
    Streamlit that is the page script being run (which would start the app
    again inside the child); from a REPL or stdin it does not exist. A child
    needs nothing from it, so it sees a bare `__main__` instead.
    """
    with _main_lock:
        real = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            if real is not None:
                sys.modules["__main__"] = real


class ChildFailed(RuntimeError):
    """The child process ran out of time or memory, or died, before it answered."""


def run_in_child(work: Callable[..., Any], *args: Any, timeout: float, memory_mb: int, niceness: int = 10) -> Any:
    """Call `work(*args)` in a new spawned process and return its result.

    Args:
        work: a module-level function (it is pickled by reference).
        *args: its arguments (pickled: bytes, paths and plain values).
        timeout: seconds before the child is killed.
        memory_mb: the child's address-space ceiling; an allocation beyond it fails there.
        niceness: how much lower the child's CPU priority is than the caller's.

    Returns:
        What `work` returned.

    Raises:
        Whatever `work` raised (its exception is sent back), or ChildFailed.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child_main, args=(sender, work, args, memory_mb, niceness), daemon=True)
    with main_module_hidden():
        process.start()
    sender.close()
    try:
        if not receiver.poll(timeout):
            raise ChildFailed(f"it took longer than {timeout:.0f} seconds")
        outcome, value = receiver.recv()
    except (EOFError, OSError):
        raise ChildFailed("it ran out of memory or stopped unexpectedly") from None
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        receiver.close()
    if outcome == "error":
        raise value
    return value


def _child_main(sender: Connection, work: Callable[..., Any], args: tuple, memory_mb: int, niceness: int) -> None:
    import resource

    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 1024**2, memory_mb * 1024**2))
    with contextlib.suppress(OSError):
        os.nice(niceness)
    try:
        sender.send(("ok", work(*args)))
    except MemoryError:
        sender.send(("error", ChildFailed("it ran out of memory")))
    except Exception as exc:  # noqa: BLE001 - sent back and raised in the parent
        sender.send(("error", exc))
    finally:
        sender.close()
