"""EventEmitter.has_handler: whether an emit would reach a listener or the sink."""

from __future__ import annotations

from thor.events import EventEmitter


class Sink:
    def error(self, err: object) -> None:
        pass


def test_no_listener_no_sink() -> None:
    assert not EventEmitter().has_handler("error")


def test_a_listener_handles_until_removed() -> None:
    emitter = EventEmitter()

    def listener(*args: object) -> None:
        pass

    emitter.on("error", listener)
    assert emitter.has_handler("error")
    assert not emitter.has_handler("other")
    emitter.remove_listener("error", listener)
    assert not emitter.has_handler("error")


def test_a_sink_handles_the_events_it_has_methods_for() -> None:
    emitter = EventEmitter()
    emitter.sink(Sink())
    assert emitter.has_handler("error")
    assert not emitter.has_handler("data")
    emitter.sink(None)
    assert not emitter.has_handler("error")


def test_a_once_listener_stops_handling_after_its_emit() -> None:
    emitter = EventEmitter()
    emitter.once("ping", lambda: None)
    assert emitter.has_handler("ping")
    emitter.emit("ping")
    assert not emitter.has_handler("ping")
