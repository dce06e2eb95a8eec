"""The server's flush pass (output of a read batch goes out after the loop pass's IO dispatch,
with every other connection's): what was answered in a pass is sent even when a handler stops
the loop later in that pass; an exception from one connection's write aborts that connection
only; a connection fed by hand while the loop is not running is answered at once.

Each test runs its own loop in the test's thread, with plain blocking sockets as clients
(the loop does not run while they read, so everything the server sent is in their buffers).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

import thor.loop
from thor.http.server import HttpServer, HttpServerExchange
from thor.loop import LoopBase
from thor.tcp import TcpConnection

REQUEST = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n"


class EagerServer(HttpServer):
    """Connections handed over as soon as they are made, without the kernel's deferral: these
    tests need them accepted before their requests are sent (to read them as IO events of one
    pass, or to accept one by hand)."""

    defer_accept = 0


def respond(exchange: HttpServerExchange) -> None:
    exchange.response_start(b"200", b"OK", [(b"Content-Length", b"2")])
    exchange.response_body(b"ok")
    exchange.response_done([])


def received(sock: socket.socket, responses: int = 1, seconds: float = 1.0) -> bytes:
    """What ``sock`` received until ``responses`` whole ones arrived, or ``seconds`` passed."""
    sock.settimeout(seconds)
    got = b""
    try:
        while got.count(b"\r\n\r\nok") < responses:
            data = sock.recv(65536)
            if not data:
                break
            got += data
    except TimeoutError:
        pass
    return got


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed or reset ``sock`` (whatever it sent before)."""
    sock.settimeout(1.0)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


@pytest.fixture
def loop() -> Iterator[LoopBase]:
    new_loop = thor.loop.make()
    yield new_loop
    new_loop.close()


@pytest.fixture
def clients() -> Iterator[list[socket.socket]]:
    made: list[socket.socket] = []
    yield made
    for sock in made:
        sock.close()


def connect(server: HttpServer, clients: list[socket.socket]) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port))
    clients.append(sock)
    return sock


def close_server(server: HttpServer) -> None:
    for tcp in list(server.tcp_server.active_connections):
        tcp.abort()
    server.shutdown()


def test_a_handler_stopping_the_loop_does_not_lose_the_pass_output(
    loop: LoopBase, clients: list[socket.socket]
) -> None:
    server = EagerServer(b"127.0.0.1", 0, loop)
    errors: list[Any] = []
    loop.set_exception_handler(lambda lp, exc, where: errors.append((exc, where)))

    def on_exchange(exchange: HttpServerExchange) -> None:
        def done(trailers: Any) -> None:
            respond(exchange)
            if exchange.uri == b"/quit":  # (a later read of the same pass stops the loop)
                loop.stop()

        exchange.on("request_done", done)

    server.on("exchange", on_exchange)
    first, quitting = connect(server, clients), connect(server, clients)

    def send_both() -> None:  # from the loop's thread: both readable at the next poll
        first.sendall(REQUEST % b"/a")
        quitting.sendall(REQUEST % b"/quit")

    loop.schedule(0.2, send_both)
    safety = loop.schedule(5, loop.stop)
    loop.run()
    safety.delete()
    assert received(first).startswith(b"HTTP/1.1 200 OK")
    assert received(quitting).startswith(b"HTTP/1.1 200 OK")
    assert not errors
    # nothing left pending that would keep the server from flushing again (stop() forgets
    # the fds, so the loop cannot simply be run again here)
    assert not server._flush_pending
    assert not server._to_flush
    close_server(server)


def test_an_exception_writing_one_connection_aborts_only_that_one(
    loop: LoopBase, clients: list[socket.socket]
) -> None:
    server = EagerServer(b"127.0.0.1", 0, loop)
    errors: list[Any] = []
    loop.set_exception_handler(lambda lp, exc, where: errors.append(exc))

    def broken_listener() -> None:
        raise RuntimeError("a 'sent' listener failed")

    def on_exchange(exchange: HttpServerExchange) -> None:
        if exchange.uri == b"/boom":
            tcp = exchange.http_conn.tcp_conn
            assert tcp is not None
            tcp.on("sent", broken_listener)
        exchange.on("request_done", lambda trailers: respond(exchange))

    server.on("exchange", on_exchange)
    boom, second, third = (connect(server, clients) for _ in range(3))

    def send_all() -> None:  # one pass reads all three
        boom.sendall(REQUEST % b"/boom")
        second.sendall(REQUEST % b"/b")
        third.sendall(REQUEST % b"/c")

    def send_again() -> None:  # a later pass: the second connection is still served
        second.sendall(REQUEST % b"/b2")

    loop.schedule(0.2, send_all)
    loop.schedule(0.4, send_again)
    loop.schedule(0.8, loop.stop)
    loop.run()
    assert [type(exc) for exc in errors] == [RuntimeError]  # reported by the loop, once
    assert received(second, responses=2).count(b"HTTP/1.1 200 OK") == 2
    assert received(third).startswith(b"HTTP/1.1 200 OK")
    assert closed_by_server(boom)  # the connection whose write raised was aborted
    close_server(server)


def test_a_connection_fed_while_the_loop_is_not_running_is_answered_at_once(
    loop: LoopBase, clients: list[socket.socket]
) -> None:
    server = EagerServer(b"127.0.0.1", 0, loop)
    server.on(
        "exchange",
        lambda exchange: exchange.on("request_done", lambda trailers: respond(exchange)),
    )
    client = connect(server, clients)
    listening = server.tcp_server.sock
    listening.settimeout(5)
    accepted, address = listening.accept()
    client.sendall(REQUEST % b"/")
    tcp = TcpConnection(accepted, address, loop)
    server.handle_conn(tcp)  # the loop never runs in this test
    assert received(client, seconds=0.5).startswith(b"HTTP/1.1 200 OK")
    tcp.abort()
    close_server(server)
