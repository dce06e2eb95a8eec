"""HttpServer with real clients on 127.0.0.1: hello world through http.client, requests, urllib3
and curl; keep-alive (1.1 and 1.0-style); Connection: close; response_done(close=True); the
framing of every kind of response (counted, chunked, close-delimited, none for HEAD/1xx/204/304);
trailers both ways; the headers the server manages; the exchange's attributes and output
errors; the seed README's example as a program."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import http_server_support as support
import pytest
import requests
import urllib3

from thor.http.error import OutputError, OutputStateError, OutputSyntaxError
from thor.http.server import HttpServer, HttpServerConnection, HttpServerExchange

if TYPE_CHECKING:
    from http_server_support import Harness


harness = support.harness
HELLO = support.HELLO
RawHeaders = list[tuple[bytes, bytes]]
ROOT = Path(__file__).resolve().parents[3]


def curl() -> str:
    """The curl executable; a test that needs it fails (never skips) when it is missing."""
    path = shutil.which("curl")
    if path is None:
        pytest.fail("curl is not installed: apt-get install curl")
    return path


# -- hello world with every real client ----------------------------------------------------------


def test_hello_with_http_client(harness: Harness) -> None:
    server = harness.server(support.hello_handler())

    def client() -> tuple[int, bytes, str | None, str | None]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("GET", "/hello")
        res = conn.getresponse()
        body = res.read()
        conn.close()
        return res.status, body, res.getheader("Content-Type"), res.getheader("Date")

    status, body, ctype, date = harness.client(client)
    assert (status, body, ctype) == (200, HELLO, "text/plain")
    assert date is not None and date.endswith(" GMT")
    ex = harness.exchanges[0]
    assert (ex.method, ex.uri, ex.req_version) == (b"GET", b"/hello", b"1.1")
    assert isinstance(ex.http_conn, HttpServerConnection)
    assert (b"Host", b" 127.0.0.1:%d" % server.port) in ex.req_hdrs


def test_hello_with_requests_and_urllib3(harness: Harness) -> None:
    server = harness.server(support.hello_handler())
    url = f"http://127.0.0.1:{server.port}/"

    def client() -> list[Any]:
        with requests.Session() as session:
            first = session.get(url, timeout=5)
            second = session.post(url, data=b"x" * 1000, timeout=5)
        pool = urllib3.PoolManager()
        third = pool.request("GET", url, timeout=5.0)
        pool.clear()
        return [
            (first.status_code, first.content),
            (second.status_code, second.content),
            (third.status, third.data),
        ]

    assert harness.client(client) == [(200, HELLO)] * 3
    assert [ex.method for ex in harness.exchanges] == [b"GET", b"POST", b"GET"]


def test_hello_with_curl(harness: Harness) -> None:
    server = harness.server(support.hello_handler())
    url = f"http://127.0.0.1:{server.port}/a"

    def client() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [curl(), "-sS", "-i", "--max-time", "5", url, url.replace("/a", "/b")],
            capture_output=True,
            timeout=10,
        )

    done = harness.client(client)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert done.stdout.count(HELLO) == 2
    assert [ex.uri for ex in harness.exchanges] == [b"/a", b"/b"]
    # curl reused the connection: both exchanges came on one
    assert harness.exchanges[0].http_conn is harness.exchanges[1].http_conn


# -- keep-alive and closing ----------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(harness: Harness) -> None:
    server = harness.server(support.hello_handler())
    accepted: list[Any] = []
    server.tcp_server.on("connect", accepted.append)

    def client() -> list[bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        bodies = []
        for index in range(5):
            conn.request("GET", f"/{index}")
            bodies.append(conn.getresponse().read())
        conn.close()
        return bodies

    assert harness.client(client) == [HELLO] * 5
    assert len(accepted) == 1
    assert len({id(ex.http_conn) for ex in harness.exchanges}) == 1


def test_connection_close_from_the_client_is_honoured(harness: Harness) -> None:
    server = harness.server(support.hello_handler())

    def client() -> tuple[bytes, bool]:
        sock = harness.connect(server)
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        data = support.recv_until_close(sock)
        return data, data.endswith(b"d\r\nHello, world!\r\n0\r\n\r\n")

    data, ends = harness.client(client)
    assert ends, data
    assert data.count(b"HTTP/1.1") == 1  # the pipelined request after it was not served
    assert b"\r\nConnection: close\r\n" in data
    assert [ex.uri for ex in harness.exchanges] == [b"/"]


def test_http10_without_keep_alive_is_close_delimited(harness: Harness) -> None:
    server = harness.server(support.hello_handler())

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return support.recv_until_close(sock)

    data = harness.client(client)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
    assert b"Connection: close" in head
    assert body == HELLO
    assert harness.exchanges[0].req_version == b"1.0"


def test_http10_keep_alive(harness: Harness) -> None:
    server = harness.server(support.hello_handler([(b"Content-Length", b"%d" % len(HELLO))]))

    def client() -> list[Any]:
        sock = harness.connect(server)
        reader = support.ResponseReader(sock)
        out = []
        for _ in range(2):
            sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            res = reader.read()
            out.append((res.header(b"connection"), res.body))
        return out

    assert harness.client(client) == [([b"keep-alive"], HELLO)] * 2


def test_response_done_close_true_closes_after_the_response(harness: Harness) -> None:
    def handler(exchange: HttpServerExchange) -> None:
        def done(trailers: RawHeaders) -> None:
            exchange.response_start(b"413", b"Content Too Large", [])
            exchange.response_body(b"no")
            exchange.response_done([], close=True)

        exchange.on("request_done", done)

    server = harness.server(handler)

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        return support.recv_until_close(sock)

    data = harness.client(client)
    assert data.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    assert data.endswith(b"2\r\nno\r\n0\r\n\r\n")
    assert data.count(b"HTTP/1.1 ") == 1


def test_connection_close_from_the_application_header(harness: Harness) -> None:
    server = harness.server(
        support.hello_handler([(b"Connection", b"close"), (b"Content-Length", b"13")])
    )

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return support.recv_until_close(sock)

    data = harness.client(client)
    assert data.count(b"Connection: close\r\n") == 1
    assert data.endswith(HELLO)


# -- framing -------------------------------------------------------------------------------------


def _respond(status: bytes, headers: RawHeaders, body: bytes = b"", nonfinal: bool = False):  # type: ignore[no-untyped-def]
    def handler(exchange: HttpServerExchange) -> None:
        def done(trailers: RawHeaders) -> None:
            if nonfinal:
                exchange.response_nonfinal(b"103", b"Early Hints", [(b"Link", b"</s.css>")])
            exchange.response_start(status, b"Phrase", headers)
            if body:
                exchange.response_body(body)
            exchange.response_done([])

        exchange.on("request_done", done)

    return handler


@pytest.mark.parametrize(
    ("method", "status", "headers", "expect_cl"),
    [
        (b"HEAD", b"200", [(b"Content-Length", b"5")], b"5"),
        (b"HEAD", b"200", [], None),
        (b"GET", b"204", [(b"Content-Length", b"5")], None),
        (b"GET", b"304", [(b"Content-Length", b"5")], b"5"),
        (b"GET", b"304", [], None),
        (b"GET", b"205", [], b"0"),
        (b"GET", b"205", [(b"Content-Length", b"5")], b"0"),
        (b"HEAD", b"205", [], b"0"),
    ],
    ids=["head-cl", "head-chunked-would-be", "204", "304-cl", "304", "205", "205-cl", "head-205"],
)
def test_no_body_bytes_on_head_204_205_304(
    harness: Harness, method: bytes, status: bytes, headers: RawHeaders, expect_cl: bytes | None
) -> None:
    server = harness.server(_respond(status, headers, b"hello"))

    def client() -> tuple[Any, Any, bytes]:
        sock = harness.connect(server)
        reader = support.ResponseReader(sock)
        sock.sendall(method + b" / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = reader.read(method)
        # the connection is still in sync: a second request gets its own response
        sock.sendall(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        second = reader.read(b"GET")
        return first, second, reader.rest(0.2)

    first, second, rest = harness.client(client)
    assert first.status == status
    assert first.header(b"content-length") == ([expect_cl] if expect_cl else [])
    assert not first.header(b"transfer-encoding")
    assert second.status == status and rest == b""


def test_interim_responses_and_headers_as_given(harness: Harness) -> None:
    server = harness.server(_respond(b"200", [(b"Content-Length", b"2")], b"ok", nonfinal=True))

    def client() -> tuple[Any, Any]:
        sock = harness.connect(server)
        reader = support.ResponseReader(sock)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return reader.read(), reader.read()

    early, final = harness.client(client)
    assert early.raw_head == b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>"
    assert (final.status, final.body) == (b"200", b"ok")


def test_an_interim_response_never_carries_framing_fields(harness: Harness) -> None:
    """A 1xx has no content (RFC 9110 §8.6): Content-Length or Transfer-Encoding given for one
    (a proxy relaying an origin's) is not written, the other fields are."""

    def handler(exchange: HttpServerExchange) -> None:
        def done(trailers: RawHeaders) -> None:
            exchange.response_nonfinal(
                b"103",
                b"Early Hints",
                [
                    (b"Content-Length", b"5"),
                    (b"Link", b"</s.css>"),
                    (b"Transfer-Encoding", b"chunked"),
                ],
            )
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"2")])
            exchange.response_body(b"ok")
            exchange.response_done([])

        exchange.on("request_done", done)

    server = harness.server(handler)

    def client() -> tuple[Any, Any]:
        sock = harness.connect(server)
        reader = support.ResponseReader(sock)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return reader.read(), reader.read()

    early, final = harness.client(client)
    assert early.raw_head == b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>"
    assert (final.status, final.body) == (b"200", b"ok")


