"""thor.tcp.TcpConnection over real loopback sockets, on every loop backend: data flow, pausing,
backpressure, the hard write-buffer limits, and thor 0.17's half-close event model.

Every test runs on a fresh loop (``net`` fixture, one per backend of this machine) and is driven
from that loop; see tcp_fixtures.py for the rules (no sleeps, a failing safety timer per run).
"""

from __future__ import annotations

import array
import contextvars
import errno
import hashlib
import itertools
import logging
import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest
import tcp_fixtures as tf
from tcp_fixtures import KIB, MIB, Net, assert_pause_events_alternate, block

from thor.tcp import TcpConnection


@pytest.fixture(params=tf.BACKENDS)
def net(request: pytest.FixtureRequest) -> Iterator[Net]:
    yield from tf.open_net(request.param)


def collect(conn: TcpConnection, into: bytearray | Any, on_eof: Any = None) -> None:
    """Read ``conn`` into ``into`` (a bytearray or a hash); at EOF call ``on_eof()``, then close
    our side (the 0.17 model: the peer's FIN leaves our side open until we close it)."""

    def on_close() -> None:
        if on_eof is not None:
            on_eof()
        conn.close()

    conn.on("data", into.extend if isinstance(into, bytearray) else into.update)
    conn.on("close", on_close)
    conn.pause(False)


def fill_socket(conn: TcpConnection, sink: Any = None) -> int:
    """Write 64 KiB blocks to ``conn`` (whose peer is not reading) until the kernel takes no
    more and the connection starts queueing. Returns the number of blocks written."""
    index = 0
    while conn.write_buffer_size == 0:
        chunk = block(index)
        conn.write(chunk)
        if isinstance(sink, bytearray):
            sink.extend(chunk)
        elif sink is not None:
            sink.update(chunk)
        index += 1
        assert index < 4096, "the kernel took 256 MiB without queueing: something is wrong"
    return index


# -- data flow ------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", tf.HOSTS)
def test_echo(net: Net, host: bytes) -> None:
    message = b"".join(b"%07d;" % i for i in range(30000))  # 240 kB in many small writes
    received = bytearray()

    def serve(conn: TcpConnection) -> None:
        conn.on("data", conn.write)
        conn.pause(False)

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        def on_data(data: bytes) -> None:
            received.extend(data)
            if len(received) >= len(message):
                net.done()

        client_side.on("data", on_data)
        client_side.pause(False)
        for start in range(0, len(message), 4000):
            client_side.write(message[start : start + 4000])

    server = net.server(host)
    server.on("connect", serve)
    net.pair(ready, host, server=server)
    net.run(what="the echo did not come back whole")
    assert bytes(received) == message


@pytest.mark.parametrize("side", ["server", "client"])
def test_connection_starts_paused(net: Net, side: str) -> None:
    """No 'data' while bytes wait in the socket, until pause(False)."""
    log: list[Any] = []

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        reader, writer = (
            (server_side, client_side) if side == "server" else (client_side, server_side)
        )
        reader.on("data", lambda data: (log.append(("data", data)), net.done()))
        writer.write(b"hello")
        # once the bytes are in the reader's socket, give the loop 50 ms of turns, then unpause
        net.when(lambda: tf.has_unread(reader.socket), net.later, 0.05, unpause, reader)

    def unpause(reader: TcpConnection) -> None:
        log.append("unpause")
        reader.pause(False)

    net.pair(ready)
    net.run(what="no data after pause(False)")
    assert log == ["unpause", ("data", b"hello")]


def test_pause_stops_data_and_resume_loses_nothing(net: Net) -> None:
    chunks = [block(i, 16 * KIB) for i in range(128)]  # 2 MiB
    payload = b"".join(chunks)
    received = bytearray()
    state = {"paused": False, "pauses": 0, "data_while_paused": 0, "held_back": 0}

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        def resume() -> None:
            if tf.has_unread(server_side.socket):
                state["held_back"] += 1  # bytes were waiting: the pause really held them back
            state["paused"] = False
            server_side.pause(False)

        def on_data(data: bytes) -> None:
            if state["paused"]:
                state["data_while_paused"] += 1
            received.extend(data)
            if len(received) >= len(payload):
                net.done()
            elif len(received) >= (state["pauses"] + 1) * 256 * KIB:
                state["pauses"] += 1
                state["paused"] = True
                server_side.pause(True)
                net.later(0.02, resume)

        server_side.on("data", on_data)
        server_side.pause(False)
        for chunk in chunks:
            client_side.write(chunk)

    net.pair(ready)
    net.run(what="the paused/resumed reader did not get everything")
    assert state["data_while_paused"] == 0
    assert state["pauses"] >= 4
    assert state["held_back"] >= 1
    assert bytes(received) == payload


@pytest.mark.parametrize("host", tf.HOSTS)
def test_server_side_address_is_the_peer_address(net: Net, host: bytes) -> None:
    """thor 0.17 gave the listening address on server-accepted connections; ours the peer's."""
    seen: dict[str, Any] = {}

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        seen["server.address"] = server_side.address
        seen["server.getpeername"] = server_side.socket.getpeername()
        seen["client.getsockname"] = client_side.socket.getsockname()
        seen["client.address"] = client_side.address
        seen["client.getpeername"] = client_side.socket.getpeername()
        net.done()

    server = net.pair(ready, host)
    net.run()
    assert seen["server.address"] == seen["server.getpeername"] == seen["client.getsockname"]
    assert seen["server.address"][1] != server.port
    expected_peer = (host.decode(), server.port)
    assert tuple(seen["client.address"][:2]) == expected_peer
    assert tuple(seen["client.getpeername"][:2]) == expected_peer


def test_tcp_connected_is_a_read_only_bool(net: Net) -> None:
    seen: dict[str, Any] = {}

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        seen["open"] = (server_side.tcp_connected, client_side.tcp_connected)
        try:
            client_side.tcp_connected = False  # type: ignore[misc]
        except AttributeError:
            seen["read_only"] = True
        seen["after_assignment"] = client_side.tcp_connected

        def on_peer_close() -> None:
            seen["after_peer_fin"] = server_side.tcp_connected
            server_side.close()

        server_side.on("close", on_peer_close)
        server_side.on("disconnect", net.done)
        server_side.pause(False)
        client_side.close()
        seen["after_close"] = client_side.tcp_connected

    net.pair(ready)
    net.run()
    assert seen["open"] == (True, True)
    assert all(type(value) is bool for value in seen["open"])
    assert seen.get("read_only"), "assigning tcp_connected did not raise AttributeError"
    assert seen["after_assignment"] is True
    assert seen["after_close"] is False
    assert seen["after_peer_fin"] is False


