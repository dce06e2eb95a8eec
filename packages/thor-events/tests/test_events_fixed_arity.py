"""EventEmitter._emit1 / _emit3, the fixed-arity emits thor's own packages use for per-message
events: in every case they must do exactly what ``emit`` does (listeners, their contexts, once,
sinks, unhandled 'error', return values), and a subclass that overrides ``emit`` must see the
events sent through them.

Each scenario is built twice, once driven by ``emit`` and once by the fixed-arity method, and the
two records (calls, contexts seen, return values) must be equal.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from thor.events import EventEmitter, UnhandledError, set_unhandled_error_handler

WHERE: contextvars.ContextVar[str] = contextvars.ContextVar("WHERE", default="unset")

Log = list[tuple[Any, ...]]


@pytest.fixture(autouse=True)
def isolated() -> Iterator[None]:
    token = WHERE.set("unset")
    yield
    WHERE.reset(token)


class Sink:
    def __init__(self, log: Log) -> None:
        self.log = log

    def one(self, arg: Any) -> None:
        self.log.append(("sink one", arg, WHERE.get()))

    def three(self, a: Any, b: Any, c: Any) -> None:
        self.log.append(("sink three", a, b, c, WHERE.get()))


def listener(log: Log, name: str) -> Callable[..., None]:
    def called(*args: Any) -> None:
        log.append((name, *args, WHERE.get()))

    return called


def one_listener(emitter: EventEmitter, log: Log) -> None:
    WHERE.set("at registration")
    emitter.on("one", listener(log, "a"))
    emitter.on("three", listener(log, "a"))
    WHERE.set("at emit")


def once_listener(emitter: EventEmitter, log: Log) -> None:
    emitter.once("one", listener(log, "once"))
    emitter.once("three", listener(log, "once"))


def two_listeners(emitter: EventEmitter, log: Log) -> None:
    for name in ("first", "second"):
        emitter.on("one", listener(log, name))
        emitter.on("three", listener(log, name))


def removed_listener(emitter: EventEmitter, log: Log) -> None:
    gone = listener(log, "gone")
    emitter.on("one", gone)
    emitter.remove_listener("one", gone)
    emitter.on("three", gone)
    emitter.remove_listener("three", gone)
    emitter.sink(Sink(log))


def sink_only(emitter: EventEmitter, log: Log) -> None:
    emitter.sink(Sink(log))


def sink_without_handler(emitter: EventEmitter, log: Log) -> None:
    emitter.sink(object())


def nothing(emitter: EventEmitter, log: Log) -> None:
    pass


def listener_and_sink(emitter: EventEmitter, log: Log) -> None:
    emitter.sink(Sink(log))
    emitter.on("one", listener(log, "listener"))
    emitter.on("three", listener(log, "listener"))


SCENARIOS = [
    one_listener,
    once_listener,
    two_listeners,
    removed_listener,
    sink_only,
    sink_without_handler,
    nothing,
    listener_and_sink,
]


def run(scenario: Callable[[EventEmitter, Log], None], fixed: bool, nested: bool) -> Log:
    """Build the scenario, emit 'one' and 'three' twice each, and record what happened."""
    log: Log = []
    emitter = EventEmitter()
    scenario(emitter, log)

    def emit_all() -> None:
        for _ in range(2):
            if fixed:
                log.append(("returned", emitter._emit1("one", 1)))
                log.append(("returned", emitter._emit3("three", 1, 2, 3)))
            else:
                log.append(("returned", emitter.emit("one", 1)))
                log.append(("returned", emitter.emit("three", 1, 2, 3)))

    if nested:  # from inside a listener: listeners then run in the current context
        outer = EventEmitter()
        WHERE.set("outer registration")
        outer.on("go", emit_all)
        WHERE.set("at emit")
        outer.emit("go")
    else:
        emit_all()
    return log


@pytest.mark.parametrize("nested", [False, True], ids=["from the loop", "from a listener"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_fixed_arity_emits_do_what_emit_does(
    scenario: Callable[[EventEmitter, Log], None], nested: bool
) -> None:
    expected = run(scenario, fixed=False, nested=nested)
    assert expected  # (every scenario records something: at least the return values)
    assert run(scenario, fixed=True, nested=nested) == expected


def test_a_listener_runs_in_its_registration_context_from_the_loop() -> None:
    # (the comparison above would pass if both were wrong the same way: the rule, spelt out)
    log: Log = []
    emitter = EventEmitter()
    one_listener(emitter, log)
    emitter._emit1("one", "x")
    emitter._emit3("three", "x", "y", "z")
    assert log == [("a", "x", "at registration"), ("a", "x", "y", "z", "at registration")]


def test_unhandled_error_is_reported_as_emit_reports_it() -> None:
    reported: list[tuple[Any, ...]] = []
    previous = set_unhandled_error_handler(lambda emitter, args: reported.append(args))
    try:
        err = ValueError("boom")
        assert EventEmitter()._emit1("error", err) is False
        assert EventEmitter().emit("error", err) is False
    finally:
        set_unhandled_error_handler(previous)
    assert reported == [(err,), (err,)]


def test_raise_unhandled_errors_raises_through_the_fixed_arity_emit() -> None:
    emitter = EventEmitter()
    emitter.raise_unhandled_errors = True
    err = ValueError("boom")
    with pytest.raises(ValueError, match="boom"):
        emitter._emit1("error", err)
    with pytest.raises(UnhandledError):
        emitter._emit3("error", 1, 2, 3)


def test_an_overridden_emit_sees_the_events_of_the_fixed_arity_emits() -> None:
    seen: list[tuple[Any, ...]] = []

    class Spied(EventEmitter):
        def emit(self, event: str, *args: Any) -> bool:
            seen.append((event, *args))
            return super().emit(event, *args)

    class SpiedChild(Spied):
        pass

    for cls in (Spied, SpiedChild):
        seen.clear()
        emitter = cls()
        emitter.on("one", lambda arg: None)
        assert emitter._emit1("one", 1) is True
        assert emitter._emit3("three", 1, 2, 3) is False
        assert seen == [("one", 1), ("three", 1, 2, 3)]


def test_a_plain_subclass_keeps_the_fast_methods() -> None:
    class Plain(EventEmitter):
        pass

    assert Plain._emit1 is EventEmitter._emit1
    assert Plain._emit3 is EventEmitter._emit3


def test_an_error_that_a_sink_cannot_take_is_reported_as_emit_reports_it() -> None:
    """With a sink that has no ``error`` method, an unheard 'error' still reaches the
    unhandled-error handler through the fixed-arity emits (other unheard events return False
    at once)."""
    reported: list[tuple[Any, ...]] = []
    previous = set_unhandled_error_handler(lambda emitter, args: reported.append(args))
    try:
        emitter = EventEmitter()
        emitter.sink(object())
        err = ValueError("boom")
        assert emitter._emit1("error", err) is False
        assert emitter._emit3("error", 1, 2, 3) is False
        assert emitter._emit1("other", err) is False
        assert emitter._emit3("other", 1, 2, 3) is False
    finally:
        set_unhandled_error_handler(previous)
    assert reported == [(err,), (1, 2, 3)]
