"""Running the import's reading and validation beside the writing: in a helper thread, or in a child process.

Parsing and validating an event costs ~20 µs of Python; writing it is mostly PostgreSQL's time. A thread only
overlaps the writer's waits on the database (one GIL), so on PostgreSQL the import forks a worker process that
reads the source, validates and formats each batch, and hands it over a pipe: Python then runs on one core while
PostgreSQL runs on the other.

The worker never touches the database (it inherits the parent's connection object and must leave it alone) and
ignores Ctrl-C: the parent stops it whenever the consumer stops early, fails or is interrupted, and a worker
whose parent died stops at its next hand-over (the pipe breaks). Errors raised in the worker are raised again
in the parent with their type and message.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import signal
import threading
import time
import warnings
from collections.abc import Callable, Generator, Iterable
from multiprocessing.connection import Connection
from typing import Any

_DONE = object()
_STOP_TIMEOUT = 5.0


class WorkerError(RuntimeError):
    """The worker process stopped without finishing or reporting an error (killed, out of memory)."""


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def process_workers_available() -> bool:
    return hasattr(os, "fork")


def produced_in_thread(items: Iterable, *, depth: int = 2) -> Generator:
    """Produce `items` in a helper thread, up to `depth` ahead of the consumer."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Failure(exc))

    worker = threading.Thread(target=produce, name="import-reader", daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        worker.join(timeout=_STOP_TIMEOUT)


def produced_in_process(make_items: Callable[[], Iterable]) -> Generator:
    """Iterate `make_items()` in a forked child process; items travel pickled over a pipe, whose buffer lets the
    child prepare the next item while the consumer handles this one.

    A bare `os.fork` rather than `multiprocessing`: its child start-up closes `sys.stdin`, which an import from
    stdin is reading, and the child must leave through `os._exit` without running the parent's exit handlers.
    """
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        # The parent's other threads (the database connection pool's) hold nothing the child uses.
        warnings.filterwarnings("ignore", message=r".*multi-threaded.*fork", category=DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.close(read_fd)
            code = _child_run(make_items, Connection(write_fd, readable=False))
        finally:
            os._exit(code)
    os.close(write_fd)
    child = _Child(pid)
    receiver = Connection(read_fd, writable=False)
    finished = False
    try:
        while True:
            try:
                tag, payload = receiver.recv()
            except EOFError:
                child.exited(block=True)
                raise WorkerError(f"the import worker process stopped unexpectedly ({child.exit_text()})") from None
            if tag == "item":
                yield payload
            elif tag == "error":
                raise payload
            else:
                finished = True
                return
    finally:
        receiver.close()
        child.stop(finished=finished)


def _child_run(make_items: Callable[[], Iterable], sender: Connection) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the parent decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        for item in make_items():
            sender.send(("item", item))
        sender.send(("done", None))
        return 0
    except (BrokenPipeError, ConnectionResetError):
        return 1  # the parent stopped listening
    except BaseException as exc:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sender.send(("error", _picklable(exc)))
        return 1
    finally:
        sender.close()


class _Child:
    """A forked child process, reaped exactly once."""

    def __init__(self, pid: int):
        self.pid = pid
        self.status: int | None = None  # the wait status once reaped

    def exited(self, *, block: bool = False) -> bool:
        if self.status is None:
            try:
                waited, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                waited, status = self.pid, 0
            if waited:
                self.status = status
        return self.status is not None

    def exited_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not self.exited():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def stop(self, *, finished: bool) -> None:
        """Once finished the child exits by itself; otherwise (the consumer stopped early, failed or was
        interrupted) it is terminated, and killed if it does not go within a few seconds."""
        if self.exited() or (finished and self.exited_within(_STOP_TIMEOUT)):
            return
        os.kill(self.pid, signal.SIGTERM)
        if not self.exited_within(_STOP_TIMEOUT):
            os.kill(self.pid, signal.SIGKILL)
            self.exited(block=True)

    def exit_text(self) -> str:
        if self.status is None:
            return "still running"
        if os.WIFSIGNALED(self.status):
            return f"killed by signal {os.WTERMSIG(self.status)}"
        return f"exit code {os.waitstatus_to_exitcode(self.status)}"


def _picklable(exc: BaseException) -> BaseException:
    try:
        copy: Any = pickle.loads(pickle.dumps(exc))
    except Exception:
        return WorkerError(f"the import worker failed: {type(exc).__name__}: {exc}")
    return copy
