"""EventEmitter._listener_added: the protected hook of subclasses that call their sink's handlers
directly (TcpConnection's 'data'), called by the general registration path, before 'newListener'
is emitted, while a sink is set or someone listens to 'newListener', and for the events a
class names in ``_hooked_events`` (TcpConnection's 'sent'); never otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from thor.events import ContextWrapper, EventEmitter


class Hooked(EventEmitter):
    """Records ``_listener_added`` calls, with the listener count seen then, into ``log``."""

    def __init__(self, log: list[tuple[Any, ...]]) -> None:
        EventEmitter.__init__(self)
        self.log = log

    def _listener_added(self, event: str) -> None:
        self.log.append(("hook", event, self.listener_count(event)))


class NewListenerSink:
    """A sink that records the 'newListener' events it gets into a shared log."""

    def __init__(self, log: list[tuple[Any, ...]]) -> None:
        self.log = log

    def newListener(self, event: str, wrapper: object) -> None:
        self.log.append(("newListener", event, wrapper))


def nothing(*args: Any) -> None:
    pass


#: the registration methods, and whether each makes a ``once`` listener
METHODS = [
    pytest.param("on", False, id="on"),
    pytest.param("once", True, id="once"),
    pytest.param("add_listener", False, id="add_listener"),
    pytest.param("prepend_listener", False, id="prepend_listener"),
    pytest.param("prepend_once_listener", True, id="prepend_once_listener"),
]


def register(emitter: EventEmitter, method: str, event: str, listener: Any) -> None:
    getattr(emitter, method)(event, listener)


def check_new_listener_entry(entry: object, listener: Any, once: bool) -> None:
    """'newListener' gets the ContextWrapper of the listener, as before the hook existed."""
    assert isinstance(entry, ContextWrapper)
    assert entry == listener
    assert entry.listener is listener
    assert entry.once is once


# -- called while a sink is set ---------------------------------------------------------------


@pytest.mark.parametrize(("method", "once"), METHODS)
def test_hook_is_called_with_the_event_before_new_listener_while_a_sink_is_set(
    method: str, once: bool
) -> None:
    log: list[tuple[Any, ...]] = []
    emitter = Hooked(log)
    emitter.sink(NewListenerSink(log))
    register(emitter, method, "data", nothing)
    assert [entry[:2] for entry in log] == [("hook", "data"), ("newListener", "data")]
    assert log[0][2] == 1, "the hook ran before the listener was registered"
    check_new_listener_entry(log[1][2], nothing, once)


@pytest.mark.parametrize(("method", "once"), METHODS)
def test_hook_is_called_for_every_listener_added_while_a_sink_is_set(
    method: str, once: bool
) -> None:
    log: list[tuple[Any, ...]] = []
    emitter = Hooked(log)
    emitter.sink(NewListenerSink(log))
    first, second = (lambda: None), (lambda: None)
    register(emitter, method, "data", first)
    register(emitter, method, "other", nothing)
    register(emitter, method, "data", second)
    hooks = [entry for entry in log if entry[0] == "hook"]
    assert hooks == [("hook", "data", 1), ("hook", "other", 1), ("hook", "data", 2)]
    assert [entry[:2] for entry in log] == [
        ("hook", "data"),
        ("newListener", "data"),
        ("hook", "other"),
        ("newListener", "other"),
        ("hook", "data"),
        ("newListener", "data"),
    ]


def test_hook_is_called_by_on_inside_a_listener_while_a_sink_is_set() -> None:
    """Inside a listener, with a sink set, on() takes the general path (not its fast path)."""
    log: list[tuple[Any, ...]] = []
    emitter = Hooked(log)
    emitter.sink(NewListenerSink(log))
    emitter.on("go", lambda: emitter.on("data", nothing))
    log.clear()
    emitter.emit("go")
    assert [entry[:2] for entry in log] == [("hook", "data"), ("newListener", "data")]
    assert emitter.listeners("data") == [nothing]


def test_hook_is_called_with_a_sink_that_has_no_new_listener_method() -> None:
    log: list[tuple[Any, ...]] = []
    emitter = Hooked(log)
    emitter.sink(object())
    emitter.on("data", nothing)
    assert log == [("hook", "data", 1)]


def test_hook_is_not_called_once_the_sink_is_removed() -> None:
    log: list[tuple[Any, ...]] = []
    emitter = Hooked(log)
    emitter.sink(NewListenerSink(log))
    emitter.sink(None)
    emitter.on("data", nothing)  # (outside a listener: the general path)
    emitter.once("data", nothing)
    emitter.on("go", lambda: emitter.on("fast", nothing))  # (inside one: the fast path)
    emitter.emit("go")
    assert log == []
    assert emitter.listener_count("data") == 2
    assert emitter.listeners("fast") == [nothing]


# -- called while someone listens to 'newListener' ----------------------------------------------


@pytest.mark.parametrize(("method", "once"), METHODS)
def test_hook_is_called_with_the_event_before_new_listener_while_someone_listens_to_it(
    method: str, once: bool
) -> None:
    log: list[tuple[Any, ...]] = []
    emitter = Hooked(log)
    emitter.on("newListener", lambda event, entry: log.append(("newListener", event, entry)))
    log.clear()
    register(emitter, method, "data", nothing)
    assert [entry[:2] for entry in log] == [("hook", "data"), ("newListener", "data")]
    assert log[0][2] == 1
    check_new_listener_entry(log[1][2], nothing, once)


def test_hook_is_called_for_the_first_new_listener_listener_itself() -> None:
    """A 'newListener' listener hears of itself; the hook is called first for it as well."""
    log: list[tuple[Any, ...]] = []
    emitter = Hooked(log)

    def watcher(event: str, entry: object) -> None:
        log.append(("newListener", event, entry))

    emitter.on("newListener", watcher)
    assert [entry[:2] for entry in log] == [("hook", "newListener"), ("newListener", "newListener")]
    check_new_listener_entry(log[1][2], watcher, False)


def test_hook_is_called_by_on_inside_a_listener_while_someone_listens_to_new_listener() -> None:
    log: list[tuple[Any, ...]] = []
    emitter = Hooked(log)
    emitter.on("newListener", lambda event, entry: log.append(("newListener", event, entry)))
    emitter.on("go", lambda: emitter.on("data", nothing))
    log.clear()
    emitter.emit("go")
    assert [entry[:2] for entry in log] == [("hook", "data"), ("newListener", "data")]


def test_the_hook_sees_a_new_listener_listener_that_raises_too() -> None:
    """The hook runs before 'newListener', so a raising 'newListener' listener cannot skip it
    (the listener stays registered, as before)."""
    log: list[tuple[Any, ...]] = []
    emitter = Hooked(log)

    def explode(event: str, entry: object) -> None:
        if event == "data":
            raise RuntimeError("newListener listener bug")

    emitter.on("newListener", explode)
    log.clear()
    with pytest.raises(RuntimeError, match="newListener listener bug"):
        emitter.on("data", nothing)
    assert log == [("hook", "data", 1)]
    assert emitter.listeners("data") == [nothing]


# -- not called when there is neither a sink nor a 'newListener' listener -----------------------


@pytest.mark.parametrize(("method", "once"), METHODS)
def test_hook_is_not_called_without_a_sink_or_a_new_listener_listener(
    method: str, once: bool
) -> None:
    log: list[tuple[Any, ...]] = []
    emitter = Hooked(log)
    register(emitter, method, "data", nothing)
    register(emitter, method, "data", nothing)
    assert log == []
    assert emitter.listener_count("data") == 2


def test_hook_is_not_called_by_the_fast_path_of_on_inside_a_listener() -> None:
    """on() inside a listener, for an event's first listener, with no sink and no 'newListener'
    listener: the inlined fast path, which never calls the hook (the documented exception)."""
    log: list[tuple[Any, ...]] = []
    got: list[bytes] = []
    emitter = Hooked(log)
    emitter.on("go", lambda: emitter.on("data", got.append))
    emitter.emit("go")
    assert log == []
    emitter.emit("data", b"x")
    assert got == [b"x"]


def test_hook_is_not_called_by_removals() -> None:
    log: list[tuple[Any, ...]] = []
    emitter = Hooked(log)
    emitter.sink(object())
    emitter.on("data", nothing)
    log.clear()
    emitter.remove_listener("data", nothing)
    emitter.on("other", nothing)
    log.clear()
    emitter.remove_listeners("other")
    emitter.remove_listeners()
    assert log == []


# -- the base class -------------------------------------------------------------------------------


def test_the_base_hook_is_a_no_op_and_new_listener_is_emitted_as_before() -> None:
    seen: list[tuple[str, object]] = []
    emitter = EventEmitter()
    emitter._listener_added("data")  # (does nothing, raises nothing)
    emitter.on("newListener", lambda event, entry: seen.append((event, entry)))
    seen.clear()
    emitter.on("data", nothing)
    emitter.once("data", nothing)
    assert [event for event, _ in seen] == ["data", "data"]
    check_new_listener_entry(seen[0][1], nothing, False)
    check_new_listener_entry(seen[1][1], nothing, True)

    sink = NewListenerSink([])
    other = EventEmitter()
    other.sink(sink)
    other.prepend_listener("data", nothing)
    assert [entry[:2] for entry in sink.log] == [("newListener", "data")]
    check_new_listener_entry(sink.log[0][2], nothing, False)


def test_a_hook_that_calls_the_sink_directly_learns_to_use_emit_again() -> None:
    """The use the hook is for: a subclass caching its sink's handler, as TcpConnection does."""

    class Direct(EventEmitter):
        handler: Callable[[bytes], object] | None = None

        def sink(self, sink: object) -> None:
            super().sink(sink)
            handler = getattr(sink, "data", None)
            self.handler = (
                handler if handler is not None and not self.listener_count("data") else None
            )

        def _listener_added(self, event: str) -> None:
            if event == "data":
                self.handler = None

        def deliver(self, data: bytes) -> None:
            if self.handler is None:
                self.emit("data", data)
            else:
                self.handler(data)

    class DataSink:
        def __init__(self) -> None:
            self.got: list[bytes] = []

        def data(self, data: bytes) -> None:
            self.got.append(data)

    sink = DataSink()
    listened: list[bytes] = []
    emitter = Direct()
    emitter.sink(sink)
    assert emitter.handler == sink.data
    emitter.deliver(b"one")
    emitter.on("go", lambda: emitter.on("data", listened.append))  # inside a listener
    emitter.emit("go")
    handler: object = emitter.handler
    assert handler is None
    emitter.deliver(b"two")
    assert sink.got == [b"one"]
    assert listened == [b"two"]


