"""HttpClient against real servers on 127.0.0.1: the API surface (settings, subclassing), request
framing (counted, chunked, none), the headers the client writes, the responses it reads (HEAD,
204, 304, 1xx, trailers, close-delimited) and the exchange attributes applications read."""

from __future__ import annotations

import array
import socket
from typing import TYPE_CHECKING, Any

import http_client_support as support
import pytest

import thor.loop
from thor.http.client import HttpClient, HttpClientConnection, HttpClientExchange
from thor.http.error import OutputError, OutputStateError, OutputSyntaxError, TooManyMsgsError
from thor.tcp import TcpConnection

if TYPE_CHECKING:
    from http_client_support import EchoServer, Harness, ScriptedServer


harness = support.harness
scripted = support.scripted
echo_server = support.echo_server
read_request = support.read_request
read_head = support.read_head
response = support.response
echoed = support.echoed

MakeServer = "Callable[[Script], ScriptedServer]"


# -- the API surface -------------------------------------------------------------------------------


def test_settings_are_instance_attributes_with_the_classic_defaults() -> None:
    loop = thor.loop.make()
    try:
        client = HttpClient(loop)
        assert client.loop is loop
        expected = {
            "connect_timeout": 3,
            "connect_attempts": 3,
            "read_timeout": None,
            "idle_timeout": 60,
            "retry_limit": 2,
            "retry_delay": 0.5,
            "retry_body_limit": 1024 * 1024,
            "max_server_conn": 6,
            "check_ip": None,
            "careful": True,
            "total_timeout": None,
        }
        for name, value in expected.items():
            assert name in vars(client), name
            assert getattr(client, name) == value, name
        # newer settings: the TLS ones are properties (setting one retires pooled HTTPS
        # connections), read and set as the others
        for name, value in {"tls_verify": True, "tls_ca_file": None, "tls_context": None}.items():
            assert getattr(client, name) == value, name
        assert isinstance(client.exchange(), HttpClientExchange)
        assert HttpClientExchange.strict_request_line is True
    finally:
        loop.close()


def test_default_loop_is_used_without_one() -> None:
    client = HttpClient()
    assert client.loop is thor.loop._loop


def test_subclass_calling_init_with_loop(harness: Harness, echo_server: EchoServer) -> None:
    class RedHttpClient(HttpClient):
        def __init__(self, loop: thor.loop.LoopBase) -> None:
            HttpClient.__init__(self, loop)
            self.connect_timeout = 30
            self.read_timeout = 60
            self.idle_timeout = 5
            self.retry_delay = 1
            self.careful = False

    client = RedHttpClient(harness.loop)
    harness.clients.append(client)
    rec = harness.fetch(client, echo_server.url("/sub"))
    harness.run()
    assert rec.status == b"200"
    assert rec.exchange.careful is False


# -- requests ------------------------------------------------------------------------------------


def test_get_without_body_sends_no_framing(harness: Harness, echo_server: EchoServer) -> None:
    client = harness.client()
    rec = harness.fetch(client, echo_server.url("/x?y=1"))
    harness.run()
    assert rec.events == ["response_start", "response_body", "response_done"]
    assert rec.status == b"200" and rec.phrase == b"OK"
    seen = echoed(rec)
    assert seen["method"] == "GET" and seen["path"] == "/x?y=1"
    names = [name.lower() for name, _ in seen["headers"]]
    assert "transfer-encoding" not in names and "content-length" not in names
    assert ["Host", f"127.0.0.1:{echo_server.port}"] in seen["headers"]
    assert rec.res_version in {b"1.0", b"1.1"}
    assert rec.trailers == []


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"PATCH"])
def test_body_less_post_put_patch_say_content_length_0(
    harness: Harness, echo_server: EchoServer, method: bytes
) -> None:
    rec = harness.fetch(harness.client(), echo_server.url(), method=method)
    harness.run()
    headers = {name.lower(): value for name, value in echoed(rec)["headers"]}
    assert headers.get("content-length") == "0"
    assert "transfer-encoding" not in headers


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE"])
def test_chunked_request_body(harness: Harness, echo_server: EchoServer, method: bytes) -> None:
    body = [b"hello ", b"", b"world", b"x" * 100_000]
    rec = harness.fetch(harness.client(), echo_server.url(), method=method, body=body)
    harness.run()
    seen = echoed(rec)
    assert seen["method"] == method.decode()
    assert seen["body"] == b"".join(body).decode()
    headers = {name.lower(): value for name, value in seen["headers"]}
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers


