"""ReverseProxy findings of an audit: an upstream failing after its response started is the
upstream's failure (in the access record and to the selector), and an Upgrade in an HTTP/1.0
request is not forwarded."""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

import http_server_support as support
import proxy_support as ps
import pytest

from thor.http.proxy import AccessRecord, UpstreamGroup

if TYPE_CHECKING:
    from collections.abc import Callable

    from proxy_support import Harness, RawHeaders

    from thor.http.server import HttpServerExchange

harness = ps.harness


class RawOrigin:
    """A raw-socket origin in a thread: reads one request head, sends ``reply`` and closes."""

    def __init__(self, reply: bytes) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.reply = reply
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            conn.sendall(self.reply)

    def stop(self) -> None:
        self.listener.close()
        self.thread.join(5)


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiXX0\r\n\r\n",
            "bad upstream response: ",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nhi", "upstream: "),
    ],
    ids=["bad_chunk", "closed_mid_body"],
)
def test_upstream_failing_after_the_response_started_is_the_upstreams_failure(
    harness: Harness, reply: bytes, error: str
) -> None:
    origin = RawOrigin(reply)
    try:
        group = UpstreamGroup([origin.url], loop=harness.loop)
        front, proxy = ps.make_proxy(harness, group)
        records: list[AccessRecord] = []
        proxy.on("access", records.append)

        def client() -> bytes:
            sock = ps.raw_request(harness, front, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
            return support.recv_until_close(sock)

        data = harness.client(client)
    finally:
        origin.stop()
    assert data.startswith(b"HTTP/1.1 200 ")  # cut short: the client sees it truncated
    assert len(records) == 1
    assert records[0].status == 200
    assert records[0].error is not None and records[0].error.startswith(error)
    upstream = group.upstreams[0]
    assert upstream.active == 0
    assert upstream.failures == 1  # released with ok=False: counts towards ejection


def upgrading_handler(seen: list[RawHeaders]) -> Callable[[HttpServerExchange], None]:
    """An origin that agrees (101) to any Upgrade it receives, and else answers 200."""

    def handler(exchange: HttpServerExchange) -> None:
        def done(trailers: RawHeaders) -> None:
            seen.append(exchange.req_hdrs)
            if ps.field(exchange.req_hdrs, b"upgrade"):
                exchange.response_start(
                    b"101",
                    b"Switching Protocols",
                    [(b"Upgrade", b"websocket"), (b"Connection", b"upgrade")],
                )
                exchange.response_done([])
            else:
                exchange.response_start(b"200", b"OK", [(b"Content-Length", b"5")])
                exchange.response_body(b"plain")
                exchange.response_done([])

        exchange.on("request_done", done)

    return handler


def test_an_upgrade_in_an_http10_request_is_not_forwarded(harness: Harness) -> None:
    seen: list[RawHeaders] = []
    origin = harness.server(upgrading_handler(seen))
    front, proxy = ps.make_proxy(harness, ps.origin_url(origin))
    records: list[AccessRecord] = []
    proxy.on("access", records.append)

    def client() -> bytes:
        sock = ps.raw_request(
            harness,
            front,
            b"GET / HTTP/1.0\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        return support.recv_until_close(sock)

    data = harness.client(client)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert body == b"plain"
    assert len(seen) == 1
    assert ps.field(seen[0], b"upgrade") == []  # RFC 9110 §7.8: ignored, so not forwarded
    assert [(record.status, record.error) for record in records] == [(200, None)]
