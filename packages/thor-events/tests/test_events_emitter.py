"""EventEmitter registration, removal, introspection, emit and sink (thor.events._emitter)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thor.events import (
    ContextWrapper,
    EventEmitter,
    MaxListenersExceededWarning,
    on,
)


class Recorder:
    """Makes named listeners that append (name, args) to one shared log."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def make(self, name: str) -> Callable[..., None]:
        def listener(*args: Any) -> None:
            self.calls.append((name, args))

        listener.__name__ = name
        return listener

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


# -- on / emit ------------------------------------------------------------------------------------


def test_listeners_are_called_in_registration_order_with_the_emitted_args(rec: Recorder) -> None:
    emitter = EventEmitter()
    for name in "abc":
        emitter.on("go", rec.make(name))
    emitter.emit("go", 1, "two")
    assert rec.calls == [("a", (1, "two")), ("b", (1, "two")), ("c", (1, "two"))]


def test_listeners_of_other_events_are_not_called(rec: Recorder) -> None:
    emitter = EventEmitter()
    emitter.on("a", rec.make("a"))
    emitter.on("b", rec.make("b"))
    emitter.emit("b")
    assert rec.names() == ["b"]


def test_the_same_function_registered_twice_is_called_twice(rec: Recorder) -> None:
    emitter = EventEmitter()
    fn = rec.make("f")
    emitter.on("go", fn)
    emitter.on("go", fn)
    emitter.emit("go")
    assert rec.names() == ["f", "f"]


@pytest.mark.parametrize("count", [1, 3])
def test_emit_returns_true_when_a_listener_handled_the_event(rec: Recorder, count: int) -> None:
    emitter = EventEmitter()
    for i in range(count):
        emitter.on("go", rec.make(str(i)))
    assert emitter.emit("go") is True


def test_emit_returns_false_when_nothing_handled_the_event() -> None:
    emitter = EventEmitter()
    assert emitter.emit("nobody") is False
    emitter.on("go", lambda: None)
    emitter.remove_listeners("go")
    assert emitter.emit("go") is False


@pytest.mark.parametrize("count", [1, 3])
def test_listener_added_during_an_emit_is_not_called_by_that_emit(
    rec: Recorder, count: int
) -> None:
    emitter = EventEmitter()
    late = rec.make("late")

    def adder() -> None:
        rec.calls.append(("adder", ()))
        emitter.on("go", late)

    emitter.on("go", adder)
    for i in range(count - 1):
        emitter.on("go", rec.make(str(i)))
    emitter.emit("go")
    assert "late" not in rec.names()
    rec.calls.clear()
    emitter.emit("go")
    assert rec.names().count("late") == 1


def test_listener_removed_during_an_emit_is_skipped(rec: Recorder) -> None:
    emitter = EventEmitter()
    victim = rec.make("victim")

    def remover() -> None:
        rec.calls.append(("remover", ()))
        emitter.remove_listener("go", victim)

    emitter.on("go", remover)
    emitter.on("go", rec.make("middle"))
    emitter.on("go", victim)
    emitter.on("go", rec.make("last"))
    emitter.emit("go")
    assert rec.names() == ["remover", "middle", "last"]
    assert victim not in emitter.listeners("go")


def test_only_the_removed_registration_is_skipped_during_an_emit(rec: Recorder) -> None:
    emitter = EventEmitter()
    twice = rec.make("twice")

    def remover() -> None:
        emitter.remove_listener("go", twice)

    emitter.on("go", remover)
    emitter.on("go", twice)
    emitter.on("go", twice)
    emitter.emit("go")
    # The first registration is removed (and skipped); the second one still runs.
    assert rec.names() == ["twice"]


def test_listener_removing_itself_runs_to_the_end_and_is_gone_afterwards(rec: Recorder) -> None:
    emitter = EventEmitter()

    def selfish() -> None:
        emitter.remove_listener("go", selfish)
        rec.calls.append(("selfish", ()))

    emitter.on("go", selfish)
    emitter.on("go", rec.make("other"))
    emitter.emit("go")
    emitter.emit("go")
    assert rec.names() == ["selfish", "other", "other"]


