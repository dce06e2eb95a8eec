"""PROXY protocol on an HTTPS server: the header comes in the clear before the TLS handshake (a
load balancer passing TLS through), and is read without taking a byte of the ClientHello."""

from __future__ import annotations

import logging
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any

import http_server_support as support
import pytest
import trustme
from test_http_proxy_protocol import INET, INET_PORTS, REQUEST, TLVS, v2

from thor.http._proxy_protocol_tls import ProxyTlsServer
from thor.http.server import HttpServer

if TYPE_CHECKING:
    from http_server_support import Harness

    from thor.http.server import HttpServerExchange

harness = support.harness

V1 = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"
V1_ADDRESS = ("192.0.2.1", 56324)


@pytest.fixture(scope="module")
def contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


class BehindBalancer(HttpServer):
    proxy_protocol = True


def https_server(
    harness: Harness, server_context: ssl.SSLContext, cls: type[HttpServer] = BehindBalancer
) -> tuple[HttpServer, list[Any]]:
    """An HTTPS server answering hello, recording the address each exchange saw."""
    server = cls(b"127.0.0.1", 0, harness.loop, tls_context=server_context)
    harness.servers.append(server)
    addresses: list[Any] = []
    hello = support.hello_handler()

    def handler(exchange: HttpServerExchange) -> None:
        tcp_conn = exchange.http_conn.tcp_conn
        addresses.append(tcp_conn.address if tcp_conn is not None else None)
        hello(exchange)

    server.on("exchange", handler)
    return server, addresses


def fetch_over_tls(raw: socket.socket, client_context: ssl.SSLContext) -> support.Response:
    """TLS on ``raw`` (the PROXY header sent already), one request, its response."""
    with client_context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(REQUEST)
        return support.ResponseReader(tls).read()


def bio_handshake(
    raw: socket.socket, client_context: ssl.SSLContext, before_hello: bytes = b""
) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    """A TLS handshake on ``raw`` through memory BIOs (``raw`` stays the caller's, whatever
    happens), ``before_hello`` sent in the same segment as the ClientHello; returns the TLS
    object and its incoming and outgoing BIOs.

    Raises:
        ConnectionError: the server closed during the handshake (ssl.SSLError: it failed).
    """
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    pending = before_hello
    while True:
        try:
            tls.do_handshake()
            return tls, incoming, outgoing
        except ssl.SSLWantReadError:
            raw.sendall(pending + outgoing.read())
            pending = b""
            got = raw.recv(65536)
            if not got:
                raise ConnectionError("closed during the handshake") from None
            incoming.write(got)


