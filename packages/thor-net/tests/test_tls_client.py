"""TlsClient: verification on by default (good, wrong name, unknown CA, expired), the explicit
no-verify setting and its warning, shared contexts, SNI, ALPN, and the outcome rules: exactly one
'connect' or one 'connect_error', with the connect timeout covering the handshake.

Certificates are made at test time with trustme; peers listen on 127.0.0.1 only.
"""

from __future__ import annotations

import datetime
import errno
import logging
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tls_fixtures
import trustme
from tls_fixtures import run, stop_when_idle

import thor.loop
import thor.tls._context as tls_context
from thor.loop import LoopBase
from thor.tcp import TcpConnection, TcpServer, server_listen_unix
from thor.tls import TlsClient, TlsConnection, TlsServer

# -- helpers (the shared ones are in tls_fixtures.py) -------------------------------------------


@pytest.fixture
def loop() -> Iterator[LoopBase]:
    new_loop = thor.loop.make()
    yield new_loop
    new_loop.close()


class Pki(tls_fixtures.Pki):
    """A CA with a good, a badly named and an expired server certificate; and a second CA."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.other_name_file = self.issue("other.pem", "other.example")
        now = datetime.datetime.now(datetime.timezone.utc)
        self.expired_file = self.issue(
            "expired.pem",
            "localhost",
            "127.0.0.1",
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        )
        self.other_ca_file = self.write("other-ca.pem", trustme.CA().cert_pem)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def loopback(port: int) -> tuple[Any, ...]:
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))


class Outcome:
    """Records a client's 'connect' and 'connect_error' events; closes what connects; when the
    first outcome arrives, shuts ``server`` down and stops the loop once every fd is closed."""

    def __init__(
        self, loop: LoopBase, client: TlsClient, server: TcpServer | None = None, keep: int = 0
    ) -> None:
        self.loop = loop
        self.server = server
        self.keep = keep
        self.connections: list[TlsConnection] = []
        self.errors: list[tuple[str, int, str]] = []
        self.info: dict[str, Any] = {}
        client.on("connect", self.on_connect)
        client.on("connect_error", self.on_error)

    def on_connect(self, conn: TlsConnection) -> None:
        self.connections.append(conn)
        self.info = {"alpn": conn.alpn_protocol, "cert": conn.peer_certificate()}
        conn.on("disconnect", self.done)
        conn.close()

    def on_error(self, err_type: str, err_id: int, err_str: str) -> None:
        self.errors.append((err_type, err_id, err_str))
        self.done()

    def done(self) -> None:
        if self.server is not None:
            self.server.shutdown()
        # a little later, so that a second (wrong) outcome would still be seen
        self.loop.schedule(0.05, stop_when_idle, self.loop, self.keep)

    @property
    def events(self) -> list[str]:
        return ["connect"] * len(self.connections) + ["connect_error"] * len(self.errors)


def serve(loop: LoopBase, certfile: str, **options: Any) -> TlsServer:
    """A TlsServer that closes each connection when its peer closes."""
    server = TlsServer(b"127.0.0.1", 0, loop=loop, certfile=certfile, **options)

    def on_connect(conn: TlsConnection) -> None:
        conn.on("close", conn.close)
        conn.pause(False)

    server.on("connect", on_connect)
    return server


def attempt(loop: LoopBase, certfile: str, name: bytes = b"localhost", **options: Any) -> Outcome:
    """Connect a TlsClient (options as given) to a fresh server with ``certfile``."""
    server = serve(loop, certfile)
    client = TlsClient(loop, **options)
    outcome = Outcome(loop, client, server)
    client.connect_dns(name, loopback(server.port), 5)
    run(loop)
    return outcome


# -- verification -----------------------------------------------------------------------------


def test_good_certificate_connects(loop: LoopBase, pki: Pki) -> None:
    outcome = attempt(loop, pki.cert_file, ca_file=pki.ca_file)
    assert outcome.events == ["connect"]
    assert ("DNS", "localhost") in outcome.info["cert"]["subjectAltName"]


def test_ip_literal_is_checked_against_the_ip_address(loop: LoopBase, pki: Pki) -> None:
    server = serve(loop, pki.cert_file)
    client = TlsClient(loop, ca_file=pki.ca_file)
    outcome = Outcome(loop, client, server)
    client.connect(b"127.0.0.1", server.port, 5)
    run(loop)
    assert outcome.events == ["connect"]


def test_wrong_host_name_is_refused(loop: LoopBase, pki: Pki) -> None:
    outcome = attempt(loop, pki.other_name_file, ca_file=pki.ca_file)
    assert outcome.events == ["connect_error"]
    err_type, err_id, err_str = outcome.errors[0]
    assert err_type == "ssl"
    assert err_str.startswith("certificate verify failed")
    assert "mismatch" in err_str.lower()
    assert err_id == 62  # X509_V_ERR_HOSTNAME_MISMATCH


def test_server_hostname_overrides_the_name_checked(loop: LoopBase, pki: Pki) -> None:
    outcome = attempt(loop, pki.cert_file, server_hostname="other.example", ca_file=pki.ca_file)
    assert outcome.events == ["connect_error"]
    assert "mismatch" in outcome.errors[0][2].lower()


def test_certificate_from_an_unknown_ca_is_refused(loop: LoopBase, pki: Pki) -> None:
    outcome = attempt(loop, pki.cert_file, ca_file=pki.other_ca_file)
    assert [(t, s.split(":")[0]) for t, _, s in outcome.errors] == [
        ("ssl", "certificate verify failed")
    ]


def test_system_store_does_not_trust_a_private_ca(loop: LoopBase, pki: Pki) -> None:
    outcome = attempt(loop, pki.cert_file)  # verify=True, system CA store
    assert outcome.events == ["connect_error"]
    assert outcome.errors[0][0] == "ssl"
    assert outcome.errors[0][2].startswith("certificate verify failed")


def test_expired_certificate_is_refused(loop: LoopBase, pki: Pki) -> None:
    outcome = attempt(loop, pki.expired_file, ca_file=pki.ca_file)
    assert outcome.events == ["connect_error"]
    err_type, err_id, err_str = outcome.errors[0]
    assert (err_type, err_id) == ("ssl", 10)  # X509_V_ERR_CERT_HAS_EXPIRED
    assert "expired" in err_str


@pytest.fixture
def warnings_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls_context, "_warned_unverified", False)


@pytest.mark.usefixtures("warnings_reset")
def test_verify_false_accepts_a_bad_certificate_and_warns_once(
    loop: LoopBase, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="thor.tls")
    for certfile in (pki.expired_file, pki.other_name_file):
        outcome = attempt(loop, certfile, verify=False, ca_file=pki.other_ca_file)
        assert outcome.events == ["connect"]
        assert outcome.info["cert"] == {}  # not verified: no parsed certificate
    warnings = [r for r in caplog.records if r.name == "thor.tls" and r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "verification is OFF" in warnings[0].getMessage()


@pytest.mark.usefixtures("warnings_reset")
def test_class_attribute_turns_verification_off_for_every_client(
    loop: LoopBase, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TlsClient, "verify_certificates", False)
    assert attempt(loop, pki.expired_file).events == ["connect"]
    # an explicit verify=True still wins over the application-wide setting
    outcome = attempt(loop, pki.expired_file, verify=True, ca_file=pki.ca_file)
    assert outcome.events == ["connect_error"]


def test_contexts_are_shared_per_configuration_and_never_modified(loop: LoopBase) -> None:
    default = TlsClient(loop).context
    assert TlsClient(loop).context is default
    assert TlsClient(loop, verify=True).context is default
    lax = TlsClient(loop, verify=False).context
    assert lax is not default
    assert lax.verify_mode == ssl.CERT_NONE and not lax.check_hostname
    assert default.verify_mode == ssl.CERT_REQUIRED and default.check_hostname
    assert default.minimum_version >= ssl.TLSVersion.TLSv1_2
    alpn = TlsClient(loop, alpn_protocols=["h2"]).context
    assert alpn is not default and TlsClient(loop, alpn_protocols=("h2",)).context is alpn


def test_a_given_context_excludes_the_other_options(loop: LoopBase) -> None:
    context = ssl.create_default_context()
    assert TlsClient(loop, context=context).context is context
    with pytest.raises(ValueError, match="given context"):
        TlsClient(loop, context=context, verify=False)


def test_an_unreadable_ca_file_raises_from_connect(loop: LoopBase, tmp_path: Path) -> None:
    client = TlsClient(loop, ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(OSError):
        client.connect(b"127.0.0.1", 1)
    assert loop.fd_count() == 0


# -- SNI and ALPN -------------------------------------------------------------------------------


def test_sni_is_sent_for_names_but_not_for_ip_literals(loop: LoopBase, pki: Pki) -> None:
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert_file)

    def record_name(sslobj: object, name: str | None, ctx: ssl.SSLContext) -> None:
        names.append(name)

    context.sni_callback = record_name
    for host, connect_name in ((b"localhost", True), (b"127.0.0.1", False)):
        server = TlsServer(b"127.0.0.1", 0, loop=loop, context=context)
        server.on("connect", lambda conn: (conn.on("close", conn.close), conn.pause(False)))
        client = TlsClient(loop, ca_file=pki.ca_file)
        outcome = Outcome(loop, client, server)
        if connect_name:
            client.connect_dns(host, loopback(server.port), 5)
        else:
            client.connect(host, server.port, 5)
        run(loop)
        assert outcome.events == ["connect"]
    assert names == ["localhost", None]


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        (["h2", "http/1.1"], "h2"),
        (["http/1.1", "h2"], "h2"),  # the server's preference wins
        (["http/1.1"], "http/1.1"),
        (["spdy/3"], None),
        (None, None),
    ],
)
def test_alpn_negotiation(
    loop: LoopBase, pki: Pki, offered: list[str] | None, expected: str | None
) -> None:
    server = TlsServer(
        b"127.0.0.1", 0, loop=loop, certfile=pki.cert_file, alpn_protocols=["h2", "http/1.1"]
    )
    chosen: list[str | None] = []

    def on_server_connect(conn: TlsConnection) -> None:
        chosen.append(conn.alpn_protocol)
        conn.on("close", conn.close)
        conn.pause(False)

    server.on("connect", on_server_connect)
    client = TlsClient(loop, ca_file=pki.ca_file, alpn_protocols=offered)
    outcome = Outcome(loop, client, server)
    client.connect_dns(b"localhost", loopback(server.port), 5)
    run(loop)
    assert outcome.events == ["connect"]
    assert outcome.info["alpn"] == expected
    assert chosen == [expected]


# -- outcomes: exactly one, sockets closed ---------------------------------------------------------


def test_refused_tcp_connect_is_a_socket_error(loop: LoopBase) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = TlsClient(loop)
    outcome = Outcome(loop, client)
    client.connect(b"127.0.0.1", port, 5)
    run(loop)
    assert [e[:2] for e in outcome.errors] == [("socket", errno.ECONNREFUSED)]


def test_connect_timeout_covers_a_handshake_that_never_completes(loop: LoopBase) -> None:
    """A TCP listener that never answers the ClientHello: ETIMEDOUT, once; socket closed."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = TlsClient(loop)
        outcome = Outcome(loop, client)
        client.connect(b"127.0.0.1", listener.getsockname()[1], connect_timeout=0.3)
        run(loop)
    assert [e[:2] for e in outcome.errors] == [("socket", errno.ETIMEDOUT)]
    assert outcome.events == ["connect_error"]
    assert client.tls_sock is not None and client.tls_sock.fileno() == -1