@pytest.mark.parametrize("host", tf.HOSTS)
def test_tcp_nodelay_is_set(net: Net, host: bytes) -> None:
    seen: dict[str, int] = {}

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        for name, conn in (("server", server_side), ("client", client_side)):
            seen[name] = conn.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        net.done()

    net.pair(ready, host)
    net.run()
    assert seen["server"], "TCP_NODELAY is off on the server-side connection"
    assert seen["client"], "TCP_NODELAY is off on the client-side connection"


# -- backpressure and the hard limits -------------------------------------------------------------


def test_backpressure_against_a_slow_reader(net: Net) -> None:
    """32 MiB in 64 KiB writes to a reader that does not read at first and then stalls every
    MiB: the writer is told to pause once more than write_bufsize bytes are queued and to go on
    once the queue drained to half; obeying that bounds its queue; nothing is lost or reordered.
    """
    chunk_size, chunk_count = 64 * KIB, 512
    sent, received = hashlib.sha256(), hashlib.sha256()
    st: dict[str, Any] = {
        "next": 0,
        "paused": False,
        "closed": False,
        "max_queued": 0,
        "pause_events": [],
        "received": 0,
        "next_stall": MIB,
        "eof_at": None,
        "disconnected": 0,
    }

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        st["limit"] = writer.write_bufsize

        def pump() -> None:
            while not st["paused"] and st["next"] < chunk_count:
                chunk = block(st["next"], chunk_size)
                writer.write(chunk)  # may emit 'pause' (True) before it returns
                sent.update(chunk)
                st["next"] += 1
                st["max_queued"] = max(st["max_queued"], writer.write_buffer_size)
            if st["next"] == chunk_count and not st["closed"]:
                st["closed"] = True
                writer.close()

        def on_pause(paused: bool) -> None:
            st["pause_events"].append((paused, writer.write_buffer_size))
            st["paused"] = paused
            if not paused:
                pump()

        def on_data(data: bytes) -> None:
            received.update(data)
            st["received"] += len(data)
            if st["received"] >= st["next_stall"]:  # a slow reader: stall 5 ms every MiB
                st["next_stall"] += MIB
                reader.pause(True)
                net.later(0.005, reader.pause, False)

        def on_eof() -> None:
            st["eof_at"] = st["received"]
            reader.close()

        def on_disconnect() -> None:
            st["disconnected"] += 1
            if st["disconnected"] == 2:
                net.done()

        writer.on("pause", on_pause)
        writer.on("disconnect", on_disconnect)
        reader.on("data", on_data)
        reader.on("close", on_eof)
        reader.on("disconnect", on_disconnect)
        net.later(0.2, reader.pause, False)  # the reader does not read at first
        pump()

    net.pair(ready)
    net.run(timeout=20.0, what="the 32 MiB transfer did not complete")

    assert st["eof_at"] == chunk_size * chunk_count, "the reader did not get every byte"
    assert received.digest() == sent.digest(), "the reader got the bytes out of order"
    events = st["pause_events"]
    limit = st["limit"]
    assert events, "the writer was never asked to pause, yet it outran the reader by far"
    assert [paused for paused, _ in events] == [True, False] * (len(events) // 2), events
    for paused, queued in events:
        if paused:
            assert queued > limit, f"'pause' (True) with only {queued} bytes queued: {events}"
        else:
            assert queued <= limit // 2, f"'pause' (False) with {queued} bytes queued: {events}"
    assert st["max_queued"] <= limit + chunk_size, (
        f"the writer's queue reached {st['max_queued']} bytes (limit {limit} + one write)"
    )


class SmallBuffer(TcpConnection):
    max_write_buffer_size = 512 * KIB


class FewChunks(TcpConnection):
    max_write_buffer_chunks = 8


@pytest.mark.parametrize("how", ["instance", "subclass"])
def test_max_write_buffer_size_refuses_a_write_and_queues_nothing(net: Net, how: str) -> None:
    accepted, received = hashlib.sha256(), hashlib.sha256()
    st: dict[str, Any] = {"accepted": 0, "refused": None, "disconnected": 0}
    server = net.server()
    if how == "subclass":
        server.connection_class = SmallBuffer

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        if how == "instance":
            writer.max_write_buffer_size = 512 * KIB
        st["limit"] = writer.max_write_buffer_size
        writer.on("pause", lambda paused: st.setdefault("pause_at", (paused, st["accepted"])))
        for index in range(4096):  # the reader is paused: the writer's queue only grows
            chunk = block(index)
            before = writer.write_buffer_size
            try:
                writer.write(chunk)
            except BufferError:
                st["refused"] = (before, writer.write_buffer_size, len(chunk), st["accepted"])
                break
            accepted.update(chunk)
            st["accepted"] += len(chunk)
        writer.close()
        collect(reader, received, on_eof=lambda: st.__setitem__("eof", True))

        def on_disconnect() -> None:
            st["disconnected"] += 1
            if st["disconnected"] == 2:
                net.done()

        writer.on("disconnect", on_disconnect)
        reader.on("disconnect", on_disconnect)

    net.pair(ready, server=server)
    net.run(timeout=10.0)
    assert st["refused"] is not None, "no BufferError although the queue passed the hard limit"
    before, after, size, accepted_before = st["refused"]
    assert before + size > st["limit"] >= before
    assert after == before, "the refused write changed the queue"
    assert st.get("pause_at") is not None, "'pause' was never emitted"
    paused, accepted_at_pause = st["pause_at"]
    assert paused is True
    assert accepted_at_pause < accepted_before, "the writer was not asked to pause before refusal"
    assert received.digest() == accepted.digest(), "the peer did not get exactly the accepted data"


def test_one_write_over_max_write_buffer_size_is_refused_on_an_empty_queue(net: Net) -> None:
    """Nothing queued yet: a single write over the hard limit is refused as a whole, without a
    'pause' (nothing would drain to end it), and what follows is sent normally."""
    received = bytearray()
    st: dict[str, Any] = {"refused": None, "pauses": []}

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        writer.max_write_buffer_size = 64 * KIB
        writer.on("pause", st["pauses"].append)
        try:
            writer.write(b"x" * (64 * KIB + 1))
        except BufferError as exc:
            st["refused"] = (str(exc), writer.write_buffer_size)
        writer.write(b"after")
        writer.close()
        collect(reader, received, on_eof=net.done)

    net.pair(ready)
    net.run(timeout=10.0)
    assert st["refused"] is not None, "a write over max_write_buffer_size was accepted"
    message, queued = st["refused"]
    assert "write of 65537 bytes refused" in message
    assert queued == 0
    assert st["pauses"] == [], "'pause' was emitted although nothing was queued"
    assert bytes(received) == b"after"


@pytest.mark.parametrize("how", ["instance", "subclass"])
def test_max_write_buffer_chunks_refuses_a_write_and_queues_nothing(net: Net, how: str) -> None:
    accepted, received = bytearray(), bytearray()
    st: dict[str, Any] = {"refused": None, "small_accepted": 0, "disconnected": 0}
    server = net.server()
    if how == "subclass":
        server.connection_class = FewChunks

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        if how == "instance":
            writer.max_write_buffer_chunks = 8
        st["limit"] = writer.max_write_buffer_chunks
        fill_socket(writer, accepted)  # now one chunk is queued
        for index in range(100):
            data = b"<%06d>" % index
            before = writer.write_buffer_size
            try:
                writer.write(data)
            except BufferError:
                st["refused"] = (before, writer.write_buffer_size)
                break
            accepted.extend(data)
            st["small_accepted"] += 1
        writer.close()
        collect(reader, received)

        def on_disconnect() -> None:
            st["disconnected"] += 1
            if st["disconnected"] == 2:
                net.done()

        writer.on("disconnect", on_disconnect)
        reader.on("disconnect", on_disconnect)

    net.pair(ready, server=server)
    net.run(timeout=10.0)
    assert st["refused"] is not None, "no BufferError although the chunk limit was passed"
    before, after = st["refused"]
    assert after == before, "the refused write changed the queue"
    assert 0 < st["small_accepted"] < st["limit"]
    assert received == accepted, "the peer did not get exactly the accepted data"


def test_a_single_write_larger_than_max_write_buffer_size_is_refused_whole(net: Net) -> None:
    """The hard limit holds for a write on an empty queue too (thor 0.17 checks the queued size
    plus the new write before sending anything): such a write raises BufferError and neither
    sends nor queues any of it."""
    received = bytearray()
    st: dict[str, Any] = {"refused": False}

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        writer.max_write_buffer_size = 256 * KIB
        big = block(1, 20 * MIB)  # far more than the kernel takes in one send
        try:
            writer.write(big)
        except BufferError:
            st["refused"] = True
        st["queued"] = writer.write_buffer_size
        if st["refused"]:
            writer.write(b"<end>")
            writer.close()
        else:
            writer.abort()  # do not wait for megabytes to drain
        collect(reader, received, on_eof=net.done)

    net.pair(ready)
    net.run(timeout=10.0)
    assert st["refused"], (
        f"a 20 MiB write with max_write_buffer_size = 256 KiB was accepted and left "
        f"{st['queued']} bytes queued"
    )
    assert st["queued"] == 0
    assert received == b"<end>", "part of the refused write reached the peer"


# -- the 'pause' events: strictly alternating, True only with bytes queued past the threshold ---


def pause_recorder(writer: TcpConnection, events: list[tuple[bool, int]]) -> None:
    """Record every 'pause' of ``writer`` with the bytes queued at that moment."""
    writer.on("pause", lambda paused: events.append((paused, writer.write_buffer_size)))


def test_a_big_write_the_kernel_takes_pauses_nobody(net: Net) -> None:
    """A write 8 times ``write_bufsize`` on an empty queue, into a send buffer that takes all of
    it: nothing is queued after the write, so no 'pause' at all (and none left hanging)."""
    data = block(3, 128 * KIB)
    received = bytearray()
    events: list[tuple[bool, int]] = []
    st: dict[str, Any] = {}

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        writer.write_bufsize = 16 * KIB
        writer.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 * MIB)
        pause_recorder(writer, events)
        writer.write(data)
        st["queued"] = writer.write_buffer_size
        st["events_after_write"] = list(events)
        writer.write(b"<end>")
        writer.close()
        collect(reader, received, on_eof=net.done)

    net.pair(ready)
    net.run()
    assert st["queued"] == 0, f"the kernel did not take the write: {st['queued']} bytes queued"
    assert st["events_after_write"] == [], "'pause' with nothing queued"
    assert events == []
    assert received == data + b"<end>"


