"""KqueueLoop's dispatch on a platform without kqueue: ``select.kqueue`` is emulated with poll(2)
after kqueue's documented level-triggered filters (EVFILT_READ fires while bytes are readable,
flagged EV_EOF once the peer shut its side; EVFILT_WRITE while writable), on real socket pairs.
This pins down what the backend does with each kevent; the kernel's side of kqueue is only
exercised where it exists (the conformance suite runs on it there)."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from thor.loop import FD_CLOSE, FD_READABLE, KqueueLoop

EV_ADD, EV_DELETE, EV_EOF, EV_ERROR = 0x1, 0x2, 0x8000, 0x4000
FILTER_READ, FILTER_WRITE = -1, -2
_RDHUP = getattr(select, "POLLRDHUP", 0x2000)


class KEvent:
    """A kevent as the loop builds and reads it."""

    def __init__(self, ident: int, filter: int, flags: int = 0) -> None:
        self.ident, self.filter, self.flags, self.fflags, self.data = ident, filter, flags, 0, 0


class EmulatedKqueue:
    """The filters of a kqueue, polled with poll(2)."""

    def __init__(self) -> None:
        self.filters: dict[int, set[int]] = {}

    def control(self, changes: Any, max_events: int, timeout: float | None = None) -> list[KEvent]:
        for change in changes or ():
            filters = self.filters.setdefault(change.ident, set())
            if change.flags & EV_DELETE:
                if change.filter not in filters:
                    raise FileNotFoundError(2, "no such filter")
                filters.discard(change.filter)
            else:
                filters.add(change.filter)
        if not max_events:
            return []
        poller = select.poll()
        for fd, filters in self.filters.items():
            mask = (select.POLLIN | _RDHUP) if FILTER_READ in filters else 0
            mask |= select.POLLOUT if FILTER_WRITE in filters else 0
            if mask:
                poller.register(fd, mask)
        events = []
        for fd, happened in poller.poll(None if timeout is None else timeout * 1000):
            filters = self.filters.get(fd, set())
            hung_up = happened & (select.POLLHUP | _RDHUP)
            if FILTER_READ in filters and happened & (select.POLLIN | select.POLLHUP | _RDHUP):
                events.append(KEvent(fd, FILTER_READ, EV_EOF if hung_up else 0))
            if FILTER_WRITE in filters and happened & (select.POLLOUT | select.POLLHUP):
                events.append(KEvent(fd, FILTER_WRITE, EV_EOF if happened & select.POLLHUP else 0))
        return events[:max_events]

    def close(self) -> None:
        self.filters.clear()


@pytest.fixture
def loop(monkeypatch: pytest.MonkeyPatch) -> Iterator[KqueueLoop]:
    if hasattr(select, "kqueue"):
        pytest.skip("this platform has kqueue: the conformance suite runs KqueueLoop on it")
    for name, value in {
        "kqueue": EmulatedKqueue,
        "kevent": KEvent,
        "KQ_EV_ADD": EV_ADD,
        "KQ_EV_DELETE": EV_DELETE,
        "KQ_EV_EOF": EV_EOF,
        "KQ_EV_ERROR": EV_ERROR,
        "KQ_FILTER_READ": FILTER_READ,
        "KQ_FILTER_WRITE": FILTER_WRITE,
    }.items():
        monkeypatch.setattr(select, name, value, raising=False)
    new_loop = KqueueLoop()
    yield new_loop
    new_loop.close()


class Target:
    """A loop-level fd target that records the calls; on ``close`` it takes its fd off the
    loop when ``park`` (as a paused TcpConnection with bytes waiting does)."""

    def __init__(self, loop: KqueueLoop, sock: socket.socket, park: bool = True) -> None:
        self.loop, self.sock, self.park = loop, sock, park
        self.calls: list[str] = []

    def handle_fd_readable(self) -> None:
        self.calls.append("readable")
        self.sock.recv(100)

    def handle_fd_writable(self) -> None:
        self.calls.append("writable")

    def handle_fd_error(self) -> None:
        self.calls.append("error")

    def handle_fd_close(self) -> None:
        self.calls.append("close")
        if self.park:
            self.loop._fd_unregister(self.sock.fileno())


def run_briefly(loop: KqueueLoop, seconds: float = 0.1) -> None:
    """Run the loop for ``seconds``."""
    loop.schedule(seconds, loop.stop)
    loop.run()


def test_bytes_for_an_fd_watched_only_for_close_are_shown_to_its_source(
    loop: KqueueLoop,
) -> None:
    """A paused reader (interest in fd_close only) receives bytes without a FIN: the read
    filter fires; the source is told (handle_fd_close, as select's backend does) so it can look
    and step aside, instead of the filter firing, unheard, on every pass."""
    inside, outside = socket.socketpair()
    with inside, outside:
        target = Target(loop, inside)
        loop._fd_register(inside.fileno(), FD_CLOSE, target)
        outside.send(b"bytes, no FIN")
        run_briefly(loop)
        assert target.calls == ["close"]
        assert loop.fd_count() == 0


def test_the_peers_fin_reaches_an_fd_watched_only_for_close(loop: KqueueLoop) -> None:
    inside, outside = socket.socketpair()
    with inside, outside:
        target = Target(loop, inside)
        loop._fd_register(inside.fileno(), FD_CLOSE, target)
        outside.shutdown(socket.SHUT_WR)
        run_briefly(loop)
        assert target.calls == ["close"]


def test_readable_interest_reads(loop: KqueueLoop) -> None:
    inside, outside = socket.socketpair()
    with inside, outside:
        target = Target(loop, inside, park=False)
        loop._fd_register(inside.fileno(), FD_READABLE | FD_CLOSE, target)
        outside.send(b"data")
        run_briefly(loop)
        loop._fd_unregister(inside.fileno())
        assert target.calls == ["readable"]
