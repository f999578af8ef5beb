"""Group commit: writes that arrive while another is in flight are written together, in arrival order.

Every ClickHouse insert makes a part, and a part has a fixed cost (on the 2-core development machine about 5 ms of
file creation each, before any merge), as has every statement's planning. A request therefore pays the same
fixed cost for one event as for a thousand. Here the first caller leads: it writes its own item at once, and
whatever queued meanwhile is written by the next leader as one group, so concurrent requests share those costs
and the table receives fewer, larger parts. Each caller waits for the write that holds its item and gets that
item's own result (or the group's exception): nothing is acknowledged before it is written.

A leader hands over after its group: the oldest waiting caller leads the next one, so no caller writes others'
groups for longer than its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(eq=False)
class _Waiting[Item, Result]:
    item: Item
    size: int
    wake: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    result: Result | None = None
    error: BaseException | None = None


class GroupCommit[Item, Result]:
    """Writes items through `write_group(items) -> results` (one result per item, in order), grouping the items
    that queue while a group is being written, up to `max_size` (the items' sizes summed; one item always fits)."""

    def __init__(self, write_group: Callable[[Sequence[Item]], Sequence[Result]], *, max_size: int):
        self._write_group = write_group
        self.max_size = max_size
        self._lock = threading.Lock()
        self._queue: list[_Waiting[Item, Result]] = []
        self._leading = False

    @property
    def waiting(self) -> int:
        """Items queued and not yet taken into a group."""
        with self._lock:
            return len(self._queue)

    def write(self, item: Item, *, size: int = 1) -> Result:
        waiting: _Waiting[Item, Result] = _Waiting(item, size)
        with self._lock:
            self._queue.append(waiting)
            leads = not self._leading
            self._leading = True
        if not leads:
            try:
                waiting.wake.wait()  # woken when its group is written, or to lead the next group
            except BaseException:
                self._withdraw(waiting)
                raise
        if not waiting.done:
            self._lead(waiting)
        if waiting.error is not None:
            raise waiting.error
        return waiting.result  # type: ignore[return-value]

    def _lead(self, own: _Waiting[Item, Result]) -> None:
        group: list[_Waiting[Item, Result]] = []
        try:
            group = self._next_group()
            results = self._write_group([waiting.item for waiting in group])
            if len(results) != len(group):
                raise RuntimeError(f"a group of {len(group)} writes returned {len(results)} results")
            for waiting, result in zip(group, results, strict=True):
                waiting.result = result
        except BaseException as error:  # noqa: BLE001 - every caller of the group gets the failure as its own
            failure = error
            if not isinstance(error, Exception):  # an interrupted leader: the others' writes failed, nothing more
                failure = RuntimeError("the write of this group was interrupted")
                failure.__cause__ = error
            for waiting in group:
                waiting.error = error if waiting is own else failure
            if not group:  # interrupted before taking its group: its own item leaves the queue unwritten
                with self._lock:
                    if own in self._queue:
                        self._queue.remove(own)
                raise
        finally:
            self._hand_over()
            for waiting in group:
                waiting.done = True
                waiting.wake.set()

    def _hand_over(self) -> None:
        """The oldest waiting caller leads next; with none waiting, the next caller will."""
        with self._lock:
            if self._queue:
                self._queue[0].wake.set()
            else:
                self._leading = False

    def _withdraw(self, waiting: _Waiting[Item, Result]) -> None:
        """A waiting caller was interrupted (an asynchronous exception): its item leaves the queue unwritten, and if
        it had just been woken to lead, the lead passes on. An item already taken into a group is written anyway;
        its caller, interrupted, acknowledges nothing."""
        with self._lock:
            if waiting in self._queue:
                self._queue.remove(waiting)
            woken_to_lead = waiting.wake.is_set() and not waiting.done
        if woken_to_lead:
            self._hand_over()

    def _next_group(self) -> list[_Waiting[Item, Result]]:
        """The oldest queued items, as many as fit in `max_size` (at least one)."""
        with self._lock:
            taken, total = 0, 0
            for waiting in self._queue:
                if taken and total + waiting.size > self.max_size:
                    break
                taken, total = taken + 1, total + waiting.size
            group, self._queue = self._queue[:taken], self._queue[taken:]
        return group