def test_a_write_refused_on_an_empty_queue_pauses_nobody(net: Net) -> None:
    """A single write larger than ``max_write_buffer_size`` on an empty queue is refused (0.17)
    without 'pause' (True): nothing is queued, so no drain and no 'pause' (False) would follow,
    and the writer would wait forever. Later writes go through, unpaused."""
    received = bytearray()
    events: list[tuple[bool, int]] = []
    st: dict[str, Any] = {"refused": False}

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        writer.max_write_buffer_size = 64 * KIB
        pause_recorder(writer, events)
        try:
            writer.write(block(1, 128 * KIB))
        except BufferError:
            st["refused"] = True
        st["events_after_refusal"] = list(events)
        writer.write(block(2, 32 * KIB))
        writer.close()
        collect(reader, received, on_eof=net.done)

    net.pair(ready)
    net.run()
    assert st["refused"], "the write over max_write_buffer_size was accepted"
    assert st["events_after_refusal"] == [], "'pause' (True) with nothing queued"
    assert events == []
    assert received == block(2, 32 * KIB)


def test_a_write_refused_with_bytes_queued_pauses_until_the_queue_drains(net: Net) -> None:
    """A write refused while a few bytes (less than ``write_bufsize``) are queued asks the
    writer to pause, and 'pause' (False) follows once the reader takes the queue."""
    accepted, received = bytearray(), bytearray()
    events: list[tuple[bool, int]] = []
    st: dict[str, Any] = {"refused": None}

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        writer.max_write_buffer_size = 512 * KIB
        st["limit"] = writer.write_bufsize
        pause_recorder(writer, events)
        fill_socket(writer, accepted)  # the reader is not reading: now a few bytes are queued
        st["queued_before"] = writer.write_buffer_size
        try:
            writer.write(block(9, 600 * KIB))
        except BufferError:
            st["refused"] = writer.write_buffer_size
        st["events_after_refusal"] = list(events)

        def on_pause(paused: bool) -> None:
            if not paused:
                writer.write(b"<end>")
                accepted.extend(b"<end>")
                writer.close()

        writer.on("pause", on_pause)
        collect(reader, received, on_eof=net.done)

    net.pair(ready)
    net.run(timeout=10.0, what="no 'pause' (False) after the refusal, or the data did not arrive")
    assert 0 < st["queued_before"] <= st["limit"], "the case under test did not happen"
    assert st["refused"] == st["queued_before"], "the refused write changed the queue"
    assert st["events_after_refusal"] == [(True, st["queued_before"])]
    assert [paused for paused, _ in events] == [True, False], events
    assert received == accepted


