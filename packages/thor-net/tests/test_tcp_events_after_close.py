"""'pause' (False) and 'sent' of a paused writer that is closed come before its 'disconnect',
never after it (a producer resuming on 'pause' (False) would write to a closed socket), on
every loop backend, for TcpConnection and TlsConnection.

Each test is driven from its loop (``net`` fixture; see tcp_fixtures.py for the rules).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import tcp_fixtures as tf
from tcp_fixtures import KIB, MIB, Net
from tls_fixtures import Pki

from thor.tcp import TcpConnection
from thor.tls import TlsClient, TlsConnection, TlsServer

LIMIT = 4 * KIB  # the writer's write_bufsize
TOTAL = MIB + 3000  # written at once: far over LIMIT, so 'pause' (True)


@pytest.fixture(params=tf.BACKENDS)
def net(request: pytest.FixtureRequest) -> Iterator[Net]:
    yield from tf.open_net(request.param)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def small_peer(net: Net, port: int) -> socket.socket:
    """A non-blocking client socket with a small receive buffer, so the writer stays paused
    while it does not read."""
    peer = net.sock(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * KIB)
    peer.settimeout(5.0)
    peer.connect(("127.0.0.1", port))
    peer.setblocking(False)
    return peer


def record(conn: TcpConnection, log: list[Any], pauses: list[tuple[bool, int]]) -> None:
    """Log the writer's events ('sent' once per run of them) and its 'pause' flags with the
    bytes queued then."""

    def paused(flag: bool) -> None:
        log.append(("pause", flag))
        pauses.append((flag, conn.write_buffer_size))

    conn.on("pause", paused)
    conn.on("sent", lambda: None if log[-1:] == ["sent"] else log.append("sent"))
    conn.on("close", lambda: log.append("close"))
    conn.on("disconnect", lambda: log.append("disconnect"))


def write_paused(conn: TcpConnection) -> None:
    """Shrink the writer's buffers and write far more than they hold: it pauses."""
    conn.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * KIB)
    conn.write_bufsize = LIMIT
    conn.write(b"x" * TOTAL)


def drain(net: Net, peer: socket.socket, got: list[int], on_eof: Callable[[], object]) -> None:
    """Read ``peer`` (counting bytes into ``got[0]``) on every loop pass until EOF."""
    while True:
        try:
            chunk = peer.recv(256 * KIB)
        except BlockingIOError:
            net.later(0, drain, net, peer, got, on_eof)
            return
        if not chunk:
            on_eof()
            return
        got[0] += len(chunk)


def assert_nothing_after_disconnect(log: list[Any], pauses: list[tuple[bool, int]]) -> None:
    assert log.count("disconnect") == 1, log
    assert log[-1] == "disconnect", f"events after 'disconnect': {log}"
    assert len(pauses) >= 2, log
    tf.assert_pause_events_alternate(pauses, LIMIT)


def test_after_the_peers_fin_the_last_pause_and_sent_precede_disconnect(net: Net) -> None:
    """The peer half-closes without reading while the writer is paused; the app closes on
    'close'; when the peer then reads everything the flush ends and the socket closes at once
    (the peer's FIN came already): 'pause' (False) and 'sent' come before 'disconnect'."""
    server = net.server()
    peer = small_peer(net, server.port)
    log: list[Any] = []
    pauses: list[tuple[bool, int]] = []
    got = [0]
    eof: list[bool] = []

    def arrived(conn: TcpConnection) -> None:
        record(conn, log, pauses)
        conn.on("close", conn.close)
        conn.on("close", lambda: net.later(0, drain, net, peer, got, peer_eof))
        write_paused(conn)
        peer.shutdown(socket.SHUT_WR)

    def peer_eof() -> None:
        eof.append(True)
        net.done(0.05)

    server.on("connect", arrived)
    net.run()
    assert eof and got[0] == TOTAL
    assert log.index("close") < log.index(("pause", False)), log  # the FIN came while paused
    assert_nothing_after_disconnect(log, pauses)


def test_closed_while_paused_the_last_pause_and_sent_precede_disconnect(net: Net) -> None:
    """close() while the writer is paused, then the peer reads everything and closes:
    'pause' (False) and 'sent' come before 'disconnect', nothing after it."""
    server = net.server()
    peer = small_peer(net, server.port)
    log: list[Any] = []
    pauses: list[tuple[bool, int]] = []
    got = [0]

    def arrived(conn: TcpConnection) -> None:
        record(conn, log, pauses)
        conn.on("disconnect", lambda: net.done(0.05))
        write_paused(conn)
        conn.close()
        net.later(0, drain, net, peer, got, peer.close)

    server.on("connect", arrived)
    net.run()
    assert got[0] == TOTAL
    assert_nothing_after_disconnect(log, pauses)


def test_tls_after_a_ragged_fin_the_last_pause_and_sent_precede_disconnect(
    net: Net, pki: Pki
) -> None:
    """TlsConnection, as the first test: the peer ends with a bare FIN (no close_notify, as
    many clients do) while the writer is paused; the app closes on 'close'; the peer then
    reads everything. (After a close_notify OpenSSL refuses to write: the queue is dropped.)"""
    server = net.server(cls=TlsServer, certfile=pki.cert_file)
    server.on("tls_error", lambda *error: net.fail(f"tls_error {error!r}"))
    client = TlsClient(net.loop, ca_file=pki.ca_file)
    net.clients.append(client)
    client.on("connect_error", lambda *error: net.fail(f"connect_error {error!r}"))
    client.on("connect", net.conns.append)
    log: list[Any] = []
    pauses: list[tuple[bool, int]] = []
    sizes: list[int] = []
    ends: dict[str, TlsConnection] = {}

    def arrived(side: str, conn: TlsConnection) -> None:
        ends[side] = conn
        if len(ends) == 2:
            start(ends["server"], ends["client"])

    def start(writer: TlsConnection, peer: TlsConnection) -> None:
        record(writer, log, pauses)
        writer.on("close", writer.close)
        writer.on("close", lambda: net.later(0, peer.pause, False))
        write_paused(writer)
        peer.on("data", lambda data: sizes.append(len(data)))
        peer.on("close", lambda: net.done(0.05))
        with socket.socket(fileno=os.dup(peer.socket.fileno())) as below_tls:
            below_tls.shutdown(socket.SHUT_WR)  # the FIN, without a close_notify

    server.on("connect", lambda conn: arrived("server", conn))
    client.on("connect", lambda conn: arrived("client", conn))
    client.connect(b"127.0.0.1", server.port)
    net.run()
    assert sum(sizes) == TOTAL
    assert log.index("close") < log.index(("pause", False)), log  # the FIN came while paused
    assert_nothing_after_disconnect(log, pauses)
