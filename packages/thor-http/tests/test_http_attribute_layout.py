"""The per-connection and per-request objects keep their state in slots: after requests,
timeout sweeps and closes, the instance dict of an HttpServerConnection, HttpServerExchange,
HttpClientConnection or HttpClientExchange holds only what EventEmitter keeps there.

Why it matters (CPython 3.11): the instance dicts of a class share one key table that stops
taking new names once some 30 instances were made; an instance that sets a new attribute after
that falls back to a plain dict, slower on every access. A state attribute added outside the
slots would bring that back on a busy server or client (see HttpServerConnection.__slots__).
"""

from __future__ import annotations

from typing import Any

import pytest

import thor.loop
from thor.events import on
from thor.http.client import HttpClient, HttpClientConnection, HttpClientExchange
from thor.http.server import HttpServer, HttpServerConnection, HttpServerExchange

EMITTER_KEYS = {"_EventEmitter__events", "_EventEmitter__sink"}
BODY = b"Hello, world!"


@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "connection-close"])
def test_connections_and_exchanges_keep_their_state_in_slots(close: bool) -> None:
    loop = thor.loop.make()
    server = HttpServer(b"127.0.0.1", 0, loop)
    client = HttpClient(loop)
    client.max_server_conn = 5
    conns: set[HttpServerConnection] = set()
    client_exchanges: list[HttpClientExchange] = []
    server_exchanges: list[HttpServerExchange] = []
    client_conns: set[HttpClientConnection] = set()
    errors: list[Any] = []
    left = [20]

    def serve(ex: HttpServerExchange) -> None:
        conns.add(ex.http_conn)
        server_exchanges.append(ex)

        @on(ex)
        def request_done(trailers: Any) -> None:
            ex.response_start(b"200", b"OK", [(b"Content-Length", b"%d" % len(BODY))])
            ex.response_body(BODY)
            ex.response_done([])

    server.on("exchange", serve)

    def request() -> None:
        ex = client.exchange()
        client_exchanges.append(ex)

        @on(ex)
        def response_start(status: bytes, phrase: bytes, headers: Any) -> None:
            if ex.conn is not None:  # (listeners record; the test asserts after the run)
                client_conns.add(ex.conn)

        @on(ex)
        def response_done(trailers: Any) -> None:
            left[0] -= 1
            if left[0] == 0:
                for conn in conns:  # a sweep of the timeouts, as the server's timer does
                    conn._check_timeouts(loop.time())
                loop.stop()
            elif left[0] >= 5:
                request()

        ex.on("error", errors.append)
        headers = [(b"Connection", b"close")] if close else []
        ex.request_start(b"GET", b"http://127.0.0.1:%d/" % server.port, headers)
        ex.request_done([])

    for _ in range(5):
        request()
    safety = loop.schedule(10, loop.stop)
    loop.run()
    safety.delete()
    client.close()
    for tcp in list(server.tcp_server.active_connections):
        tcp.abort()
    server.shutdown()
    loop.close()
    assert errors == []
    assert left[0] == 0, "the requests did not all finish"
    assert conns
    for conn in conns:
        assert set(vars(conn)) <= EMITTER_KEYS, set(vars(conn)) - EMITTER_KEYS
    for cx in client_exchanges:
        assert set(vars(cx)) <= EMITTER_KEYS, set(vars(cx)) - EMITTER_KEYS
    assert client_conns
    for cc in client_conns:
        assert set(vars(cc)) <= EMITTER_KEYS, set(vars(cc)) - EMITTER_KEYS
    assert len(server_exchanges) == 20
    for sx in server_exchanges:
        assert set(vars(sx)) <= EMITTER_KEYS, set(vars(sx)) - EMITTER_KEYS
