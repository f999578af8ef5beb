"""Run the worker as a child process next to another long-running command (the demo's web server)."""

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def worker_child(*, stop_timeout: float = 15) -> Iterator[subprocess.Popen]:
    """Start `run_worker` in a child process with this process's settings and environment; stop it (SIGTERM, then
    SIGKILL after `stop_timeout` seconds) when the block ends, however it ends."""
    # Its own session: a Ctrl-C in the terminal reaches only the parent, which then stops the worker once, gracefully.
    child = subprocess.Popen([sys.executable, "-m", "django", "run_worker", "--verbosity", "0"], start_new_session=True)
    try:
        yield child
    finally:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
