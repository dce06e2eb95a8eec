"""The module level: the default loop and its bound functions, make(), backends, precision."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest

import thor.loop
from thor.loop import (
    BackendUnavailableError,
    EpollLoop,
    EventSource,
    KqueueLoop,
    LoopBase,
    LoopError,
    PollLoop,
    SelectLoop,
)

BACKEND_CLASSES = {"epoll": EpollLoop, "kqueue": KqueueLoop, "poll": PollLoop, "select": SelectLoop}


def assert_idle_and_empty(loop: LoopBase) -> None:
    assert not loop.running
    assert loop.scheduled_events() == []
    assert loop.fd_count() == 0


@pytest.fixture
def default_loop() -> Iterator[LoopBase]:
    """The default loop, checked clean before the test and left stopped and empty after it."""
    loop = thor.loop._loop
    assert_idle_and_empty(loop)
    try:
        yield loop
    finally:
        if not loop.running:
            loop.stop()  # drops anything a failed test left behind
    assert_idle_and_empty(loop)


# -- the default loop -----------------------------------------------------------------------------


def test_the_default_loop_is_a_loop() -> None:
    assert isinstance(thor.loop._loop, LoopBase)
    assert thor.loop.get_default_loop() is thor.loop._loop


@pytest.mark.parametrize("name", ["run", "stop", "schedule", "run_in_loop"])
def test_module_functions_are_bound_methods_of_the_default_loop(name: str) -> None:
    function = getattr(thor.loop, name)
    assert function.__self__ is thor.loop._loop
    assert function.__func__ is getattr(type(thor.loop._loop), name)
    assert function == getattr(thor.loop._loop, name)


def test_the_classic_names_are_exported() -> None:
    for name in ("run", "stop", "schedule", "run_in_loop", "Timer"):
        assert name in thor.loop.__all__


def test_schedule_run_and_stop_through_the_module(default_loop: LoopBase) -> None:
    log: list[str] = []
    safety = thor.loop.schedule(5, log.append, "timed out")

    def finish() -> None:
        log.append("scheduled")
        thor.loop.run_in_loop(log.append, "queued")
        thor.loop.run_in_loop(thor.loop.stop)

    thor.loop.schedule(0.001, finish)
    thor.loop.run()
    assert log == ["scheduled", "queued"]
    assert safety.cancelled  # stop() dropped it


def test_event_source_without_a_loop_binds_to_the_default_loop() -> None:
    assert EventSource().loop is thor.loop._loop
    assert EventSource(None).loop is thor.loop._loop


def test_time_is_the_monotonic_clock() -> None:
    assert thor.loop.time() <= thor.loop._loop.time()
    readings = [thor.loop.time() for _ in range(1000)]
    assert readings == sorted(readings)
    before = time.monotonic()
    now = thor.loop.time()
    after = time.monotonic()
    assert before <= now <= after


# -- scheduled_events -----------------------------------------------------------------------------


def test_scheduled_events_are_sorted_soonest_first_including_zero_delay(
    loop: LoopBase,
) -> None:
    def later() -> None: ...
    def soon() -> None: ...
    def now() -> None: ...
    def queued() -> None: ...

    loop.schedule(0.5, later)
    loop.schedule(0, now)
    loop.schedule(0.2, soon)
    loop.run_in_loop(queued)
    pending = loop.scheduled_events()
    assert [callback for _, callback in pending] == [now, queued, soon, later]
    dues = [due for due, _ in pending]
    assert dues == sorted(dues)
    assert dues[:2] == [0, 0]
    assert 0 < dues[2] <= 0.2
    assert 0.2 < dues[3] <= 0.5
    loop.stop()
    assert loop.scheduled_events() == []


# -- make() and the backends ----------------------------------------------------------------------


def test_make_returns_a_new_loop_with_the_best_backend() -> None:
    first, second = thor.loop.make(), thor.loop.make()
    try:
        assert first is not second
        assert first is not thor.loop._loop
        best = thor.loop.available_backends()[0]
        assert type(first) is BACKEND_CLASSES[best]
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("name", sorted(BACKEND_CLASSES))
def test_make_with_a_backend_name(name: str) -> None:
    if name in thor.loop.available_backends():
        loop = thor.loop.make(backend=name)
        try:
            assert type(loop) is BACKEND_CLASSES[name]
        finally:
            loop.close()
    else:
        with pytest.raises(BackendUnavailableError) as info:
            thor.loop.make(backend=name)
        assert isinstance(info.value, ImportError)  # what thor 0.17's make() raised
        assert isinstance(info.value, LoopError)


def test_make_kqueue_on_linux_is_unavailable() -> None:
    if "kqueue" in thor.loop.available_backends():
        pytest.skip("this platform has kqueue")
    with pytest.raises(BackendUnavailableError):
        thor.loop.make(backend="kqueue")
    with pytest.raises(ImportError):
        KqueueLoop()


def test_make_with_an_unknown_backend_raises_value_error() -> None:
    with pytest.raises(ValueError):
        thor.loop.make(backend="nonsense")


@pytest.mark.parametrize("cls", list(BACKEND_CLASSES.values()))
def test_every_backend_class_is_importable_and_a_loop(cls: type[LoopBase]) -> None:
    assert issubclass(cls, LoopBase)
    assert getattr(thor.loop, cls.__name__) is cls


# -- precision ------------------------------------------------------------------------------------


def test_precision_defaults_to_a_tenth_and_is_writable(loop: LoopBase) -> None:
    assert loop.precision == 0.1
    loop.precision = 0.25
    assert loop.precision == 0.25


@pytest.mark.parametrize("value", [0, -0.1, math.nan])
def test_precision_must_be_positive(loop: LoopBase, value: float) -> None:
    with pytest.raises(ValueError):
        loop.precision = value
    assert loop.precision == 0.1


def test_make_takes_a_precision() -> None:
    loop = thor.loop.make(precision=0.2)
    try:
        assert loop.precision == 0.2
    finally:
        loop.close()


@pytest.mark.parametrize("value", [0, -1])
def test_make_rejects_a_precision_not_above_zero(value: float) -> None:
    with pytest.raises(ValueError):
        thor.loop.make(precision=value)


def test_repr_names_the_backend_and_state(loop: LoopBase) -> None:
    text = repr(loop)
    assert type(loop).__name__ in text
    assert "idle" in text
    loop.close()
    assert "closed" in repr(loop)
