"""HttpClient over TLS, the integrity of what it delivers and how it leaves: a response delimited
by the connection's end is complete only when the server closed TLS with close_notify (a bare
TCP FIN may be a truncation, RFC 9112 §9.8), for the client, through ReverseProxy and for
``thor get -o FILE``; the TLS settings (``tls_verify``, ``tls_ca_file``, ``tls_context``) apply
to every request made after they change, never to one sent over a pooled connection made the
old way (idle, in use or still connecting), while plain-HTTP connections stay pooled; and the
client's orderly closes (after ``Connection: close``, at ``idle_timeout``, on ``close()``) send
close_notify (RFC 8446 §6.1), yet stopping the loop leaves no socket open.

The servers are Python ``ssl`` servers in threads (``http_client_support.ScriptedServer`` with
the accepted socket wrapped in TLS, ragged EOFs not suppressed, so that they tell a clean
closure from a TCP FIN or a reset), with trustme certificates made here. An orderly TLS close
waits on the loop for the server's FIN, so the scenarios end with ``closed_while_running``:
the client is closed while the loop still runs, which stops once those closes are done.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import http_client_support as support
import http_server_support as server_support
import proxy_support as ps
import pytest
import trustme

from thor.http.client import HttpClient
from thor.http.error import ConnectError
from thor.http.proxy import AccessRecord, ReverseProxy
from thor.tls import TlsConnection

if TYPE_CHECKING:
    from http_client_support import EchoServer, Harness, Recorder, ScriptedServer

harness = support.harness
scripted = support.scripted
echo_server = support.echo_server
proxy_harness = ps.harness
read_request = support.read_request
response = support.response

MakeServer = Callable[..., "ScriptedServer"]
TlsScript = Callable[[ssl.SSLSocket, int, "ScriptedServer"], object]

#: what the servers here say about the way the client closed TLS
CLEAN = "close_notify"
RAGGED = "ragged EOF"

BODY = b'{"balance": 1000'  # a cut JSON document


# -- certificates and servers -------------------------------------------------------------------


class Pki:
    """A CA the tests trust (its file), another one (trusting nothing here), and a server
    context with a certificate of the first for 127.0.0.1 and localhost."""

    def __init__(self, directory: Path) -> None:
        ca = trustme.CA()
        self.ca_file = str(directory / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)
        self.other_ca_file = str(directory / "other-ca.pem")
        trustme.CA().cert_pem.write_to_path(self.other_ca_file)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(self.context)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def tls(context: ssl.SSLContext, script: TlsScript) -> support.Script:
    """A ScriptedServer script running ``script`` on the accepted socket once TLS is up
    (every read bounded; a ragged EOF raises ``ssl.SSLEOFError`` instead of reading as b"");
    the TLS socket is closed after the script, without close_notify."""

    def run(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        sock.settimeout(5)
        wrapped = context.wrap_socket(sock, server_side=True, suppress_ragged_eofs=False)
        with server.lock:
            server.socks.append(wrapped)  # (it owns the descriptor now: close() shuts it)
        with wrapped:
            script(wrapped, index, server)

    return run


def https_url(server: ScriptedServer, path: str = "/") -> str:
    return f"https://127.0.0.1:{server.port}{path}"


def how_the_peer_closed(sock: ssl.SSLSocket) -> str:
    """Read until the peer closes: CLEAN for a TLS close_notify, else what came instead."""
    try:
        while sock.recv(65536):
            pass
    except ssl.SSLEOFError:
        return RAGGED  # a TCP FIN without close_notify
    except OSError as exc:
        return type(exc).__name__  # ConnectionResetError (an abort), TimeoutError...
    return CLEAN  # SSL_ERROR_ZERO_RETURN: the closure alert


def body_cut_by(ending: str) -> TlsScript:
    """A close-delimited response (no Content-Length, not chunked) whose body is cut short,
    then TLS ended by ``ending``: "fin" (a TCP FIN, no close_notify) or "close_notify"."""

    def script(sock: ssl.SSLSocket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + BODY)
        if ending == "fin":
            sock.shutdown(socket.SHUT_WR)  # drops the TLS layer: a FIN without close_notify
            try:
                while sock.recv(65536):  # (plain TCP now) until the client closes
                    pass
            except OSError:
                pass
        else:
            try:
                sock.unwrap()  # close_notify (then the client's, which it may not send)
            except OSError:
                pass

    return script


def keep_alive(sock: ssl.SSLSocket, index: int, server: ScriptedServer) -> None:
    """Answer every request on the connection with ``ok INDEX`` (keep-alive)."""
    rest = bytearray()
    while True:
        try:
            _, _, rest = read_request(sock, rest)
        except ConnectionError:  # the client's close_notify
            return
        sock.sendall(response(200, b"ok %d" % index))


# -- ending a scenario --------------------------------------------------------------------------


def closed_while_running(
    harness: Harness, client: HttpClient, after: threading.Event | None = None
) -> None:
    """The scenario's last step: close ``client`` while the loop runs (once ``after`` is set,
    by a server thread; without it, at once), then stop the loop when none of the client's
    TLS connections is left on it: their orderly closes are done and no socket is left open.
    """

    def check() -> None:
        if after is not None and not after.is_set():
            harness.loop.schedule(0.02, check)
            return
        client.close()
        sources = harness.loop.registered_fd_handlers()
        if any(isinstance(source, TlsConnection) for source in sources):
            harness.loop.schedule(0.02, check)
            return
        harness.outstanding -= 1
        harness.stop()

    def step() -> None:
        harness.outstanding += 1  # run() goes on until check() stops the loop
        check()

    harness.then(step)


# -- a close-delimited body over TLS ends with close_notify only (RFC 9112 §9.8) ------------------


def test_close_delimited_https_body_cut_by_a_fin_without_close_notify_is_an_error(
    harness: Harness, scripted: MakeServer, pki: Pki
) -> None:
    cut = scripted(tls(pki.context, body_cut_by("fin")))
    whole = scripted(tls(pki.context, body_cut_by("close_notify")))
    client = harness.client(tls_ca_file=pki.ca_file, retry_limit=0)
    recs: list[Recorder] = []
    harness.then(lambda: recs.append(harness.fetch(client, https_url(cut))))
    harness.then(lambda: recs.append(harness.fetch(client, https_url(whole))))
    closed_while_running(harness, client)
    harness.run()
    truncated, complete = recs
    assert truncated.events == ["response_start", "response_body", "error"]
    assert bytes(truncated.body) == BODY
    assert type(truncated.error) is ConnectError
    assert "without close_notify" in (truncated.error.detail or "")
    assert "truncated" in (truncated.error.detail or "")
    # the same response ended by close_notify is complete
    assert complete.events == ["response_start", "response_body", "response_done"]
    assert bytes(complete.body) == BODY


def test_reverse_proxy_does_not_terminate_a_body_its_https_upstream_cut_without_close_notify(
    proxy_harness: ps.Harness, scripted: MakeServer, pki: Pki
) -> None:
    upstream = scripted(tls(pki.context, body_cut_by("fin")))
    front = proxy_harness.server(None)
    client = HttpClient(proxy_harness.loop)
    client.tls_ca_file = pki.ca_file
    client.retry_limit = 0
    proxy = ReverseProxy(front, f"https://127.0.0.1:{upstream.port}", client=client)
    proxy_harness.proxies.append(proxy)  # (its client is closed with the harness)
    records: list[AccessRecord] = []
    proxy.on("access", records.append)

    def downstream() -> bytes:
        sock = proxy_harness.connect(front)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        return server_support.recv_until_close(sock)

    received = proxy_harness.client(downstream)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding: chunked" in head.lower()
    assert BODY in body
    # no last chunk: the downstream client cannot take the cut body for a whole one
    assert not body.endswith(b"0\r\n\r\n"), received
    assert len(records) == 1


def test_thor_get_output_leaves_no_file_when_https_cuts_a_body_without_close_notify(
    scripted: MakeServer, pki: Pki, tmp_path: Path
) -> None:
    server = scripted(tls(pki.context, body_cut_by("fin")))
    target = tmp_path / "balance.json"
    command = ["get", "--ca-file", pki.ca_file, "-o", str(target), https_url(server, "/b")]
    done = subprocess.run(
        [sys.executable, "-m", "thor.http", *command],
        capture_output=True,
        timeout=30,
        env=dict(os.environ, PYTHONWARNINGS="error"),
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(b"thor get: "), done.stderr
    assert b"without close_notify" in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert os.listdir(tmp_path) == []  # neither FILE nor FILE.part


# -- the TLS settings apply to the requests made after they change --------------------------------


def setting_change(pki: Pki, name: str) -> tuple[dict[str, Any], Any]:
    """Settings of a client that accepts the servers' certificate, and a new value of
    ``name`` that refuses it."""
    if name == "tls_verify":
        return {"tls_verify": False}, True  # then the system store: the test CA is unknown
    if name == "tls_ca_file":
        return {"tls_ca_file": pki.ca_file}, pki.other_ca_file
    trusting = ssl.create_default_context(cafile=pki.ca_file)
    return {"tls_context": trusting}, ssl.create_default_context(cafile=pki.other_ca_file)


@pytest.mark.parametrize("name", ["tls_verify", "tls_ca_file", "tls_context"])
def test_changing_a_tls_setting_closes_idle_https_connections_not_plain_http_ones(
    harness: Harness, scripted: MakeServer, echo_server: EchoServer, pki: Pki, name: str
) -> None:
    server = scripted(tls(pki.context, keep_alive))
    accepting, refusing = setting_change(pki, name)
    client = harness.client(**accepting)
    recs: list[Recorder] = []
    harness.then(lambda: recs.append(harness.fetch(client, https_url(server))))
    harness.then(lambda: recs.append(harness.fetch(client, echo_server.url("/plain"))))
    harness.then(lambda: setattr(client, name, refusing))  # both connections are idle now
    harness.then(lambda: recs.append(harness.fetch(client, https_url(server))))
    harness.then(lambda: recs.append(harness.fetch(client, echo_server.url("/plain"))))
    closed_while_running(harness, client)
    harness.run()
    first, plain, second, plain_again = recs
    assert bytes(first.body) == b"ok 0"
    # the pooled connection, verified the old way, was not used: a new handshake failed
    assert second.events == ["error"]
    assert type(second.error) is ConnectError
    assert "certificate verify failed" in (second.error.detail or "")
    assert server.accepts == 2
    # plain HTTP is no business of the TLS settings: its connection was reused
    assert plain.status == plain_again.status == b"200"
    assert echo_server.accepts == 1


def test_a_connection_in_use_when_a_tls_setting_changes_is_closed_not_pooled(
    harness: Harness, scripted: MakeServer, pki: Pki
) -> None:
    server = scripted(tls(pki.context, keep_alive))
    # the CA file makes the certificate good with verification on as well as off
    client = harness.client(tls_verify=False, tls_ca_file=pki.ca_file)
    recs: list[Recorder] = []

    def verify_from_now_on(status: bytes, phrase: bytes, headers: Any) -> None:
        client.tls_verify = True

    def first() -> None:
        rec = harness.fetch(client, https_url(server))
        rec.exchange.on("response_start", verify_from_now_on)
        recs.append(rec)

    harness.then(first)
    harness.then(lambda: recs.append(harness.fetch(client, https_url(server))))
    closed_while_running(harness, client)
    harness.run()
    assert [rec.status for rec in recs] == [b"200", b"200"]
    assert [bytes(rec.body) for rec in recs] == [b"ok 0", b"ok 1"]  # a second connection
    assert server.accepts == 2
    assert recs[1].counts is not None and sum(recs[1].counts.values()) == 1  # the first: gone


def test_a_tls_setting_changed_while_connecting_applies_to_the_waiting_request(
    harness: Harness, scripted: MakeServer, pki: Pki
) -> None:
    server = scripted(tls(pki.context, keep_alive))
    client = harness.client(tls_verify=False, retry_limit=0)
    rec = harness.fetch(client, https_url(server))
    assert client.conn_counts  # connecting, with verification off
    client.tls_verify = True
    closed_while_running(harness, client)
    harness.run()
    assert rec.events == ["error"]
    assert type(rec.error) is ConnectError
    assert "certificate verify failed" in (rec.error.detail or "")


# -- how the client ends its TLS connections (RFC 8446 §6.1) --------------------------------------


def answer_then_watch(fields: list[str]) -> TlsScript:
    """Answer one request (with ``fields``), then note how the client closes TLS."""

    def script(sock: ssl.SSLSocket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(response(200, b"ok", fields))
        server.notes.append(("client closed", how_the_peer_closed(sock)))
        server.event("closed").set()

    return script


def closures(server: ScriptedServer) -> list[Any]:
    return [note[1] for note in server.notes if isinstance(note, tuple)]


@pytest.mark.parametrize("when", ["Connection: close", "idle_timeout", "client.close()"])
def test_orderly_client_closes_send_close_notify(
    harness: Harness, scripted: MakeServer, pki: Pki, when: str
) -> None:
    fields = ["Connection: close"] if when == "Connection: close" else []
    server = scripted(tls(pki.context, answer_then_watch(fields)))
    client = harness.client(tls_ca_file=pki.ca_file)
    client.idle_timeout = 0.2 if when == "idle_timeout" else 60
    rec = harness.fetch(client, https_url(server))
    # client.close() at once; else only once the server saw the connection end
    closed_while_running(
        harness, client, None if when == "client.close()" else server.event("closed")
    )
    harness.run()
    assert rec.events == ["response_start", "response_body", "response_done"]
    assert server.event("closed").wait(5)
    assert closures(server) == [CLEAN]


def test_stopping_the_loop_leaves_no_https_socket_open(
    harness: Harness, scripted: MakeServer, pki: Pki
) -> None:
    """The loop's stop makes the client close every connection (``HttpClient.close()``) and
    forgets every fd: a pooled HTTPS connection's socket is closed then, not left half-closed
    waiting for a FIN that no loop will read (the garbage collector's ResourceWarning)."""
    server = scripted(tls(pki.context, keep_alive))
    client = harness.client(tls_ca_file=pki.ca_file)
    rec = harness.fetch(client, https_url(server))
    pooled: list[Any] = []

    def keep_tcp_conn(status: bytes, phrase: bytes, headers: Any) -> None:
        conn = rec.exchange.conn
        pooled.append(conn.tcp_conn if conn is not None else None)

    rec.exchange.on("response_start", keep_tcp_conn)
    harness.run()  # stops the loop once the response is done, the connection pooled
    assert rec.status == b"200"
    (tcp_conn,) = pooled
    assert isinstance(tcp_conn, TlsConnection)
    try:
        assert tcp_conn.socket.fileno() == -1, tcp_conn
    finally:
        tcp_conn.abort()  # (the failure's socket, for the next tests' sake)
