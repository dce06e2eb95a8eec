"""Half-close through the proxies' tunnels: when one end of a CONNECT or Upgrade tunnel sends
its FIN, the proxy passes it on (after what it still has to write) and keeps relaying the other
way until that end closes too; flow control keeps working in the direction still open.

Clients are blocking sockets in the harness's worker thread; origins are thor servers on the
loop that record what they see (tests assert afterwards).
"""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import http_server_support as support
import proxy_support as ps
import pytest

from thor.http.proxy import ForwardProxy, ProxyExchange, Tunnel
from thor.tcp import TcpConnection, TcpServer

if TYPE_CHECKING:
    from proxy_support import Harness, RawHeaders

    from thor.http.server import HttpServer, HttpServerExchange

harness = ps.harness

KIB = 1024
MIB = 1024 * KIB


def pattern(size: int, seed: int) -> bytes:
    """``size`` bytes in which a lost, repeated or reordered piece shows."""
    out = bytearray()
    index = 0
    while len(out) < size:
        out += hashlib.sha256(b"%d:%d" % (seed, index)).digest()
        index += 1
    return bytes(out[:size])


REQUEST = pattern(3 * MIB, 1)  # more than the socket buffers on the way hold
REPLY = pattern(2 * MIB, 2)


class Origin:
    """What one origin-side connection saw: the bytes, and how many had come at its EOF."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.at_eof: int | None = None
        self.eof = threading.Event()  # set from the loop; clients in the worker thread wait

    def on_data(self, data: bytes) -> None:
        self.received += data

    def on_eof(self) -> None:
        self.at_eof = len(self.received)
        self.eof.set()


def answer_after_eof(conn: TcpConnection, origin: Origin, reply: bytes) -> None:
    """Origin behaviour: read until the client's EOF, then send ``reply`` and close."""

    def on_close() -> None:
        origin.on_eof()
        conn.write(reply)
        conn.close()

    conn.on("data", origin.on_data)
    conn.on("close", on_close)
    conn.pause(False)


def greet_then_read(conn: TcpConnection, origin: Origin, greeting: bytes) -> None:
    """Origin behaviour: send ``greeting`` and our FIN at once, then read until the EOF."""
    conn.on("data", origin.on_data)
    conn.on("close", origin.on_eof)
    conn.write(greeting)
    conn.shutdown_write()
    conn.pause(False)


@pytest.fixture
def tcp_origin(harness: Harness) -> Iterator[Callable[[Callable[[TcpConnection], None]], int]]:
    """Starts raw TCP origins (``behaviour(conn)`` per connection); closes them afterwards."""
    servers: list[TcpServer] = []

    def start(behaviour: Callable[[TcpConnection], None]) -> int:
        server = TcpServer(b"127.0.0.1", 0, loop=harness.loop)
        server.on("connect", behaviour)
        servers.append(server)
        return server.port

    yield start
    for server in servers:
        server.shutdown()
        for conn in list(server.active_connections):
            conn.abort()


def connect_through(
    harness: Harness, front: HttpServer, port: int, early: bytearray | None = None
) -> socket.socket:
    """A client socket with a CONNECT tunnel to 127.0.0.1:``port`` established; tunnel bytes
    read with the 200 go to ``early`` (an origin that speaks first), else there must be none."""
    sock = ps.raw_request(
        harness,
        front,
        b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (port, port),
    )
    reader = support.ResponseReader(sock)
    head = reader.read(b"CONNECT")
    assert head.status == b"200", head.status
    if early is None:
        assert not reader.buf, "tunnel bytes before anything was sent"
    else:
        early += reader.buf
    return sock


def read_to_eof(sock: socket.socket, already: bytes = b"", pace: float = 0.0) -> bytes:
    """Everything until the peer's FIN (``pace``: a pause after each read, a slow reader)."""
    sock.settimeout(10.0)
    data = bytearray(already)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(data)
        data += chunk
        if pace:
            time.sleep(pace)


def forward_proxy(harness: Harness, port: int) -> tuple[HttpServer, ForwardProxy, list[Tunnel]]:
    front = harness.server(None)
    proxy = ForwardProxy(front, connect_ports=(port,))
    harness.proxies.append(proxy)
    tunnels: list[Tunnel] = []
    proxy.on("tunnel", lambda px, tunnel: tunnels.append(tunnel))
    return front, proxy, tunnels


# -- CONNECT ---------------------------------------------------------------------------------------


