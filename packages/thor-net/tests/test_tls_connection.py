"""TlsConnection on real loopback sockets: echo, bulk transfers with backpressure, the pending()
drain, and the TLS close sequence (close_notify, ragged EOF).

Certificates are made at test time with trustme. Every test runs its own loop under a watchdog
that fails the test (never passes it) if the loop does not finish in time, and ends by waiting
until no fd is left registered: a leaked socket shows as a timeout there.
"""

from __future__ import annotations

import array
import hashlib
import random
import socket
import ssl
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from tcp_fixtures import assert_pause_events_alternate
from tls_fixtures import Pki, run, stop_when_idle

import thor.loop
from thor.loop import LoopBase
from thor.tls import TlsClient, TlsConnection, TlsServer

# -- helpers (the shared ones are in tls_fixtures.py) -------------------------------------------


@pytest.fixture(params=thor.loop.available_backends())
def loop(request: pytest.FixtureRequest) -> Iterator[LoopBase]:
    """A fresh loop per test, for each polling backend of this platform."""
    new_loop = thor.loop.make(backend=request.param)
    yield new_loop
    new_loop.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def record_and_stop(loop: LoopBase, log: list[str], entry: str) -> None:
    log.append(entry)
    stop_when_idle(loop)


def connect(loop: LoopBase, pki: Pki, port: int, **options: Any) -> TlsClient:
    """A verifying TlsClient connecting to ``localhost`` (127.0.0.1) at ``port``."""
    if "context" not in options:
        options.setdefault("ca_file", pki.ca_file)
    client = TlsClient(loop, **options)
    client.on("connect_error", lambda *err: pytest.fail(f"connect_error {err}"))
    client.connect_dns(
        b"localhost", (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)), 5
    )
    return client


def tls_server(loop: LoopBase, pki: Pki, **options: Any) -> TlsServer:
    server = TlsServer(b"127.0.0.1", 0, loop=loop, certfile=pki.cert_file, **options)
    server.on("tls_error", lambda address, message: pytest.fail(f"tls_error {message}"))
    return server


# -- echo ---------------------------------------------------------------------------------------


def test_echo_both_ways(loop: LoopBase, pki: Pki) -> None:
    server = tls_server(loop, pki)
    server_got: list[bytes] = []
    client_got: list[bytes] = []
    events: list[str] = []
    info: dict[str, Any] = {}

    def on_server_connect(conn: TlsConnection) -> None:
        def on_data(data: bytes) -> None:
            server_got.append(data)
            conn.write(data)

        conn.on("data", on_data)
        conn.on("close", conn.close)
        conn.on("disconnect", lambda: events.append("server disconnect"))
        conn.pause(False)
        conn.write(b"greetings from the server;")
        server.shutdown()

    def on_client_connect(conn: TlsConnection) -> None:
        info.update(
            version=conn.tls_version,
            cipher=conn.cipher,
            cert=conn.peer_certificate(),
            der=conn.peer_certificate(binary_form=True),
            connected=conn.tcp_connected,
        )

        def on_data(data: bytes) -> None:
            client_got.append(data)
            if b"".join(client_got) == b"greetings from the server;ping":
                conn.close()

        conn.on("data", on_data)
        conn.on("close", lambda: events.append("client close"))
        conn.on("disconnect", partial(record_and_stop, loop, events, "client disconnect"))
        conn.pause(False)
        conn.write(b"ping")

    server.on("connect", on_server_connect)
    client = connect(loop, pki, server.port)
    client.on("connect", on_client_connect)
    run(loop)
    assert b"".join(server_got) == b"ping"
    assert b"".join(client_got) == b"greetings from the server;ping"
    assert info["version"] in ("TLSv1.2", "TLSv1.3")
    assert info["cipher"] is not None
    assert ("DNS", "localhost") in info["cert"]["subjectAltName"]
    assert isinstance(info["der"], bytes) and info["der"]
    assert info["connected"] is True
    assert sorted(events) == ["client close", "client disconnect", "server disconnect"]
    assert not server.active_connections


def test_close_sends_close_notify_and_both_sides_disconnect(loop: LoopBase, pki: Pki) -> None:
    server = tls_server(loop, pki)
    seen: dict[str, Any] = {}
    disconnects: list[str] = []

    def on_server_connect(conn: TlsConnection) -> None:
        def on_close() -> None:
            seen["server_close"] = (conn.close_notify_received, conn.error)
            conn.close()
            with pytest.raises(OSError):
                conn.write(b"too late")

        conn.on("close", on_close)
        conn.on("disconnect", lambda: disconnects.append("server"))
        conn.pause(False)
        server.shutdown()

    def on_client_connect(conn: TlsConnection) -> None:
        conn.on("close", lambda: seen.setdefault("client_close", True))
        conn.on("disconnect", partial(record_and_stop, loop, disconnects, "client"))
        conn.pause(False)
        conn.close()
        conn.close()  # idempotent
        assert not conn.tcp_connected

    server.on("connect", on_server_connect)
    connect(loop, pki, server.port).on("connect", on_client_connect)
    run(loop)
    assert seen["server_close"] == (True, None)
    assert sorted(disconnects) == ["client", "server"]


