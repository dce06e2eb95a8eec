"""Known requests and known responses against hostile peers: a table entry is only ever learnt
from a read that began with the head it keys (so one peer cannot make other bytes mean its
message), and the settings that turn the feature off or refuse requests take effect at once.

Real sockets on 127.0.0.1: a thor loop in this thread, the peers in threads.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from http_client_support import ScriptedServer, read_head

import thor.loop
from thor.http import _parser
from thor.http.client import HttpClient
from thor.http.server import HttpServer

pytestmark = pytest.mark.usefixtures("fresh_head_cache")

#: sockets a test opened (closed when it ends)
OPENED: list[socket.socket] = []
#: raw origins a test started (closed when it ends)
ORIGINS: list[ScriptedServer] = []


@pytest.fixture(autouse=True)
def close_what_was_opened() -> Iterator[None]:
    yield
    while OPENED:
        OPENED.pop().close()
    while ORIGINS:
        ORIGINS.pop().close()


def read_for(sock: socket.socket, seconds: float) -> bytes:
    """Everything the peer sends within ``seconds`` (or until it closes)."""
    sock.settimeout(seconds)
    out = b""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            out += data
    except TimeoutError:
        pass
    return out


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    OPENED.append(sock)
    return sock


def serve(server_class: type[HttpServer], work: Callable[[HttpServer], None]) -> list[Any]:
    """Run a hello server (the body names the request target) on a fresh loop while ``work``
    talks to it from a thread; return what the application saw."""
    loop = thor.loop.make()
    server = server_class(b"127.0.0.1", 0, loop)
    seen: list[Any] = []

    def on_exchange(ex: Any) -> None:
        def done(trailers: Any) -> None:
            seen.append((ex.uri, list(ex.req_hdrs)))
            body = b"uri=" + ex.uri
            ex.response_start(b"200", b"OK", [(b"Content-Length", b"%d" % len(body))])
            ex.response_body(body)
            ex.response_done([])

        ex.on("request_done", done)

    server.on("exchange", on_exchange)

    def run() -> None:
        try:
            work(server)
        finally:
            loop.run_in_loop(loop.stop)

    threading.Thread(target=run, daemon=True).start()
    loop.schedule(10, loop.stop)
    loop.run()
    server.shutdown()
    for conn in list(server.connections):
        if conn.tcp_conn is not None:
            conn.tcp_conn.abort()
    return seen


def test_a_head_completed_by_a_later_read_is_not_learnt_under_that_reads_bytes() -> None:
    # The attacker's head H = P + V1 is parsed once (now in the parser's cache); then P alone,
    # then V1 + V2 in one read, as long as P: the read completes H, a repeated head, but the
    # read did not begin with it, so nothing may be learnt under the bytes V1 + V2, which are
    # a victim's pipelined pair.
    v1 = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    v2 = b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
    p = b"GET /evil HTTP/1.1\r\nX-Pad: "
    p += b"p" * (len(v2) - len(p))
    got: dict[str, Any] = {}

    def work(server: HttpServer) -> None:
        attacker = connect(server.port)
        attacker.sendall(p + v1)
        read_for(attacker, 0.2)
        attacker.sendall(p)
        time.sleep(0.05)
        attacker.sendall(v1 + v2)
        read_for(attacker, 0.2)
        got["table"] = dict(server._known_requests)
        victim = connect(server.port)
        victim.sendall(v1 + v2)
        got["victim"] = read_for(victim, 0.5)

    seen = serve(HttpServer, work)
    assert v1 + v2 not in got["table"]
    assert got["victim"].count(b"HTTP/1.1 200 OK") == 2
    assert got["victim"].endswith(b"uri=/b")
    assert b"uri=/a" in got["victim"] and b"evil" not in got["victim"]
    assert [uri for uri, _ in seen][-2:] == [b"/a", b"/b"]


def test_max_pipeline_depth_0_refuses_every_request_and_learns_none() -> None:
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    got: dict[str, Any] = {"status": []}

    def work(server: HttpServer) -> None:
        for _ in range(4):
            sock = connect(server.port)
            sock.sendall(request)
            got["status"].append(read_for(sock, 0.3).split(b"\r\n")[0])
            sock.close()
        got["table"] = dict(server._known_requests)

    depth0 = type("Depth0Server", (HttpServer,), {"max_pipeline_depth": 0})
    seen = serve(depth0, work)
    assert got["status"] == [b"HTTP/1.1 400 Bad Request"] * 4
    assert got["table"] == {}
    assert seen == []


def test_max_known_requests_0_on_a_live_server_stops_using_what_was_learnt() -> None:
    request = b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n"
    got: dict[str, Any] = {}
    parsed: list[bytes] = []

    def work(server: HttpServer) -> None:
        feed = server._parser_class.feed

        def counting_feed(parser: Any, data: bytes) -> None:
            parsed.append(data)
            feed(parser, data)

        server._parser_class.feed = counting_feed  # type: ignore[method-assign]
        sock = connect(server.port)
        for _ in range(3):
            sock.sendall(request)
            read_for(sock, 0.15)
        got["learnt"] = request in server._known_requests
        got["parsed before"] = len(parsed)
        server.max_known_requests = 0
        for _ in range(2):
            sock.sendall(request)
            got.setdefault("answers", []).append(read_for(sock, 0.15))
        got["parsed after"] = len(parsed)

    serve(HttpServer, work)
    assert got["learnt"]
    assert got["parsed before"] == 2  # the third was a known request
    assert got["parsed after"] == 4  # off: both parsed again
    assert all(answer.endswith(b"uri=/k") for answer in got["answers"])


def origin(answer: Callable[[int], list[bytes]]) -> int:
    """A raw origin: for the n-th request on a connection it sends ``answer(n)``'s parts, one
    sendall each, 50 ms apart. Returns its port."""

    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffered = bytearray()
        count = 0
        while True:
            _, buffered = read_head(sock, buffered)
            for part in answer(count):
                sock.sendall(part)
                time.sleep(0.05)
            count += 1

    server = ScriptedServer(script)
    ORIGINS.append(server)
    return server.port


def fetch_in_turn(client: HttpClient, loop: Any, urls: list[tuple[str, bytes]]) -> list[Any]:
    """GET each URL after the previous exchange ended; what each exchange emitted."""
    log: list[Any] = []

    def step(index: int = 0) -> None:
        if index == len(urls):
            loop.stop()
            return
        name, url = urls[index]
        ex = client.exchange()
        body = bytearray()
        ex.on("response_nonfinal", lambda s, p, h: log.append((name, "nonfinal", s)))
        ex.on("response_start", lambda s, p, h: log.append((name, "start", s, list(h))))
        ex.on("response_body", body.extend)

        def done(trailers: Any) -> None:
            log.append((name, "done", bytes(body)))
            loop.schedule(0.05, step, index + 1)

        def error(err: Any) -> None:
            log.append((name, "error", err))
            loop.schedule(0.05, step, index + 1)

        ex.on("response_done", done)
        ex.on("error", error)
        ex.request_start(b"GET", url, [])
        ex.request_done([])

    loop.schedule(0, step)
    loop.schedule(10, loop.stop)
    loop.run()
    return log


def test_a_final_head_after_a_1xx_in_the_same_read_is_not_learnt_under_the_1xx_bytes() -> None:
    # A hostile origin sends a 103 of the same length as a repeated 302, then the 302 and part
    # of its body, in one read: the lengths match what a known response needs, but the 302 is
    # not the read's first head, so it must not be learnt under the 103's bytes, which another
    # origin sends before its real answer.
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n"
    page = b"<html>victim page " + b"v" * 80 + b"</html>"
    final = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(page)
    victim_answer = early + final + page
    length = len(victim_answer)
    redirect = b"HTTP/1.1 302 Found\r\nContent-Length: %d\r\nLocation: //evil/\r\nX: " % length
    redirect += b"p" * (len(early) - len(redirect) - 4) + b"\r\n\r\n"
    assert len(redirect) == len(early)

    def hostile(n: int) -> list[bytes]:
        if n == 0:
            return [redirect + b"x" * length]
        return [early + redirect + b"x" * (length - len(early)), b"x" * len(early)]

    evil = origin(hostile)
    victim = origin(lambda n: [victim_answer])
    loop = thor.loop.make()
    client = HttpClient(loop)
    log = fetch_in_turn(
        client,
        loop,
        [
            ("evil", b"http://127.0.0.1:%d/" % evil),
            ("evil", b"http://127.0.0.1:%d/" % evil),
            ("victim", b"http://127.0.0.1:%d/" % victim),
            ("victim", b"http://127.0.0.1:%d/" % victim),
        ],
    )
    client.close()
    assert early not in client._known_responses
    victim_events = [entry[:3] for entry in log if entry[0] == "victim"]
    assert (
        victim_events
        == [
            ("victim", "nonfinal", b"103"),
            ("victim", "start", b"200"),
            ("victim", "done", page),
        ]
        * 2
    )


def test_max_known_responses_0_on_a_live_client_stops_using_what_was_learnt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"
    port = origin(lambda n: [answer])
    heads: list[int] = []
    parse_head = _parser.HttpParser._parse_head

    def counting(parser: Any, data: bytes, pos: int) -> int:
        heads.append(pos)
        return parse_head(parser, data, pos)

    monkeypatch.setattr(_parser.HttpParser, "_parse_head", counting)
    loop = thor.loop.make()
    client = HttpClient(loop)
    url = b"http://127.0.0.1:%d/" % port
    fetch_in_turn(client, loop, [("a", url)] * 3)
    learnt = answer[: answer.index(b"\r\n\r\n") + 4] in client._known_responses
    parsed_before = len(heads)
    client.max_known_responses = 0
    log = fetch_in_turn(client, loop, [("b", url)] * 2)
    client.close()
    assert learnt
    assert parsed_before == 2  # the third was a known response
    assert len(heads) == 4  # off: both parsed again
    assert [entry[2] for entry in log if entry[1] == "done"] == [b"hello", b"hello"]
