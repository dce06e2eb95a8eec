"""HttpServer timeouts (each separately configurable, checked by one sweep per server) and
shutdown: a slow-loris head is dropped after request_head_timeout while another client is served;
a connection that sends nothing; idle keep-alive connections closed after idle_timeout; a stalled
body (body_read_timeout); a client that stops reading (write_stall_timeout); response_timeout;
graceful_shutdown finishing an in-flight exchange; shutdown."""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import http_server_support as support
import pytest

from thor.http import error
from thor.http.server import HttpServerExchange

if TYPE_CHECKING:
    from http_server_support import Harness


harness = support.harness
RawHeaders = list[tuple[bytes, bytes]]
FAST = {"sweep_interval": 0.05}


def test_slowloris_head_is_dropped_while_others_are_served(harness: Harness) -> None:
    server = harness.server(support.hello_handler(), request_head_timeout=0.5, **FAST)

    def client() -> tuple[float, bool, list[bytes]]:
        slow = harness.connect(server)
        started = time.monotonic()
        head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        served = []
        closed = False
        for byte in head:  # one byte every 20 ms: never idle long enough for request_timeout
            try:
                slow.send(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.02)
            if len(served) < 3:  # meanwhile, a normal client is served
                with socket.create_connection(("127.0.0.1", server.port), timeout=5) as other:
                    other.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    served.append(support.recv_until_close(other)[-20:])
        if not closed:
            closed = support.closed_by_peer(slow, 2.0)
        return time.monotonic() - started, closed, served

    elapsed, closed, served = harness.client(client)
    assert closed
    assert 0.4 <= elapsed < 3.0
    assert all(body.endswith(b"0\r\n\r\n") for body in served) and len(served) == 3
    assert len(harness.exchanges) == 3  # the slow head never made an exchange


@pytest.mark.parametrize("defer_accept", [0, 1])
def test_a_connection_that_sends_nothing_is_dropped(harness: Harness, defer_accept: int) -> None:
    # (with defer_accept, the default, the kernel hands it over after about a second of
    # silence; request_head_timeout counts from then)
    server = harness.server(
        support.hello_handler(), request_head_timeout=0.3, defer_accept=defer_accept, **FAST
    )

    def client() -> bool:
        return support.closed_by_peer(harness.connect(server), 5.0)

    assert harness.client(client)
    assert not harness.exchanges


def test_idle_keep_alive_connection_is_closed(harness: Harness) -> None:
    server = harness.server(support.hello_handler(), idle_timeout=0.3, **FAST)

    def client() -> tuple[Any, bool, float]:
        sock = harness.connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = support.ResponseReader(sock).read()
        started = time.monotonic()
        closed = support.closed_by_peer(sock, 3.0)
        return response.body, closed, time.monotonic() - started

    body, closed, waited = harness.client(client)
    assert body == support.HELLO and closed
    assert 0.2 <= waited < 2.5


def test_idle_timeout_none_keeps_connections(harness: Harness) -> None:
    server = harness.server(support.hello_handler(), idle_timeout=None, **FAST)

    def client() -> bool:
        sock = harness.connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        support.ResponseReader(sock).read()
        return support.closed_by_peer(sock, 0.5)

    assert harness.client(client) is False


def test_stalled_body_is_dropped_and_the_exchange_told(harness: Harness) -> None:
    records: list[Any] = []
    server = harness.server(
        lambda ex: records.append(support.Record(ex)), body_read_timeout=0.3, **FAST
    )

    def client() -> bool:
        sock = harness.connect(server)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        return support.closed_by_peer(sock, 3.0)

    assert harness.client(client, settle=0.1)
    (record,) = records
    assert record.body == b"abc"
    assert len(record.errors) == 1 and isinstance(record.errors[0], error.ReadTimeoutError)


def test_request_timeout_applies_to_bodies_by_default(harness: Harness) -> None:
    records: list[Any] = []
    server = harness.server(
        lambda ex: records.append(support.Record(ex)), request_timeout=0.3, **FAST
    )

    def client() -> bool:
        sock = harness.connect(server)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        return support.closed_by_peer(sock, 3.0)

    assert harness.client(client, settle=0.1)
    assert isinstance(records[0].errors[0], error.ReadTimeoutError)


def test_paused_body_does_not_time_out(harness: Harness) -> None:
    def handler(exchange: HttpServerExchange) -> None:
        conn = exchange.http_conn
        exchange.on("request_start", lambda *a: conn.req_body_pause(True))
        harness.later(0.6, conn.req_body_pause, False)
        support.echo_handler(exchange)

    server = harness.server(handler, body_read_timeout=0.2, **FAST)

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        return bytes(support.ResponseReader(sock).read().body)

    assert harness.client(client) == b"abc"