def record_until_peer_closes(
    server: TlsServer, seen: dict[str, Any], disconnects: list[str], reply: bytes = b""
) -> Callable[[TlsConnection], None]:
    """A 'connect' listener for ``server`` (which it shuts down): it reads until the peer
    closes, then records ``seen["server"] = (bytes read, close_notify_received, error)``,
    writes ``reply`` (if any) and closes; its 'disconnect' is appended to ``disconnects``."""

    def on_server_connect(conn: TlsConnection) -> None:
        received = bytearray()

        def on_close() -> None:
            seen["server"] = (bytes(received), conn.close_notify_received, conn.error)
            if reply:
                conn.write(reply)
            conn.close()

        conn.on("data", received.extend)
        conn.on("close", on_close)
        conn.on("disconnect", lambda: disconnects.append("server"))
        conn.pause(False)
        server.shutdown()

    return on_server_connect


def test_shutdown_write_is_close_over_tls(loop: LoopBase, pki: Pki) -> None:
    """No half-close over TLS: shutdown_write() flushes, sends close_notify and FIN like
    close(), and what the peer sends afterwards is dropped."""
    server = tls_server(loop, pki)
    seen: dict[str, Any] = {"client_data": []}
    disconnects: list[str] = []

    def on_client_connect(conn: TlsConnection) -> None:
        conn.on("data", seen["client_data"].append)
        conn.on("disconnect", partial(record_and_stop, loop, disconnects, "client"))
        conn.pause(False)
        conn.write(b"last words")
        conn.shutdown_write()
        seen["connected"] = conn.tcp_connected
        try:
            conn.write(b"too late")
        except OSError:
            seen["write_raised"] = True

    server.on(
        "connect", record_until_peer_closes(server, seen, disconnects, b"dropped by the client")
    )
    connect(loop, pki, server.port).on("connect", on_client_connect)
    run(loop)
    assert seen["server"] == (b"last words", True, None)
    assert seen["connected"] is False and seen.get("write_raised")
    assert seen["client_data"] == []
    assert sorted(disconnects) == ["client", "server"]


def test_write_last_over_tls_sends_the_bytes_then_close_notify(loop: LoopBase, pki: Pki) -> None:
    """write_last() over TLS is write() then close(): the bytes, close_notify and FIN, and the
    socket stays open until the peer's FIN (no closing at once, which would skip the
    close_notify exchange)."""
    server = tls_server(loop, pki)
    seen: dict[str, Any] = {}
    disconnects: list[str] = []

    def on_client_connect(conn: TlsConnection) -> None:
        conn.on("disconnect", partial(record_and_stop, loop, disconnects, "client"))
        conn.pause(False)
        conn.write_last(b"last words")
        seen["open"] = conn.socket.fileno() != -1
        try:
            conn.write_last(b"too late")
        except OSError:
            seen["again_raised"] = True

    server.on("connect", record_until_peer_closes(server, seen, disconnects))
    connect(loop, pki, server.port).on("connect", on_client_connect)
    run(loop)
    assert seen["server"] == (b"last words", True, None)
    assert seen["open"], "closed at once, without waiting for the peer's close_notify and FIN"
    assert seen.get("again_raised")
    assert sorted(disconnects) == ["client", "server"]


def test_eof_without_close_notify_is_a_normal_close(loop: LoopBase, pki: Pki) -> None:
    """A ragged EOF (FIN with no close_notify) gives 'close' with no error, like a FIN."""
    server = tls_server(loop, pki)
    seen: dict[str, Any] = {}

    def on_server_connect(conn: TlsConnection) -> None:
        def on_close() -> None:
            seen["server"] = (conn.close_notify_received, conn.error)
            conn.close()

        conn.on("close", on_close)
        conn.pause(False)
        server.shutdown()

    def on_client_connect(conn: TlsConnection) -> None:
        conn.on("close", conn.close)
        conn.on("disconnect", lambda: stop_when_idle(loop))
        conn.pause(False)
        socket.socket.shutdown(conn.socket, socket.SHUT_WR)  # below TLS: FIN only

    server.on("connect", on_server_connect)
    connect(loop, pki, server.port).on("connect", on_client_connect)
    run(loop)
    assert seen["server"] == (False, None)


