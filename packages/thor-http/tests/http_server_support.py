"""Shared support of the HttpServer tests (test_http_server_*.py): a fresh loop per test, the
server under test on 127.0.0.1, and real clients driven from a worker thread.

pytest runs with ``--import-mode=importlib``: test modules load this file by path (``load()``)
and take its fixtures by assignment. Nothing here is collected as tests.

Rules (STYLE.md §6): the loop runs in the test's thread; blocking clients (http.client, requests,
urllib3, curl, raw sockets) run in a worker thread and never touch the loop, except through
``loop.run_in_loop``; every run has a safety timer that FAILS the test; application handlers
record what they see and never assert (the test asserts after the run); an exception that
reaches the loop's exception handler fails the test; whatever a test made is closed afterwards.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import thor.loop
from thor.http.server import HttpServer, HttpServerExchange
from thor.loop import LoopBase

RawHeaders = list[tuple[bytes, bytes]]

HELLO = b"Hello, world!"


class Harness:
    """A test's loop, its server(s), and the means to run clients against them.

    Attributes:
        loop: the fresh loop.
        exchanges: every exchange the servers made, in order.
        requests: for each exchange, ``[method, uri, headers, body, trailers, error]`` as seen
            by the recording handler.
    """

    def __init__(self, loop: LoopBase) -> None:
        self.loop = loop
        self.servers: list[HttpServer] = []
        self.exchanges: list[HttpServerExchange] = []
        self.loop_errors: list[tuple[BaseException, str]] = []
        self.expired: str | None = None
        self.socks: list[socket.socket] = []
        loop.set_exception_handler(self._loop_exception)

    def _loop_exception(self, loop: LoopBase, exc: BaseException, where: str) -> None:
        self.loop_errors.append((exc, where))
        loop.stop()

    # -- servers --------------------------------------------------------------------------------

    def server(
        self,
        handler: Callable[[HttpServerExchange], object] | None = None,
        cls: type[HttpServer] = HttpServer,
        **settings: Any,
    ) -> HttpServer:
        """An HttpServer on 127.0.0.1 (a free port), with ``settings`` as class attributes of a
        subclass (the parser limits are read when the server is made)."""
        server_class = type("TestHttpServer", (cls,), settings) if settings else cls
        server = server_class(b"127.0.0.1", 0, self.loop)
        self.servers.append(server)
        server.on("exchange", self.exchanges.append)
        if handler is not None:
            server.on("exchange", handler)
        return server

    # -- running --------------------------------------------------------------------------------

    def run(self, timeout: float = 10.0, what: str = "the scenario did not finish") -> None:
        """Run the loop until something calls ``loop.stop()``; fail on the safety timer."""

        def expire() -> None:
            self.expired = what
            self.loop.stop()

        safety = self.loop.schedule(timeout, expire)
        self.loop.run()
        safety.delete()
        if self.loop_errors:
            raise self.loop_errors[0][0]
        if self.expired is not None:
            pytest.fail(f"safety timer fired after {timeout} s: {self.expired}", pytrace=False)

    def client(self, work: Callable[[], Any], timeout: float = 10.0, settle: float = 0.0) -> Any:
        """Run the blocking ``work()`` in a worker thread while the loop runs here; stop the
        loop (``settle`` seconds) after it returns; return its result or raise its exception."""
        result: list[Any] = []
        failure: list[BaseException] = []

        def worker() -> None:
            try:
                result.append(work())
            except BaseException as exc:
                failure.append(exc)
            finally:
                if settle:
                    self.loop.run_in_loop(self.loop.schedule, settle, self.loop.stop)
                else:
                    self.loop.run_in_loop(self.loop.stop)

        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        try:
            self.run(timeout, f"the client {work!r} did not finish")
        finally:
            thread.join(timeout)
        if failure:
            raise failure[0]
        return result[0] if result else None

    def later(self, delay: float, callback: Callable[..., object], *args: Any) -> None:
        self.loop.schedule(delay, callback, *args)

    # -- raw sockets (client side, blocking, used from the worker thread) ----------------------

    def connect(self, server: HttpServer, timeout: float = 5.0) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
        self.socks.append(sock)
        return sock

    def close(self) -> None:
        for server in self.servers:
            server.remove_listeners()
            # every accepted connection, those handed to the application after an Upgrade too
            for tcp in list(server.tcp_server.active_connections):
                tcp.abort()
            server.shutdown()
        for sock in self.socks:
            with contextlib.suppress(OSError):
                sock.close()


def open_harness() -> Iterator[Harness]:
    loop = thor.loop.make()
    harness = Harness(loop)
    try:
        yield harness
    finally:
        try:
            harness.close()
        finally:
            loop.close()


harness = pytest.fixture(open_harness)


# -- handlers ------------------------------------------------------------------------------------


class Record:
    """What one exchange delivered to the application (a sink: no closures)."""

    def __init__(self, exchange: HttpServerExchange) -> None:
        self.exchange = exchange
        self.method = exchange.method
        self.uri = exchange.uri
        self.headers = exchange.req_hdrs
        self.body = bytearray()
        self.chunks: list[bytes] = []
        self.trailers: RawHeaders | None = None
        self.errors: list[Any] = []
        self.pauses: list[bool] = []
        self.events: list[str] = []
        self.started = False
        exchange.on("request_start", self.request_start)
        exchange.on("request_body", self.request_body)
        exchange.on("request_done", self.request_done)
        exchange.on("error", self.error)
        exchange.on("pause", self.pause)

    def request_start(self, method: bytes, uri: bytes, headers: RawHeaders) -> None:
        self.events.append("request_start")
        self.started = True

    def request_body(self, chunk: bytes) -> None:
        self.events.append("request_body")
        self.chunks.append(chunk)
        self.body += chunk

    def request_done(self, trailers: RawHeaders) -> None:
        self.events.append("request_done")
        self.trailers = trailers

    def error(self, err: Any) -> None:
        self.events.append("error")
        self.errors.append(err)

    def pause(self, paused: bool) -> None:
        self.pauses.append(paused)


def hello_handler(
    headers: RawHeaders | None = None, body: bytes = HELLO, status: bytes = b"200"
) -> Callable[[HttpServerExchange], None]:
    """Answer every request when it is complete: ``status``, ``headers``, ``body``."""
    fields = headers if headers is not None else [(b"Content-Type", b"text/plain")]

    def handler(exchange: HttpServerExchange) -> None:
        def done(trailers: RawHeaders) -> None:
            exchange.response_start(status, b"OK" if status == b"200" else b"Whatever", fields)
            exchange.response_body(body)
            exchange.response_done([])

        exchange.on("request_done", done)

    return handler


def echo_handler(exchange: HttpServerExchange) -> None:
    """Answer with the request: method and target in headers, the body echoed, trailers
    echoed as trailers."""
    body = bytearray()

    def collect(chunk: bytes) -> None:
        body.extend(chunk)

    def done(trailers: RawHeaders) -> None:
        exchange.response_start(
            b"200",
            b"OK",
            [
                (b"X-Method", exchange.method),
                (b"X-Uri", exchange.uri),
                (b"X-Version", exchange.req_version),
                (b"Content-Type", b"application/octet-stream"),
            ],
        )
        exchange.response_body(bytes(body))
        exchange.response_done(trailers)

    exchange.on("request_body", collect)
    exchange.on("request_done", done)


# -- reading responses on raw sockets ------------------------------------------------------------


def recv_until_close(sock: socket.socket, limit: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection (or ``limit`` seconds)."""
    sock.settimeout(limit)
    data = bytearray()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