def test_pause_events_alternate_through_stalls_refusals_and_drains(net: Net) -> None:
    """A writer that ignores 'pause': a write refused on an empty queue, a big write on the
    empty queue, then 64 KiB writes into a peer that does not read until one is refused; the
    peer reads everything; then another big write and the close. Whatever the kernel took at
    each step: 'pause' is True, False, True..., True only with more than ``write_bufsize``
    queued, never twice in a row, and the last one is False (the writer is not left paused)."""
    accepted, received = hashlib.sha256(), hashlib.sha256()
    events: list[tuple[bool, int]] = []
    st: dict[str, Any] = {"refused": None, "phase2": False, "total": 0, "got": 0}

    def write(writer: TcpConnection, chunk: bytes) -> None:
        writer.write(chunk)
        accepted.update(chunk)
        st["total"] += len(chunk)

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        writer.write_bufsize = 64 * KIB
        writer.max_write_buffer_size = 1 * MIB
        st["limit"] = writer.write_bufsize
        pause_recorder(writer, events)
        try:
            writer.write(block(0, 2 * MIB))
        except BufferError:
            st["refused_first"] = True
        write(writer, block(0, 768 * KIB))
        for index in range(1, 4096):  # the reader is paused: the queue only grows
            try:
                write(writer, block(index))
            except BufferError:
                st["refused"] = writer.write_buffer_size
                break
        st["events_before_reading"] = list(events)

        def phase2() -> None:
            write(writer, block(5000, 768 * KIB))
            writer.close()

        def on_pause(paused: bool) -> None:
            if not paused and not st["phase2"]:
                st["phase2"] = True
                net.later(0, phase2)

        def on_data(data: bytes) -> None:
            received.update(data)
            st["got"] += len(data)

        def on_disconnect() -> None:
            st["disconnected"] = st.get("disconnected", 0) + 1
            if st["disconnected"] == 2:
                net.done()

        writer.on("pause", on_pause)
        writer.on("disconnect", on_disconnect)
        reader.on("disconnect", on_disconnect)
        reader.on("data", on_data)
        reader.on("close", reader.close)
        net.later(0.05, reader.pause, False)  # then the reader reads everything

    net.pair(ready)
    net.run(timeout=10.0, what="the writer was left paused, or the data did not arrive")
    assert st.get("refused_first"), "the 2 MiB write over max_write_buffer_size was accepted"
    assert st["refused"] is not None, "no write was refused: the case under test did not happen"
    assert st["events_before_reading"] == [(True, st["events_before_reading"][0][1])], (
        f"not exactly one 'pause' (True) before the reader read: {st['events_before_reading']}"
    )
    assert_pause_events_alternate(events, st["limit"])
    assert st["got"] == st["total"]
    assert received.digest() == accepted.digest(), "the reader did not get what was accepted"


@pytest.mark.parametrize("then_fin", [True, False], ids=["data-and-fin", "data"])
@pytest.mark.parametrize("queued", ["before", "after"])
def test_output_drains_while_paused_with_unread_data_from_the_peer(
    net: Net, then_fin: bool, queued: str
) -> None:
    """The writer does not read (paused); the peer sends a request, maybe half-closes too. The
    hang-up with unread data (with select: any readable data) takes the writer's read side off
    the loop; bytes the writer queued before or after that must still go out once the peer
    reads: 'pause' (False) comes, and the peer gets everything."""
    accepted, received = bytearray(), bytearray()
    events: list[tuple[bool, int]] = []

    def fill(writer: TcpConnection) -> None:
        index = 0
        while writer.write_buffer_size <= writer.write_bufsize:  # the reader is not reading
            chunk = block(index)
            writer.write(chunk)
            accepted.extend(chunk)
            index += 1

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        pause_recorder(writer, events)

        def on_pause(paused: bool) -> None:
            if not paused:
                writer.write(b"<end>")
                accepted.extend(b"<end>")
                writer.close()

        writer.on("pause", on_pause)
        if queued == "before":
            fill(writer)
        reader.write(b"a request the writer does not read")
        if then_fin:
            reader.socket.shutdown(socket.SHUT_WR)
        # once the request is in the writer's socket, give the loop 50 ms of turns, then go on
        net.when(lambda: tf.has_unread(writer.socket), net.later, 0.05, go_on, writer, reader)

    def go_on(writer: TcpConnection, reader: TcpConnection) -> None:
        if queued == "after":
            fill(writer)
        collect(reader, received, on_eof=net.done)

    net.pair(ready)
    net.run(timeout=10.0, what="the writer's queue did not drain")
    assert [paused for paused, _ in events] == [True, False], events
    assert received == accepted


@pytest.mark.parametrize("when", ["queued", "partly-sent"])
def test_bytearray_mutated_after_write_is_sent_as_written(net: Net, when: str) -> None:
    expected, received = bytearray(), bytearray()
    st: dict[str, Any] = {}

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        if when == "queued":
            fill_socket(writer, expected)
            data = bytearray(b"A" * 100_000)
        else:  # the socket takes the head of this write at once; the rest is queued
            writer.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * KIB)
            data = bytearray(block(7, 8 * MIB))
        writer.write(data)
        expected.extend(data)
        st["queued"] = writer.write_buffer_size
        data[:] = b"\xee" * len(data)  # the caller reuses its buffer
        writer.close()
        collect(reader, received, on_eof=net.done)

    net.pair(ready)
    net.run(timeout=10.0)
    assert st["queued"] > 0, "nothing was queued: the case under test did not happen"
    assert len(received) == len(expected)
    if received != expected:
        first = next(i for i, (a, b) in enumerate(zip(received, expected, strict=True)) if a != b)
        pytest.fail(
            f"the peer got the bytearray's later contents from byte {first} on "
            f"(of {len(expected)}; {st['queued']} were queued after the write)",
            pytrace=False,
        )


