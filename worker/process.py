"""Run the worker as a child process next to another long-running command (the demo's web server)."""

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def worker_child(*, stop_timeout: float = 15) -> Iterator[subprocess.Popen]:
    """Start `run_worker` in a child process with this process's settings and environment; stop it (SIGTERM, then
    SIGKILL after `stop_timeout` seconds) when the block ends, however it ends."""
    # Its own session: a Ctrl-C in the terminal reaches only the parent, which then stops the worker once, gracefully.
    child = subprocess.Popen([sys.executable, "-m", "django", "run_worker", "--verbosity", "0"], start_new_session=True)
    # SIGTERM (systemd, `kill`, a supervisor) would end this process without unwinding, orphaning the worker: turn it
    # into SystemExit so the block below stops the child as a Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, _exit_on_signal) if _in_main_thread() else None
    try:
        yield child
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
