"""TlsServer: handshakes that never stall the loop, the handshake timeout, clients that vanish
mid-handshake, SNI certificate selection, shutdowns with handshakes in progress, and
construction errors.

Certificates are made at test time with trustme; peers listen on 127.0.0.1 only. Raw client
sockets stand in for misbehaving clients (silent, or closing half way through the handshake).
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import tls_fixtures
from tls_fixtures import run, stop_when_idle

import thor.loop
from thor.loop import LoopBase
from thor.tls import TlsClient, TlsConnection, TlsServer

# -- helpers (the shared ones are in tls_fixtures.py) -------------------------------------------


@pytest.fixture
def loop() -> Iterator[LoopBase]:
    new_loop = thor.loop.make()
    yield new_loop
    new_loop.close()


class Pki(tls_fixtures.Pki):
    """A CA; certificates for localhost, alpha.test, beta.test and *.wild.test."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.alpha_file = self.issue("alpha.pem", "alpha.test")
        self.beta_file = self.issue("beta.pem", "beta.test")
        self.wild_file = self.issue("wild.pem", "*.wild.test")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def shut_down(server: TlsServer) -> None:
    """Shut ``server`` down and stop its loop once every fd is closed."""
    server.shutdown()
    stop_when_idle(server.loop)


def loopback(port: int) -> tuple[Any, ...]:
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))


class Server(TlsServer):
    """A TlsServer whose connections close when their peer closes; ``log`` lists its events."""

    def __init__(self, loop: LoopBase, pki: Pki, **options: Any) -> None:
        super().__init__(b"127.0.0.1", 0, loop=loop, certfile=pki.cert_file, **options)
        self.log: list[str] = []
        self.on("connect", self.on_connect)
        self.on("tls_error", lambda address, message: self.log.append(f"tls_error {message}"))

    def on_connect(self, conn: TlsConnection) -> None:
        self.log.append("connect")
        conn.on("close", conn.close)
        conn.pause(False)


def good_client(loop: LoopBase, pki: Pki, port: int, name: bytes = b"localhost") -> list[Any]:
    """Connects, records the outcome (the connection, or the error), closes. A connection's
    peer certificate is kept as ``outcome[1]`` (the connection cannot tell once closed)."""
    outcome: list[Any] = []
    client = TlsClient(loop, ca_file=pki.ca_file)

    def on_connect(conn: TlsConnection) -> None:
        outcome.extend((conn, conn.peer_certificate()))
        conn.close()

    client.on("connect", on_connect)
    client.on("connect_error", lambda *error: outcome.append(error))
    client.connect_dns(name, loopback(port), 5)
    return outcome


def silent_client(port: int) -> socket.socket:
    """A TCP connection to ``port`` that will never say a word."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def client_hello() -> bytes:
    """The first flight of a real TLS client."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    tls = context.wrap_bio(ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), False, "localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def peer_closed(sock: socket.socket) -> bool:
    """Whether the peer closed ``sock`` (EOF or reset), reading and dropping what came first."""
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    return True


# -- handshakes never stall the loop ------------------------------------------------------------


def test_a_silent_client_does_not_block_another_clients_handshake(loop: LoopBase, pki: Pki) -> None:
    server = Server(loop, pki)
    server.handshake_timeout = None  # the silent client stays for the whole test
    with silent_client(server.port) as silent:
        outcome = good_client(loop, pki, server.port)

        def check_and_stop() -> None:
            assert len(server.active_connections) == 1  # the silent one, still handshaking
            server.shutdown()  # abandons the silent handshake
            stop_when_idle(loop)

        def on_connect_or_error(*args: Any) -> None:
            loop.schedule(0.05, check_and_stop)

        server.on("connect", lambda conn: conn.on("disconnect", on_connect_or_error))
        run(loop)
        assert peer_closed(silent)
    assert isinstance(outcome[0], TlsConnection)
    assert server.log == ["connect"]
    assert not server.active_connections


def test_handshake_timeout_closes_a_silent_client(loop: LoopBase, pki: Pki) -> None:
    server = Server(loop, pki)
    server.handshake_timeout = 0.2
    with silent_client(server.port) as silent:
        server.on("tls_error", lambda address, message: shut_down(server))
        run(loop)
        assert peer_closed(silent)
    assert server.log == ["tls_error TLS handshake timed out"]
    assert not server.active_connections


@pytest.mark.parametrize("how", ["close", "reset"])
@pytest.mark.parametrize("when", ["before the ClientHello", "after the server's answer"])
def test_client_vanishing_mid_handshake_leaves_the_server_healthy(
    loop: LoopBase, pki: Pki, how: str, when: str
) -> None:
    server = Server(loop, pki)
    raw = socket.create_connection(("127.0.0.1", server.port))
    if how == "reset":
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    outcomes: list[list[Any]] = []

    def vanish() -> None:
        raw.close()

    def await_answer() -> None:
        raw.setblocking(False)
        try:
            answer = raw.recv(65536)
        except BlockingIOError:
            loop.schedule(0.005, await_answer)
            return
        assert answer[:1] == b"\x16"  # a handshake record: the server is mid-handshake
        vanish()

    def on_tls_error(address: Any, message: str) -> None:
        # the server dropped the broken handshake; it still serves others
        assert not server.active_connections
        outcomes.append(good_client(loop, pki, server.port))

    def on_connect(conn: TlsConnection) -> None:
        conn.on("disconnect", partial(shut_down, server))

    server.on("tls_error", on_tls_error)
    server.on("connect", on_connect)
    if when == "before the ClientHello":
        raw.send(client_hello()[:20])  # a partial record, then gone
        vanish()
    else:
        raw.send(client_hello())
        loop.schedule(0, await_answer)
    run(loop)
    assert isinstance(outcomes[0][0], TlsConnection)
    log = server.log
    assert len(log) == 2 and log[0].startswith("tls_error") and log[1] == "connect"
    assert not server.active_connections


