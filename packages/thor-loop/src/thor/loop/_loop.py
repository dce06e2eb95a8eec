"""LoopBase: the reactor every thor loop is. Backends subclass it to poll their way.

Theory of operation
-------------------
One pass of ``run`` (``_run_until_stopped``) does, in order:

1. wait for IO: the poll timeout is 0 when callbacks are ready, else the time to the next timer,
   else infinite (an idle loop sleeps; ``run_in_loop`` and signals wake it through a Waker fd);
2. dispatch the polled fd events straight to the registrations' bound handlers, then run the
   ``after_io`` callbacks (output the handlers gathered, flushed once for all of them);
3. move the timers that are due, then the callbacks queued by ``run_in_loop``, to the ready queue;
4. run the callbacks that were ready at this point; ones they schedule wait for the next pass.

Callbacks run in the ``contextvars`` context captured when they were scheduled. An exception
from a callback or fd handler is reported through the loop's exception handler (by default the
``thor.loop`` logger, with its traceback) and the loop carries on: one bad connection must not
stop a server. ``debug`` mode times every callback and fd batch and reports those that held the
loop longer than ``slow_callback_duration`` through ``debug_out``.

While callbacks keep scheduling more zero-delay callbacks, the IO poll (a system call) is done at
most every ``busy_poll_interval`` seconds rather than on every pass: chained callbacks then cost
what a burst does, and IO still gets its turn within a fraction of a millisecond.
"""

from __future__ import annotations

import logging
import signal
import threading
import time as _time
from collections import deque
from collections.abc import Callable
from contextvars import copy_context
from types import FrameType
from typing import TYPE_CHECKING, Any

from thor.events import EventEmitter

from ._errors import LoopError
from ._registration import EVENT_MASKS, FD_READABLE, FdHandler, FdRegistration, events_to_mask
from ._signals import SignalWakeup
from ._timers import ScheduledEvent, TimerHeap
from ._wakeup import Waker

if TYPE_CHECKING:
    import cProfile

    from typing_extensions import TypeVarTuple, Unpack

    Ts = TypeVarTuple("Ts")

__all__ = ["LoopBase"]

logger = logging.getLogger("thor.loop")

ExceptionHandler = Callable[["LoopBase", BaseException, str], object]

#: the longest single poll, in seconds: backends overflow on far deadlines (or infinity)
_MAX_POLL_TIMEOUT = 86400.0


class _WakerSource:
    """The loop's own registration for its Waker fd (not listed as a user fd)."""

    __slots__ = ("loop",)

    def __init__(self, loop: LoopBase) -> None:
        self.loop = loop

    def handle_fd_readable(self) -> None:
        # drain first: a wake() between clearing the flag and draining would be swallowed
        self.loop._waker.drain()
        self.loop._wake_pending = False

    def handle_fd_writable(self) -> None:
        pass

    handle_fd_error = handle_fd_close = handle_fd_writable


def _internal(registration: FdRegistration) -> bool:
    """True for the loop's own fds (wake-up, signals), which are not the application's."""
    return isinstance(registration.source, _WakerSource)


class _SignalSource(_WakerSource):
    """The loop's own registration for its signal wake-up pipe."""

    __slots__ = ()

    def handle_fd_readable(self) -> None:
        wakeup = self.loop._signal_wakeup
        if wakeup is not None:
            wakeup.drain()