def test_connect_client_half_closes_and_still_gets_the_reply(
    harness: Harness, tcp_origin: Any
) -> None:
    """The client sends 3 MiB and shuts down its write side; the origin gets all of it, then
    EOF, and only then answers (2 MiB) and closes; the client reads the whole answer, then
    EOF."""
    origin = Origin()
    port = tcp_origin(lambda conn: answer_after_eof(conn, origin, REPLY))
    front, _proxy, tunnels = forward_proxy(harness, port)

    def client() -> bytes:
        sock = connect_through(harness, front, port)
        sock.sendall(REQUEST)
        sock.shutdown(socket.SHUT_WR)
        return read_to_eof(sock)

    reply = harness.client(client, timeout=20.0, settle=0.05)
    assert origin.at_eof == len(REQUEST), "the origin saw EOF before all the data"
    assert bytes(origin.received) == REQUEST
    assert len(reply) == len(REPLY) and reply == REPLY, "the reply after the half-close was cut"
    assert len(tunnels) == 1 and tunnels[0].closed
    assert (tunnels[0].bytes_up, tunnels[0].bytes_down) == (len(REQUEST), len(REPLY))


def test_connect_origin_half_closes_and_still_gets_the_upload(
    harness: Harness, tcp_origin: Any
) -> None:
    """The other way round: the origin greets and shuts down its write side at once; the client
    reads the greeting to EOF, then sends 3 MiB and closes; the origin gets all of it, then EOF.
    """
    origin = Origin()
    greeting = pattern(256 * KIB, 3)
    port = tcp_origin(lambda conn: greet_then_read(conn, origin, greeting))
    front, _proxy, tunnels = forward_proxy(harness, port)

    def client() -> tuple[bytes, bool]:
        early = bytearray()  # the greeting may come in the same read as the 200
        sock = connect_through(harness, front, port, early)
        got = read_to_eof(sock, bytes(early))
        sock.sendall(REQUEST)
        sock.shutdown(socket.SHUT_WR)
        return got, origin.eof.wait(10.0)

    got, eof = harness.client(client, timeout=20.0, settle=0.05)
    assert got == greeting
    assert eof, "the origin never saw the client's EOF"
    assert origin.at_eof == len(REQUEST) and bytes(origin.received) == REQUEST
    assert len(tunnels) == 1 and tunnels[0].closed


def test_connect_both_directions_stay_open_until_both_ends_close(
    harness: Harness, tcp_origin: Any
) -> None:
    """A ping-pong over a half-closed tunnel: after the client's FIN the origin still answers
    every message the client sent, in several writes, and the tunnel stays up between them."""
    origin = Origin()
    closed_while_answering: list[bool] = []

    def behaviour(conn: TcpConnection) -> None:
        def on_close() -> None:
            origin.on_eof()
            pieces = origin.received.split(b";")

            def send_next() -> None:
                if not pieces:
                    conn.close()
                    return
                conn.write(pieces.pop(0).upper() + b";")
                closed_while_answering.append(tunnels[0].closed)
                harness.loop.schedule(0.01, send_next)

            send_next()

        conn.on("data", origin.on_data)
        conn.on("close", on_close)
        conn.pause(False)

    port = tcp_origin(behaviour)
    front, _proxy, tunnels = forward_proxy(harness, port)
    messages = [b"alpha", b"beta", b"gamma", b"delta"]

    def client() -> bytes:
        sock = connect_through(harness, front, port)
        sock.sendall(b";".join(messages))
        sock.shutdown(socket.SHUT_WR)
        return read_to_eof(sock)

    reply = harness.client(client, settle=0.05)
    assert reply == b"".join(m.upper() + b";" for m in messages)
    assert closed_while_answering == [False] * len(messages), "the tunnel closed half-way"
    assert tunnels[0].closed


def test_connect_flow_control_holds_after_the_half_close(harness: Harness, tcp_origin: Any) -> None:
    """After the client's FIN the origin streams 8 MiB (honouring its 'pause') to a client that
    reads slowly: the proxy's write buffer towards the client stays near its pause mark, so the
    upstream side, now half-closed, is still paused and resumed."""
    total = 8 * MIB
    block = b"y" * (64 * KIB)
    origin = Origin()
    peak = [0]

    def behaviour(conn: TcpConnection) -> None:
        state = {"left": total, "paused": False}

        def pump() -> None:
            while state["left"] > 0 and not state["paused"]:
                conn.write(block)
                state["left"] -= len(block)
            if state["left"] == 0:
                state["left"] = -1
                conn.close()

        def pause(paused: bool) -> None:
            state["paused"] = paused
            if not paused:
                pump()

        def on_close() -> None:
            origin.on_eof()
            pump()

        conn.on("data", origin.on_data)
        conn.on("close", on_close)
        conn.on("pause", pause)
        conn.pause(False)

    port = tcp_origin(behaviour)
    front, _proxy, tunnels = forward_proxy(harness, port)

    def sample() -> None:
        for tunnel in tunnels:
            peak[0] = max(peak[0], tunnel.downstream.write_buffer_size)
        harness.later(0.002, sample)

    harness.later(0.002, sample)

    def client() -> int:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * KIB)
        harness.socks.append(sock)
        sock.settimeout(10.0)
        sock.connect(("127.0.0.1", front.port))
        sock.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % port)
        reader = support.ResponseReader(sock, 10.0)
        assert reader.read(b"CONNECT").status == b"200"
        sock.sendall(b"send me everything")
        sock.shutdown(socket.SHUT_WR)
        return len(read_to_eof(sock, bytes(reader.buf), pace=0.0002))

    assert harness.client(client, timeout=60.0) == total
    assert bytes(origin.received) == b"send me everything"
    assert 0 < peak[0] <= TcpConnection.write_bufsize + 4 * TcpConnection.read_bufsize