def test_cancel_during_the_handshake_closes_the_socket_and_emits_nothing(loop: LoopBase) -> None:
    """A TCP listener that never answers the ClientHello; cancel() once TCP is up."""
    events: list[str] = []
    st: dict[str, Any] = {}
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = TlsClient(loop)
        client.on("connect", lambda conn: events.append("connect"))
        client.on("connect_error", lambda *err: events.append("connect_error"))

        def cancel_when_handshaking() -> None:
            if client.tls_sock is None:
                loop.schedule(0.005, cancel_when_handshaking)
                return
            st["registered"] = loop.fd_count()
            client.cancel()
            client.cancel()
            st["after"] = loop.fd_count()
            loop.schedule(0.3, loop.stop)  # past connect_timeout: no event may show up

        client.connect(b"127.0.0.1", listener.getsockname()[1], connect_timeout=0.1)
        loop.schedule(0, cancel_when_handshaking)
        run(loop)
    assert events == []
    assert (st["registered"], st["after"]) == (1, 0)
    assert client.tls_sock is not None and client.tls_sock.fileno() == -1


@pytest.mark.parametrize("when", ["at once", "after the ClientHello"])
def test_server_closing_during_the_handshake_gives_one_connect_error(
    loop: LoopBase, when: str
) -> None:
    server = TcpServer(b"127.0.0.1", 0, loop=loop)

    def on_connect(conn: TcpConnection) -> None:
        if when == "at once":
            conn.abort()
        else:
            conn.on("data", lambda data: conn.abort())
            conn.pause(False)

    server.on("connect", on_connect)
    client = TlsClient(loop)
    outcome = Outcome(loop, client, server)
    client.connect(b"127.0.0.1", server.port, 5)
    run(loop)
    assert outcome.events == ["connect_error"]
    assert outcome.errors[0][0] in ("ssl", "socket")
    assert client.tls_sock is not None and client.tls_sock.fileno() == -1