def test_client_that_stops_reading_is_dropped(harness: Harness) -> None:
    records: list[Any] = []
    big = b"w" * (8 * 1024 * 1024)

    def handler(exchange: HttpServerExchange) -> None:
        records.append(support.Record(exchange))

        def done(trailers: RawHeaders) -> None:
            exchange.response_start(b"200", b"OK", [])
            exchange.response_body(big)

        exchange.on("request_done", done)

    server = harness.server(handler, write_stall_timeout=0.3, **FAST)

    def client() -> None:
        sock = harness.connect(server)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 5
        while not (records and records[0].errors) and time.monotonic() < deadline:
            time.sleep(0.05)  # polls a list the loop appends to: a read, no synchronisation

    harness.client(client, settle=0.1)
    (record,) = records
    assert len(record.errors) == 1 and isinstance(record.errors[0], error.WriteTimeoutError)
    assert not server.connections


def test_response_timeout(harness: Harness) -> None:
    records: list[Any] = []
    server = harness.server(
        lambda ex: records.append(support.Record(ex)), response_timeout=0.3, **FAST
    )

    def client() -> bool:
        sock = harness.connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return support.closed_by_peer(sock, 3.0)

    assert harness.client(client, settle=0.1)
    assert isinstance(records[0].errors[0], error.ConnectError)


# -- shutdown ------------------------------------------------------------------------------------


def test_graceful_shutdown_finishes_an_in_flight_exchange(harness: Harness) -> None:
    events: list[str] = []

    def handler(exchange: HttpServerExchange) -> None:
        def answer() -> None:
            events.append("answer")
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"4")])
            exchange.response_body(b"done")
            exchange.response_done([])

        def done(trailers: RawHeaders) -> None:
            events.append("shutdown")
            server.graceful_shutdown()
            harness.later(0.2, answer)

        exchange.on("request_done", done)

    # defer_accept off: the idle connection sends nothing, and with the deferral the kernel
    # would keep it from the server (test_http_server_defer_accept.py has that case)
    server = harness.server(handler, defer_accept=0)
    server.on("stop", lambda: (events.append("stop"), harness.loop.stop()))

    def client() -> tuple[bytes, bool]:
        idle = harness.connect(server)  # an idle keep-alive connection: closed at once
        sock = harness.connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = support.recv_until_close(sock)
        sock.close()  # our FIN: the server's close completes
        closed = support.closed_by_peer(idle, 2.0)
        idle.close()
        return data, closed

    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(client()), daemon=True)
    thread.start()
    harness.run(10, "the server did not stop")
    thread.join(10)
    data, idle_closed = result[0]
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"done")
    assert b"Connection: close" in data
    assert idle_closed
    assert events == ["shutdown", "answer", "stop"]
    # not listening any more
    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        refused = False
    except OSError:
        refused = True
    assert refused


def test_graceful_shutdown_with_no_connections_stops_at_once(harness: Harness) -> None:
    server = harness.server()
    stops: list[bool] = []
    server.on("stop", lambda: stops.append(True))
    server.graceful_shutdown()
    server.graceful_shutdown()
    assert stops == [True]


def test_shutdown_stops_listening_and_connections_carry_on(harness: Harness) -> None:
    server = harness.server(support.hello_handler([(b"Content-Length", b"13")]))
    stops: list[bool] = []
    server.on("stop", lambda: stops.append(True))

    def client() -> list[bytes]:
        sock = harness.connect(server)
        reader = support.ResponseReader(sock)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = reader.read().body
        harness.loop.run_in_loop(server.shutdown)
        time.sleep(0.2)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return [first, reader.read().body]

    assert harness.client(client) == [support.HELLO, support.HELLO]
    assert stops == [True]


def test_slowloris_body_is_dropped_while_others_are_served(harness: Harness) -> None:
    """A body trickled too slowly to ever look idle is dropped by the minimum rate."""
    server = harness.server(
        support.hello_handler(),
        body_min_rate=1000,
        body_rate_grace=0.3,
        request_timeout=60,
        **FAST,
    )

    def client() -> tuple[bool, list[bytes]]:
        slow = harness.connect(server)
        slow.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        served: list[bytes] = []
        closed = False
        for _ in range(200):  # one byte every 20 ms: 50 B/s, far below the 1000 B/s minimum
            try:
                slow.send(b"a")
            except OSError:
                closed = True
                break
            time.sleep(0.02)
            if len(served) < 3:  # meanwhile, a normal client is served
                with socket.create_connection(("127.0.0.1", server.port), timeout=5) as other:
                    other.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    served.append(support.recv_until_close(other)[-20:])
        if not closed:
            closed = support.closed_by_peer(slow, 2.0)
        return closed, served

    closed, served = harness.client(client, timeout=20)
    assert closed
    assert len(served) == 3 and all(body.endswith(b"0\r\n\r\n") for body in served)


def test_a_steady_body_above_the_minimum_rate_is_received(harness: Harness) -> None:
    """The minimum rate does not cut a body that arrives steadily fast enough."""
    server = harness.server(support.echo_handler, body_min_rate=1000, body_rate_grace=0.2, **FAST)

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\nConnection: close\r\n\r\n"
        )
        for _ in range(20):  # 200 bytes every 20 ms: about 10 kB/s
            sock.sendall(b"b" * 200)
            time.sleep(0.02)
        return support.recv_until_close(sock)

    data = harness.client(client, timeout=20)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b"b" * 4000 in data  # the whole body, echoed in one piece
