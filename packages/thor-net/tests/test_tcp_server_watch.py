"""When an accepted connection goes on the loop: after the ``'connect'`` listeners, and only if
it is still open and wants something (TcpServer makes it with ``watch=False``, then calls
``_watch()``). A listener that reads, answers and aborts at once costs the poller nothing; one
that leaves the connection paused still hears the peer's FIN; one that writes more than the
socket takes still has it flushed.

Real loopback sockets on a fresh loop per backend (``net`` fixture, see tcp_fixtures.py).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
import tcp_fixtures as tf
from tcp_fixtures import Net

from thor.tcp import TcpConnection


@pytest.fixture(params=tf.BACKENDS)
def net(request: pytest.FixtureRequest) -> Iterator[Net]:
    yield from tf.open_net(request.param)


def count_registrations(net: Net) -> list[int]:
    """Record the fd of every registration the loop is asked for from now on."""
    fds: list[int] = []
    register = net.loop._fd_register

    def recording(fd: int, mask: int, source: Any) -> Any:
        fds.append(fd)
        return register(fd, mask, source)

    net.loop._fd_register = recording  # type: ignore[method-assign]
    return fds


def test_a_connection_answered_and_aborted_in_connect_is_never_registered(net: Net) -> None:
    server = net.server()
    seen: dict[str, Any] = {}

    def answer(conn: TcpConnection) -> None:
        seen["fd"] = conn.socket.fileno()
        conn.on("data", lambda data: seen.setdefault("data", data))
        conn.handle_fd_readable()  # the bytes are there already: read them at once
        conn.write(b"you said " + seen["data"])
        conn.abort()
        net.done()

    server.on("connect", answer)
    fds = count_registrations(net)
    client = net.raw_connect(b"127.0.0.1", server.port)
    client.sendall(b"hello")
    net.run()
    assert seen["data"] == b"hello"
    assert seen["fd"] not in fds
    assert client.recv(100) == b"you said hello"
    assert client.recv(100) == b""  # closed


def test_a_connection_left_paused_is_watched_and_hears_the_fin(net: Net) -> None:
    server = net.server()
    seen: dict[str, Any] = {}
    fds = count_registrations(net)

    def accepted(conn: TcpConnection) -> None:
        seen["fd"] = conn.socket.fileno()
        seen["registered_during_connect"] = seen["fd"] in fds
        conn.on("close", lambda: (seen.setdefault("close", True), conn.close(), net.done()))

    server.on("connect", accepted)
    client = net.raw_connect(b"127.0.0.1", server.port)
    net.later(0.05, client.shutdown, socket.SHUT_WR)
    net.run(what="'close' never came for a paused connection")
    assert seen["registered_during_connect"] is False
    assert seen["fd"] in fds  # registered after 'connect', to watch the hang-up
    assert seen["close"] is True


def test_a_connection_resumed_in_connect_is_registered_once_and_reads(net: Net) -> None:
    server = net.server()
    seen: dict[str, Any] = {"data": b""}
    fds = count_registrations(net)

    def accepted(conn: TcpConnection) -> None:
        seen["fd"] = conn.socket.fileno()
        conn.on("data", lambda data: seen.update(data=seen["data"] + data))
        conn.on("close", lambda: (conn.close(), net.done()))
        conn.pause(False)

    server.on("connect", accepted)
    client = net.raw_connect(b"127.0.0.1", server.port)
    net.later(0.02, client.sendall, b"abc")
    net.later(0.05, client.shutdown, socket.SHUT_WR)
    net.run()
    assert seen["data"] == b"abc"
    assert fds.count(seen["fd"]) == 1


def test_a_write_the_socket_does_not_take_in_connect_is_flushed(net: Net) -> None:
    server = net.server()
    payload = b"x" * (8 * 1024 * 1024)  # far more than the socket buffers take at once

    def accepted(conn: TcpConnection) -> None:
        conn.write(payload)
        assert conn.write_buffer_size > 0
        conn.close()

    server.on("connect", accepted)
    client = net.raw_connect(b"127.0.0.1", server.port)
    client.setblocking(False)
    received = bytearray()

    def drain() -> None:
        while True:
            try:
                data = client.recv(1 << 20)
            except BlockingIOError:
                net.later(0.002, drain)
                return
            if not data:
                net.done()
                return
            received.extend(data)

    net.later(0.01, drain)
    net.run(timeout=10.0, what="the queued output was never flushed")
    assert len(received) == len(payload)


class OwnConstructor(TcpConnection):
    """A connection class with a constructor of its own, written before ``watch`` existed."""

    def __init__(self, sock: socket.socket, address: Any, loop: Any = None) -> None:
        TcpConnection.__init__(self, sock, address, loop)
        self.made_here = True


def test_a_connection_class_with_its_own_constructor_is_made_as_before(net: Net) -> None:
    server = net.server()
    server.connection_class = OwnConstructor
    seen: dict[str, Any] = {}

    def accepted(conn: TcpConnection) -> None:
        seen["made_here"] = getattr(conn, "made_here", False)
        conn.on("data", conn.write)
        conn.on("close", lambda: (conn.close(), net.done()))
        conn.pause(False)

    server.on("connect", accepted)
    client = net.raw_connect(b"127.0.0.1", server.port)
    client.sendall(b"echo me")
    net.later(0.05, client.shutdown, socket.SHUT_WR)
    net.run()
    assert seen["made_here"] is True
    assert client.recv(100) == b"echo me"


class Refusing(TcpConnection):
    def __init__(self, sock: socket.socket, address: Any, loop: Any = None) -> None:
        raise RuntimeError("no connection today")


def test_a_connection_class_that_raises_closes_the_accepted_socket(net: Net) -> None:
    server = net.server()
    server.connection_class = Refusing
    client = net.raw_connect(b"127.0.0.1", server.port)
    net.later(0.1, net.done)
    with pytest.raises(RuntimeError, match="no connection today"):
        net.run()
    client.settimeout(2.0)
    assert client.recv(10) == b""  # closed by the server, not left open
