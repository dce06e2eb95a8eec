"""HttpServer fixes from an audit: a response that ends the connection while the request body is
still coming gets a lingering close (not a reset that destroys it); a connection that is gone
starts no exchange for the rest of the read being parsed; empty lines between requests do not
keep an idle connection open; a response chunk over the TcpConnection's hard write limit is sent
while the client keeps up, and refused with BufferError (not dropped silently) once paused."""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING, Any

import http_server_support as support
import pytest

from thor.http import error
from thor.http.server import HttpServerExchange
from thor.tcp import TcpConnection

if TYPE_CHECKING:
    from http_server_support import Harness, RawHeaders

harness = support.harness

BODY_SIZE = 8_000_000  # more than the kernel buffers take: the client waits for the server
UPLOAD_HEAD = b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % BODY_SIZE
#: a chunked upload whose first chunk size line is malformed (400 while the rest is coming)
BAD_CHUNKED = b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
#: an upload with both framings (400, for smuggling) whose body follows
CL_AND_TE = (
    b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
    % BODY_SIZE
)
#: a head found too large before it ends (431 with max_field_section 1000); the rest follows
BIG_HEAD = b"POST /up HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 2000


# -- closing while the request body is still coming ------------------------------------------------


def raise_at_once(exchange: HttpServerExchange) -> None:
    raise RuntimeError("an application bug")  # answered 500 by the server


def refuse_at_once(exchange: HttpServerExchange) -> None:
    def start(method: bytes, uri: bytes, headers: RawHeaders) -> None:
        exchange.response_start(b"403", b"Forbidden", [(b"Content-Length", b"6")])
        exchange.response_body(b"denied")
        exchange.response_done([], close=True)

    exchange.on("request_start", start)


