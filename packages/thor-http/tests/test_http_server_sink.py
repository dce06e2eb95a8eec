"""An HttpServerExchange's events delivered to a sink object (no listeners): its ``'error'``
reaches the sink; and ``HttpServer.tls``."""

from __future__ import annotations

import socket
import ssl
from typing import TYPE_CHECKING

import http_server_support as support
import trustme

from thor.http.error import HttpError
from thor.http.server import HttpServer, HttpServerExchange

if TYPE_CHECKING:
    from http_server_support import Harness

harness = support.harness


class ExchangeSink:
    """Records what an exchange emits (as its sink) and never answers."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.events: list[str] = []
        self.errors: list[HttpError] = []

    def request_start(self, method: bytes, uri: bytes, headers: object) -> None:
        self.events.append("request_start")

    def request_body(self, chunk: bytes) -> None:
        self.events.append("request_body")

    def error(self, err: HttpError) -> None:
        self.events.append("error")
        self.errors.append(err)
        self.harness.loop.stop()


def test_error_reaches_the_sink_when_the_client_goes_away(harness: Harness) -> None:
    sinks: list[ExchangeSink] = []

    def on_exchange(exchange: HttpServerExchange) -> None:
        sink = ExchangeSink(harness)
        sinks.append(sink)
        exchange.sink(sink)

    server = harness.server(on_exchange)

    def client() -> None:
        sock = harness.connect(server)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # reset, mid-body

    harness.client(client, settle=5.0)
    assert len(sinks) == 1
    assert sinks[0].events[0] == "request_start"
    assert sinks[0].events[-1] == "error"
    assert sinks[0].events.count("error") == 1


def test_tls_attribute(harness: Harness) -> None:
    plain = harness.server()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    secure = HttpServer(b"127.0.0.1", 0, harness.loop, tls_context=context)
    harness.servers.append(secure)
    assert plain.tls is False
    assert secure.tls is True
