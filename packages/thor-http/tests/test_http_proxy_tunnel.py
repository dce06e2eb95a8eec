"""Tunnels through the proxies: an Upgrade (WebSocket-style) passed through the ReverseProxy as a
spliced pair of connections, flow control inside a tunnel, and the ForwardProxy: absolute-form
requests (Host regenerated), CONNECT to an allowed port (tunnel) and to another one (403)."""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import http_server_support as support
import proxy_support as ps

from thor.http.proxy import AccessRecord, ForwardProxy, ProxyExchange, Tunnel
from thor.tcp import TcpConnection, TcpServer

if TYPE_CHECKING:
    from proxy_support import Harness, RawHeaders

    from thor.http.server import HttpServerExchange

harness = ps.harness


def upgrading_origin(seen: dict[str, Any]) -> Any:
    """An origin accepting every Upgrade with 101; on the raw connection it echoes what
    arrives upper-cased, and closes on b"bye"."""

    def handler(exchange: HttpServerExchange) -> None:
        seen["headers"] = exchange.req_hdrs

        def upgraded(tcp_conn: TcpConnection, rest: bytes) -> None:
            seen["rest"] = rest

            def data(chunk: bytes) -> None:
                tcp_conn.write(chunk.upper())
                if b"BYE" in chunk.upper():
                    tcp_conn.close()

            tcp_conn.on("data", data)
            if rest:
                data(rest)
            tcp_conn.pause(False)

        def done(trailers: RawHeaders) -> None:
            exchange.response_start(b"101", b"Switching Protocols", [(b"Upgrade", b"websocket")])
            exchange.response_done([])

        exchange.on("upgrade", upgraded)
        exchange.on("request_done", done)

    return handler


def test_upgrade_is_passed_through_as_a_tunnel(harness: Harness) -> None:
    seen: dict[str, Any] = {}
    origin = harness.server(upgrading_origin(seen))
    front, proxy = ps.make_proxy(harness, ps.origin_url(origin))
    tunnels: list[tuple[ProxyExchange, Tunnel]] = []
    records: list[AccessRecord] = []
    tunnel_closed = threading.Event()

    def on_tunnel(px: ProxyExchange, tunnel: Tunnel) -> None:
        tunnels.append((px, tunnel))
        tunnel.on("close", tunnel_closed.set)

    proxy.on("tunnel", on_tunnel)
    proxy.on("access", records.append)

    def client() -> tuple[support.Response, bytes]:
        sock = ps.raw_request(
            harness,
            front,
            b"GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nhello ",
        )
        reader = support.ResponseReader(sock)
        head = reader.read()
        sock.sendall(b"world, bye")
        data = reader.rest(2.0)  # until the origin's FIN, which the proxy passes on
        # the tunnel is half-closed now: it is over once the client closes its side too
        sock.shutdown(socket.SHUT_WR)
        tunnel_closed.wait(5.0)
        return head, data

    head, data = harness.client(client, settle=0.1)
    assert head.status == b"101"
    assert head.header(b"upgrade") == [b"websocket"]
    assert head.header(b"connection") == [b"upgrade"]
    assert data == b"HELLO WORLD, BYE"
    assert ps.field(seen["headers"], b"upgrade") == [b"websocket"]
    assert ps.field(seen["headers"], b"sec-websocket-key") == [b"dGhlIHNhbXBsZSBub25jZQ=="]
    assert len(tunnels) == 1 and tunnels[0][1].closed
    assert tunnels[0][1].bytes_up == len(b"hello world, bye")
    assert records[0].status == 101


def test_declined_upgrade_is_an_ordinary_response(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin))

    def client() -> list[bytes]:
        sock = ps.raw_request(
            harness,
            front,
            b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n",
        )
        reader = support.ResponseReader(sock)
        return [reader.read().status, reader.read().status]

    assert harness.client(client) == [b"200", b"200"]
    assert [r["uri"] for r in seen.requests] == [b"/a", b"/b"]


