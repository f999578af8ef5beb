"""The import's worker process: items arrive in order, errors cross over clearly, and no child outlives the import."""

import os
import signal
import time

import pytest

from metering.importing.workers import WorkerError, produced_in_process, produced_in_thread


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("cannot pickle this")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_items_are_produced_in_a_child_process_in_order():
    items = list(produced_in_process(lambda: ((os.getpid(), index) for index in range(500))))
    assert [index for _, index in items] == list(range(500))
    assert {pid for pid, _ in items} != {os.getpid()}


def test_an_error_in_the_worker_is_raised_in_the_parent_after_the_items_before_it():
    def make_items():
        yield 1
        raise OSError("disk on fire")

    received = []
    with pytest.raises(OSError, match="disk on fire"):
        for item in produced_in_process(make_items):
            received.append(item)
    assert received == [1]


def test_an_error_that_cannot_cross_the_pipe_is_described():
    def make_items():
        raise Unpicklable("odd")
        yield

    with pytest.raises(WorkerError, match="the import worker failed: Unpicklable: odd"):
        list(produced_in_process(make_items))


def test_a_worker_that_dies_is_a_clear_error():
    def make_items():
        yield 1
        os.kill(os.getpid(), signal.SIGKILL)
        yield 2

    with pytest.raises(WorkerError, match=r"stopped unexpectedly \(killed by signal 9\)"):
        list(produced_in_process(make_items))


@pytest.mark.parametrize("stop", [GeneratorExit, KeyboardInterrupt])
def test_a_consumer_that_stops_early_leaves_no_process_behind(stop):
    def make_items():
        for index in range(10**9):
            yield os.getpid(), index

    items = produced_in_process(make_items)
    child, _ = next(items)
    assert not gone(child)
    if stop is GeneratorExit:
        items.close()
    else:
        with pytest.raises(KeyboardInterrupt):
            items.throw(KeyboardInterrupt)
    assert gone(child)


def test_the_worker_ignores_ctrl_c_so_the_parent_decides():
    def make_items():
        yield os.getpid()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        yield "still here"

    items = produced_in_process(make_items)
    next(items)
    assert list(items) == ["still here"]


def test_the_thread_producer_hands_over_items_and_errors():
    def make_items():
        yield from range(5)
        raise ValueError("bad")

    received = []
    with pytest.raises(ValueError, match="bad"):
        for item in produced_in_thread(make_items()):
            received.append(item)
    assert received == list(range(5))