@pytest.mark.parametrize("all_events", [False, True])
def test_after_remove_listeners_during_an_emit_the_rest_of_the_emit_still_runs(
    rec: Recorder, all_events: bool
) -> None:
    emitter = EventEmitter()

    def clearer() -> None:
        rec.calls.append(("clearer", ()))
        if all_events:
            emitter.remove_listeners()
        else:
            emitter.remove_listeners("go")

    emitter.on("go", clearer)
    emitter.on("go", rec.make("b"))
    emitter.once("go", rec.make("c"))
    emitter.emit("go")
    assert rec.names() == ["clearer", "b", "c"]
    rec.calls.clear()
    assert emitter.emit("go") is False
    assert rec.calls == []
    assert emitter.listeners("go") == []


def test_nested_emit_of_the_same_event_calls_every_listener_again(rec: Recorder) -> None:
    emitter = EventEmitter()
    depth = []

    def recurse() -> None:
        depth.append(1)
        if len(depth) < 3:
            emitter.emit("go")

    emitter.on("go", recurse)
    emitter.on("go", rec.make("b"))
    emitter.emit("go")
    assert len(depth) == 3
    assert rec.names() == ["b", "b", "b"]


# -- once -----------------------------------------------------------------------------------------


def test_once_listener_fires_once(rec: Recorder) -> None:
    emitter = EventEmitter()
    emitter.once("go", rec.make("once"))
    assert emitter.emit("go", 1) is True
    assert emitter.emit("go", 2) is False
    assert rec.calls == [("once", (1,))]


def test_several_once_listeners_for_one_event_each_fire_once(rec: Recorder) -> None:
    emitter = EventEmitter()
    emitter.once("go", rec.make("a"))
    emitter.on("go", rec.make("always"))
    emitter.once("go", rec.make("b"))
    emitter.once("go", rec.make("c"))
    emitter.emit("go")
    emitter.emit("go")
    assert rec.names() == ["a", "always", "b", "c", "always"]
    assert emitter.listener_count("go") == 1


def test_the_same_function_registered_once_twice_fires_twice_then_never(rec: Recorder) -> None:
    emitter = EventEmitter()
    fn = rec.make("f")
    emitter.once("go", fn)
    emitter.once("go", fn)
    emitter.emit("go")
    emitter.emit("go")
    assert rec.names() == ["f", "f"]


@pytest.mark.parametrize("extra", [0, 2])
def test_once_listener_can_be_removed_by_the_original_function(rec: Recorder, extra: int) -> None:
    emitter = EventEmitter()
    fn = rec.make("once")
    emitter.once("go", fn)
    for i in range(extra):
        emitter.on("go", rec.make(str(i)))
    assert fn in emitter.listeners("go")
    emitter.remove_listener("go", fn)
    assert fn not in emitter.listeners("go")
    emitter.emit("go")
    assert "once" not in rec.names()


def test_once_listener_removed_by_an_earlier_listener_during_an_emit_is_skipped(
    rec: Recorder,
) -> None:
    emitter = EventEmitter()
    target = rec.make("target")
    emitter.once("go", lambda: emitter.remove_listener("go", target))
    emitter.once("go", target)
    emitter.emit("go")
    emitter.emit("go")
    assert rec.calls == []


@pytest.mark.parametrize("others", [0, 1, 3])
def test_once_listener_emitting_its_own_event_is_not_called_again(
    rec: Recorder, others: int
) -> None:
    emitter = EventEmitter()
    calls = []

    def reentrant(n: int) -> None:
        calls.append(n)
        emitter.emit("go", n + 1)

    emitter.once("go", reentrant)
    for i in range(others):
        emitter.on("go", rec.make(str(i)))
    emitter.emit("go", 0)
    assert calls == [0]
    # The inner emit (n=1) reached the other listeners before the outer one (n=0) did.
    expected = [(str(i), (1,)) for i in range(others)] + [(str(i), (0,)) for i in range(others)]
    assert rec.calls == expected


