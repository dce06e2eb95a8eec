"""HttpServer and bad input or bad applications: every parser error class answered with its status
(a short text/plain body with the error's description only) and the connection closed;
request-smuggling attempts (the follow-up request is never processed); application exceptions
contained (500, or the connection closed; the loop and other connections carry on); peers that
go away in the middle of a request."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from typing import TYPE_CHECKING, Any

import http_server_support as support
import pytest

from thor.http import error
from thor.http.server import HttpServerExchange

if TYPE_CHECKING:
    from http_server_support import Harness


harness = support.harness
RawHeaders = list[tuple[bytes, bytes]]

H = b"Host: x\r\n"

# (id, request bytes, expected error class, server settings)
BAD_REQUESTS: list[tuple[str, bytes, type[error.HttpError], dict[str, Any]]] = [
    ("request-line", b"GET  / HTTP/1.1\r\n" + H + b"\r\n", error.RequestLineError, {}),
    ("method", b"G(T / HTTP/1.1\r\n" + H + b"\r\n", error.RequestLineError, {}),
    ("version", b"GET / HTTP/2.0\r\n" + H + b"\r\n", error.HttpVersionError, {}),
    ("http09", b"GET /\r\n\r\n", error.HttpVersionError, {}),
    (
        "uri-too-long",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n",
        error.RequestTargetTooLongError,
        {},
    ),
    (
        "field-section-too-large",
        b"GET / HTTP/1.1\r\n" + H + b"X: " + b"a" * 2000 + b"\r\n\r\n",
        error.FieldSectionTooLargeError,
        {"max_field_section": 1024},
    ),
    (
        "too-many-fields",
        b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: 1\r\n" % i for i in range(20)) + b"\r\n",
        error.TooManyFieldsError,
        {"max_fields": 10},
    ),
    ("space-before-colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", error.HeaderSpaceError, {}),
    ("no-colon", b"GET / HTTP/1.1\r\n" + H + b"Foo\r\n\r\n", error.HeaderNoColonError, {}),
    ("bad-name", b"GET / HTTP/1.1\r\n" + H + b'Fo"o: x\r\n\r\n', error.HeaderNameError, {}),
    ("nul", b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n", error.HeaderValueError, {}),
    ("bare-cr", b"GET / HTTP/1.1\r\n" + H + b"X: a\rb\r\n\r\n", error.BareCRError, {}),
    ("bare-lf", b"GET / HTTP/1.1\n" + H + b"\r\n", error.HeaderLineEndingError, {}),
    (
        "obs-fold",
        b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n",
        error.ObsoleteFoldError,
        {},
    ),
    ("top-line-space", b"GET / HTTP/1.1\r\n " + H + b"\r\n", error.TopLineSpaceError, {}),
    ("no-host", b"GET / HTTP/1.1\r\n\r\n", error.HostRequiredError, {}),
    ("two-hosts", b"GET / HTTP/1.1\r\n" + H + H + b"\r\n", error.InvalidHostError, {}),
    (
        "cl-and-te",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        error.TransferEncodingCLError,
        {},
    ),
    (
        "duplicate-cl",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        error.DuplicateCLError,
        {},
    ),
    (
        "malformed-cl",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +3\r\n\r\nabc",
        error.MalformedCLError,
        {},
    ),
    (
        "unknown-coding",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n",
        error.TransferCodeError,
        {},
    ),
    (
        "te-not-chunked-last",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n",
        error.RequestTransferEncodingError,
        {},
    ),
    (
        "te-in-http10",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        error.RequestTransferEncodingError,
        {},
    ),
    (
        "chunk-size",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
        error.ChunkSizeError,
        {},
    ),
    (
        "chunk-terminator",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
        error.ChunkTerminatorError,
        {},
    ),
    (
        "body-too-large-cl",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 100\r\n\r\n",
        error.BodyTooLargeError,
        {"max_body_size": 10},
    ),
    (
        "body-too-large-chunked",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n20\r\n" + b"a" * 32,
        error.BodyTooLargeError,
        {"max_body_size": 10},
    ),
]


@pytest.mark.parametrize(
    ("request_bytes", "expected", "settings"),
    [pytest.param(r, e, s, id=i) for i, r, e, s in BAD_REQUESTS],
)
def test_bad_requests_are_answered_with_their_status_and_closed(
    harness: Harness,
    request_bytes: bytes,
    expected: type[error.HttpError],
    settings: dict[str, Any],
) -> None:
    records: list[Any] = []
    conn_errors: list[error.HttpError] = []
    server = harness.server(lambda ex: records.append(support.Record(ex)), **settings)
    server.on("exchange", lambda ex: ex.http_conn.on("error", conn_errors.append))

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(request_bytes)
        return support.recv_until_close(sock)

    data = harness.client(client)
    status, phrase = expected.server_status
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 " + status + b" " + phrase + b"\r\n"), data
    assert b"\r\nConnection: close" in head
    assert b"\r\nContent-Type: text/plain; charset=utf-8" in head
    assert body == expected.desc.encode()  # the description only: no request bytes echoed
    assert data.count(b"HTTP/1.1 ") == 1
    # an error in a body reaches the exchange that was reading it
    for record in records:
        assert record.errors and isinstance(record.errors[0], expected)
    if records:
        assert conn_errors and isinstance(conn_errors[0], expected)


SMUGGLING = [
    (
        "cl-te",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    (
        "te-cl",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    (
        "te-space-before-colon",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding : chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    (
        "te-obs-fold",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n"
        b"Transfer-Encoding:\r\n chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    (
        "te-xchunked",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    (
        "two-cls",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n"
        b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    (
        "cl-with-sign",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -0\r\n\r\n"
        b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    (
        "bad-chunk-size",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0x0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    (
        "bare-lf-before-te",
        b"POST / HTTP/1.1\r\nHost: x\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
]


@pytest.mark.parametrize("attack", [pytest.param(a, id=i) for i, a in SMUGGLING])
def test_smuggling_attempts_are_rejected_and_never_reach_the_application(
    harness: Harness, attack: bytes
) -> None:
    server = harness.server(support.hello_handler())

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(attack)
        return support.recv_until_close(sock)

    data = harness.client(client)
    assert data.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 501 ")), data
    assert data.count(b"HTTP/1.1 ") == 1
    assert b"/smuggled" not in [ex.uri for ex in harness.exchanges]
    assert b"Hello" not in data


def test_error_after_a_pipelined_request_waits_its_turn(harness: Harness) -> None:
    def handler(exchange: HttpServerExchange) -> None:
        def answer() -> None:
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"2")])
            exchange.response_body(b"ok")
            exchange.response_done([])

        exchange.on("request_done", lambda trailers: harness.later(0.2, answer))

    server = harness.server(handler)

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/9.9\r\n\r\n")
        return support.recv_until_close(sock)

    data = harness.client(client)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\n\r\nokHTTP/1.1 505 HTTP Version Not Supported\r\n" in data


# -- application exceptions ----------------------------------------------------------------------


def raising_handler(where: str) -> Any:
    def handler(exchange: HttpServerExchange) -> None:
        if exchange.uri != b"/boom":
            support.hello_handler([(b"Content-Length", b"13")])(exchange)
            return
        if where == "exchange":
            raise RuntimeError("boom in 'exchange'")

        def start(method: bytes, uri: bytes, headers: RawHeaders) -> None:
            if where == "request_start":
                raise RuntimeError("boom in 'request_start'")

        def body(chunk: bytes) -> None:
            if where == "request_body":
                raise RuntimeError("boom in 'request_body'")

        def done(trailers: RawHeaders) -> None:
            if where == "streaming":
                exchange.response_start(b"200", b"OK", [])
                exchange.response_body(b"partial")
            raise RuntimeError("boom in 'request_done'")

        exchange.on("request_start", start)
        exchange.on("request_body", body)
        exchange.on("request_done", done)

    return handler


@pytest.mark.parametrize("where", ["exchange", "request_start", "request_body", "request_done"])
def test_an_application_exception_gets_a_500(
    harness: Harness, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = harness.server(raising_handler(where))

    def client() -> tuple[bytes, list[bytes]]:
        other = harness.connect(server)
        other_reader = support.ResponseReader(other)
        other.sendall(b"GET /fine HTTP/1.1\r\nHost: x\r\n\r\n")
        first = other_reader.read().body
        sock = harness.connect(server)
        sock.sendall(b"POST /boom HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        data = support.recv_until_close(sock)
        # the other connection is still served
        other.sendall(b"GET /fine HTTP/1.1\r\nHost: x\r\n\r\n")
        return data, [first, other_reader.read().body]

    with caplog.at_level(logging.ERROR, logger="thor.http"):
        data, others = harness.client(client)
    assert data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert data.endswith(b"\r\n\r\nInternal Server Error")
    assert b"Connection: close" in data
    assert others == [support.HELLO, support.HELLO]
    assert any(f"boom in '{where}'" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_an_exception_after_the_response_started_closes_the_connection(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    server = harness.server(raising_handler("streaming"))

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
        return support.recv_until_close(sock)

    with caplog.at_level(logging.ERROR, logger="thor.http"):
        data = harness.client(client)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b"7\r\npartial\r\n")  # truncated: no last chunk
    assert caplog.records


# -- peers that go away --------------------------------------------------------------------------


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("how", ["reset", "half-close"])
def test_peer_gone_mid_body_gives_the_exchange_an_error(harness: Harness, how: str) -> None:
    records: list[Any] = []
    gone: list[bool] = []
    server = harness.server(lambda ex: records.append(support.Record(ex)))
    server.on("exchange", lambda ex: ex.on("request_body", arrived))

    def arrived(chunk: bytes) -> None:
        gone.append(True)

    def client() -> None:
        sock = harness.connect(server)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"a" * 10)
        time.sleep(0.2)
        if how == "reset":
            _reset(sock)
        else:
            sock.shutdown(socket.SHUT_WR)
            support.recv_until_close(sock)

    harness.client(client, settle=0.2)
    (record,) = records
    assert record.body == b"a" * 10
    assert len(record.errors) == 1 and isinstance(record.errors[0], error.ConnectError)
    assert record.events[-1] == "error"
    assert not server.connections


def test_peer_gone_while_waiting_for_the_response(harness: Harness) -> None:
    records: list[Any] = []
    server = harness.server(lambda ex: records.append(support.Record(ex)))

    def client() -> None:
        sock = harness.connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.1)
        _reset(sock)

    harness.client(client, settle=0.2)
    (record,) = records
    assert record.events == ["request_start", "request_done", "error"]
    # a late answer is ignored quietly
    record.exchange.response_start(b"200", b"OK", [])
    record.exchange.response_body(b"late")
    record.exchange.response_done([])


def test_mangled_requests_never_break_the_server(harness: Harness) -> None:
    import random

    server = harness.server(support.echo_handler)
    base = (
        b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"
    )
    rng = random.Random(99)
    alphabet = b"\r\n :;,0aZ\t\x00\x7f\xff-"

    def mangle() -> bytes:
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            where = rng.randrange(len(data))
            action = rng.randrange(3)
            if action == 0:
                data[where] = rng.choice(alphabet)
            elif action == 1:
                del data[where]
            else:
                data.insert(where, rng.choice(alphabet))
        return bytes(data)

    def client() -> list[bytes]:
        answers = []
        for _ in range(60):
            sock = harness.connect(server, timeout=5)
            sock.sendall(mangle())
            sock.shutdown(socket.SHUT_WR)
            answers.append(support.recv_until_close(sock, 5.0))
            sock.close()
        # and the server still answers a good request
        sock = harness.connect(server)
        sock.sendall(b"GET /fine HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answers.append(support.recv_until_close(sock))
        return answers

    answers = harness.client(client, timeout=60)
    for data in answers:
        statuses = [line[9:12] for line in data.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
        assert all(s in (b"200", b"400", b"413", b"414", b"431", b"501", b"505") for s in statuses)
    assert answers[-1].startswith(b"HTTP/1.1 200 OK")
    assert not server.connections or all(c.tcp_conn is None for c in server.connections)


def _serve_once(harness: Harness, request_bytes: bytes, **settings: Any) -> tuple[bytes, list]:
    """Send ``request_bytes`` to a hello server with ``settings``; the reply and the heads seen."""
    seen: list[Any] = []
    handler = support.hello_handler()

    def on_exchange(exchange: HttpServerExchange) -> None:
        exchange.on("request_start", lambda method, uri, headers: seen.append(headers))
        handler(exchange)

    server = harness.server(on_exchange, **settings)

    def client() -> bytes:
        sock = harness.connect(server)
        sock.sendall(request_bytes)
        return support.recv_until_close(sock)

    return harness.client(client), seen


@pytest.mark.parametrize(
    ("request_bytes", "setting"),
    [
        pytest.param(b"GET / HTTP/1.1\nHost: a\nConnection: close\n\n", "lenient_bare_lf", id="lf"),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\nConnection: close\r\n\r\n",
            "lenient_obs_fold",
            id="obs-fold",
        ),
    ],
)
def test_server_leniencies_are_off_by_default_and_can_be_turned_on(
    harness: Harness, request_bytes: bytes, setting: str
) -> None:
    """Each relaxation is a named server setting: strict (400) unless it is switched on."""
    data, seen = _serve_once(harness, request_bytes)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data
    assert seen == []
    data, seen = _serve_once(harness, request_bytes, **{setting: True})
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data
    if setting == "lenient_obs_fold":
        assert (b"X-Folded", b" one two") in seen[0]


@pytest.mark.parametrize(
    ("setting", "value", "request_bytes", "status"),
    [
        pytest.param(
            "max_body_size",
            10,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + b"x" * 100,
            b"413",
            id="max_body_size",
        ),
        pytest.param(
            "max_request_line", 20, b"GET /" + b"a" * 40 + b" HTTP/1.1\r\nHost: a\r\n\r\n", b"414"
        ),
        pytest.param(
            "max_fields", 2, b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", b"431"
        ),
        pytest.param("lenient_bare_lf", True, b"GET / HTTP/1.1\nHost: a\n\n", b"200"),
    ],
)
def test_parser_settings_set_on_the_server_apply_to_its_next_connections(
    harness: Harness, setting: str, value: object, request_bytes: bytes, status: bytes
) -> None:
    """A parser limit or leniency set on a server after it was made (as the class docstring
    allows) applies to the connections it accepts afterwards; before, only the class's value
    was ever used. The same request, sent before the change, was answered the old way and
    learnt as a known request: the change forgets those, so the new setting applies to it."""

    def answer(exchange: HttpServerExchange) -> None:
        def done(trailers: Any) -> None:
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"2")])
            exchange.response_body(b"ok")
            exchange.response_done([])

        exchange.on("request_done", done)

    server = harness.server(answer)
    lenient = setting.startswith("lenient")
    before = b"400" if lenient else b"200"
    request = request_bytes.replace(b"Host: a\r\n", b"Host: a\r\nConnection: close\r\n")
    request = request.replace(b"Host: a\n", b"Host: a\nConnection: close\n")
    changed = threading.Event()

    def change() -> None:
        setattr(server, setting, value)
        changed.set()

    def exchange_once() -> bytes:
        sock = harness.connect(server)
        sock.sendall(request)
        return support.recv_until_close(sock)

    def client() -> tuple[list[bytes], bytes]:
        answers = [exchange_once() for _ in range(3)]  # the second teaches the known requests
        harness.loop.run_in_loop(change)
        assert changed.wait(5)
        return answers, exchange_once()

    answers, after = harness.client(client)
    for data in answers:
        assert data.startswith(b"HTTP/1.1 " + before), data
    assert after.startswith(b"HTTP/1.1 " + status), after