def closed_by_peer(sock: socket.socket, limit: float = 5.0) -> bool:
    """True when the server closes the connection within ``limit`` seconds (what arrives
    before is discarded)."""
    sock.settimeout(limit)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        if not chunk:
            return True
    return False


class Response:
    """One response parsed from raw bytes (just enough for the tests)."""

    def __init__(
        self, status: bytes, phrase: bytes, headers: RawHeaders, body: bytes, raw_head: bytes
    ) -> None:
        self.status = status
        self.phrase = phrase
        self.headers = headers
        self.body = body
        self.raw_head = raw_head
        self.trailers: RawHeaders = []

    def header(self, name: bytes) -> list[bytes]:
        return [v.strip() for n, v in self.headers if n.lower() == name.lower()]

    def __repr__(self) -> str:
        return f"<Response {self.status!r} {self.headers!r} {self.body[:60]!r}>"


class ResponseReader:
    """Reads responses one by one from a blocking socket, framing them as RFC 9112 says."""

    def __init__(self, sock: socket.socket, timeout: float = 5.0) -> None:
        self.sock = sock
        self.buf = bytearray()
        sock.settimeout(timeout)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def _line_block(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                block = bytes(self.buf[:end])
                del self.buf[: end + 4]
                return block
            if not self._fill():
                raise ConnectionError(f"closed in a head: {bytes(self.buf)!r}")

    def _exactly(self, count: int) -> bytes:
        while len(self.buf) < count:
            if not self._fill():
                raise ConnectionError("closed in a body")
        data = bytes(self.buf[:count])
        del self.buf[:count]
        return data

    def _line(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[: end + 2]
                return line
            if not self._fill():
                raise ConnectionError("closed in a chunk line")

    def read(self, method: bytes = b"GET") -> Response:
        """The next response (1xx included: call again for the final one)."""
        block = self._line_block()
        lines = block.split(b"\r\n")
        version, status, phrase = ([*lines[0].split(b" ", 2), b""])[:3]
        assert version == b"HTTP/1.1", lines[0]
        headers = [tuple(line.split(b":", 1)) for line in lines[1:]]
        fields: RawHeaders = [(n, v) for n, v in headers]  # type: ignore[misc]
        response = Response(status, phrase, fields, b"", block)
        if status[:1] == b"1" or status in (b"204", b"304") or method == b"HEAD":
            return response
        if method == b"CONNECT" and status[:1] == b"2":
            return response
        lengths = response.header(b"content-length")
        if response.header(b"transfer-encoding"):
            body = bytearray()
            while True:
                size = int(self._line().split(b";")[0], 16)
                if not size:
                    break
                body += self._exactly(size)
                assert self._exactly(2) == b"\r\n"
                continue
            trailer_lines = []
            while True:
                line = self._line()
                if not line:
                    break
                trailer_lines.append(line)
            response.trailers = [
                (n, v)
                for n, v in (tuple(t.split(b":", 1)) for t in trailer_lines)  # type: ignore[misc]
            ]
            response.body = bytes(body)
        elif lengths:
            response.body = self._exactly(int(lengths[0]))
        else:
            while self._fill():
                pass
            response.body = bytes(self.buf)
            self.buf.clear()
        return response

    def rest(self, limit: float = 0.3) -> bytes:
        """What else arrives within ``limit`` seconds (or until close)."""
        self.sock.settimeout(limit)
        try:
            while self._fill():
                pass
        except (TimeoutError, ConnectionResetError):
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return data
