"""Signals: add_signal_handler runs a callback in the loop, waking it; removal restores."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from thor.loop import LoopBase

if TYPE_CHECKING:
    from conftest import IoWatchdog, Watchdog

pytestmark = [
    pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1"),
    pytest.mark.usefixtures("sigusr1"),
]


def test_a_signal_runs_the_callback_in_the_loop_with_its_argument(
    loop: LoopBase, watchdog: Callable[..., Watchdog], sigusr1: list[int]
) -> None:
    calls: list[tuple[str, int]] = []

    def on_signal(arg: str) -> None:
        calls.append((arg, threading.get_ident()))
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, on_signal, "the argument")
    loop.schedule(0.01, os.kill, os.getpid(), signal.SIGUSR1)
    dog = watchdog(what="the signal callback did not run")
    loop.run()
    dog.check()
    assert calls == [("the argument", threading.get_ident())]
    assert sigusr1 == []  # the loop's handler, not the previous one, got it
    assert loop.remove_signal_handler(signal.SIGUSR1)


def test_a_signal_wakes_a_loop_sleeping_with_no_timers(
    loop: LoopBase, io_watchdog: Callable[..., IoWatchdog]
) -> None:
    calls: list[str] = []

    def on_signal(arg: str) -> None:
        calls.append(arg)
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, on_signal, "woken")
    dog = io_watchdog(what="a signal did not wake the sleeping loop")
    # aimed at the main thread (where the loop sleeps) so the test does not depend on which
    # thread the OS picks for a process-directed signal
    sender = threading.Timer(
        0.05, signal.pthread_kill, (threading.main_thread().ident, signal.SIGUSR1)
    )
    loop.on("start", sender.start)
    assert loop.scheduled_events() == []
    try:
        loop.run()
    finally:
        sender.join()
        loop.remove_signal_handler(signal.SIGUSR1)
    dog.check()
    assert calls == ["woken"]


def test_each_signal_runs_the_callback(loop: LoopBase, watchdog: Callable[..., Watchdog]) -> None:
    count = 0

    def on_signal() -> None:
        nonlocal count
        count += 1
        if count < 3:
            loop.schedule(0.001, os.kill, os.getpid(), signal.SIGUSR1)
        else:
            loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, on_signal)
    loop.schedule(0.001, os.kill, os.getpid(), signal.SIGUSR1)
    dog = watchdog()
    loop.run()
    dog.check()
    assert count == 3


def test_remove_signal_handler_restores_the_previous_handler(
    loop: LoopBase, sigusr1: list[int]
) -> None:
    previous = signal.getsignal(signal.SIGUSR1)
    loop.add_signal_handler(signal.SIGUSR1, print)
    assert signal.getsignal(signal.SIGUSR1) != previous
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert signal.getsignal(signal.SIGUSR1) == previous
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    os.kill(os.getpid(), signal.SIGUSR1)  # handled by the restored handler, right away
    assert sigusr1 == [signal.SIGUSR1]


def test_adding_twice_then_removing_restores_the_original(loop: LoopBase) -> None:
    previous = signal.getsignal(signal.SIGUSR1)
    loop.add_signal_handler(signal.SIGUSR1, print)
    loop.add_signal_handler(signal.SIGUSR1, repr)
    assert loop.remove_signal_handler(signal.SIGUSR1)
    assert signal.getsignal(signal.SIGUSR1) == previous


def test_close_restores_the_signal_handlers(loop: LoopBase) -> None:
    previous = signal.getsignal(signal.SIGUSR1)
    loop.add_signal_handler(signal.SIGUSR1, print)
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) == previous


def test_add_signal_handler_outside_the_main_thread_raises(loop: LoopBase) -> None:
    previous = signal.getsignal(signal.SIGUSR1)
    errors: list[BaseException] = []

    def add() -> None:
        try:
            loop.add_signal_handler(signal.SIGUSR1, print)
        except ValueError as exc:
            errors.append(exc)

    thread = threading.Thread(target=add)
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert signal.getsignal(signal.SIGUSR1) == previous


def _current_wakeup_fd() -> int:
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    return fd


def test_a_signal_wakeup_fd_is_installed_while_signals_are_handled(loop: LoopBase) -> None:
    """The C-level handler must wake the poll itself: a signal landing just before the loop
    enters its poll would otherwise wait for the next event."""
    before = _current_wakeup_fd()
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    installed = _current_wakeup_fd()
    assert installed not in (-1, before)
    assert loop.fd_count() == 0  # the loop's own fd is not the application's
    os.write(installed, b"\x0a")  # what the C handler writes: the loop drains it
    loop.schedule(0.05, loop.stop)
    loop.run()
    loop.remove_signal_handler(signal.SIGUSR1)
    assert _current_wakeup_fd() == before
