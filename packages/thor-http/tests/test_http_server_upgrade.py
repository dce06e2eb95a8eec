"""HttpServer protocol switches and HTTPS: an Upgrade answered with 101 hands the raw connection
to the application (with the bytes the client sent right after the request head); CONNECT
answered with 2xx makes a tunnel; declined switches carry on with HTTP (or close, for CONNECT);
HTTPS through TlsServer with a trustme certificate, checked by requests against the CA."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

import http_server_support as support
import pytest
import requests
import trustme

from thor.http.server import HttpServer, HttpServerExchange
from thor.tcp import TcpConnection

if TYPE_CHECKING:
    from http_server_support import Harness


harness = support.harness
RawHeaders = list[tuple[bytes, bytes]]


def switching_handler(accept: bool, seen: dict[str, Any]) -> Any:
    """Accept (101 / 200 to CONNECT) or decline every switch; on the raw connection, echo
    what arrives, upper-cased, and close on b"bye"."""

    def handler(exchange: HttpServerExchange) -> None:
        def upgraded(tcp_conn: TcpConnection, rest: bytes) -> None:
            seen["tcp_conn"] = tcp_conn
            seen["rest"] = rest
            seen["listeners"] = [
                tcp_conn.listener_count(e) for e in ("data", "close", "disconnect", "pause")
            ]

            def data(chunk: bytes) -> None:
                tcp_conn.write(chunk.upper())
                if b"bye" in chunk:
                    tcp_conn.close()

            tcp_conn.on("data", data)
            if rest:
                data(rest)
            tcp_conn.pause(False)

        def done(trailers: RawHeaders) -> None:
            connect = exchange.method == b"CONNECT"
            if accept:
                if connect:
                    exchange.response_start(b"200", b"Connection Established", [])
                else:
                    exchange.response_start(b"101", b"Switching Protocols", [(b"Upgrade", b"echo")])
            else:
                status = b"403" if connect else b"200"
                exchange.response_start(status, b"No", [(b"Content-Length", b"8")])
                exchange.response_body(b"declined")
            exchange.response_done([])

        exchange.on("upgrade", upgraded)
        exchange.on("request_done", done)

    return handler


def test_upgrade_hands_over_the_raw_connection(harness: Harness) -> None:
    seen: dict[str, Any] = {}
    server = harness.server(switching_handler(True, seen))

    def client() -> tuple[Any, bytes]:
        sock = harness.connect(server)
        # the first tunnel bytes come in the same send as the request head
        sock.sendall(
            b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello "
        )
        reader = support.ResponseReader(sock)
        head = reader.read()
        sock.sendall(b"world, bye")
        return head, reader.rest(2.0)

    head, tunnel = harness.client(client, settle=0.1)
    assert head.raw_head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert head.header(b"upgrade") == [b"echo"]
    assert head.header(b"connection") == [b"upgrade"]
    assert not head.header(b"content-length") and not head.header(b"transfer-encoding")
    assert seen["rest"] == b"hello "
    assert tunnel.startswith(b"HELLO ") and tunnel.endswith(b"WORLD, BYE")
    assert seen["listeners"] == [0, 0, 0, 0]  # nothing of thor's on it any more
    assert not server.connections
    assert harness.exchanges[0].http_conn.tcp_conn is None


def test_connect_makes_a_tunnel(harness: Harness) -> None:
    seen: dict[str, Any] = {}
    server = harness.server(switching_handler(True, seen))

    def client() -> tuple[Any, bytes]:
        sock = harness.connect(server)
        sock.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nping ")
        reader = support.ResponseReader(sock)
        head = reader.read(b"CONNECT")
        sock.sendall(b"bye")
        return head, reader.rest(2.0)

    head, tunnel = harness.client(client, settle=0.1)
    assert head.status == b"200"
    assert not head.header(b"content-length") and not head.header(b"transfer-encoding")
    assert tunnel == b"PING BYE"
    assert harness.exchanges[0].uri == b"example.com:443"


def test_declined_upgrade_carries_on_with_http(harness: Harness) -> None:
    seen: dict[str, Any] = {}
    server = harness.server(switching_handler(False, seen))

    def client() -> list[bytes]:
        sock = harness.connect(server)
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
            b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        reader = support.ResponseReader(sock)
        return [reader.read().body, reader.read().body]

    assert harness.client(client) == [b"declined", b"declined"]
    assert "tcp_conn" not in seen
    assert [ex.uri for ex in harness.exchanges] == [b"/", b"/2"]


def test_refused_connect_closes(harness: Harness) -> None:
    seen: dict[str, Any] = {}
    server = harness.server(switching_handler(False, seen))

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
            b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        return support.recv_until_close(sock)

    data = harness.client(client)
    assert data.count(b"HTTP/1.1 403 No") == 1 and data.endswith(b"declined")
    assert b"Connection: close" in data
    assert len(harness.exchanges) == 1


def test_upgrade_without_a_listener_closes(harness: Harness) -> None:
    def handler(exchange: HttpServerExchange) -> None:
        def done(trailers: RawHeaders) -> None:
            exchange.response_start(b"101", b"Switching Protocols", [(b"Upgrade", b"x")])
            exchange.response_done([])

        exchange.on("request_done", done)

    server = harness.server(handler)

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n")
        return support.recv_until_close(sock)

    assert harness.client(client).startswith(b"HTTP/1.1 101 ")


# -- HTTPS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_https_with_requests(harness: Harness, ca: trustme.CA, tmp_path: Path) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server = HttpServer(b"127.0.0.1", 0, harness.loop, tls_context=context)
    harness.servers.append(server)
    server.on("exchange", harness.exchanges.append)
    server.on("exchange", support.echo_handler)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    url = f"https://127.0.0.1:{server.port}/secure"

    def client() -> list[tuple[int, bytes]]:
        with requests.Session() as session:
            first = session.post(url, data=b"secret", verify=str(ca_file), timeout=5)
            second = session.get(url, verify=str(ca_file), timeout=5)
        return [(first.status_code, first.content), (second.status_code, second.content)]

    assert harness.client(client) == [(200, b"secret"), (200, b"")]
    assert type(server.tcp_server).__name__ == "TlsServer"
    assert harness.exchanges[0].http_conn is harness.exchanges[1].http_conn  # kept alive
