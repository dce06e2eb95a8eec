"""An exception raised by a listener of a connection's events is contained: it reaches the
loop's exception handler and that connection is closed (its socket, and its place in the
server's ``active_connections``), whether the listener is a connection's 'data' or 'close'
listener or a server's or client's 'connect' listener, for TCP and TLS, on every loop backend.

Each test is driven from its loop (``net`` fixture; see tcp_fixtures.py for the rules). The
loop's exception handler here records the exception and ends the run (the connection is
aborted before the exception goes on to the loop).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest
import tcp_fixtures as tf
from tcp_fixtures import Net
from tls_fixtures import Pki

from thor.loop import LoopBase
from thor.tcp import TcpClient, TcpConnection, TcpServer
from thor.tls import TlsClient, TlsServer


class ListenerError(Exception):
    """What the listeners here raise."""


def fail(*args: object) -> None:
    raise ListenerError("listener failed")


@pytest.fixture(params=tf.BACKENDS)
def net(request: pytest.FixtureRequest) -> Iterator[Net]:
    yield from tf.open_net(request.param)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def catch(net: Net) -> list[BaseException]:
    """Route what reaches the loop's exception handler into the list returned; the first one
    ends the run."""
    reported: list[BaseException] = []

    def handler(loop: LoopBase, exc: BaseException, where: str) -> None:
        reported.append(exc)
        net.done()

    net.loop.set_exception_handler(handler)
    return reported


def assert_contained(
    reported: list[BaseException], conn: TcpConnection, server: TcpServer | None
) -> None:
    assert [type(exc) for exc in reported] == [ListenerError]
    assert conn.socket.fileno() == -1, f"left open: {conn!r}"
    if server is not None:
        assert conn not in server.active_connections


@pytest.mark.parametrize("event", ["data", "close"])
def test_a_connection_listener_that_raises(net: Net, event: str) -> None:
    """A 'data' listener (the reference case) or a 'close' listener of a server's connection
    raises: reported, and the connection is closed and leaves the server."""
    server = net.server()
    peer = net.raw_connect(b"127.0.0.1", server.port)

    def arrived(conn: TcpConnection) -> None:
        conn.on(event, fail)
        conn.pause(False)
        peer.sendall(b"hello")
        peer.shutdown(socket.SHUT_WR)

    server.on("connect", arrived)
    reported = catch(net)
    net.run()
    assert_contained(reported, net.conns[0], server)


def tcp_server(net: Net, pki: Pki) -> TcpServer:
    return net.server()


def tls_server(net: Net, pki: Pki) -> TcpServer:
    return net.server(cls=TlsServer, certfile=pki.cert_file)


def tcp_client(net: Net, pki: Pki) -> TcpClient:
    return net.client()


def tls_client(net: Net, pki: Pki) -> TcpClient:
    client = TlsClient(net.loop, ca_file=pki.ca_file)
    net.clients.append(client)
    client.on("connect", net.conns.append)
    return client


ServerMaker = Callable[[Net, Pki], TcpServer]
ClientMaker = Callable[[Net, Pki], TcpClient]


def failing(conns: list[TcpConnection]) -> Callable[[TcpConnection], None]:
    """A 'connect' listener that keeps the connection (for the test to look at) and raises."""

    def listener(conn: TcpConnection) -> None:
        conns.append(conn)
        raise ListenerError("listener failed")

    return listener


KINDS = pytest.mark.parametrize(
    ("make_server", "make_client"),
    [(tcp_server, tcp_client), (tls_server, tls_client)],
    ids=["tcp", "tls"],
)


@KINDS
def test_a_server_connect_listener_that_raises(
    net: Net, pki: Pki, make_server: ServerMaker, make_client: ClientMaker
) -> None:
    """A 'connect' listener of TcpServer or TlsServer raises: reported, and the new
    connection (which nobody else holds) is closed and leaves the server."""
    server = make_server(net, pki)
    conns: list[TcpConnection] = []
    server.on("connect", failing(conns))
    make_client(net, pki).connect(b"127.0.0.1", server.port)
    reported = catch(net)
    net.run()
    assert_contained(reported, conns[0], server)


@KINDS
def test_a_client_connect_listener_that_raises(
    net: Net, pki: Pki, make_server: ServerMaker, make_client: ClientMaker
) -> None:
    """A 'connect' listener of TcpClient or TlsClient raises: reported, and the new
    connection (which nobody else holds) is closed."""
    server = make_server(net, pki)
    client = make_client(net, pki)
    conns: list[TcpConnection] = []
    client.on("connect", failing(conns))
    client.connect(b"127.0.0.1", server.port)
    reported = catch(net)
    net.run()
    assert_contained(reported, conns[0], None)
