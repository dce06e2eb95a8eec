"""contextvars: callbacks run in the context captured when they were scheduled or queued."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING

from thor.loop import LoopBase, Timer

if TYPE_CHECKING:
    from conftest import Watchdog

request_id: ContextVar[str] = ContextVar("request_id", default="unset")


def test_schedule_runs_the_callback_in_the_context_captured_at_scheduling(
    loop: LoopBase,
) -> None:
    seen: list[tuple[str, str]] = []
    for delay in (0, 0.001):
        token = request_id.set(f"scheduled with delay {delay}")
        loop.schedule(delay, lambda d=delay: seen.append((str(d), request_id.get())))
        request_id.reset(token)
    token = request_id.set("current at run time")
    try:
        loop.schedule(0.002, loop.stop)
        loop.run()
    finally:
        request_id.reset(token)
    assert seen == [("0", "scheduled with delay 0"), ("0.001", "scheduled with delay 0.001")]


def test_a_callback_changing_a_variable_does_not_leak_into_others(loop: LoopBase) -> None:
    seen: list[str] = []

    def changer() -> None:
        request_id.set("changed by a callback")

    loop.schedule(0, changer)
    loop.schedule(0, lambda: seen.append(request_id.get()))
    loop.schedule(0.001, lambda: seen.append(request_id.get()))
    loop.schedule(0.002, loop.stop)
    loop.run()
    assert seen == ["unset", "unset"]
    assert request_id.get() == "unset"


def test_timer_start_captures_the_context(loop: LoopBase) -> None:
    seen: list[str] = []
    timer = Timer(loop, lambda: (seen.append(request_id.get()), loop.stop()))
    token = request_id.set("armed")
    timer.start(0.001)
    request_id.reset(token)
    loop.run()
    assert seen == ["armed"]


def test_run_in_loop_from_the_loop_thread_uses_the_callers_context(loop: LoopBase) -> None:
    seen: list[str] = []

    def queue_it() -> None:
        token = request_id.set("queued in a callback")
        loop.run_in_loop(lambda: seen.append(request_id.get()))
        request_id.reset(token)
        loop.run_in_loop(loop.stop)

    loop.schedule(0, queue_it)
    loop.run()
    assert seen == ["queued in a callback"]


def test_run_in_loop_from_another_thread_uses_that_threads_context(
    loop: LoopBase, watchdog: Callable[..., Watchdog]
) -> None:
    seen: list[tuple[str, int]] = []

    def producer() -> None:
        request_id.set("set in the producer thread")
        loop.run_in_loop(lambda: seen.append((request_id.get(), threading.get_ident())))
        loop.run_in_loop(loop.stop)

    thread = threading.Thread(target=producer)
    loop.on("start", thread.start)
    dog = watchdog()
    token = request_id.set("set on the loop thread")
    try:
        loop.run()
    finally:
        request_id.reset(token)
        thread.join()
    dog.check()
    assert seen == [("set in the producer thread", threading.get_ident())]
