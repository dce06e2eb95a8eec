"""Shared support of the thor.tcp tests (test_tcp_*.py): a fresh loop per test and the network
objects a test makes on it, with a safety timer that fails the test instead of letting it hang.

The test modules import this file by name (``import tcp_fixtures as tf``): pytest runs with
``--import-mode=importlib``, and conftest.py puts this directory on ``sys.path``; nothing here is
collected as tests.

Rules the tests follow (STYLE.md §6):

- everything is driven from the loop: a scenario is a chain of listeners and loop timers, and
  ``Net.run()`` runs the loop until the scenario calls ``Net.done()``; no test sleeps to wait
  for something to happen;
- every run has a safety timer; if it fires, the loop is stopped and the test FAILS;
- listeners never assert (an exception in a listener is the loop's business: it would be
  logged, not fail the test); they record, and the test asserts after ``run()``. Exceptions that
  do escape a listener are caught by the loop's exception handler, which ``Net`` routes back to
  the test: the run stops and the exception is re-raised from ``run()``;
- whatever a test made (servers, connections, clients, plain sockets) is closed afterwards, so
  no ResourceWarning leaks into a later test.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import thor.loop
from thor.loop import LoopBase, ScheduledEvent
from thor.tcp import TcpClient, TcpConnection, TcpServer

BACKENDS = thor.loop.available_backends()

KIB = 1024
MIB = 1024 * KIB


def _ipv6_loopback_works() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


HAS_IPV6 = _ipv6_loopback_works()
needs_ipv6 = pytest.mark.skipif(not HAS_IPV6, reason="this machine has no IPv6 loopback (::1)")

#: the loopback hosts, as TcpServer/TcpClient take them; parametrize with ``HOSTS``
HOSTS = [
    pytest.param(b"127.0.0.1", id="ipv4"),
    pytest.param(b"::1", id="ipv6", marks=needs_ipv6),
]


def family_of(host: bytes) -> socket.AddressFamily:
    return socket.AF_INET6 if b":" in host else socket.AF_INET


def block(index: int, size: int = 64 * KIB) -> bytes:
    """Chunk ``index`` of a test stream: its index repeated, so any loss, duplication or
    reordering of chunks changes what the reader sees."""
    return index.to_bytes(8, "big") * (size // 8)


def fill_kernel(conn: TcpConnection) -> int:
    """Send to ``conn``'s socket directly (thor's queue stays empty) until the kernel takes
    no more, the peer not reading. Returns the number of bytes the kernel took."""
    total = 0
    while True:
        try:
            total += conn.socket.send(b"k" * (64 * KIB))
        except BlockingIOError:
            return total


def has_unread(sock: socket.socket) -> bool:
    """Whether bytes are waiting in ``sock``'s receive queue (without taking them)."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except (BlockingIOError, InterruptedError):
        return False


def cpu_seconds() -> float:
    """CPU time this process used so far (user + system, all threads)."""
    return time.process_time()


