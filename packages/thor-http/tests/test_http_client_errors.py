"""How HttpClient exchanges fail: bad URLs (before request_start returns), connect errors
(refused, DNS, check_ip, connect timeout), read and total timeouts, malformed and smuggling-ish
responses (the parser's error class, connection closed), retries (which requests, how many,
with what body), and 101 responses with and without an 'upgrade' listener."""

from __future__ import annotations

import select
import socket
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import http_client_support as support
import pytest

import thor.dns
from thor.http.error import (
    AccessError,
    ChunkError,
    ConnectError,
    DnsError,
    DuplicateCLError,
    HeaderLineEndingError,
    HttpError,
    HttpVersionError,
    MalformedCLError,
    ObsoleteFoldError,
    ReadTimeoutError,
    StartLineError,
    TransferCodeError,
    TransferEncodingCLError,
    UpgradeError,
    UrlError,
)
from thor.tcp import TcpConnection

if TYPE_CHECKING:
    from http_client_support import EchoServer, Harness, Recorder, ScriptedServer


harness = support.harness
scripted = support.scripted
echo_server = support.echo_server
read_request = support.read_request
response = support.response
keep_alive_script = support.keep_alive_script

MakeServer = Any


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def wait_closed(sock: socket.socket, timeout: float = 5.0) -> bool:
    """Whether the peer closed ``sock`` (EOF or reset) within ``timeout``; data is drained."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], 0.05)
        if ready:
            try:
                if not sock.recv(65536):
                    return True
            except ConnectionResetError:
                return True
    return False


# -- bad URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        b"ftp://example.com/",
        b"http://h:+80/",
        b"http://h:0/",
        b"http://h:65536/",
        b"http://h:8_0/",
        b"http://[::1/",
        b"http://[::1]junk/",
        "http://bücher.example/".encode(),
        b"http:///nohost",
        b"http://h/a\r\nInjected: yes",
        "http://str.example/",
    ],
)
def test_bad_url_is_an_error_before_request_start_returns(harness: Harness, uri: Any) -> None:
    client = harness.client()
    exchange = client.exchange()
    rec = harness.track(exchange)
    exchange.request_start(b"GET", uri, [])
    assert rec.events == ["error"]
    assert isinstance(rec.error, UrlError)
    exchange.request_done([])  # ignored: the exchange is over
    harness.run()
    assert rec.events == ["error"]
    assert rec.counts == {}


def test_userinfo_is_not_sent(harness: Harness, echo_server: EchoServer) -> None:
    url = f"http://user:secret@127.0.0.1:{echo_server.port}/"
    rec = harness.fetch(harness.client(), url)
    harness.run()
    headers = dict(support.echoed(rec)["headers"])
    assert headers["Host"] == f"127.0.0.1:{echo_server.port}"
    assert "secret" not in str(support.echoed(rec))


# -- connecting ----------------------------------------------------------------------------------


def test_connection_refused_is_a_connect_error(harness: Harness) -> None:
    rec = harness.fetch(harness.client(), f"http://127.0.0.1:{closed_port()}/")
    harness.run()
    assert rec.events == ["error"]
    assert type(rec.error) is ConnectError
    assert "refused" in (rec.error.detail or "").lower()


@pytest.fixture
def no_dns() -> Iterator[None]:
    thor.dns.set_default_resolver(
        thor.dns.Resolver(nameservers=[], hosts_path=None, resolv_conf_path=None)
    )
    yield
    thor.dns.set_default_resolver(None)


def test_unresolvable_name_is_a_dns_error(harness: Harness, no_dns: None) -> None:
    rec = harness.fetch(harness.client(), "http://no-such-host.invalid/")
    harness.run()
    assert rec.events == ["error"]
    assert type(rec.error) is DnsError


def test_check_ip_refusal_is_an_access_error(harness: Harness, echo_server: EchoServer) -> None:
    asked: list[str] = []

    def check(ip: str) -> bool:
        asked.append(ip)
        return False

    client = harness.client(check_ip=check)
    rec = harness.fetch(client, echo_server.url())
    harness.run()
    assert type(rec.error) is AccessError
    assert asked == ["127.0.0.1"]
    assert echo_server.accepts == 0


def test_check_ip_is_given_resolved_addresses(harness: Harness, echo_server: EchoServer) -> None:
    asked: list[str] = []
    client = harness.client(check_ip=lambda ip: asked.append(ip) or ip == "127.0.0.1")
    rec = harness.fetch(client, echo_server.url(host="localhost"))
    harness.run()
    assert rec.status == b"200"
    assert "127.0.0.1" in asked


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A port where a connect hangs: a listener whose accept queue is full."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket()
            fillers.append(filler)
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            # a probe of the kernel's behaviour, not synchronisation of the code under test
            _, writable, _ = select.select([], [filler], [], 0.2)
            if not writable:
                break
        else:
            pytest.fail("this kernel completes connects beyond a listener's backlog")
        yield port
    finally:
        for sock in [*fillers, listener]:
            sock.close()


def test_connect_timeout_is_a_read_timeout_error(harness: Harness, hanging_port: int) -> None:
    client = harness.client(connect_timeout=0.2, connect_attempts=2)
    started = time.monotonic()
    rec = harness.fetch(client, f"http://127.0.0.1:{hanging_port}/")
    harness.run()
    assert type(rec.error) is ReadTimeoutError
    assert rec.error.detail == "connect"
    assert time.monotonic() - started >= 0.35  # two attempts of 0.2 s


# -- timeouts ------------------------------------------------------------------------------------


def test_read_timeout(harness: Harness, scripted: MakeServer) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        wait_closed(sock)
        server.notes.append("closed")

    server = scripted(script)
    client = harness.client(read_timeout=0.2, connect_timeout=5)
    rec = harness.fetch(client, server.url())
    harness.run()
    assert rec.events == ["response_start", "response_body", "error"]
    assert type(rec.error) is ReadTimeoutError and rec.error.detail == "read"
    assert rec.counts == {}  # closed before the error


def test_connect_timeout_is_the_read_timeout_by_default(
    harness: Harness, scripted: MakeServer
) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        wait_closed(sock)

    server = scripted(script)
    rec = harness.fetch(harness.client(connect_timeout=0.2), server.url())
    harness.run()
    assert type(rec.error) is ReadTimeoutError and rec.error.detail == "read"


def test_read_timeout_is_an_inactivity_timeout(harness: Harness, scripted: MakeServer) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n")
        for byte in b"trickled":
            time.sleep(0.1)
            sock.sendall(bytes([byte]))

    server = scripted(script)
    rec = harness.fetch(harness.client(read_timeout=0.5), server.url())
    harness.run()
    assert bytes(rec.body) == b"trickled"  # 0.8 s in all, never 0.5 s of silence


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the kernel's send queue is read on Linux only"
)
@pytest.mark.parametrize("server_reads", ["steadily", "then stops"])
def test_a_request_body_the_server_takes_slowly_counts_as_activity(
    harness: Harness, scripted: MakeServer, server_reads: str
) -> None:
    """A 3 MiB body, given at once, that the server reads 64 KiB every 20 ms (a second in
    all; most of the time the rest sits in the kernel's send buffer, past the connection's
    queue): no read timeout (0.3 s) while the bytes go out. A server that stops reading half
    way: the read timeout."""
    size = 3 * 1024 * 1024

    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        got = len(support.read_head(sock)[1])
        while got < size:
            if server_reads == "then stops" and got >= size // 2:
                server.event("stopped").set()
                wait_closed(sock)
                return
            data = sock.recv(64 * 1024)
            if not data:
                return
            got += len(data)
            time.sleep(0.02)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        wait_closed(sock)

    server = scripted(script)
    client = harness.client(read_timeout=0.3, connect_timeout=5)
    rec = harness.fetch(
        client,
        server.url(),
        method=b"PUT",
        headers=[(b"Content-Length", b"%d" % size)],
        body=[b"x" * size],
    )

    harness.run(timeout=10)
    if server_reads == "steadily":
        assert rec.error is None
        assert bytes(rec.body) == b"ok"
    else:
        assert type(rec.error) is ReadTimeoutError and rec.error.detail == "read"
        assert server.event("stopped").is_set(), "the server never stopped reading"


def test_total_timeout_covers_the_whole_exchange(harness: Harness, scripted: MakeServer) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            time.sleep(0.05)
            sock.sendall(b".")

    server = scripted(script)
    client = harness.client(read_timeout=1, total_timeout=0.4)
    rec = harness.fetch(client, server.url())
    harness.run()
    assert type(rec.error) is ReadTimeoutError and rec.error.detail == "total"
    assert 0 < len(rec.body) < 100
    assert rec.counts == {}  # closed before the error


def test_total_timeout_while_waiting_for_a_connection(
    harness: Harness, scripted: MakeServer
) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        server.event("end").wait(10)  # never answers

    server = scripted(script)
    client = harness.client(max_server_conn=1, total_timeout=0.3)
    held = harness.fetch(client, server.url())
    queued = harness.fetch(client, server.url())
    harness.run()
    for rec in (held, queued):
        assert type(rec.error) is ReadTimeoutError, rec
        assert rec.error.detail == "total"


# -- malformed responses -------------------------------------------------------------------------

MALFORMED = [
    pytest.param(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n",
        TransferEncodingCLError,
        id="cl-and-te",
    ),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        ChunkError,
        id="bad-chunk-size",
    ),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
        ChunkError,
        id="chunk-without-crlf",
    ),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n",
        ChunkError,
        id="negative-chunk",
    ),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        DuplicateCLError,
        id="two-content-lengths",
    ),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc", MalformedCLError, id="cl-plus"
    ),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        TransferCodeError,
        id="te-not-chunked",
    ),
    pytest.param(b"HTTP/2.0 200 OK\r\n\r\n", HttpVersionError, id="version"),
    pytest.param(b"ICY 200 OK\r\n\r\n", StartLineError, id="not-http"),
    pytest.param(b"HTTP/1.1 2000 OK\r\n\r\n", StartLineError, id="status"),
    pytest.param(b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", HeaderLineEndingError, id="bare-lf"),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
        ObsoleteFoldError,
        id="obs-fold",
    ),
]


@pytest.mark.parametrize(("answer", "error"), MALFORMED)
def test_malformed_response_is_an_error_and_closes_the_connection(
    harness: Harness, scripted: MakeServer, answer: bytes, error: type[HttpError]
) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(answer)
        if wait_closed(sock):
            server.notes.append("closed by the client")

    server = scripted(script)
    client = harness.client()
    rec = harness.fetch(client, server.url())
    harness.run()
    assert rec.events[-1] == "error"
    assert isinstance(rec.error, error), rec.error
    assert rec.events.count("error") == 1
    assert rec.counts == {}  # closed before the error
    deadline = time.monotonic() + 5
    while not server.notes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "closed by the client" in server.notes
    assert server.accepts == 1  # never retried


def test_careful_false_accepts_bare_lf_and_obs_fold(harness: Harness, scripted: MakeServer) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\nX: a\n  b\nContent-Length: 2\n\nok")

    server = scripted(script)
    rec = harness.fetch(harness.client(careful=False), server.url())
    harness.run()
    assert rec.status == b"200" and bytes(rec.body) == b"ok"
    assert (b"X", b" a b") in (rec.headers or [])


def test_response_cut_in_the_body_is_a_connect_error(
    harness: Harness, scripted: MakeServer
) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
        sock.close()

    server = scripted(script)
    rec = harness.fetch(harness.client(retry_limit=3), server.url())
    harness.run()
    assert rec.events == ["response_start", "response_body", "error"]
    assert type(rec.error) is ConnectError
    assert server.accepts == 1


def test_no_error_after_response_done_even_with_trailing_junk(
    harness: Harness, scripted: MakeServer
) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(response(200, b"ok", ["Connection: close"]))
        time.sleep(0.05)
        sock.sendall(b"garbage after a Connection: close response")

    server = scripted(script)
    rec = harness.fetch(harness.client(), server.url())
    harness.run()
    harness.loop.schedule(0.2, harness.stop)
    harness.run(until_done=False)
    assert rec.events == ["response_start", "response_body", "response_done"]


# -- retries -------------------------------------------------------------------------------------


def drop_after_request(times: int, answer: bytes = b"ok") -> Any:
    """A script that drops the first ``times`` connections after reading the request."""

    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        head, body, _ = read_request(sock)
        server.notes.append((head.split(b" ")[0], body))
        if index < times:
            sock.close()
            return
        sock.sendall(response(200, answer))

    return script


def test_get_is_retried_up_to_retry_limit(harness: Harness, scripted: MakeServer) -> None:
    server = scripted(drop_after_request(times=10))
    client = harness.client(retry_limit=2, retry_delay=0.05)
    started = time.monotonic()
    rec = harness.fetch(client, server.url())
    harness.run()
    assert type(rec.error) is ConnectError
    assert server.accepts == 3  # the first try and two retries
    assert "3 times" in (rec.error.detail or "")
    assert time.monotonic() - started >= 0.1  # two retry delays


def test_get_retry_succeeds(harness: Harness, scripted: MakeServer) -> None:
    server = scripted(drop_after_request(times=2, answer=b"third time"))
    rec = harness.fetch(harness.client(retry_limit=2, retry_delay=0.01), server.url())
    harness.run()
    assert bytes(rec.body) == b"third time"
    assert server.accepts == 3


def test_retry_limit_zero_means_no_retry(harness: Harness, scripted: MakeServer) -> None:
    server = scripted(drop_after_request(times=10))
    rec = harness.fetch(harness.client(retry_limit=0), server.url())
    harness.run()
    assert type(rec.error) is ConnectError
    assert server.accepts == 1


def test_post_is_not_retried_after_it_was_sent(harness: Harness, scripted: MakeServer) -> None:
    server = scripted(drop_after_request(times=10))
    rec = harness.fetch(
        harness.client(retry_limit=2, retry_delay=0.01), server.url(), b"POST", body=[b"x"]
    )
    harness.run()
    assert type(rec.error) is ConnectError
    assert "Can't retry POST" in (rec.error.detail or "")
    assert server.accepts == 1


def test_put_with_a_small_body_is_retried_with_its_body(
    harness: Harness, scripted: MakeServer
) -> None:
    server = scripted(drop_after_request(times=1, answer=b"stored"))
    body = [b"part one, ", b"part two"]
    rec = harness.fetch(harness.client(retry_delay=0.01), server.url(), b"PUT", body=body)
    harness.run()
    assert bytes(rec.body) == b"stored"
    assert server.notes == [(b"PUT", b"part one, part two")] * 2


def test_put_with_a_counted_body_is_retried_with_its_body(
    harness: Harness, scripted: MakeServer
) -> None:
    server = scripted(drop_after_request(times=1, answer=b"stored"))
    rec = harness.fetch(
        harness.client(retry_delay=0.01),
        server.url(),
        b"PUT",
        headers=[(b"Content-Length", b"6")],
        body=[b"abc", b"def"],
    )
    harness.run()
    assert bytes(rec.body) == b"stored"
    assert server.notes == [(b"PUT", b"abcdef")] * 2


def test_put_with_a_body_over_retry_body_limit_is_not_retried(
    harness: Harness, scripted: MakeServer
) -> None:
    server = scripted(drop_after_request(times=1))
    client = harness.client(retry_delay=0.01, retry_body_limit=10)
    rec = harness.fetch(client, server.url(), b"PUT", body=[b"0123456789", b"x"])
    harness.run()
    assert type(rec.error) is ConnectError
    assert "too large" in (rec.error.detail or "")
    assert server.accepts == 1


def test_retry_while_the_body_is_still_being_sent(harness: Harness, scripted: MakeServer) -> None:
    """The connection drops after the first chunk; the rest follows on the retry."""

    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        if index == 0:
            data = b""
            while b"first" not in data:
                data += sock.recv(65536)
            sock.close()
            return
        _, body, _ = read_request(sock)
        sock.sendall(response(200, body))

    server = scripted(script)
    client = harness.client(retry_delay=0.01)
    exchange = client.exchange()
    rec = harness.track(exchange)
    exchange.request_start(b"PUT", server.url().encode(), [])
    harness.loop.schedule(0.05, exchange.request_body, b"first,")
    harness.loop.schedule(0.3, exchange.request_body, b"second")
    harness.loop.schedule(0.35, exchange.request_done, [])
    harness.run()
    assert bytes(rec.body) == b"first,second"
    assert server.accepts == 2


def test_drop_after_an_interim_response_is_not_retried(
    harness: Harness, scripted: MakeServer
) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.close()

    server = scripted(script)
    rec = harness.fetch(harness.client(retry_delay=0.01), server.url())
    harness.run()
    assert rec.events == ["response_nonfinal", "error"]
    assert server.accepts == 1


def test_server_speaking_first_is_not_a_response(harness: Harness, scripted: MakeServer) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        if index == 0:
            read_request(sock)
            sock.sendall(response(200, b"first"))
            time.sleep(0.05)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL")
            wait_closed(sock)
            return
        keep_alive_script(b"clean")(sock, index, server)

    server = scripted(script)
    client = harness.client()
    exchange = client.exchange()
    recs: list[Recorder] = []

    def second() -> None:
        # attached to the pooled connection, but nothing sent yet when the bytes arrive
        ex = client.exchange()
        recs.append(harness.track(ex))
        ex.request_start(b"POST", server.url().encode(), [])
        harness.loop.schedule(0.2, ex.request_done, [])

    recs.append(harness.track(exchange))
    exchange.request_start(b"GET", server.url().encode(), [])
    exchange.request_done([])
    harness.then(second)
    harness.run()
    assert bytes(recs[1].body) == b"clean"
    assert server.accepts == 2


# -- 101 -----------------------------------------------------------------------------------------


def test_101_without_upgrade_listener_is_an_error(harness: Harness, scripted: MakeServer) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n"
        )
        wait_closed(sock)

    server = scripted(script)
    client = harness.client()
    rec = harness.fetch(client, server.url(), headers=[(b"Upgrade", b"x")])
    harness.run()
    assert rec.events == ["error"]
    assert type(rec.error) is UpgradeError
    assert rec.error.code == "HTTP_UPGRADE" and rec.error.server_status[0] == b"502"
    assert rec.counts == {}  # closed before the error


def test_upgrade_hands_the_connection_over(harness: Harness, scripted: MakeServer) -> None:
    heads: list[bytes] = []

    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        head, _, _ = read_request(sock)
        heads.append(head)
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: upgrade\r\n\r\n"
            b"early bytes"
        )
        while data := sock.recv(65536):
            sock.sendall(data.upper())

    server = scripted(script)
    client = harness.client()
    exchange = client.exchange()
    rec = harness.track(exchange, upgrade=True)
    exchange.request_start(b"GET", server.url().encode(), [(b"Upgrade", b"echo")])
    exchange.request_done([])
    got: list[bytes] = []

    def use_the_stream() -> None:
        # the application now owns the stream (on the same run: a loop stop forgets fds)
        assert rec.upgrade is not None
        tcp_conn = rec.upgrade[0]
        harness.outstanding += 1

        def data(chunk: bytes) -> None:
            got.append(chunk)
            tcp_conn.abort()
            harness.outstanding -= 1
            harness.stop()

        tcp_conn.on("data", data)
        tcp_conn.pause(False)
        tcp_conn.write(b"hello")

    harness.then(use_the_stream)
    harness.run()
    assert rec.events == ["response_nonfinal", "upgrade"]
    assert rec.nonfinal[0][0] == b"101"
    assert rec.upgrade is not None
    tcp_conn, rest = rec.upgrade
    assert isinstance(tcp_conn, TcpConnection)
    assert rest == b"early bytes"
    assert b"\r\nConnection: upgrade\r\nUpgrade: echo" in heads[0]
    assert rec.counts == {}  # handed over: not the pool's any more
    assert got == [b"HELLO"]
