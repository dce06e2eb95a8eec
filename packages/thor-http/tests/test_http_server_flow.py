"""HttpServer flow control: ``Expect: 100-continue`` (automatic, when the application wants the
body; with curl, http.client and a raw client that waits for it), request-body streaming with
``req_body_pause`` (the socket read stops: the client's send blocks), and response streaming
with the exchange's ``'pause'`` when the client does not read (memory stays bounded)."""

from __future__ import annotations

import http.client
import itertools
import shutil
import socket
import subprocess
import time
from typing import TYPE_CHECKING, Any

import http_server_support as support
import pytest

from thor.http.server import HttpServerExchange

if TYPE_CHECKING:
    from http_server_support import Harness


harness = support.harness
RawHeaders = list[tuple[bytes, bytes]]


def curl() -> str:
    """The curl executable; a test that needs it fails (never skips) when it is missing."""
    path = shutil.which("curl")
    if path is None:
        pytest.fail("curl is not installed: apt-get install curl")
    return path


# -- 100-continue --------------------------------------------------------------------------------


def test_100_continue_with_a_waiting_raw_client(harness: Harness) -> None:
    server = harness.server(support.echo_handler)

    def client() -> tuple[bytes, Any]:
        sock = harness.connect(server)
        sock.sendall(
            b"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        reader = support.ResponseReader(sock)
        interim = reader.read()  # the body is not sent before this arrives
        sock.sendall(b"hello")
        return interim.raw_head, reader.read()

    interim, final = harness.client(client)
    assert interim == b"HTTP/1.1 100 Continue"
    assert (final.status, final.body) == (b"200", b"hello")


def test_100_continue_with_curl(harness: Harness) -> None:
    server = harness.server(support.echo_handler)

    def client() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [
                curl(),
                "-sS",
                "-v",
                "--max-time",
                "10",
                "--expect100-timeout",
                "8",
                "-H",
                "Expect: 100-continue",
                "--data-binary",
                "x" * 2000,
                f"http://127.0.0.1:{server.port}/c",
            ],
            capture_output=True,
            timeout=20,
        )

    done = harness.client(client, timeout=20)
    assert done.returncode == 0, done.stderr
    assert b"< HTTP/1.1 100 Continue" in done.stderr
    assert done.stdout == b"x" * 2000


def test_100_continue_with_http_client(harness: Harness) -> None:
    server = harness.server(support.echo_handler)

    def client() -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("POST", "/", body=b"data", headers={"Expect": "100-continue"})
        res = conn.getresponse()  # skips the interim response
        body = res.read()
        conn.close()
        return res.status, body

    assert harness.client(client) == (200, b"data")


def test_no_100_continue_when_the_application_answers_first(harness: Harness) -> None:
    def handler(exchange: HttpServerExchange) -> None:
        def start(method: bytes, uri: bytes, headers: RawHeaders) -> None:
            exchange.response_start(b"413", b"Content Too Large", [(b"Content-Length", b"0")])
            exchange.response_done([])

        exchange.on("request_start", start)

    server = harness.server(handler)

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(
            b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
        )
        return support.recv_until_close(sock)

    data = harness.client(client)
    assert data.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    assert b"100 Continue" not in data
    assert b"Connection: close" in data  # the client may not send the body: we close


def test_100_continue_waits_while_the_body_is_paused(harness: Harness) -> None:
    def handler(exchange: HttpServerExchange) -> None:
        conn = exchange.http_conn

        def start(method: bytes, uri: bytes, headers: RawHeaders) -> None:
            conn.req_body_pause(True)
            harness.later(0.3, conn.req_body_pause, False)

        exchange.on("request_start", start)
        support.echo_handler(exchange)

    server = harness.server(handler)

    def client() -> tuple[float, bytes, bytes]:
        sock = harness.connect(server)
        started = time.monotonic()
        sock.sendall(
            b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
        )
        reader = support.ResponseReader(sock)
        interim = reader.read()
        waited = time.monotonic() - started
        sock.sendall(b"ok")
        return waited, interim.status, reader.read().body

    waited, status, body = harness.client(client)
    assert status == b"100" and body == b"ok"
    assert waited >= 0.25


# -- request body flow control -------------------------------------------------------------------