class Net:
    """A test's loop and the network objects it made on it.

    Attributes:
        loop: the fresh loop of this test.
        conns: every TcpConnection handed out by a server or client made here.
    """

    def __init__(self, loop: LoopBase) -> None:
        self.loop = loop
        self.conns: list[TcpConnection] = []
        self.servers: list[TcpServer] = []
        self.clients: list[TcpClient] = []
        self.socks: list[socket.socket] = []
        self.errors: list[tuple[BaseException, str]] = []
        self.failures: list[str] = []
        self.expired: str | None = None
        loop.set_exception_handler(self._loop_exception)

    # -- making things ------------------------------------------------------------------------

    def server(
        self,
        host: bytes = b"127.0.0.1",
        port: int = 0,
        cls: type[TcpServer] = TcpServer,
        **kwargs: Any,
    ) -> TcpServer:
        server = cls(host, port, loop=self.loop, **kwargs)
        self.servers.append(server)
        server.on("connect", self.conns.append)
        return server

    def client(self) -> TcpClient:
        client = TcpClient(self.loop)
        self.clients.append(client)
        client.on("connect", self.conns.append)
        return client

    def sock(self, sock: socket.socket) -> socket.socket:
        """Close ``sock`` after the test."""
        self.socks.append(sock)
        return sock

    def raw_connect(self, host: bytes, port: int) -> socket.socket:
        """A plain blocking client socket connected to ``host``:``port`` (the kernel completes
        the handshake from the listen queue, so this works before the loop runs)."""
        sock = self.sock(socket.socket(family_of(host), socket.SOCK_STREAM))
        sock.settimeout(5.0)
        sock.connect((host.decode(), port))
        return sock

    def closed_port(self, host: bytes = b"127.0.0.1") -> int:
        """A port on ``host`` where nothing listens: bound (so nobody else takes it during the
        test) but not listening, so connecting there is refused."""
        sock = self.sock(socket.socket(family_of(host), socket.SOCK_STREAM))
        sock.bind((host.decode(), 0))
        port: int = sock.getsockname()[1]
        return port

    def hanging_port(self, host: bytes = b"127.0.0.1") -> int | None:
        """A port on ``host`` where a connect hangs: a listener whose accept queue is full
        (Linux then drops new SYNs). None when this kernel completes such connects anyway."""
        family = family_of(host)
        listener = self.sock(socket.socket(family, socket.SOCK_STREAM))
        listener.bind((host.decode(), 0))
        listener.listen(0)
        port: int = listener.getsockname()[1]
        for _ in range(8):
            filler = self.sock(socket.socket(family, socket.SOCK_STREAM))
            filler.setblocking(False)
            filler.connect_ex((host.decode(), port))
            # a probe of the kernel's behaviour, not synchronisation of the code under test
            _, writable, _ = select.select([], [filler], [], 0.2)
            if not writable:
                return port
        return None

    def pair(
        self,
        ready: Callable[[TcpConnection, TcpConnection], object],
        host: bytes = b"127.0.0.1",
        server: TcpServer | None = None,
        connect: Callable[[TcpClient, TcpServer], object] | None = None,
    ) -> TcpServer:
        """Connect a new client to ``server`` (a new one on ``host`` by default) and call
        ``ready(server_side, client_side)`` once both ends of that connection are up."""
        server = server or self.server(host)
        client = self.client()
        ends: dict[str, TcpConnection] = {}

        def arrived(side: str, conn: TcpConnection) -> None:
            ends[side] = conn
            if len(ends) == 2:
                ready(ends["server"], ends["client"])

        server.once("connect", lambda conn: arrived("server", conn))
        client.once("connect", lambda conn: arrived("client", conn))
        client.on("connect_error", lambda *err: self.fail(f"connect_error {err!r}"))
        if connect is None:
            client.connect(host, server.port)
        else:
            connect(client, server)
        return server

    # -- driving ------------------------------------------------------------------------------

    def later(self, delay: float, callback: Callable[..., object], *args: Any) -> ScheduledEvent:
        return self.loop.schedule(delay, callback, *args)

    def when(
        self,
        predicate: Callable[[], bool],
        then: Callable[..., object],
        *args: Any,
        interval: float = 0.005,
    ) -> None:
        """Call ``then(*args)`` once ``predicate()`` holds, checking on a loop timer."""

        def check() -> None:
            if predicate():
                then(*args)
            else:
                self.loop.schedule(interval, check)

        check()

    def done(self, settle: float = 0.0) -> None:
        """End the scenario: stop the loop, after ``settle`` seconds if given (a window in
        which an event that must not come again would show up)."""
        if settle:
            self.loop.schedule(settle, self.loop.stop)
        else:
            self.loop.stop()

    def fail(self, message: str) -> None:
        """Fail the test from inside the loop (the run stops; ``run()`` reports it)."""
        self.failures.append(message)
        self.loop.stop()

    def run(self, timeout: float = 5.0, what: str = "the scenario did not finish") -> None:
        """Run the loop until the scenario calls ``done()``; fail the test if the safety timer
        fires first, or a listener raised, or the scenario called ``fail()``."""

        def expire() -> None:
            self.expired = what
            self.loop.stop()

        self.loop.schedule(timeout, expire)
        self.loop.run()
        if self.errors:
            raise self.errors[0][0]
        if self.failures:
            pytest.fail("; ".join(self.failures), pytrace=False)
        if self.expired is not None:
            pytest.fail(
                f"safety timer fired after {timeout} s on {type(self.loop).__name__}: "
                f"{self.expired}",
                pytrace=False,
            )

    def _loop_exception(self, loop: LoopBase, exc: BaseException, where: str) -> None:
        self.errors.append((exc, where))
        loop.stop()

    # -- cleaning up --------------------------------------------------------------------------

    def close(self) -> None:
        for server in self.servers:
            server.remove_listeners()
        for conn in self.conns:
            conn.remove_listeners()
            conn.abort()
        for server in self.servers:
            server.shutdown()
        for client in self.clients:
            client.remove_listeners()
            client.cancel()  # so that a test that failed mid-connect leaks no socket
        for sock in self.socks:
            with contextlib.suppress(OSError):
                sock.close()


def open_net(backend: str | None = None) -> Iterator[Net]:
    """The body of a test module's ``net`` fixture: a Net on a fresh loop of ``backend``."""
    loop = thor.loop.make(backend=backend)
    net = Net(loop)
    try:
        yield net
    finally:
        try:
            net.close()
        finally:
            loop.close()


def assert_pause_events_alternate(events: list[tuple[bool, int]], limit: int) -> None:
    """True, False, True, ... ending with False; True with more than ``limit`` bytes queued,
    False with at most half of that."""
    flags = [paused for paused, _ in events]
    assert flags == [True, False] * (len(flags) // 2), f"not strictly alternating: {events}"
    for paused, queued in events:
        if paused:
            assert queued > limit, f"'pause' (True) with only {queued} bytes queued: {events}"
        else:
            assert queued <= limit // 2, f"'pause' (False) with {queued} bytes queued: {events}"