@pytest.mark.parametrize("method", ["write", "write_last"])
@pytest.mark.parametrize("when", ["sent", "queued", "partly-sent"])
def test_a_memoryview_of_wide_items_is_sent_as_its_bytes(net: Net, when: str, method: str) -> None:
    """A memoryview whose items are wider than a byte (here 4-byte unsigned ints) counts, queues
    and sends by bytes, not by items."""
    expected, received = bytearray(), bytearray()
    st: dict[str, Any] = {}

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        if when == "queued":
            fill_socket(writer, expected)
            count = 25_000
        elif when == "partly-sent":  # the socket takes the head of this write at once
            writer.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * KIB)
            count = 2 * MIB
        else:
            count = 1_000
        view = memoryview(array.array("I", range(count)))
        assert view.itemsize == 4
        before = writer.write_buffer_size
        getattr(writer, method)(view)
        expected.extend(view.tobytes())
        st["queued"] = writer.write_buffer_size - before
        if method == "write":
            writer.close()
        collect(reader, received, on_eof=net.done)

    net.pair(ready)
    net.run(timeout=10.0)
    if when == "sent":
        assert st["queued"] == 0
    else:
        assert st["queued"] > 0, "nothing was queued: the case under test did not happen"
    if when == "queued":  # all of it, counted in bytes
        assert st["queued"] == 4 * 25_000
    assert len(received) == len(expected)
    assert received == expected


def test_sent_follows_bytes_reaching_the_socket(net: Net) -> None:
    log: list[int] = []  # the write queue's size at each 'sent'
    st: dict[str, Any] = {}

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        writer.on("sent", lambda: log.append(writer.write_buffer_size))
        writer.write(b"")
        st["after_empty_write"] = len(log)
        writer.write(b"first")
        fill_socket(writer)
        count = len(log)
        writer.write(block(999))  # only queued: nothing reached the socket
        st["queued_write_sent_events"] = len(log) - count
        st["mark"] = len(log)
        reader.on("data", lambda data: None)
        reader.pause(False)
        net.when(lambda: writer.write_buffer_size == 0, net.done, 0.05)

    net.pair(ready)
    net.run(timeout=10.0)
    assert st["after_empty_write"] == 0
    assert st["mark"] >= 1, "no 'sent' for bytes the socket took at once"
    assert st["queued_write_sent_events"] == 0, "'sent' emitted for a write that only queued"
    drained = log[st["mark"] :]
    assert drained, "no 'sent' while the queue drained"
    assert all(a > b for a, b in itertools.pairwise(drained)), drained
    assert drained[-1] == 0


@pytest.mark.parametrize("method", ["on", "once", "add_listener", "prepend_listener"])
@pytest.mark.parametrize("where", ["in a listener", "outside listeners", "with a sink"])
def test_a_sent_listener_added_after_writes_hears_the_next_one(
    net: Net, method: str, where: str
) -> None:
    """A connection looks for 'sent' listeners only once one was added (however and wherever
    it was added: from inside a listener, on() takes its fast path for other events)."""
    received = bytearray()
    st: dict[str, Any] = {"sent": 0}

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        writer.write(b"before,")  # (no 'sent' listener yet)
        if where == "with a sink":
            writer.sink(object())

        def add() -> None:
            getattr(writer, method)("sent", lambda: st.__setitem__("sent", st["sent"] + 1))

        if where == "outside listeners":
            contextvars.Context().run(add)
        else:
            add()  # (net.pair calls ready from a 'connect' listener)
        writer.write(b"after")
        st["after_write"] = st["sent"]
        writer.close()
        collect(reader, received, on_eof=net.done)

    net.pair(ready)
    net.run()
    assert st["after_write"] == 1, "the write after the listener was added emitted no 'sent'"
    assert received == b"before,after"


def test_a_connection_reads_its_settings_when_it_is_made(net: Net) -> None:
    """Settings changed on the class reach connections made afterwards; the connection's own
    values can be changed on it."""
    st: dict[str, Any] = {}
    names = ("read_bufsize", "write_bufsize", "max_write_buffer_size", "max_write_buffer_chunks")
    defaults = {name: getattr(TcpConnection, name) for name in names}

    class Small(TcpConnection):
        read_bufsize = 1000
        max_write_buffer_chunks = 3

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        sock_a, sock_b = socket.socketpair()
        made = Small(sock_a, ("pair", 0), net.loop)
        st["made"] = {name: getattr(made, name) for name in names}
        made.max_write_buffer_size = 10  # (on the connection: used from now on)
        try:
            made.write(b"x" * 11)
        except BufferError as exc:
            st["refused"] = str(exc)
        made.abort()
        sock_b.close()
        net.done()

    net.pair(ready)
    net.run()
    assert st["made"] == {**defaults, "read_bufsize": 1000, "max_write_buffer_chunks": 3}
    assert "write of 11 bytes refused" in st["refused"]


def test_a_connection_keeps_its_state_in_slots(net: Net) -> None:
    """After queued writes, 'pause', a close and the peer's FIN, a connection's instance dict
    holds only the emitter's attributes and the settings it copied when it was made (its
    state is in slots: on CPython 3.11 an attribute first set late would turn the dict of a
    busy server's connections into a slower plain dict)."""
    allowed = {
        "_EventEmitter__events",
        "_EventEmitter__sink",
        "read_bufsize",
        "write_bufsize",
        "max_write_buffer_size",
        "max_write_buffer_chunks",
        "defer_writes",
    }
    ends: list[TcpConnection] = []

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        ends.extend((writer, reader))
        writer.on("pause", lambda paused: None)
        fill_socket(writer)
        writer.write(block(1))  # queued
        writer.close()
        collect(reader, bytearray(), on_eof=net.done)

    net.pair(ready)
    net.run()
    assert len(ends) == 2
    for conn in ends:
        assert set(vars(conn)) <= allowed, set(vars(conn)) - allowed


def test_empty_write_is_a_noop(net: Net) -> None:
    received = bytearray()
    st: dict[str, Any] = {"sent": 0}

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        writer.on("sent", lambda: st.__setitem__("sent", st["sent"] + 1))
        for empty in (b"", bytearray(), memoryview(b"")):
            writer.write(empty)
        st["sent_after_empty"] = st["sent"]
        st["queued"] = writer.write_buffer_size
        writer.write(b"<end>")
        writer.close()
        collect(reader, received, on_eof=net.done)

    net.pair(ready)
    net.run()
    assert st["sent_after_empty"] == 0
    assert st["queued"] == 0
    assert received == b"<end>"


