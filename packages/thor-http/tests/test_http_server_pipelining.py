"""HttpServer pipelining: several requests in one send are parsed in order, their exchanges made
in order and answered strictly in request order whatever order the application answers in; the
responses of one read batch leave in one send; held responses are bounded; the depth limit."""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

import http_server_support as support

from thor.http.server import HttpServerExchange

if TYPE_CHECKING:
    from http_server_support import Harness


harness = support.harness
RawHeaders = list[tuple[bytes, bytes]]


def delayed_handler(harness: Harness, delays: dict[bytes, float]) -> Any:
    """Answer each request ``delays[uri]`` seconds after it is complete (body: the uri)."""

    def handler(exchange: HttpServerExchange) -> None:
        def answer() -> None:
            exchange.response_start(b"200", b"OK", [(b"Content-Type", b"text/plain")])
            exchange.response_body(exchange.uri)
            exchange.response_done([])

        def done(trailers: RawHeaders) -> None:
            delay = delays.get(exchange.uri, 0.0)
            if delay:
                harness.later(delay, answer)
            else:
                answer()

        exchange.on("request_done", done)

    return handler


def test_three_pipelined_requests_answered_in_order(harness: Harness) -> None:
    # the first response is produced last
    server = harness.server(delayed_handler(harness, {b"/1": 0.3, b"/2": 0.1}))

    def client() -> list[bytes]:
        sock = harness.connect(server)
        sock.sendall(
            b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        reader = support.ResponseReader(sock)
        return [reader.read().body for _ in range(3)]

    assert harness.client(client) == [b"/1", b"/2", b"/3"]
    # the exchanges were made in order, at once (not one after the other's response)
    assert [ex.uri for ex in harness.exchanges] == [b"/1", b"/2", b"/3"]
    assert len({id(ex.http_conn) for ex in harness.exchanges}) == 1


def test_pipelined_responses_of_one_read_leave_in_one_send(harness: Harness) -> None:
    server = harness.server(support.hello_handler([(b"Content-Length", b"13")]))
    writes: list[int] = []

    def spy(tcp_conn: Any) -> None:
        original = tcp_conn.write

        def write(data: bytes) -> None:
            writes.append(len(data))
            original(data)

        tcp_conn.write = write

    server.tcp_server.prepend_listener("connect", spy)

    def client() -> list[bytes]:
        sock = harness.connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 16)
        reader = support.ResponseReader(sock)
        return [reader.read().body for _ in range(16)]

    assert harness.client(client) == [support.HELLO] * 16
    assert len(writes) <= 2  # one batch per read (the kernel may split the client's send)


def test_mixed_methods_in_a_pipeline_stay_in_sync(harness: Harness) -> None:
    def handler(exchange: HttpServerExchange) -> None:
        def done(trailers: RawHeaders) -> None:
            status = b"204" if exchange.uri == b"/empty" else b"200"
            exchange.response_start(status, b"X", [])
            exchange.response_body(b"body of " + exchange.uri)
            exchange.response_done([])

        exchange.on("request_done", done)

    server = harness.server(handler)

    def client() -> list[tuple[bytes, bytes]]:
        sock = harness.connect(server)
        sock.sendall(
            b"HEAD /head HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /empty HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /last HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        reader = support.ResponseReader(sock)
        out = []
        for method in (b"HEAD", b"GET", b"POST", b"GET"):
            res = reader.read(method)
            out.append((res.status, res.body))
        assert reader.rest(0.2) == b""
        return out

    assert harness.client(client) == [
        (b"200", b""),
        (b"204", b""),
        (b"200", b"body of /post"),
        (b"200", b"body of /last"),
    ]


def test_pipeline_depth_limit_answers_400_in_order(harness: Harness) -> None:
    # nothing is answered until all are in: three wait, the fourth is one too many
    server = harness.server(
        delayed_handler(harness, {b"/1": 0.2, b"/2": 0.2, b"/3": 0.2}), max_pipeline_depth=3
    )

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(1, 6)))
        return support.recv_until_close(sock)

    data = harness.client(client)
    statuses = [line.split(b" ")[1] for line in data.split(b"\r\n") if line.startswith(b"HTTP/")]
    assert statuses == [b"200", b"200", b"200", b"400"]
    assert data.endswith(b"Too many pipelined requests")
    assert [ex.uri for ex in harness.exchanges] == [b"/1", b"/2", b"/3"]


def test_held_responses_are_bounded(harness: Harness) -> None:
    # /1 answers late; /2 streams a large response meanwhile: it is told to pause, and no new
    # request is read until /1 is done
    pauses: list[bool] = []
    big = b"x" * 65536

    def handler(exchange: HttpServerExchange) -> None:
        if exchange.uri == b"/1":

            def late() -> None:
                exchange.response_start(b"200", b"OK", [(b"Content-Length", b"1")])
                exchange.response_body(b"1")
                exchange.response_done([])

            exchange.on("request_done", lambda trailers: harness.later(0.3, late))
            return
        if exchange.uri != b"/2":
            exchange.on("request_done", lambda t: support.hello_handler()(exchange))
            return
        state = {"sent": 0, "paused": False}

        def pump() -> None:
            while not state["paused"] and state["sent"] < 40:
                state["sent"] += 1
                exchange.response_body(big)
            if state["sent"] >= 40:
                exchange.response_done([])

        def pause(paused: bool) -> None:
            pauses.append(paused)
            state["paused"] = paused
            if not paused:
                pump()

        def done(trailers: RawHeaders) -> None:
            exchange.response_start(b"200", b"OK", [])
            pump()

        exchange.on("pause", pause)
        exchange.on("request_done", done)

    server = harness.server(handler, max_buffered_response=256 * 1024)

    def client() -> int:
        sock = harness.connect(server)
        sock.sendall(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = support.ResponseReader(sock, timeout=10)
        first = reader.read()
        assert first.body == b"1"
        return len(reader.read().body)

    assert harness.client(client) == 40 * len(big)
    assert pauses[:2] == [True, False]


def test_half_close_after_pipelined_requests_still_answers_them(harness: Harness) -> None:
    server = harness.server(delayed_handler(harness, {b"/1": 0.1}))

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        return support.recv_until_close(sock)

    data = harness.client(client)
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert data.index(b"/1") < data.index(b"/2")


def test_any_split_of_the_input_gives_the_same_responses(harness: Harness) -> None:
    import random

    server = harness.server(support.echo_handler)
    stream = (
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nX-T: 1\r\n\r\n"
        b"HEAD /d HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /e HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    )
    expected = [(b"/a", b""), (b"/b", b"hello"), (b"/c", b"abcde"), (b"/d", b""), (b"/e", b"")]
    rng = random.Random(1234)

    def client() -> list[list[tuple[bytes, bytes]]]:
        results = []
        for attempt in range(12):
            sock = harness.connect(server)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader = support.ResponseReader(sock)
            pos = 0
            while pos < len(stream):  # cut anywhere: 1 byte at a time for the first attempt
                size = 1 if attempt == 0 else rng.randint(1, 40)
                sock.sendall(stream[pos : pos + size])
                pos += size
                if attempt == 0 and pos % 16 == 0:
                    time.sleep(0.001)
            seen = []
            for method in (b"GET", b"POST", b"PUT", b"HEAD", b"GET"):
                res = reader.read(method)
                seen.append((res.header(b"x-uri")[0], res.body))
            results.append(seen)
            sock.close()
        return results

    for seen in harness.client(client, timeout=30):
        assert seen == expected