class LoopBase(EventEmitter):
    """An event loop: runs scheduled callbacks and dispatches file descriptor readiness.

    Use ``thor.loop.make()`` to get one with the best backend of the platform; ``EpollLoop``,
    ``KqueueLoop``, ``PollLoop`` and ``SelectLoop`` pick one explicitly.

    Args:
        precision: seconds; kept for thor 0.17 compatibility. Timers fire on time whatever its
            value (0.17 checked them only every ``precision``); it now only sets the default
            threshold of debug mode's slow-callback report (twice the precision).

    Attributes:
        running: True while ``run()`` is running.
        debug: report callbacks and fd batches that block longer than ``slow_callback_duration``
            through ``debug_out``; when ``debug_profile`` is also set, with a cProfile of them.
        precision: see Args; must be > 0.
        slow_callback_duration: debug mode threshold in seconds (None: twice the precision).
        busy_poll_interval: at most this many seconds between IO polls while callbacks keep
            the loop busy.

    Events:
        start (): just before the loop starts running; once per ``run()``.
        stop (): after ``stop()`` dropped scheduled callbacks and registered fds; once per stop.
    """

    busy_poll_interval: float = 0.0005
    slow_callback_duration: float | None = None
    debug_profile: bool = False

    def __init__(self, precision: float | None = None) -> None:
        EventEmitter.__init__(self)
        self.set_max_listeners(0)  # every HttpClient listens for 'stop'
        self._precision = 0.1
        if precision is not None:
            self.precision = precision
        self.running = False
        self.debug = False
        self._ready: deque[ScheduledEvent] = deque()
        self._timers = TimerHeap()
        self._async_queue: deque[ScheduledEvent] = deque()
        self._after_io: deque[Callable[[], object]] = deque()
        self._registrations: dict[int, FdRegistration] = {}
        # how many of them are the application's (not _internal): kept by _fd_register and
        # _fd_unregister, so fd_count() is O(1) and dispatch pays nothing for it
        self._user_fds = 0
        self._io_generation = 0
        self._thread_id: int | None = None
        self._exception_handler: ExceptionHandler | None = None
        self._signal_handlers: dict[int, tuple[Callable[..., object], tuple[Any, ...], Any]] = {}
        self._signal_wakeup: SignalWakeup | None = None
        self._closed = False
        self._waker = Waker()
        self._wake_pending = False
        self._waker_fd = self._waker.fileno()
        self._fd_register(self._waker_fd, EVENT_MASKS["fd_readable"], _WakerSource(self))

    # -- settings -------------------------------------------------------------------------------

    @property
    def precision(self) -> float:
        """Seconds; see the class docstring. Writable; must be > 0."""
        return self._precision

    @precision.setter
    def precision(self, value: float) -> None:
        if not value > 0:
            raise ValueError(f"precision must be > 0 seconds, not {value!r}")
        self._precision = value

    #: The loop's clock: ``loop.time()`` is ``time.monotonic()`` seconds; deadlines are on this
    #: clock. (The C function itself rather than a method calling it: proxies read the clock
    #: several times per request.)
    time = staticmethod(_time.monotonic)

    # -- running --------------------------------------------------------------------------------

    def run(self) -> None:
        """Run until ``stop()`` is called. Emits ``'start'`` first.

        Raises:
            LoopError: the loop is already running (also when stopped from a callback whose
                ``run()`` has not returned yet: no nested loops), or was closed.
        """
        if self.running or self._thread_id is not None:
            raise LoopError("this loop is already running")
        if self._closed:
            raise LoopError("this loop is closed")
        self._thread_id = threading.get_ident()
        self.running = True
        try:
            try:
                self.emit("start")
            except Exception as exc:
                self._report(exc, "a 'start' listener")
            self._run_until_stopped()
            if self._after_io:  # output gathered in the pass that stopped the loop
                self._run_after_io()
        finally:
            self.running = False
            self._thread_id = None

    def stop(self) -> None:
        """Stop running: drop scheduled callbacks and queued ``run_in_loop`` calls, forget every
        registered fd (sockets are not closed), then emit ``'stop'``. Pending ``after_io``
        callbacks are kept: they still run (see ``after_io``)."""
        self.running = False
        for event in self._ready:
            event._cancelled = True
        self._ready.clear()
        for event in self._timers.live():
            event._cancelled = True
        self._timers.clear()
        self._async_queue.clear()
        for fd in [fd for fd, reg in self._registrations.items() if not _internal(reg)]:
            self._fd_unregister(fd)
        self.emit("stop")

    def close(self) -> None:
        """Release the loop's own resources (its poller and wake-up fd). Idempotent.

        Raises:
            LoopError: the loop is running.
        """
        if self.running:
            raise LoopError("cannot close a running loop")
        if self._closed:
            return
        for signum in list(self._signal_handlers):
            self.remove_signal_handler(signum)
        for fd in list(self._registrations):
            self._fd_unregister(fd)
        self._after_io.clear()
        self._waker.close()
        self._backend_close()
        self._closed = True

    def _run_until_stopped(self) -> None:
        """The loop proper: passes (see the module docstring) until ``running`` goes False.

        Written as one function with locals, since every pass runs it: a chain of zero-delay
        callbacks costs one pass each.
        """
        ready = self._ready
        async_queue = self._async_queue
        after_io = self._after_io
        timers = self._timers
        heap = timers._heap
        monotonic = _time.monotonic
        poll = self._poll
        dispatch = self._dispatch
        busy_poll_interval = self.busy_poll_interval
        last_poll = 0.0
        while self.running:
            if ready or async_queue or after_io:
                now = monotonic()
                if now - last_poll < busy_poll_interval:
                    events = None
                else:
                    last_poll = now
                    events = poll(0)
            else:
                deadline = timers.next_deadline() if heap else None
                if deadline is None:
                    events = poll(None)
                else:
                    delay = deadline - monotonic()
                    if delay > _MAX_POLL_TIMEOUT:  # noqa: PLR1730 (min(): a builtin call per turn)
                        delay = _MAX_POLL_TIMEOUT
                    events = poll(delay if delay > 0 else 0)
                now = last_poll = monotonic()
            if events:  # timers are then checked against the time the poll returned
                if self.debug:
                    self._dispatch_debug(events)
                else:
                    dispatch(events)
            if after_io:
                self._run_after_io()
            if heap and heap[0][0] <= now + 1e-6:
                timers.pop_due(now + 1e-6, ready)
            if async_queue:
                popleft = async_queue.popleft
                for _ in range(len(async_queue)):
                    ready.append(popleft())
            if not ready:
                continue
            if self.debug:
                self._run_ready_debug()
                continue
            popleft = ready.popleft
            for _ in range(len(ready)):
                event = popleft()
                if event._cancelled:
                    continue
                event.fired = True
                args = event._args
                try:
                    # (spelt out: run(f, *args) builds a new tuple per call)
                    if not args:
                        event._context.run(event._callback)
                    elif len(args) == 1:
                        event._context.run(event._callback, args[0])
                    else:
                        event._context.run(event._callback, *args)
                except Exception as exc:
                    self._report(exc, f"callback {event._callback!r}")
                if not self.running:  # a callback may have stopped the loop
                    break  # type: ignore[unreachable]

    def _run_after_io(self) -> None:
        # All of them, even when one stopped the loop: they write what the pass produced.
        after_io = self._after_io
        debug = self.debug
        for _ in range(len(after_io)):  # (ones added meanwhile wait for the next pass)
            callback = after_io.popleft()
            if debug:
                started = _time.perf_counter()
                profile = self._start_profile()
            try:
                callback()
            except Exception as exc:
                self._report(exc, f"after_io callback {callback!r}")
            finally:
                if debug:
                    name = getattr(callback, "__qualname__", repr(callback))
                    message = "long after_io delay ({:.2f}): " + name.replace("{", "{{")
                    self._check_slow(started, profile, message)

    def _dispatch_debug(self, events: list[Any]) -> None:
        started = _time.perf_counter()
        profile = self._start_profile()
        try:
            self._dispatch(events)
        finally:
            self._check_slow(started, profile, "long fd delay ({:.2f})")

    def _run_ready_debug(self) -> None:
        ready = self._ready
        for _ in range(len(ready)):
            event = ready.popleft()
            if event._cancelled:
                continue
            event.fired = True
            name = getattr(event._callback, "__qualname__", repr(event._callback))
            message = "long scheduled event delay ({:.2f}): " + name.replace("{", "{{")
            started = _time.perf_counter()
            profile = self._start_profile()
            try:
                event._context.run(event._callback, *event._args)
            except Exception as exc:
                self._report(exc, f"callback {event._callback!r}")
            finally:
                self._check_slow(started, profile, message)
            if not self.running:
                break
        pending = len(self._timers) + len(ready)
        if pending > 500:
            self.debug_out(f"{pending} events scheduled", None)

    def _start_profile(self) -> cProfile.Profile | None:
        if not self.debug_profile:
            return None
        import cProfile  # noqa: PLC0415 - only in debug mode

        profile = cProfile.Profile()
        try:
            profile.enable()
        except ValueError:  # another profiler is active
            return None
        return profile

    def _check_slow(self, started: float, profile: cProfile.Profile | None, message: str) -> None:
        elapsed = _time.perf_counter() - started
        if profile is not None:
            profile.disable()
        limit = self.slow_callback_duration
        if limit is None:
            limit = 2 * self._precision
        if elapsed > limit:
            self.debug_out(message.format(elapsed), profile)

    def debug_out(self, message: str, profile: cProfile.Profile | None) -> None:
        """Debug mode's report of a callback or fd batch that held the loop too long.

        Applications may replace it on the instance (``loop.debug_out = my_printer``); the default
        logs ``message`` at WARNING level to the ``thor.loop`` logger.

        Args:
            message: e.g. ``"long scheduled event delay (0.31): handler"``.
            profile: a cProfile.Profile of the slow stretch when ``debug_profile`` is set,
                else None.
        """
        logger.warning("thor loop debug: %s", message)

    # -- errors -----------------------------------------------------------------------------------

    def set_exception_handler(self, handler: ExceptionHandler | None) -> None:
        """Route exceptions raised by callbacks and fd handlers to ``handler(loop, exc, where)``.

        None restores the default: log with the traceback to the ``thor.loop`` logger.
        """
        self._exception_handler = handler

    def _report(self, exc: Exception, where: str) -> None:
        handler = self._exception_handler
        if handler is not None:
            try:
                handler(self, exc, where)
                return
            except Exception as handler_exc:
                logger.error("exception handler failed", exc_info=handler_exc)
        logger.error("exception in %s on %r", where, self, exc_info=exc)

    # -- scheduling -----------------------------------------------------------------------------

    def schedule(
        self, delta: float, callback: Callable[[Unpack[Ts]], object], *args: Unpack[Ts]
    ) -> ScheduledEvent:
        """Call ``callback(*args)`` in ``delta`` seconds, in the context current now.

        Callbacks with equal deadlines run in the order they were scheduled.

        Returns:
            A ScheduledEvent; its ``delete()`` cancels the call.

        Raises:
            ValueError: ``delta`` is negative.
        """
        if delta > 0:
            event = ScheduledEvent(self, callback, args, _time.monotonic() + delta, copy_context())
            self._timers.push(event)
            return event
        if not delta == 0:  # negative, or NaN
            raise ValueError(f"cannot schedule {delta!r} seconds in the past")
        event = ScheduledEvent(self, callback, args, 0.0, copy_context())
        self._ready.append(event)
        return event

    def after_io(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once, right after the IO events of the current pass have been
        dispatched (before timers and scheduled callbacks); called outside a pass's dispatch,
        after the next pass's (which then polls without waiting).

        For output that fd handlers gather, to be written once for all of them: a server
        sends the responses to every connection read in a pass close together. Cheaper than
        ``schedule(0, ...)`` (no ScheduledEvent, no context captured: the callback runs in the
        loop's context) and not cancellable. An exception is reported like a callback's; debug
        mode times it like one. ``stop()`` does not drop pending ones (they hold output that
        was already produced): the pass that stops the loop runs them, and so does ``run()``
        as it returns; ``close()`` drops them.
        """
        self._after_io.append(callback)

    def run_in_loop(self, callback: Callable[[Unpack[Ts]], object], *args: Unpack[Ts]) -> None:
        """Call ``callback(*args)`` on the loop's thread, as soon as possible. Thread-safe.

        From another thread, this wakes a sleeping loop at once. The callback runs in the
        context of the calling thread, as it was at this call.
        """
        event = ScheduledEvent(self, callback, args, 0.0, copy_context())
        self._async_queue.append(event)
        if threading.get_ident() != self._thread_id:
            self._wake()

    def _wake(self) -> None:
        if not self._wake_pending:
            self._wake_pending = True
            self._waker.wake()

    def scheduled_events(self) -> list[tuple[float, Callable[..., object]]]:
        """The pending callbacks as ``(seconds until due, callback)``, soonest first."""
        now = _time.monotonic()
        pending: list[tuple[float, Callable[..., object]]] = [
            (0.0, callback) for callback in self._after_io
        ]
        pending += [(0.0, event._callback) for event in self._ready if not event._cancelled]
        pending += [(0.0, event._callback) for event in self._async_queue]
        pending += [(max(0.0, event._when - now), event._callback) for event in self._timers.live()]
        return pending

    # -- signals --------------------------------------------------------------------------------

    def add_signal_handler(
        self, signum: int, callback: Callable[[Unpack[Ts]], object], *args: Unpack[Ts]
    ) -> None:
        """Run ``callback(*args)`` in the loop each time the process receives ``signum``.

        Typically ``loop.add_signal_handler(signal.SIGTERM, server.graceful_shutdown)``. The
        loop is woken at once; the callback runs on the loop's thread, not in the signal handler.
        Must be called from the main thread (a limit of Python's ``signal`` module).

        Raises:
            ValueError: not on the main thread, or ``signum`` cannot be caught.
        """
        previous = signal.signal(signum, self._on_signal)
        if signum in self._signal_handlers:
            previous = self._signal_handlers[signum][2]
        self._signal_handlers[signum] = (callback, args, previous)
        if self._signal_wakeup is None:
            self._signal_wakeup = SignalWakeup()
            self._fd_register(self._signal_wakeup.fileno(), FD_READABLE, _SignalSource(self))

    def remove_signal_handler(self, signum: int) -> bool:
        """Stop handling ``signum``; the handler in place before is restored.

        Returns:
            True when a handler was removed.
        """
        entry = self._signal_handlers.pop(signum, None)
        if entry is None:
            return False
        signal.signal(signum, entry[2] if entry[2] is not None else signal.SIG_DFL)
        wakeup = self._signal_wakeup
        if not self._signal_handlers and wakeup is not None:
            self._signal_wakeup = None
            self._fd_unregister(wakeup.fileno())
            wakeup.close()
        return True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        entry = self._signal_handlers.get(signum)
        if entry is None:
            return
        event = ScheduledEvent(self, entry[0], entry[1], 0.0, copy_context())
        self._async_queue.append(event)
        self._wake()

    # -- file descriptors: classic primitives ---------------------------------------------------

    def register_fd(self, fd: int, events: str | list[str], target: FdHandler) -> None:
        """Watch ``fd`` for ``events`` (classic names: ``'fd_readable'``...) on behalf of
        ``target``, whose ``handle_fd_*`` methods are called when it is ready.
        Registering an fd again replaces its registration."""
        self._fd_register(fd, events_to_mask(events), target)

    def unregister_fd(self, fd: int) -> None:
        """Stop watching ``fd``. Idempotent."""
        self._fd_unregister(fd)

    def event_add(self, fd: int, event: str) -> None:
        """Add one event to ``fd``'s interest. Silent for an fd that is not registered."""
        registration = self._registrations.get(fd)
        if registration is not None:
            self._fd_set_mask(fd, registration.mask | events_to_mask(event))

    def event_del(self, fd: int, event: str) -> None:
        """Remove one event from ``fd``'s interest. Silent for an fd that is not registered."""
        registration = self._registrations.get(fd)
        if registration is not None:
            self._fd_set_mask(fd, registration.mask & ~events_to_mask(event))

    def registered_fd_handlers(self) -> list[Any]:
        """The sources (usually EventSources) of every registered fd."""
        return [reg.source for reg in self._registrations.values() if not _internal(reg)]

    def fd_count(self) -> int:
        """How many fds the application has registered (the loop's own wake-up and signal fds
        are not counted). O(1)."""
        return self._user_fds

    # -- file descriptors: the fast internal interface ------------------------------------------

    def _fd_register(self, fd: int, mask: int, source: FdHandler) -> FdRegistration:
        """Register (or re-register) ``fd`` with an interest mask; returns the registration."""
        if self._closed:
            raise LoopError("this loop is closed")
        old = self._registrations.get(fd)
        registration = FdRegistration(fd, mask, source, self._io_generation)
        if old is None:
            self._backend_register(fd, mask)
        else:
            self._backend_modify(fd, old.mask, mask)
            old.active = False
            if not _internal(old):
                self._user_fds -= 1
        self._registrations[fd] = registration
        if not _internal(registration):
            self._user_fds += 1
        return registration

    def _fd_set_mask(self, fd: int, mask: int) -> None:
        """Change the interest mask of a registered fd (no-op when unchanged, or when the loop
        no longer knows the fd, e.g. after ``stop()``)."""
        registration = self._registrations.get(fd)
        if registration is not None and registration.mask != mask:
            old = registration.mask
            registration.mask = mask
            self._backend_modify(fd, old, mask)

    def _fd_unregister(self, fd: int) -> None:
        registration = self._registrations.pop(fd, None)
        if registration is not None:
            registration.active = False
            if not _internal(registration):
                self._user_fds -= 1
            self._backend_unregister(fd, registration.mask)

    # -- what a backend provides ------------------------------------------------------------------

    def _backend_register(self, fd: int, mask: int) -> None:
        raise NotImplementedError

    def _backend_modify(self, fd: int, old_mask: int, mask: int) -> None:
        raise NotImplementedError

    def _backend_unregister(self, fd: int, mask: int) -> None:
        raise NotImplementedError

    def _backend_close(self) -> None:
        raise NotImplementedError

    def _poll(self, timeout: float | None) -> list[Any]:
        """Wait up to ``timeout`` seconds (None: no limit) and return the backend's events."""
        raise NotImplementedError

    def _dispatch(self, events: list[Any]) -> None:
        """Call the handlers of the events ``_poll`` returned."""
        raise NotImplementedError

    def __repr__(self) -> str:
        state = "running" if self.running else "closed" if self._closed else "idle"
        return (
            f"<{type(self).__name__} {state} fds={self.fd_count()} "
            f"timers={len(self._timers)} ready={len(self._ready)}>"
        )