def test_graceful_shutdown_abandons_handshakes_in_progress(loop: LoopBase, pki: Pki) -> None:
    server = Server(loop, pki)
    stops: list[int] = []

    def on_stop() -> None:
        stops.append(len(server.active_connections))
        stop_when_idle(loop)

    server.on("stop", on_stop)
    with silent_client(server.port) as silent:

        def shut_down_once_accepted() -> None:
            if not server.active_connections:
                loop.schedule(0.005, shut_down_once_accepted)
                return
            server.graceful_shutdown()

        loop.schedule(0, shut_down_once_accepted)
        run(loop)
        assert peer_closed(silent)
    assert stops == [0]
    assert server.log == []


def test_max_connections_counts_handshakes(loop: LoopBase, pki: Pki) -> None:
    server = Server(loop, pki)
    server.max_connections = 1
    server.handshake_timeout = 0.2
    with silent_client(server.port) as silent:
        outcome = good_client(loop, pki, server.port)  # waits for the silent one's slot
        server.on("connect", lambda conn: conn.on("disconnect", server.shutdown))
        server.on("stop", lambda: stop_when_idle(loop))
        run(loop)
        assert peer_closed(silent)
    assert isinstance(outcome[0], TlsConnection)
    assert server.log == ["tls_error TLS handshake timed out", "connect"]


# -- SNI ----------------------------------------------------------------------------------------


def test_sni_selects_the_certificate_of_the_name_asked_for(loop: LoopBase, pki: Pki) -> None:
    beta = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    beta.load_cert_chain(pki.beta_file)
    server = Server(
        loop,
        pki,
        sni_contexts={
            "Alpha.Test": (pki.alpha_file, None),
            "beta.test": beta,
            "*.wild.test": (pki.wild_file, None),
        },
    )
    names = [b"alpha.test", b"beta.test", b"www.wild.test", b"localhost", b"unknown.test"]
    outcomes = [good_client(loop, pki, server.port, name) for name in names]

    def all_done() -> None:
        if not all(outcomes) or any(
            isinstance(o[0], TlsConnection) and o[0].socket.fileno() != -1 for o in outcomes
        ):
            loop.schedule(0.005, all_done)
            return
        server.shutdown()
        stop_when_idle(loop)

    loop.schedule(0, all_done)
    run(loop)
    sans = [o[1]["subjectAltName"] if len(o) == 2 else o[0][:1] for o in outcomes]
    assert sans == [
        (("DNS", "alpha.test"),),
        (("DNS", "beta.test"),),
        (("DNS", "*.wild.test"),),
        (("DNS", "localhost"), ("IP Address", "127.0.0.1")),
        ("ssl",),  # unknown name: the default certificate, which does not match
    ]


# -- construction -----------------------------------------------------------------------------


def test_construction_errors_leave_nothing_behind(loop: LoopBase, pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="certfile"):
        TlsServer(b"127.0.0.1", 0, loop=loop)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with pytest.raises(ValueError, match="certfile"):
        TlsServer(b"127.0.0.1", 0, loop=loop, certfile=pki.cert_file, context=context)
    with pytest.raises(ValueError, match="ALPN"):
        TlsServer(b"127.0.0.1", 0, loop=loop, context=context, alpn_protocols=["h2"])
    context.sni_callback = lambda *args: None
    with pytest.raises(ValueError, match="sni_callback"):
        TlsServer(b"127.0.0.1", 0, loop=loop, context=context, sni_contexts={"a.test": context})
    with pytest.raises(OSError):
        TlsServer(b"127.0.0.1", 0, loop=loop, certfile=str(tmp_path / "missing.pem"))
    with pytest.raises(OSError):
        TlsServer(
            b"127.0.0.1",
            0,
            loop=loop,
            certfile=pki.cert_file,
            sni_contexts={"a.test": (str(tmp_path / "missing.pem"), None)},
        )
    assert loop.fd_count() == 0


def test_tls_1_2_is_the_minimum(loop: LoopBase, pki: Pki) -> None:
    server = Server(loop, pki)
    assert server.context.minimum_version == ssl.TLSVersion.TLSv1_2
    server.shutdown()


def test_plain_http_on_the_tls_port_is_a_quiet_tls_error(loop: LoopBase, pki: Pki) -> None:
    server = Server(loop, pki)
    server.on("tls_error", lambda address, message: shut_down(server))
    with socket.create_connection(("127.0.0.1", server.port)) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        run(loop)
        plain.setblocking(False)
        assert peer_closed(plain)
    assert len(server.log) == 1 and server.log[0].startswith("tls_error TLS handshake failed")
    assert not server.active_connections