def test_abort_emits_disconnect_only_and_the_peer_sees_close(loop: LoopBase, pki: Pki) -> None:
    server = tls_server(loop, pki)
    client_events: list[str] = []

    def on_server_connect(conn: TlsConnection) -> None:
        conn.on("close", conn.close)
        conn.on("disconnect", lambda: stop_when_idle(loop))
        conn.pause(False)
        server.shutdown()

    def on_client_connect(conn: TlsConnection) -> None:
        conn.on("close", lambda: client_events.append("close"))
        conn.on("disconnect", lambda: client_events.append("disconnect"))
        conn.write(b"queued or sent, then dropped")
        conn.abort()
        conn.abort()

    server.on("connect", on_server_connect)
    connect(loop, pki, server.port).on("connect", on_client_connect)
    run(loop)
    assert client_events == ["disconnect"]


# -- bulk transfer, backpressure ------------------------------------------------------------------

SIZE = 8 * 1024 * 1024
CHUNK = 64 * 1024


class Pump:
    """Writes ``payload`` in CHUNK writes as fast as the connection takes it, honouring 'pause';
    hashes what it receives; closes once both directions are complete."""

    def __init__(self, conn: TlsConnection, payload: bytes, expect: int) -> None:
        self.conn = conn
        self.view = memoryview(payload)
        self.offset = 0
        self.paused = False
        self.pauses = 0
        self.writes_while_paused = 0
        self.received = 0
        self.digest = hashlib.sha256()
        self.expect = expect
        self.closed = False
        # small kernel buffers: backpressure must come from thor's queue, whatever the machine
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            conn.socket.setsockopt(socket.SOL_SOCKET, option, 128 * 1024)
        conn.on("pause", self.on_pause)
        conn.on("data", self.on_data)
        conn.pause(False)
        self.pump()

    def on_pause(self, paused: bool) -> None:
        self.paused = paused
        if paused:
            self.pauses += 1
        else:
            self.pump()

    def pump(self) -> None:
        while not self.paused and self.offset < len(self.view):
            self.conn.write(self.view[self.offset : self.offset + CHUNK])
            self.offset += CHUNK
        self.maybe_close()

    def on_data(self, data: bytes) -> None:
        self.received += len(data)
        self.digest.update(data)
        self.maybe_close()

    def maybe_close(self) -> None:
        if not self.closed and self.offset >= len(self.view) and self.received >= self.expect:
            self.closed = True
            self.conn.close()


def test_large_transfers_both_ways_concurrently(loop: LoopBase, pki: Pki) -> None:
    rng = random.Random(20240601)
    upload = rng.randbytes(SIZE)
    download = rng.randbytes(SIZE)
    pumps: dict[str, Pump] = {}
    disconnects: list[str] = []

    def on_server_connect(conn: TlsConnection) -> None:
        conn.on("disconnect", lambda: disconnects.append("server"))
        pumps["server"] = Pump(conn, download, SIZE)
        server.shutdown()

    def on_client_connect(conn: TlsConnection) -> None:
        conn.on("disconnect", partial(record_and_stop, loop, disconnects, "client"))
        pumps["client"] = Pump(conn, upload, SIZE)

    server = tls_server(loop, pki)
    server.on("connect", on_server_connect)
    connect(loop, pki, server.port).on("connect", on_client_connect)
    run(loop, 60, "8 MiB each way")
    client, srv = pumps["client"], pumps["server"]
    assert srv.received == SIZE and srv.digest.digest() == hashlib.sha256(upload).digest()
    assert client.received == SIZE and client.digest.digest() == hashlib.sha256(download).digest()
    assert client.pauses >= 1 and srv.pauses >= 1, "the writers were never asked to pause"
    assert sorted(disconnects) == ["client", "server"]
    assert client.conn.error is None and srv.conn.error is None


class SmallReads(TlsConnection):
    """Reads 1000 bytes at a time: a 16 KiB TLS record leaves most of itself inside OpenSSL."""

    read_bufsize = 1000