def test_interim_responses_are_not_sent_to_http10(harness: Harness) -> None:
    server = harness.server(_respond(b"200", [(b"Content-Length", b"2")], b"ok", nonfinal=True))

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return support.recv_until_close(sock)

    data = harness.client(client)
    assert data.startswith(b"HTTP/1.1 200 Phrase\r\n") and data.endswith(b"\r\n\r\nok")


def test_chunked_response_with_trailers_and_chunked_request_with_trailers(
    harness: Harness,
) -> None:
    server = harness.server(support.echo_handler)

    def client() -> Any:
        sock = harness.connect(server)
        reader = support.ResponseReader(sock)
        sock.sendall(
            b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Sum: abc\r\nX-Other: 1\r\n\r\n"
        )
        return reader.read()

    res = harness.client(client)
    assert res.body == b"hello, world"
    assert res.header(b"transfer-encoding") == [b"chunked"]
    assert res.trailers == [(b"X-Sum", b" abc"), (b"X-Other", b" 1")]
    assert res.header(b"x-method") == [b"POST"]


def test_trailers_are_dropped_without_chunked_framing(harness: Harness) -> None:
    def handler(exchange: HttpServerExchange) -> None:
        def done(trailers: RawHeaders) -> None:
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"2")])
            exchange.response_body(b"ok")
            exchange.response_done([(b"X-T", b"1")])

        exchange.on("request_done", done)

    server = harness.server(handler)

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return support.recv_until_close(sock)

    assert harness.client(client).endswith(b"\r\n\r\nok")


