"""HttpClient known responses: a final response head with a Content-Length body, that the parser's
head cache served (seen before), arriving with its whole body and nothing else in one read on a
keep-alive connection, is learnt (on its second sighting in the process); from then on, such a
read skips the head's parse: the exchange gets the head as the parser gave it before, and the
parser only takes the body. The fast path must be indistinguishable from the parsed one: same
events, status, phrase, fields (a list of its own each time), version, lengths, pausing and
connection reuse; responses that are not plain, or not alone in their read, are never learnt; the
table is per client and bounded.

The origins are raw sockets on 127.0.0.1 answering every request with fixed bytes, each answer
sent with one ``sendall`` (TCP_NODELAY), so that it arrives in one read; "split" answers are sent
in parts a little apart. The path a response took is seen through the parser's head parsing
(``HttpParser._parse_head``, wrapped on the class for the test): a known response parses no head.
The process-wide cache of parsed heads is emptied before and after each test, so that the
"second sighting" is that of the test.
"""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import http_client_support as support
import pytest

from thor.http import _parser
from thor.http._parser import HttpParser
from thor.http.client import HttpClient, HttpClientConnection, HttpClientExchange
from thor.http.error import BodyTooLargeError, ConnectError

if TYPE_CHECKING:
    from http_client_support import Harness, Recorder, ScriptedServer


harness = support.harness
scripted = support.scripted
read_request = support.read_request

RawHeaders = list[tuple[bytes, bytes]]
MakeServer = Callable[[Any], "ScriptedServer"]

HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\n"
BODY = b"hello"
WHOLE = HEAD + BODY
FIELDS = [(b"Content-Length", b" 5"), (b"X-A", b" b")]
#: a short pause between the parts of a split answer, so that each arrives in a read of its own
GAP = 0.03
TIMEOUT = 5.0


pytestmark = pytest.mark.usefixtures("fresh_head_cache")


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """What every head parse (``HttpParser._parse_head``) was given, from where it started: a
    response that took the known path adds nothing."""
    seen: list[bytes] = []
    original = HttpParser._parse_head

    def parse_head(parser: HttpParser, data: bytes, pos: int) -> int:
        seen.append(data[pos:])
        return original(parser, data, pos)

    monkeypatch.setattr(HttpParser, "_parse_head", parse_head)
    return seen


# -- the origin ----------------------------------------------------------------------------------


@dataclass
class Reply:
    """An origin's answer: ``parts``, each sent with one sendall (GAP apart); then the origin
    closes the connection when ``close``."""

    parts: list[bytes]
    close: bool = False


class Origin:
    """A raw origin on 127.0.0.1: answers every request (in the order they arrive, across
    connections) with ``answer(method, path, number)`` (number counted from 0)."""

    def __init__(self, scripted: MakeServer, answer: Callable[[bytes, bytes, int], Reply]) -> None:
        self.answer = answer
        self.lock = threading.Lock()
        self.requests: list[tuple[int, bytes, bytes]] = []  # (connection, method, path)
        self.server = scripted(self._script)

    def _script(self, sock: socket.socket, index: int, server: ScriptedServer) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rest = bytearray()
        while True:
            try:
                head, _, rest = read_request(sock, rest)
            except ConnectionError:
                return
            method, path = head.split(b" ")[:2]
            with self.lock:
                number = len(self.requests)
                self.requests.append((index, method, path))
            reply = self.answer(method, path, number)
            for position, part in enumerate(reply.parts):
                if position:
                    time.sleep(GAP)
                sock.sendall(part)
            if reply.close:
                sock.close()
                return

    @property
    def accepts(self) -> int:
        return self.server.accepts

    def url(self, path: str = "/") -> str:
        return self.server.url(path)


def fixed(*parts: bytes, close: bool = False) -> Callable[[bytes, bytes, int], Reply]:
    """Answer every request with the same bytes."""
    return lambda method, path, number: Reply(list(parts), close)


# -- the client side -----------------------------------------------------------------------------


@dataclass
class Seen:
    """What one exchange looked like to the application, besides its Recorder's events."""

    recorder: Recorder
    parses_at_start: int = -1  # head parses so far, when 'response_start' came
    table_at_start: int = -1
    table_at_done: int = -1
    conn_id: int = 0
    lengths_at_start: tuple[int, int] = (-1, -1)  # input_header_length, input_transfer_length
    lengths_in_body: list[tuple[int, int]] = field(default_factory=list)
    lengths_at_done: tuple[int, int] = (-1, -1)
    conn_version: bytes | None = None
    #: the connection's parser: header_length and transfer_length, at 'response_done'
    parser_lengths: tuple[int, int] = (-1, -1)
    #: the read the connection keeps at 'response_done' (none: the read is done with)
    batch_at_done: bytes | None = None


