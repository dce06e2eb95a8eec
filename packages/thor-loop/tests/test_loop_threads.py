"""run_in_loop: the thread-safe entry point. It wakes a sleeping loop, keeps FIFO order, runs
callbacks on the loop's thread and loses nothing under concurrent callers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from thor.loop import LoopBase

if TYPE_CHECKING:
    from conftest import IoWatchdog, Watchdog


def test_run_in_loop_from_another_thread_wakes_a_loop_with_no_timers(
    loop: LoopBase, io_watchdog: Callable[..., IoWatchdog]
) -> None:
    calls: list[tuple[str, int]] = []

    def on_loop(arg: str) -> None:
        calls.append((arg, threading.get_ident()))
        loop.stop()

    dog = io_watchdog(what="run_in_loop from a thread did not wake the sleeping loop")
    caller = threading.Timer(0.05, loop.run_in_loop, (on_loop, "hello"))
    loop.on("start", caller.start)
    assert loop.scheduled_events() == []  # nothing but IO can wake the loop
    try:
        loop.run()
    finally:
        caller.join()
    dog.check()
    assert calls == [("hello", threading.get_ident())]


def test_run_in_loop_before_run_is_called_once_the_loop_runs(loop: LoopBase) -> None:
    log: list[str] = []
    loop.run_in_loop(log.append, "queued")
    loop.run_in_loop(loop.stop)
    loop.on("start", lambda: log.append("start"))
    loop.run()
    assert log == ["start", "queued"]


def test_run_in_loop_is_fifo_from_the_loop_thread(loop: LoopBase) -> None:
    order: list[int] = []

    def enqueue() -> None:
        for index in range(100):
            loop.run_in_loop(order.append, index)
        loop.run_in_loop(loop.stop)

    loop.schedule(0, enqueue)
    loop.run()
    assert order == list(range(100))


def test_run_in_loop_is_fifo_from_another_thread(
    loop: LoopBase, watchdog: Callable[..., Watchdog]
) -> None:
    order: list[int] = []

    def producer() -> None:
        for index in range(500):
            loop.run_in_loop(order.append, index)
        loop.run_in_loop(loop.stop)

    thread = threading.Thread(target=producer)
    loop.on("start", thread.start)
    dog = watchdog()
    try:
        loop.run()
    finally:
        thread.join()
    dog.check()
    assert order == list(range(500))


def test_run_in_loop_callbacks_run_on_the_loop_thread(
    loop: LoopBase, watchdog: Callable[..., Watchdog]
) -> None:
    # The loop runs in a worker thread; the main thread hands it work.
    ran_on: list[int] = []
    started = threading.Event()
    loop.on("start", started.set)
    dog = watchdog()
    worker = threading.Thread(target=loop.run)
    worker.start()
    try:
        assert started.wait(5), "the loop did not start"
        loop.run_in_loop(lambda: ran_on.append(threading.get_ident()))
        loop.run_in_loop(loop.stop)
    finally:
        worker.join(10)
    assert not worker.is_alive()
    dog.check()
    assert ran_on == [worker.ident]
    assert worker.ident != threading.get_ident()


def test_concurrent_callers_lose_nothing(loop: LoopBase, watchdog: Callable[..., Watchdog]) -> None:
    threads_count, calls_each = 4, 1000
    received: list[tuple[int, int]] = []
    barrier = threading.Barrier(threads_count)

    def on_loop(thread_index: int, call_index: int) -> None:
        received.append((thread_index, call_index))
        if len(received) == threads_count * calls_each:
            loop.stop()

    def producer(thread_index: int) -> None:
        barrier.wait()
        for call_index in range(calls_each):
            loop.run_in_loop(on_loop, thread_index, call_index)

    threads = [threading.Thread(target=producer, args=(index,)) for index in range(threads_count)]

    def start_producers() -> None:
        for thread in threads:
            thread.start()

    loop.on("start", start_producers)
    dog = watchdog(10.0, "run_in_loop calls were lost")
    try:
        loop.run()
    finally:
        for thread in threads:
            thread.join()
    dog.check()
    assert len(received) == threads_count * calls_each
    for thread_index in range(threads_count):
        mine = [call for index, call in received if index == thread_index]
        assert mine == list(range(calls_each))  # FIFO per producer, nothing lost or repeated
