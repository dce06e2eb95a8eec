"""run/stop/close, the 'start' and 'stop' events, and schedule()'s ordering and cancellation."""

from __future__ import annotations

import math
import socket
import sys
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from thor.loop import EventSource, LoopBase, LoopError, ScheduledEvent

SocketPairFactory = Callable[[], "tuple[socket.socket, socket.socket]"]


# -- run / stop / close ---------------------------------------------------------------------------


def test_start_is_emitted_before_the_first_pass(loop: LoopBase) -> None:
    log: list[str] = []
    loop.on("start", lambda: log.append(f"start running={loop.running}"))
    loop.schedule(0, log.append, "callback")
    loop.schedule(0, loop.stop)
    loop.run()
    assert log == ["start running=True", "callback"]
    assert not loop.running


def test_start_listener_can_schedule_the_work(loop: LoopBase) -> None:
    log: list[str] = []
    loop.on("start", lambda: loop.schedule(0, log.append, "scheduled by start"))
    loop.on("start", lambda: loop.schedule(0.001, loop.stop))
    loop.run()
    assert log == ["scheduled by start"]


def test_run_again_after_stop_works_and_emits_start_and_stop_each_time(loop: LoopBase) -> None:
    log: list[str] = []
    loop.on("start", lambda: log.append("start"))
    loop.on("stop", lambda: log.append("stop"))
    for run in ("first", "second"):
        loop.schedule(0, log.append, run)
        loop.schedule(0.001, loop.stop)
        loop.run()
    assert log == ["start", "first", "stop", "start", "second", "stop"]


def test_stop_from_a_callback_drops_everything_pending(
    loop: LoopBase, socketpair: SocketPairFactory
) -> None:
    inside, outside = socketpair()
    ran: list[str] = []
    source = EventSource(loop)
    source.on("fd_readable", lambda: ran.append("fd_readable"))
    dropped: list[ScheduledEvent] = []

    def set_up_then_stop() -> None:
        source.register_fd(inside.fileno(), "fd_readable")
        outside.send(b"x")  # the fd is readable from now on
        dropped.append(loop.schedule(0, ran.append, "zero-delay"))
        dropped.append(loop.schedule(0.001, ran.append, "timer"))
        loop.run_in_loop(ran.append, "run_in_loop")
        loop.stop()

    loop.schedule(0, set_up_then_stop)
    dropped.append(loop.schedule(0, ran.append, "later in the same pass"))
    loop.run()

    assert ran == []
    assert loop.scheduled_events() == []
    assert loop.fd_count() == 0
    assert loop.registered_fd_handlers() == []
    for event in dropped:
        assert event.cancelled
        assert not event.fired
    # the socket was only forgotten, not closed
    assert inside.fileno() >= 0
    assert inside.recv(1) == b"x"

    # nothing that stop() dropped comes back on the next run
    outside.send(b"y")
    loop.schedule(0.02, loop.stop)
    loop.run()
    assert ran == []


def test_stop_event_sees_the_loop_already_cleared(
    loop: LoopBase, socketpair: SocketPairFactory
) -> None:
    inside, _ = socketpair()
    seen: list[tuple[bool, int, list[object]]] = []
    loop.on("stop", lambda: seen.append((loop.running, loop.fd_count(), loop.scheduled_events())))
    source = EventSource(loop)
    source.register_fd(inside.fileno(), "fd_readable")
    loop.schedule(3600, print)
    loop.schedule(0, loop.stop)
    loop.run()
    assert seen == [(False, 0, [])]


def test_stop_in_a_pass_skips_the_rest_of_the_pass(loop: LoopBase) -> None:
    ran: list[str] = []
    loop.schedule(0, ran.append, "before")
    loop.schedule(0, loop.stop)
    after = loop.schedule(0, ran.append, "after")
    loop.run()
    assert ran == ["before"]
    assert not after.fired


def test_run_while_running_raises(loop: LoopBase) -> None:
    errors: list[BaseException] = []

    def nested_run() -> None:
        with pytest.raises(LoopError) as info:
            loop.run()
        errors.append(info.value)
        assert loop.running  # the failed run() did not disturb the running one
        loop.stop()

    loop.schedule(0, nested_run)
    loop.run()
    assert len(errors) == 1
    assert not loop.running


