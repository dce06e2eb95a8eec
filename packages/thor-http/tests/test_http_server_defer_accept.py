"""HttpServer.defer_accept: the listening socket (plain and TLS) asks the kernel to hand over
connections with their first bytes (Linux's TCP_DEFER_ACCEPT) by default; 0 or None leaves it
off; a tcp_server_class without ``defer_accept`` still serves; a connection that sends nothing is
still handed over, and then dropped by request_head_timeout (test_http_server_timeouts.py)."""

from __future__ import annotations

import http.client
import socket
import ssl
from typing import TYPE_CHECKING, Any

import http_server_support as support
import pytest
import trustme

from thor.http import HttpServer
from thor.tcp import TcpServer

if TYPE_CHECKING:
    from http_server_support import Harness

harness = support.harness
HELLO = b"Hello, world!"

linux_only = pytest.mark.skipif(
    not hasattr(socket, "TCP_DEFER_ACCEPT"), reason="TCP_DEFER_ACCEPT is Linux's"
)


def deferral(server: HttpServer) -> int:
    sock = server.tcp_server.sock
    assert sock is not None
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT)


def fetch(port: int, headers: dict[str, str] | None = None) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/", headers=headers or {})
    body = conn.getresponse().read()
    conn.close()
    return body


@linux_only
def test_on_by_default_and_requests_are_served(harness: Harness) -> None:
    server = harness.server(support.hello_handler())
    assert HttpServer.defer_accept == 1
    assert deferral(server) >= 1

    def client() -> list[bytes]:
        return [fetch(server.port, {"Connection": "close"}) for _ in range(3)] + [
            fetch(server.port)
        ]

    assert harness.client(client) == [HELLO] * 4


@linux_only
def test_the_seconds_reach_the_socket(harness: Harness) -> None:
    server = harness.server(support.hello_handler(), defer_accept=3)
    assert deferral(server) >= 3


@linux_only
@pytest.mark.parametrize(("setting", "left"), [(0, False), (None, True)])
def test_zero_turns_it_off_and_none_leaves_a_given_socket_as_it_is(
    harness: Harness, setting: Any, left: bool
) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 5)
    server = type("Server", (HttpServer,), {"defer_accept": setting})(
        b"127.0.0.1", 0, harness.loop, sock=listener
    )
    harness.servers.append(server)
    assert (deferral(server) >= 5) is left
    fresh = harness.server(support.hello_handler(), defer_accept=setting)  # a socket of its own
    assert deferral(fresh) == 0


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "1", True])
def test_a_bad_setting_is_a_value_error_before_anything_listens(harness: Harness, bad: Any) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    with pytest.raises(ValueError, match="defer_accept") as info:
        type("Server", (HttpServer,), {"defer_accept": bad})(
            b"127.0.0.1", 0, harness.loop, sock=listener
        )
    assert repr(bad) in str(info.value)
    assert listener.fileno() != -1  # the given socket is untouched: still open
    listener.close()


@linux_only
def test_a_silent_connection_held_at_a_graceful_shutdown_never_reaches_the_server(
    harness: Harness,
) -> None:
    """The documented trade-off: the kernel drops a connection it still holds when the
    listener closes, without a packet; the client learns of it when it sends (a reset)."""
    server = harness.server(support.hello_handler(), defer_accept=3)
    server.on("stop", harness.loop.stop)
    silent = harness.connect(server)  # the client's side is connected at once
    harness.later(0.2, server.graceful_shutdown)
    harness.run(5, "the server did not stop")
    assert not harness.exchanges and not server.connections
    silent.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    silent.settimeout(5)
    with pytest.raises(ConnectionResetError):
        while silent.recv(65536):
            pass


@linux_only
def test_an_https_server_has_it_too(harness: Harness) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    secure = HttpServer(b"127.0.0.1", 0, harness.loop, tls_context=context)
    harness.servers.append(secure)
    assert deferral(secure) >= 1


def test_a_tcp_server_class_without_it_still_serves(harness: Harness) -> None:
    class PlainTcpServer(TcpServer):
        defer_accept = None  # type: ignore[assignment]  # as a class that never had one

    class Server(HttpServer):
        tcp_server_class = PlainTcpServer

    server = Server(b"127.0.0.1", 0, harness.loop)
    harness.servers.append(server)
    server.on("exchange", support.hello_handler())
    if hasattr(socket, "TCP_DEFER_ACCEPT"):
        assert deferral(server) == 0
    assert harness.client(lambda: fetch(server.port)) == HELLO
