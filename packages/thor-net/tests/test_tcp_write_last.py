"""TcpConnection.write_last over real loopback sockets, on every loop backend: the last bytes
and the close, at once when the kernel takes the bytes, gracefully when it does not. (After
close() or abort() it raises as write() does: test_tcp_connection.py.)

Each test is driven from its loop (``net`` fixture; see tcp_fixtures.py for the rules).
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import tcp_fixtures as tf
from tcp_fixtures import KIB, Net, block

from thor.tcp import TcpConnection


@pytest.fixture(params=tf.BACKENDS)
def net(request: pytest.FixtureRequest) -> Iterator[Net]:
    yield from tf.open_net(request.param)


def read_all(conn: TcpConnection, into: Any, on_eof: Any) -> None:
    """Read ``conn`` into ``into`` (a bytearray or a hash); at the peer's FIN call
    ``on_eof()`` and close our side."""

    def eof() -> None:
        on_eof()
        conn.close()

    conn.on("data", into.extend if isinstance(into, bytearray) else into.update)
    conn.on("close", eof)
    conn.pause(False)


def read_to_the_end(peer: socket.socket) -> bytes:
    """What ``peer`` (a blocking socket) receives until the connection's end: EOF, or a reset
    after the bytes."""
    got = bytearray()
    try:
        while chunk := peer.recv(100):
            got += chunk
    except ConnectionResetError:
        pass
    return bytes(got)


@pytest.mark.parametrize("host", tf.HOSTS)
def test_the_last_bytes_arrive_and_the_socket_closes_at_once(net: Net, host: bytes) -> None:
    log: list[str] = []
    received = bytearray()
    st: dict[str, Any] = {}

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        writer.on("sent", lambda: log.append("sent"))
        writer.on("close", lambda: log.append("close"))
        writer.on("disconnect", lambda: log.append("disconnect"))
        writer.write(b"first, ")
        writer.write_last(b"last words")
        st["log"] = list(log)
        st["socket_closed"] = writer.socket.fileno() == -1
        try:
            writer.write_last(b"again")
        except OSError:
            st["again_raised"] = True
        read_all(reader, received, lambda: net.done(0.05))

    net.pair(ready, host)
    net.run()
    assert received == b"first, last words"
    assert st["log"] == ["sent", "sent", "disconnect"], "not sent, then closed at once"
    assert st["socket_closed"]
    assert st.get("again_raised"), "write_last() on a closed connection did not raise"
    assert log == ["sent", "sent", "disconnect"]


def test_the_last_bytes_leave_before_a_reset_for_unread_input(net: Net) -> None:
    """The peer sent bytes nobody read: closing the socket resets the connection, but the
    last bytes were on their way before that (none held back by the kernel for our FIN)."""
    server = net.server()
    peer = net.raw_connect(b"127.0.0.1", server.port)
    peer.sendall(b"never read")
    st: dict[str, Any] = {}

    def arrived(conn: TcpConnection) -> None:
        def answer() -> None:
            conn.write_last(b"the answer")
            st["closed"] = conn.socket.fileno() == -1
            net.done()

        net.when(lambda: tf.has_unread(conn.socket), answer)

    server.on("connect", arrived)
    net.run()
    assert st["closed"]
    assert read_to_the_end(peer) == b"the answer"


def test_nothing_last_closes_at_once(net: Net) -> None:
    log: list[str] = []
    received = bytearray()

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        writer.on("disconnect", lambda: log.append("disconnect"))
        writer.write_last(b"")
        log.append("returned")
        read_all(reader, received, lambda: net.done(0.05))

    net.pair(ready)
    net.run()
    assert log == ["disconnect", "returned"]
    assert received == b""


def test_bytes_the_kernel_refuses_now_are_queued_and_closed_gracefully(net: Net) -> None:
    """The queue is empty but the kernel is full: the last bytes wait in thor's queue, and the
    connection closes as ``close()`` does, once the peer has read them."""
    log: list[str] = []
    received = bytearray()
    last = block(7, 16 * KIB)
    st: dict[str, Any] = {}

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        st["filled"] = tf.fill_kernel(writer)
        writer.on("disconnect", lambda: log.append("writer disconnect"))
        writer.write_last(last)
        st["queued"] = writer.write_buffer_size
        st["open"] = writer.socket.fileno() != -1

        def eof() -> None:
            st["log_at_eof"] = list(log)
            reader.close()
            net.done(0.05)

        reader.on("data", received.extend)
        reader.on("close", eof)
        net.later(0.05, reader.pause, False)

    net.pair(ready)
    net.run(timeout=10.0)
    assert st["queued"] == len(last), "the kernel took the last bytes: nothing was tested"
    assert st["open"], "closed at once with bytes still queued"
    assert len(received) == st["filled"] + len(last)
    assert received.endswith(last)
    assert st["log_at_eof"] == [], "the writer disconnected before the peer's FIN"
    assert log == ["writer disconnect"]


def test_after_queued_writes_the_last_bytes_follow_them(net: Net) -> None:
    sent, received = hashlib.sha256(), hashlib.sha256()

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        index = 0
        while not writer.write_buffer_size:  # until thor queues
            chunk = block(index)
            writer.write(chunk)
            sent.update(chunk)
            index += 1
        last = block(index, 8 * KIB)
        writer.write_last(last)
        sent.update(last)
        read_all(reader, received, lambda: net.done(0.05))

    net.pair(ready)
    net.run(timeout=10.0)
    assert received.digest() == sent.digest()


def test_a_last_write_over_the_hard_limit_is_refused_and_leaves_the_connection_open(
    net: Net,
) -> None:
    st: dict[str, Any] = {}
    received = bytearray()

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        writer.max_write_buffer_size = 1000
        writer.write_bufsize = 100
        try:
            writer.write_last(b"x" * 2000)
        except BufferError:
            st["refused"] = True
        st["still_open"] = writer.socket.fileno() != -1
        writer.write_last(b"small")
        read_all(reader, received, lambda: net.done(0.05))

    net.pair(ready)
    net.run()
    assert st.get("refused")
    assert st["still_open"]
    assert received == b"small"


class RecordingSocket(socket.socket):
    """A socket that records the flags of its sends and its shutdowns."""

    calls: list[tuple[str, int]]

    def send(self, data: Any, flags: int = 0) -> int:
        self.calls.append(("send", flags))
        return super().send(data, flags)

    def shutdown(self, how: int) -> None:
        self.calls.append(("shutdown", how))
        super().shutdown(how)


def recording(conn: TcpConnection) -> RecordingSocket:
    """Put ``conn``'s descriptor in a RecordingSocket (the connection uses that from now)."""
    plain = conn.socket
    sock = RecordingSocket(plain.family, plain.type, plain.proto, fileno=plain.detach())
    sock.calls = []
    conn.socket = sock
    return sock