def bio_request(
    raw: socket.socket, tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO
) -> bytes:
    """After ``bio_handshake``: one request with Connection: close; the answer, whole."""
    tls.write(REQUEST.replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n", 1))
    raw.sendall(outgoing.read())
    answer = b""
    while True:
        try:
            chunk = tls.read(65536)
        except ssl.SSLWantReadError:
            got = raw.recv(65536)
            if not got:
                return answer
            incoming.write(got)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return answer
        else:
            if not chunk:
                return answer
            answer += chunk


def handshake_fails(raw: socket.socket, client_context: ssl.SSLContext) -> bool:
    """Whether a TLS handshake on ``raw`` fails."""
    try:
        bio_handshake(raw, client_context)
    except (ssl.SSLError, OSError):
        return True
    return False


def test_the_server_listens_with_a_proxy_tls_server(
    harness: Harness, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server, _ = https_server(harness, contexts[0])
    assert isinstance(server.tcp_server, ProxyTlsServer)
    assert server.tls
    assert "ProxyTlsServer" in repr(server.tcp_server)


@pytest.mark.parametrize(
    ("header", "address"),
    [
        (V1, V1_ADDRESS),
        (b"PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n", ("2001:db8::1", 56324)),
        (v2(block=INET + INET_PORTS), ("192.0.2.1", 56324)),
        (
            v2(family=2, block=socket.inet_pton(socket.AF_INET6, "2001:db8::7") * 2 + INET_PORTS),
            ("2001:db8::7", 56324),
        ),
        (v2(block=INET + INET_PORTS + TLVS), ("192.0.2.1", 56324)),
    ],
    ids=["v1-tcp4", "v1-tcp6", "v2-inet", "v2-inet6", "v2-tlvs"],
)
def test_header_then_tls_gives_the_client_address(
    harness: Harness,
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
    header: bytes,
    address: Any,
) -> None:
    server, addresses = https_server(harness, contexts[0])

    def client() -> support.Response:
        raw = harness.connect(server)
        raw.sendall(header)
        return fetch_over_tls(raw, contexts[1])

    response = harness.client(client)
    assert response.status == b"200"
    assert response.body == support.HELLO
    assert addresses == [address]


def test_header_and_client_hello_in_one_send(
    harness: Harness, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """The reader takes the header's bytes only: the ClientHello right behind it, in the same
    segment, still reaches the TLS handshake whole."""
    server, addresses = https_server(harness, contexts[0])

    def client() -> bytes:
        raw = harness.connect(server)
        return bio_request(raw, *bio_handshake(raw, contexts[1], v2(block=INET + INET_PORTS)))

    answer = harness.client(client)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert support.HELLO in answer
    assert addresses == [("192.0.2.1", 56324)]


@pytest.mark.parametrize("header", [V1, v2(block=INET + INET_PORTS + TLVS)], ids=["v1", "v2"])
def test_header_one_byte_per_send(
    harness: Harness, contexts: tuple[ssl.SSLContext, ssl.SSLContext], header: bytes
) -> None:
    server, addresses = https_server(harness, contexts[0])

    def client() -> support.Response:
        raw = harness.connect(server)
        for i in range(len(header)):
            raw.sendall(header[i : i + 1])
            time.sleep(0.001)  # so that the server mostly reads them one by one
        return fetch_over_tls(raw, contexts[1])

    response = harness.client(client)
    assert response.status == b"200"
    assert addresses == [("192.0.2.1", 56324)]


@pytest.mark.parametrize(
    "header", [b"PROXY UNKNOWN\r\n", v2(command=0, block=INET + INET_PORTS)], ids=["v1", "v2"]
)
def test_unknown_and_local_keep_the_real_address(
    harness: Harness, contexts: tuple[ssl.SSLContext, ssl.SSLContext], header: bytes
) -> None:
    server, addresses = https_server(harness, contexts[0])

    def client() -> tuple[support.Response, Any]:
        raw = harness.connect(server)
        own = raw.getsockname()
        raw.sendall(header)
        return fetch_over_tls(raw, contexts[1]), own

    response, own = harness.client(client)
    assert response.status == b"200"
    assert addresses == [own]


@pytest.mark.parametrize(
    "preamble",
    [b"", b"PROXY TCP4 192.0.2.1 198.51.100.2 99999 443\r\n", b"GET / HTTP/1.1\r\n"],
    ids=["no-header-tls-first", "bad-port", "http-not-proxy"],
)
def test_missing_or_bad_header_closes_without_a_handshake(
    harness: Harness,
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
    preamble: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, addresses = https_server(harness, contexts[0])
    handshakes: list[object] = []
    server.tcp_server.on("connect", handshakes.append)

    def client() -> tuple[bool, support.Response]:
        raw = harness.connect(server)
        raw.sendall(preamble)
        failed = handshake_fails(raw, contexts[1])
        # the server goes on serving others
        good = harness.connect(server)
        good.sendall(V1)
        return failed, fetch_over_tls(good, contexts[1])

    with caplog.at_level(logging.DEBUG, logger="thor.http"):
        failed, response = harness.client(client)
    assert failed
    assert response.status == b"200"
    assert addresses == [V1_ADDRESS]
    assert len(handshakes) == 1  # the good connection's only
    assert "before TLS" in caplog.text


def test_peer_closing_before_the_header_is_complete(
    harness: Harness, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server, addresses = https_server(harness, contexts[0])
    proxy_tls = server.tcp_server
    assert isinstance(proxy_tls, ProxyTlsServer)

    def client() -> support.Response:
        raw = harness.connect(server)
        raw.sendall(V1[:10])
        raw.close()
        good = harness.connect(server)
        good.sendall(V1)
        return fetch_over_tls(good, contexts[1])

    assert harness.client(client, settle=0.1).status == b"200"
    assert addresses == [V1_ADDRESS]
    assert proxy_tls._reading == set()


class QuickHeader(BehindBalancer):
    request_head_timeout = 0.2


def test_a_late_header_times_out(
    harness: Harness, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server, addresses = https_server(harness, contexts[0], QuickHeader)
    proxy_tls = server.tcp_server
    assert isinstance(proxy_tls, ProxyTlsServer)
    assert proxy_tls._header_timeout is not None
    assert proxy_tls._header_timeout() == 0.2  # (the server's, read for each connection)

    def client() -> tuple[bytes, float]:
        raw = harness.connect(server)
        raw.sendall(V1[:20])
        started = time.monotonic()
        try:
            data = raw.recv(100)
        except ConnectionError:
            data = b""
        return data, time.monotonic() - started

    data, waited = harness.client(client)
    assert data == b""  # closed without a word
    assert waited < 4.0
    assert addresses == []
    assert proxy_tls._reading == set()


def test_shutdown_closes_the_sockets_still_reading_their_header(
    harness: Harness, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server, _ = https_server(harness, contexts[0])
    proxy_tls = server.tcp_server
    assert isinstance(proxy_tls, ProxyTlsServer)

    def client() -> bytes:
        raw = harness.connect(server)
        raw.sendall(V1[:20])
        while not proxy_tls._reading:  # (set on the loop's thread)
            time.sleep(0.01)
        harness.loop.run_in_loop(server.shutdown)
        try:
            return raw.recv(100)
        except ConnectionError:
            return b""

    assert harness.client(client) == b""
    assert proxy_tls._reading == set()


def test_proxy_protocol_set_later_on_an_https_server_refuses_connections(
    harness: Harness,
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Set after construction, the listener is a plain TlsServer: no header can be read before
    the handshake, so the connections are refused (logged), never served unchecked."""
    server, addresses = https_server(harness, contexts[0], HttpServer)
    assert not isinstance(server.tcp_server, ProxyTlsServer)
    server.proxy_protocol = True

    def client() -> bytes:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        with contexts[1].wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(REQUEST)
            try:
                return tls.recv(1024)
            except (ssl.SSLError, ConnectionError):
                return b""

    with caplog.at_level(logging.ERROR, logger="thor.http"):
        assert harness.client(client) == b""
    assert addresses == []
    assert "proxy_protocol set after an HTTPS server was made" in caplog.text
