"""Group commit: writes queued behind a running one are written together, each caller gets its own result."""

import dataclasses
import threading
import time
from collections.abc import Callable

import pytest

from metering.ingest import group_commit
from metering.ingest.group_commit import GroupCommit


def eventually(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


class Writer:
    """A `write_group` that records its groups and the thread that wrote each; a group whose first item is in
    `held` waits until that item is released. An item starting with `fail` fails its whole group."""

    def __init__(self):
        self.groups: list[list[str]] = []
        self.threads: list[str] = []
        self.held: dict[str, threading.Event] = {}
        self.writing: set[str] = set()

    def hold(self, item: str) -> threading.Event:
        self.held[item] = threading.Event()
        return self.held[item]

    def __call__(self, items):
        if items[0] in self.held:
            self.writing.add(items[0])
            assert self.held[items[0]].wait(10)
        self.groups.append(list(items))
        self.threads.append(threading.current_thread().name)
        if any(item.startswith("fail") for item in items):
            raise ValueError(f"refused {items}")
        return [item.upper() for item in items]


class Caller(threading.Thread):
    def __init__(self, commit: GroupCommit, item: str, size: int = 1):
        super().__init__(name=item, daemon=True)
        self.commit, self.item, self.size = commit, item, size
        self.result: str | None = None
        self.error: BaseException | None = None

    def run(self):
        try:
            self.result = self.commit.write(self.item, size=self.size)
        except BaseException as error:  # noqa: BLE001 - the test inspects it
            self.error = error


def queued(commit: GroupCommit, *callers: Caller) -> None:
    """Start the callers one by one, each queued before the next starts (arrival order is theirs)."""
    for count, caller in enumerate(callers, start=commit.waiting + 1):
        caller.start()
        eventually(lambda count=count: commit.waiting == count)


def joined(*callers: Caller) -> None:
    for caller in callers:
        caller.join(10)
        assert not caller.is_alive()


def held_leader(writer: Writer, *, max_size: int = 10) -> tuple[GroupCommit, Caller, threading.Event]:
    """A group commit whose first caller, "a", is held inside its write, so that others queue behind it; returns
    the commit, that caller and the event that releases it."""
    release = writer.hold("a")
    commit = GroupCommit(writer, max_size=max_size)
    a = Caller(commit, "a")
    a.start()
    eventually(lambda: "a" in writer.writing)
    return commit, a, release


def test_a_lone_write_is_written_at_once_by_its_caller():
    writer = Writer()
    commit = GroupCommit(writer, max_size=10)
    assert commit.write("a") == "A"
    assert writer.groups == [["a"]]
    assert writer.threads == [threading.current_thread().name]


def test_writes_queued_behind_a_running_one_are_written_together_in_arrival_order():
    writer = Writer()
    commit, a, release = held_leader(writer)
    b, c, d = (Caller(commit, item) for item in "bcd")
    queued(commit, b, c, d)
    release.set()
    joined(a, b, c, d)
    assert writer.groups == [["a"], ["b", "c", "d"]]
    assert [caller.result for caller in (a, b, c, d)] == ["A", "B", "C", "D"]
    # the leader wrote its own group only; the oldest waiting caller wrote the next
    assert writer.threads == ["a", "b"]


def test_a_group_holds_at_most_max_size_and_an_item_larger_than_that_goes_alone():
    writer = Writer()
    commit, a, release = held_leader(writer, max_size=5)
    b, c, d, e = Caller(commit, "b", 2), Caller(commit, "c", 3), Caller(commit, "d", 9), Caller(commit, "e", 1)
    queued(commit, b, c, d, e)
    release.set()
    joined(a, b, c, d, e)
    assert writer.groups == [["a"], ["b", "c"], ["d"], ["e"]]
    assert [caller.result for caller in (b, c, d, e)] == ["B", "C", "D", "E"]


def test_a_failed_group_fails_each_of_its_callers_and_later_writes_go_on():
    writer = Writer()
    commit, a, release = held_leader(writer)
    b, failing = Caller(commit, "b"), Caller(commit, "fail-c")
    queued(commit, b, failing)
    release.set()
    joined(a, b, failing)
    assert a.result == "A" and a.error is None
    # nothing of the failed group is acknowledged: both callers get the failure, neither a result
    assert [(b.result, str(b.error)), (failing.result, str(failing.error))] == [
        (None, "refused ['b', 'fail-c']"),
        (None, "refused ['b', 'fail-c']"),
    ]
    assert commit.write("e") == "E"
    assert writer.groups[-1] == ["e"]


def test_a_leader_returns_while_the_next_group_is_still_being_written():
    writer = Writer()
    second = writer.hold("b")
    commit, a, first = held_leader(writer)
    b = Caller(commit, "b")
    queued(commit, b)
    first.set()
    joined(a)
    assert a.result == "A"
    eventually(lambda: "b" in writer.writing)
    assert b.is_alive() and b.result is None
    second.set()
    joined(b)
    assert b.result == "B"


def test_a_write_group_that_returns_the_wrong_number_of_results_fails_the_group():
    commit = GroupCommit(lambda items: [], max_size=10)
    with pytest.raises(RuntimeError, match="a group of 1 writes returned 0 results"):
        commit.write("a")


class Interrupted(KeyboardInterrupt):
    pass


def interrupting_waits(monkeypatch, thread_name: str, *, after_waking: bool) -> None:
    """The wait of the caller running in `thread_name` is interrupted (an asynchronous exception, as Ctrl-C or a
    signal handler raises): before it is woken, or just as it is woken to lead."""

    class Wake(threading.Event):
        def wait(self, timeout=None):
            if threading.current_thread().name == thread_name:
                if after_waking:
                    super().wait(timeout)
                raise Interrupted
            return super().wait(timeout)

    @dataclasses.dataclass(eq=False)
    class Waiting(group_commit._Waiting):
        wake: threading.Event = dataclasses.field(default_factory=Wake)

    monkeypatch.setattr(group_commit, "_Waiting", Waiting)


@pytest.mark.parametrize("after_waking", [False, True], ids=["while-waiting", "as-woken-to-lead"])
def test_an_interrupted_waiting_caller_leaves_its_item_unwritten_and_the_others_go_on(monkeypatch, after_waking):
    writer = Writer()
    commit, a, release = held_leader(writer)
    interrupting_waits(monkeypatch, "b", after_waking=after_waking)
    b = Caller(commit, "b")
    b.start()
    if after_waking:
        eventually(lambda: commit.waiting == 1)
    else:
        joined(b)
    c = Caller(commit, "c")
    queued(commit, c)
    release.set()
    joined(a, b, c)
    assert isinstance(b.error, Interrupted) and b.result is None
    assert (a.result, c.result) == ("A", "C")
    assert writer.groups == [["a"], ["c"]]
    assert commit.write("d") == "D"


def test_an_interrupted_leader_fails_its_group_and_the_next_caller_leads():
    class Leader(Writer):
        def __call__(self, items):
            if items[0] == "a":
                self.writing.add("a")
                assert self.held["a"].wait(10)
                self.groups.append(list(items))
                raise Interrupted
            return super().__call__(items)

    writer = Leader()
    commit, a, release = held_leader(writer)
    b = Caller(commit, "b")
    queued(commit, b)
    release.set()
    joined(a, b)
    assert isinstance(a.error, Interrupted)
    assert writer.groups == [["a"], ["b"]]
    assert b.result == "B"