def test_counted_request_body(harness: Harness, echo_server: EchoServer) -> None:
    rec = harness.fetch(
        harness.client(),
        echo_server.url(),
        method=b"PUT",
        headers=[(b"Content-Length", b"11")],
        body=[b"hello", b" world"],
    )
    harness.run()
    seen = echoed(rec)
    assert seen["body"] == "hello world"
    headers = {name.lower(): value for name, value in seen["headers"]}
    assert headers["content-length"] == "11" and "transfer-encoding" not in headers


@pytest.mark.parametrize("framing", ["counted", "chunked"])
@pytest.mark.parametrize("kind", ["reused bytearray", "wide memoryview"])
def test_body_chunks_given_as_buffers_are_sent_as_their_bytes_were_then(
    harness: Harness, echo_server: EchoServer, framing: str, kind: str
) -> None:
    """A bytearray the application reuses right after ``request_body`` (here while the request
    waits for its connection, and is kept for a retry) is sent as it was; a memoryview of
    2-byte items counts as its bytes (Content-Length, chunk sizes)."""
    size = b"9" if kind == "reused bytearray" else b"6"
    headers = [(b"Content-Length", size)] if framing == "counted" else []
    exchange = harness.client().exchange()
    rec = harness.track(exchange)
    exchange.request_start(b"PUT", echo_server.url().encode(), headers)
    if kind == "reused bytearray":
        buffer = bytearray()
        for part in (b"aaa", b"bbb", b"ccc"):  # (the first one goes with the head)
            buffer[:] = part  # the application reuses its buffer at once
            exchange.request_body(buffer)
        expected = "aaabbbccc"
    else:
        exchange.request_body(memoryview(array.array("H", [0x4141, 0x4242, 0x4343])))
        expected = "AABBCC"
    exchange.request_done([])
    harness.run()
    assert rec.error is None
    seen = echoed(rec)
    assert seen["body"] == expected
    fields = {name.lower(): value for name, value in seen["headers"]}
    if framing == "chunked":
        assert fields["transfer-encoding"] == "chunked"


@pytest.mark.parametrize("chunk", ["text", 5, None])
def test_a_body_chunk_that_is_not_bytes_like_is_a_type_error(
    harness: Harness, echo_server: EchoServer, chunk: Any
) -> None:
    exchange = harness.client().exchange()
    rec = harness.track(exchange)
    exchange.request_start(b"PUT", echo_server.url().encode(), [])
    with pytest.raises(TypeError, match=type(chunk).__name__):
        exchange.request_body(chunk)
    exchange.request_body(b"ok")
    exchange.request_done([])
    harness.run()
    assert echoed(rec)["body"] == "ok"


def test_request_trailers_are_sent_with_a_chunked_body(
    harness: Harness, scripted: MakeServer
) -> None:
    seen: list[bytes] = []

    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        data = b""
        while not data.endswith(b"\r\n\r\n") or b"0\r\n" not in data:
            data += sock.recv(65536)
        seen.append(data)
        sock.sendall(response(200, b"ok"))

    server = scripted(script)
    exchange = harness.client().exchange()
    rec = harness.track(exchange)
    exchange.request_start(b"POST", server.url().encode(), [])
    exchange.request_body(b"abc")
    exchange.request_done([(b"X-Check", b"yes")])
    harness.run()
    assert rec.status == b"200"
    assert seen[0].endswith(b"\r\n\r\n3\r\nabc\r\n0\r\nX-Check: yes\r\n\r\n")