def lengths(exchange: HttpClientExchange) -> tuple[int, int]:
    return exchange.input_header_length, exchange.input_transfer_length


def watch(client: HttpClient, parsed: list[bytes], recorder: Recorder) -> Seen:
    """Record what the application sees of ``recorder``'s exchange (see ``Seen``)."""
    seen = Seen(recorder)
    exchange = recorder.exchange
    conns: list[HttpClientConnection] = []

    def start(status: bytes, phrase: bytes, headers: RawHeaders) -> None:
        seen.parses_at_start = len(parsed)
        seen.table_at_start = len(client._known_responses)
        conn = exchange.conn
        assert conn is not None
        seen.conn_id = id(conn)
        conns.append(conn)
        seen.conn_version = conn.res_version
        seen.lengths_at_start = lengths(exchange)

    def body(chunk: bytes) -> None:
        seen.lengths_in_body.append(lengths(exchange))

    def done(trailers: RawHeaders) -> None:
        seen.table_at_done = len(client._known_responses)
        seen.lengths_at_done = lengths(exchange)
        conn = conns[0]  # (the exchange has left its connection by now)
        seen.parser_lengths = (conn.parser.header_length, conn.parser.transfer_length)
        seen.batch_at_done = conn._batch

    exchange.on("response_start", start)
    exchange.on("response_body", body)
    exchange.on("response_done", done)
    return seen


def run_rounds(
    harness: Harness,
    client: HttpClient,
    origin: Origin,
    parsed: list[bytes],
    paths: list[str],
    *,
    method: bytes | list[bytes] = b"GET",
    setup: Callable[[Recorder, int], object] | None = None,
    delay: float | None = None,
) -> list[Seen]:
    """One request per path (with ``method``, or the method of the same index), each started
    when the previous one has finished (from its final listener: a pooled connection is
    reused), or ``delay`` seconds after it; ``setup(recorder, round)`` adds listeners (after the
    Recorder's and ``watch``'s)."""
    seen: list[Seen] = []
    methods = method if isinstance(method, list) else [method] * len(paths)

    def step(path: str, method: bytes) -> None:
        exchange = client.exchange()
        recorder = harness.track(exchange)
        seen.append(watch(client, parsed, recorder))
        if setup is not None:
            setup(recorder, len(seen) - 1)
        exchange.request_start(method, origin.url(path).encode(), [])
        exchange.request_done([])

    for path, each in zip(paths, methods, strict=True):
        harness.then(functools.partial(step, path, each), delay)
    harness.run(timeout=TIMEOUT)
    return seen


def rounds_0_and_2_alike(client: HttpClient, seen: list[Seen]) -> tuple[Recorder, Recorder]:
    """Four rounds: 0 parsed, 1 parsed (and learnt), 2 and 3 known. Rounds 0 and 2 (the same
    listeners on both paths) emitted the same events, error and chunks: their recorders."""
    assert [s.parses_at_start for s in seen] == [1, 2, 2, 2]
    assert list(client._known_responses) == [HEAD]
    parsed_rec, known_rec = seen[0].recorder, seen[2].recorder
    assert parsed_rec.events == known_rec.events
    assert repr(parsed_rec.error) == repr(known_rec.error)
    assert parsed_rec.chunks == known_rec.chunks
    return parsed_rec, known_rec


def assert_table_consistent(client: HttpClient) -> None:
    """Every known response is what its bytes say."""
    for key, entry in client._known_responses.items():
        status, phrase, fields, version, keep_alive, length = entry
        line, _, rest = key.partition(b"\r\n")
        assert line == b"HTTP/%s %s %s" % (version, status, phrase)
        assert rest == b"".join(b"%s:%s\r\n" % fld for fld in fields) + b"\r\n"
        assert keep_alive is True
        assert length > 0
        assert [
            (name, value.strip()) for name, value in fields if name.lower() == b"content-length"
        ] == [(b"Content-Length", b"%d" % length)]


# -- learning and the fast path -----------------------------------------------------------------


