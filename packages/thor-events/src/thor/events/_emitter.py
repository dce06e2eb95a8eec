"""The EventEmitter: named events, listeners called in registration order.

Theory of operation
-------------------
Each emitter keeps a dict from event name to a list of ``ContextWrapper`` entries. The lists are
copy-on-write: adding or removing a listener builds a new list and stores it, so ``emit`` can
iterate the list it fetched without copying it, and a listener added during an emit is not called
by that emit. A removed entry is also flagged ``removed``, which ``emit`` checks, so a listener
removed during an emit is skipped by it. ``remove_listeners`` only replaces lists (no flags): the
rest of an emit in progress still runs, as in thor 0.17.

Context rule (thor 0.17's): a listener runs in the ``contextvars`` context captured when it was
registered, unless it is called while another listener is already running, in which case it runs
in the current context. The "a listener is running" flag is a ContextVar set to True once, inside
each captured context, at registration time; entering a captured context therefore raises the flag
for everything called from there, and leaving it drops the flag again, at no per-call cost.

Emit is on every hot path of thor (every read, every parsed message), so the one-listener case is
handled first with as few operations as possible.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from contextvars import Context, ContextVar, copy_context
from types import BuiltinFunctionType, FrameType, FunctionType, MethodType
from typing import Any, TypeVar

from ._errors import MaxListenersExceededWarning, UnhandledError

__all__ = [
    "ContextWrapper",
    "EventEmitter",
    "EventListener",
    "on",
    "set_unhandled_error_handler",
]

EventListener = Callable[..., Any]
ListenerT = TypeVar("ListenerT", bound=Callable[..., Any])

logger = logging.getLogger("thor.events")

_IN_LISTENER: ContextVar[bool] = ContextVar("thor_events_in_listener", default=False)
_in_listener = _IN_LISTENER.get
_new_wrapper = object.__new__
#: how the emitter sets its own bookkeeping: past a subclass's __setattr__, as a write to the
#: instance __dict__ would (which is not used: see EventEmitter's class attributes)
_set_attribute = object.__setattr__
#: listener types that ``on`` may wrap without the general checks (never a ContextWrapper,
#: always callable)
_PLAIN_CALLABLES = frozenset({FunctionType, MethodType, BuiltinFunctionType})
#: every subclass's ``_hooked_events`` (a global: ``on`` checks it on its fast path, where a
#: class attribute read through the instance would be a slow lookup on CPython 3.11)
_HOOKED_NAMES: set[str] = set()


def _captured_context() -> Any:
    """A copy of the current context in which the in-listener flag is raised."""
    context = copy_context()
    if not _in_listener():
        context.run(_IN_LISTENER.set, True)
    return context


class ContextWrapper:
    """A registered listener and the context captured when it was registered.

    Calling the wrapper calls the listener under thor's context rule (see the module docstring).
    A wrapper compares equal to the function it wraps, so ``wrapper in [fn]`` and
    ``fn in emitter.listeners(event)`` work either way round.

    Attributes:
        listener: the function given to ``on``/``once`` (given a wrapper, its function: the new
            wrapper then shares the given one's context).
        context: the ``contextvars.Context`` it runs in (reused for every call, so changes a
            listener makes to context variables are seen by its later calls, never by the emitter).
        once: True for a listener registered with ``once``.
    """

    __slots__ = ("context", "listener", "once", "removed")

    def __init__(self, listener: EventListener, once: bool = False) -> None:
        if isinstance(listener, ContextWrapper):
            # Re-registering a wrapper (say, one received with 'newListener') keeps its function
            # and its context, as thor 0.17 did, instead of nesting wrappers.
            self.listener: EventListener = listener.listener
            self.context: Context = listener.context
        elif callable(listener):
            self.listener = listener
            self.context = _captured_context()
        else:
            raise TypeError(f"listener must be callable, not {listener!r}")
        self.once = once
        self.removed = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _in_listener():
            return self.listener(*args, **kwargs)
        return self.context.run(self.listener, *args, **kwargs)

    @property
    def __name__(self) -> str:
        return getattr(self.listener, "__name__", repr(self.listener))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ContextWrapper):
            return bool(self.listener == other.listener)
        return bool(self.listener == other)

    def __hash__(self) -> int:
        return hash(self.listener)

    def __repr__(self) -> str:
        kind = "once " if self.once else ""
        return f"<ContextWrapper {kind}{self.listener!r}>"


def _report_unhandled_error(emitter: EventEmitter, args: tuple[Any, ...]) -> None:
    """Default handler for an ``'error'`` nobody listened to: log it with its traceback."""
    err = args[0] if args else None
    if isinstance(err, BaseException):
        logger.error(
            "unhandled 'error' event on %r: %r",
            emitter,
            err,
            exc_info=(type(err), err, err.__traceback__),
        )
    else:
        logger.error("unhandled 'error' event on %r: %r", emitter, args)


_unhandled_error_handler: Callable[[EventEmitter, tuple[Any, ...]], object] = (
    _report_unhandled_error
)


def set_unhandled_error_handler(
    handler: Callable[[EventEmitter, tuple[Any, ...]], object] | None,
) -> Callable[[EventEmitter, tuple[Any, ...]], object]:
    """Replace the process-wide handler of ``'error'`` events that have no listener and no sink.

    Args:
        handler: called as ``handler(emitter, args)``; None restores the default, which logs the
            error (with its traceback when it is an exception) to the ``thor.events`` logger.

    Returns:
        The handler that was in place before.
    """
    global _unhandled_error_handler
    previous = _unhandled_error_handler
    _unhandled_error_handler = handler or _report_unhandled_error
    return previous


class EventEmitter:
    """An object that emits named events to the listeners attached to it (Node's EventEmitter).

    Listeners are called in registration order with the arguments given to ``emit``. An event
    with no listener goes to the sink object, if one is set and has a method of that name.

    ``'error'`` convention: Node raises an ``'error'`` event nobody listens to; thor 0.17 dropped
    it silently. Thor reports it instead (by default, logged with its traceback to the
    ``thor.events`` logger; see ``set_unhandled_error_handler``), so classic code keeps running
    and the error is not lost. Set ``raise_unhandled_errors = True`` (on a class or an instance)
    to get Node's behaviour: the payload is raised from ``emit`` (wrapped in
    ``UnhandledError`` when it is not an exception).

    Leak detection: adding more than ``default_max_listeners`` (10) listeners for one event issues
    one ``MaxListenersExceededWarning`` per emitter and event; ``set_max_listeners(0)`` turns it
    off for an emitter.

    Pickling keeps the instance dict (the sink included) but not the listeners; an unpickled
    emitter starts with none.

    Events:
        newListener (event: str, listener: ContextWrapper): after a listener was added with
            ``on``, ``once`` or their variants; may fire many times.
    """

    default_max_listeners: int = 10
    raise_unhandled_errors: bool = False
    # Set on an instance only when used. (Never through ``self.__dict__``: on CPython 3.11,
    # touching an instance's __dict__ makes every later attribute read of it a slow lookup.)
    __max_listeners: int | None = None  # set_max_listeners(); None: default_max_listeners
    __warned: set[str] | None = None  # events warned about (MaxListenersExceededWarning)
    #: for subclasses, set in the class body (read when the class is made): events whose
    #: every new listener calls ``_listener_added``
    _hooked_events: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.__events: dict[str, list[ContextWrapper]] = {}
        self.__sink: object | None = None

    # -- registration -------------------------------------------------------------------------

    def on(self, event: str, listener: EventListener) -> None:
        """Call ``listener(*args)`` every time ``event`` is emitted.

        Raises:
            TypeError: ``listener`` is not callable.
        """
        # Applications register listeners on every exchange, so the common case (a plain
        # function or method, registered from inside a listener, the event's first one, no
        # sink and no newListener interest) is inlined; it builds the same ContextWrapper as
        # the general path.
        events = self.__events
        if (
            event not in events  # (an event whose listeners were all removed: general path)
            and type(listener) in _PLAIN_CALLABLES
            and self.__sink is None
            and "newListener" not in events
            and event != "newListener"  # (a newListener listener hears of itself)
            and event not in _HOOKED_NAMES
            and _in_listener()
        ):
            entry = _new_wrapper(ContextWrapper)
            entry.listener = listener
            entry.context = copy_context()
            entry.once = False
            entry.removed = False
            events[event] = [entry]
            return
        self.__add(event, ContextWrapper(listener), prepend=False)

    def _on_by_name(self, listener: ListenerT) -> ListenerT:
        """``@on(emitter)``: register ``listener`` for the event named like it; return it."""
        self.on(listener.__name__, listener)
        return listener

    def once(self, event: str, listener: EventListener) -> None:
        """Call ``listener`` the next time ``event`` is emitted, then forget it.

        The listener can still be removed with ``remove_listener(event, listener)`` before then.
        """
        self.__add(event, ContextWrapper(listener, once=True), prepend=False)

    def add_listener(self, event: str, listener: ListenerT) -> ListenerT:
        """Like ``on``, but returns the listener (usable as a typed decorator body)."""
        self.__add(event, ContextWrapper(listener), prepend=False)
        return listener

    def prepend_listener(self, event: str, listener: ListenerT) -> ListenerT:
        """Like ``on``, but the listener is called before those already registered."""
        self.__add(event, ContextWrapper(listener), prepend=True)
        return listener

    def prepend_once_listener(self, event: str, listener: ListenerT) -> ListenerT:
        """Like ``once``, but the listener is called before those already registered."""
        self.__add(event, ContextWrapper(listener, once=True), prepend=True)
        return listener

    def __add(self, event: str, entry: ContextWrapper, prepend: bool) -> None:
        events = self.__events
        current = events.get(event)
        if current is None:
            events[event] = [entry]
        else:
            events[event] = [entry, *current] if prepend else [*current, entry]
        if "newListener" in events or self.__sink is not None:
            self._listener_added(event)
            self.emit("newListener", event, entry)
        elif event in self._hooked_events:
            self._listener_added(event)
        if current is not None:
            # last: a warning made an error (-W error) leaves the listener fully registered
            limit = self.get_max_listeners()
            if 0 < limit < len(current) + 1:
                self.__warn_max_listeners(event, len(current) + 1, limit)

    def _listener_added(self, event: str) -> None:
        """Hook for subclasses: a listener of ``event`` was added while a sink is set (or
        someone listens to ``'newListener'``), or ``event`` is one of the class's
        ``_hooked_events``; called before ``'newListener'`` is emitted.

        A subclass that calls its sink's handlers directly, bypassing ``emit``, uses it to
        learn that ``emit`` must be used again for that event; one that skips building an
        event nobody ever listened to names the event in ``_hooked_events``. (Not called for
        other listeners added while no sink is set and nobody listens to ``'newListener'``.)
        """

    def __warn_max_listeners(self, event: str, count: int, limit: int) -> None:
        warned = self.__warned
        if warned is None:
            warned = set()
            _set_attribute(self, "_EventEmitter__warned", warned)
        elif event in warned:
            return
        warned.add(event)
        warnings.warn(
            MaxListenersExceededWarning(
                f"{count} {event!r} listeners added to {self!r} (limit {limit}): a possible "
                f"listener leak; use set_max_listeners() to raise the limit"
            ),
            stacklevel=_caller_level(),
        )

    def set_max_listeners(self, limit: int) -> None:
        """Set this emitter's per-event listener count above which a leak warning is issued.

        Args:
            limit: a count; 0 means no limit.

        Raises:
            ValueError: ``limit`` is negative.
        """
        if limit < 0:
            raise ValueError(f"max listeners must be 0 or more, not {limit!r}")
        _set_attribute(self, "_EventEmitter__max_listeners", limit)

    def get_max_listeners(self) -> int:
        """The listener count per event above which a leak warning is issued (0: no limit)."""
        limit = self.__max_listeners
        return self.default_max_listeners if limit is None else limit

    # -- removal ------------------------------------------------------------------------------

    def remove_listener(self, event: str, listener: EventListener) -> None:
        """Remove the first registration of ``listener`` for ``event`` (``once`` ones included).

        A listener removed while ``event`` is being emitted is not called by that emit.
        Silent when ``event`` never had a listener.

        Raises:
            ValueError: ``event`` has listeners, but not this one.
        """
        current = self.__events.get(event)
        if current is None:
            return
        found = -1
        if isinstance(listener, ContextWrapper):  # (one from 'newListener': that registration)
            found = next((i for i, entry in enumerate(current) if entry is listener), -1)
        if found < 0:
            found = next((i for i, entry in enumerate(current) if entry.listener == listener), -1)
        if found >= 0:
            current[found].removed = True
            self.__events[event] = current[:found] + current[found + 1 :]
            return
        raise ValueError(f"{listener!r} is not a listener of {event!r} on {self!r}")

    off = remove_listener

    def remove_listeners(self, *events: str) -> None:
        """Remove every listener of the given events, or of all events when none is given.

        An emit already in progress still calls the rest of its listeners.
        """
        if events:
            for event in events:
                if event in self.__events:
                    self.__events[event] = []
        else:
            self.__events = {}

    remove_all_listeners = remove_listeners

    # -- introspection ------------------------------------------------------------------------

    def listeners(self, event: str) -> list[EventListener]:
        """A new list of the functions listening to ``event``, in calling order."""
        return [entry.listener for entry in self.__events.get(event, ())]

    def listener_count(self, event: str) -> int:
        """How many listeners ``event`` has."""
        return len(self.__events.get(event, ()))

    def has_handler(self, event: str) -> bool:
        """Whether emitting ``event`` now would reach someone: a listener, or a sink with a
        method of that name. (An emitter can then skip building what it would emit, or log
        instead of emitting an ``'error'`` nobody handles.)"""
        if self.__events.get(event):
            return True
        sink = self.__sink
        return sink is not None and getattr(sink, event, None) is not None

    def events(self) -> list[str]:
        """Names of the events that have, or once had, listeners."""
        return list(self.__events)

    event_names = events

    # -- emitting -----------------------------------------------------------------------------

    def emit(self, event: str, *args: Any) -> bool:
        """Call every listener of ``event`` with ``args``, in registration order.

        With no listener, ``sink.<event>(*args)`` is called when a sink is set and has it; an
        unhandled ``'error'`` is reported (see the class docstring). Exceptions raised by
        listeners propagate to the caller.

        Returns:
            True when a listener or the sink handled the event.
        """
        entries = self.__events.get(event)
        if entries:
            if len(entries) == 1:
                entry = entries[0]
                if entry.once:
                    entry.removed = True
                    self.__events[event] = []
                if _in_listener():
                    entry.listener(*args)
                elif len(args) == 1:  # (spelt out: run(f, *args) builds a new tuple per call)
                    entry.context.run(entry.listener, args[0])
                elif not args:
                    entry.context.run(entry.listener)
                elif len(args) == 3:  # response_start (status, phrase, headers) and the like
                    entry.context.run(entry.listener, args[0], args[1], args[2])
                else:
                    entry.context.run(entry.listener, *args)
                return True
            nested = _in_listener()
            for entry in entries:
                if entry.removed:
                    continue
                if entry.once:
                    self.__drop_once(event, entry)
                if nested:
                    entry.listener(*args)
                elif len(args) == 1:
                    entry.context.run(entry.listener, args[0])
                else:
                    entry.context.run(entry.listener, *args)
            return True
        sink = self.__sink
        if sink is not None:
            handler = getattr(sink, event, None)
            if handler is not None:
                handler(*args)
                return True
        if event == "error":
            if self.raise_unhandled_errors:
                if args and isinstance(args[0], BaseException):
                    raise args[0]
                raise UnhandledError(*args)
            _unhandled_error_handler(self, args)
        return False

    # Fixed-arity emits, for thor's own per-message events. On CPython 3.11 a call to emit(*args)
    # is never specialised and a sink handler called with *args is slow too; these take the
    # common cases (one listener that is not 'once', or no listener and maybe a sink) with plain
    # calls and leave every other case to emit. A subclass that overrides emit gets versions
    # that call its emit (see __init_subclass__). Not seen: an emit replaced on an instance, or
    # on a class after the class was made (checking for those on every call would cost what
    # these save).

    def _emit1(self, event: str, arg: Any) -> bool:
        """``emit(event, arg)``, faster in the common cases."""
        entries = self.__events.get(event)
        if entries:
            if len(entries) == 1:
                entry = entries[0]
                if not entry.once:
                    if _in_listener():
                        entry.listener(arg)
                    else:
                        entry.context.run(entry.listener, arg)
                    return True
        else:
            sink = self.__sink
            if sink is not None:
                handler = getattr(sink, event, None)
                if handler is not None:
                    handler(arg)
                    return True
            if event != "error":
                return False  # (nobody hears it: what emit would find)
        return self.emit(event, arg)

    def _emit3(self, event: str, arg1: Any, arg2: Any, arg3: Any) -> bool:
        """``emit(event, arg1, arg2, arg3)``, faster in the common cases."""
        entries = self.__events.get(event)
        if entries:
            if len(entries) == 1:
                entry = entries[0]
                if not entry.once:
                    if _in_listener():
                        entry.listener(arg1, arg2, arg3)
                    else:
                        entry.context.run(entry.listener, arg1, arg2, arg3)
                    return True
        else:
            sink = self.__sink
            if sink is not None:
                handler = getattr(sink, event, None)
                if handler is not None:
                    handler(arg1, arg2, arg3)
                    return True
            if event != "error":
                return False  # (nobody hears it: what emit would find)
        return self.emit(event, arg1, arg2, arg3)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _HOOKED_NAMES.update(cls._hooked_events)
        if cls.emit is not EventEmitter.emit:  # an overridden emit sees every event
            cls._emit1 = _emit1_through_emit  # type: ignore[method-assign]
            cls._emit3 = _emit3_through_emit  # type: ignore[method-assign]

    def __drop_once(self, event: str, entry: ContextWrapper) -> None:
        entry.removed = True
        current = self.__events.get(event)
        if current is not None:
            remaining = [other for other in current if other is not entry]
            if len(remaining) != len(current):
                self.__events[event] = remaining

    def sink(self, sink: object) -> None:
        """Send events that have no listener to ``sink.<event>(*args)`` where that method exists."""
        self.__sink = sink

    # -- pickling -----------------------------------------------------------------------------

    def __getstate__(self) -> Any:
        """The instance dict without the listeners (the sink is kept), for pickling; with
        the values of a subclass's ``__slots__`` as a second dict when it has any, as
        ``object.__getstate__`` gives them."""
        state = self.__dict__.copy()
        state.pop("_EventEmitter__events", None)
        state.pop("_EventEmitter__warned", None)
        slots = {}
        for cls in type(self).__mro__:
            names = cls.__dict__.get("__slots__", ())
            for slot in (names,) if isinstance(names, str) else names:
                if slot in ("__dict__", "__weakref__"):
                    continue
                private = slot.startswith("__") and not slot.endswith("__")
                name = f"_{cls.__name__.lstrip('_')}{slot}" if private else slot  # (mangled)
                try:
                    slots[name] = object.__getattribute__(self, name)
                except AttributeError:
                    continue  # (never set)
        return (state, slots) if slots else state

    def __setstate__(self, state: Any) -> None:
        """Restore a pickled emitter, with an empty listener registry."""
        slots: dict[str, Any] = {}
        if isinstance(state, tuple):
            state, slots = state
        self.__dict__.update(state)
        self.__dict__.setdefault("_EventEmitter__events", {})
        self.__dict__.setdefault("_EventEmitter__sink", None)
        for name, value in slots.items():
            _set_attribute(self, name, value)


def _caller_level() -> int:
    """``warnings.warn``'s stacklevel for the first frame outside this module (``on``, the
    ``@on`` decorator and the other variants are different depths below it)."""
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
        level += 1
    return level


def _emit1_through_emit(self: EventEmitter, event: str, arg: Any) -> bool:
    return self.emit(event, arg)


def _emit3_through_emit(self: EventEmitter, event: str, arg1: Any, arg2: Any, arg3: Any) -> bool:
    return self.emit(event, arg1, arg2, arg3)


def on(obj: EventEmitter, event: str | None = None) -> Callable[[ListenerT], ListenerT]:
    """Decorator: register the decorated function as a listener of ``event`` on ``obj``.

    Args:
        obj: the emitter.
        event: the event name; by default the function's ``__name__``.

    Returns:
        A decorator that registers the function and returns it unchanged.
    """
    if event is None and isinstance(obj, EventEmitter):
        return obj._on_by_name  # (no closure to make: applications decorate per exchange)

    def register(listener: ListenerT) -> ListenerT:
        obj.on(event or listener.__name__, listener)
        return listener

    return register