@pytest.mark.parametrize(
    ("handler", "settings", "start", "status"),
    [
        (raise_at_once, {}, UPLOAD_HEAD, b"500"),
        (refuse_at_once, {}, UPLOAD_HEAD, b"403"),
        (None, {"max_body_size": 1000}, UPLOAD_HEAD, b"413"),
        (None, {}, BAD_CHUNKED, b"400"),
        (None, {}, CL_AND_TE, b"400"),
        (None, {"max_field_section": 1000}, BIG_HEAD, b"431"),
    ],
    ids=[
        "application-error",
        "early-close",
        "body-too-large",
        "malformed-body",
        "length-and-chunked",
        "head-too-large",
    ],
)
def test_an_answer_before_the_body_is_read_lingers_for_the_rest(
    harness: Harness, handler: Any, settings: dict[str, Any], start: bytes, status: bytes
) -> None:
    """The server answers and ends the connection before the body is read, when nothing more
    of it is readable yet: the client, which sends the body before reading the answer (as
    http.client does), can send all of it and then reads the whole answer."""
    server = harness.server(handler, **settings)

    def client() -> tuple[bool, bytes]:
        sock = harness.connect(server)
        sock.sendall(start)
        sock.recv(1, socket.MSG_PEEK)  # the answer is out (the server closed already, or not)
        try:
            for _ in range(BODY_SIZE // 100_000):
                sock.sendall(b"a" * 100_000)
        except OSError:
            return False, b""
        return True, support.recv_until_close(sock, 5.0)

    sent, answer = harness.client(client)
    assert sent
    assert answer.startswith(b"HTTP/1.1 " + status + b" ")


# -- a connection gone in the middle of a read -----------------------------------------------------


@pytest.mark.parametrize("event", ["request_body", "request_done"])
def test_no_exchange_starts_after_the_connection_is_gone(harness: Harness, event: str) -> None:
    """The application aborts the connection while the first of three pipelined requests (read
    at once) is delivered: the two others make no exchange."""
    records: list[support.Record] = []

    def handler(exchange: HttpServerExchange) -> None:
        records.append(support.Record(exchange))

        def abort(*args: object) -> None:
            tcp = exchange.http_conn.tcp_conn
            if tcp is not None:
                tcp.abort()

        exchange.on(event, abort)

    server = harness.server(handler)

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(
            b"POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nDATA"
            b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nDATA"
            b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        return support.recv_until_close(sock, 5.0)

    assert harness.client(client) == b""
    assert [record.uri for record in records] == [b"/1"]
    assert [type(err) for err in records[0].errors] == [error.ConnectError]


# -- empty lines between requests ------------------------------------------------------------------


@pytest.mark.parametrize("split", [False, True], ids=["crlf", "cr-then-lf"])
def test_empty_lines_do_not_keep_an_idle_connection_open(harness: Harness, split: bool) -> None:
    """Empty lines before a request line are ignored (RFC 9112 §2.2), so they are no activity
    either: a used connection that only gets empty lines (each whole, or its CR and LF in reads
    of their own) is closed after ``idle_timeout``."""
    server = harness.server(
        support.hello_handler(), idle_timeout=0.5, request_head_timeout=0.5, sweep_interval=0.05
    )

    def client() -> tuple[bytes, bool]:
        sock = harness.connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        body = support.ResponseReader(sock).read().body
        for _ in range(50):  # an empty line every 0.1 s, for 5 s at most
            for part in (b"\r", b"\n") if split else (b"\r\n",):
                try:
                    sock.sendall(part)
                except OSError:
                    return body, True
                if support.closed_by_peer(sock, 0.1 if not split else 0.05):
                    return body, True
        return body, False

    body, closed = harness.client(client)
    assert body == support.HELLO
    assert closed


# -- response chunks over the hard write limit -----------------------------------------------------

BIG = 20_000_000  # over TcpConnection.max_write_buffer_size (16 MiB)


@pytest.mark.parametrize("counted", [True, False], ids=["content-length", "chunked"])
def test_a_chunk_over_the_write_limit_is_sent_to_a_reading_client(
    harness: Harness, counted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One ``response_body`` larger than the TcpConnection's ``max_write_buffer_size`` (here
    1 MiB), while the client keeps up: accepted, and the whole response arrives (with a
    chunked body, the last chunk written right after it too). The client starts reading only
    once it is written, so the queue holds more than the limit until it drains; then the
    limit is back (a second request on the connection sees it)."""
    monkeypatch.setattr(TcpConnection, "max_write_buffer_size", 1 << 20)
    monkeypatch.setattr(TcpConnection, "write_bufsize", 64 * 1024)
    outcome: list[Any] = []
    limits: list[int] = []  # the TcpConnection's max_write_buffer_size at each request
    written = threading.Event()  # the client reads only then: the queue holds over the limit

    def handler(exchange: HttpServerExchange) -> None:
        exchange.on("error", outcome.append)
        tcp_conn = exchange.http_conn.tcp_conn
        assert tcp_conn is not None
        limits.append(tcp_conn.max_write_buffer_size)

        def done(trailers: RawHeaders) -> None:
            if exchange.uri == b"/small":
                exchange.response_start(b"200", b"OK", [(b"Content-Length", b"2")])
                exchange.response_body(b"ok")
                exchange.response_done([])
                return
            fields = [(b"Content-Length", b"%d" % BIG)] if counted else []
            exchange.response_start(b"200", b"OK", fields)
            try:
                exchange.response_body(b"x" * BIG)
                exchange.response_done([])
            except BufferError as exc:
                outcome.append(exc)
            finally:
                written.set()

        exchange.on("request_done", done)

    server = harness.server(handler)

    def client() -> tuple[int, bytes]:
        sock = harness.connect(server)
        reader = support.ResponseReader(sock, timeout=10.0)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        written.wait(10)
        try:
            size = len(reader.read().body)
        except ConnectionError:
            return -1, b""
        # the same connection, after the queue drained: its limit is back
        sock.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
        return size, reader.read().body

    assert harness.client(client, timeout=20.0) == (BIG, b"ok")
    assert outcome == []
    assert limits == [TcpConnection.max_write_buffer_size] * 2


def test_writing_on_while_paused_past_the_write_limit_raises_buffer_error(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An application that ignores ``'pause'`` (its client reads nothing) gets BufferError from
    ``response_body`` once the queue would pass ``max_write_buffer_size``; the connection is
    dropped and the exchange told (``'error'`` first)."""
    monkeypatch.setattr(TcpConnection, "max_write_buffer_size", 1 << 20)
    monkeypatch.setattr(TcpConnection, "write_bufsize", 64 * 1024)
    seen: list[Any] = []
    finished = threading.Event()

    def handler(exchange: HttpServerExchange) -> None:
        exchange.on("error", seen.append)
        exchange.on("pause", seen.append)

        def done(trailers: RawHeaders) -> None:
            exchange.response_start(b"200", b"OK", [])
            chunk = b"x" * 100_000
            try:
                for _ in range(1000):  # far more than the kernel's buffers and the queue take
                    exchange.response_body(chunk)
            except BufferError as exc:
                seen.append(exc)
                seen.append(exchange.http_conn.tcp_conn)
            finally:
                finished.set()

        exchange.on("request_done", done)

    server = harness.server(handler)

    def client() -> bool:
        sock = harness.connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return finished.wait(10.0)  # (reading nothing meanwhile)

    assert harness.client(client, timeout=20.0)
    assert seen[0] is True  # paused first
    assert [type(item) for item in seen[1:3]] == [error.ConnectError, BufferError]
    assert seen[3:] == [None]  # the connection is gone


@pytest.mark.parametrize("counted", [True, False], ids=["content-length", "chunked"])
def test_a_large_chunk_written_with_its_head_is_queued_uncopied(
    harness: Harness, counted: bool
) -> None:
    """A large ``response_body`` chunk flushed together with the head (or its chunk-size line)
    goes to the TcpConnection as the application gave it (``writelines``), not joined into a
    copy: the connection's queue holds that very object while the client is not reading, and
    the response arrives whole."""
    body = bytes(range(256)) * (16 * 1024)  # 4 MiB: more than the kernel takes at once
    queued: list[bool] = []
    written = threading.Event()

    def handler(exchange: HttpServerExchange) -> None:
        def done(trailers: RawHeaders) -> None:
            fields = [(b"Content-Length", b"%d" % len(body))] if counted else []
            exchange.response_start(b"200", b"OK", fields)
            exchange.response_body(body)
            exchange.response_done([])
            tcp_conn = exchange.http_conn.tcp_conn
            assert tcp_conn is not None
            chunks = [c.obj if isinstance(c, memoryview) else c for c in tcp_conn._buffer]
            queued.append(any(chunk is body for chunk in chunks))
            written.set()

        exchange.on("request_done", done)

    server = harness.server(handler)

    def client() -> bytes:
        sock = harness.connect(server)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        reader = support.ResponseReader(sock, timeout=10.0)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        written.wait(10)
        return reader.read().body

    assert harness.client(client, timeout=20.0) == body
    assert queued == [True], "the body chunk was copied into the write queue"


def test_thousands_of_small_pipelined_responses_reach_a_client_that_reads_late(
    harness: Harness,
) -> None:
    """A client pipelines 10,000 small GETs in one go and reads only afterwards. Output past
    64 KiB was written unjoined, about two queue chunks per tiny response, so the
    TcpConnection's chunk limit (max_write_buffer_chunks, 4096) refused a write and the server
    dropped the client after 256 responses while its byte-counted 'pause' never came. Small
    pieces are now joined: every response arrives, in order."""
    count = 10_000
    server = harness.server(support.hello_handler())

    def client() -> list[bytes]:
        sock = harness.connect(server, timeout=10)
        sock.sendall(
            b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % number for number in range(count))
        )
        threading.Event().wait(0.5)  # the server answers into its queue meanwhile
        data = bytearray()
        while data.count(b"HTTP/1.1 200 OK\r\n") < count:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            data.extend(chunk)
        return [bytes(data[:17]), b"%d" % data.count(b"HTTP/1.1 200 OK\r\n")]

    first, answered = harness.client(client, timeout=30)
    assert first == b"HTTP/1.1 200 OK\r\n"
    assert answered == b"%d" % count
    assert not any(isinstance(err, BufferError) for err in harness.loop_errors)


def test_a_response_started_while_the_output_is_paused_hears_pause_at_once(
    harness: Harness,
) -> None:
    """Two pipelined requests from a client that reads nothing yet: both are read at once; the
    first response (12 MiB) fills the output and pauses it; the second starts after it. It was
    never told that the output was paused (only exchanges already started were), so it wrote
    on until the write limits dropped the connection; now its response_start emits 'pause'
    (True), and 'pause' (False) follows once the client reads."""
    big = b"x" * (12 * 1024 * 1024)  # more than the kernel's buffers take
    pauses: list[bool] = []

    def handler(exchange: HttpServerExchange) -> None:
        if exchange.uri == b"/first":

            def first(trailers: RawHeaders) -> None:
                exchange.response_start(b"200", b"OK", [(b"Content-Length", b"%d" % len(big))])
                exchange.response_body(big)
                exchange.response_done([])

            exchange.on("request_done", lambda trailers: harness.later(0.1, first, trailers))
            return

        def finish() -> None:
            exchange.response_body(b"second")
            exchange.response_done([])

        def on_pause(paused: bool) -> None:
            pauses.append(paused)
            if not paused:
                finish()

        def second() -> None:
            exchange.on("pause", on_pause)
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"6")])
            if not pauses:
                finish()

        exchange.on("request_done", lambda trailers: harness.later(0.2, second))

    server = harness.server(handler)

    def client() -> list[bytes]:
        sock = socket.socket()
        harness.socks.append(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # (before connecting)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(
            b"GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        threading.Event().wait(0.4)  # the second response starts meanwhile
        reader = support.ResponseReader(sock)
        return [reader.read().body[-6:], reader.read().body]

    assert harness.client(client) == [b"xxxxxx", b"second"]
    assert pauses == [True, False]
