"""Scheduled callbacks: the handle ``schedule`` returns, the timer heap, and ``Timer``.

Theory of operation
-------------------
A zero-delay callback goes straight to the loop's ready queue; a delayed one is pushed on a heap
of ``(deadline, sequence, event)`` tuples, so equal deadlines keep scheduling order and the heap
compares plain floats and ints. Cancelling marks the event and leaves it in the heap (lazy
deletion, O(1)); the heap is rebuilt without cancelled entries once they are more than half of it,
which keeps both cancel-heavy workloads (a timeout re-armed per read) and memory in check.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from contextvars import Context
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._loop import LoopBase

__all__ = ["ScheduledEvent", "Timer", "TimerHeap"]


class ScheduledEvent:
    """A callback the loop will run later; returned by ``schedule``.

    Attributes:
        fired: True once the callback has started running.
    """

    __slots__ = (
        "_args",
        "_callback",
        "_cancelled",
        "_context",
        "_in_heap",
        "_loop",
        "_when",
        "fired",
    )

    def __init__(
        self,
        loop: LoopBase,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        when: float,
        context: Context,
    ) -> None:
        self._loop = loop
        self._callback = callback
        self._args = args
        self._when = when
        self._context = context
        self._cancelled = False
        self._in_heap = False
        self.fired = False

    def delete(self) -> None:
        """Cancel the callback. Idempotent, and harmless once it has fired."""
        if self._cancelled or self.fired:
            return
        self._cancelled = True
        self._args = ()
        if self._in_heap:
            self._loop._timers.cancelled()

    @property
    def cancelled(self) -> bool:
        """True once ``delete()`` cancelled the callback before it fired."""
        return self._cancelled

    @property
    def callback(self) -> Callable[..., object]:
        """The scheduled function."""
        return self._callback

    @property
    def when(self) -> float:
        """When the callback is due, on the loop's ``time()`` clock."""
        return self._when

    def __repr__(self) -> str:
        state = "fired" if self.fired else "cancelled" if self._cancelled else "pending"
        return f"<ScheduledEvent {state} {self._callback!r} at {self._when:.6f}>"


class TimerHeap:
    """The loop's heap of delayed events, with lazy cancellation."""

    __slots__ = ("_cancelled", "_heap", "_sequence")

    COMPACT_MIN = 64

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, ScheduledEvent]] = []
        self._sequence = 0
        self._cancelled = 0

    def push(self, event: ScheduledEvent) -> None:
        """Add an event, due at ``event.when``."""
        self._sequence += 1
        event._in_heap = True
        heapq.heappush(self._heap, (event._when, self._sequence, event))

    def cancelled(self) -> None:
        """Note that one event in the heap was cancelled; compact when they dominate."""
        self._cancelled += 1
        if self._cancelled > self.COMPACT_MIN and self._cancelled * 2 > len(self._heap):
            # in place: the loop keeps a reference to this list
            self._heap[:] = [entry for entry in self._heap if not entry[2]._cancelled]
            heapq.heapify(self._heap)
            self._cancelled = 0

    def next_deadline(self) -> float | None:
        """The deadline of the earliest live event, or None when there is none."""
        heap = self._heap
        while heap:
            entry = heap[0]
            if not entry[2]._cancelled:
                return entry[0]
            heapq.heappop(heap)
            self._cancelled -= 1
        return None

    def pop_due(self, now: float, into: Any) -> None:
        """Move every live event due at or before ``now`` to ``into`` (a deque), in order."""
        heap = self._heap
        heappop = heapq.heappop
        while heap and heap[0][0] <= now:
            event = heappop(heap)[2]
            event._in_heap = False
            if event._cancelled:
                self._cancelled -= 1
            else:
                into.append(event)

    def clear(self) -> None:
        """Forget every event."""
        for entry in self._heap:
            entry[2]._in_heap = False
        self._heap.clear()
        self._cancelled = 0

    def live(self) -> list[ScheduledEvent]:
        """The live events, earliest first."""
        return [entry[2] for entry in sorted(self._heap) if not entry[2]._cancelled]

    def __len__(self) -> int:
        return len(self._heap) - self._cancelled

    def __bool__(self) -> bool:
        return len(self._heap) > self._cancelled


class Timer:
    """A re-armable timer: one pending call of ``callback`` at a time.

    Args:
        loop: the loop to schedule on.
        callback: called with the arguments given to ``start``.
    """

    __slots__ = ("_event", "callback", "loop")

    def __init__(self, loop: LoopBase, callback: Callable[..., object]) -> None:
        self.loop = loop
        self.callback = callback
        self._event: ScheduledEvent | None = None

    def start(self, delay: float | None, *args: Any) -> None:
        """(Re-)arm: cancel any pending call, then call back after ``delay`` seconds.

        A delay of None, 0 or less arms nothing (the timer is only stopped).
        """
        event = self._event
        if event is not None:
            event.delete()
            self._event = None
        if delay is not None and delay > 0:
            self._event = self.loop.schedule(delay, self.callback, *args)

    def stop(self) -> None:
        """Cancel the pending call, if any."""
        if self._event is not None:
            self._event.delete()
            self._event = None

    @property
    def armed(self) -> bool:
        """True while a call is pending (scheduled, not yet fired, not cancelled)."""
        event = self._event
        return event is not None and not event.fired and not event._cancelled

    @property
    def event(self) -> ScheduledEvent | None:
        """The ScheduledEvent of the last ``start``, or None."""
        return self._event

    def __repr__(self) -> str:
        return f"<Timer {'armed' if self.armed else 'idle'} {self.callback!r}>"
