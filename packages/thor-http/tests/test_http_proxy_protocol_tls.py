"""PROXY protocol is for plain TCP listeners: an HTTPS server refuses the combination."""

from __future__ import annotations

import logging
import socket
import ssl
from typing import TYPE_CHECKING

import http_server_support as support
import pytest
import trustme

from thor.http.server import HttpServer

if TYPE_CHECKING:
    from http_server_support import Harness

harness = support.harness


def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


class BehindBalancer(HttpServer):
    proxy_protocol = True


def test_an_https_server_with_proxy_protocol_is_refused_at_construction(harness: Harness) -> None:
    server_context, _ = tls_contexts()
    with pytest.raises(ValueError, match="proxy_protocol is for plain TCP"):
        BehindBalancer(b"127.0.0.1", 0, harness.loop, tls_context=server_context)


def test_proxy_protocol_set_later_on_an_https_server_refuses_connections(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    server_context, client_context = tls_contexts()
    server = HttpServer(b"127.0.0.1", 0, harness.loop, tls_context=server_context)
    harness.servers.append(server)
    exchanges: list[object] = []
    server.on("exchange", exchanges.append)
    server.proxy_protocol = True

    def client() -> bytes:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        with client_context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            try:
                return tls.recv(1024)
            except (ssl.SSLError, ConnectionError):
                return b""

    with caplog.at_level(logging.ERROR, logger="thor.http"):
        assert harness.client(client) == b""
    assert exchanges == []
    assert "proxy_protocol on an HTTPS server" in caplog.text
