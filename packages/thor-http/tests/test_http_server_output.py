"""Output written outside a read batch (an application answering later, as a proxy does): it
leaves on the next loop turn without waiting for ``response_done``, head and body together,
for several connections at once."""

from __future__ import annotations

import array
import threading
from typing import TYPE_CHECKING, Any

import http_server_support as support
import pytest

from thor.http.server import HttpServerExchange

if TYPE_CHECKING:
    from http_server_support import Harness

RawHeaders = list[tuple[bytes, bytes]]

harness = support.harness


def test_streamed_output_leaves_before_response_done_on_every_connection(
    harness: Harness,
) -> None:
    exchanges: list[HttpServerExchange] = []
    all_read = threading.Event()

    def handler(exchange: HttpServerExchange) -> None:
        def later() -> None:  # outside any read batch of this connection
            exchange.response_start(b"200", b"OK", [(b"Content-Type", b"text/plain")])
            exchange.response_body(b"part one;")

        exchanges.append(exchange)
        exchange.on("request_done", lambda trailers: harness.loop.schedule(0.01, later))

    server = harness.server(handler)

    def finish() -> None:  # only once the clients have the first parts
        for exchange in exchanges:
            exchange.response_body(b"part two")
            exchange.response_done([])

    def client() -> list[bytes]:
        socks = [harness.connect(server) for _ in range(3)]
        for sock in socks:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        firsts = []
        for sock in socks:
            got = b""
            while b"part one;" not in got:
                data = sock.recv(4096)
                assert data, "closed before the first part"
                got += data
            firsts.append(got)
        all_read.set()
        harness.loop.run_in_loop(finish)
        rests = []
        for sock, first in zip(socks, firsts, strict=True):
            got = first
            while not got.endswith(b"part two\r\n0\r\n\r\n"):
                data = sock.recv(4096)
                assert data, "closed before the end"
                got += data
            rests.append(got)
        return rests

    responses = harness.client(client)
    assert all_read.is_set()
    assert len(responses) == 3
    for response in responses:
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Transfer-Encoding: chunked\r\n" in response
        assert b"9\r\npart one;\r\n" in response
    assert not harness.servers[0]._to_flush  # nothing left queued


def test_a_connection_closed_while_queued_for_a_flush_is_harmless(harness: Harness) -> None:
    def handler(exchange: HttpServerExchange) -> None:
        def later() -> None:
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"5")])
            exchange.response_body(b"hel")  # queued for the flush pass...
            tcp = exchange.http_conn.tcp_conn
            assert tcp is not None
            tcp.abort()  # ...and the connection goes away first

        exchange.on("request_done", lambda trailers: harness.loop.schedule(0.01, later))

    server = harness.server(handler)

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return support.recv_until_close(sock)

    assert harness.client(client, settle=0.1) == b""
    assert not harness.servers[0]._to_flush


# -- body chunks that are buffers ------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["counted", "chunked"])
@pytest.mark.parametrize("kind", ["reused bytearray", "wide memoryview"])
def test_body_chunks_given_as_buffers_are_sent_as_their_bytes_were_then(
    harness: Harness, framing: str, kind: str
) -> None:
    """A bytearray the application reuses right after ``response_body`` is sent as it was
    (the output waits for the end of the read); a memoryview of 2-byte items counts as its
    bytes (Content-Length, chunk sizes). The connection stays in sync: a second request on it
    gets its own response."""
    if kind == "reused bytearray":
        expected = b"aaabbb"
    else:
        expected = array.array("H", [0x4141, 0x4242, 0x4343]).tobytes()

    def handler(exchange: HttpServerExchange) -> None:
        def done(trailers: RawHeaders) -> None:
            headers = [(b"Content-Length", b"6")] if framing == "counted" else []
            exchange.response_start(b"200", b"OK", headers)
            if kind == "reused bytearray":
                buffer = bytearray(b"aaa")
                exchange.response_body(buffer)
                buffer[:] = b"bbb"  # the application reuses its buffer at once
                exchange.response_body(buffer)
            else:
                exchange.response_body(memoryview(array.array("H", [0x4141, 0x4242, 0x4343])))
            exchange.response_done([])

        exchange.on("request_done", done)

    server = harness.server(handler)

    def client() -> tuple[support.Response, support.Response]:
        sock = harness.connect(server)
        reader = support.ResponseReader(sock)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = reader.read()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return first, reader.read()

    first, second = harness.client(client)
    for response in (first, second):
        assert response.status == b"200"
        assert response.body == expected
        if framing == "chunked":
            assert response.header(b"transfer-encoding") == [b"chunked"]


@pytest.mark.parametrize("chunk", ["text", 5, None])
def test_a_body_chunk_that_is_not_bytes_like_is_a_type_error(harness: Harness, chunk: Any) -> None:
    raised: list[BaseException] = []

    def handler(exchange: HttpServerExchange) -> None:
        def done(trailers: RawHeaders) -> None:
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"2")])
            try:
                exchange.response_body(chunk)
            except TypeError as exc:
                raised.append(exc)
            exchange.response_body(b"ok")
            exchange.response_done([])

        exchange.on("request_done", done)

    server = harness.server(handler)

    def client() -> support.Response:
        sock = harness.connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return support.ResponseReader(sock).read()

    response = harness.client(client)
    assert response.body == b"ok"
    assert len(raised) == 1
    assert type(chunk).__name__ in str(raised[0])
