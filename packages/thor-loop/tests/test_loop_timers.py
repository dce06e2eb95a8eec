"""Timers fire on time (not on a precision tick), scale, cost nothing while idle; Timer."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from thor.loop import LoopBase, ScheduledEvent, Timer

if TYPE_CHECKING:
    from conftest import IoWatchdog, Watchdog


def noop() -> None:
    pass


# -- on time --------------------------------------------------------------------------------------


def test_a_10ms_timer_fires_after_10ms_and_well_within_100ms(
    loop: LoopBase, watchdog: Callable[..., Watchdog]
) -> None:
    assert loop.precision == 0.1  # the classic default, which must not delay timers
    fired_at: list[float] = []

    def fire() -> None:
        fired_at.append(loop.time())
        loop.stop()

    dog = watchdog()
    start = loop.time()
    loop.schedule(0.01, fire)
    loop.run()
    dog.check()
    elapsed = fired_at[0] - start
    assert 0.01 <= elapsed < 0.1, elapsed


def test_a_coarse_precision_does_not_delay_timers(
    loop: LoopBase, watchdog: Callable[..., Watchdog]
) -> None:
    loop.precision = 2.0
    fired_at: list[float] = []
    dog = watchdog()
    start = loop.time()
    loop.schedule(0.01, lambda: (fired_at.append(loop.time()), loop.stop()))
    loop.run()
    dog.check()
    assert 0.01 <= fired_at[0] - start < 0.5


def test_a_zero_delay_callback_runs_on_the_first_pass(loop: LoopBase) -> None:
    ran_at: list[float] = []
    start = loop.time()
    loop.schedule(0, lambda: (ran_at.append(loop.time()), loop.stop()))
    loop.run()
    assert ran_at[0] - start < 0.1  # classic thor waited for a precision tick


def test_a_chain_of_1000_zero_delay_callbacks_is_fast(loop: LoopBase) -> None:
    # classic thor ran one scheduler pass per precision: 1000 x 0.1 s = 100 s
    remaining = 1000

    def step() -> None:
        nonlocal remaining
        remaining -= 1
        if remaining:
            loop.schedule(0, step)
        else:
            loop.stop()

    loop.schedule(3, loop.stop)  # a failure finishes in 3 s, with remaining > 0
    started = time.monotonic()
    loop.schedule(0, step)
    loop.run()
    assert remaining == 0
    assert time.monotonic() - started < 1.0


def test_scheduled_events_reports_seconds_until_due(loop: LoopBase) -> None:
    loop.schedule(5, noop)
    loop.schedule(0.5, print)
    [(first_due, first), (second_due, second)] = loop.scheduled_events()
    assert (first, second) == (print, noop)
    assert 0 < first_due <= 0.5
    assert 4 < second_due <= 5


# -- far deadlines and many cancellations ---------------------------------------------------------


@pytest.mark.parametrize("delay", [30 * 86400, 1e9], ids=["30-days", "1e9-seconds"])
def test_a_timer_far_in_the_future_does_not_break_the_loop(
    loop: LoopBase, io_watchdog: Callable[..., IoWatchdog], delay: float
) -> None:
    # Such a timer is the loop's only deadline: the poll timeout must not overflow
    # (poll and epoll take a C int of milliseconds: about 24.8 days at most).
    far = loop.schedule(delay, noop)
    dog = io_watchdog()
    stopper = threading.Timer(0.05, loop.run_in_loop, (loop.stop,))
    loop.on("start", stopper.start)
    try:
        loop.run()
    finally:
        stopper.join()
    dog.check()
    assert not far.fired


def test_an_infinite_delay_is_refused_or_never_fires(
    loop: LoopBase, io_watchdog: Callable[..., IoWatchdog]
) -> None:
    try:
        never = loop.schedule(math.inf, noop)
    except ValueError:
        return
    dog = io_watchdog()
    stopper = threading.Timer(0.05, loop.run_in_loop, (loop.stop,))
    loop.on("start", stopper.start)
    try:
        loop.run()
    finally:
        stopper.join()
    dog.check()
    assert not never.fired


def test_cancelling_100k_timers_then_running(
    loop: LoopBase, watchdog: Callable[..., Watchdog]
) -> None:
    events = [loop.schedule(3600 + index * 1e-6, noop) for index in range(100_000)]
    assert len(loop._timers) == 100_000
    for event in events:
        event.delete()
    assert loop.scheduled_events() == []
    assert len(loop._timers) == 0
    assert len(loop._timers._heap) < 1000, "cancelled timers are not compacted away"
    dog = watchdog()
    loop.schedule(0.001, loop.stop)
    loop.run()
    dog.check()


def test_a_timer_rearmed_100k_times_keeps_the_heap_small(loop: LoopBase) -> None:
    # e.g. an idle timeout pushed back on every read
    timer = Timer(loop, noop)
    for _ in range(100_000):
        timer.start(60)
    assert len(loop._timers) == 1
    assert len(loop._timers._heap) < 1000
    timer.stop()
    assert loop.scheduled_events() == []


# -- idle -----------------------------------------------------------------------------------------


def test_an_idle_loop_uses_no_cpu(loop: LoopBase) -> None:
    loop.schedule(3600, noop)
    loop.schedule(1.0, loop.stop)
    cpu_started = time.process_time()
    wall_started = loop.time()
    loop.run()
    cpu = time.process_time() - cpu_started
    assert loop.time() - wall_started >= 1.0
    assert cpu < 0.2, f"{cpu:.3f} s of CPU while idle for 1 s"


# -- Timer ----------------------------------------------------------------------------------------


def test_timer_start_rearms_so_only_the_last_start_calls_back(loop: LoopBase) -> None:
    calls: list[str] = []
    timer = Timer(loop, calls.append)
    assert not timer.armed
    assert timer.event is None
    timer.start(0.05, "first")
    first = timer.event
    timer.start(0.01, "second")
    assert timer.armed
    assert isinstance(timer.event, ScheduledEvent)
    assert timer.event is not first
    assert first is not None and first.cancelled
    loop.schedule(0.1, loop.stop)
    loop.run()
    assert calls == ["second"]
    assert not timer.armed
    assert timer.event.fired


@pytest.mark.parametrize("delay", [None, 0, -1])
def test_timer_start_with_no_positive_delay_arms_nothing(
    loop: LoopBase, delay: float | None
) -> None:
    calls: list[str] = []
    timer = Timer(loop, calls.append)
    timer.start(0.001, "pending")
    timer.start(delay, "never")  # also cancels the pending call
    assert not timer.armed
    assert timer.event is None
    assert loop.scheduled_events() == []
    loop.schedule(0.02, loop.stop)
    loop.run()
    assert calls == []


def test_timer_stop_cancels_and_is_idempotent(loop: LoopBase) -> None:
    calls: list[str] = []
    timer = Timer(loop, calls.append)
    timer.stop()
    timer.start(0.001, "x")
    timer.stop()
    timer.stop()
    assert not timer.armed
    loop.schedule(0.02, loop.stop)
    loop.run()
    assert calls == []


def test_timer_is_not_armed_inside_its_callback_and_can_rearm_there(loop: LoopBase) -> None:
    seen: list[tuple[int, bool]] = []

    def tick(count: int) -> None:
        seen.append((count, timer.armed))
        if count < 3:
            timer.start(0.001, count + 1)
            assert timer.armed
        else:
            loop.stop()

    timer = Timer(loop, tick)
    timer.start(0.001, 1)
    loop.run()
    assert seen == [(1, False), (2, False), (3, False)]
