"""HttpClientExchange.cancel(), the ``host=`` argument of request_start, and the connection
timestamps (``exchange.ready_at``, ``conn.connected_at``)."""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

import http_client_support as support
import pytest

from thor.http.client import HttpClientConnection

if TYPE_CHECKING:
    from http_client_support import EchoServer, Harness, ScriptedServer

harness = support.harness
scripted = support.scripted
echo_server = support.echo_server
read_request = support.read_request
response = support.response
keep_alive_script = support.keep_alive_script


def test_cancel_while_waiting_for_a_connection_frees_the_queue_and_emits_nothing(
    harness: Harness, echo_server: EchoServer
) -> None:
    client = harness.client(max_server_conn=1)
    first = harness.fetch(client, echo_server.url("/first"), done=False)
    waiting = client.exchange()
    events: list[str] = []
    for name in ("response_start", "response_done", "error"):
        waiting.on(name, lambda *args, name=name: events.append(name))
    waiting.request_start(b"GET", echo_server.url("/second").encode(), [])
    waiting.request_done([])
    assert waiting.conn is None  # queued behind the first
    waiting.cancel()
    waiting.cancel()  # idempotent
    third = harness.fetch(client, echo_server.url("/third"))
    first.exchange.request_done([])
    harness.run()
    assert events == []
    assert first.status == third.status == b"200"
    assert support.echoed(third)["path"] == "/third"
    assert echo_server.accepts == 1  # the cancelled request never needed a connection


def test_cancel_with_a_connection_closes_it_and_the_next_request_uses_a_new_one(
    harness: Harness, scripted: object
) -> None:
    got_request = threading.Event()

    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        rest = bytearray()
        if index == 0:
            read_request(sock, rest)
            got_request.set()
            sock.recv(1)  # until the client closes
            return
        while True:
            try:
                _, _, rest = read_request(sock, rest)
            except ConnectionError:
                return
            sock.sendall(response(200, b"fresh"))

    server = scripted(script)  # type: ignore[operator]
    client = harness.client()
    ex = client.exchange()
    events: list[str] = []
    ex.on("error", lambda err: events.append("error"))
    ex.on("response_start", lambda *a: events.append("response_start"))
    ex.request_start(b"GET", server.url().encode(), [])
    ex.request_done([])

    def cancel_when_sent() -> None:
        if not got_request.is_set():
            harness.loop.schedule(0.01, cancel_when_sent)
            return
        conn = ex.conn
        assert conn is not None
        ex.cancel()
        assert conn.state == "closed" and ex.conn is None
        harness.fetch(client, server.url())  # a new connection: the cancelled one is gone

    harness.loop.schedule(0.01, cancel_when_sent)
    recorders: list[object] = []
    harness.on_finished = recorders.append
    harness.run(until_done=False, timeout=10)
    assert events == []
    assert len(recorders) == 1
    assert recorders[0].body == b"fresh"  # type: ignore[attr-defined]
    assert server.accepts == 2


def test_cancel_after_the_response_is_a_no_op(harness: Harness, echo_server: EchoServer) -> None:
    client = harness.client()
    rec = harness.fetch(client, echo_server.url())
    again: list[support.Recorder] = []

    def late_cancel_then_fetch() -> None:
        rec.exchange.cancel()
        again.append(harness.fetch(client, echo_server.url()))

    harness.then(late_cancel_then_fetch)
    harness.run()
    assert again[0].status == b"200"
    assert echo_server.accepts == 1  # the pooled connection survived the late cancel


def test_host_argument_replaces_the_urls_authority_in_the_host_field(
    harness: Harness, echo_server: EchoServer
) -> None:
    client = harness.client()
    recs = []
    for host in (b"example.com", b"other.example:8443", None):
        ex = client.exchange()
        recs.append(harness.track(ex))
        ex.request_start(b"GET", echo_server.url("/h").encode(), [(b"Host", b"ignored")], host=host)
        ex.request_done([])
    harness.run()
    hosts = [dict((k.lower(), v) for k, v in support.echoed(r)["headers"])["host"] for r in recs]
    assert hosts == ["example.com", "other.example:8443", f"127.0.0.1:{echo_server.port}"]
    assert recs[0].exchange.authority == b"example.com"


def test_host_argument_is_validated(harness: Harness, echo_server: EchoServer) -> None:
    client = harness.client()
    for bad in (b"", b"a b", b"x\r\nEvil: 1", b"a/b"):
        ex = client.exchange()
        errors: list[object] = []
        ex.on("error", errors.append)
        ex.request_start(b"GET", echo_server.url().encode(), [], host=bad)
        assert len(errors) == 1, bad
        assert "Host" in str(errors[0]), errors


def test_ready_at_and_connected_at(harness: Harness, echo_server: EchoServer) -> None:
    client = harness.client()
    before = harness.loop.time()
    seen: list[tuple[float | None, float | None]] = []  # (connected_at, ready_at) per response

    def fetch() -> None:
        rec = harness.fetch(client, echo_server.url())

        def conn_times(*args: object) -> None:
            conn = rec.exchange.conn
            seen.append((conn.connected_at if conn else None, rec.exchange.ready_at))

        rec.exchange.on("response_start", conn_times)

    first = harness.fetch(client, echo_server.url())
    assert first.exchange.ready_at is None  # no connection yet
    harness.then(fetch)
    harness.then(fetch)
    harness.run()
    after = harness.loop.time()
    (connected_1, ready_1), (connected_2, ready_2) = seen
    assert connected_1 is not None and ready_1 is not None and ready_2 is not None
    assert connected_1 == connected_2  # the pooled connection, made once
    assert before <= connected_1 <= ready_1 <= ready_2 <= after


@pytest.mark.parametrize("how", ["cancel", "close"])
def test_a_101_whose_exchange_is_cancelled_from_response_nonfinal_is_not_handed_over(
    harness: Harness, scripted: object, how: str
) -> None:
    """The 101 and bytes past it arrive in one read; the application cancels the exchange (or
    closes its connection) from 'response_nonfinal': nothing more is emitted (no 'upgrade'),
    nothing is raised into the loop, and the connection is closed."""

    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: upgrade\r\n\r\nearly bytes"
        )
        sock.recv(1)  # until the client closes

    server = scripted(script)  # type: ignore[operator]
    client = harness.client()
    ex = client.exchange()
    events: list[str] = []
    conns: list[HttpClientConnection] = []

    def nonfinal(status: bytes, phrase: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        events.append("response_nonfinal")
        conn = ex.conn
        assert conn is not None
        conns.append(conn)
        if how == "cancel":
            ex.cancel()
        else:
            conn.close()
        harness.loop.schedule(0.1, harness.loop.stop)

    ex.on("response_nonfinal", nonfinal)
    ex.on("upgrade", lambda tcp_conn, rest: events.append("upgrade"))
    ex.on("error", lambda err: events.append(f"error {type(err).__name__}"))
    ex.request_start(b"GET", server.url().encode(), [(b"Upgrade", b"websocket")])
    ex.request_done([])
    harness.run(until_done=False, timeout=5)
    expected = (
        ["response_nonfinal"] if how == "cancel" else ["response_nonfinal", "error ConnectError"]
    )
    assert events == expected
    assert conns[0].state == "closed"
    assert client.conn_counts == {}
