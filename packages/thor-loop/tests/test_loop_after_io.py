"""loop.after_io(callback): called once, right after the IO events of a pass were dispatched
(before the pass's timers and scheduled callbacks); outside a dispatch, after the next pass's,
which then does not wait; errors reported like a callback's; dropped by stop()."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from thor.loop import EventSource, LoopBase

SocketPairFactory = Callable[[], "tuple[socket.socket, socket.socket]"]
Arm = Callable[..., Any]  # the watchdog fixture (conftest.py)


def readable_source(
    loop: LoopBase, sock: socket.socket, on_readable: Callable[[], None]
) -> EventSource:
    source = EventSource(loop)
    source.on("fd_readable", on_readable)
    source.register_fd(sock.fileno(), "fd_readable")
    return source


def test_after_io_runs_once_after_every_event_of_the_pass(
    loop: LoopBase, socketpair: SocketPairFactory, watchdog: Arm
) -> None:
    dog = watchdog()
    log: list[str] = []
    queued = [False]
    sources = []
    for number in range(3):
        inside, outside = socketpair()
        outside.send(b"x")  # all three readable before the loop's first poll

        def readable(number: int = number, inside: socket.socket = inside) -> None:
            inside.recv(10)
            log.append(f"read {number}")
            if not queued[0]:
                queued[0] = True
                loop.after_io(lambda: log.append("flush"))

        sources.append(readable_source(loop, inside, readable))

    def stop() -> None:
        log.append("scheduled callback")
        loop.stop()

    loop.schedule(0, stop)
    loop.run()
    dog.check()
    # one poll returned the three sockets: the flush comes once, after the three reads, and
    # before the pass's scheduled callbacks
    assert sorted(log[:3]) == ["read 0", "read 1", "read 2"]
    assert log[3:] == ["flush", "scheduled callback"]


def test_after_io_from_a_callback_runs_next_pass_without_waiting(
    loop: LoopBase, watchdog: Arm
) -> None:
    # nothing else is due for 5 s (the watchdog): a pass that waited for IO would time out
    dog = watchdog(5.0, "the pass after after_io() waited for IO")
    log: list[str] = []

    def flush() -> None:
        log.append("flush")
        loop.stop()

    loop.schedule(0, lambda: loop.after_io(flush))
    loop.run()
    dog.check()
    assert log == ["flush"]


def test_after_io_added_by_an_after_io_callback_waits_for_the_next_pass(
    loop: LoopBase, watchdog: Arm
) -> None:
    dog = watchdog()
    log: list[str] = []

    def second() -> None:
        log.append("second")
        loop.stop()

    def first() -> None:
        log.append("first")
        loop.after_io(second)
        loop.schedule(0, lambda: log.append("callback of the first pass"))

    loop.after_io(first)
    loop.run()
    dog.check()
    assert log == ["first", "callback of the first pass", "second"]


def test_an_after_io_error_is_reported_and_the_loop_goes_on(loop: LoopBase, watchdog: Arm) -> None:
    dog = watchdog()
    reports: list[tuple[Any, ...]] = []
    loop.set_exception_handler(lambda lp, exc, where: reports.append((exc, where)))
    log: list[str] = []

    def broken() -> None:
        raise ValueError("boom")

    def fine() -> None:
        log.append("fine")
        loop.stop()

    loop.after_io(broken)
    loop.after_io(fine)
    loop.run()
    dog.check()
    assert log == ["fine"]
    assert len(reports) == 1
    exc, where = reports[0]
    assert isinstance(exc, ValueError)
    assert "after_io" in where


def test_stop_keeps_after_io_callbacks_they_run_as_the_loop_stops(
    loop: LoopBase, watchdog: Arm
) -> None:
    # they hold output the pass produced: a callback that stops the loop (here a scheduled
    # one, after the pass's IO) does not lose an after_io registered before it
    dog = watchdog()
    log: list[str] = []

    def respond_then_stop() -> None:
        loop.after_io(lambda: log.append("flushed"))
        loop.stop()

    loop.schedule(0, respond_then_stop)
    loop.run()
    dog.check()
    assert log == ["flushed"]


def test_a_handler_stopping_the_loop_still_gets_the_pass_after_io(
    loop: LoopBase, socketpair: SocketPairFactory, watchdog: Arm
) -> None:
    dog = watchdog()
    log: list[str] = []
    inside, outside = socketpair()
    outside.send(b"x")

    def readable() -> None:
        inside.recv(10)
        loop.after_io(lambda: log.append("flushed"))
        loop.stop()

    readable_source(loop, inside, readable)
    loop.run()  # (stop() forgot the fd)
    dog.check()
    assert log == ["flushed"]


def test_close_drops_pending_after_io_callbacks(loop: LoopBase) -> None:
    log: list[str] = []

    def pending() -> None:
        log.append("dropped")

    loop.after_io(pending)
    assert loop.scheduled_events() == [(0.0, pending)]  # listed as due now
    loop.close()
    assert loop.scheduled_events() == []
    assert log == []


def test_debug_mode_reports_a_slow_after_io_callback(loop: LoopBase, watchdog: Arm) -> None:
    dog = watchdog()
    loop.debug = True
    loop.slow_callback_duration = 0.01
    reports: list[str] = []
    loop.debug_out = lambda message, profile: reports.append(message)  # type: ignore[method-assign]

    def slow_flush() -> None:
        time.sleep(0.03)

    loop.after_io(slow_flush)
    loop.schedule(0.05, loop.stop)
    loop.run()
    dog.check()
    # (only the after_io callback is slow here; anything else reported would be the machine)
    assert [report for report in reports if "after_io" in report and "slow_flush" in report]