def test_tunnel_flow_control_bounds_its_buffers(harness: Harness) -> None:
    """8 MiB from the origin through an upgraded tunnel to a slow client: the proxy's write
    buffer towards the client stays near its pause mark."""
    total = 8 * 1024 * 1024
    peak = [0]
    conns: list[TcpConnection] = []

    def handler(exchange: HttpServerExchange) -> None:
        def upgraded(tcp_conn: TcpConnection, rest: bytes) -> None:
            left = [total]
            paused = [False]
            block = b"z" * 65536

            def pump() -> None:
                while left[0] > 0 and not paused[0]:
                    tcp_conn.write(block)
                    left[0] -= len(block)
                if left[0] == 0:
                    left[0] = -1
                    tcp_conn.close()

            def pause(now: bool) -> None:
                paused[0] = now
                if not now:
                    pump()

            tcp_conn.on("pause", pause)
            tcp_conn.pause(False)
            pump()

        def done(trailers: RawHeaders) -> None:
            exchange.response_start(b"101", b"Switching Protocols", [(b"Upgrade", b"bulk")])
            exchange.response_done([])

        exchange.on("upgrade", upgraded)
        exchange.on("request_done", done)

    origin = harness.server(handler)
    front, proxy = ps.make_proxy(harness, ps.origin_url(origin))
    proxy.on("tunnel", lambda px, tunnel: conns.append(tunnel.downstream))

    def sample() -> None:
        for conn in conns:
            peak[0] = max(peak[0], conn.write_buffer_size)
        harness.later(0.002, sample)

    harness.later(0.002, sample)

    def client() -> int:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        harness.socks.append(sock)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", front.port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: bulk\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        received = len(data.partition(b"\r\n\r\n")[2])
        while True:
            chunk = sock.recv(16384)
            if not chunk:
                return received
            received += len(chunk)
            time.sleep(0.0002)

    assert harness.client(client, timeout=60) == total
    assert 0 < peak[0] <= TcpConnection.write_bufsize + 4 * TcpConnection.read_bufsize


# -- the forward proxy ---------------------------------------------------------------------------