@pytest.mark.skipif(not hasattr(socket, "MSG_MORE"), reason="no MSG_MORE on this platform")
def test_a_small_last_write_is_held_for_the_fin(net: Net) -> None:
    """One send with MSG_MORE, then the shutdown that sends it with our FIN."""
    received = bytearray()
    st: dict[str, Any] = {}

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        sock = recording(writer)
        writer.write_last(b"last words")
        st["calls"] = list(sock.calls)
        read_all(reader, received, lambda: net.done(0.05))

    net.pair(ready)
    net.run()
    assert st["calls"] == [("send", socket.MSG_MORE), ("shutdown", socket.SHUT_WR)]
    assert received == b"last words"


def test_a_sent_listener_that_aborts_does_not_lose_the_held_bytes(net: Net) -> None:
    """'sent' comes once the bytes are pushed: a listener that aborts then (with unread input:
    a reset) does not drop them."""
    server = net.server()
    peer = net.raw_connect(b"127.0.0.1", server.port)
    peer.sendall(b"never read")
    log: list[str] = []

    def arrived(conn: TcpConnection) -> None:
        def answer() -> None:
            conn.on("sent", lambda: (log.append("sent"), conn.abort()))
            conn.on("disconnect", lambda: log.append("disconnect"))
            conn.write_last(b"the answer")
            net.done()

        net.when(lambda: tf.has_unread(conn.socket), answer)

    server.on("connect", arrived)
    net.run()
    assert log == ["sent", "disconnect"]
    assert read_to_the_end(peer) == b"the answer"


def test_a_failed_last_send_closes_from_the_loop_with_close(net: Net) -> None:
    """The peer reset the connection before our last write: the send fails, and the failure
    is reported as any write's is (``error``, then 'disconnect' and 'close' from the loop)."""
    server = net.server()
    peer = net.raw_connect(b"127.0.0.1", server.port)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    peer.close()  # a reset
    log: list[str] = []
    st: dict[str, Any] = {}

    def arrived(conn: TcpConnection) -> None:
        conn.on("disconnect", lambda: log.append("disconnect"))
        conn.on("close", lambda: (log.append("close"), net.done(0.05)))
        conn.write_last(b"too late")
        st["log_at_return"] = list(log)
        st["error"] = conn.error

    server.on("connect", arrived)
    net.run()
    assert st["log_at_return"] == []
    assert isinstance(st["error"], OSError)
    assert sorted(log) == ["close", "disconnect"]


def test_bytes_held_by_defer_writes_go_first_and_the_close_is_at_once(net: Net) -> None:
    received = bytearray()
    st: dict[str, Any] = {}

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        writer.defer_writes = True
        writer.write(b"held, ")
        st["held"] = writer.write_buffer_size
        writer.write_last(b"then the last")
        st["closed"] = writer.socket.fileno() == -1
        read_all(reader, received, lambda: net.done(0.05))

    net.pair(ready)
    net.run()
    assert st["held"] == len(b"held, "), "defer_writes held nothing: nothing was tested"
    assert st["closed"]
    assert received == b"held, then the last"