# -- a class's _hooked_events: always called --------------------------------------------------


class HookedSent(Hooked):
    """Names 'sent' in ``_hooked_events``: its hook hears of every 'sent' listener."""

    _hooked_events = frozenset({"sent"})


@pytest.mark.parametrize(("method", "once"), METHODS)
def test_hook_is_called_for_a_hooked_event_without_a_sink_or_new_listener_listener(
    method: str, once: bool
) -> None:
    log: list[tuple[Any, ...]] = []
    emitter = HookedSent(log)
    register(emitter, method, "sent", nothing)
    register(emitter, method, "data", nothing)  # (not hooked: no call)
    register(emitter, method, "sent", nothing)
    assert log == [("hook", "sent", 1), ("hook", "sent", 2)]


def test_hook_is_called_for_a_hooked_event_by_on_inside_a_listener() -> None:
    """The fast path of on() (inside a listener, first listener, no sink) steps aside for a
    hooked event, of any class: the listener is registered all the same."""
    log: list[tuple[Any, ...]] = []
    got: list[str] = []
    emitter = HookedSent(log)
    emitter.on("go", lambda: emitter.on("sent", lambda: got.append("sent")))
    emitter.emit("go")
    assert log == [("hook", "sent", 1)]
    emitter.emit("sent")
    assert got == ["sent"]

    plain = Hooked(log)  # (not hooked by this class: the fast path, no hook call)
    log.clear()
    plain.on("go", lambda: plain.on("sent", nothing))
    plain.emit("go")
    assert log == []
    assert plain.listeners("sent") == [nothing]


def test_hook_is_called_once_for_a_hooked_event_while_a_sink_is_set() -> None:
    log: list[tuple[Any, ...]] = []
    emitter = HookedSent(log)
    emitter.sink(NewListenerSink(log))
    emitter.on("sent", nothing)
    assert [entry[:2] for entry in log] == [("hook", "sent"), ("newListener", "sent")]


def test_hooked_events_default_to_none() -> None:
    assert EventEmitter._hooked_events == frozenset()
    assert Hooked._hooked_events == frozenset()