def test_a_response_is_learnt_on_its_second_sighting_and_skips_the_head_parse_after(
    harness: Harness, scripted: MakeServer, parsed: list[bytes]
) -> None:
    origin = Origin(scripted, fixed(WHOLE))
    client = harness.client()
    seen = run_rounds(harness, client, origin, parsed, ["/"] * 4)

    # the first two heads were parsed (the second one from the parser's cache, and learnt)
    assert parsed == [WHOLE, WHOLE]
    assert [s.parses_at_start for s in seen] == [1, 2, 2, 2]
    assert [s.table_at_start for s in seen] == [0, 1, 1, 1]
    assert client._known_responses == {HEAD: (b"200", b"OK", FIELDS, b"1.1", True, 5)}
    assert_table_consistent(client)
    # every exchange alike, whichever path made it
    recorders = [s.recorder for s in seen]
    for rec in recorders:
        assert rec.events == ["response_start", "response_body", "response_done"]
        assert (rec.status, rec.phrase, rec.res_version) == (b"200", b"OK", b"1.1")
        assert rec.headers == FIELDS
        assert bytes(rec.body) == BODY
        assert rec.chunks == [BODY]
        assert rec.trailers == []
        assert rec.exchange.res_version == b"1.1"
    # a list of its own for each exchange, and not the table's
    lists = [rec.headers for rec in recorders]
    table_fields = client._known_responses[HEAD][2]
    assert len({id(fields) for fields in [*lists, table_fields]}) == 5
    # the lengths the application reads, as the parsed path gives them, at every stage
    assert [s.lengths_at_start for s in seen] == [(len(HEAD), 0)] * 4
    assert [s.lengths_in_body for s in seen] == [[(len(HEAD), len(BODY))]] * 4
    assert [s.lengths_at_done for s in seen] == [(len(HEAD), len(BODY))] * 4
    assert [s.conn_version for s in seen] == [b"1.1"] * 4
    assert [s.batch_at_done for s in seen] == [b""] * 4  # no read kept alive
    # one connection, reused throughout
    assert len({s.conn_id for s in seen}) == 1
    assert origin.accepts == 1
    origin_key = ("http", "127.0.0.1", origin.server.port)
    assert [s.recorder.counts for s in seen] == [{origin_key: 1}] * 4  # (pooled at each end)


def test_each_exchange_gets_its_own_field_list(
    harness: Harness, scripted: MakeServer, parsed: list[bytes]
) -> None:
    origin = Origin(scripted, fixed(WHOLE))
    client = harness.client()
    at_start: list[RawHeaders] = []

    def mutate(recorder: Recorder, number: int) -> None:
        def start(status: bytes, phrase: bytes, headers: RawHeaders) -> None:
            at_start.append(list(headers))
            headers.append((b"X-Added", b"by the application"))
            headers[0] = (b"Content-Length", b" 999")

        recorder.exchange.on("response_start", start)

    seen = run_rounds(harness, client, origin, parsed, ["/"] * 5, setup=mutate)

    assert parsed == [WHOLE, WHOLE]  # the last three were known
    # each exchange began with the fields as received, not with what the previous one made
    assert at_start == [FIELDS] * 5
    changed = [(b"Content-Length", b" 999"), FIELDS[1], (b"X-Added", b"by the application")]
    assert [s.recorder.headers for s in seen] == [changed] * 5
    # the table's entry is untouched, and the bodies were framed by the real length
    assert client._known_responses == {HEAD: (b"200", b"OK", FIELDS, b"1.1", True, 5)}
    assert [bytes(s.recorder.body) for s in seen] == [BODY] * 5
    assert origin.accepts == 1


# -- never learnt --------------------------------------------------------------------------------

BIG_BODY = b"x" * HttpClient.max_known_response_size
BIG_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BIG_BODY)
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
CLOSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
OLD_HEAD = b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n"
EMPTY_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A: b\r\n\r\n"
NO_CONTENT = b"HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n"
NOT_MODIFIED = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"
UNTIL_CLOSE = b"HTTP/1.1 200 OK\r\nX-A: b\r\n\r\n"


@dataclass
class Case:
    parts: list[bytes]  # one answer, each part a send of its own
    status: bytes
    fields: RawHeaders
    body: bytes
    close: bool = False  # the origin closes after answering
    fresh: bool = False  # a new connection every round
    method: bytes = b"GET"
    version: bytes = b"1.1"
    header_length: int = len(HEAD)
    nonfinal: int = 0  # interim responses before the final one


