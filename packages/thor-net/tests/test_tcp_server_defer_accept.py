"""TcpServer.defer_accept over real loopback sockets: with it, a connection is handed over only
once its first bytes have arrived (so its first read has them), or after about the deferral's
seconds of silence; the option is set and cleared on the listening socket; bad values, Unix
sockets and a stopped server are answered as documented.

Driven from the test's loop (``net`` fixture, one per backend), as in test_tcp_server.py.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import tcp_fixtures as tf
from tcp_fixtures import Net

from thor.tcp import TcpConnection, server_listen_unix

linux_only = pytest.mark.skipif(
    not hasattr(socket, "TCP_DEFER_ACCEPT"), reason="TCP_DEFER_ACCEPT is Linux's"
)


@pytest.fixture(params=tf.BACKENDS)
def net(request: pytest.FixtureRequest) -> Iterator[Net]:
    yield from tf.open_net(request.param)


def deferral(sock: socket.socket) -> int:
    """The listening socket's TCP_DEFER_ACCEPT, in seconds as the kernel rounded it."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT)


@linux_only
def test_the_option_is_set_rounded_up_and_cleared(net: Net) -> None:
    server = net.server()
    assert server.sock is not None
    assert deferral(server.sock) == 0
    assert server.defer_accept(0.2) is True
    assert deferral(server.sock) >= 1  # a fraction is rounded up, never to "off"
    assert server.defer_accept(5) is True
    assert deferral(server.sock) >= 5
    assert server.defer_accept(0) is True
    assert deferral(server.sock) == 0


@linux_only
def test_a_connection_arrives_with_its_first_bytes(net: Net) -> None:
    server = net.server()
    server.defer_accept(5)
    accepted: list[float] = []
    reads: list[bytes] = []
    st: dict[str, Any] = {}

    def on_connect(conn: TcpConnection) -> None:
        accepted.append(net.loop.time())
        st["readable"] = tf.has_unread(conn.socket)
        conn.on("data", reads.append)
        conn.on("data", lambda _data: net.done())
        conn.pause(False)

    server.on("connect", on_connect)
    sock = net.raw_connect(b"127.0.0.1", server.port)  # the kernel completes the handshake

    def speak() -> None:
        st["silent_until"] = net.loop.time()
        st["accepted_while_silent"] = len(accepted)
        sock.sendall(b"hello")

    net.later(0.3, speak)
    net.run()
    assert st["accepted_while_silent"] == 0
    assert len(accepted) == 1
    assert st["readable"] is True  # the bytes were there when the connection was handed over
    assert reads == [b"hello"]


@linux_only
def test_a_silent_connection_is_handed_over_after_the_deferral(net: Net) -> None:
    server = net.server()
    server.defer_accept(1)
    arrived: list[TcpConnection] = []
    server.on("connect", arrived.append)
    server.on("connect", lambda _conn: net.done())
    net.raw_connect(b"127.0.0.1", server.port)
    started = net.loop.time()
    net.run(timeout=10, what="the silent connection was never handed over")
    assert len(arrived) == 1
    assert net.loop.time() - started >= 0.5  # held for (about) the first SYN-ACK retransmission


@linux_only
def test_without_it_a_silent_connection_arrives_at_once(net: Net) -> None:
    server = net.server()
    server.defer_accept(5)
    server.defer_accept(0)
    arrived: list[TcpConnection] = []
    server.on("connect", arrived.append)
    server.on("connect", lambda _conn: net.done())
    net.raw_connect(b"127.0.0.1", server.port)
    net.run(timeout=0.8, what="a silent connection waited although the deferral was off")
    assert len(arrived) == 1


@pytest.mark.parametrize("bad", [-1, -0.5, float("nan"), float("inf"), "1", None, True])
def test_bad_seconds_are_a_value_error_naming_them(net: Net, bad: Any) -> None:
    server = net.server()
    with pytest.raises(ValueError, match="finite number of seconds") as info:
        server.defer_accept(bad)
    assert repr(bad) in str(info.value)


def test_a_unix_socket_or_a_stopped_server_has_none(net: Net) -> None:
    base = "/tmp" if os.path.isdir("/tmp") else None
    with tempfile.TemporaryDirectory(prefix="thor-tcp-", dir=base) as directory:
        unix_server = net.server(b"", 0, sock=server_listen_unix(os.path.join(directory, "s")))
        assert unix_server.defer_accept(1) is False
        unix_server.shutdown()
    server = net.server()
    server.shutdown()
    assert server.defer_accept(1) is False


def test_huge_seconds_are_capped_not_an_overflow(net: Net) -> None:
    server = net.server()
    assert server.defer_accept(1e30) is hasattr(socket, "TCP_DEFER_ACCEPT")