def test_nested_emits_call_each_of_several_once_listeners_exactly_once() -> None:
    emitter = EventEmitter()
    calls: list[str] = []

    def make(name: str) -> Callable[[], None]:
        def listener() -> None:
            calls.append(name)
            emitter.emit("go")

        return listener

    for name in "abc":
        emitter.once("go", make(name))
    emitter.emit("go")
    assert calls == ["a", "b", "c"]
    assert emitter.listener_count("go") == 0


def test_once_listener_can_register_itself_again(rec: Recorder) -> None:
    emitter = EventEmitter()
    calls: list[int] = []

    def again(n: int) -> None:
        calls.append(n)
        emitter.once("go", again)

    emitter.once("go", again)
    for n in range(3):
        emitter.emit("go", n)
    assert calls == [0, 1, 2]
    assert emitter.listener_count("go") == 1


def test_once_listener_that_raises_is_still_consumed() -> None:
    emitter = EventEmitter()

    def boom() -> None:
        raise RuntimeError("boom")

    emitter.once("go", boom)
    with pytest.raises(RuntimeError, match="boom"):
        emitter.emit("go")
    assert emitter.emit("go") is False


def test_once_and_on_keep_one_registration_order(rec: Recorder) -> None:
    emitter = EventEmitter()
    emitter.on("go", rec.make("a"))
    emitter.once("go", rec.make("b"))
    emitter.on("go", rec.make("c"))
    assert [fn.__name__ for fn in emitter.listeners("go")] == ["a", "b", "c"]
    emitter.emit("go")
    assert [fn.__name__ for fn in emitter.listeners("go")] == ["a", "c"]


# -- remove_listener / remove_listeners -----------------------------------------------------------


def test_remove_listener_removes_only_the_first_registration(rec: Recorder) -> None:
    emitter = EventEmitter()
    fn = rec.make("f")
    emitter.on("go", fn)
    emitter.on("go", rec.make("g"))
    emitter.on("go", fn)
    emitter.remove_listener("go", fn)
    emitter.emit("go")
    assert rec.names() == ["g", "f"]


def test_remove_listener_raises_valueerror_for_a_known_event_without_that_listener() -> None:
    emitter = EventEmitter()
    emitter.on("go", lambda: None)

    def stranger() -> None:
        pass

    with pytest.raises(ValueError, match="stranger"):
        emitter.remove_listener("go", stranger)


def test_remove_listener_raises_valueerror_for_an_event_whose_listeners_were_removed() -> None:
    emitter = EventEmitter()

    def fn() -> None:
        pass

    emitter.on("go", fn)
    emitter.remove_listener("go", fn)
    with pytest.raises(ValueError):
        emitter.remove_listener("go", fn)


def test_remove_listener_is_silent_for_an_unknown_event() -> None:
    emitter = EventEmitter()
    emitter.remove_listener("never", lambda: None)
    assert emitter.events() == []


def test_remove_listener_accepts_the_wrapper_given_to_new_listener(rec: Recorder) -> None:
    emitter = EventEmitter()
    wrappers: list[ContextWrapper] = []
    emitter.on("newListener", lambda event, wrapper: wrappers.append(wrapper))
    emitter.on("go", rec.make("f"))
    emitter.remove_listener("go", wrappers[-1])
    assert emitter.listeners("go") == []


def test_remove_listeners_removes_the_named_events_only(rec: Recorder) -> None:
    emitter = EventEmitter()
    for event in "abc":
        emitter.on(event, rec.make(event))
    emitter.remove_listeners("a", "b", "unknown")
    for event in "abc":
        emitter.emit(event)
    assert rec.names() == ["c"]
    assert emitter.events() == ["a", "b", "c"]


def test_remove_listeners_with_no_argument_clears_everything(rec: Recorder) -> None:
    emitter = EventEmitter()
    for event in "abc":
        emitter.on(event, rec.make(event))
        emitter.once(event, rec.make(event))
    emitter.remove_listeners()
    assert emitter.events() == []
    for event in "abc":
        assert emitter.emit(event) is False
    assert rec.calls == []
    # Every event is unknown again, so removing is silent.
    emitter.remove_listener("a", rec.make("a"))


# -- introspection --------------------------------------------------------------------------------