def test_managed_headers(harness: Harness) -> None:
    app_headers = [
        (b"Connection", b"keep-alive, X-Private"),
        (b"X-Private", b"secret"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Transfer-Encoding", b"gzip"),
        (b"TE", b"trailers"),
        (b"Upgrade", b"h2c"),
        (b"Proxy-Connection", b"x"),
        (b"Date", b"Mon, 01 Jan 2001 00:00:00 GMT"),
        (b"Server", b"  spaced"),
        (b"X-Kept", b"yes"),
    ]
    server = harness.server(support.hello_handler(app_headers))

    def client() -> Any:
        sock = harness.connect(server)
        reader = support.ResponseReader(sock)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return reader.read()

    res = harness.client(client)
    names = [name.lower() for name, _ in res.headers]
    for dropped in (b"connection", b"x-private", b"keep-alive", b"te", b"upgrade"):
        assert dropped not in names
    assert res.header(b"transfer-encoding") == [b"chunked"]
    assert res.header(b"date") == [b"Mon, 01 Jan 2001 00:00:00 GMT"]  # the application's
    assert b"Server:  spaced\r\n" in res.raw_head + b"\r\n"  # byte-identical
    assert res.header(b"x-kept") == [b"yes"]
    assert res.body == HELLO


def test_date_is_added_and_refreshed(harness: Harness) -> None:
    server = harness.server(support.hello_handler(), sweep_interval=0.05)

    def client() -> list[str]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        dates = []
        for _ in range(2):
            conn.request("GET", "/")
            res = conn.getresponse()
            res.read()
            dates.append(res.getheader("Date") or "")
            time.sleep(1.1)
        conn.close()
        return dates

    first, second = harness.client(client)
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", first)
    assert first != second


# -- output errors at the caller -----------------------------------------------------------------


def test_output_errors_are_raised_at_the_caller(harness: Harness) -> None:
    seen: dict[str, Any] = {}

    def attempt(name: str, call: Any) -> None:
        try:
            call()
        except Exception as exc:
            seen[name] = type(exc)
        else:
            seen[name] = None

    def handler(exchange: HttpServerExchange) -> None:
        def done(trailers: RawHeaders) -> None:
            attempt("body first", lambda: exchange.response_body(b"x"))
            attempt("done first", lambda: exchange.response_done([]))
            attempt("bad status", lambda: exchange.response_start(b"2000", b"OK", []))
            attempt("1xx final", lambda: exchange.response_start(b"100", b"OK", []))
            attempt("101 no upgrade", lambda: exchange.response_start(b"101", b"S", []))
            attempt("bad phrase", lambda: exchange.response_start(b"200", b"O\r\nK", []))
            attempt("bad name", lambda: exchange.response_start(b"200", b"OK", [(b"A b", b"")]))
            attempt(
                "injection",
                lambda: exchange.response_start(b"200", b"OK", [(b"X", b"a\r\nSet-Cookie: 1")]),
            )
            attempt("nul", lambda: exchange.response_start(b"200", b"OK", [(b"X", b"a\x00")]))
            attempt(
                "bad length",
                lambda: exchange.response_start(b"200", b"OK", [(b"Content-Length", b"+5")]),
            )
            attempt("nonfinal 200", lambda: exchange.response_nonfinal(b"200", b"OK", []))
            attempt(
                "start", lambda: exchange.response_start(b"200", b"OK", [(b"Content-Length", b"3")])
            )
            attempt("twice", lambda: exchange.response_start(b"200", b"OK", []))
            attempt("nonfinal late", lambda: exchange.response_nonfinal(b"100", b"C", []))
            attempt("too long", lambda: exchange.response_body(b"abcd"))
            attempt("body", lambda: exchange.response_body(b"abc"))
            attempt("done", lambda: exchange.response_done([]))
            attempt("after done", lambda: exchange.response_body(b"x"))

        exchange.on("request_done", done)

    server = harness.server(handler)

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return support.recv_until_close(sock)

    data = harness.client(client)
    assert seen == {
        "body first": OutputStateError,
        "done first": OutputStateError,
        "bad status": OutputSyntaxError,
        "1xx final": OutputSyntaxError,
        "101 no upgrade": OutputStateError,
        "bad phrase": OutputSyntaxError,
        "bad name": OutputSyntaxError,
        "injection": OutputSyntaxError,
        "nul": OutputSyntaxError,
        "bad length": OutputSyntaxError,
        "nonfinal 200": OutputSyntaxError,
        "start": None,
        "twice": OutputStateError,
        "nonfinal late": OutputStateError,
        "too long": OutputError,
        "body": None,
        "done": None,
        "after done": OutputStateError,
    }
    assert data.endswith(b"\r\n\r\nabc") and b"Set-Cookie" not in data


def test_short_body_closes_the_connection(harness: Harness) -> None:
    raised: list[type[Exception]] = []

    def handler(exchange: HttpServerExchange) -> None:
        def done(trailers: RawHeaders) -> None:
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"10")])
            exchange.response_body(b"abc")
            try:
                exchange.response_done([])
            except OutputError as exc:
                raised.append(type(exc))

        exchange.on("request_done", done)

    server = harness.server(handler)

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return support.recv_until_close(sock)

    assert harness.client(client).endswith(b"abc")
    assert raised == [OutputError]