def test_run_from_a_callback_after_stop_raises(loop: LoopBase) -> None:
    """stop() then run() in a callback: the first run() has not returned, so the second would
    be a loop nested in it; it raises instead, and the first returns as stopped."""
    errors: list[BaseException] = []

    def stop_then_run() -> None:
        loop.stop()
        loop.schedule(0.2, loop.stop)  # (ends a nested run, were there one)
        try:
            loop.run()
        except LoopError as exc:
            errors.append(exc)

    loop.schedule(0, stop_then_run)
    loop.run()
    assert [type(exc) for exc in errors] == [LoopError]
    loop.schedule(0, loop.stop)
    loop.run()  # (and it runs again once the first run() has returned)


def test_close_while_running_raises(loop: LoopBase) -> None:
    errors: list[BaseException] = []

    def close_inside() -> None:
        with pytest.raises(LoopError) as info:
            loop.close()
        errors.append(info.value)
        loop.stop()

    loop.schedule(0, close_inside)
    loop.run()
    assert len(errors) == 1


def test_close_is_idempotent_and_a_closed_loop_cannot_run(
    loop: LoopBase, socketpair: SocketPairFactory
) -> None:
    inside, _ = socketpair()
    loop.close()
    loop.close()
    with pytest.raises(LoopError):
        loop.run()
    assert not loop.running
    with pytest.raises(LoopError):
        EventSource(loop).register_fd(inside.fileno(), "fd_readable")
    assert loop.fd_count() == 0


def test_loop_errors_are_runtime_errors() -> None:
    assert issubclass(LoopError, RuntimeError)


# -- schedule -------------------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [-1, -0.001, -math.inf, math.nan])
def test_schedule_rejects_negative_and_nan_delays(loop: LoopBase, delay: float) -> None:
    with pytest.raises(ValueError):
        loop.schedule(delay, print)
    assert loop.scheduled_events() == []


def test_schedule_passes_the_arguments(loop: LoopBase) -> None:
    got: list[tuple[object, ...]] = []
    loop.schedule(0, lambda *args: got.append(args), 1, "two", None)
    loop.schedule(0.001, lambda *args: got.append(args), b"three")
    loop.schedule(0.001, lambda: got.append(()))
    loop.schedule(0.002, loop.stop)
    loop.run()
    assert got == [(1, "two", None), (b"three",), ()]


def test_zero_delay_callbacks_run_in_scheduling_order(loop: LoopBase) -> None:
    order: list[int] = []
    for index in range(200):
        loop.schedule(0, order.append, index)
    loop.schedule(0, loop.stop)
    loop.run()
    assert order == list(range(200))


def test_timers_run_in_deadline_order(loop: LoopBase) -> None:
    order: list[float] = []
    for delay in (0.03, 0.01, 0.02, 0.015, 0.005):
        loop.schedule(delay, order.append, delay)
    loop.schedule(0.04, loop.stop)
    loop.run()
    assert order == [0.005, 0.01, 0.015, 0.02, 0.03]


def test_equal_delays_run_in_scheduling_order(loop: LoopBase) -> None:
    order: list[int] = []
    for index in range(100):
        loop.schedule(0.005, order.append, index)
    loop.schedule(0.01, loop.stop)
    loop.run()
    assert order == list(range(100))