def test_client_sets_host_and_strips_hop_by_hop(harness: Harness, echo_server: EchoServer) -> None:
    headers = [
        (b"Host", b"evil.example"),
        (b"Connection", b"close, X-Private"),
        (b"X-Private", b"secret"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Transfer-Encoding", b"gzip"),
        (b"TE", b"trailers"),
        (b"Upgrade", b"h2c"),
        (b"Proxy-Connection", b"keep-alive"),
        (b"X-Kept", b"  spaced  "),
    ]
    rec = harness.fetch(harness.client(), echo_server.url(), headers=headers)
    harness.run()
    names = [name.lower() for name, _ in echoed(rec)["headers"]]
    for gone in ("connection", "x-private", "keep-alive", "transfer-encoding", "te", "upgrade"):
        assert gone not in names
    assert names.count("host") == 1
    assert ["Host", f"127.0.0.1:{echo_server.port}"] in echoed(rec)["headers"]
    assert "x-kept" in names


def test_head_and_first_small_chunk_go_out_in_one_write(
    harness: Harness, echo_server: EchoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[bytes] = []
    original = TcpConnection.write

    def spy(self: TcpConnection, data: bytes) -> None:
        writes.append(bytes(data))
        original(self, data)

    monkeypatch.setattr(TcpConnection, "write", spy)
    client = harness.client()
    first: list[bytes] = []
    # while connecting, everything the application sends waits, and leaves in one write
    harness.fetch(client, echo_server.url(), method=b"POST", body=[b"first", b"next"])
    harness.then(lambda: first.extend(writes))
    # on a pooled connection: the head and the first chunk together, then each chunk
    harness.then(writes.clear)
    harness.then(
        lambda: harness.fetch(client, echo_server.url(), method=b"POST", body=[b"first", b"next"])
    )
    harness.run()
    assert writes[0].startswith(b"POST / HTTP/1.1\r\n")
    assert writes[0].endswith(b"\r\n\r\n5\r\nfirst\r\n")
    assert writes[1:] == [b"4\r\nnext\r\n", b"0\r\n\r\n"]
    assert echo_server.accepts == 1
    assert len(first) == 1
    assert first[0].endswith(b"\r\n\r\n5\r\nfirst\r\n4\r\nnext\r\n0\r\n\r\n")


def test_body_longer_than_content_length_is_an_output_error(
    harness: Harness, echo_server: EchoServer
) -> None:
    rec = harness.fetch(
        harness.client(),
        echo_server.url(),
        method=b"PUT",
        headers=[(b"Content-Length", b"3")],
        body=[b"ab", b"cd"],
    )
    harness.run()
    assert rec.events == ["error"]
    assert isinstance(rec.error, OutputError)


def test_body_shorter_than_content_length_is_an_output_error(
    harness: Harness, echo_server: EchoServer
) -> None:
    rec = harness.fetch(
        harness.client(),
        echo_server.url(),
        method=b"PUT",
        headers=[(b"Content-Length", b"10")],
        body=[b"abc"],
    )
    harness.run()
    assert rec.events == ["error"]
    assert type(rec.error) is OutputError


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        pytest.param(b"GE T", [], id="space-in-method"),
        pytest.param(b"G\rET", [], id="cr-in-method"),
        pytest.param(b"GET", [(b"Bad Name", b"x")], id="bad-field-name"),
        pytest.param(b"GET", [(b"X", b"a\r\nInjected: 1")], id="crlf-in-value"),
        pytest.param(b"PUT", [(b"Content-Length", b"+5")], id="bad-content-length"),
        pytest.param(b"PUT", [(b"Content-Length", b"5"), (b"Content-Length", b"6")], id="two-cl"),
    ],
)
def test_bad_request_head_is_an_error_before_request_start_returns(
    harness: Harness, method: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    client = harness.client()
    exchange = client.exchange()
    rec = harness.track(exchange)
    exchange.request_start(method, b"http://127.0.0.1:9/", headers)
    assert rec.events == ["error"]
    assert isinstance(rec.error, OutputSyntaxError)
    exchange.request_body(b"ignored")
    exchange.request_done([])
    assert client.conn_counts == {}


def test_target_with_space_is_refused_unless_the_request_line_is_lax(
    harness: Harness, scripted: MakeServer
) -> None:
    lines: list[bytes] = []

    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        head, _ = read_head(sock)
        lines.append(head.split(b"\r\n")[0])
        sock.sendall(response(200, b""))

    server = scripted(script)
    client = harness.client()
    strict = harness.fetch(client, server.url("/a b"))
    assert isinstance(strict.error, OutputSyntaxError)

    class Lax(HttpClientExchange):
        strict_request_line = False

    exchange = Lax(client)
    rec = harness.track(exchange)
    exchange.request_start(b"FANCY{}", server.url("/a b").encode(), [])
    exchange.request_done([])
    harness.run()
    assert rec.status == b"200"
    assert lines == [b"FANCY{} /a b HTTP/1.1"]


def test_calls_out_of_order_raise_output_state_error(harness: Harness) -> None:
    exchange = harness.client().exchange()
    with pytest.raises(OutputStateError):
        exchange.request_body(b"x")
    with pytest.raises(OutputStateError):
        exchange.request_done([])
    exchange.on("error", lambda err: None)
    exchange.request_start(b"GET", b"ftp://nowhere/", [])
    with pytest.raises(OutputStateError):
        exchange.request_start(b"GET", b"http://x/", [])


# -- responses -----------------------------------------------------------------------------------


def test_head_204_304_have_no_body_and_keep_the_connection(
    harness: Harness, scripted: MakeServer
) -> None:
    answers = [
        response(200, b"", ["Content-Length: 1000"], length=False),  # to HEAD
        response(204, b"", ["Content-Length: 50"], length=False),
        response(304, b"", ["Transfer-Encoding: chunked"], length=False),
        response(200, b"after"),
    ]

    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        rest = bytearray()
        for answer in answers:
            _, _, rest = read_request(sock, rest)
            sock.sendall(answer)

    server = scripted(script)
    client = harness.client()
    recs = []

    def next_one(rec: object) -> None:
        if len(recs) < 4:
            recs.append(harness.fetch(client, server.url(), method=b"GET"))

    harness.on_finished = next_one
    recs.append(harness.fetch(client, server.url(), method=b"HEAD"))
    harness.run()
    assert [r.status for r in recs] == [b"200", b"204", b"304", b"200"]
    assert [bytes(r.body) for r in recs] == [b"", b"", b"", b"after"]
    assert all(r.events[-1] == "response_done" for r in recs)
    assert server.accepts == 1


def test_interim_responses_then_final(harness: Harness, scripted: MakeServer) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
            + response(200, b"final")
        )

    server = scripted(script)
    rec = harness.fetch(harness.client(), server.url(), method=b"POST", body=[b"x"])
    harness.run()
    assert rec.events == [
        "response_nonfinal",
        "response_nonfinal",
        "response_start",
        "response_body",
        "response_done",
    ]
    assert [(s, p) for s, p, _ in rec.nonfinal] == [(b"100", b"Continue"), (b"103", b"Early Hints")]
    assert rec.nonfinal[1][2] == [(b"Link", b" </s.css>; rel=preload")]
    assert bytes(rec.body) == b"final"


