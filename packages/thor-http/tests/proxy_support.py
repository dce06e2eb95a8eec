"""Shared support of the proxy tests (test_http_proxy_*.py): origins and a proxy in front of
them on 127.0.0.1, on the loop of http_server_support's Harness, with blocking clients in a
worker thread. Origin handlers record what reached them; tests assert afterwards."""

from __future__ import annotations

import ast
import socket
from collections.abc import Callable, Iterator
from typing import Any

import http_server_support as support
import pytest

import thor.loop
from thor.http.proxy import ProxyBase, ReverseProxy
from thor.http.server import HttpServer, HttpServerExchange
from thor.loop import LoopBase

RawHeaders = list[tuple[bytes, bytes]]


class Harness(support.Harness):
    """http_server_support's harness, which also closes the proxies' clients."""

    def __init__(self, loop: LoopBase) -> None:
        super().__init__(loop)
        self.proxies: list[ProxyBase] = []

    def close(self) -> None:
        for proxy in self.proxies:
            proxy.client.close()
        super().close()


def open_proxy_harness() -> Iterator[Harness]:
    loop = thor.loop.make()
    harness = Harness(loop)
    try:
        yield harness
    finally:
        try:
            harness.close()
        finally:
            loop.close()


harness = pytest.fixture(open_proxy_harness)


def make_proxy(
    harness: Harness,
    upstream: Any = None,
    cls: type[ProxyBase] = ReverseProxy,
    server_settings: dict[str, Any] | None = None,
    **settings: Any,
) -> tuple[HttpServer, Any]:
    """A front server on 127.0.0.1 and a proxy of ``cls`` (with ``settings`` as class
    attributes of a subclass) answering on it; the proxy's client is closed with the harness."""
    front = harness.server(None, **(server_settings or {}))
    proxy_class = type("TestProxy", (cls,), settings) if settings else cls
    proxy = proxy_class(front) if upstream is None else proxy_class(front, upstream)
    harness.proxies.append(proxy)
    return front, proxy


def origin_url(server: HttpServer) -> str:
    return f"http://127.0.0.1:{server.port}"


class Seen:
    """What an inspecting origin received, per request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []


def inspecting_handler(
    seen: Seen,
    extra: RawHeaders | None = None,
    trailers: RawHeaders | None = None,
    interim: RawHeaders | None = None,
) -> Callable[[HttpServerExchange], None]:
    """An origin that records each request (method, target, headers, body, trailers) and
    answers 200 with the repr of the request's headers as its body (``extra`` fields added,
    ``trailers`` sent as trailers, a 103 with ``interim`` first)."""

    def handler(exchange: HttpServerExchange) -> None:
        record: dict[str, Any] = {
            "method": exchange.method,
            "uri": exchange.uri,
            "headers": exchange.req_hdrs,
            "body": bytearray(),
            "done": False,
        }
        seen.requests.append(record)

        def body(chunk: bytes) -> None:
            record["body"] += chunk

        def done(request_trailers: RawHeaders) -> None:
            record["done"] = True
            record["trailers"] = request_trailers
            if interim is not None:
                exchange.response_nonfinal(b"103", b"Early Hints", interim)
            exchange.response_start(b"200", b"OK", [(b"X-Origin", b"yes"), *(extra or [])])
            exchange.response_body(repr(exchange.req_hdrs).encode())
            exchange.response_done(trailers or [])

        exchange.on("request_body", body)
        exchange.on("request_done", done)

    return handler


def headers_of(body: bytes) -> RawHeaders:
    """The header list an inspecting origin echoed."""
    value: RawHeaders = ast.literal_eval(body.decode())
    return value


def field(headers: RawHeaders, name: bytes) -> list[bytes]:
    """Values of ``name`` (case-insensitive), stripped."""
    return [v.strip() for n, v in headers if n.lower() == name.lower()]


def raw_request(harness: Harness, server: HttpServer, data: bytes) -> socket.socket:
    sock = harness.connect(server)
    sock.sendall(data)
    return sock


def streaming_handler(total: int, chunk: int = 64 * 1024) -> Callable[[HttpServerExchange], None]:
    """An origin that sends ``total`` bytes of ``b"x"`` with a Content-Length, respecting its
    exchange's ``'pause'`` (so the origin itself holds at most one TCP buffer)."""
    block = b"x" * chunk

    def handler(exchange: HttpServerExchange) -> None:
        state = {"left": total, "paused": False}

        def pump() -> None:
            while state["left"] > 0 and not state["paused"]:
                size = min(chunk, state["left"])
                state["left"] -= size
                exchange.response_body(block if size == chunk else block[:size])
            if state["left"] == 0:
                state["left"] = -1
                exchange.response_done([])

        def pause(paused: bool) -> None:
            state["paused"] = paused
            if not paused:
                exchange.http_conn.server.loop.schedule(0, pump)

        def done(trailers: RawHeaders) -> None:
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"%d" % total)])
            pump()

        exchange.on("pause", pause)
        exchange.on("request_done", done)

    return handler
