"""HttpClient flow control and transports: pausing the response (the server's send blocks),
'pause' events while sending a large request body, HTTPS (verified by default, bad
certificates refused with the TLS message, tls_verify=False), and the command line
(``python -m thor.http.client URL``)."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import http_client_support as support
import pytest
import trustme

from thor.http.error import ConnectError, OutputError
from thor.tcp import TcpConnection

if TYPE_CHECKING:
    from http_client_support import EchoServer, Harness, Recorder, ScriptedServer


harness = support.harness
scripted = support.scripted
echo_server = support.echo_server
echoed = support.echoed
read_request = support.read_request
read_head = support.read_head
response = support.response

MakeServer = Any
MIB = 1024 * 1024


# -- response flow control -----------------------------------------------------------------------


def test_res_body_pause_stops_reading_until_resumed(harness: Harness, scripted: MakeServer) -> None:
    size = 32 * MIB

    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        sock.setblocking(False)
        block = b"x" * 65536
        sent = 0
        blocked_since = None
        while sent < size:
            try:
                sent += sock.send(block[: size - sent])
                blocked_since = None
            except BlockingIOError:
                if blocked_since is None:
                    blocked_since = time.monotonic()
                elif time.monotonic() - blocked_since > 0.3 and not server.notes:
                    server.notes.append(("blocked", sent))
                    server.event("blocked").set()
                time.sleep(0.005)

    server = scripted(script)
    client = harness.client(read_timeout=0.2)  # a paused response is not a read timeout
    exchange = client.exchange()
    rec = harness.track(exchange)
    state: dict[str, Any] = {}

    def first_body(chunk: bytes) -> None:
        if "paused_at" not in state:
            exchange.res_body_pause(True)
            state["paused_at"] = len(rec.body)
            harness.loop.schedule(0.05, wait_for_server)

    def wait_for_server() -> None:
        if server.event("blocked").is_set():
            state["received_while_paused"] = len(rec.body) - state["paused_at"]
            exchange.res_body_pause(False)
        else:
            harness.loop.schedule(0.05, wait_for_server)

    exchange.on("response_body", first_body)
    exchange.request_start(b"GET", server.url().encode(), [])
    exchange.request_done([])
    harness.run(timeout=30)
    assert rec.error is None
    assert len(rec.body) == size
    assert server.notes and server.notes[0][0] == "blocked"
    assert server.notes[0][1] < size  # the server could not send it all while paused
    assert state["received_while_paused"] == 0  # no body event while paused


def test_res_body_pause_over_a_close_delimited_response(
    harness: Harness, scripted: MakeServer
) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\n\r\n" + b"y" * 300_000)
        sock.close()

    server = scripted(script)
    exchange = harness.client().exchange()
    rec = harness.track(exchange)

    def pause_once(chunk: bytes) -> None:
        if len(rec.chunks) == 1:
            exchange.res_body_pause(True)
            harness.loop.schedule(0.3, exchange.res_body_pause, False)

    exchange.on("response_body", pause_once)
    exchange.request_start(b"GET", server.url().encode(), [])
    exchange.request_done([])
    harness.run()
    assert rec.events[-1] == "response_done"
    assert len(rec.body) == 300_000


# -- request flow control ------------------------------------------------------------------------


def test_request_body_pause_events(harness: Harness, scripted: MakeServer) -> None:
    total = 24 * MIB

    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        _, rest = read_head(sock)
        server.event("go").wait(10)  # do not read the body until the client was told to pause
        got = len(rest)
        while got < total + 5:  # chunk framing of the end
            data = sock.recv(1 << 20)
            if not data:
                return
            got += len(data)
            if data.endswith(b"0\r\n\r\n"):
                break
        sock.sendall(response(200, b"%d" % got))

    server = scripted(script)
    client = harness.client(read_timeout=5)
    exchange = client.exchange()
    rec = harness.track(exchange)
    block = b"z" * (256 * 1024)
    state = {"sent": 0, "paused": False}

    def pump() -> None:
        while not state["paused"] and state["sent"] < total:
            exchange.request_body(block)
            state["sent"] += len(block)
        if state["sent"] >= total:
            exchange.request_done([])

    def pause(paused: bool) -> None:
        state["paused"] = paused
        if paused:
            server.event("go").set()
        else:
            harness.loop.schedule(0, pump)

    exchange.on("pause", pause)
    exchange.request_start(b"PUT", server.url().encode(), [])
    harness.then(lambda: None)
    harness.loop.schedule(0.05, pump)
    harness.run(timeout=30)
    assert rec.error is None, rec.error
    assert rec.pauses[:2] == [True, False]
    assert state["sent"] == total


def test_pause_while_waiting_for_a_connection(harness: Harness, echo_server: EchoServer) -> None:
    exchange = harness.client().exchange()
    rec = harness.track(exchange)
    exchange.request_start(b"POST", echo_server.url().encode(), [])
    exchange.request_body(b"a" * (300 * 1024))  # more than the TCP write limit, not connected
    assert rec.pauses == [True]
    exchange.request_done([])
    harness.run()
    assert rec.pauses == [True, False]
    assert len(support.echoed(rec)["body"]) == 300 * 1024


# -- HTTPS ---------------------------------------------------------------------------------------


class Pki:
    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        self.ca_file = str(directory / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.other_ca_file = str(directory / "other-ca.pem")
        trustme.CA().cert_pem.write_to_path(self.other_ca_file)
        cert = self.ca.issue_cert("localhost", "127.0.0.1")
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(self.context)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def https_server(pki: Pki) -> Iterator[EchoServer]:
    server = support.EchoServer(context=pki.context)
    yield server
    server.close()


def test_https_verified(harness: Harness, https_server: EchoServer, pki: Pki) -> None:
    client = harness.client(tls_ca_file=pki.ca_file)
    recs = []
    for host in ("localhost", "127.0.0.1", "localhost"):
        harness.then(lambda h=host: recs.append(harness.fetch(client, https_server.url(host=h))))
    harness.run()
    assert [r.status for r in recs] == [b"200"] * 3
    assert support.echoed(recs[0])["path"] == "/"
    assert https_server.accepts == 2  # localhost's connection was reused


def test_https_unknown_ca_is_refused_with_the_tls_message(
    harness: Harness, https_server: EchoServer, pki: Pki
) -> None:
    client = harness.client(tls_ca_file=pki.other_ca_file)
    rec = harness.fetch(client, https_server.url(host="localhost"))
    harness.run()
    assert rec.events == ["error"]
    assert type(rec.error) is ConnectError
    assert "certificate verify failed" in (rec.error.detail or "")


def test_https_verified_against_the_system_store_by_default(
    harness: Harness, https_server: EchoServer
) -> None:
    rec = harness.fetch(harness.client(), https_server.url(host="localhost"))
    harness.run()
    assert type(rec.error) is ConnectError
    assert "certificate verify failed" in (rec.error.detail or "")


def test_https_without_verification(
    harness: Harness, https_server: EchoServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = harness.client(tls_verify=False)
    rec = harness.fetch(client, https_server.url(host="localhost"))
    harness.run()
    assert rec.status == b"200"


def test_https_with_a_given_context(harness: Harness, https_server: EchoServer, pki: Pki) -> None:
    context = ssl.create_default_context(cafile=pki.ca_file)
    rec = harness.fetch(harness.client(tls_context=context), https_server.url(host="localhost"))
    harness.run()
    assert rec.status == b"200"


# -- the command line ----------------------------------------------------------------------------


#: ``thor get URL`` (the installed script's entry point)
THOR_GET = (
    "import sys; from thor.http.cli import main; sys.argv[0] = 'thor'; "
    "sys.exit(main(['get', *sys.argv[1:]]))"
)


def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONWARNINGS="error")
    return subprocess.run(
        [sys.executable, "-m", "thor.http.client", *args],
        capture_output=True,
        timeout=timeout,
        env=env,
    )


def test_cli_fetches_and_prints(scripted: MakeServer) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        head, _, _ = read_request(sock)
        server.notes.append(head)
        sock.sendall(response(200, b"the body\n", ["X-Test:  two spaces"]))

    server = scripted(script)
    done = cli(server.url("/path?q=1"))
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    assert done.stdout == (
        b"HTTP/1.1 200 Whatever\nX-Test:  two spaces\nContent-Length: 9\n\nthe body\n"
    )
    assert server.notes[0].startswith(b"GET /path?q=1 HTTP/1.1\r\n")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("ftp://example.com/", b"Unsupported or invalid URI", id="bad-url"),
        pytest.param("http://h:99999/", b"Unsupported or invalid URI", id="bad-port"),
        pytest.param("REFUSED", b"Connection error", id="refused"),
        pytest.param("TIMEOUT", b"Read Timeout", id="timeout"),
    ],
)
def test_cli_failures_exit_non_zero_with_one_line(
    url: str, message: bytes, scripted: MakeServer
) -> None:
    if url == "REFUSED":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    elif url == "TIMEOUT":

        def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
            read_request(sock)
            server.event("end").wait(10)

        url = scripted(script).url()
    done = cli(url, "--timeout", "0.3")
    assert done.returncode == 1
    assert done.stdout == b""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(b"thor.http.client: " + message)


def test_cli_tls_failure(https_server: EchoServer, pki: Pki) -> None:
    done = cli(https_server.url(host="localhost"))
    assert done.returncode == 1
    assert b"certificate verify failed" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    done = cli(https_server.url(host="localhost"), "--ca-file", pki.ca_file)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"HTTP/1.1 200 OK\n")


def test_cli_dns_failure(tmp_path: Path) -> None:
    # a resolver with no nameserver and no hosts entry for the name: fails at once, offline
    code = (
        "import sys, thor.dns\n"
        "thor.dns.set_default_resolver(thor.dns.Resolver(nameservers=[], hosts_path=None,"
        " resolv_conf_path=None))\n"
        "from thor.http.client.__main__ import main\n"
        "sys.exit(main(['http://no-such-host.invalid/']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.startswith(b"thor.http.client: DNS Error")
    assert len(done.stderr.splitlines()) == 1


def test_cli_usage_error_exits_2() -> None:
    done = cli()
    assert done.returncode == 2


@pytest.mark.parametrize("when", ["waiting for its connection", "on a pooled connection"])
def test_a_body_over_the_connections_hard_limit_fails_the_exchange_cleanly(
    harness: Harness, echo_server: EchoServer, when: str
) -> None:
    """17 MiB given at once, over thor-net's max_write_buffer_size (16 MiB): the exchange fails
    with OutputError (nothing raised into the loop, no chunk framing left half written on a
    live connection), and the client goes on serving requests."""
    client = harness.client()
    size = TcpConnection.max_write_buffer_size + 1024 * 1024
    recs: list[Recorder] = []

    def put() -> None:
        exchange = client.exchange()
        recs.append(harness.track(exchange))
        exchange.request_start(b"PUT", echo_server.url().encode(), [])
        exchange.request_body(b"x" * size)  # chunked
        exchange.request_done([])

    if when == "on a pooled connection":
        harness.then(lambda: recs.append(harness.fetch(client, echo_server.url())))
    harness.then(put)
    harness.then(lambda: recs.append(harness.fetch(client, echo_server.url("/after"))))
    harness.run(timeout=10)
    failed = recs[-2]
    assert isinstance(failed.error, OutputError)
    assert "refused" in str(failed.error)
    assert failed.events == ["error"]
    assert echoed(recs[-1])["path"] == "/after"


@pytest.mark.parametrize("command", [["-m", "thor.http.client"], ["-c", THOR_GET]])
def test_cli_output_closed_early_exits_1_with_one_line(
    scripted: MakeServer, command: list[str]
) -> None:
    """The reader of the output (``| head -c 10``) exits while a 2 MB body arrives: the fetch
    is abandoned, exit status 1, one line saying so (no traceback)."""

    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n")
        try:
            for _ in range(200):
                sock.sendall(b"x" * 10_000)
                time.sleep(0.002)
        except OSError:
            pass

    server = scripted(script)
    process = subprocess.Popen(
        [sys.executable, *command, server.url()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONWARNINGS="error"),
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(10) == b"HTTP/1.1 2"
    process.stdout.close()  # as `head -c 10` does
    stderr = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=30) == 1
    assert stderr.splitlines() == [
        (b"thor.http.client: " if command[0] == "-m" else b"thor get: ")
        + b"the output was closed before the response ended"
    ]
