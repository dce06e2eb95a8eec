"""End-to-end flow control through the ReverseProxy: a client reading a 32 MiB response slowly
slows the origin down, and an origin reading a 32 MiB upload slowly slows the client down; in
both the proxy holds a bounded number of bytes (its write buffers are sampled during the
transfer, and the process's traced memory peak is bounded far below the body size)."""

from __future__ import annotations

import socket
import time
import tracemalloc
from typing import TYPE_CHECKING, Any

import proxy_support as ps

from thor.tcp import TcpConnection

if TYPE_CHECKING:
    from proxy_support import Harness, RawHeaders

    from thor.http.server import HttpServer, HttpServerExchange

harness = ps.harness

BODY = 32 * 1024 * 1024
#: what the proxy may hold in one direction: a TCP write buffer up to its pause mark, plus the
#: largest read (reads grow to max_read_bufsize in a bulk transfer) written past it
BUFFER_BOUND = TcpConnection.write_bufsize + TcpConnection.max_read_bufsize
#: the traced-memory peak allowed while 32 MiB pass (everything in this process: origin,
#: proxy, client thread)
MEMORY_BOUND = 8 * 1024 * 1024


class Sampler:
    """Samples, every few milliseconds on the loop, the bytes waiting in the write buffers of
    the given servers' connections (the proxy's side towards the client)."""

    def __init__(self, harness: Harness, servers: list[HttpServer], proxy: Any) -> None:
        self.harness = harness
        self.servers = servers
        self.proxy = proxy
        self.peak = 0
        self.samples = 0
        self.upstream_peak = 0
        harness.later(0.002, self.sample)

    def sample(self) -> None:
        self.samples += 1
        for server in self.servers:
            for conn in list(server.connections):
                tcp = conn.tcp_conn
                if tcp is not None:
                    self.peak = max(self.peak, tcp.write_buffer_size + conn._out_size)
        for pool in self.proxy.client._origins.values():
            for conn in pool.conns:
                if conn.tcp_conn is not None:
                    self.upstream_peak = max(self.upstream_peak, conn.tcp_conn.write_buffer_size)
        self.harness.later(0.002, self.sample)


def test_slow_client_slows_the_origin_and_memory_stays_bounded(harness: Harness) -> None:
    origin = harness.server(ps.streaming_handler(BODY))
    front, proxy = ps.make_proxy(harness, ps.origin_url(origin))
    sampler = Sampler(harness, [front], proxy)

    def client() -> tuple[bytes, int]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        harness.socks.append(sock)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", front.port))
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
        data = bytearray()
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        head, _, rest = bytes(data).partition(b"\r\n\r\n")
        received = len(rest)
        while received < BODY:
            chunk = sock.recv(16 * 1024)
            if not chunk:
                break
            received += len(chunk)
            time.sleep(0.0002)  # a slow reader (no assertion depends on its speed)
        return head, received

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        head, received = harness.client(client, timeout=120)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert head.startswith(b"HTTP/1.1 200 ")
    assert f"Content-Length: {BODY}".encode() in head
    assert received == BODY
    assert sampler.samples > 10
    assert 0 < sampler.peak <= BUFFER_BOUND
    assert peak < MEMORY_BOUND, f"traced memory peak {peak} bytes"


def slow_reading_origin(seen: dict[str, Any]) -> Any:
    """An origin that reads request bodies slowly: after each chunk it stops reading for a
    moment (``req_body_pause``), then answers with the byte count."""

    def handler(exchange: HttpServerExchange) -> None:
        conn = exchange.http_conn
        loop = conn.server.loop
        seen["received"] = 0

        def resume() -> None:
            conn.req_body_pause(False)

        def body(chunk: bytes) -> None:
            seen["received"] += len(chunk)
            conn.req_body_pause(True)
            loop.schedule(0.0005, resume)

        def done(trailers: RawHeaders) -> None:
            text = b"%d" % seen["received"]
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"%d" % len(text))])
            exchange.response_body(text)
            exchange.response_done([])

        exchange.on("request_body", body)
        exchange.on("request_done", done)

    return handler


def test_slow_origin_slows_the_upload_and_memory_stays_bounded(harness: Harness) -> None:
    seen: dict[str, Any] = {}
    origin = harness.server(slow_reading_origin(seen))
    # A small receive buffer on the origin's side (accepted sockets inherit the listener's), so
    # that the kernel cannot absorb the upload and the proxy's upstream queue must fill.
    listener = origin.tcp_server.sock
    assert listener is not None
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    front, proxy = ps.make_proxy(harness, ps.origin_url(origin))
    sampler = Sampler(harness, [], proxy)
    block = b"u" * (256 * 1024)

    def client() -> bytes:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        harness.socks.append(sock)
        sock.settimeout(30)
        sock.connect(("127.0.0.1", front.port))
        sock.sendall(b"PUT /up HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % BODY)
        for _ in range(BODY // len(block)):
            sock.sendall(block)
        data = b""
        while not data.endswith(b"%d" % BODY) and len(data) < 4096:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        response = harness.client(client, timeout=120)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.endswith(b"%d" % BODY)
    assert seen["received"] == BODY
    assert 0 < sampler.upstream_peak <= BUFFER_BOUND
    assert peak < MEMORY_BOUND, f"traced memory peak {peak} bytes"
