"""The 'error' convention and thor.events' own errors (thor.events._emitter, _errors)."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import thor.events
from thor.events import (
    EventEmitter,
    EventEmitterError,
    MaxListenersExceededWarning,
    UnhandledError,
    set_unhandled_error_handler,
)

Handler = Callable[[EventEmitter, tuple[Any, ...]], object]


@pytest.fixture(autouse=True)
def default_handler() -> Iterator[Handler]:
    """Start from the default handler and yield it; restore the previous one after the test."""
    previous = set_unhandled_error_handler(None)
    default = set_unhandled_error_handler(None)  # what None installed: the default itself
    yield default
    set_unhandled_error_handler(previous)


def _raised(exc: BaseException) -> BaseException:
    """The exception, with a traceback (as an 'error' payload usually has)."""
    try:
        raise exc
    except BaseException as caught:
        return caught


# -- default: logged ------------------------------------------------------------------------------


def test_unhandled_error_is_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    emitter = EventEmitter()
    exc = _raised(ConnectionResetError("peer went away"))
    with caplog.at_level(logging.ERROR, logger="thor.events"):
        assert emitter.emit("error", exc) is False
    assert len(caplog.records) == 1
    record = caplog.records[0]
    assert record.name == "thor.events"
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.exc_info[0] is ConnectionResetError
    assert record.exc_info[1] is exc
    assert record.exc_info[2] is exc.__traceback__
    assert "peer went away" in record.getMessage()
    assert "Traceback" in caplog.text
    assert "_raised" in caplog.text  # the frame that raised it


def test_unhandled_error_that_was_never_raised_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="thor.events"):
        EventEmitter().emit("error", ValueError("fresh"))
    [record] = caplog.records
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)
    assert "fresh" in caplog.text


@pytest.mark.parametrize("payload", [("timeout", 30), ("just a string",), ()])
def test_unhandled_error_with_a_non_exception_payload_is_logged(
    caplog: pytest.LogCaptureFixture, payload: tuple[Any, ...]
) -> None:
    with caplog.at_level(logging.ERROR, logger="thor.events"):
        EventEmitter().emit("error", *payload)
    [record] = caplog.records
    assert record.name == "thor.events"
    assert record.levelno == logging.ERROR
    assert not record.exc_info
    assert repr(payload) in record.getMessage()


def test_only_the_error_event_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="thor.events"):
        EventEmitter().emit("errors", ValueError("x"))
        EventEmitter().emit("close", ValueError("x"))
    assert caplog.records == []


# -- handled 'error' events are not reported ------------------------------------------------------


def test_error_with_a_listener_is_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    emitter = EventEmitter()
    got: list[BaseException] = []
    emitter.on("error", got.append)
    exc = ValueError("handled")
    with caplog.at_level(logging.DEBUG, logger="thor.events"):
        assert emitter.emit("error", exc) is True
    assert got == [exc]
    assert caplog.records == []


def test_error_handled_by_the_sink_is_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    class Sink:
        def __init__(self) -> None:
            self.errors: list[BaseException] = []

        def error(self, exc: BaseException) -> None:
            self.errors.append(exc)

    sink = Sink()
    emitter = EventEmitter()
    emitter.sink(sink)
    exc = ValueError("sunk")
    with caplog.at_level(logging.DEBUG, logger="thor.events"):
        assert emitter.emit("error", exc) is True
    assert sink.errors == [exc]
    assert caplog.records == []


def test_error_is_reported_when_the_sink_lacks_an_error_method(
    caplog: pytest.LogCaptureFixture,
) -> None:
    emitter = EventEmitter()
    emitter.sink(object())
    with caplog.at_level(logging.ERROR, logger="thor.events"):
        emitter.emit("error", ValueError("x"))
    assert len(caplog.records) == 1


def test_error_is_reported_again_once_its_listeners_are_gone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    emitter = EventEmitter()
    emitter.once("error", lambda exc: None)
    with caplog.at_level(logging.ERROR, logger="thor.events"):
        emitter.emit("error", ValueError("first"))
        assert caplog.records == []
        emitter.emit("error", ValueError("second"))
    [record] = caplog.records
    assert "second" in record.getMessage()


# -- replacing the handler ------------------------------------------------------------------------


def test_set_unhandled_error_handler_replaces_and_restores(
    caplog: pytest.LogCaptureFixture, default_handler: Handler
) -> None:
    calls: list[tuple[EventEmitter, tuple[Any, ...]]] = []

    def handler(emitter: EventEmitter, args: tuple[Any, ...]) -> None:
        calls.append((emitter, args))

    emitter = EventEmitter()
    exc = ValueError("x")
    with caplog.at_level(logging.ERROR, logger="thor.events"):
        assert set_unhandled_error_handler(handler) is default_handler
        assert emitter.emit("error", exc, "extra") is False
        assert caplog.records == []
        assert calls == [(emitter, (exc, "extra"))]

        assert set_unhandled_error_handler(None) is handler
        emitter.emit("error", exc)
    assert len(calls) == 1
    assert len(caplog.records) == 1


def test_a_replaced_handler_is_returned_when_replaced_again(default_handler: Handler) -> None:
    def first(emitter: EventEmitter, args: tuple[Any, ...]) -> None:
        pass

    def second(emitter: EventEmitter, args: tuple[Any, ...]) -> None:
        pass

    assert set_unhandled_error_handler(first) is default_handler
    assert set_unhandled_error_handler(second) is first
    assert set_unhandled_error_handler(default_handler) is second
    assert set_unhandled_error_handler(None) is default_handler


def test_handler_exceptions_propagate_to_the_emitter() -> None:
    def strict(emitter: EventEmitter, args: tuple[Any, ...]) -> None:
        raise SystemExit(3)

    set_unhandled_error_handler(strict)
    with pytest.raises(SystemExit):
        EventEmitter().emit("error", "x")


# -- Node's behaviour: raise ----------------------------------------------------------------------


class Strict(EventEmitter):
    raise_unhandled_errors = True


def _strict_instance() -> EventEmitter:
    emitter = EventEmitter()
    emitter.raise_unhandled_errors = True
    return emitter


strict_emitters = pytest.mark.parametrize(
    "make", [Strict, _strict_instance], ids=["class-attribute", "instance-attribute"]
)


@strict_emitters
def test_raise_unhandled_errors_raises_the_exception_payload(
    make: Callable[[], EventEmitter], caplog: pytest.LogCaptureFixture
) -> None:
    exc = ConnectionAbortedError("gone")
    with (
        caplog.at_level(logging.DEBUG, logger="thor.events"),
        pytest.raises(ConnectionAbortedError) as info,
    ):
        make().emit("error", exc)
    assert info.value is exc
    assert caplog.records == []


@strict_emitters
@pytest.mark.parametrize("payload", [("timeout", 30), ("text",), ()])
def test_raise_unhandled_errors_wraps_other_payloads_in_unhandled_error(
    make: Callable[[], EventEmitter], payload: tuple[Any, ...]
) -> None:
    with pytest.raises(UnhandledError) as info:
        make().emit("error", *payload)
    assert info.value.payload == payload
    assert isinstance(info.value, EventEmitterError)
    assert info.value.code == "ERR_UNHANDLED_ERROR"
    assert repr(payload) in str(info.value)


@strict_emitters
def test_raise_unhandled_errors_does_not_affect_handled_errors(
    make: Callable[[], EventEmitter],
) -> None:
    emitter = make()
    got: list[object] = []
    emitter.on("error", got.append)
    assert emitter.emit("error", ValueError("x")) is True
    assert len(got) == 1


@strict_emitters
def test_raise_unhandled_errors_does_not_bypass_the_sink(make: Callable[[], EventEmitter]) -> None:
    class Sink:
        def error(self, payload: object) -> None:
            pass

    emitter = make()
    emitter.sink(Sink())
    assert emitter.emit("error", "x") is True


def test_raise_unhandled_errors_is_off_by_default() -> None:
    assert EventEmitter.raise_unhandled_errors is False
    handled: list[tuple[Any, ...]] = []
    set_unhandled_error_handler(lambda emitter, args: handled.append(args))
    EventEmitter().emit("error", ValueError("x"))
    assert len(handled) == 1


def test_an_instance_can_opt_out_of_a_strict_class() -> None:
    handled: list[tuple[Any, ...]] = []
    set_unhandled_error_handler(lambda emitter, args: handled.append(args))
    emitter = Strict()
    emitter.raise_unhandled_errors = False
    emitter.emit("error", ValueError("x"))
    assert len(handled) == 1


# -- the error classes ----------------------------------------------------------------------------


def test_error_classes() -> None:
    assert issubclass(EventEmitterError, Exception)
    assert EventEmitterError.code == "ERR_EVENT_EMITTER"
    assert issubclass(UnhandledError, EventEmitterError)
    assert issubclass(MaxListenersExceededWarning, RuntimeWarning)
    error = UnhandledError("a", 1)
    assert error.payload == ("a", 1)
    assert error.args == ("a", 1)
    assert str(error) == "unhandled 'error' event: ('a', 1)"


def test_unhandled_error_pickles() -> None:
    error = pickle.loads(pickle.dumps(UnhandledError("a", 1)))
    assert type(error) is UnhandledError
    assert error.payload == ("a", 1)


def test_public_names() -> None:
    assert set(thor.events.__all__) == {
        "ContextWrapper",
        "EventEmitter",
        "EventEmitterError",
        "EventListener",
        "MaxListenersExceededWarning",
        "UnhandledError",
        "__version__",
        "on",
        "set_unhandled_error_handler",
    }
    for name in thor.events.__all__:
        assert hasattr(thor.events, name)
    assert thor.events.__version__ == "0.1.0"
