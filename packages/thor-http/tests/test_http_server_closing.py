"""How an HttpServerConnection closes its socket after the response that ends it: at once when
nothing more can come from the client (its last request said so, was read whole and is
answered during its read, or nothing is waiting in the parser or the socket), with a lingering
close (our FIN, then wait for the client's) when the client is in the middle of sending more,
so that what it still sends does not meet a closed socket, whose reset would destroy the
response in its receive buffer.

Observed from the client (the response arrives whole, then an orderly EOF, no reset) and from
the server (its TcpServer's active connections: a lingering close keeps the connection until the
client's FIN).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING

import http_server_support as support
import pytest

from thor.http.server import HttpServer, HttpServerExchange
from thor.tcp import TcpConnection

if TYPE_CHECKING:
    from http_server_support import Harness, RawHeaders

harness = support.harness

CLOSE_GET = b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
OLD_GET = b"GET /old HTTP/1.0\r\nHost: x\r\n\r\n"
GET = b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n"


def active(server: HttpServer) -> int:
    """The server's open TCP connections (read from the client thread: a set's size)."""
    return len(server.tcp_server.active_connections)


def wait_for(predicate: object, limit: float = 2.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.005)
    return False


def test_a_closing_request_read_whole_closes_the_socket_at_once(harness: Harness) -> None:
    server = harness.server(support.hello_handler())

    def client() -> list[tuple[int, bool, bool]]:
        results = []
        for head in (CLOSE_GET, OLD_GET):
            sock = harness.connect(server)
            sock.sendall(head)
            response = support.ResponseReader(sock).read()
            # the server is done with the connection while the client still holds it open
            gone = wait_for(lambda: active(server) == 0)
            results.append((response.status, gone, support.closed_by_peer(sock, 2.0)))
            sock.close()
        return results

    assert harness.client(client) == [(b"200", True, True), (b"200", True, True)]


def test_bytes_read_along_with_a_closing_request_are_dropped_without_a_reset(
    harness: Harness,
) -> None:
    """A second request sent along with a ``Connection: close`` one (in the same read) is
    not served; since the server read it, closing at once sends no reset: the client gets the
    one response and an orderly EOF."""
    server = harness.server(support.hello_handler())

    def client() -> tuple[bytes, bool, bool, bytes]:
        sock = harness.connect(server)
        sock.sendall(CLOSE_GET + GET)  # (a client that should not have sent the second)
        reader = support.ResponseReader(sock)
        response = reader.read()
        gone = wait_for(lambda: active(server) == 0)
        eof = support.closed_by_peer(sock, 2.0)  # (a reset would raise or count as closed)
        return response.status, gone, eof, reader.rest()

    assert harness.client(client) == (b"200", True, True, b"")
    assert len(harness.exchanges) == 1


def test_a_partial_head_waiting_when_the_server_closes_gets_a_lingering_close(
    harness: Harness,
) -> None:
    """The application ends a keep-alive connection (``response_done(close=True)``) while
    the start of the client's next request is in the parser: lingering close."""

    def handler(exchange: HttpServerExchange) -> None:
        def answer() -> None:
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"2")])
            exchange.response_body(b"ok")
            exchange.response_done([], close=True)

        def done(trailers: RawHeaders) -> None:
            harness.later(0.15, answer)

        exchange.on("request_done", done)

    server = harness.server(handler)

    def client() -> tuple[bytes, bytes, bool, bool]:
        sock = harness.connect(server)
        sock.sendall(GET)
        time.sleep(0.05)
        sock.sendall(b"GET /next HTTP/1.1\r\n")  # the start of a next head
        response = support.ResponseReader(sock).read()
        time.sleep(0.2)
        lingering = active(server) == 1
        eof = support.closed_by_peer(sock, 2.0)
        sock.shutdown(socket.SHUT_WR)
        gone = wait_for(lambda: active(server) == 0)
        return response.status, response.body, lingering, eof and gone

    assert harness.client(client) == (b"200", b"ok", True, True)


def test_a_keep_alive_connection_the_server_ends_with_nothing_waiting_closes_at_once(
    harness: Harness,
) -> None:
    def handler(exchange: HttpServerExchange) -> None:
        def done(trailers: RawHeaders) -> None:
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"2")])
            exchange.response_body(b"ok")
            exchange.response_done([], close=True)

        exchange.on("request_done", done)

    server = harness.server(handler)

    def client() -> tuple[bytes, bool, bool]:
        sock = harness.connect(server)
        sock.sendall(GET)
        response = support.ResponseReader(sock).read()
        gone = wait_for(lambda: active(server) == 0)
        return response.status, gone, support.closed_by_peer(sock, 2.0)

    assert harness.client(client) == (b"200", True, True)


