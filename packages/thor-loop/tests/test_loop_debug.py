"""Debug mode: callbacks and fd batches that hold the loop too long are reported via debug_out."""

from __future__ import annotations

import cProfile
import gc
import logging
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from thor.loop import EventSource, LoopBase

if TYPE_CHECKING:
    from conftest import Watchdog

SocketPairFactory = Callable[[], "tuple[socket.socket, socket.socket]"]
Reports = list[tuple[str, "cProfile.Profile | None"]]


def slow_callback() -> None:
    time.sleep(0.1)  # the point: a callback that blocks the loop


@pytest.fixture
def reports(loop: LoopBase) -> Reports:
    """debug_out replaced on the loop instance (as applications do) by a recorder."""
    captured: Reports = []
    loop.debug_out = lambda message, profile: captured.append((message, profile))  # type: ignore[method-assign]
    loop.debug = True
    loop.slow_callback_duration = 0.05
    return captured


def messages(captured: Reports) -> list[str]:
    return [message for message, _ in captured]


def a_profiler_is_active() -> bool:
    if sys.version_info >= (3, 12):
        return sys.monitoring.get_tool(sys.monitoring.PROFILER_ID) is not None
    return sys.getprofile() is not None


def disable_stray_profilers() -> None:
    for obj in gc.get_objects():
        if isinstance(obj, cProfile.Profile):
            obj.disable()
    sys.setprofile(None)


@pytest.fixture
def no_stray_profiler() -> Iterator[None]:
    """Fails the test if it left a profiler enabled, and disables it for the tests after."""
    was_active = a_profiler_is_active()
    yield
    if was_active or not a_profiler_is_active():
        return
    disable_stray_profilers()
    pytest.fail("the test left a profiler enabled", pytrace=False)


def test_a_slow_scheduled_callback_is_reported(loop: LoopBase, reports: Reports) -> None:
    loop.schedule(0, slow_callback)
    loop.schedule(0.001, loop.stop)
    loop.run()
    slow = [(m, p) for m, p in reports if m.startswith("long scheduled event delay")]
    assert len(slow) == 1, reports
    message, profile = slow[0]
    assert "slow_callback" in message
    assert profile is None  # no profile unless debug_profile is set


def test_a_slow_timer_callback_is_reported(loop: LoopBase, reports: Reports) -> None:
    loop.schedule(0.001, slow_callback)
    loop.schedule(0.002, loop.stop)
    loop.run()
    assert any(m.startswith("long scheduled event delay") for m in messages(reports)), reports


def test_a_slow_fd_handler_is_reported(
    loop: LoopBase,
    reports: Reports,
    socketpair: SocketPairFactory,
    watchdog: Callable[..., Watchdog],
) -> None:
    inside, outside = socketpair()
    outside.send(b"x")
    source = EventSource(loop)

    def slow_handler() -> None:
        source.unregister_fd()
        slow_callback()
        loop.schedule(0, loop.stop)

    source.on("fd_readable", slow_handler)
    source.register_fd(inside.fileno(), "fd_readable")
    dog = watchdog()
    loop.run()
    dog.check()
    assert any(m.startswith("long fd delay") for m in messages(reports)), reports


def test_fast_callbacks_are_not_reported(loop: LoopBase, reports: Reports) -> None:
    loop.slow_callback_duration = 1.0
    for _ in range(10):
        loop.schedule(0, lambda: None)
    loop.schedule(0.001, loop.stop)
    loop.run()
    assert reports == []


def test_nothing_is_reported_without_debug(loop: LoopBase, reports: Reports) -> None:
    loop.debug = False
    loop.schedule(0, slow_callback)
    loop.schedule(0.001, loop.stop)
    loop.run()
    assert reports == []


def test_the_default_threshold_is_twice_the_precision(loop: LoopBase, reports: Reports) -> None:
    loop.slow_callback_duration = None
    loop.precision = 0.02  # threshold 0.04 s
    loop.schedule(0, slow_callback)
    loop.schedule(0.001, loop.stop)
    loop.run()
    assert any(m.startswith("long scheduled event delay") for m in messages(reports)), reports


@pytest.mark.usefixtures("no_stray_profiler")
def test_debug_profile_passes_a_cprofile_profile(loop: LoopBase, reports: Reports) -> None:
    profiler_already_active = a_profiler_is_active()  # e.g. a coverage tool on Python 3.12+
    loop.debug_profile = True
    loop.schedule(0, slow_callback)
    loop.schedule(0.001, loop.stop)
    loop.run()
    slow = [(m, p) for m, p in reports if m.startswith("long scheduled event delay")]
    assert len(slow) == 1, reports
    profile = slow[0][1]
    if profile is None and profiler_already_active and sys.version_info >= (3, 12):
        return  # only one profiler may be active at a time: the loop then passes None
    assert isinstance(profile, cProfile.Profile)


@pytest.mark.usefixtures("no_stray_profiler")
def test_debug_profile_is_disabled_when_a_callback_interrupts_the_loop(
    loop: LoopBase, reports: Reports
) -> None:
    if a_profiler_is_active():
        pytest.skip("a profiler is already active")
    loop.debug_profile = True

    def interrupt() -> None:
        raise KeyboardInterrupt

    loop.schedule(0, interrupt)
    with pytest.raises(KeyboardInterrupt):
        loop.run()
    left_enabled = a_profiler_is_active()
    if left_enabled:
        disable_stray_profilers()  # before failing, so later tests are not profiled
    assert not left_enabled, "the loop's profiler was left enabled"


def test_many_pending_events_are_reported(loop: LoopBase, reports: Reports) -> None:
    for _ in range(501):
        loop.schedule(3600, lambda: None)
    loop.schedule(0, lambda: None)
    loop.schedule(0.001, loop.stop)
    loop.run()
    counts = [m for m in messages(reports) if m.endswith(" events scheduled")]
    assert counts, reports
    assert int(counts[0].split()[0]) > 500


def test_the_default_debug_out_logs_a_warning(
    loop: LoopBase, caplog: pytest.LogCaptureFixture
) -> None:
    loop.debug = True
    loop.slow_callback_duration = 0.05
    loop.schedule(0, slow_callback)
    loop.schedule(0.001, loop.stop)
    with caplog.at_level(logging.WARNING, logger="thor.loop"):
        loop.run()
    warnings = [
        record
        for record in caplog.records
        if record.name == "thor.loop" and record.levelno == logging.WARNING
    ]
    assert len(warnings) == 1
    assert "long scheduled event delay" in warnings[0].getMessage()
