"""The ForwardProxy's CONNECT request target: authority-form, ``uri-host ":" port`` (RFC 9112
§3.2.3, RFC 9110 §9.3.6).

Through a real ForwardProxy on 127.0.0.1: good targets open a tunnel to a local echo server
(its port is the one ``connect_ports`` allows), bad ones get 400 with the connection closed and
no tunnel, whether the server's request-line parser or the proxy's own check refuses them; the
proxy never raises. ``connect_target`` itself is checked on a table too, for the targets that a
server would not let through to it."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import http_server_support as support
import proxy_support as ps
import pytest

from thor.http.proxy import AccessRecord, ForwardProxy
from thor.http.proxy._forward import connect_target
from thor.tcp import TcpConnection, TcpServer

if TYPE_CHECKING:
    from proxy_support import Harness

    from thor.http.server import HttpServer

harness = ps.harness


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


class Echo:
    """A raw TCP server on ``host`` answering what it receives upper-cased; counts connections."""

    def __init__(self, harness: Harness, host: bytes) -> None:
        self.accepted = 0
        self.server = TcpServer(host, 0, loop=harness.loop)
        self.server.on("connect", self._connected)
        self.port = self.server.port

    def _connected(self, conn: TcpConnection) -> None:
        self.accepted += 1
        conn.on("data", lambda chunk: conn.write(chunk.upper()))
        conn.on("close", conn.close)
        conn.pause(False)

    def close(self) -> None:
        self.server.shutdown()
        for conn in list(self.server.active_connections):
            conn.abort()


@contextlib.contextmanager
def echo_server(harness: Harness, host: bytes) -> Iterator[Echo]:
    echo = Echo(harness, host)
    try:
        yield echo
    finally:
        echo.close()


def forward_proxy(harness: Harness, port: int) -> tuple[HttpServer, ForwardProxy]:
    front = harness.server(None)
    proxy = ForwardProxy(front, connect_ports=(port,))
    harness.proxies.append(proxy)
    return front, proxy


def recv_exactly(reader: support.ResponseReader, count: int) -> bytes:
    """``count`` bytes from the tunnel (the reader's socket timeout bounds each wait)."""
    data = bytes(reader.buf)
    reader.buf.clear()
    while len(data) < count:
        chunk = reader.sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


# (target, with {port} for the echo server's, the echo server's address, what the access
# record names as upstream, why)
GOOD: list[tuple[str, bytes, str, str]] = [
    ("127.0.0.1:{port}", b"127.0.0.1", "127.0.0.1:{port}", "an IPv4 address"),
    ("localhost:{port}", b"127.0.0.1", "localhost:{port}", "a registered name, resolved"),
    ("LocalHost:{port}", b"127.0.0.1", "LocalHost:{port}", "a name in mixed case"),
    ("[::1]:{port}", b"::1", "[::1]:{port}", "an IPv6 literal"),
    ("[0:0:0:0:0:0:0:1]:{port}", b"::1", "[0:0:0:0:0:0:0:1]:{port}", "an IPv6 literal in full"),
]


@pytest.mark.parametrize(("target", "listen", "upstream", "why"), GOOD, ids=[g[3] for g in GOOD])
def test_good_targets_tunnel(
    harness: Harness, target: str, listen: bytes, upstream: str, why: str
) -> None:
    if b":" in listen and not ipv6_available():
        pytest.skip("no IPv6 loopback here")
    with echo_server(harness, listen) as echo:
        front, proxy = forward_proxy(harness, echo.port)
        records: list[AccessRecord] = []
        errors: list[object] = []
        proxy.on("access", records.append)
        proxy.on("error", errors.append)
        request = target.format(port=echo.port).encode("ascii")

        def client() -> tuple[support.Response, bytes]:
            sock = ps.raw_request(
                harness, front, b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\nping " % (request, request)
            )
            reader = support.ResponseReader(sock)
            head = reader.read(b"CONNECT")
            sock.sendall(b"pong")
            data = recv_exactly(reader, len(b"PING PONG"))
            sock.close()
            return head, data

        head, data = harness.client(client, settle=0.1)
    assert head.status == b"200", why
    assert data == b"PING PONG", why
    assert echo.accepted == 1
    assert [(r.status, r.upstream) for r in records] == [(200, upstream.format(port=echo.port))]
    assert not errors


# (target, with {port} for the allowed port, whether the proxy's own check refuses it (the
# server's request-line parser lets it through), why)
BAD: list[tuple[str, bool, str]] = [
    ("127.0.0.1:0", True, "port 0"),
    ("127.0.0.1:00000", True, "port 0, in five digits"),
    ("127.0.0.1:65536", True, "port above 65535"),
    ("127.0.0.1:99999", True, "port far above 65535"),
    ("[1.2.3.4]:{port}", True, "an IPv4 address in brackets"),
    ("[:::1]:{port}", True, "an invalid IPv6 literal"),
    ("[12345::1]:{port}", True, "an IPv6 group of five digits"),
    ("[::1]:0", True, "an IPv6 literal with port 0"),
    ("127%2E0.0.1:{port}", True, "a percent-encoded name"),
    ("%:{port}", True, "a lone percent sign"),
    ("127.0.0.1", False, "no port"),
    ("127.0.0.1:", False, "an empty port"),
    (":{port}", False, "an empty host"),
    ("[]:{port}", False, "an empty IPv6 literal"),
    ("[::1]", False, "an IPv6 literal without port"),
    ("::1:{port}", False, "an IPv6 address without brackets"),
    ("[fe80::1%25lo]:{port}", False, "an IPv6 zone"),
    ("user@127.0.0.1:{port}", False, "userinfo"),
    ("user:pw@127.0.0.1:{port}", False, "userinfo with a password"),
    ("127.0.0.1:+{port}", False, "a signed port"),
    ("127.0.0.1:-1", False, "a negative port"),
    ("127.0.0.1:4_43", False, "an underscore in the port"),
    ("127.0.0.1:0x1bb", False, "a hexadecimal port"),
    ("127.0.0.1:\u0664\u0664\u0663", False, "non-ASCII digits"),
    ("127.0.0.1:{port}/", False, "a path"),
    ("http://127.0.0.1:{port}/", False, "absolute-form"),
    ("/", False, "origin-form"),
    ("*", False, "asterisk-form"),
    ("127.0.0.1:123456", False, "six digits of port"),
]


@pytest.mark.parametrize(("target", "by_proxy", "why"), BAD, ids=[b[2] for b in BAD])
def test_bad_targets_are_400_and_close(
    harness: Harness, target: str, by_proxy: bool, why: str
) -> None:
    with echo_server(harness, b"127.0.0.1") as echo:
        front, proxy = forward_proxy(harness, echo.port)
        records: list[AccessRecord] = []
        errors: list[object] = []
        proxy.on("access", records.append)
        proxy.on("error", errors.append)
        request = target.format(port=echo.port).encode("utf-8")

        def client() -> tuple[support.Response, bool]:
            sock = ps.raw_request(
                harness, front, b"CONNECT %s HTTP/1.1\r\nHost: x\r\n\r\ntunnel?" % request
            )
            response = support.ResponseReader(sock).read(b"CONNECT")
            return response, support.closed_by_peer(sock)

        response, closed = harness.client(client)
    assert response.status == b"400", why
    assert response.header(b"connection") == [b"close"], why
    assert closed, why
    assert echo.accepted == 0, why
    assert not errors
    if by_proxy:  # the proxy's own check, on its error path (an access record, 400)
        assert response.body == b"Bad CONNECT target\n", why
        assert [(r.status, r.upstream) for r in records] == [(400, None)], why
    else:  # the server refused the request line: the proxy never saw it
        assert not records, why


# (target, (host, port) or None, why): the proxy's check alone, on targets a server's parser
# would not pass to it as well as on those it would
TABLE: list[tuple[bytes, tuple[bytes, int] | None, str]] = [
    (b"example.com:443", (b"example.com", 443), "a name"),
    (b"Example.COM:443", (b"Example.COM", 443), "a name as written"),
    (b"example.com.:443", (b"example.com.", 443), "an absolute name"),
    (b"192.0.2.1:1", (b"192.0.2.1", 1), "an IPv4 address, the lowest port"),
    (b"a:65535", (b"a", 65535), "the highest port"),
    (b"a:0443", (b"a", 443), "a leading zero (port = *DIGIT)"),
    (b"[2001:db8::1]:443", (b"2001:db8::1", 443), "an IPv6 literal, brackets off"),
    (b"[::FFFF:192.0.2.1]:8443", (b"::FFFF:192.0.2.1", 8443), "an IPv4-mapped literal"),
    (b"a-b_c~d!e$f&g'h(i)j*k+l,m;n=o:443", (b"a-b_c~d!e$f&g'h(i)j*k+l,m;n=o", 443), "sub-delims"),
    (b"a:0", None, "port 0"),
    (b"a:65536", None, "port 65536"),
    (b"a:" + b"0" * 19 + b"1", None, "more digits than a number may have"),
    (b"a", None, "no port"),
    (b"a:", None, "an empty port"),
    (b":443", None, "an empty host"),
    (b"", None, "nothing"),
    (b"[]:443", None, "an empty literal"),
    (b"[::1]", None, "a literal without port"),
    (b"[::1]443", None, "no colon after the literal"),
    (b"[::1]:", None, "a literal with an empty port"),
    (b"::1:443", None, "IPv6 without brackets"),
    (b"[::1:443", None, "an unclosed literal"),
    (b"[1.2.3.4]:443", None, "IPv4 in brackets"),
    (b"[v1.x]:443", None, "IPvFuture"),
    (b"[fe80::1%25eth0]:443", None, "a zone"),
    (b"[fe80::1%eth0]:443", None, "a raw zone"),
    (b"u@a:443", None, "userinfo"),
    (b"a:+443", None, "a sign"),
    (b"a:-443", None, "a minus sign"),
    (b"a:4_43", None, "an underscore"),
    (b"a: 443", None, "a space in the port"),
    (b" a:443", None, "a space before"),
    (b"a:443 ", None, "a space after"),
    (b"a:443\t", None, "a tab after"),
    (b"a:\xd9\xa4\xd9\xa4\xd9\xa3", None, "non-ASCII digits"),
    (b"a:\xef\xbc\x94", None, "a full-width digit"),
    (b"a:443:1", None, "two ports"),
    (b"a:443/", None, "a path"),
    (b"a%41:443", None, "percent-encoding"),
    (b"a\x00:443", None, "NUL"),
]


@pytest.mark.parametrize(("target", "expected", "why"), TABLE, ids=[t[2] for t in TABLE])
def test_connect_target(target: bytes, expected: tuple[bytes, int] | None, why: str) -> None:
    assert connect_target(target) == expected, why
