"""Pickling EventEmitter subclasses: listeners are dropped, the rest is kept (REDbot saves them)."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from thor.events import EventEmitter


class RecordingSink:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def status(self, *args: Any) -> None:
        self.calls.append(("status", args))


class Resource(EventEmitter):
    """An application object that is an emitter and carries plain data."""

    def __init__(self, uri: str) -> None:
        EventEmitter.__init__(self)
        self.uri = uri
        self.notes: list[str] = ["checked"]


class Fetcher(EventEmitter):
    """Shaped like REDbot's RedFetcher: its own __getstate__ builds on EventEmitter's."""

    def __init__(self, uri: str) -> None:
        EventEmitter.__init__(self)
        self.uri = uri
        self.exchange = lambda: None  # live, unpicklable state
        self.response_done = True

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = EventEmitter.__getstate__(self)
        del state["exchange"]
        return state


def _with_listeners(emitter: EventEmitter) -> EventEmitter:
    # Lambdas and the captured contexts cannot be pickled: the dump fails if they are kept.
    emitter.on("status", lambda *args: None)
    emitter.once("done", lambda: None)
    emitter.prepend_listener("status", lambda *args: None)
    return emitter


PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pickling_drops_the_listeners_and_keeps_the_rest(protocol: int) -> None:
    resource = _with_listeners(Resource("http://example.com/"))
    sink = RecordingSink()
    resource.sink(sink)
    resource.set_max_listeners(3)

    clone = pickle.loads(pickle.dumps(resource, protocol=protocol))

    assert type(clone) is Resource
    assert clone.uri == "http://example.com/"
    assert clone.notes == ["checked"]
    assert clone.events() == []
    assert clone.listeners("status") == []
    assert clone.listener_count("status") == 0
    assert clone.get_max_listeners() == 3
    # The sink was kept (as a copy, like the rest of the state).
    assert clone.emit("status", 200) is True
    cloned_sink = clone._EventEmitter__sink  # type: ignore[attr-defined]
    assert isinstance(cloned_sink, RecordingSink)
    assert cloned_sink.calls == [("status", (200,))]
    # The original is untouched.
    assert len(resource.listeners("status")) == 2
    assert sink.calls == []


def test_the_state_holds_no_listeners() -> None:
    resource = _with_listeners(Resource("u"))
    state = resource.__getstate__()
    assert "_EventEmitter__events" not in state
    assert state["uri"] == "u"
    assert "_EventEmitter__sink" in state
    assert state is not resource.__dict__
    assert len(resource.listeners("status")) == 2  # taking the state does not clear them


def test_an_unpickled_emitter_works() -> None:
    clone = pickle.loads(pickle.dumps(_with_listeners(Resource("u"))))
    calls: list[tuple[Any, ...]] = []
    assert clone.emit("status", 1) is False
    clone.on("status", lambda *args: calls.append(args))
    clone.once("status", lambda *args: calls.append(("once", *args)))
    assert clone.emit("status", 2) is True
    clone.emit("status", 3)
    assert calls == [(2,), ("once", 2), (3,)]
    clone.remove_listeners()
    assert clone.events() == []


def test_an_unpickled_plain_emitter_works() -> None:
    clone = pickle.loads(pickle.dumps(_with_listeners(EventEmitter())))
    assert clone.events() == []
    calls: list[int] = []
    clone.on("go", calls.append)
    clone.emit("go", 1)
    assert calls == [1]


def test_a_subclass_with_its_own_getstate_pickles_and_unpickles() -> None:
    fetcher = _with_listeners(Fetcher("http://example.com/"))
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(EventEmitter.__getstate__(fetcher))  # the exchange alone is unpicklable
    clone = pickle.loads(pickle.dumps(fetcher))
    assert type(clone) is Fetcher
    assert clone.uri == "http://example.com/"
    assert clone.response_done is True
    assert not hasattr(clone, "exchange")
    assert clone.events() == []
    seen: list[str] = []
    clone.on("done", lambda: seen.append("done"))
    clone.emit("done")
    assert seen == ["done"]


def test_an_emitter_pickled_without_a_sink_has_none() -> None:
    clone = pickle.loads(pickle.dumps(Resource("u")))
    assert clone.emit("status") is False


def test_setstate_tolerates_a_state_from_an_older_pickle() -> None:
    """A state with neither registry nor sink (say, saved by an application's own __getstate__
    that dropped both) still gives a working emitter."""
    emitter = Resource.__new__(Resource)
    emitter.__setstate__({"uri": "old"})
    assert emitter.uri == "old"
    assert emitter.events() == []
    assert emitter.emit("status") is False
    emitter.on("status", lambda: None)
    assert emitter.emit("status") is True


def test_leak_warning_state_is_not_pickled() -> None:
    emitter = Resource("u")
    emitter.set_max_listeners(0)
    emitter.__dict__["_EventEmitter__warned"] = {"status"}
    assert "_EventEmitter__warned" not in emitter.__getstate__()


def test_copy_gives_an_emitter_without_listeners() -> None:
    resource = _with_listeners(Resource("u"))
    duplicate = copy.copy(resource)
    assert duplicate.uri == "u"
    assert duplicate.events() == []
    assert len(resource.listeners("status")) == 2