def test_equal_deadlines_run_in_scheduling_order(
    loop: LoopBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Freeze the loop module's clock while scheduling, so the deadlines are exactly equal and
    # only the tie-break decides the order.
    loop_module = sys.modules["thor.loop._loop"]  # the package's _loop attribute is the loop
    frozen = loop.time()
    monkeypatch.setattr(loop_module, "_time", SimpleNamespace(monotonic=lambda: frozen))
    order: list[int] = []
    events = [loop.schedule(0.005, order.append, index) for index in range(50)]
    monkeypatch.undo()
    assert len({event.when for event in events}) == 1
    loop.schedule(0.01, loop.stop)
    loop.run()
    assert order == list(range(50))


def test_callbacks_scheduled_during_a_pass_wait_for_the_next_pass(
    loop: LoopBase, socketpair: SocketPairFactory
) -> None:
    # An fd that stays readable produces one 'io' mark per IO poll; with busy polling disabled
    # the loop polls on every pass, so the marks separate the passes.
    inside, outside = socketpair()
    outside.send(b"x")
    loop.busy_poll_interval = 0
    log: list[str] = []
    source = EventSource(loop)
    source.on("fd_readable", lambda: log.append("io"))
    source.register_fd(inside.fileno(), "fd_readable")

    def first() -> None:
        log.append("first")
        loop.schedule(0, nested)

    def nested() -> None:
        log.append("nested")
        loop.stop()

    loop.schedule(0, first)
    loop.schedule(0, log.append, "second")
    loop.run()

    passes: list[list[str]] = [[]]
    for entry in log:
        if entry == "io":
            passes.append([])
        else:
            passes[-1].append(entry)
    passes = [entries for entries in passes if entries]
    assert passes == [["first", "second"], ["nested"]], log


def test_zero_delay_chain_does_not_starve_timers_or_io(
    loop: LoopBase, socketpair: SocketPairFactory
) -> None:
    inside, outside = socketpair()
    outside.send(b"x")
    limit = 1_000_000  # a failing loop stops here rather than hang
    spins = 0
    seen: dict[str, int] = {}

    def spin() -> None:
        nonlocal spins
        spins += 1
        if spins >= limit:
            loop.stop()
        else:
            loop.schedule(0, spin)

    def mark(what: str) -> None:
        seen.setdefault(what, spins)
        if len(seen) == 2:
            loop.stop()

    source = EventSource(loop)
    source.on("fd_readable", lambda: mark("io"))
    source.register_fd(inside.fileno(), "fd_readable")
    loop.schedule(0, spin)
    loop.schedule(0.01, mark, "timer")
    loop.run()
    assert spins < limit, "the zero-delay chain starved the loop"
    assert set(seen) == {"io", "timer"}


# -- ScheduledEvent -------------------------------------------------------------------------------


def test_delete_cancels_and_is_idempotent(loop: LoopBase) -> None:
    ran: list[str] = []
    timer = loop.schedule(0.001, ran.append, "timer")
    zero = loop.schedule(0, ran.append, "zero")
    for event in (timer, zero):
        event.delete()
        event.delete()
        assert event.cancelled
        assert not event.fired
    assert loop.scheduled_events() == []
    loop.schedule(0.02, loop.stop)
    loop.run()
    assert ran == []
    timer.delete()
    assert not timer.fired


def test_delete_from_an_earlier_callback_in_the_same_pass(loop: LoopBase) -> None:
    ran: list[str] = []
    victims: list[ScheduledEvent] = []

    def cancel_the_victim() -> None:
        victims[0].delete()

    loop.schedule(0, cancel_the_victim)
    victims.append(loop.schedule(0, ran.append, "victim"))
    loop.schedule(0, loop.stop)
    loop.run()
    assert ran == []


def test_delete_after_firing_is_harmless(loop: LoopBase) -> None:
    ran: list[str] = []
    handles: list[ScheduledEvent] = []

    def callback() -> None:
        ran.append("ran")
        handles[0].delete()  # deleting itself while running
        loop.schedule(0, loop.stop)

    handles.append(loop.schedule(0.001, callback))
    loop.run()
    handles[0].delete()
    assert ran == ["ran"]
    assert handles[0].fired
    assert not handles[0].cancelled


def test_fired_is_set_when_the_callback_starts(loop: LoopBase) -> None:
    seen: list[bool] = []
    handles: list[ScheduledEvent] = []

    def callback() -> None:
        seen.append(handles[0].fired)
        loop.stop()

    handles.append(loop.schedule(0.001, callback))
    assert not handles[0].fired
    loop.run()
    assert seen == [True]
    assert handles[0].fired


def test_scheduled_event_exposes_callback_and_deadline(loop: LoopBase) -> None:
    before = loop.time()
    event = loop.schedule(10, print)
    after = loop.time()
    assert event.callback is print
    assert before + 10 <= event.when <= after + 10
    assert "pending" in repr(event)
    event.delete()
    assert "cancelled" in repr(event)