def test_listeners_returns_the_original_functions_in_calling_order(rec: Recorder) -> None:
    emitter = EventEmitter()
    a, b, c = rec.make("a"), rec.make("b"), rec.make("c")
    emitter.on("go", b)
    emitter.once("go", c)
    emitter.prepend_listener("go", a)
    listeners = emitter.listeners("go")
    assert len(listeners) == 3
    assert all(got is want for got, want in zip(listeners, [a, b, c], strict=True))


def test_listeners_returns_a_new_list_each_time(rec: Recorder) -> None:
    emitter = EventEmitter()
    emitter.on("go", rec.make("a"))
    first = emitter.listeners("go")
    first.clear()
    assert first is not emitter.listeners("go")
    assert len(emitter.listeners("go")) == 1
    emitter.emit("go")
    assert rec.names() == ["a"]


def test_listeners_of_an_unknown_event_is_empty() -> None:
    assert EventEmitter().listeners("nothing") == []


def test_events_lists_every_name_that_ever_had_a_listener_in_first_registration_order() -> None:
    emitter = EventEmitter()

    def fn() -> None:
        pass

    emitter.on("b", fn)
    emitter.once("a", fn)
    emitter.on("c", fn)
    emitter.on("b", fn)
    assert emitter.events() == ["b", "a", "c"]
    emitter.remove_listener("c", fn)
    emitter.emit("a")  # consumes the once listener
    emitter.remove_listeners("b")
    assert emitter.events() == ["b", "a", "c"]
    assert emitter.event_names() == ["b", "a", "c"]


def test_events_does_not_list_emitted_or_removed_names_that_never_had_a_listener() -> None:
    emitter = EventEmitter()
    emitter.emit("emitted")
    emitter.remove_listeners("cleared")
    emitter.remove_listener("removed", lambda: None)
    emitter.listeners("asked")
    assert emitter.events() == []


def test_listener_count(rec: Recorder) -> None:
    emitter = EventEmitter()
    assert emitter.listener_count("go") == 0
    fn = rec.make("f")
    emitter.on("go", fn)
    emitter.once("go", fn)
    emitter.prepend_listener("go", fn)
    assert emitter.listener_count("go") == 3
    emitter.emit("go")
    assert emitter.listener_count("go") == 2
    emitter.off("go", fn)
    assert emitter.listener_count("go") == 1


# -- Node extras ----------------------------------------------------------------------------------


def test_prepend_listener_is_called_before_earlier_listeners(rec: Recorder) -> None:
    emitter = EventEmitter()
    emitter.on("go", rec.make("b"))
    emitter.prepend_listener("go", rec.make("a"))
    emitter.prepend_listener("go", rec.make("first"))
    emitter.emit("go")
    emitter.emit("go")
    assert rec.names() == ["first", "a", "b"] * 2


def test_prepend_once_listener_is_called_first_and_once(rec: Recorder) -> None:
    emitter = EventEmitter()
    emitter.on("go", rec.make("b"))
    emitter.prepend_once_listener("go", rec.make("a"))
    emitter.emit("go")
    emitter.emit("go")
    assert rec.names() == ["a", "b", "b"]


@pytest.mark.parametrize("method", ["add_listener", "prepend_listener", "prepend_once_listener"])
def test_typed_registration_methods_return_the_listener(rec: Recorder, method: str) -> None:
    emitter = EventEmitter()
    fn = rec.make("f")
    assert getattr(emitter, method)("go", fn) is fn
    emitter.emit("go")
    assert rec.names() == ["f"]


def test_add_listener_is_a_persistent_listener(rec: Recorder) -> None:
    emitter = EventEmitter()
    emitter.add_listener("go", rec.make("f"))
    emitter.emit("go")
    emitter.emit("go")
    assert rec.names() == ["f", "f"]


def test_off_and_remove_all_listeners_are_aliases(rec: Recorder) -> None:
    emitter = EventEmitter()
    fn = rec.make("f")
    emitter.on("go", fn)
    emitter.on("go", rec.make("g"))
    emitter.off("go", fn)
    emitter.emit("go")
    assert rec.names() == ["g"]
    with pytest.raises(ValueError):
        emitter.off("go", fn)
    emitter.remove_all_listeners()
    assert emitter.event_names() == []


