"""TcpConnection.writelines and TlsConnection.writelines over real loopback sockets: the chunks
arrive in order as one write of them joined would, large chunks are queued as they are (never
joined into a copy), mutable buffers are copied, and the write limits apply to the total.

Each TCP test is driven from its loop (``net`` fixture; see tcp_fixtures.py for the rules).
"""

from __future__ import annotations

import array
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import tcp_fixtures as tf
from tcp_fixtures import KIB, MIB, Net, block
from tls_fixtures import Pki, run

import thor.loop
from thor.tcp import TcpConnection
from thor.tls import TlsClient, TlsConnection, TlsServer


@pytest.fixture(params=tf.BACKENDS)
def net(request: pytest.FixtureRequest) -> Iterator[Net]:
    yield from tf.open_net(request.param)


def read_until(conn: TcpConnection, into: bytearray, size: int, then: Any) -> None:
    """Read ``conn`` into ``into``; once ``size`` bytes arrived, call ``then()``."""

    def data(chunk: bytes) -> None:
        into.extend(chunk)
        if len(into) >= size:
            then()

    conn.on("data", data)
    conn.pause(False)


def queued_objects(conn: TcpConnection) -> list[object]:
    """What the connection's queue holds: each chunk, or the object a queued view is of."""
    return [chunk.obj if isinstance(chunk, memoryview) else chunk for chunk in conn._buffer]


def test_the_chunks_arrive_in_order_and_mutable_ones_are_copied(net: Net) -> None:
    wide = array.array("I", range(1000))  # a memoryview of 4-byte items: counted by bytes
    mutable = bytearray(b"mutable, ")
    chunks: list[Any] = [b"head, ", mutable, memoryview(b"view, "), b"", memoryview(wide)]
    expected = b"head, mutable, view, " + wide.tobytes()
    received = bytearray()

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        filled = tf.fill_kernel(writer)  # the chunks are queued, not sent, by writelines
        writer.writelines(chunks)
        mutable[:] = b"CHANGED!!"  # reused at once: the queued copy keeps what was given
        read_until(reader, received, filled + len(expected), net.done)

    net.pair(ready)
    net.run()
    assert received.endswith(expected)


def test_a_large_chunk_is_queued_as_it_is_and_arrives_whole(net: Net) -> None:
    head = b"a small head\r\n"
    body = block(3, 4 * MIB)
    received = bytearray()
    st: dict[str, Any] = {}

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        writer.on("pause", lambda paused: st.setdefault("pauses", []).append(paused))
        writer.writelines([head, body])
        st["queued_body_itself"] = any(obj is body for obj in queued_objects(writer))
        st["queued"] = writer.write_buffer_size
        read_until(reader, received, len(head) + len(body), net.done)

    net.pair(ready)
    net.run(timeout=20)
    assert st["queued"] > 0, "the kernel took 4 MiB at once: nothing to check"
    assert st["queued_body_itself"], "the large chunk was copied (joined) into the queue"
    assert received == head + body
    assert st["pauses"] == [True, False]


def test_behind_queued_bytes_the_chunks_keep_their_place(net: Net) -> None:
    first = block(1, 512 * KIB)
    tail = [block(2, 100 * KIB), b"-", block(4, 300 * KIB)]
    received = bytearray()

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        filled = tf.fill_kernel(writer)
        writer.write(first)
        writer.writelines(tail)
        writer.write(b"end")
        size = filled + len(first) + sum(map(len, tail)) + len(b"end")
        read_until(reader, received, size, net.done)

    net.pair(ready)
    net.run(timeout=20)
    assert received.endswith(first + b"".join(tail) + b"end")


def test_bytes_held_by_defer_writes_go_first(net: Net) -> None:
    received = bytearray()
    expected = b"held, " + b"x" * 100 + block(5, 300 * KIB)

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        writer.defer_writes = True
        writer.write(b"held, ")
        writer.writelines([b"x" * 100, block(5, 300 * KIB)])
        read_until(reader, received, len(expected), net.done)

    net.pair(ready)
    net.run()
    assert received == expected