NEVER_LEARNT: dict[str, Case] = {
    "chunked body": Case(
        [CHUNKED_HEAD + b"5\r\nhello\r\n0\r\n\r\n"],
        b"200",
        [(b"Transfer-Encoding", b" chunked")],
        BODY,
        header_length=len(CHUNKED_HEAD),
    ),
    "Content-Length: 0": Case(
        [EMPTY_HEAD],
        b"200",
        [(b"Content-Length", b" 0"), (b"X-A", b" b")],
        b"",
        header_length=len(EMPTY_HEAD),
    ),
    "204": Case([NO_CONTENT], b"204", [(b"X-A", b" b")], b"", header_length=len(NO_CONTENT)),
    "304 with Content-Length": Case(
        [NOT_MODIFIED], b"304", [(b"Content-Length", b" 5")], b"", header_length=len(NOT_MODIFIED)
    ),
    # (a 304's Content-Length is the representation's: no body follows, and what does is stray)
    "304 with Content-Length, then as many stray bytes": Case(
        [NOT_MODIFIED + BODY],
        b"304",
        [(b"Content-Length", b" 5")],
        b"",
        fresh=True,
        header_length=len(NOT_MODIFIED),
    ),
    "read until close": Case(
        [UNTIL_CLOSE + BODY],
        b"200",
        [(b"X-A", b" b")],
        BODY,
        close=True,
        fresh=True,
        header_length=len(UNTIL_CLOSE),
    ),
    "Connection: close": Case(
        [CLOSE_HEAD + BODY],
        b"200",
        [(b"Content-Length", b" 5"), (b"Connection", b" close")],
        BODY,
        close=True,
        fresh=True,
        header_length=len(CLOSE_HEAD),
    ),
    "HTTP/1.0 without keep-alive": Case(
        [OLD_HEAD + BODY],
        b"200",
        [(b"Content-Length", b" 5")],
        BODY,
        close=True,
        fresh=True,
        version=b"1.0",
        header_length=len(OLD_HEAD),
    ),
    "head and body in two reads": Case([HEAD, BODY], b"200", FIELDS, BODY),
    "part of the body in a second read": Case([HEAD + b"he", b"llo"], b"200", FIELDS, BODY),
    # (the client refuses the stray bytes: it closes the connection after the response)
    "followed by stray bytes": Case([WHOLE + b"EXTRA"], b"200", FIELDS, BODY, fresh=True),
    "HEAD request": Case([HEAD], b"200", FIELDS, b"", method=b"HEAD"),
    "bigger than max_known_response_size": Case(
        [BIG_HEAD + BIG_BODY],
        b"200",
        [(b"Content-Length", b" %d" % len(BIG_BODY))],
        BIG_BODY,
        header_length=len(BIG_HEAD),
    ),
    "after a 100 Continue in the same read": Case(
        [b"HTTP/1.1 100 Continue\r\n\r\n" + WHOLE], b"200", FIELDS, BODY, nonfinal=1
    ),
    "after an empty line": Case([b"\r\n" + WHOLE], b"200", FIELDS, BODY),
    # (the read is as long as the head and its body, but the head does not begin it)
    "after an empty line, the body's end in a second read": Case(
        [b"\r\n" + HEAD + b"hel", b"lo"], b"200", FIELDS, BODY
    ),
}


@pytest.mark.parametrize("name", list(NEVER_LEARNT))
def test_responses_that_are_not_plain_or_not_alone_are_never_learnt(
    harness: Harness, scripted: MakeServer, parsed: list[bytes], name: str
) -> None:
    case = NEVER_LEARNT[name]
    rounds = 4
    origin = Origin(scripted, fixed(*case.parts, close=case.close))
    client = harness.client()
    seen = run_rounds(harness, client, origin, parsed, ["/"] * rounds, method=case.method)

    assert client._known_responses == {}
    # every response's head was parsed
    heads = 1 + case.nonfinal
    assert [s.parses_at_start for s in seen] == [heads * n for n in range(1, rounds + 1)]
    assert len(parsed) == heads * rounds
    # ... though the heads were repeats (the parser's cache served them): the client declined
    assert _parser._HEADS.hits == heads * (rounds - 1)
    # and every round alike, and right
    expected_events = ["response_nonfinal"] * case.nonfinal + [
        "response_start",
        "response_body",
        "response_done",
    ]
    if not case.body:
        expected_events.remove("response_body")
    for s in seen:
        rec = s.recorder
        assert rec.events == expected_events
        assert (rec.status, rec.res_version, rec.headers) == (
            case.status,
            case.version,
            case.fields,
        )
        assert bytes(rec.body) == case.body
        assert s.lengths_at_start[0] == case.header_length
    assert len({s.lengths_at_done for s in seen}) == 1
    assert origin.accepts == (rounds if case.fresh else 1)
    assert [conn for conn, _, _ in origin.requests] == (
        list(range(rounds)) if case.fresh else [0] * rounds
    )


# -- the fast path's conditions ------------------------------------------------------------------


def test_a_known_head_not_alone_with_its_body_in_the_read_is_parsed(
    harness: Harness, scripted: MakeServer, parsed: list[bytes]
) -> None:
    answers = [
        [WHOLE],  # parsed
        [WHOLE],  # parsed, learnt
        [HEAD + b"he", b"llo"],  # known head, but only part of its body: parsed
        [WHOLE],  # known
        [WHOLE + b"EXTRA"],  # known head, more than its body: parsed (then closed: stray bytes)
        [WHOLE],  # known, on a new connection
    ]
    origin = Origin(scripted, lambda method, path, number: Reply(answers[number]))
    client = harness.client()
    seen = run_rounds(harness, client, origin, parsed, ["/"] * len(answers))

    assert parsed == [WHOLE, WHOLE, HEAD + b"he", WHOLE + b"EXTRA"]
    assert [s.parses_at_start for s in seen] == [1, 2, 3, 3, 4, 4]
    for s in seen:
        assert s.recorder.events == ["response_start", "response_body", "response_done"]
        assert (s.recorder.status, s.recorder.headers) == (b"200", FIELDS)
        assert bytes(s.recorder.body) == BODY
    assert seen[2].recorder.chunks == [b"he", b"llo"]
    assert [s.lengths_at_done for s in seen] == [(len(HEAD), len(BODY))] * 6
    assert client._known_responses == {HEAD: (b"200", b"OK", FIELDS, b"1.1", True, 5)}
    # the stray bytes closed the connection: the last response came on a new one
    assert [conn for conn, _, _ in origin.requests] == [0, 0, 0, 0, 0, 1]
    assert len({s.conn_id for s in seen[:5]}) == 1
    assert seen[5].conn_id != seen[0].conn_id


