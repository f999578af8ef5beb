"""Running the same work in several threads at once, for races that only a real database shows."""

import threading
from collections.abc import Callable

from django.db import connections


def run_concurrently(work: Callable[[int], object], *, threads: int) -> list:
    """Call `work(worker)` in `threads` threads released together; return their results. Any exception in a
    thread fails the caller's test (it is re-raised), and each thread closes its own database connections."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []
    results = []

    def run(worker: int) -> None:
        try:
            barrier.wait(timeout=10)
            results.append(work(worker))
        except BaseException as exc:  # noqa: BLE001 - any failure in a thread must fail the test
            errors.append(exc)
        finally:
            connections.close_all()

    running = [threading.Thread(target=run, args=(worker,)) for worker in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join(timeout=60)
    assert errors == []
    assert len(results) == threads
    return results