@pytest.mark.parametrize(
    ("interim", "limit", "finished"),
    [(20, 20, True), (21, 20, False), (3, 2, False), (200, None, True)],
)
def test_interim_responses_are_limited_by_max_nonfinal_responses(
    harness: Harness, scripted: MakeServer, interim: int, limit: int | None, finished: bool
) -> None:
    """A server may send 1xx responses without end: the exchange (CPU, and in a proxy the
    relayed heads' memory) was held as long as it liked. One more than
    ``max_nonfinal_responses`` ends the exchange with TooManyMsgsError; None: no limit."""

    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" * interim + response(200, b"final")
        )

    server = scripted(script)
    client = harness.client(max_nonfinal_responses=limit)
    first = harness.fetch(client, server.url())
    harness.run()
    if finished:
        assert first.events[-1] == "response_done"
        assert len(first.nonfinal) == interim
        assert bytes(first.body) == b"final"
    else:
        assert first.events[-1] == "error"
        assert isinstance(first.error, TooManyMsgsError)
        assert limit is not None and len(first.nonfinal) == limit


def test_the_interim_response_limit_counts_per_exchange(
    harness: Harness, scripted: MakeServer
) -> None:
    """Two 1xx before each of two responses on one kept-alive connection, with a limit of 2:
    the second exchange starts counting afresh."""

    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        rest = bytearray()
        for _ in range(2):
            _, _, rest = read_request(sock, rest)
            sock.sendall(b"HTTP/1.1 102 Processing\r\n\r\n" * 2 + response(200, b"ok"))

    server = scripted(script)
    client = harness.client(max_nonfinal_responses=2)
    first = harness.fetch(client, server.url())
    second: list[Any] = []
    harness.then(lambda: second.append(harness.fetch(client, server.url())))
    harness.run()
    assert [rec.events[-1] for rec in (first, *second)] == ["response_done", "response_done"]
    assert server.accepts == 1