def test_a_known_head_answering_a_head_request_with_a_body_is_parsed(
    harness: Harness, scripted: MakeServer, parsed: list[bytes]
) -> None:
    # a broken origin sends the body to HEAD too: the same read as a known GET response
    origin = Origin(scripted, fixed(WHOLE))
    client = harness.client()
    methods = [b"GET", b"GET", b"HEAD", b"GET", b"HEAD"]
    seen = run_rounds(harness, client, origin, parsed, ["/"] * len(methods), method=methods)

    assert [s.parses_at_start for s in seen] == [1, 2, 3, 3, 4]
    assert list(client._known_responses) == [HEAD]
    for s, method in zip(seen, methods, strict=True):
        rec = s.recorder
        assert (rec.status, rec.headers) == (b"200", FIELDS)
        if method == b"HEAD":  # no body; what follows the head is no response: closed
            assert rec.events == ["response_start", "response_done"]
            assert bytes(rec.body) == b""
            assert s.lengths_at_done == (len(HEAD), 0)
        else:
            assert rec.events == ["response_start", "response_body", "response_done"]
            assert bytes(rec.body) == BODY
            assert s.lengths_at_done == (len(HEAD), len(BODY))
    assert [conn for conn, _, _ in origin.requests] == [0, 0, 0, 1, 1]


def test_a_known_read_completing_a_partial_head_is_parsed(
    harness: Harness, scripted: MakeServer, parsed: list[bytes]
) -> None:
    partial = b"HTTP/1.1 200 OK\r\nX-Note: "  # the known read ends its field
    answers = [[WHOLE], [WHOLE], [WHOLE], [partial, WHOLE], [WHOLE]]
    origin = Origin(scripted, lambda method, path, number: Reply(answers[number]))
    client = harness.client()
    seen = run_rounds(harness, client, origin, parsed, ["/"] * len(answers))

    # the parser was not idle when the known read came: it was parsed, with what came before
    assert parsed == [WHOLE, WHOLE, partial, partial + WHOLE]
    assert [s.parses_at_start for s in seen] == [1, 2, 2, 4, 4]
    noted = seen[3].recorder
    assert noted.headers == [(b"X-Note", b" HTTP/1.1 200 OK"), *FIELDS]
    assert noted.events == ["response_start", "response_body", "response_done"]
    assert seen[3].lengths_at_done == (len(partial + HEAD), len(BODY))
    assert [bytes(s.recorder.body) for s in seen] == [BODY] * 5
    assert [s.recorder.headers for s in seen if s is not seen[3]] == [FIELDS] * 4
    assert list(client._known_responses) == [HEAD]
    assert origin.accepts == 1


def test_versions_and_lengths_follow_each_response_on_a_shared_connection(
    harness: Harness, scripted: MakeServer, parsed: list[bytes]
) -> None:
    # an HTTP/1.0 keep-alive response and an HTTP/1.1 one, interleaved on one connection
    old_head = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n"
    answers = {b"/a": old_head + b"A!", b"/b": WHOLE}
    origin = Origin(scripted, lambda method, path, number: Reply([answers[path]]))
    client = harness.client()
    paths = ["/a", "/a", "/b", "/a", "/b", "/b", "/a"]
    seen = run_rounds(harness, client, origin, parsed, paths)

    # /a learnt on its second sighting, /b on its second: each known after
    assert [s.parses_at_start for s in seen] == [1, 2, 3, 3, 4, 4, 4]
    assert client._known_responses == {
        old_head: (
            b"200",
            b"OK",
            [(b"Connection", b" keep-alive"), (b"Content-Length", b" 2")],
            b"1.0",
            True,
            2,
        ),
        HEAD: (b"200", b"OK", FIELDS, b"1.1", True, 5),
    }
    old = [path == "/a" for path in paths]
    assert [s.recorder.res_version for s in seen] == [b"1.0" if o else b"1.1" for o in old]
    assert [s.conn_version for s in seen] == [b"1.0" if o else b"1.1" for o in old]
    expected = [(len(old_head), 2) if o else (len(HEAD), len(BODY)) for o in old]
    assert [s.lengths_at_done for s in seen] == expected
    assert [s.parser_lengths for s in seen] == expected
    assert [bytes(s.recorder.body) for s in seen] == [b"A!" if o else BODY for o in old]
    assert origin.accepts == 1


