"""The contextvars rule of listeners, and ContextWrapper (thor.events._emitter).

The rule (thor 0.17's): a listener runs in the context captured when it was registered, unless it
is called while another listener is running, in which case it runs in the current context.

The autouse ``isolated`` fixture resets the ContextVars after each test, so the values set here
never leak from one test into another.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from thor.events import ContextWrapper, EventEmitter, on

LOCALE: contextvars.ContextVar[str] = contextvars.ContextVar("LOCALE", default="unset")
COUNTER: contextvars.ContextVar[int] = contextvars.ContextVar("COUNTER", default=0)


@pytest.fixture(autouse=True)
def isolated() -> Iterator[None]:
    """Reset the variables this file uses after each test."""
    locale_token = LOCALE.set("unset")
    counter_token = COUNTER.set(0)
    yield
    LOCALE.reset(locale_token)
    COUNTER.reset(counter_token)


def run_isolated(fn: Callable[[], Any]) -> Any:
    return contextvars.copy_context().run(fn)


def _filler(emitter: EventEmitter, event: str, count: int) -> None:
    """Add ``count`` do-nothing listeners (to exercise the many-listener path of emit)."""
    for _ in range(count):
        emitter.on(event, lambda *args: None)


# 0 extra listeners exercises emit's one-listener fast path, 2 the general loop.
paths = pytest.mark.parametrize("extra", [0, 2], ids=["one-listener", "many-listeners"])


@paths
def test_listener_sees_the_context_of_its_registration_not_of_the_emitter(extra: int) -> None:
    emitter = EventEmitter()
    seen: list[str] = []
    LOCALE.set("registered")
    emitter.on("go", lambda: seen.append(LOCALE.get()))
    _filler(emitter, "go", extra)
    LOCALE.set("emitting")
    emitter.emit("go")
    LOCALE.set("emitting again")
    emitter.emit("go")
    assert seen == ["registered", "registered"]
    assert LOCALE.get() == "emitting again"


@pytest.mark.parametrize("method", ["once", "add_listener", "prepend_listener"])
def test_every_registration_method_captures_the_context(method: str) -> None:
    emitter = EventEmitter()
    seen: list[str] = []
    LOCALE.set("registered")
    getattr(emitter, method)("go", lambda: seen.append(LOCALE.get()))
    LOCALE.set("emitting")
    emitter.emit("go")
    assert seen == ["registered"]


def test_the_on_decorator_captures_the_context() -> None:
    emitter = EventEmitter()
    seen: list[str] = []
    LOCALE.set("decorated")

    @on(emitter)
    def go() -> None:
        seen.append(LOCALE.get())

    LOCALE.set("emitting")
    emitter.emit("go")
    assert seen == ["decorated"]


def test_the_context_is_captured_at_registration_not_by_reference() -> None:
    emitter = EventEmitter()
    seen: list[str] = []

    def register() -> None:
        LOCALE.set("inside")
        emitter.on("go", lambda: seen.append(LOCALE.get()))
        LOCALE.set("changed after registration")

    run_isolated(register)
    emitter.emit("go")
    assert seen == ["inside"]


@paths
def test_listener_changes_persist_into_its_own_later_calls_but_not_into_the_emitter(
    extra: int,
) -> None:
    emitter = EventEmitter()
    seen: list[int] = []

    def count() -> None:
        COUNTER.set(COUNTER.get() + 1)
        seen.append(COUNTER.get())

    emitter.on("go", count)
    _filler(emitter, "go", extra)
    for _ in range(3):
        emitter.emit("go")
        assert COUNTER.get() == 0
    assert seen == [1, 2, 3]


def test_each_registration_has_its_own_context() -> None:
    emitter = EventEmitter()
    seen: list[tuple[str, int]] = []

    def count(name: str) -> Callable[[], None]:
        def listener() -> None:
            COUNTER.set(COUNTER.get() + 1)
            seen.append((name, COUNTER.get()))

        return listener

    emitter.on("go", count("a"))
    emitter.on("go", count("b"))
    emitter.on("other", count("c"))
    emitter.emit("go")
    emitter.emit("other")
    emitter.emit("go")
    assert seen == [("a", 1), ("b", 1), ("c", 1), ("a", 2), ("b", 2)]


@paths
def test_listener_called_from_inside_another_listener_runs_in_the_current_context(
    extra: int,
) -> None:
    outer_emitter, inner_emitter = EventEmitter(), EventEmitter()
    seen: list[tuple[str, str]] = []

    LOCALE.set("inner registration")
    inner_emitter.on("inner", lambda: seen.append(("inner", LOCALE.get())))
    _filler(inner_emitter, "inner", extra)

    def outer() -> None:
        LOCALE.set("set by outer")
        inner_emitter.emit("inner")
        seen.append(("outer", LOCALE.get()))

    LOCALE.set("outer registration")
    outer_emitter.on("outer", outer)
    _filler(outer_emitter, "outer", extra)

    LOCALE.set("top level")
    outer_emitter.emit("outer")
    assert seen == [("inner", "set by outer"), ("outer", "set by outer")]
    assert LOCALE.get() == "top level"

    # Emitted from the top level, the inner listener is back in its own context.
    seen.clear()
    inner_emitter.emit("inner")
    assert seen == [("inner", "inner registration")]


def test_changes_made_by_a_nested_listener_are_seen_by_the_outer_one_only() -> None:
    emitter = EventEmitter()
    seen: list[tuple[str, int]] = []

    def inner() -> None:
        COUNTER.set(COUNTER.get() + 10)
        seen.append(("inner", COUNTER.get()))

    def outer() -> None:
        emitter.emit("inner")
        seen.append(("outer", COUNTER.get()))

    emitter.on("inner", inner)
    emitter.on("outer", outer)
    emitter.emit("outer")  # inner runs in outer's context: outer's counter becomes 10
    emitter.emit("outer")  # and 20 the next time; inner's own context is untouched
    emitter.emit("inner")  # from the top level, inner runs in its own context
    assert seen == [("inner", 10), ("outer", 10), ("inner", 20), ("outer", 20), ("inner", 10)]
    assert COUNTER.get() == 0


def test_the_same_listener_can_be_emitted_recursively() -> None:
    emitter = EventEmitter()
    depths: list[int] = []

    def recurse() -> None:
        COUNTER.set(COUNTER.get() + 1)
        depths.append(COUNTER.get())
        if COUNTER.get() < 3:
            emitter.emit("go")

    emitter.on("go", recurse)
    emitter.emit("go")  # nested calls reuse the current context: no "already entered" error
    assert depths == [1, 2, 3]
    assert COUNTER.get() == 0


def test_listener_registered_inside_a_listener_captures_that_listeners_context() -> None:
    emitter = EventEmitter()
    seen: list[str] = []

    def registrar() -> None:
        LOCALE.set("inside registrar")
        emitter.on("later", lambda: seen.append(LOCALE.get()))
        LOCALE.set("registrar moved on")

    LOCALE.set("registrar registration")
    emitter.once("setup", registrar)
    LOCALE.set("top level")
    emitter.emit("setup")
    emitter.emit("later")
    assert seen == ["inside registrar"]
    assert LOCALE.get() == "top level"


def test_exceptions_do_not_leave_the_listener_state_behind() -> None:
    emitter = EventEmitter()
    seen: list[str] = []

    def boom() -> None:
        raise RuntimeError("boom")

    emitter.on("boom", boom)
    LOCALE.set("registered")
    emitter.on("go", lambda: seen.append(LOCALE.get()))
    LOCALE.set("top level")
    with pytest.raises(RuntimeError):
        emitter.emit("boom")
    emitter.emit("go")
    assert seen == ["registered"]


def test_the_sink_runs_in_the_emitters_context() -> None:
    class Sink:
        def __init__(self) -> None:
            self.seen: list[str] = []

        def go(self) -> None:
            self.seen.append(LOCALE.get())

    sink = Sink()
    emitter = EventEmitter()
    LOCALE.set("sink set")
    emitter.sink(sink)
    LOCALE.set("emitting")
    emitter.emit("go")
    assert sink.seen == ["emitting"]


def test_a_new_listener_listener_follows_the_rule_too() -> None:
    emitter = EventEmitter()
    seen: list[str] = []
    LOCALE.set("watcher registration")
    emitter.on("newListener", lambda event, wrapper: seen.append(LOCALE.get()))
    LOCALE.set("top level")
    emitter.on("go", lambda: None)
    assert seen == ["watcher registration", "watcher registration"]


# -- ContextWrapper -------------------------------------------------------------------------------


def _wrapper_of(emitter: EventEmitter, register: Callable[[], None]) -> ContextWrapper:
    wrappers: list[ContextWrapper] = []

    def watcher(event: str, wrapper: ContextWrapper) -> None:
        wrappers.append(wrapper)

    emitter.on("newListener", watcher)
    register()
    emitter.remove_listener("newListener", watcher)
    return wrappers[-1]


def test_calling_a_wrapper_directly_runs_in_the_captured_context() -> None:
    seen: list[str] = []
    LOCALE.set("captured")
    wrapper = ContextWrapper(lambda x: seen.append(f"{x} {LOCALE.get()}"))
    LOCALE.set("caller")
    wrapper("direct")
    assert seen == ["direct captured"]


def test_calling_a_wrapper_from_inside_a_listener_runs_in_the_current_context() -> None:
    emitter = EventEmitter()
    seen: list[str] = []
    LOCALE.set("captured")
    wrapper = ContextWrapper(lambda: seen.append(LOCALE.get()))

    def outer() -> None:
        LOCALE.set("outer listener")
        wrapper()

    LOCALE.set("outer registration")
    emitter.on("go", outer)
    emitter.emit("go")
    assert seen == ["outer listener"]


def test_wrapper_changes_persist_across_direct_calls() -> None:
    def count() -> int:
        COUNTER.set(COUNTER.get() + 1)
        return COUNTER.get()

    wrapper = ContextWrapper(count)
    assert [wrapper(), wrapper(), wrapper()] == [1, 2, 3]
    assert COUNTER.get() == 0


def test_wrapper_from_new_listener_is_the_registered_one() -> None:
    emitter = EventEmitter()
    seen: list[int] = []

    def count() -> None:
        COUNTER.set(COUNTER.get() + 1)
        seen.append(COUNTER.get())

    wrapper = _wrapper_of(emitter, lambda: emitter.on("go", count))
    emitter.emit("go")
    wrapper()  # shares the listener's context with the emitter's registration
    emitter.emit("go")
    assert seen == [1, 2, 3]


def test_registering_a_wrapper_keeps_its_captured_context() -> None:
    emitter = EventEmitter()
    seen: list[str] = []

    def listener() -> None:
        seen.append(LOCALE.get())

    LOCALE.set("first registration")
    wrapper = _wrapper_of(emitter, lambda: emitter.on("first", listener))
    LOCALE.set("second registration")
    emitter.on("second", wrapper)
    assert emitter.listeners("second")[0] is listener
    LOCALE.set("top level")
    emitter.emit("second")
    assert seen == ["first registration"]


def test_a_reregistered_wrapper_shares_its_context_with_the_first_registration() -> None:
    emitter = EventEmitter()
    seen: list[int] = []

    def count() -> None:
        COUNTER.set(COUNTER.get() + 1)
        seen.append(COUNTER.get())

    wrapper = _wrapper_of(emitter, lambda: emitter.on("first", count))
    emitter.once("second", wrapper)
    emitter.emit("first")
    emitter.emit("second")
    emitter.emit("second")
    emitter.emit("first")
    assert seen == [1, 2, 3]
    emitter.remove_listener("first", count)
    assert emitter.listeners("first") == []


def test_wrapper_compares_and_hashes_like_the_wrapped_function() -> None:
    def fn() -> None:
        pass

    def other() -> None:
        pass

    wrapper = ContextWrapper(fn)
    assert wrapper == fn
    assert fn == wrapper
    assert wrapper != other
    assert wrapper == ContextWrapper(fn)
    assert wrapper != ContextWrapper(other)
    assert hash(wrapper) == hash(fn)
    assert wrapper in [fn]
    assert fn in [wrapper]
    assert wrapper in {fn}
    assert fn in {wrapper: 1}


def test_wrapper_mirrors_the_function_name() -> None:
    def handle_data() -> None:
        pass

    assert ContextWrapper(handle_data).__name__ == "handle_data"
    assert ContextWrapper(print).__name__ == "print"
    assert ContextWrapper.__name__ == "ContextWrapper"


def test_wrapper_name_of_a_callable_without_a_name_is_its_repr() -> None:
    class Handler:
        def __call__(self) -> None:
            pass

        def __repr__(self) -> str:
            return "<the handler>"

    assert ContextWrapper(Handler()).__name__ == "<the handler>"


def test_wrapper_attributes_and_repr() -> None:
    def fn() -> None:
        pass

    wrapper = ContextWrapper(fn)
    once = ContextWrapper(fn, once=True)
    assert wrapper.listener is fn
    assert isinstance(wrapper.context, contextvars.Context)
    assert wrapper.once is False
    assert once.once is True
    assert "fn" in repr(wrapper)
    assert "once" in repr(once)
    assert "once" not in repr(wrapper)


def test_wrapper_passes_arguments_and_returns_the_result() -> None:
    wrapper = ContextWrapper(lambda a, b: a + b)
    assert wrapper(2, 3) == 5


def test_wrapper_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match="'nope'"):
        ContextWrapper("nope")  # type: ignore[arg-type]


def test_registered_function_is_found_in_listeners() -> None:
    emitter = EventEmitter()

    def fn() -> None:
        pass

    emitter.on("go", fn)
    emitter.once("go", fn)
    assert fn in emitter.listeners("go")
    assert emitter.listeners("go") == [fn, fn]


@pytest.mark.parametrize("setting", ["first listener", "second listener", "sink", "newListener"])
def test_registrations_inside_a_listener_behave_alike_on_every_path(setting: str) -> None:
    # on() has an inlined path for the first listener of an event, registered from inside a
    # listener, on an emitter with no sink and no newListener listener; the other settings
    # take the general path. Both must give the same wrappers.
    emitter = EventEmitter()
    seen: list[tuple[str, str]] = []
    added: list[str] = []
    if setting == "second listener":
        emitter.on("later", lambda: seen.append(("first", LOCALE.get())))
    elif setting == "sink":

        class Sink:
            def newListener(self, event: str, listener: Any) -> None:
                added.append(event)

        emitter.sink(Sink())
    elif setting == "newListener":
        emitter.on("newListener", lambda event, listener: added.append(event))

    def listener_a() -> None:
        seen.append(("a", LOCALE.get()))
        LOCALE.set("a changed it")

    def listener_b() -> None:
        seen.append(("b", LOCALE.get()))

    def registrar() -> None:
        LOCALE.set("inside registrar")
        emitter.on("later", listener_a)
        emitter.on("other", listener_b)
        LOCALE.set("registrar moved on")

    emitter.once("setup", registrar)
    LOCALE.set("top level")
    emitter.emit("setup")
    emitter.emit("later")
    emitter.emit("other")  # a's change stays in a's own copy of the context
    emitter.emit("later")
    own = [entry for entry in seen if entry[0] != "first"]
    assert own == [
        ("a", "inside registrar"),
        ("b", "inside registrar"),
        ("a", "a changed it"),
    ]
    assert listener_a in emitter.listeners("later")
    announced = [event for event in added if event in ("later", "other")]
    assert announced == (["later", "other"] if setting in ("sink", "newListener") else [])
    emitter.remove_listener("later", listener_a)
    emitter.remove_listener("other", listener_b)
    assert listener_a not in emitter.listeners("later")
    assert emitter.listener_count("other") == 0
    with pytest.raises(TypeError):
        run_inside_listener(lambda: emitter.on("later", 42))  # type: ignore[arg-type]
    assert LOCALE.get() == "top level"


def run_inside_listener(fn: Callable[[], Any]) -> None:
    """Call ``fn`` from inside a listener (where on()'s inlined path applies)."""
    emitter = EventEmitter()
    emitter.on("go", fn)
    emitter.emit("go")


@paths
@pytest.mark.parametrize("arity", [0, 1, 2, 3])
def test_a_top_level_emit_passes_every_arity_in_the_captured_context(
    extra: int, arity: int
) -> None:
    # emit spells out the zero-, one- and three-argument calls into the captured context
    emitter = EventEmitter()
    seen: list[tuple[tuple[Any, ...], str]] = []
    LOCALE.set("at registration")
    emitter.on("go", lambda *args: seen.append((args, LOCALE.get())))
    _filler(emitter, "go", extra)
    LOCALE.set("at emit")
    args = tuple(range(arity))
    assert emitter.emit("go", *args) is True
    assert seen == [(args, "at registration")]


def test_inside_a_listener_a_newlistener_listener_hears_of_itself_and_wrappers_unwrap() -> None:
    # the cases on()'s inlined path must leave to the general one
    emitter = EventEmitter()
    heard: list[str] = []

    class Wrapper(ContextWrapper):
        pass

    def plain() -> None:
        pass

    def registrar() -> None:
        emitter.on("newListener", lambda event, listener: heard.append(event))
        emitter.on("other", Wrapper(plain))

    run_inside_listener(registrar)
    assert heard == ["newListener", "other"]
    assert emitter.listeners("other") == [plain]  # the function, not a wrapper in a wrapper


def test_every_kind_of_callable_registered_inside_a_listener_is_wrapped_alike() -> None:
    # on()'s inlined path takes plain functions, bound methods and builtins by their type;
    # partials and callable objects take the general path: all get a context and are callable
    # and removable by what was registered
    emitter = EventEmitter()
    got: list[tuple[str, Any, str]] = []

    class Holder:
        def method(self, value: Any) -> None:
            got.append(("method", value, LOCALE.get()))

        def __call__(self, value: Any) -> None:
            got.append(("object", value, LOCALE.get()))

    def function(kind: str, value: Any) -> None:
        got.append((kind, value, LOCALE.get()))

    builtin_sink: list[Any] = []
    holder = Holder()
    registered: dict[str, Callable[..., Any]] = {
        "function": lambda value: function("function", value),
        "method": holder.method,
        "builtin": builtin_sink.append,
        "partial": functools.partial(function, "partial"),
        "object": holder,
    }

    def registrar() -> None:
        LOCALE.set("registrar")
        for event, listener in registered.items():
            emitter.on(event, listener)

    run_inside_listener(registrar)
    LOCALE.set("emit")
    for event in registered:
        assert emitter.emit(event, event) is True
    kinds = ("function", "method", "partial", "object")
    assert got == [(kind, kind, "registrar") for kind in kinds]
    assert builtin_sink == ["builtin"]
    for event, listener in registered.items():
        assert emitter.listeners(event) == [listener]
        emitter.remove_listener(event, listener)
        assert emitter.listener_count(event) == 0