def test_the_limits_apply_to_the_total(net: Net) -> None:
    st: dict[str, Any] = {"pauses": []}

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        writer.max_write_buffer_size = 2 * MIB
        writer.on("pause", st["pauses"].append)
        # on an empty queue: refused whole, no 'pause' (nothing would drain)
        try:
            writer.writelines([b"h" * 100, b"b" * (2 * MIB)])
        except BufferError as exc:
            st["empty"] = str(exc)
        st["after_empty"] = (writer.write_buffer_size, list(st["pauses"]))
        # behind queued bytes: refused whole, the writer asked to pause first
        tf.fill_kernel(writer)
        writer.write(b"q" * (64 * KIB))
        try:
            writer.writelines([b"h" * 100, b"b" * (2 * MIB)])
        except BufferError as exc:
            st["queued"] = str(exc)
        st["after_queued"] = (writer.write_buffer_size, list(st["pauses"]))
        # the chunk count limit, on the total
        writer.max_write_buffer_chunks = 3
        try:
            writer.writelines([b"a", b"b", b"c"])
        except BufferError as exc:
            st["chunks"] = str(exc)
        st["after_chunks"] = writer.write_buffer_size
        net.done()

    net.pair(ready)
    net.run()
    assert "2097252 bytes refused" in st["empty"]
    assert st["after_empty"] == (0, [])
    assert "2097252 bytes refused" in st["queued"]
    assert st["after_queued"] == (64 * KIB, [True])
    assert "3 bytes refused" in st["chunks"]
    assert st["after_chunks"] == 64 * KIB


def test_after_close_it_raises_and_wrong_types_are_refused(net: Net) -> None:
    st: dict[str, Any] = {}

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        try:
            writer.writelines([b"ok", "text"])  # type: ignore[list-item]
        except TypeError as exc:
            st["type"] = str(exc)
        st["queued"] = writer.write_buffer_size
        writer.close()
        try:
            writer.writelines([b"a", b"b"])
        except OSError as exc:
            st["closed"] = exc.errno
        net.done()

    net.pair(ready)
    net.run()
    assert "not str" in st["type"]
    assert st["queued"] == 0
    assert st["closed"] is not None


# -- TLS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.mark.parametrize(
    ("sizes", "chunk_limit"),
    [
        ((20, 30, 40), None),
        ((100, 300 * KIB, 10, 1 * MIB), None),
        # as many chunks as the limit allows: the queue's splitting of a large chunk into
        # pieces must not refuse the rest halfway (nothing or everything is queued)
        ((1 * MIB, 1 * MIB, 1 * MIB), 3),
    ],
    ids=["joined-into-one-record", "large-written-in-pieces", "at-the-chunk-limit"],
)
def test_tls_chunks_arrive_in_order(
    pki: Pki, sizes: tuple[int, ...], chunk_limit: int | None
) -> None:
    loop = thor.loop.make()
    chunks: list[Any] = [block(index, 1 * MIB)[:size] for index, size in enumerate(sizes)]
    chunks[0] = bytearray(chunks[0])  # copied when given
    expected = b"".join(bytes(chunk) for chunk in chunks)
    received = bytearray()
    server = TlsServer(b"127.0.0.1", 0, loop=loop, certfile=pki.cert_file)
    client = TlsClient(loop, ca_file=pki.ca_file)
    conns: list[TlsConnection] = []

    def accepted(conn: TlsConnection) -> None:
        conns.append(conn)
        if chunk_limit is not None:
            conn.max_write_buffer_chunks = chunk_limit
            conn.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        conn.writelines(chunks)
        chunks[0][:5] = b"CHANG"

    def connected(conn: TlsConnection) -> None:
        conns.append(conn)

        def data(chunk: bytes) -> None:
            received.extend(chunk)
            if len(received) >= len(expected):
                loop.stop()

        conn.on("data", data)
        conn.pause(False)

    server.on("connect", accepted)
    client.on("connect", connected)
    client.connect_dns(
        b"localhost", (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", server.port)), 5
    )
    try:
        run(loop, 20, "the TLS chunks did not arrive")
    finally:
        for conn in conns:
            conn.abort()
        server.shutdown()
        loop.close()
    assert bytes(received) == expected
