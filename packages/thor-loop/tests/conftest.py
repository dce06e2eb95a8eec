"""Fixtures of the thor.loop backend conformance suite.

Every test taking ``loop`` runs once per polling backend available on this machine (epoll, poll
and select on Linux; kqueue, poll and select on the BSDs and macOS). The fixture makes a fresh
loop with ``thor.loop.make(backend=...)``, closes it afterwards, and fails the test if it left
file descriptors registered: a test either unregisters what it registered or stops the loop
(``stop()`` forgets every fd).

Tests that must not hang when the loop fails to wake up arm a watchdog: a loop timer
(``watchdog``) when timers are allowed, or an fd written from another thread (``io_watchdog``)
when the point of the test is a loop sleeping with no timer at all. A watchdog that fires stops
the loop and fails the test (at its ``check()``, or after the test if it was not checked); it
never lets it pass.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

import thor.loop
from thor.loop import EventSource, LoopBase, ScheduledEvent

BACKENDS = thor.loop.available_backends()


@pytest.fixture(params=BACKENDS)
def loop(request: pytest.FixtureRequest) -> Iterator[LoopBase]:
    """A fresh loop per backend; fails the test if it leaks registered fds."""
    new_loop = thor.loop.make(backend=request.param)
    try:
        yield new_loop
        assert not new_loop.running, "the loop is still running after the test"
        leaked = new_loop.fd_count()
        sources = new_loop.registered_fd_handlers()
    finally:
        new_loop.close()
    if leaked:
        pytest.fail(
            f"{type(new_loop).__name__}: the test left {leaked} fd(s) registered: {sources!r}",
            pytrace=False,
        )


SocketPairFactory = Callable[[], "tuple[socket.socket, socket.socket]"]


@pytest.fixture
def socketpair() -> Iterator[SocketPairFactory]:
    """A factory of connected, non-blocking socket pairs, all closed after the test."""
    made: list[socket.socket] = []

    def factory() -> tuple[socket.socket, socket.socket]:
        left, right = socket.socketpair()
        left.setblocking(False)
        right.setblocking(False)
        made.extend((left, right))
        return left, right

    yield factory
    for sock in made:
        sock.close()


class Watchdog:
    """A loop timer that stops a loop that did not finish in time, and records that it did."""

    def __init__(self, loop: LoopBase, seconds: float, what: str) -> None:
        self.loop = loop
        self.seconds = seconds
        self.what = what
        self.expired = False
        self.checked = False
        self.event: ScheduledEvent = loop.schedule(seconds, self._expire)

    def _expire(self) -> None:
        self.expired = True
        self.loop.stop()

    def check(self) -> None:
        """Fail the test if the watchdog had to stop the loop."""
        self.checked = True
        if self.expired:
            pytest.fail(f"timed out after {self.seconds} s: {self.what}", pytrace=False)


@pytest.fixture
def watchdog(loop: LoopBase) -> Iterator[Callable[..., Watchdog]]:
    """``arm(seconds=5.0, what="...")``: a Watchdog on ``loop``, checked after the test."""
    armed: list[Watchdog] = []

    def arm(seconds: float = 5.0, what: str = "the loop did not finish") -> Watchdog:
        dog = Watchdog(loop, seconds, what)
        armed.append(dog)
        return dog

    yield arm
    for dog in armed:
        if not dog.checked:
            dog.check()


class IoWatchdog:
    """A watchdog that needs no loop timer: another thread writes to a socket the loop watches.

    For tests of a loop that sleeps with no timer at all (a timer would give it a deadline).
    """

    def __init__(
        self, loop: LoopBase, pair: tuple[socket.socket, socket.socket], seconds: float, what: str
    ) -> None:
        self.loop = loop
        self.seconds = seconds
        self.what = what
        self.expired = False
        self.checked = False
        self._inside, self._outside = pair
        self.source = EventSource(loop)
        self.source.on("fd_readable", self._expire)
        self.source.register_fd(self._inside.fileno(), "fd_readable")
        self._thread = threading.Timer(seconds, self._outside.send, (b"!",))
        self._thread.daemon = True

    def start(self) -> None:
        self._thread.start()

    def _expire(self) -> None:
        self.expired = True
        self.loop.stop()

    def close(self) -> None:
        self._thread.cancel()
        if self._thread.is_alive():
            self._thread.join()
        self.source.unregister_fd()

    def check(self) -> None:
        """Fail the test if the watchdog had to stop the loop."""
        self.checked = True
        if self.expired:
            pytest.fail(f"timed out after {self.seconds} s: {self.what}", pytrace=False)


@pytest.fixture
def io_watchdog(
    loop: LoopBase, socketpair: SocketPairFactory
) -> Iterator[Callable[..., IoWatchdog]]:
    """``arm(seconds=5.0, what="...")``: a started IoWatchdog on ``loop``, closed after the test."""
    armed: list[IoWatchdog] = []

    def arm(seconds: float = 5.0, what: str = "the loop never woke up") -> IoWatchdog:
        dog = IoWatchdog(loop, socketpair(), seconds, what)
        armed.append(dog)
        dog.start()
        return dog

    yield arm
    for dog in armed:
        dog.close()
    for dog in armed:
        if not dog.checked:
            dog.check()


@pytest.fixture
def sigusr1() -> Iterator[list[int]]:
    """Saves and restores SIGUSR1's handler. Meanwhile a recording Python handler is installed,
    so a signal the loop failed to catch records itself instead of killing the test run.

    Yields the list the recording handler appends signal numbers to.
    """
    received: list[int] = []
    saved = signal.getsignal(signal.SIGUSR1)

    def record(signum: int, frame: object) -> None:
        received.append(signum)

    signal.signal(signal.SIGUSR1, record)
    try:
        yield received
    finally:
        signal.signal(signal.SIGUSR1, saved if saved is not None else signal.SIG_DFL)