# -- TypeError for non-callable listeners ---------------------------------------------------------


@pytest.mark.parametrize(
    "method", ["on", "once", "add_listener", "prepend_listener", "prepend_once_listener"]
)
@pytest.mark.parametrize("value", [None, 42, "not a function", ["list"]])
def test_non_callable_listener_raises_typeerror_naming_it(method: str, value: object) -> None:
    emitter = EventEmitter()
    with pytest.raises(TypeError, match=re.escape(repr(value))):
        getattr(emitter, method)("go", value)
    assert emitter.events() == []
    assert emitter.emit("go") is False


def test_callable_objects_are_accepted(rec: Recorder) -> None:
    class Handler:
        def __call__(self, *args: Any) -> None:
            rec.calls.append(("obj", args))

    emitter = EventEmitter()
    emitter.on("go", Handler())
    emitter.emit("go", 1)
    assert rec.calls == [("obj", (1,))]


# -- newListener ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "once"),
    [
        ("on", False),
        ("add_listener", False),
        ("prepend_listener", False),
        ("once", True),
        ("prepend_once_listener", True),
    ],
)
def test_new_listener_is_emitted_after_registration_with_a_wrapper(
    rec: Recorder, method: str, once: bool
) -> None:
    emitter = EventEmitter()
    seen: list[tuple[str, ContextWrapper, bool]] = []
    fn = rec.make("f")

    def watcher(event: str, wrapper: ContextWrapper) -> None:
        seen.append((event, wrapper, fn in emitter.listeners(event)))

    emitter.on("newListener", watcher)
    seen.clear()
    getattr(emitter, method)("go", fn)
    assert len(seen) == 1
    event, wrapper, registered_already = seen[0]
    assert event == "go"
    assert registered_already
    assert isinstance(wrapper, ContextWrapper)
    assert wrapper.listener is fn  # for once too: the original function, not an internal one
    assert wrapper == fn
    assert wrapper.once is once


def test_a_new_listener_listener_sees_its_own_registration() -> None:
    emitter = EventEmitter()
    seen: list[tuple[str, object]] = []

    def watcher(event: str, wrapper: object) -> None:
        seen.append((event, wrapper))

    emitter.on("newListener", watcher)
    assert seen == [("newListener", watcher)]
    assert isinstance(seen[0][1], ContextWrapper)


def test_new_listener_goes_to_the_sink_when_nobody_listens_to_it() -> None:
    class Sink:
        def __init__(self) -> None:
            self.seen: list[tuple[str, object]] = []

        def newListener(self, event: str, wrapper: object) -> None:
            self.seen.append((event, wrapper))

    def fn() -> None:
        pass

    sink = Sink()
    emitter = EventEmitter()
    emitter.sink(sink)
    emitter.on("go", fn)
    assert sink.seen == [("go", fn)]


def test_new_listener_goes_through_an_overridden_emit_when_someone_listens() -> None:
    emitted: list[str] = []

    class Logged(EventEmitter):
        def emit(self, event: str, *args: Any) -> bool:
            emitted.append(event)
            return super().emit(event, *args)

    emitter = Logged()
    emitter.on("newListener", lambda event, wrapper: None)
    emitter.on("go", lambda: None)
    assert emitted == ["newListener", "newListener"]


# -- sink -----------------------------------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def go(self, *args: Any) -> None:
        self.calls.append(("go", args))


def test_sink_gets_events_that_have_no_listener() -> None:
    sink = Sink()
    emitter = EventEmitter()
    emitter.sink(sink)
    assert emitter.emit("go", 1, 2) is True
    assert sink.calls == [("go", (1, 2))]


def test_sink_is_not_called_when_the_event_has_listeners(rec: Recorder) -> None:
    sink = Sink()
    emitter = EventEmitter()
    emitter.sink(sink)
    emitter.on("go", rec.make("l"))
    emitter.emit("go")
    assert sink.calls == []
    assert rec.names() == ["l"]