# -- pausing -------------------------------------------------------------------------------------


def test_pausing_in_response_start_holds_the_body_alike_on_both_paths(
    harness: Harness, scripted: MakeServer, parsed: list[bytes]
) -> None:
    origin = Origin(scripted, fixed(WHOLE))
    client = harness.client()
    resumed_at: list[float] = []
    body_at: list[float] = []
    paused_at: list[float] = []

    def pause(recorder: Recorder, number: int) -> None:
        exchange = recorder.exchange

        def resume() -> None:
            resumed_at.append(time.monotonic())
            recorder.events.append("resumed")
            exchange.res_body_pause(False)

        def start(status: bytes, phrase: bytes, headers: RawHeaders) -> None:
            paused_at.append(time.monotonic())
            exchange.res_body_pause(True)
            harness.loop.schedule(0.05, resume)

        def body(chunk: bytes) -> None:
            body_at.append(time.monotonic())

        exchange.on("response_start", start)
        exchange.on("response_body", body)

    seen = run_rounds(harness, client, origin, parsed, ["/"] * 4, setup=pause)

    assert [s.parses_at_start for s in seen] == [1, 2, 2, 2]  # parsed, parsed, known, known
    for s in seen:
        rec = s.recorder
        # the body came only after the resume, whole, then the end
        assert rec.events == ["response_start", "resumed", "response_body", "response_done"]
        assert rec.chunks == [BODY]
        assert s.lengths_at_done == (len(HEAD), len(BODY))
    assert all(body >= resumed for body, resumed in zip(body_at, resumed_at, strict=True))
    assert all(
        resumed - paused >= 0.045 for resumed, paused in zip(resumed_at, paused_at, strict=True)
    )
    assert origin.accepts == 1


@pytest.mark.parametrize(
    ("event", "action"),
    [
        ("response_body", "pause"),
        ("response_start", "cancel"),
        ("response_body", "cancel"),
        ("response_start", "close"),
        ("response_body", "close"),
    ],
)
def test_what_a_listener_does_to_its_exchange_is_handled_alike_on_both_paths(
    harness: Harness, scripted: MakeServer, parsed: list[bytes], event: str, action: str
) -> None:
    """Pausing the input from 'response_body', cancelling the exchange or closing its
    connection from 'response_start' or 'response_body': round 0 (parsed) and round 2 (known)
    look the same to the application; after a pause, the connection's parser is left alike
    (idle, not paused), and the next round on it takes the known path again."""
    origin = Origin(scripted, fixed(WHOLE))
    client = harness.client()
    parsers: dict[int, tuple[int, bool, bytes]] = {}  # round -> (state, paused, kept bytes)

    def act(recorder: Recorder, number: int) -> None:
        exchange = recorder.exchange
        conns: list[HttpClientConnection] = []

        def keep_conn(*args: object) -> None:
            assert exchange.conn is not None
            conns.append(exchange.conn)

        def done(trailers: RawHeaders) -> None:
            parser = conns[0].parser
            parsers[number] = (parser._state, parser._paused, parser._buf)

        def listener(*args: object) -> None:
            recorder.events.append(action)
            if action == "pause":
                exchange.res_body_pause(True)
                harness.loop.schedule(0.02, exchange.res_body_pause, False)
            elif action == "cancel":
                exchange.cancel()  # nothing more is emitted: the test counts it finished
                harness.finished(recorder)
            else:
                conn = exchange.conn
                assert conn is not None
                conn.close()

        if number in (0, 2):
            exchange.on("response_start", keep_conn)
            exchange.on(event, listener)
            exchange.on("response_done", done)

    seen = run_rounds(harness, client, origin, parsed, ["/"] * 4, setup=act, delay=0.01)

    known_rec = rounds_0_and_2_alike(client, seen)[1]
    if action == "pause":  # the response was whole: it ends, and the connection is pooled
        assert known_rec.events == ["response_start", "response_body", "pause", "response_done"]
        assert known_rec.chunks == [BODY]
        assert parsers[0] == parsers[2] == (_parser.HEAD_STATE, False, b"")
        assert [conn for conn, _, _ in origin.requests] == [0, 0, 0, 0]
    else:  # the connection is gone: the next round opens another one
        expected = ["response_start", action]
        if event == "response_body":
            expected.insert(1, "response_body")
        if action == "close":
            expected.append("error")
            assert isinstance(known_rec.error, ConnectError)
        assert known_rec.events == expected
        assert [conn for conn, _, _ in origin.requests] == [0, 1, 1, 2]
    for s in (seen[1], seen[3]):
        assert s.recorder.events == ["response_start", "response_body", "response_done"]
        assert bytes(s.recorder.body) == BODY