@pytest.mark.parametrize("method", ["write", "write_last"])
@pytest.mark.parametrize("how", ["close", "abort"])
def test_write_after_close_or_abort_raises_oserror(net: Net, how: str, method: str) -> None:
    seen: dict[str, Any] = {}

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        getattr(client_side, how)()
        try:
            getattr(client_side, method)(b"too late")
        except OSError as exc:
            seen["error"] = exc
        net.done()

    net.pair(ready)
    net.run()
    assert isinstance(seen.get("error"), OSError)


# -- closing: the 0.17 half-close model -----------------------------------------------------------


def counter(log: list[str], name: str, then: Any = None) -> Any:
    def record(*args: Any) -> None:
        log.append(name)
        if then is not None:
            then()

    return record


def test_close_flushes_the_queue_then_half_closes(net: Net) -> None:
    sent, received = hashlib.sha256(), hashlib.sha256()
    writer_log: list[str] = []
    reader_log: list[str] = []
    st: dict[str, Any] = {"bytes": 0}

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        blocks = fill_socket(writer, sent)
        for index in range(blocks, blocks + 8):  # well queued now
            chunk = block(index)
            writer.write(chunk)
            sent.update(chunk)
        st["total"] = (blocks + 8) * 64 * KIB
        writer.on("close", counter(writer_log, "close"))
        writer.on("disconnect", counter(writer_log, "disconnect", lambda: net.done(0.05)))
        writer.close()
        writer.close()  # idempotent
        st["queued_at_close"] = writer.write_buffer_size
        st["open_while_flushing"] = writer.socket.fileno() != -1
        st["connected_after_close"] = writer.tcp_connected
        try:
            writer.write(b"late")
        except OSError:
            st["write_raised"] = True

        def on_data(data: bytes) -> None:
            received.update(data)
            st["bytes"] += len(data)

        def on_eof() -> None:
            reader_log.append("close")
            st["eof_at"] = st["bytes"]
            st["writer_log_at_eof"] = list(writer_log)
            reader.close()

        reader.on("data", on_data)
        reader.on("close", on_eof)
        reader.on("disconnect", counter(reader_log, "disconnect"))
        net.later(0.05, reader.pause, False)

    net.pair(ready)
    net.run(timeout=10.0)
    assert st["queued_at_close"] > 0, "nothing was queued: close() had nothing to flush"
    assert st["open_while_flushing"]
    assert st["connected_after_close"] is False
    assert st.get("write_raised"), "write() after close() did not raise OSError"
    assert st["eof_at"] == st["total"], "the peer's EOF came before all the data"
    assert received.digest() == sent.digest()
    assert st["writer_log_at_eof"] == [], "the writer disconnected before the peer's FIN"
    assert reader_log == ["close", "disconnect"]
    assert writer_log.count("disconnect") == 1
    assert writer_log.count("close") <= 1
    assert writer_log[-1] == "disconnect"


@pytest.mark.parametrize("host", tf.HOSTS)
def test_peer_closes_first_and_we_can_still_write_back(net: Net, host: bytes) -> None:
    log: list[str] = []
    st: dict[str, Any] = {}
    server = net.server(host)
    peer = net.raw_connect(host, server.port)

    def on_connect(conn: TcpConnection) -> None:
        def on_close() -> None:
            log.append("close")
            st["socket_open"] = conn.socket.fileno() != -1
            conn.write(b"reply after your FIN")  # the half-closed peer still reads
            net.later(0.05, conn.close)

        conn.on("close", on_close)
        conn.on("disconnect", counter(log, "disconnect", lambda: net.done(0.05)))
        conn.pause(False)
        peer.shutdown(socket.SHUT_WR)

    server.on("connect", on_connect)
    net.run()
    assert log == ["close", "disconnect"]
    assert st["socket_open"], "the socket was closed when the peer's FIN arrived"
    got = b""
    while chunk := peer.recv(4096):
        got += chunk
    assert got == b"reply after your FIN"


def test_peer_closes_first_between_thor_connections(net: Net) -> None:
    server_log: list[str] = []
    client_log: list[str] = []

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        def both_gone() -> None:
            if "disconnect" in server_log and "disconnect" in client_log:
                net.done(0.05)

        server_side.on(
            "close", counter(server_log, "close", lambda: net.later(0.05, server_side.close))
        )
        server_side.on("disconnect", counter(server_log, "disconnect", both_gone))
        client_side.on("close", counter(client_log, "close"))
        client_side.on("disconnect", counter(client_log, "disconnect", both_gone))
        server_side.pause(False)
        client_side.close()

    net.pair(ready)
    net.run()
    assert server_log == ["close", "disconnect"]
    assert client_log.count("disconnect") == 1
    assert client_log.count("close") <= 1


def test_peer_gone_entirely_then_our_write_is_reset(net: Net) -> None:
    """The peer closed its socket (not just its side): our reply draws an RST. Still one
    'close' (its FIN) and one 'disconnect', whichever of the reset and our close() is first."""
    log: list[str] = []
    server = net.server()
    peer = net.raw_connect(b"127.0.0.1", server.port)

    def on_connect(conn: TcpConnection) -> None:
        def on_close() -> None:
            log.append("close")
            conn.write(b"anyone there?")
            net.later(0.05, conn.close)

        conn.on("close", on_close)
        conn.on("disconnect", counter(log, "disconnect", lambda: net.done(0.05)))
        conn.pause(False)
        peer.close()

    server.on("connect", on_connect)
    net.run()
    assert log == ["close", "disconnect"]


def test_abort_closes_at_once_and_drops_the_queue(net: Net) -> None:
    stream, received = bytearray(), bytearray()
    writer_log: list[str] = []
    st: dict[str, Any] = {}

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        blocks = fill_socket(writer, stream)
        for index in range(blocks, blocks + 4):
            chunk = block(index)
            writer.write(chunk)
            stream.extend(chunk)
        st["queued"] = writer.write_buffer_size
        writer.on("close", counter(writer_log, "close"))
        writer.on("disconnect", counter(writer_log, "disconnect"))
        writer.abort()
        st["log_after_abort"] = list(writer_log)
        st["socket_closed"] = writer.socket.fileno() == -1
        writer.abort()
        writer.close()
        try:
            writer.write(b"late")
        except OSError:
            st["write_raised"] = True
        collect(reader, received, on_eof=lambda: net.done(0.05))

    net.pair(ready)
    net.run(timeout=10.0)
    assert st["log_after_abort"] == ["disconnect"], "abort() did not close at once"
    assert st["socket_closed"]
    assert writer_log == ["disconnect"]
    assert st.get("write_raised"), "write() after abort() did not raise OSError"
    assert st["queued"] > 0
    # what the kernel had taken arrives; what was queued in thor is dropped
    assert received == stream[: len(stream) - st["queued"]]