def test_sink_is_called_again_once_the_listeners_are_gone(rec: Recorder) -> None:
    sink = Sink()
    emitter = EventEmitter()
    emitter.sink(sink)
    emitter.once("go", rec.make("l"))
    emitter.emit("go", 1)
    emitter.emit("go", 2)
    assert rec.calls == [("l", (1,))]
    assert sink.calls == [("go", (2,))]


def test_sink_without_that_attribute_is_ignored() -> None:
    sink = Sink()
    emitter = EventEmitter()
    emitter.sink(sink)
    assert emitter.emit("other", 1) is False
    assert sink.calls == []


def test_sink_can_be_replaced_and_unset() -> None:
    first, second = Sink(), Sink()
    emitter = EventEmitter()
    emitter.sink(first)
    emitter.sink(second)
    emitter.emit("go")
    emitter.sink(None)
    assert emitter.emit("go") is False
    assert first.calls == []
    assert second.calls == [("go", ())]


def test_sink_exceptions_propagate() -> None:
    class Angry:
        def go(self) -> None:
            raise KeyError("sink")

    emitter = EventEmitter()
    emitter.sink(Angry())
    with pytest.raises(KeyError):
        emitter.emit("go")


# -- exceptions from listeners --------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 3])
def test_listener_exceptions_propagate_to_the_caller_of_emit(rec: Recorder, count: int) -> None:
    emitter = EventEmitter()

    def boom(*args: Any) -> None:
        raise LookupError(args)

    emitter.on("go", boom)
    for i in range(count - 1):
        emitter.on("go", rec.make(str(i)))
    with pytest.raises(LookupError) as info:
        emitter.emit("go", 7)
    assert info.value.args == ((7,),)
    assert rec.calls == []  # no isolation: the later listeners are not called
    # The emitter still works afterwards.
    with pytest.raises(LookupError):
        emitter.emit("go", 8)


# -- the on() decorator ---------------------------------------------------------------------------


def test_on_decorator_uses_the_function_name_by_default() -> None:
    emitter = EventEmitter()
    calls = []

    def data(chunk: bytes) -> None:
        calls.append(chunk)

    decorated = on(emitter)(data)
    assert decorated is data
    emitter.emit("data", b"x")
    assert calls == [b"x"]
    assert emitter.events() == ["data"]


def test_on_decorator_with_an_explicit_event_name() -> None:
    emitter = EventEmitter()
    calls = []

    @on(emitter, "close")
    def whatever(*args: Any) -> None:
        calls.append(args)

    assert whatever.__name__ == "whatever"
    emitter.emit("whatever")
    emitter.emit("close", 1)
    assert calls == [(1,)]
    assert emitter.listeners("close") == [whatever]


def test_on_decorator_can_stack() -> None:
    emitter = EventEmitter()
    calls = []

    @on(emitter, "a")
    @on(emitter, "b")
    def handler(name: str) -> None:
        calls.append(name)

    emitter.emit("a", "a")
    emitter.emit("b", "b")
    assert calls == ["a", "b"]


# -- leak warning ---------------------------------------------------------------------------------


def _noop() -> None:
    pass


def _leak_warnings(record: pytest.WarningsRecorder) -> list[warnings.WarningMessage]:
    return [w for w in record if issubclass(w.category, MaxListenersExceededWarning)]


def _add(emitter: EventEmitter, event: str, count: int) -> None:
    for _ in range(count):
        emitter.on(event, _noop)


def test_default_max_listeners_is_ten() -> None:
    emitter = EventEmitter()
    assert EventEmitter.default_max_listeners == 10
    assert emitter.get_max_listeners() == 10
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _add(emitter, "go", 10)


@pytest.mark.parametrize(
    "method", ["on", "once", "add_listener", "prepend_listener", "prepend_once_listener"]
)
def test_exceeding_max_listeners_warns_exactly_once_per_emitter_and_event(method: str) -> None:
    emitter = EventEmitter()
    _add(emitter, "go", 10)
    with pytest.warns(MaxListenersExceededWarning) as record:
        for _ in range(5):
            getattr(emitter, method)("go", _noop)
    leaks = _leak_warnings(record)
    assert len(leaks) == 1
    message = str(leaks[0].message)
    assert "'go'" in message
    assert "11" in message
    assert leaks[0].filename == __file__  # points at the code that added the listener
    assert emitter.listener_count("go") == 15  # the warning does not stop the registration