# -- limits --------------------------------------------------------------------------------------


def test_max_known_responses_0_turns_learning_off(
    harness: Harness, scripted: MakeServer, parsed: list[bytes]
) -> None:
    origin = Origin(scripted, fixed(WHOLE))
    client = harness.client(max_known_responses=0)
    seen = run_rounds(harness, client, origin, parsed, ["/"] * 4)
    assert parsed == [WHOLE] * 4
    assert client._known_responses == {}
    assert _parser._HEADS.hits == 3  # the heads were repeats: only the client declined them
    assert [bytes(s.recorder.body) for s in seen] == [BODY] * 4
    assert origin.accepts == 1


def test_max_known_responses_0_on_a_subclass(
    harness: Harness, scripted: MakeServer, parsed: list[bytes]
) -> None:
    class Forgetful(HttpClient):
        max_known_responses = 0

    origin = Origin(scripted, fixed(WHOLE))
    client = Forgetful(harness.loop)
    harness.clients.append(client)
    seen = run_rounds(harness, client, origin, parsed, ["/"] * 4)
    assert parsed == [WHOLE] * 4
    assert client._known_responses == {}
    assert [bytes(s.recorder.body) for s in seen] == [BODY] * 4


def test_the_known_response_settings_are_read_when_the_client_is_made(harness: Harness) -> None:
    """A later change to the class does not reach a client made before it (a change on the
    client does: see test_max_known_responses_0_on_a_live_client_stops_using_what_was_learnt)."""

    class Tuned(HttpClient):
        max_known_responses = 3
        max_known_response_size = 100

    client = Tuned(harness.loop)
    harness.clients.append(client)
    Tuned.max_known_responses = 0
    Tuned.max_known_response_size = 1
    assert (client.max_known_responses, client.max_known_response_size) == (3, 100)
    later = Tuned(harness.loop)
    harness.clients.append(later)
    assert (later.max_known_responses, later.max_known_response_size) == (0, 1)


def test_a_full_table_is_emptied_and_never_holds_more_than_its_limit(
    harness: Harness, scripted: MakeServer, parsed: list[bytes]
) -> None:
    names = [b"a", b"b", b"c"]
    heads = {
        name: b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-Name: %s\r\n\r\n" % name for name in names
    }
    origin = Origin(scripted, lambda method, path, number: Reply([heads[path[1:]] + path[1:]]))
    client = harness.client(max_known_responses=2)
    paths = [f"/{name.decode()}" for name in names for _ in range(3)]
    seen = run_rounds(harness, client, origin, parsed, paths)

    a, b, c = (heads[name] + name for name in names)
    # each head's third sighting was known (c's too, after the table was emptied for it)
    assert parsed == [a, a, b, b, c, c]
    assert [s.table_at_done for s in seen] == [0, 1, 1, 1, 2, 2, 2, 1, 1]
    assert list(client._known_responses) == [heads[b"c"]]
    assert [bytes(s.recorder.body) for s in seen] == [name for name in names for _ in range(3)]
    assert [s.recorder.header(b"x-name") for s in seen] == [
        [name] for name in names for _ in range(3)
    ]
    assert_table_consistent(client)
    assert origin.accepts == 1


def test_a_read_longer_than_max_known_response_size_is_not_learnt(
    harness: Harness, scripted: MakeServer, parsed: list[bytes]
) -> None:
    origin = Origin(scripted, fixed(WHOLE))
    client = harness.client(max_known_response_size=len(WHOLE) - 1)
    seen = run_rounds(harness, client, origin, parsed, ["/"] * 4)
    assert parsed == [WHOLE] * 4
    assert client._known_responses == {}
    assert [bytes(s.recorder.body) for s in seen] == [BODY] * 4


def test_a_known_read_longer_than_max_known_response_size_is_not_looked_up(
    harness: Harness, scripted: MakeServer, parsed: list[bytes]
) -> None:
    origin = Origin(scripted, fixed(WHOLE))
    client = harness.client(max_known_response_size=len(WHOLE))  # (just enough)

    def lower(recorder: Recorder, number: int) -> None:
        if number == 3:  # (set before the fourth request: the table is not touched)
            client.max_known_response_size = len(WHOLE) - 1

    seen = run_rounds(harness, client, origin, parsed, ["/"] * 5, setup=lower)
    assert [s.parses_at_start for s in seen] == [1, 2, 2, 3, 4]  # the third was known
    assert list(client._known_responses) == [HEAD]  # still there, not used
    assert [bytes(s.recorder.body) for s in seen] == [BODY] * 5