def test_plain_tcp_peer_that_answers_garbage_is_an_ssl_error(loop: LoopBase) -> None:
    server = TcpServer(b"127.0.0.1", 0, loop=loop)

    def on_connect(conn: TcpConnection) -> None:
        conn.on("close", conn.close)
        conn.pause(False)
        conn.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    server.on("connect", on_connect)
    client = TlsClient(loop)
    outcome = Outcome(loop, client, server)
    client.connect(b"127.0.0.1", server.port, 5)
    run(loop)
    assert outcome.events == ["connect_error"]
    assert outcome.errors[0][0] == "ssl"
    assert outcome.errors[0][2].startswith("TLS handshake failed")


def test_connect_while_handshaking_raises(loop: LoopBase, pki: Pki) -> None:
    server = serve(loop, pki.cert_file)
    client = TlsClient(loop, ca_file=pki.ca_file)
    outcome = Outcome(loop, client, server)
    client.connect_dns(b"localhost", loopback(server.port), 5)

    def again() -> None:
        with pytest.raises(RuntimeError):
            client.connect(b"127.0.0.1", server.port)

    loop.schedule(0, again)
    run(loop)
    assert outcome.events == ["connect"]


def test_unix_socket_needs_a_server_hostname(loop: LoopBase, pki: Pki, tmp_path: Path) -> None:
    path = str(tmp_path / "tls.sock")
    server = TlsServer(b"", 0, sock=server_listen_unix(path), loop=loop, certfile=pki.cert_file)
    server.on("connect", lambda conn: (conn.on("close", conn.close), conn.pause(False)))
    unnamed_errors: list[tuple[str, int, str]] = []
    named = TlsClient(loop, ca_file=pki.ca_file, server_hostname="localhost")
    outcome = Outcome(loop, named, server)

    def unnamed_failed(*error: Any) -> None:
        unnamed_errors.append(error)
        named.connect_unix(path, 5)

    unnamed = TlsClient(loop, ca_file=pki.ca_file)
    unnamed.on("connect_error", unnamed_failed)
    unnamed.connect_unix(path, 5)
    run(loop)
    assert [e[0] for e in unnamed_errors] == ["ssl"]
    assert "server_hostname" in unnamed_errors[0][2]
    assert outcome.events == ["connect"]
