"""An exception from a callback or handler is reported and the loop carries on.

set_exception_handler routes the reports; KeyboardInterrupt still ends run().
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from thor.loop import EventSource, LoopBase

if TYPE_CHECKING:
    from conftest import Watchdog

SocketPairFactory = Callable[[], "tuple[socket.socket, socket.socket]"]


class BoomError(Exception):
    pass


def raise_boom(*args: object) -> None:
    raise BoomError("boom", *args)


def error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "thor.loop" and record.levelno == logging.ERROR
    ]


def assert_logged_boom(caplog: pytest.LogCaptureFixture, count: int = 1) -> None:
    records = error_records(caplog)
    assert len(records) == count, [record.getMessage() for record in records]
    for record in records:
        assert record.exc_info is not None
        assert isinstance(record.exc_info[1], BoomError)
        assert record.exc_info[2] is not None  # the traceback is kept


def test_a_failing_scheduled_callback_is_logged_and_the_loop_carries_on(
    loop: LoopBase, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []
    loop.schedule(0, raise_boom)
    loop.schedule(0, ran.append, "same pass")
    loop.schedule(0.001, raise_boom)
    loop.schedule(0.002, ran.append, "later timer")
    loop.schedule(0.003, loop.stop)
    with caplog.at_level(logging.ERROR, logger="thor.loop"):
        loop.run()
    assert ran == ["same pass", "later timer"]
    assert_logged_boom(caplog, 2)


def test_a_failing_run_in_loop_callback_is_logged_and_the_loop_carries_on(
    loop: LoopBase, caplog: pytest.LogCaptureFixture, watchdog: Callable[..., Watchdog]
) -> None:
    ran: list[str] = []

    def producer() -> None:
        loop.run_in_loop(raise_boom)
        loop.run_in_loop(ran.append, "next")
        loop.run_in_loop(loop.stop)

    thread = threading.Thread(target=producer)
    loop.on("start", thread.start)
    dog = watchdog()
    with caplog.at_level(logging.ERROR, logger="thor.loop"):
        try:
            loop.run()
        finally:
            thread.join()
    dog.check()
    assert ran == ["next"]
    assert_logged_boom(caplog)


def test_a_failing_fd_handler_is_logged_and_the_loop_carries_on(
    loop: LoopBase,
    socketpair: SocketPairFactory,
    caplog: pytest.LogCaptureFixture,
    watchdog: Callable[..., Watchdog],
) -> None:
    bad_inside, bad_outside = socketpair()
    good_inside, good_outside = socketpair()
    calls: list[str] = []
    bad = EventSource(loop)

    def bad_handler() -> None:
        calls.append("bad")
        bad.unregister_fd()
        raise BoomError("fd")

    bad.on("fd_readable", bad_handler)
    bad.register_fd(bad_inside.fileno(), "fd_readable")
    good = EventSource(loop)

    def good_handler() -> None:
        calls.append("good")
        good_inside.recv(10)
        loop.schedule(0, loop.stop)

    good.on("fd_readable", good_handler)
    good.register_fd(good_inside.fileno(), "fd_readable")
    bad_outside.send(b"x")
    good_outside.send(b"x")  # the other fd of the same batch is still dispatched
    dog = watchdog()
    with caplog.at_level(logging.ERROR, logger="thor.loop"):
        loop.run()
    dog.check()
    assert sorted(calls) == ["bad", "good"]
    assert_logged_boom(caplog)


def test_a_failing_start_listener_is_logged_and_the_loop_runs(
    loop: LoopBase, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []
    loop.on("start", raise_boom)
    loop.schedule(0, ran.append, "scheduled")
    loop.schedule(0.001, loop.stop)
    with caplog.at_level(logging.ERROR, logger="thor.loop"):
        loop.run()
    assert ran == ["scheduled"]
    assert_logged_boom(caplog)


def test_the_exception_handler_receives_loop_exception_and_where(
    loop: LoopBase, socketpair: SocketPairFactory, caplog: pytest.LogCaptureFixture
) -> None:
    inside, outside = socketpair()
    outside.send(b"x")
    reports: list[tuple[LoopBase, BaseException, str]] = []
    loop.set_exception_handler(lambda lp, exc, where: reports.append((lp, exc, where)))
    source = EventSource(loop)
    source.on("fd_readable", lambda: (source.unregister_fd(), raise_boom("fd")))
    source.register_fd(inside.fileno(), "fd_readable")
    loop.schedule(0, raise_boom, "scheduled")
    loop.run_in_loop(raise_boom, "queued")
    loop.schedule(0.01, loop.stop)
    with caplog.at_level(logging.ERROR, logger="thor.loop"):
        loop.run()
    assert error_records(caplog) == []  # the handler took them all
    assert len(reports) == 3
    for reported_loop, exc, where in reports:
        assert reported_loop is loop
        assert isinstance(exc, BoomError)
        assert isinstance(where, str)
        assert where
    assert sorted(exc.args[1] for _, exc, _ in reports) == ["fd", "queued", "scheduled"]


def test_a_failing_exception_handler_falls_back_to_logging(
    loop: LoopBase, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_handler(lp: LoopBase, exc: BaseException, where: str) -> None:
        raise RuntimeError("handler bug")

    loop.set_exception_handler(broken_handler)
    ran: list[str] = []
    loop.schedule(0, raise_boom)
    loop.schedule(0, ran.append, "next")
    loop.schedule(0.001, loop.stop)
    with caplog.at_level(logging.ERROR, logger="thor.loop"):
        loop.run()
    assert ran == ["next"]
    logged = [record.exc_info[1] for record in error_records(caplog) if record.exc_info]
    assert any(isinstance(exc, BoomError) for exc in logged)
    assert any(isinstance(exc, RuntimeError) for exc in logged)


def test_set_exception_handler_none_restores_logging(
    loop: LoopBase, caplog: pytest.LogCaptureFixture
) -> None:
    reports: list[BaseException] = []
    loop.set_exception_handler(lambda lp, exc, where: reports.append(exc))
    loop.set_exception_handler(None)
    loop.schedule(0, raise_boom)
    loop.schedule(0.001, loop.stop)
    with caplog.at_level(logging.ERROR, logger="thor.loop"):
        loop.run()
    assert reports == []
    assert_logged_boom(caplog)


def test_keyboard_interrupt_from_a_callback_propagates_out_of_run(loop: LoopBase) -> None:
    ran: list[str] = []

    def interrupt() -> None:
        raise KeyboardInterrupt

    loop.schedule(0, interrupt)
    loop.schedule(0.001, ran.append, "after")
    safety = loop.schedule(2, loop.stop)  # if it was swallowed, end the test (failing)
    with pytest.raises(KeyboardInterrupt):
        loop.run()
    assert not loop.running
    assert ran == []
    # the loop can be run again
    safety.delete()
    loop.schedule(0.01, loop.stop)
    loop.run()
    assert ran == ["after"]


def test_keyboard_interrupt_from_an_fd_handler_propagates_out_of_run(
    loop: LoopBase, socketpair: SocketPairFactory
) -> None:
    inside, outside = socketpair()
    outside.send(b"x")
    source = EventSource(loop)

    def interrupt() -> None:
        source.unregister_fd()
        raise KeyboardInterrupt

    source.on("fd_readable", interrupt)
    source.register_fd(inside.fileno(), "fd_readable")
    loop.schedule(2, loop.stop)  # if it was swallowed, end the test (failing)
    with pytest.raises(KeyboardInterrupt):
        loop.run()
    assert not loop.running
    loop.stop()