def test_the_parser_body_limit_applies_on_the_fast_path(
    harness: Harness,
    scripted: MakeServer,
    parsed: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    origin = Origin(scripted, fixed(WHOLE))
    client = harness.client()
    # (a client that never learns, for the parsed path's behaviour under the same limit)
    reference = harness.client(max_known_responses=0)

    def limit(recorder: Recorder, number: int) -> None:
        if number == 2:  # learnt by now: from here on, bodies over 4 bytes are refused
            monkeypatch.setattr(HttpParser, "max_body_size", len(BODY) - 1)

    seen = run_rounds(harness, client, origin, parsed, ["/"] * 4, setup=limit)
    assert [s.parses_at_start for s in seen] == [1, 2, 2, 2]
    assert [s.recorder.events for s in seen[:2]] == [
        ["response_start", "response_body", "response_done"]
    ] * 2
    refused = run_rounds(harness, reference, origin, parsed, ["/"])
    assert len(parsed) == 3
    for s in [*seen[2:], *refused]:
        assert s.recorder.events == ["response_start", "error"]
        assert isinstance(s.recorder.error, BodyTooLargeError)
        assert bytes(s.recorder.body) == b""
    assert repr(seen[2].recorder.error) == repr(refused[0].recorder.error)
    # each refusal closed its connection
    assert [conn for conn, _, _ in origin.requests] == [0, 0, 0, 1, 2]


# -- the table is per client ---------------------------------------------------------------------


def test_the_table_is_per_client(
    harness: Harness, scripted: MakeServer, parsed: list[bytes]
) -> None:
    origin = Origin(scripted, fixed(WHOLE))
    first = harness.client()
    second = harness.client(max_known_responses=0)
    third = harness.client()
    seen: list[list[Seen]] = []

    seen.append(run_rounds(harness, first, origin, parsed, ["/"] * 3))
    assert len(parsed) == 2
    assert list(first._known_responses) == [HEAD]
    # the second client learns nothing, and does not use the first one's table
    seen.append(run_rounds(harness, second, origin, parsed, ["/"] * 3))
    assert len(parsed) == 5
    assert second._known_responses == {}
    # the third learns on its own: the head is a repeat already (the parser's cache is
    # process-wide), so its first response is learnt, and its second known
    seen.append(run_rounds(harness, third, origin, parsed, ["/"] * 3))
    assert [s.parses_at_start for s in seen[2]] == [6, 6, 6]
    assert [s.table_at_start for s in seen[2]] == [1, 1, 1]
    assert third._known_responses == first._known_responses
    assert third._known_responses is not first._known_responses
    assert third._known_responses[HEAD][2] is not first._known_responses[HEAD][2]
    assert [s.parses_at_start for s in seen[0]] == [1, 2, 2]
    assert [s.parses_at_start for s in seen[1]] == [3, 4, 5]
    for group in seen:
        assert [bytes(s.recorder.body) for s in group] == [BODY] * 3
        assert [s.recorder.headers for s in group] == [FIELDS] * 3
    assert origin.accepts == 3


# -- the application failing ---------------------------------------------------------------------


@pytest.mark.parametrize("event", ["response_start", "response_body", "response_done"])
def test_an_exception_in_a_listener_is_handled_alike_on_both_paths(
    harness: Harness, scripted: MakeServer, parsed: list[bytes], event: str
) -> None:
    reported: list[tuple[type[BaseException], str, str]] = []
    harness.loop.set_exception_handler(
        lambda loop, exc, where: reported.append((type(exc), str(exc), where.split(" ")[0]))
    )
    origin = Origin(scripted, fixed(WHOLE))
    client = harness.client()

    def fail(recorder: Recorder, number: int) -> None:
        def raiser(*args: object) -> None:
            raise RuntimeError(f"the application failed in round {number}")

        if number in (0, 2):
            recorder.exchange.on(event, raiser)

    # (each request a little after the previous one ended: not from the failing listener)
    seen = run_rounds(harness, client, origin, parsed, ["/"] * 4, setup=fail, delay=0.01)

    # round 0 parsed and failed; 1 parsed (learnt); 2 known and failed; 3 known
    parsed_rec, known_rec = rounds_0_and_2_alike(client, seen)
    assert (parsed_rec.status, parsed_rec.headers) == (known_rec.status, known_rec.headers)
    if event == "response_done":  # the response was whole; the connection is lost after it
        assert known_rec.events == ["response_start", "response_body", "response_done"]
    else:  # the connection is aborted under the exchange
        expected = ["response_start", "error"]
        if event == "response_body":
            expected.insert(1, "response_body")
        assert known_rec.events == expected
        assert isinstance(known_rec.error, ConnectError)
    # the exception went to the loop, from the read, and the connection was not used again
    assert reported == [
        (RuntimeError, f"the application failed in round {number}", "fd") for number in (0, 2)
    ]
    assert [conn for conn, _, _ in origin.requests] == [0, 1, 1, 2]
    for s in (seen[1], seen[3]):
        assert s.recorder.events == ["response_start", "response_body", "response_done"]
        assert bytes(s.recorder.body) == BODY