def test_abort_after_close_closes_at_once(net: Net) -> None:
    log: list[str] = []

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        client_side.on("close", counter(log, "close"))
        client_side.on("disconnect", counter(log, "disconnect", lambda: net.done(0.05)))
        client_side.close()  # waits for the peer's FIN, which never comes (server is paused)
        client_side.abort()

    net.pair(ready)
    net.run()
    assert log == ["disconnect"]


def test_close_timeout_closes_when_the_peer_never_sends_its_fin(net: Net) -> None:
    log: list[str] = []
    st: dict[str, Any] = {}
    server = net.server()
    peer = net.raw_connect(b"127.0.0.1", server.port)

    def on_connect(conn: TcpConnection) -> None:
        def on_disconnect() -> None:
            log.append("disconnect")
            st["elapsed"] = net.loop.time() - st["start"]
            st["socket_closed"] = conn.socket.fileno() == -1
            net.done(0.05)

        conn.close_timeout = 0.2
        conn.on("close", counter(log, "close"))
        conn.on("disconnect", on_disconnect)
        st["start"] = net.loop.time()
        conn.close()

    server.on("connect", on_connect)
    net.run(timeout=3.0, what="close_timeout did not close the socket")
    assert log == ["disconnect"]
    assert st["elapsed"] >= 0.15
    assert st["socket_closed"]
    assert peer.recv(100) == b""


@pytest.mark.parametrize("paused", [False, True], ids=["reading", "paused"])
def test_reset_by_the_peer(net: Net, paused: bool) -> None:
    log: list[str] = []
    st: dict[str, Any] = {}
    server = net.server()
    peer = net.raw_connect(b"127.0.0.1", server.port)

    def on_connect(conn: TcpConnection) -> None:
        st["conn"] = conn
        conn.on("close", counter(log, "close"))
        conn.on("disconnect", counter(log, "disconnect", lambda: net.done(0.05)))
        if not paused:
            conn.pause(False)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # an RST, not a FIN

    server.on("connect", on_connect)
    net.run(timeout=2.0, what="the reset was not noticed")
    assert log == ["disconnect", "close"]
    error = st["conn"].error
    assert isinstance(error, OSError)
    assert error.errno == errno.ECONNRESET


def test_peer_closes_while_paused_with_unread_data(net: Net) -> None:
    """The data and then 'close' arrive once the application resumes reading; meanwhile the
    loop does not spin on the hang-up it cannot act on."""
    log: list[Any] = []
    st: dict[str, Any] = {}

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        server_side.on("data", lambda data: log.append(("data", data)))
        server_side.on("close", counter(log, "close", server_side.close))
        server_side.on("disconnect", counter(log, "disconnect", lambda: net.done(0.05)))
        client_side.write(b"last words")
        client_side.close()
        net.later(0.05, measure_from, server_side)

    def measure_from(conn: TcpConnection) -> None:
        st["cpu"] = tf.cpu_seconds()
        net.later(0.3, resume, conn)

    def resume(conn: TcpConnection) -> None:
        st["cpu"] = tf.cpu_seconds() - st["cpu"]
        st["log_while_paused"] = list(log)
        log.append("unpause")
        conn.pause(False)

    net.pair(ready)
    net.run()
    assert st["log_while_paused"] == []
    assert st["cpu"] < 0.1, f"the loop used {st['cpu']:.2f} s of CPU in 0.3 s while paused"
    assert log == ["unpause", ("data", b"last words"), "close", "disconnect"]


def test_peer_closes_while_paused_with_nothing_unread(net: Net) -> None:
    """'close' arrives without pause(False): there is nothing to read, only the FIN."""
    log: list[str] = []

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        server_side.on("close", counter(log, "close", server_side.close))
        server_side.on("disconnect", counter(log, "disconnect", lambda: net.done(0.05)))
        client_side.close()

    net.pair(ready)
    net.run(timeout=2.0, what="the peer's FIN was not noticed on a paused connection")
    assert log == ["close", "disconnect"]


def test_close_flushes_a_connection_taken_off_the_loop_after_a_hang_up(net: Net) -> None:
    """A paused connection whose peer half-closed with unread data is taken off the loop; a
    close() with output queued must still flush it and finish."""
    log: list[str] = []
    st: dict[str, int] = {}

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        server_side.on("disconnect", counter(log, "disconnect", lambda: net.done(0.05)))
        client_side.write(b"unread")
        client_side.close()
        net.later(0.05, finish, server_side)

    def finish(conn: TcpConnection) -> None:
        conn.write(b"x" * (8 * 1024 * 1024))  # more than the socket takes at once
        st["queued"] = conn.write_buffer_size
        conn.close()

    net.pair(ready)
    net.run(timeout=5.0, what="close() never flushed a connection taken off the loop")
    assert st["queued"] > 0
    assert log == ["disconnect"]


# -- half-close: shutdown_write() ------------------------------------------------------------------


@pytest.mark.parametrize("reading", ["reading", "paused-then-resumed"])
def test_shutdown_write_flushes_sends_fin_and_keeps_reading(net: Net, reading: str) -> None:
    """shutdown_write() with bytes queued: the peer gets them all, then EOF; it answers with
    more than the socket buffers hold and closes; we get the whole answer ('data' goes on after
    our FIN, pausing works), then 'close' and 'disconnect' without calling close()."""
    request, answer = hashlib.sha256(), hashlib.sha256()
    got_request, got_answer = hashlib.sha256(), hashlib.sha256()
    log: list[str] = []
    st: dict[str, Any] = {"request": 0, "answer": 0, "got_answer": 0, "paused_once": False}

    def ready(peer: TcpConnection, conn: TcpConnection) -> None:
        blocks = fill_socket(conn, request)  # the peer is not reading yet: bytes are queued
        st["request"] = blocks * 64 * KIB
        conn.shutdown_write()
        st["queued_at_shutdown"] = conn.write_buffer_size
        st["connected"] = conn.tcp_connected
        try:
            conn.write(b"late")
        except OSError:
            st["write_raised"] = True
        conn.shutdown_write()  # a no-op now

        def on_data(data: bytes) -> None:
            got_answer.update(data)
            st["got_answer"] += len(data)
            if reading != "reading" and not st["paused_once"]:
                st["paused_once"] = True
                conn.pause(True)
                # once more of the answer waits in the socket, resume
                net.when(lambda: tf.has_unread(conn.socket), conn.pause, False)

        conn.on("data", on_data)
        conn.on("close", counter(log, "close"))
        conn.on("disconnect", counter(log, "disconnect", net.done))
        conn.pause(False)

        def on_peer_data(data: bytes) -> None:
            got_request.update(data)
            st["got_request"] = st.get("got_request", 0) + len(data)

        def on_peer_eof() -> None:  # the request is complete: answer, then close
            st["request_at_eof"] = st.get("got_request", 0)
            for index in range(64):  # 4 MiB
                chunk = block(1000 + index)
                peer.write(chunk)
                answer.update(chunk)
                st["answer"] += len(chunk)
            peer.close()

        peer.on("data", on_peer_data)
        peer.on("close", on_peer_eof)
        net.later(0.05, peer.pause, False)

    net.pair(ready)
    net.run(timeout=10.0, what="the answer did not arrive after shutdown_write()")
    assert st["queued_at_shutdown"] > 0, "nothing was queued: the case under test did not happen"
    assert st["connected"] is False
    assert st.get("write_raised"), "write() after shutdown_write() did not raise OSError"
    assert st["request_at_eof"] == st["request"], "the peer's EOF came before all the data"
    assert got_request.digest() == request.digest()
    assert st["got_answer"] == st["answer"], "the answer after our FIN did not arrive whole"
    assert got_answer.digest() == answer.digest()
    assert log == ["close", "disconnect"]