@pytest.mark.skipif(
    not hasattr(socket, "TCP_DEFER_ACCEPT"),
    reason="needs the server's deferred accept to leave the extra request unread (Linux)",
)
def test_a_client_sending_after_its_last_request_still_gets_the_whole_response(
    harness: Harness,
) -> None:
    """A client whose ``Connection: close`` request was read whole may send nothing more
    (RFC 9112 §9.6). One that does anyway, while a large answer is prepared, and reads
    slowly (a small receive window, so most of the answer is still in the server's kernel
    when the server closes), must still get all of it: a socket closed with unread bytes
    sends a reset, which would drop the rest (RFC 9112 §9.6's "TCP reset problem"). An answer
    made after the read that brought the request therefore looks at the socket first, and
    closes with a lingering close. (One made while that read is processed closes at once:
    the socket was read a moment before; test_a_closing_request_read_whole_...)

    The extra request stays unread in the server's socket: with deferred accept the
    connection arrives with the closing request, whose first read leaves the socket paused
    (nothing after a closing request is read). The answer waits until the peek shows it."""
    body = b"x" * 300_000
    sent = threading.Event()
    answered = threading.Event()

    def handler(exchange: HttpServerExchange) -> None:
        def answer() -> None:
            tcp = exchange.http_conn.tcp_conn
            assert tcp is not None
            if not (sent.is_set() and has_unread(tcp.socket)):
                harness.later(0.01, answer)
                return
            # the kernel takes the whole answer, so the server would close at once
            tcp.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"%d" % len(body))])
            exchange.response_body(body)
            exchange.response_done([])
            answered.set()

        def done(trailers: RawHeaders) -> None:
            harness.later(0.01, answer)

        exchange.on("request_done", done)

    server = harness.server(handler)

    def client() -> bytes:
        sock = socket.socket()
        harness.socks.append(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(CLOSE_GET)
        time.sleep(0.05)  # (the closing request in a read of its own)
        sock.sendall(GET)  # against the rules
        sent.set()
        assert answered.wait(5), "the server never saw the extra request waiting"
        return support.recv_until_close(sock, 5.0)

    answer = harness.client(client)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\r\n\r\n" + body)
    assert len(harness.exchanges) == 1


def has_unread(sock: socket.socket) -> bool:
    """Whether bytes wait unread in ``sock`` (a peek that never blocks)."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return False


def test_an_oversized_closing_upload_gets_its_413_not_a_reset(harness: Harness) -> None:
    """A ``Connection: close`` request whose chunked body goes over ``max_body_size`` is
    answered 413 while the client is still uploading: it was not read whole, so the server
    lingers (reading and dropping the rest) instead of resetting the upload, and the client
    reads the 413 once it has sent everything (as http.client and requests do)."""
    server = harness.server(support.hello_handler(), max_body_size=1000)

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(
            b"POST /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(10):  # 1 MB, streamed
            sock.sendall(b"%x\r\n" % 100_000 + b"a" * 100_000 + b"\r\n")
            time.sleep(0.02)
        sock.sendall(b"0\r\n\r\n")
        return support.recv_until_close(sock, 3.0)

    answer = harness.client(client)
    assert answer.startswith(b"HTTP/1.1 413 ")


@pytest.mark.parametrize("head", [CLOSE_GET, GET], ids=["closing", "keep-alive"])
def test_a_response_over_the_hard_write_limit_written_while_not_paused_arrives_whole(
    harness: Harness, head: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Output over ``max_write_buffer_size`` at once, from an application that was not asked
    to pause: taken anyway and sent as the client reads it, whether it goes out as the
    connection's last bytes (a closing request's response: ``write_last``) or through the
    ordinary flush. (Writing on while paused is refused: test_http_server_audit_fixes.py.)"""
    monkeypatch.setattr(TcpConnection, "max_write_buffer_size", 1000)
    monkeypatch.setattr(TcpConnection, "write_bufsize", 100)

    def handler(exchange: HttpServerExchange) -> None:
        def done(trailers: RawHeaders) -> None:
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"3000")])
            exchange.response_body(b"x" * 3000)
            exchange.response_done([])

        exchange.on("request_done", done)

    server = harness.server(handler)

    def client() -> support.Response:
        sock = harness.connect(server)
        sock.sendall(head)
        return support.ResponseReader(sock).read()

    answer = harness.client(client)
    assert answer.status == b"200"
    assert answer.body == b"x" * 3000