def test_bytes_pending_inside_openssl_are_delivered(loop: LoopBase, pki: Pki) -> None:
    """Many small writes, coalesced into full TLS records, read with reads smaller than a
    record: everything arrives although the last record's tail is invisible to epoll."""
    server = tls_server(loop, pki)
    server.connection_class = SmallReads
    total = 300 * 1024
    received: list[bytes] = []
    payload = bytes(range(256)) * (total // 256)

    def on_server_connect(conn: TlsConnection) -> None:
        def on_data(data: bytes) -> None:
            received.append(data)
            if sum(map(len, received)) >= total:
                conn.close()

        conn.on("data", on_data)
        conn.on("disconnect", lambda: stop_when_idle(loop))
        conn.pause(False)
        server.shutdown()

    def on_client_connect(conn: TlsConnection) -> None:
        conn.on("close", conn.close)
        conn.pause(False)
        # the client stays silent after this burst: no further socket activity
        for offset in range(0, total, 1024):
            conn.write(payload[offset : offset + 1024])

    server.on("connect", on_server_connect)
    connect(loop, pki, server.port).on("connect", on_client_connect)
    run(loop, 10, "bytes stayed inside OpenSSL")
    assert b"".join(received) == payload


def test_pause_holds_data_and_resume_delivers_it(loop: LoopBase, pki: Pki) -> None:
    server = tls_server(loop, pki)
    server.connection_class = SmallReads
    received: list[bytes] = []
    payload = b"x" * 40000
    state: dict[str, Any] = {}

    def on_server_connect(conn: TlsConnection) -> None:
        def on_data(data: bytes) -> None:
            received.append(data)
            if len(received) == 1:
                conn.pause(True)
                state["held"] = sum(map(len, received))
                loop.schedule(0.05, conn.pause, False)
            if sum(map(len, received)) == len(payload):
                conn.close()

        conn.on("data", on_data)
        conn.on("disconnect", lambda: stop_when_idle(loop))
        conn.pause(False)
        server.shutdown()

    def on_client_connect(conn: TlsConnection) -> None:
        conn.on("close", conn.close)
        conn.pause(False)
        conn.write(payload)

    server.on("connect", on_server_connect)
    connect(loop, pki, server.port).on("connect", on_client_connect)
    run(loop)
    assert b"".join(received) == payload
    assert state["held"] < len(payload)


def test_ssl_details_of_a_given_context_are_used(loop: LoopBase, pki: Pki) -> None:
    """A client given its own context (here: TLS 1.2 only) negotiates with it."""
    context = ssl.create_default_context(cafile=pki.ca_file)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    server = tls_server(loop, pki)
    versions: list[str | None] = []

    def on_server_connect(conn: TlsConnection) -> None:
        versions.append(conn.tls_version)
        conn.on("close", conn.close)
        conn.pause(False)
        server.shutdown()

    def on_client_connect(conn: TlsConnection) -> None:
        versions.append(conn.tls_version)
        conn.on("disconnect", lambda: stop_when_idle(loop))
        conn.close()

    server.on("connect", on_server_connect)
    connect(loop, pki, server.port, context=context).on("connect", on_client_connect)
    run(loop)
    assert versions == ["TLSv1.2", "TLSv1.2"]


def test_sent_events_and_repr(loop: LoopBase, pki: Pki) -> None:
    server = tls_server(loop, pki)
    sent: list[int] = []
    reprs: list[str] = []

    def on_server_connect(conn: TlsConnection) -> None:
        conn.on("close", conn.close)
        conn.pause(False)
        server.shutdown()

    def on_client_connect(conn: TlsConnection) -> None:
        reprs.append(repr(conn))
        conn.on("sent", lambda: sent.append(1))
        conn.on("disconnect", lambda: stop_when_idle(loop))
        conn.write(b"abc")
        conn.close()

    server.on("connect", on_server_connect)
    client = connect(loop, pki, server.port)
    client.on("connect", on_client_connect)
    reprs.append(repr(client))
    reprs.append(repr(server))
    run(loop)
    assert sent
    assert reprs[0].startswith("<TlsClient") and reprs[1].startswith("<TlsServer")
    assert reprs[2].startswith("<TlsConnection")


def test_a_write_over_the_hard_limit_is_refused_whole(loop: LoopBase, pki: Pki) -> None:
    """Refused on an empty queue: BufferError, nothing sent or queued, and no 'pause' (True),
    since nothing would drain and no 'pause' (False) would ever follow."""
    server = tls_server(loop, pki)
    received: list[bytes] = []
    seen: dict[str, Any] = {}

    def on_server_connect(conn: TlsConnection) -> None:
        conn.on("data", received.append)
        conn.on("close", conn.close)
        conn.on("disconnect", lambda: stop_when_idle(loop))
        conn.pause(False)
        server.shutdown()

    def on_client_connect(conn: TlsConnection) -> None:
        pauses: list[bool] = []
        conn.on("pause", pauses.append)
        conn.max_write_buffer_size = 256 * 1024
        with pytest.raises(BufferError):
            conn.write(b"x" * (conn.max_write_buffer_size + 1))
        seen["queued"], seen["pauses"] = conn.write_buffer_size, list(pauses)
        conn.write(b"<end>")
        conn.close()

    server.on("connect", on_server_connect)
    connect(loop, pki, server.port).on("connect", on_client_connect)
    run(loop)
    assert seen == {"queued": 0, "pauses": []}
    assert b"".join(received) == b"<end>"


# -- the 'pause' events: strictly alternating, True only with bytes queued past the threshold ---


def when(loop: LoopBase, predicate: Any, then: Any, *args: Any) -> None:
    """Call ``then(*args)`` once ``predicate()`` holds, checking on a loop timer."""
    if predicate():
        then(*args)
    else:
        loop.schedule(0.005, when, loop, predicate, then, *args)


def block(index: int, size: int = 64 * 1024) -> bytes:
    """Chunk ``index`` of a test stream: its index repeated (loss or reordering shows)."""
    return index.to_bytes(8, "big") * (size // 8)


class Sink:
    """The server side: hashes what it reads (once told to read), closes after the peer."""

    def __init__(self, conn: TlsConnection, loop: LoopBase) -> None:
        self.conn = conn
        self.digest = hashlib.sha256()
        self.received = 0
        conn.on("data", self.on_data)
        conn.on("close", conn.close)
        conn.on("disconnect", lambda: stop_when_idle(loop))

    def on_data(self, data: bytes) -> None:
        self.digest.update(data)
        self.received += len(data)


def test_a_big_write_the_socket_takes_pauses_nobody(loop: LoopBase, pki: Pki) -> None:
    """A write 16 times ``write_bufsize`` (8 ``write_coalesce`` pieces) on an empty queue, into
    a send buffer with room for all of it: write() sends every piece, nothing stays queued, so
    no 'pause' at all. (Small settings, so that the default net.core.wmem_max is enough.)"""
    server = tls_server(loop, pki)
    data = block(5, 256 * 1024)
    sinks: list[Sink] = []
    events: list[tuple[bool, int]] = []
    seen: dict[str, Any] = {}

    def on_server_connect(conn: TlsConnection) -> None:
        sinks.append(Sink(conn, loop))
        conn.pause(False)
        server.shutdown()

    def on_client_connect(conn: TlsConnection) -> None:
        conn.write_bufsize = 16 * 1024
        conn.write_coalesce = 32 * 1024
        conn.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1024 * 1024)
        conn.on("pause", lambda paused: events.append((paused, conn.write_buffer_size)))
        conn.write(data)
        seen["queued"], seen["events"] = conn.write_buffer_size, list(events)
        conn.close()

    server.on("connect", on_server_connect)
    connect(loop, pki, server.port).on("connect", on_client_connect)
    run(loop)
    assert seen["queued"] == 0, f"write() left {seen['queued']} bytes queued (the socket had room)"
    assert seen["events"] == [] and events == [], f"'pause' with nothing queued: {events}"
    assert sinks[0].received == len(data)
    assert sinks[0].digest.digest() == hashlib.sha256(data).digest()


def test_a_write_refused_with_bytes_queued_pauses_until_the_queue_drains(
    loop: LoopBase, pki: Pki
) -> None:
    """A write refused while less than ``write_bufsize`` is queued asks the writer to pause;
    'pause' (False) follows once the reader takes the queue."""
    server = tls_server(loop, pki)
    sinks: list[Sink] = []
    events: list[tuple[bool, int]] = []
    accepted = hashlib.sha256()
    seen: dict[str, Any] = {"refused": None, "total": 0}

    def on_server_connect(conn: TlsConnection) -> None:
        sinks.append(Sink(conn, loop))  # not reading until the client's writes are done
        server.shutdown()

    def on_client_connect(conn: TlsConnection) -> None:
        conn.max_write_buffer_size = 512 * 1024
        seen["limit"] = conn.write_bufsize
        conn.on("pause", lambda paused: events.append((paused, conn.write_buffer_size)))
        index = 0
        while conn.write_buffer_size == 0 and index < 4096:  # until the socket is full
            chunk = block(index)
            conn.write(chunk)
            accepted.update(chunk)
            seen["total"] += len(chunk)
            index += 1
        seen["queued_before"] = conn.write_buffer_size
        try:
            conn.write(block(9, 600 * 1024))
        except BufferError:
            seen["refused"] = conn.write_buffer_size
        seen["events_after_refusal"] = list(events)

        def on_pause(paused: bool) -> None:
            if not paused:
                conn.write(b"<end>")
                accepted.update(b"<end>")
                seen["total"] += 5
                conn.close()

        conn.on("pause", on_pause)
        when(loop, lambda: bool(sinks), lambda: sinks[0].conn.pause(False))

    server.on("connect", on_server_connect)
    connect(loop, pki, server.port).on("connect", on_client_connect)
    run(loop, what="no 'pause' (False) after the refusal, or the data did not arrive")
    assert 0 < seen["queued_before"] <= seen["limit"], "the case under test did not happen"
    assert seen["refused"] == seen["queued_before"], "the refused write changed the queue"
    assert seen["events_after_refusal"] == [(True, seen["queued_before"])]
    assert [paused for paused, _ in events] == [True, False], events
    assert sinks[0].received == seen["total"]
    assert sinks[0].digest.digest() == accepted.digest()


def test_pause_events_alternate_through_stalls_refusals_and_drains(
    loop: LoopBase, pki: Pki
) -> None:
    """A writer that ignores 'pause': a write refused on an empty queue, a big write on the
    empty queue, 64 KiB writes into a peer that does not read until one is refused; the peer
    reads everything; another big write, and the close. Whatever the socket took at each step:
    'pause' is True, False, True..., True only with more than ``write_bufsize`` queued, never
    twice in a row, and the last one is False (the writer is not left paused)."""
    server = tls_server(loop, pki)
    sinks: list[Sink] = []
    events: list[tuple[bool, int]] = []
    accepted = hashlib.sha256()
    seen: dict[str, Any] = {"refused": None, "refused_first": False, "phase2": False, "total": 0}

    def on_server_connect(conn: TlsConnection) -> None:
        sinks.append(Sink(conn, loop))  # not reading until the client's first writes are done
        server.shutdown()

    def on_client_connect(conn: TlsConnection) -> None:
        def write(chunk: bytes) -> None:
            conn.write(chunk)
            accepted.update(chunk)
            seen["total"] += len(chunk)

        conn.write_bufsize = 64 * 1024
        conn.max_write_buffer_size = 1024 * 1024
        seen["limit"] = conn.write_bufsize
        conn.on("pause", lambda paused: events.append((paused, conn.write_buffer_size)))
        try:
            conn.write(block(0, 2 * 1024 * 1024))
        except BufferError:
            seen["refused_first"] = True
        write(block(0, 768 * 1024))
        for index in range(1, 4096):
            try:
                write(block(index))
            except BufferError:
                seen["refused"] = conn.write_buffer_size
                break
        seen["events_before_reading"] = list(events)

        def phase2() -> None:
            write(block(5000, 768 * 1024))
            conn.close()

        def on_pause(paused: bool) -> None:
            if not paused and not seen["phase2"]:
                seen["phase2"] = True
                loop.schedule(0, phase2)

        conn.on("pause", on_pause)
        when(loop, lambda: bool(sinks), lambda: sinks[0].conn.pause(False))

    server.on("connect", on_server_connect)
    connect(loop, pki, server.port).on("connect", on_client_connect)
    run(loop, what="the writer was left paused, or the data did not arrive")
    assert seen["refused_first"], "the 2 MiB write over max_write_buffer_size was accepted"
    assert seen["refused"] is not None, "no write was refused: the case under test did not happen"
    before = seen["events_before_reading"]
    assert [paused for paused, _ in before] == [True], (
        f"not exactly one 'pause' (True) before the reader read: {before}"
    )
    assert_pause_events_alternate(events, seen["limit"])
    assert sinks[0].received == seen["total"]
    assert sinks[0].digest.digest() == accepted.digest()


# -- rare TLS conditions, provoked ----------------------------------------------------------------


def test_close_notify_refused_for_now_is_sent_when_writable(loop: LoopBase, pki: Pki) -> None:
    """close_notify that cannot be written at once ("want write") is retried when writable."""
    server = tls_server(loop, pki)
    seen: dict[str, Any] = {}

    def on_server_connect(conn: TlsConnection) -> None:
        def on_close() -> None:
            seen["clean"] = conn.close_notify_received
            conn.close()

        conn.on("close", on_close)
        conn.pause(False)
        server.shutdown()

    def on_client_connect(conn: TlsConnection) -> None:
        real_unwrap = conn.socket.unwrap
        calls: list[int] = []

        def unwrap_later() -> Any:
            calls.append(1)
            if len(calls) == 1:
                raise ssl.SSLWantWriteError(ssl.SSL_ERROR_WANT_WRITE, "provoked")
            return real_unwrap()

        conn.socket.unwrap = unwrap_later  # type: ignore[method-assign]
        conn.on("disconnect", lambda: stop_when_idle(loop))
        conn.close()
        seen["calls after close"] = len(calls)
        with pytest.raises(OSError):
            conn.write(b"closing already")
        seen["calls"] = calls

    server.on("connect", on_server_connect)
    connect(loop, pki, server.port).on("connect", on_client_connect)
    run(loop)
    assert seen["calls after close"] == 1
    assert len(seen["calls"]) == 2
    assert seen["clean"] is True


def test_a_read_that_wants_a_write_is_retried_when_writable(loop: LoopBase, pki: Pki) -> None:
    """A read answered with "want write" is retried once the socket is writable. Provoked: the
    first read takes the record into OpenSSL (keeping 5 bytes) and then wants a write, so the
    rest is invisible to epoll; only the retry can deliver it."""
    server = tls_server(loop, pki)
    payload = b"hello, world"
    received: list[bytes] = []

    def on_server_connect(conn: TlsConnection) -> None:
        real_recv = conn.socket.recv
        calls: list[int] = []

        def recv_later(buflen: int = 1024, flags: int = 0) -> bytes:
            calls.append(1)
            if len(calls) == 1:
                received.append(real_recv(5, flags))
                raise ssl.SSLWantWriteError(ssl.SSL_ERROR_WANT_WRITE, "provoked")
            return real_recv(buflen, flags)

        conn.socket.recv = recv_later  # type: ignore[method-assign]

        def on_data(data: bytes) -> None:
            received.append(data)
            if b"".join(received) == payload:
                conn.close()

        conn.on("data", on_data)
        conn.on("disconnect", lambda: stop_when_idle(loop))
        conn.pause(False)
        server.shutdown()

    def on_client_connect(conn: TlsConnection) -> None:
        conn.on("close", conn.close)
        conn.pause(False)
        conn.write(payload)  # one record, then silence

    server.on("connect", on_server_connect)
    connect(loop, pki, server.port).on("connect", on_client_connect)
    run(loop)
    assert b"".join(received) == payload


def test_resuming_with_bytes_pending_inside_openssl_delivers_them(loop: LoopBase, pki: Pki) -> None:
    """Bytes already decrypted while the connection was paused (here: taken in part by a direct
    read) arrive after pause(False), although the socket has nothing more to say."""
    server = tls_server(loop, pki)
    payload = bytes(range(256)) * 4
    received: list[bytes] = []

    def on_server_connect(conn: TlsConnection) -> None:
        def on_data(data: bytes) -> None:
            received.append(data)
            if b"".join(received) == payload:
                conn.close()

        def read_a_little() -> None:
            try:
                received.append(conn.socket.recv(10))  # the rest of the record stays inside
            except ssl.SSLWantReadError:
                loop.schedule(0.005, read_a_little)
                return
            assert conn.socket.pending() > 0
            conn.on("data", on_data)
            conn.pause(False)

        conn.on("disconnect", lambda: stop_when_idle(loop))
        loop.schedule(0, read_a_little)
        server.shutdown()

    def on_client_connect(conn: TlsConnection) -> None:
        conn.on("close", conn.close)
        conn.pause(False)
        conn.write(payload)  # one record, then silence

    server.on("connect", on_server_connect)
    connect(loop, pki, server.port).on("connect", on_client_connect)
    run(loop)
    assert b"".join(received) == payload


def read_late_then_close(
    loop: LoopBase, server: TlsServer, received: list[bytes], size: int
) -> Callable[[TlsConnection], None]:
    """The server side of the write tests: one connection, read from 50 ms on (once the writer
    has queued) into ``received`` until ``size`` bytes came, then closed; the loop stops when
    idle after it."""

    def on_server_connect(conn: TlsConnection) -> None:
        def on_data(data: bytes) -> None:
            received.append(data)
            if sum(map(len, received)) >= size:
                conn.close()

        conn.on("data", on_data)
        conn.on("disconnect", lambda: stop_when_idle(loop))
        server.shutdown()
        loop.schedule(0.05, conn.pause, False)

    return on_server_connect


@pytest.mark.parametrize("count", [1_000, 2 * 1024 * 1024])
def test_a_memoryview_of_wide_items_is_counted_and_sent_as_its_bytes(
    loop: LoopBase, pki: Pki, count: int
) -> None:
    """A memoryview of 4-byte items, on an empty queue: one TLS write, or (8 MiB to a peer that
    does not read yet) partly sent and queued; the queue counts bytes, and the peer gets them
    all, in order."""
    server = tls_server(loop, pki)
    view = memoryview(array.array("I", range(count)))
    expected = view.tobytes()
    received: list[bytes] = []
    st: dict[str, int] = {}

    def on_client_connect(conn: TlsConnection) -> None:
        def on_close() -> None:  # the peer got everything and closed
            st["queued_at_end"] = conn.write_buffer_size
            conn.close()

        conn.on("close", on_close)
        conn.pause(False)
        conn.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        conn.write(view)
        st["queued"] = conn.write_buffer_size

    server.on("connect", read_late_then_close(loop, server, received, len(expected)))
    connect(loop, pki, server.port).on("connect", on_client_connect)
    run(loop)
    if count > 1_000:
        assert 0 < st["queued"] <= len(expected)
    else:
        assert st["queued"] == 0
    assert st["queued_at_end"] == 0
    assert b"".join(received) == expected


def test_mutable_buffers_changed_after_write_are_sent_as_written(loop: LoopBase, pki: Pki) -> None:
    server = tls_server(loop, pki)
    filler = b"f" * (2 * 1024 * 1024)
    expected = filler + b"A" * 1000 + b"B" * 1000 + b"C" * 1000
    received: list[bytes] = []

    def on_client_connect(conn: TlsConnection) -> None:
        conn.on("close", conn.close)
        conn.pause(False)
        conn.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        conn.write(filler)  # the peer does not read yet: most of it stays queued
        assert conn.write_buffer_size > 0
        mutable = [bytearray(b"A" * 1000), bytearray(b"B" * 1000), bytearray(b"C" * 1000)]
        conn.write(mutable[0])
        conn.write(memoryview(mutable[1]))
        conn.write(memoryview(mutable[2])[:])
        for buffer in mutable:
            buffer[:] = b"Z" * 1000

    server.on("connect", read_late_then_close(loop, server, received, len(expected)))
    connect(loop, pki, server.port).on("connect", on_client_connect)
    run(loop)
    assert b"".join(received) == expected


# -- the peer's close while paused ----------------------------------------------------------------


def client_context(pki: Pki, version: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki.ca_file)
    context.maximum_version = version
    return context


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_a_paused_connection_hears_the_peers_clean_close(
    loop: LoopBase, pki: Pki, version: ssl.TLSVersion
) -> None:
    """The server's connection stays paused (an application that only writes); the client
    closes (close_notify, then FIN). As a paused TcpConnection hears a FIN with no data
    waiting, it emits 'close': the records waiting held a close_notify and no data. (It was
    parked, waiting for a pause(False) that never comes, the socket left in CLOSE-WAIT.)"""
    server = tls_server(loop, pki)
    seen: list[str] = []

    def on_server_connect(conn: TlsConnection) -> None:
        conn.on(
            "close",
            lambda: (seen.append(f"close notify={conn.close_notify_received}"), conn.close()),
        )
        conn.on("data", lambda data: seen.append("data"))
        server.shutdown()  # never resumed: it stays paused

    def on_client_connect(conn: TlsConnection) -> None:
        conn.on("disconnect", lambda: stop_when_idle(loop))
        conn.close()

    server.on("connect", on_server_connect)
    client = connect(loop, pki, server.port, context=client_context(pki, version))
    client.on("connect", on_client_connect)
    run(loop, 5, "the paused connection never heard the close")
    assert seen == ["close notify=True"]


def test_a_paused_client_hears_a_bare_fin_behind_session_tickets(loop: LoopBase, pki: Pki) -> None:
    """TLS 1.3: the server's NewSessionTicket records reach a client that stays paused, then
    the server's FIN without close_notify. The tickets are no data, so the paused client
    emits 'close' (it waited for pause(False) with the tickets unread)."""
    server = tls_server(loop, pki)
    seen: list[str] = []

    def on_server_connect(conn: TlsConnection) -> None:
        server.shutdown()
        loop.schedule(0.1, conn.abort)  # after the tickets: a FIN, no close_notify

    def on_client_connect(conn: TlsConnection) -> None:
        seen.append(str(conn.tls_version))
        conn.on(
            "close",
            lambda: (seen.append(f"close notify={conn.close_notify_received}"), conn.close()),
        )
        conn.on("disconnect", lambda: stop_when_idle(loop))

    server.on("connect", on_server_connect)
    client = connect(loop, pki, server.port, context=client_context(pki, ssl.TLSVersion.TLSv1_3))
    client.on("connect", on_client_connect)
    run(loop, 5, "the paused client never heard the FIN")
    assert seen == ["TLSv1.3", "close notify=False"]


def test_data_found_after_the_peers_close_while_paused_comes_first_on_resume(
    loop: LoopBase, pki: Pki
) -> None:
    """The client writes 40000 bytes and closes while the server's connection (reading 1000
    bytes at a time) is paused: what is decrypted to look for data is held, and pause(False)
    delivers it first, then the rest in order, then 'close'."""
    server = tls_server(loop, pki)
    server.connection_class = SmallReads
    payload = bytes(random.Random(7).randbytes(40000))
    received: list[bytes] = []
    seen: list[str] = []

    def on_server_connect(conn: TlsConnection) -> None:
        conn.on("data", received.append)
        conn.on(
            "close", lambda: (seen.append(f"close after {sum(map(len, received))}"), conn.close())
        )
        server.shutdown()

        def resume_once_closed() -> None:
            if conn._peer_closed or conn._registered:  # (the hang-up was looked at)
                loop.schedule(0.05, resume_once_closed)
            else:
                seen.append(f"held {len(conn._held)}")
                conn.pause(False)

        loop.schedule(0.05, resume_once_closed)

    def on_client_connect(conn: TlsConnection) -> None:
        conn.on("disconnect", lambda: stop_when_idle(loop))
        conn.write(payload)
        conn.close()

    server.on("connect", on_server_connect)
    connect(loop, pki, server.port).on("connect", on_client_connect)
    run(loop, 5, "the held data or the close never came")
    assert b"".join(received) == payload
    assert seen == ["held 1000", "close after 40000"]