def test_forward_proxy_absolute_form(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, _proxy = ps.make_proxy(harness, cls=ForwardProxy)
    url = f"http://127.0.0.1:{origin.port}/p?q=1".encode()

    def client() -> list[support.Response]:
        sock = ps.raw_request(
            harness,
            front,
            b"GET " + url + b" HTTP/1.1\r\nHost: wrong.example\r\nProxy-Connection: keep-alive\r\n"
            b"Proxy-Authorization: Basic eA==\r\n\r\n"
            b"GET /origin-form HTTP/1.1\r\nHost: h\r\n\r\n",
        )
        reader = support.ResponseReader(sock)
        return [reader.read(), reader.read()]

    ok, refused = harness.client(client)
    assert ok.status == b"200" and ok.header(b"x-origin") == [b"yes"]
    assert refused.status == b"400"
    request = seen.requests[0]
    assert request["uri"] == b"/p?q=1"
    assert ps.field(request["headers"], b"host") == [f"127.0.0.1:{origin.port}".encode()]
    assert not ps.field(request["headers"], b"proxy-authorization")
    assert not ps.field(request["headers"], b"proxy-connection")
    assert len(seen.requests) == 1


def test_a_bad_absolute_form_target_is_400_and_closes(harness: Harness) -> None:
    """Both proxies answer an absolute-form target they cannot take apart (a port out of range,
    an unclosed IPv6 literal) 400 with Connection: close; one without a host is refused by the
    server's parser already (400, and the connection closed)."""
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    forward_front, _forward = ps.make_proxy(harness, cls=ForwardProxy)
    reverse_front, _reverse = ps.make_proxy(harness, ps.origin_url(origin))

    def client() -> list[tuple[bytes, bytes, list[bytes], bool]]:
        out = []
        for server in (forward_front, reverse_front):
            for target in (b"http://example:99999/", b"http://[::1/", b"http:///p"):
                sock = ps.raw_request(
                    harness, server, b"GET %s HTTP/1.1\r\nHost: h\r\n\r\n" % target
                )
                response = support.ResponseReader(sock).read()
                closed = support.closed_by_peer(sock)
                out.append((response.status, response.body, response.header(b"connection"), closed))
        return out

    answers = harness.client(client)
    for number, (status, body, connection, closed) in enumerate(answers):
        assert (status, closed) == (b"400", True)
        if number % 3 != 2:  # (not the empty host: the parser's own answer)
            assert (body, connection) == (b"Bad request target\n", [b"close"])
    assert len(answers) == 6
    assert not seen.requests


def echo_tcp_server(harness: Harness) -> TcpServer:
    """A raw TCP server echoing what it receives, upper-cased."""
    server = TcpServer(b"127.0.0.1", 0, loop=harness.loop)

    def connected(conn: TcpConnection) -> None:
        conn.on("data", lambda chunk: conn.write(chunk.upper()))
        conn.on("close", conn.close)
        conn.pause(False)

    server.on("connect", connected)
    harness.tcp_servers = [server]  # type: ignore[attr-defined]
    return server


def test_forward_proxy_connect_to_an_allowed_port(harness: Harness) -> None:
    target = echo_tcp_server(harness)
    front = harness.server(None)
    proxy = ForwardProxy(front, connect_ports=(target.port,))
    harness.proxies.append(proxy)
    records: list[AccessRecord] = []
    proxy.on("access", records.append)

    def client() -> tuple[support.Response, bytes]:
        sock = ps.raw_request(
            harness,
            front,
            b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\nping "
            % (target.port, target.port),
        )
        reader = support.ResponseReader(sock)
        head = reader.read(b"CONNECT")
        sock.sendall(b"pong")
        data = b""
        while len(data) < len(b"PING PONG"):
            data += reader.rest(0.5)
        sock.close()  # the tunnel closes both ways
        return head, data

    try:
        head, data = harness.client(client, settle=0.3)
    finally:
        target.shutdown()
        for conn in list(target.active_connections):
            conn.abort()
    assert head.status == b"200"
    assert data == b"PING PONG"
    assert records[0].status == 200 and records[0].upstream == f"127.0.0.1:{target.port}"


def test_a_connect_with_content_is_refused_and_closes(harness: Harness) -> None:
    target = echo_tcp_server(harness)
    front = harness.server(None)
    proxy = ForwardProxy(front, connect_ports=(target.port,))
    harness.proxies.append(proxy)
    reverse_front, _reverse = ps.make_proxy(harness, f"http://127.0.0.1:{target.port}")
    connect = b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n" % target.port

    def client() -> list[tuple[bytes, list[bytes], bool]]:
        out = []
        for server, framing, body in (
            (front, b"Content-Length: 5\r\n", b"helloTUNNEL"),
            (front, b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\nTUNNEL"),
            (reverse_front, b"Content-Length: 5\r\n", b"helloTUNNEL"),
        ):
            sock = ps.raw_request(harness, server, connect + framing + b"\r\n" + body)
            response = support.ResponseReader(sock).read(b"CONNECT")
            out.append(
                (response.status, response.header(b"connection"), support.closed_by_peer(sock))
            )
        return out

    try:
        results = harness.client(client)
    finally:
        target.shutdown()
    assert results == [(b"400", [b"close"], True)] * 3
    assert not target.active_connections  # no tunnel was opened


def test_forward_proxy_connect_elsewhere_is_403(harness: Harness) -> None:
    target = echo_tcp_server(harness)
    front, _proxy = ps.make_proxy(harness, cls=ForwardProxy)

    def client() -> list[bytes]:
        statuses = []
        for request in (
            b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % target.port,
            b"CONNECT [::1]:22 HTTP/1.1\r\nHost: x\r\n\r\n",
        ):
            sock = ps.raw_request(harness, front, request)
            statuses.append(support.ResponseReader(sock).read(b"CONNECT").status)
        return statuses

    try:
        assert harness.client(client) == [b"403", b"403"]
    finally:
        target.shutdown()
    assert not target.active_connections


def test_forward_proxy_connect_failure_is_502(harness: Harness) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    front = harness.server(None)
    proxy = ForwardProxy(front, connect_ports=(port,))
    harness.proxies.append(proxy)

    def client() -> bytes:
        conn = ps.raw_request(
            harness, front, b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % port
        )
        return support.ResponseReader(conn).read(b"CONNECT").status

    assert harness.client(client) == b"502"


def test_forward_proxy_check_ip_refuses(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front = harness.server(None)
    proxy = ForwardProxy(front, connect_ports=(origin.port,), check_ip=lambda ip: False)
    harness.proxies.append(proxy)
    url = f"http://127.0.0.1:{origin.port}/".encode()

    def client() -> list[bytes]:
        out = []
        sock = ps.raw_request(harness, front, b"GET " + url + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        out.append(support.ResponseReader(sock).read().status)
        sock = ps.raw_request(
            harness, front, b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % origin.port
        )
        out.append(support.ResponseReader(sock).read(b"CONNECT").status)
        return out

    assert harness.client(client) == [b"403", b"403"]
    assert not seen.requests


def test_idle_tunnel_is_closed(harness: Harness) -> None:
    target = echo_tcp_server(harness)
    front = harness.server(None)
    proxy_class = type("QuickProxy", (ForwardProxy,), {"tunnel_idle_timeout": 0.2})
    proxy = proxy_class(front, connect_ports=(target.port,))
    harness.proxies.append(proxy)
    tunnels: list[Tunnel] = []
    proxy.on("tunnel", lambda px, tunnel: tunnels.append(tunnel))

    def client() -> tuple[bytes, bool]:
        sock = ps.raw_request(
            harness, front, b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % target.port
        )
        reader = support.ResponseReader(sock)
        status = reader.read(b"CONNECT").status
        return status, support.closed_by_peer(sock, 5.0)

    try:
        status, closed = harness.client(client, settle=0.2)
    finally:
        target.shutdown()
        for conn in list(target.active_connections):
            conn.abort()
    assert status == b"200"
    assert closed
    assert tunnels and tunnels[0].closed


def test_upgrade_without_connection_upgrade_is_not_forwarded(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin))

    def client() -> bytes:
        sock = ps.raw_request(
            harness, front, b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n"
        )
        return support.ResponseReader(sock).read().status

    assert harness.client(client) == b"200"
    assert not ps.field(seen.requests[0]["headers"], b"upgrade")