def test_idle_connections_over_every_origin_are_capped_oldest_first(
    harness: Harness, scripted: MakeServer
) -> None:
    """Five origins fetched in turn with ``max_idle_conns`` 3: the pool keeps the three most
    recently used connections and closes the ones idle longest (a client, or a forward
    proxy, talking to many origins kept a socket per origin for ``idle_timeout``)."""
    servers = [scripted(support.keep_alive_script()) for _ in range(5)]
    client = harness.client(max_idle_conns=3)
    for server in servers:
        harness.then(lambda server=server: harness.fetch(client, server.url()))
    seen: list[tuple[list[int], int]] = []

    def look() -> None:
        ports = [port for (_, _, port), count in client.conn_counts.items() if count]
        seen.append((sorted(ports), client._idle_total))

    harness.then(look)
    again: list[Any] = []  # an idle one is reused, not a new one
    harness.then(lambda: again.append(harness.fetch(client, servers[-1].url())))
    harness.run()
    assert seen == [(sorted(server.port for server in servers[2:]), 3)]
    assert again[0].events[-1] == "response_done"
    assert servers[-1].accepts == 1


def test_trailers_are_delivered_in_response_done(harness: Harness, scripted: MakeServer) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: abc\r\nX-Two: 2\r\n\r\n"
        )

    server = scripted(script)
    rec = harness.fetch(harness.client(), server.url())
    harness.run()
    assert bytes(rec.body) == b"hello world"
    assert rec.trailers == [(b"X-Sum", b" abc"), (b"X-Two", b" 2")]
    assert rec.exchange.input_transfer_length == len(
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: abc\r\nX-Two: 2\r\n\r\n"
    )
    assert rec.exchange.input_header_length == len(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    )


@pytest.mark.parametrize("version", [b"1.0", b"1.1"])
def test_close_delimited_response_ends_with_the_servers_close(
    harness: Harness, scripted: MakeServer, version: bytes
) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/" + version + b" 200 OK\r\nX: y\r\n\r\npart one, ")
        sock.sendall(b"part two")
        sock.close()

    server = scripted(script)
    client = harness.client()
    rec = harness.fetch(client, server.url())
    harness.run()
    assert rec.events == ["response_start", "response_body", "response_done"]
    assert bytes(rec.body) == b"part one, part two"
    assert rec.res_version == version
    assert rec.counts == {}  # closed before response_done


def test_response_body_is_streamed_as_it_arrives(harness: Harness, scripted: MakeServer) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst")
        server.event("second").wait(5)
        sock.sendall(b"after")

    server = scripted(script)
    rec = harness.fetch(harness.client(), server.url())
    # the first part arrives while the rest is held back by the server
    harness.loop.schedule(0.01, lambda: None)

    def check() -> None:
        if bytes(rec.body) == b"first":
            server.event("second").set()
        else:
            harness.loop.schedule(0.01, check)

    harness.loop.schedule(0.01, check)
    harness.run()
    assert rec.chunks[0] == b"first"
    assert bytes(rec.body) == b"firstafter"


def test_conn_and_versions_are_visible_during_the_response(
    harness: Harness, scripted: MakeServer
) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" + response(200, b"ok"))

    server = scripted(script)
    exchange = harness.client().exchange()
    seen: dict[str, object] = {}

    def nonfinal(status: bytes, phrase: bytes, headers: object) -> None:
        conn = exchange.conn
        seen["conn"] = conn
        seen["conn_version"] = conn.res_version if conn is not None else None
        seen["tcp_conn"] = conn.tcp_conn if conn is not None else None

    exchange.on("response_nonfinal", nonfinal)
    rec = harness.track(exchange)
    exchange.request_start(b"GET", server.url().encode(), [])
    assert exchange.conn is None  # still connecting
    exchange.request_done([])
    harness.run()
    assert isinstance(seen["conn"], HttpClientConnection)
    assert seen["conn_version"] == b"1.1"
    assert isinstance(seen["tcp_conn"], TcpConnection)
    assert rec.res_version == b"1.1"
    assert exchange.conn is None  # over: it no longer holds a connection
    assert exchange.method == b"GET" and exchange.uri == server.url().encode()
    assert exchange.origin == ("http", "127.0.0.1", server.port)
    assert exchange.authority == f"127.0.0.1:{server.port}".encode()
    assert exchange.req_target == b"/" and exchange.req_hdrs == []