def test_leak_warning_is_per_event_and_per_emitter() -> None:
    first, second = EventEmitter(), EventEmitter()
    with pytest.warns(MaxListenersExceededWarning) as record:
        _add(first, "a", 12)
        _add(first, "b", 12)
        _add(second, "a", 12)
        _add(first, "a", 3)
    assert len(_leak_warnings(record)) == 3


def test_leak_warning_is_not_repeated_after_listeners_are_removed() -> None:
    emitter = EventEmitter()
    with pytest.warns(MaxListenersExceededWarning) as record:
        _add(emitter, "go", 11)
        emitter.remove_listeners("go")
        _add(emitter, "go", 11)
    assert len(_leak_warnings(record)) == 1


def test_set_max_listeners_changes_the_limit() -> None:
    emitter = EventEmitter()
    emitter.set_max_listeners(2)
    assert emitter.get_max_listeners() == 2
    assert EventEmitter().get_max_listeners() == 10  # per emitter
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _add(emitter, "go", 2)
    with pytest.warns(MaxListenersExceededWarning, match="limit 2"):
        _add(emitter, "go", 1)


def test_set_max_listeners_zero_disables_the_warning() -> None:
    emitter = EventEmitter()
    emitter.set_max_listeners(0)
    assert emitter.get_max_listeners() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _add(emitter, "go", 100)
    assert emitter.listener_count("go") == 100


def test_the_leak_bookkeeping_does_not_go_through_a_subclass_setattr() -> None:
    class Frozen(EventEmitter):
        frozen = False

        def __setattr__(self, name: str, value: object) -> None:
            if self.frozen:
                raise AttributeError(f"read-only: {name}")
            object.__setattr__(self, name, value)

    emitter = Frozen()
    emitter.frozen = True
    emitter.set_max_listeners(2)
    assert emitter.get_max_listeners() == 2
    with pytest.warns(MaxListenersExceededWarning, match="limit 2"):
        _add(emitter, "go", 3)
    assert emitter.listener_count("go") == 3


def test_set_max_listeners_rejects_negative_limits() -> None:
    emitter = EventEmitter()
    with pytest.raises(ValueError, match="-1"):
        emitter.set_max_listeners(-1)
    assert emitter.get_max_listeners() == 10


def test_subclasses_can_change_the_default_limit() -> None:
    class Busy(EventEmitter):
        default_max_listeners = 0

    class Tight(EventEmitter):
        default_max_listeners = 1

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _add(Busy(), "go", 30)
    with pytest.warns(MaxListenersExceededWarning):
        _add(Tight(), "go", 2)


def test_max_listeners_counts_listeners_of_one_event_only() -> None:
    emitter = EventEmitter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(30):
            emitter.on(f"event{i}", _noop)


# -- property: random operations against a model -------------------------------------------------

EVENTS = ["a", "b", "c"]
FUNCS = 4

