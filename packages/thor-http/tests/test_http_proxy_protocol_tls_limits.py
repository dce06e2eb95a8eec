"""PROXY protocol before TLS, the edges: a header split inside its v2 length field or between
the v1 CR and LF, with the rest of it and the ClientHello in one later segment (the reader takes
no byte of the ClientHello); the sockets still reading their header count against
``max_connections``, and accepting resumes when they go; the header timeout is read for each
connection (``request_head_timeout`` set on the instance, as ``thor proxy`` sets its timeouts).
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import TYPE_CHECKING, Any

import http_server_support as support
import pytest
from test_http_proxy_protocol import INET, INET_PORTS, v2
from test_http_proxy_protocol_tls import (
    BehindBalancer,
    bio_handshake,
    bio_request,
    contexts,
    fetch_over_tls,
    https_server,
)

from thor.http._proxy_protocol_tls import ProxyTlsServer

if TYPE_CHECKING:
    from http_server_support import Harness

harness = support.harness
__all__ = ["contexts"]  # (the fixture, taken by import)

V1 = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"


def tls_over_split_header(
    raw: socket.socket, client_context: ssl.SSLContext, first: bytes, second: bytes
) -> bytes:
    """Send ``first``, wait, then ``second`` and the ClientHello in one send; run one request
    with Connection: close; return the answer."""
    raw.sendall(first)
    time.sleep(0.05)  # the server reads (and takes) the first part on its own
    return bio_request(raw, *bio_handshake(raw, client_context, second))


V2 = v2(block=INET + INET_PORTS)


@pytest.mark.parametrize(
    ("first", "second"),
    [(V2[:15], V2[15:]), (V2[:12], V2[12:]), (V1[:-1], V1[-1:]), (V1[:5], V1[5:])],
    ids=["v2-inside-length", "v2-after-signature", "v1-cr-then-lf", "v1-prefix"],
)
def test_a_split_header_then_client_hello_in_one_segment(
    harness: Harness,
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
    first: bytes,
    second: bytes,
) -> None:
    server, addresses = https_server(harness, contexts[0])

    def client() -> bytes:
        return tls_over_split_header(harness.connect(server), contexts[1], first, second)

    answer = harness.client(client)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert addresses == [("192.0.2.1", 56324)]


def test_max_connections_bounds_the_sockets_reading_their_header(
    harness: Harness, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server, _ = https_server(harness, contexts[0])
    proxy_tls = server.tcp_server
    assert isinstance(proxy_tls, ProxyTlsServer)
    proxy_tls.max_connections = 2
    held: dict[str, Any] = {}

    def client() -> None:
        socks = [harness.connect(server) for _ in range(6)]
        for sock in socks:
            sock.sendall(V1[:10])  # a header that never completes
        time.sleep(0.3)
        held["count"] = len(proxy_tls._reading) + len(proxy_tls.active_connections)
        for sock in socks:  # the readers go: accepting resumes, the backlog is served
            sock.close()
        good = harness.connect(server)
        good.sendall(V1)
        held["response"] = fetch_over_tls(good, contexts[1])
        # the closed sockets left in the backlog are accepted a couple at a time; the last of
        # them may still be waiting for its read when the good request is answered
        deadline = time.monotonic() + 5.0
        while proxy_tls._held() and time.monotonic() < deadline:
            time.sleep(0.01)

    harness.client(client)
    assert held["count"] <= 2, f"{held['count']} sockets held with max_connections = 2"
    assert held["response"].status == b"200"
    assert proxy_tls._held() == 0
    assert proxy_tls._reading == set()


def test_request_head_timeout_set_on_the_instance_bounds_the_header(
    harness: Harness, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server, _ = https_server(harness, contexts[0], BehindBalancer)
    server.request_head_timeout = 0.2  # as plain TCP honours (and thor proxy sets timeouts)

    def client() -> float:
        raw = harness.connect(server)
        raw.sendall(V1[:20])
        raw.settimeout(3.0)
        started = time.monotonic()
        try:
            raw.recv(100)
        except (ConnectionError, TimeoutError):
            pass
        return time.monotonic() - started

    waited: Any = harness.client(client, timeout=10.0)
    assert waited < 2.0, f"still open after {waited:.1f} s"