def test_listeners_are_dropped_once_the_exchange_is_over(
    harness: Harness, echo_server: EchoServer
) -> None:
    rec = harness.fetch(harness.client(), echo_server.url())
    harness.run()
    assert rec.status == b"200"
    for event in ("response_start", "response_body", "response_done", "error"):
        assert rec.exchange.listeners(event) == []


def test_expect_100_continue_sends_the_head_first(harness: Harness, scripted: MakeServer) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        head, rest = read_head(sock)
        server.notes.append(head)
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        _, body, _ = read_request(sock, bytearray(head + b"\r\n\r\n" + rest))
        sock.sendall(response(200, b"got " + body))

    server = scripted(script)
    exchange = harness.client().exchange()
    rec = harness.track(exchange)

    def go_on(status: bytes, phrase: bytes, headers: object) -> None:
        if status == b"100":
            exchange.request_body(b"the body")
            exchange.request_done([])

    exchange.on("response_nonfinal", go_on)
    exchange.request_start(
        b"PUT", server.url().encode(), [(b"Expect", b"100-continue"), (b"Content-Length", b"8")]
    )
    harness.run()
    assert bytes(rec.body) == b"got the body"
    assert b"\r\nExpect: 100-continue" in server.notes[0]


def test_res_body_pause_before_the_connection_is_kept(
    harness: Harness, echo_server: EchoServer
) -> None:
    exchange = harness.client().exchange()
    rec = harness.track(exchange)
    exchange.request_start(b"GET", echo_server.url().encode(), [])
    exchange.res_body_pause(True)
    exchange.request_done([])
    harness.loop.schedule(0.3, exchange.res_body_pause, False)
    started = harness.loop.time()
    harness.run()
    assert rec.status == b"200"
    assert harness.loop.time() - started >= 0.25  # nothing was read before the resume


def test_client_close_abandons_exchanges_without_events(
    harness: Harness, scripted: MakeServer
) -> None:
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        read_request(sock)
        server.event("end").wait(5)

    server = scripted(script)
    client = harness.client(max_server_conn=1)
    first = harness.fetch(client, server.url())
    queued = harness.fetch(client, server.url())
    harness.loop.schedule(0.2, client.close)
    harness.loop.schedule(0.4, harness.stop)
    harness.run(until_done=False)
    assert first.events == [] and queued.events == []
    assert client.conn_counts == {}


def test_redirects_are_left_to_the_application(harness: Harness, scripted: MakeServer) -> None:
    """A 3xx is a response like any other: delivered, never followed by the client."""
    requests_seen: list[bytes] = []

    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        rest = bytearray()
        while True:
            try:
                head, _, rest = read_request(sock, rest)
            except ConnectionError:
                return
            requests_seen.append(head.split(b"\r\n", 1)[0])
            sock.sendall(response(302, b"moved", [f"Location: {server.url('/elsewhere')}"]))

    server = scripted(script)
    exchange = harness.client().exchange()
    rec = harness.track(exchange)
    exchange.request_start(b"GET", server.url("/here").encode(), [])
    exchange.request_done([])
    harness.run()
    assert rec.status == b"302"
    assert rec.headers is not None
    assert (b"Location", b" " + server.url("/elsewhere").encode()) in rec.headers  # as received
    assert bytes(rec.body) == b"moved"
    assert requests_seen == [b"GET /here HTTP/1.1"]


def test_a_tls_setting_set_before_init_does_not_fail() -> None:
    """The TLS settings are properties that look at the pool: a subclass that sets one before
    calling ``HttpClient.__init__`` (which then sets the defaults, as for every setting) must
    not meet a missing pool."""

    class EarlyClient(HttpClient):
        def __init__(self, loop: thor.loop.LoopBase) -> None:
            self.tls_verify = False
            HttpClient.__init__(self, loop)

    loop = thor.loop.make()
    try:
        client = EarlyClient(loop)
        assert client.tls_verify is True
        client.tls_verify = False
        assert client.tls_verify is False
    finally:
        loop.close()