def test_shutdown_write_on_an_empty_queue_sends_fin_at_once(net: Net) -> None:
    """With nothing queued the FIN goes out at once (no loop turn needed); reading goes on."""
    log: list[Any] = []

    def ready(peer: TcpConnection, conn: TcpConnection) -> None:
        conn.write(b"question")
        conn.shutdown_write()
        conn.on("data", lambda data: log.append(("data", data)))
        conn.on("close", counter(log, "close"))
        conn.on("disconnect", counter(log, "disconnect", net.done))
        conn.pause(False)
        received = bytearray()

        def on_peer_eof() -> None:
            log.append(("peer got", bytes(received)))
            peer.write(b"answer")
            peer.close()

        peer.on("data", received.extend)
        peer.on("close", on_peer_eof)
        peer.pause(False)

    net.pair(ready)
    net.run()
    assert log == [("peer got", b"question"), ("data", b"answer"), "close", "disconnect"]


def test_close_after_shutdown_write_stops_reading(net: Net) -> None:
    """close() after shutdown_write(): what the peer sends afterwards is dropped; the socket
    closes at the peer's FIN."""
    log: list[Any] = []

    def ready(peer: TcpConnection, conn: TcpConnection) -> None:
        conn.shutdown_write()

        def on_data(data: bytes) -> None:
            log.append(("data", data))
            conn.close()  # enough: whatever comes next is dropped
            peer_send_more()

        conn.on("data", on_data)
        conn.on("close", counter(log, "close"))
        conn.on("disconnect", counter(log, "disconnect", lambda: net.done(0.05)))
        conn.pause(False)

        def peer_send_more() -> None:
            peer.write(b"dropped")
            peer.close()

        peer.on("close", lambda: peer.write(b"first"))
        peer.pause(False)

    net.pair(ready)
    net.run()
    assert log[0] == ("data", b"first")
    assert ("data", b"dropped") not in log
    assert log[-1] == "disconnect" and log.count("disconnect") == 1


def test_shutdown_write_after_the_peers_fin_closes(net: Net) -> None:
    """The peer half-closed first (and reads on): our shutdown_write() is then close() (flush,
    FIN, the socket closes)."""
    received = bytearray()
    log: list[str] = []

    def ready(peer: TcpConnection, conn: TcpConnection) -> None:
        def on_close() -> None:
            log.append("close")
            conn.write(b"late answer")
            conn.shutdown_write()

        conn.on("close", on_close)
        conn.on("disconnect", counter(log, "disconnect"))
        conn.pause(False)
        collect(peer, received, on_eof=lambda: net.done(0.05))
        peer.shutdown_write()

    net.pair(ready)
    net.run()
    assert bytes(received) == b"late answer"
    assert log == ["close", "disconnect"]


@pytest.mark.parametrize("how", ["close", "abort"])
def test_shutdown_write_after_close_or_abort_is_a_noop(net: Net, how: str) -> None:
    st: dict[str, Any] = {}

    def ready(peer: TcpConnection, conn: TcpConnection) -> None:
        getattr(conn, how)()
        state = repr(conn)
        conn.shutdown_write()
        st["unchanged"] = repr(conn) == state
        net.done()

    net.pair(ready)
    net.run()
    assert st["unchanged"]


# -- errors in listeners --------------------------------------------------------------------------


class BoomError(Exception):
    pass


def test_exception_in_a_data_listener_aborts_that_connection_only(
    net: Net, caplog: pytest.LogCaptureFixture
) -> None:
    net.loop.set_exception_handler(None)  # the default: log to "thor.loop"
    caplog.set_level(logging.ERROR, logger="thor.loop")
    server = net.server()
    accepted: list[TcpConnection] = []
    logs: dict[str, list[str]] = {"bad": [], "bad_client": []}
    echoed = bytearray()

    def on_connect(conn: TcpConnection) -> None:
        accepted.append(conn)
        if len(accepted) == 1:

            def explode(data: bytes) -> None:
                raise BoomError("listener bug")

            conn.on("data", explode)
            conn.on("disconnect", counter(logs["bad"], "disconnect"))
        else:
            conn.on("data", conn.write)
        conn.pause(False)

    def first(server_side: TcpConnection, client_side: TcpConnection) -> None:
        client_side.on("close", counter(logs["bad_client"], "close", second))
        client_side.pause(False)
        client_side.write(b"boom")

    def second() -> None:
        net.pair(echo, server=server)

    def echo(server_side: TcpConnection, client_side: TcpConnection) -> None:
        def on_data(data: bytes) -> None:
            echoed.extend(data)
            if echoed == b"ping":
                net.done(0.05)

        client_side.on("data", on_data)
        client_side.pause(False)
        client_side.write(b"ping")

    server.on("connect", on_connect)
    net.pair(first, server=server)
    net.run()
    assert logs["bad"] == ["disconnect"], "the connection whose listener raised was not aborted"
    assert logs["bad_client"] == ["close"]
    assert echoed == b"ping", "the server stopped serving other connections"
    assert accepted[0] not in server.active_connections
    errors = [r for r in caplog.records if r.name == "thor.loop" and r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], BoomError)
