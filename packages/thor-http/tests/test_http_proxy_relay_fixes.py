"""Relaying fixes found by a differential fuzz of the reverse proxy (raw client, proxy, origin
on 127.0.0.1): a later pipelined response failing mid-body no longer wipes out the earlier
ones; an origin's ``Connection: close`` no longer closes the client's connection (nor loses
the requests pipelined behind); a 1xx carries no Content-Length downstream; equal duplicate
Content-Lengths go upstream as one; trailers of an empty chunked request body are forwarded."""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

import http_server_support as support
import proxy_support as ps

if TYPE_CHECKING:
    from proxy_support import Harness, RawHeaders

    from thor.http.server import HttpServerExchange

harness = ps.harness


def test_a_pipelined_response_cut_mid_body_keeps_the_earlier_response(harness: Harness) -> None:
    """POST /slow (answered after 0.2 s) and GET /bad pipelined; the origin cuts /bad's body.
    The client gets /slow whole, then /bad cut and the close. Before, /bad failing first
    closed the client connection at once, with /slow's response lost too."""

    def origin(exchange: HttpServerExchange) -> None:
        def slow() -> None:
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"4")])
            exchange.response_body(b"slow")
            exchange.response_done([])

        def bad(trailers: RawHeaders) -> None:
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"10")])
            exchange.response_body(b"abc")
            harness.later(0.05, exchange.http_conn.tcp_conn.abort)

        if exchange.uri == b"/slow":
            exchange.on("request_done", lambda trailers: harness.later(0.2, slow))
        else:
            exchange.on("request_done", bad)

    front, _proxy = ps.make_proxy(harness, ps.origin_url(harness.server(origin)))

    def client() -> bytes:
        sock = ps.raw_request(
            harness,
            front,
            b"POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /bad HTTP/1.1\r\nHost: h\r\n\r\n",
        )
        return support.recv_until_close(sock)

    data = harness.client(client)
    first, _, rest = data.partition(b"\r\n\r\nslow")
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 4" in first
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n") and rest.endswith(b"\r\n\r\nabc")


def test_the_origins_connection_close_does_not_close_the_clients_connection(
    harness: Harness,
) -> None:
    """The origin answers with ``Connection: close``: that ends the upstream connection only.
    The client's stays open, the field is not relayed, and a POST pipelined behind is
    forwarded and answered. Before, the client's connection was closed after the first
    response, while the origin had already run the POST."""
    ran: list[bytes] = []

    def origin(exchange: HttpServerExchange) -> None:
        def done(trailers: RawHeaders) -> None:
            ran.append(exchange.uri)
            exchange.response_start(
                b"200", b"OK", [(b"Content-Length", b"2"), (b"Connection", b"close")]
            )
            exchange.response_body(b"ok")
            exchange.response_done([])

        exchange.on("request_done", done)

    front, _proxy = ps.make_proxy(harness, ps.origin_url(harness.server(origin)))

    def client() -> tuple[list[support.Response], bool]:
        sock = ps.raw_request(
            harness,
            front,
            b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
            b"POST /transfer HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\namount=10",
        )
        reader = support.ResponseReader(sock)
        responses = [reader.read(), reader.read()]
        sock.settimeout(0.3)
        try:
            still_open = sock.recv(1) == b""
        except TimeoutError:
            still_open = True
        else:
            still_open = False
        return responses, still_open

    (first, second), still_open = harness.client(client)
    assert (first.status, second.status) == (b"200", b"200")
    assert not first.header(b"connection") and not second.header(b"connection")
    assert still_open
    assert ran == [b"/a", b"/transfer"]


class RawOnce:
    """An origin answering its first request with ``reply`` (raw bytes), then closing."""

    def __init__(self, reply: bytes) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.reply = reply
        self.received = b""

    def serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(5)
            while b"\r\n\r\n" not in self.received:
                self.received += conn.recv(65536)
            conn.sendall(self.reply)


def test_a_relayed_1xx_has_no_content_length(harness: Harness) -> None:
    """RFC 9110 §8.6: a 1xx has no content, and a Content-Length in one must not be sent on
    (a downstream that honoured it would take the next bytes as a body)."""
    origin = RawOnce(
        b"HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\nLink: </s.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    )
    threading.Thread(target=origin.serve, daemon=True).start()
    front, _proxy = ps.make_proxy(harness, f"http://127.0.0.1:{origin.listener.getsockname()[1]}")

    def client() -> bytes:
        sock = ps.raw_request(harness, front, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        data = b""
        while not data.endswith(b"\r\n\r\nok"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data

    data = harness.client(client)
    origin.listener.close()
    interim, _, final = data.partition(b"\r\n\r\n")
    assert interim.startswith(b"HTTP/1.1 103 Early Hints\r\n")
    assert b"Link: </s.css>; rel=preload" in interim
    assert b"Content-Length" not in interim
    assert final.startswith(b"HTTP/1.1 200 OK\r\n")


def test_equal_duplicate_content_lengths_go_upstream_as_one(harness: Harness) -> None:
    seen = ps.Seen()
    front, _proxy = ps.make_proxy(
        harness, ps.origin_url(harness.server(ps.inspecting_handler(seen)))
    )

    def client() -> support.Response:
        sock = ps.raw_request(
            harness,
            front,
            b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        )
        return support.ResponseReader(sock).read()

    assert harness.client(client).status == b"200"
    assert ps.field(seen.requests[0]["headers"], b"content-length") == [b"5"]
    assert seen.requests[0]["body"] == b"hello"


def test_trailers_of_an_empty_chunked_request_body_are_forwarded(harness: Harness) -> None:
    """``0\\r\\nX-Checksum: abc`` with no data before: the trailer was dropped (the request
    went upstream with Content-Length: 0); it now goes as an empty chunked body with it."""
    seen = ps.Seen()
    front, _proxy = ps.make_proxy(
        harness, ps.origin_url(harness.server(ps.inspecting_handler(seen)))
    )

    def client() -> support.Response:
        sock = ps.raw_request(
            harness,
            front,
            b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\nX-Checksum: abc\r\n\r\n",
        )
        return support.ResponseReader(sock).read()

    assert harness.client(client).status == b"200"
    assert seen.requests[0]["body"] == b""
    assert seen.requests[0]["trailers"] == [(b"X-Checksum", b" abc")]