def test_a_connect_tunnel_still_closes_both_ways_when_a_side_is_reset(
    harness: Harness, tcp_origin: Any
) -> None:
    """A failure (the origin resets) is no half-close: the tunnel ends and the client's side
    is closed too."""
    origin_conns: list[TcpConnection] = []

    def behaviour(conn: TcpConnection) -> None:
        origin_conns.append(conn)
        conn.on("data", lambda data: reset(conn))
        conn.pause(False)

    def reset(conn: TcpConnection) -> None:
        conn.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.abort()

    port = tcp_origin(behaviour)
    front, _proxy, tunnels = forward_proxy(harness, port)

    def client() -> bool:
        sock = connect_through(harness, front, port)
        sock.sendall(b"hello")
        return support.closed_by_peer(sock, 5.0)

    assert harness.client(client, settle=0.05) is True
    assert tunnels and tunnels[0].closed


# -- Upgrade through the ReverseProxy ------------------------------------------------------------


def upgrading_origin(origin: Origin, reply: bytes) -> Callable[[HttpServerExchange], None]:
    """An origin accepting every Upgrade with 101; on the raw connection it reads until the
    client's EOF, then sends ``reply`` and closes."""

    def handler(exchange: HttpServerExchange) -> None:
        def upgraded(tcp_conn: TcpConnection, rest: bytes) -> None:
            if rest:
                origin.on_data(rest)
            answer_after_eof(tcp_conn, origin, reply)

        def done(trailers: RawHeaders) -> None:
            exchange.response_start(b"101", b"Switching Protocols", [(b"Upgrade", b"echo")])
            exchange.response_done([])

        exchange.on("upgrade", upgraded)
        exchange.on("request_done", done)

    return handler


def test_upgrade_client_half_closes_and_still_gets_the_reply(harness: Harness) -> None:
    origin = Origin()
    server = harness.server(upgrading_origin(origin, REPLY))
    front, proxy = ps.make_proxy(harness, ps.origin_url(server))
    tunnels: list[tuple[ProxyExchange, Tunnel]] = []
    proxy.on("tunnel", lambda px, tunnel: tunnels.append((px, tunnel)))

    def client() -> tuple[bytes, bytes]:
        sock = ps.raw_request(
            harness,
            front,
            b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        reader = support.ResponseReader(sock)
        head = reader.read()
        sock.sendall(REQUEST)
        sock.shutdown(socket.SHUT_WR)
        return head.status, read_to_eof(sock, bytes(reader.buf))

    status, reply = harness.client(client, timeout=20.0, settle=0.05)
    assert status == b"101"
    assert origin.at_eof == len(REQUEST) and bytes(origin.received) == REQUEST
    assert reply == REPLY
    assert len(tunnels) == 1 and tunnels[0][1].closed


def test_connect_client_half_closes_before_the_tunnel_is_up(
    harness: Harness, tcp_origin: Any
) -> None:
    """The client does not wait for the 200: CONNECT, data and FIN in one go. The FIN reaches
    the proxy before the tunnel exists; the tunnel still passes it on after the data."""
    origin = Origin()
    port = tcp_origin(lambda conn: answer_after_eof(conn, origin, b"got it"))
    front, _proxy, tunnels = forward_proxy(harness, port)

    def client() -> tuple[bytes, bytes]:
        sock = ps.raw_request(
            harness, front, b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\nearly data" % port
        )
        sock.shutdown(socket.SHUT_WR)
        reader = support.ResponseReader(sock)
        head = reader.read(b"CONNECT")
        return head.status, read_to_eof(sock, bytes(reader.buf))

    status, reply = harness.client(client, settle=0.05)
    assert status == b"200"
    assert bytes(origin.received) == b"early data" and origin.at_eof == len(b"early data")
    assert reply == b"got it"
    assert tunnels and tunnels[0].closed