def test_req_body_pause_stops_reading_the_socket(harness: Harness) -> None:
    total = 8 * 1024 * 1024
    received: list[int] = []
    state: dict[str, Any] = {}

    def handler(exchange: HttpServerExchange) -> None:
        conn = exchange.http_conn

        def body(chunk: bytes) -> None:
            received.append(len(chunk))
            if "paused_at" not in state:
                state["paused_at"] = sum(received)
                conn.req_body_pause(True)
                harness.later(1.0, resume)

        def resume() -> None:
            state["resumed_with"] = sum(received)
            conn.req_body_pause(False)

        def done(trailers: RawHeaders) -> None:
            exchange.response_start(b"200", b"OK", [])
            exchange.response_body(b"%d" % sum(received))
            exchange.response_done([])

        exchange.on("request_body", body)
        exchange.on("request_done", done)

    server = harness.server(handler)
    sent_when_blocked: list[int] = []

    def client() -> bytes:
        sock = harness.connect(server, timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
        block = b"z" * 65536
        sent = 0
        sock.settimeout(0.3)
        while sent < total:
            try:
                sent += sock.send(block[: total - sent])
            except TimeoutError:  # blocked: the server stopped reading
                if not sent_when_blocked:
                    sent_when_blocked.append(sent)
                sock.settimeout(10)
        sock.settimeout(10)
        return support.ResponseReader(sock, timeout=10).read().body

    assert harness.client(client, timeout=20) == b"%d" % total
    assert sent_when_blocked, "the client's send never blocked"
    # while paused, the server took (almost) nothing more than when it paused
    assert state["resumed_with"] - state["paused_at"] <= 256 * 1024
    assert sent_when_blocked[0] < total


# -- response flow control -----------------------------------------------------------------------


def test_response_pause_when_the_client_does_not_read(harness: Harness) -> None:
    chunk = b"y" * 65536
    total_chunks = 400  # 25 MiB: more than any buffer on the way
    seen: dict[str, Any] = {"pauses": [], "max_buffered": 0, "sent": 0}

    def handler(exchange: HttpServerExchange) -> None:
        tcp = exchange.http_conn.tcp_conn
        state = {"paused": False}

        def pump() -> None:
            while not state["paused"] and seen["sent"] < total_chunks:
                exchange.response_body(chunk)
                seen["sent"] += 1
                assert tcp is not None
                seen["max_buffered"] = max(seen["max_buffered"], tcp.write_buffer_size)
            if seen["sent"] == total_chunks:
                seen["sent"] += 1
                exchange.response_done([])

        def pause(paused: bool) -> None:
            seen["pauses"].append(paused)
            state["paused"] = paused
            if not paused:
                pump()

        def done(trailers: RawHeaders) -> None:
            exchange.response_start(
                b"200", b"OK", [(b"Content-Length", b"%d" % (len(chunk) * total_chunks))]
            )
            pump()

        exchange.on("pause", pause)
        exchange.on("request_done", done)

    server = harness.server(handler)

    def client() -> int:
        sock = harness.connect(server, timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)  # not reading: the server must pause
        seen["paused_then"] = list(seen["pauses"])
        seen["sent_then"] = seen["sent"]
        reader = support.ResponseReader(sock, timeout=10)
        return len(reader.read().body)

    assert harness.client(client, timeout=30) == len(chunk) * total_chunks
    assert seen["paused_then"] == [True]
    assert seen["sent_then"] < total_chunks
    assert seen["pauses"][:2] == [True, False]
    # memory stays bounded: near the TcpConnection's high-water mark, never the whole body
    assert seen["max_buffered"] <= 512 * 1024
    paused_events: list[bool] = seen["pauses"]
    assert all(a != b for a, b in itertools.pairwise(paused_events))


def test_connection_pause_event(harness: Harness) -> None:
    conn_pauses: list[bool] = []
    big = b"q" * (4 * 1024 * 1024)

    def handler(exchange: HttpServerExchange) -> None:
        exchange.http_conn.on("pause", conn_pauses.append)

        def done(trailers: RawHeaders) -> None:
            exchange.response_start(b"200", b"OK", [])
            exchange.response_body(big)
            exchange.response_done([])

        exchange.on("request_done", done)

    server = harness.server(handler)

    def client() -> int:
        sock = harness.connect(server, timeout=10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        return len(support.ResponseReader(sock, timeout=10).read().body)

    assert harness.client(client) == len(big)
    assert conn_pauses[:2] == [True, False]