operation = st.one_of(
    st.tuples(
        st.sampled_from(["on", "once", "prepend_listener", "prepend_once_listener"]),
        st.sampled_from(EVENTS),
        st.integers(0, FUNCS - 1),
    ),
    st.tuples(st.just("remove_listener"), st.sampled_from(EVENTS), st.integers(0, FUNCS - 1)),
    st.tuples(st.just("remove_listeners"), st.sampled_from([*EVENTS, None]), st.just(0)),
    st.tuples(st.just("emit"), st.sampled_from(EVENTS), st.just(0)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(operation, max_size=40))
def test_random_operations_match_a_list_model(
    operations: list[tuple[str, str | None, int]],
) -> None:
    log: list[tuple[str, int]] = []

    def make(index: int) -> Callable[[str], None]:
        def listener(event: str) -> None:
            log.append((event, index))

        return listener

    funcs = [make(i) for i in range(FUNCS)]
    emitter = EventEmitter()
    emitter.set_max_listeners(0)
    model: dict[str, list[tuple[int, bool]]] = {}  # event -> [(function index, once)]
    expected_log: list[tuple[str, int]] = []

    for op, event, index in operations:
        if op in ("on", "once", "prepend_listener", "prepend_once_listener"):
            assert event is not None
            getattr(emitter, op)(event, funcs[index])
            entry = (index, "once" in op)
            current = model.setdefault(event, [])
            if op.startswith("prepend"):
                current.insert(0, entry)
            else:
                current.append(entry)
        elif op == "remove_listener":
            assert event is not None
            current_or_none = model.get(event)
            position = next(
                (i for i, (f, _) in enumerate(current_or_none or []) if f == index), None
            )
            if current_or_none is None:
                emitter.remove_listener(event, funcs[index])
            elif position is None:
                with pytest.raises(ValueError):
                    emitter.remove_listener(event, funcs[index])
            else:
                emitter.remove_listener(event, funcs[index])
                del current_or_none[position]
        elif op == "remove_listeners":
            if event is None:
                emitter.remove_listeners()
                model.clear()
            else:
                emitter.remove_listeners(event)
                if event in model:
                    model[event] = []
        else:
            assert event is not None
            current = model.get(event, [])
            assert emitter.emit(event, event) is bool(current)
            expected_log.extend((event, f) for f, _ in current)
            if current:
                model[event] = [(f, once) for f, once in current if not once]

        assert log == expected_log
        assert emitter.events() == list(model)
        for name in EVENTS:
            want = [funcs[f] for f, _ in model.get(name, [])]
            got = emitter.listeners(name)
            assert len(got) == len(want)
            assert all(g is w for g, w in zip(got, want, strict=True))
            assert emitter.listener_count(name) == len(want)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.booleans(), min_size=n, max_size=n),
            st.lists(st.sets(st.integers(0, n - 1)), min_size=n, max_size=n),
            st.lists(st.integers(0, 2), min_size=n, max_size=n),
        )
    )
)
def test_changes_made_during_an_emit_follow_the_snapshot_rule(
    case: tuple[int, list[bool], list[set[int]], list[int]],
) -> None:
    """Listener i, when called, removes the listeners in removals[i] and adds additions[i] new
    ones; the emit calls the snapshot taken when it started, minus those removed before their
    turn, and the next emit sees the resulting list."""
    n, onces, removals, additions = case
    emitter = EventEmitter()
    emitter.set_max_listeners(0)
    called: list[object] = []
    removed: set[int] = set()
    funcs: list[Callable[[], None]] = []
    added: list[Callable[[], None]] = []

    def make_added(tag: object) -> Callable[[], None]:
        def late() -> None:
            called.append(tag)

        return late

    def make(i: int) -> Callable[[], None]:
        def listener() -> None:
            called.append(i)
            for j in sorted(removals[i]):
                if j not in removed and not (onces[j] and j in called):
                    emitter.remove_listener("go", funcs[j])
                    removed.add(j)
            for k in range(additions[i]):
                fn = make_added((i, k))
                added.append(fn)
                emitter.on("go", fn)

        return listener

    for i in range(n):
        funcs.append(make(i))
        (emitter.once if onces[i] else emitter.on)("go", funcs[i])

    # Model of the first emit: walk the snapshot, skipping what was removed before its turn.
    expected: list[object] = []
    model_removed: set[int] = set()
    for i in range(n):
        if i in model_removed:
            continue
        expected.append(i)
        for j in sorted(removals[i]):
            if j not in model_removed and not (onces[j] and j in expected):
                model_removed.add(j)
    emitter.emit("go")
    assert called == expected

    survivors = [
        funcs[i] for i in range(n) if i not in model_removed and not (onces[i] and i in expected)
    ]
    want = survivors + added
    got = emitter.listeners("go")
    assert len(got) == len(want)
    assert all(g is w for g, w in zip(got, want, strict=True))


def test_on_decorator_works_on_any_object_with_an_on_method() -> None:
    class Duck:
        def __init__(self) -> None:
            self.added: list[tuple[str, Any]] = []

        def on(self, event: str, listener: Any) -> None:
            self.added.append((event, listener))

    duck = Duck()

    @on(duck)  # type: ignore[arg-type]
    def quack() -> None:
        pass

    assert duck.added == [("quack", quack)]