# -- the seed README's example -------------------------------------------------------------------


def test_the_hello_server_example_runs() -> None:
    with FreePort() as port:
        pass
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "hello_server.py"), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        assert b"listening on" in process.stdout.readline()
        done = subprocess.run(
            [curl(), "-sS", "--max-time", "5", f"http://127.0.0.1:{port}/"],
            capture_output=True,
            timeout=10,
        )
        assert done.stdout == HELLO, done.stderr
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)
        assert process.returncode == 0, err
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


class FreePort:
    """A free TCP port on 127.0.0.1 (bound, then released on exit)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        port: int = self.sock.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_public_module_names() -> None:
    import thor.http.server as module

    assert module.__all__ == ["HttpServer", "HttpServerConnection", "HttpServerExchange"]
    assert HttpServer.idle_timeout == 60
    assert HttpServer.request_timeout == 60
    assert HttpServer.response_timeout is None
    from thor.tcp import TcpServer

    assert HttpServer.tcp_server_class is TcpServer


# -- the connection object -----------------------------------------------------------------------


def test_connection_attributes_and_listeners_on_tcp_conn(harness: Harness) -> None:
    lengths: list[tuple[int, int]] = []
    peer_closes: list[bool] = []

    def handler(exchange: HttpServerExchange) -> None:
        conn = exchange.http_conn
        tcp = conn.tcp_conn
        assert tcp is not None
        # an application listening on the TcpConnection does not hide its events from thor
        if not tcp.listener_count("close"):
            tcp.on("close", lambda: peer_closes.append(True))

        def done(trailers: RawHeaders) -> None:
            lengths.append((conn.input_header_length, conn.input_transfer_length))
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"2")])
            exchange.response_body(b"ok")
            exchange.response_done([])

        exchange.on("request_done", done)

    server = harness.server(handler)
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"

    def client() -> bool:
        sock = harness.connect(server)
        reader = support.ResponseReader(sock)
        sock.sendall(head + b"3\r\nabc\r\n0\r\n\r\n")
        reader.read()
        sock.shutdown(socket.SHUT_WR)  # the server sees our FIN: it closes too
        return support.closed_by_peer(sock, 3.0)

    assert harness.client(client, settle=0.1)
    assert lengths == [(len(head), len(b"3\r\nabc\r\n0\r\n\r\n"))]
    assert peer_closes == [True]
    assert not server.connections


def test_finished_exchanges_drop_their_listeners_and_make_no_cycles(harness: Harness) -> None:
    import gc

    server = harness.server(support.hello_handler([(b"Content-Length", b"13")]))

    def client() -> None:
        sock = harness.connect(server)
        reader = support.ResponseReader(sock)
        for _ in range(50):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            reader.read()

    gc.collect()
    gc.disable()
    try:
        harness.client(client)
        assert all(
            not ex.events() or not any(ex.listeners(e) for e in ex.events())
            for ex in harness.exchanges
        )
        harness.exchanges.clear()
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable < 50  # not one cycle (or more) per request


def test_server_on_a_given_socket(harness: Harness) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server = HttpServer(b"127.0.0.1", 0, harness.loop, sock=listener)
    harness.servers.append(server)
    server.on("exchange", support.hello_handler())
    starts: list[bool] = []
    server.on("start", lambda: starts.append(True))
    assert server.port == listener.getsockname()[1]

    def client() -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("GET", "/")
        body = conn.getresponse().read()
        conn.close()
        return body

    assert harness.client(client) == HELLO
    assert starts == [True]
    assert repr(server).startswith("<HttpServer b'127.0.0.1':")


def test_reuse_port_and_a_classic_tcp_server_class(harness: Harness) -> None:
    from thor.tcp import TcpServer

    made: list[tuple[Any, ...]] = []

    class ClassicTcpServer(TcpServer):
        def __init__(self, host: bytes, port: int, sock: Any = None, loop: Any = None) -> None:
            made.append((host, port))
            TcpServer.__init__(self, host, port, sock, loop)

    class ClassicServer(HttpServer):
        tcp_server_class = ClassicTcpServer

    classic = ClassicServer(b"127.0.0.1", 0, harness.loop)
    harness.servers.append(classic)
    assert made == [(b"127.0.0.1", 0)]
    first = HttpServer(b"127.0.0.1", 0, harness.loop, reuse_port=True)
    harness.servers.append(first)
    second = HttpServer(b"127.0.0.1", first.port, harness.loop, reuse_port=True, backlog=8)
    harness.servers.append(second)
    for server in (classic, first, second):
        server.on("exchange", support.hello_handler())

    def client() -> list[bytes]:
        bodies = []
        for port in (classic.port, first.port):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/")
            bodies.append(conn.getresponse().read())
            conn.close()
        return bodies

    assert harness.client(client) == [HELLO, HELLO]


def test_a_server_reads_its_settings_when_it_is_made(harness: Harness) -> None:
    """Settings are read when the server is made (the per-request ones become attributes of
    the server): a later change to the class does not reach it, a change on it does."""
    settings = {
        "max_pipeline_depth": 7,
        "response_timeout": 3.0,
        "max_known_requests": 5,
        "max_known_request_size": 100,
    }
    server = harness.server(None, **settings)
    cls = type(server)
    for name in settings:
        setattr(cls, name, 1)
    assert {name: getattr(server, name) for name in settings} == settings
    later = cls(b"127.0.0.1", 0, harness.loop)
    harness.servers.append(later)
    assert {name: getattr(later, name) for name in settings} == dict.fromkeys(settings, 1)
