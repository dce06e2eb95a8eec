"""HttpServer known requests: a plain request head (no body, keep-alive, no Upgrade, not CONNECT)
that the parser's head cache served, arriving alone in one read on a connection with nothing in
progress, is learnt (on its second sighting); from the third, such a read skips the parser and
the exchange is made from what the parser gave before. The fast path must be indistinguishable
from the parsed one: same exchange, same events, same response; heads that are not plain, or
that do not arrive alone, are never learnt; the table is per server and bounded.

The path a request took is seen through the server's own parser class (made per server), whose
``feed`` is wrapped to record what the parser was given: a request served from the table adds
nothing. The process-wide cache of parsed heads is emptied before each test, so that the
"second sighting" is that of the test.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import http_server_support as support
import pytest

from thor.http import _parser
from thor.http._parser import HttpParser
from thor.http.server import HttpServer, HttpServerExchange

if TYPE_CHECKING:
    from http_server_support import Harness, Response


harness = support.harness
RawHeaders = list[tuple[bytes, bytes]]

GET = b"GET /health?probe=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: probe/1.0\r\n\r\n"
GET_FIELDS = [(b"Host", b" example.com"), (b"User-Agent", b" probe/1.0")]
POST_HEAD = b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
CHUNKED_HEAD = b"POST /chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
CLOSE_HEAD = b"GET /once HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
OLD_HEAD = b"GET /old HTTP/1.0\r\nHost: x\r\n\r\n"
UPGRADE_HEAD = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
CONNECT_HEAD = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
PLAIN = b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n"
#: a short pause between sends, so that each arrives in a read of its own (TCP_NODELAY is set)
GAP = 0.03


pytestmark = pytest.mark.usefixtures("fresh_head_cache")


def record_feeds(server: HttpServer) -> list[bytes]:
    """Every piece of input the server's parsers are given, in order (wraps ``feed`` on the
    server's own parser class: other servers are not affected)."""
    fed: list[bytes] = []

    def feed(parser: HttpParser, data: bytes) -> None:
        fed.append(data)
        HttpParser.feed(parser, data)

    setattr(server._parser_class, "feed", feed)  # noqa: B010 - (a method of the class)
    return fed


class App:
    """Answers every request when it is complete (after ``delay`` seconds if set): 405 to
    CONNECT, else 200; body ``uri=<uri> body=<request body>``, prefixed with the exchange's
    number when ``numbered``. Records what each exchange delivered, and the size of the known
    requests table as each exchange began; raises in ``'request_done'`` for the exchange
    numbers in ``fail_on`` (counted from 1)."""

    def __init__(
        self,
        harness: Harness,
        *,
        delay: float = 0.0,
        numbered: bool = False,
        fail_on: tuple[int, ...] = (),
    ) -> None:
        self.harness = harness
        self.delay = delay
        self.numbered = numbered
        self.fail_on = fail_on
        self.records: list[support.Record] = []
        self.start_headers: list[RawHeaders] = []  # a copy of req_hdrs at 'request_start'
        self.same_list: list[bool] = []  # request_start's headers is exchange.req_hdrs
        self.table_sizes: list[int] = []
        #: the connection's input_header_length and input_transfer_length at 'request_done'
        self.lengths: list[tuple[int, int]] = []
        self.mutate = False  # change each exchange's req_hdrs in place after request_start

    def __call__(self, exchange: HttpServerExchange) -> None:
        number = len(self.records) + 1
        record = support.Record(exchange)
        self.records.append(record)
        server = exchange.http_conn.server
        self.table_sizes.append(len(server._known_requests))

        def start(method: bytes, uri: bytes, headers: RawHeaders) -> None:
            self.start_headers.append(list(headers))
            self.same_list.append(headers is exchange.req_hdrs)
            if self.mutate:
                headers.append((b"X-Added", b"by the application"))
                headers[0] = (b"Host", b" changed")

        def answer() -> None:
            status, phrase = (b"200", b"OK")
            if exchange.method == b"CONNECT":
                status, phrase = (b"405", b"Not Allowed")
            body = b"uri=" + exchange.uri + b" body=" + bytes(record.body)
            if self.numbered:
                body = b"#%d " % number + body
            exchange.response_start(
                status,
                phrase,
                [(b"Content-Type", b"text/plain"), (b"Content-Length", b"%d" % len(body))],
            )
            exchange.response_body(body)
            exchange.response_done([])

        def done(trailers: RawHeaders) -> None:
            conn = exchange.http_conn
            self.lengths.append((conn.input_header_length, conn.input_transfer_length))
            if number in self.fail_on:
                raise RuntimeError(f"the application failed on exchange {number}")
            if self.delay:
                self.harness.later(self.delay, answer)
            else:
                answer()

        exchange.on("request_start", start)
        exchange.on("request_done", done)


def connect(harness: Harness, server: HttpServer) -> socket.socket:
    sock = harness.connect(server)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send_pieces(sock: socket.socket, pieces: list[bytes]) -> None:
    """Send each piece with one sendall, a little apart (each arrives in a read of its own)."""
    for index, piece in enumerate(pieces):
        if index:
            time.sleep(GAP)
        sock.sendall(piece)


def normalised(response: Response) -> bytes:
    """The response's bytes without its Date field (the one thing allowed to differ)."""
    lines = [
        line for line in response.raw_head.split(b"\r\n") if not line.lower().startswith(b"date:")
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + response.body


def serve_one_by_one(
    harness: Harness,
    server: HttpServer,
    heads: list[bytes],
    method: bytes = b"GET",
) -> list[Response]:
    """Send the heads one by one on one connection, each after the previous response."""

    def client() -> list[Response]:
        sock = connect(harness, server)
        reader = support.ResponseReader(sock)
        responses: list[Response] = []
        for head in heads:
            sock.sendall(head)
            responses.append(reader.read(method))
        return responses

    result: list[Response] = harness.client(client, timeout=5.0)
    return result


def assert_table_consistent(server: HttpServer) -> None:
    """Every known request is the one its bytes say."""
    for key, (method, target, fields, version, keep_alive) in server._known_requests.items():
        line, _, rest = key.partition(b"\r\n")
        assert line == b"%s %s HTTP/%s" % (method, target, version)
        assert rest == b"".join(b"%s:%s\r\n" % field for field in fields) + b"\r\n"
        connection = [
            value.strip().lower() for name, value in fields if name.lower() == b"connection"
        ]
        closes = b"close" in connection or (version == b"1.0" and b"keep-alive" not in connection)
        assert keep_alive is not closes


# -- learning and the fast path -----------------------------------------------------------------


def test_a_plain_get_is_learnt_on_its_second_sighting_and_skips_the_parser_after(
    harness: Harness,
) -> None:
    app = App(harness)
    server = harness.server(app)
    fed = record_feeds(server)
    post = POST_HEAD + b"hello"  # (between the last two: other lengths on the connection)
    responses = serve_one_by_one(harness, server, [GET] * 4 + [post, GET])

    # the parser saw the first two; the third, fourth and sixth were known
    assert fed == [GET, GET, post]
    assert list(server._known_requests) == [GET]
    assert server._known_requests[GET] == (b"GET", b"/health?probe=1", GET_FIELDS, b"1.1", True)
    assert app.table_sizes == [0, 1, 1, 1, 1, 1]  # learnt as the second head was parsed
    assert app.lengths == [(len(GET), 0)] * 4 + [(len(POST_HEAD), 5), (len(GET), 0)]
    gets = [record for record in app.records if record.method == b"GET"]
    assert len(gets) == 5
    # every exchange alike, whichever path made it
    for record in gets:
        exchange = record.exchange
        assert (exchange.method, exchange.uri, exchange.req_version) == (
            b"GET",
            b"/health?probe=1",
            b"1.1",
        )
        assert exchange.req_hdrs == GET_FIELDS
        assert record.events == ["request_start", "request_done"]
        assert record.trailers == []
        assert exchange.req_complete and exchange.res_complete
    assert app.start_headers[:4] == [GET_FIELDS] * 4
    assert app.same_list == [True] * 6
    assert len({id(record.exchange.http_conn) for record in app.records}) == 1
    # the same bytes on the wire apart from Date
    del responses[4]  # (the POST's)
    assert all(response.status == b"200" for response in responses)
    assert responses[0].body == b"uri=/health?probe=1 body="
    assert len({normalised(response) for response in responses}) == 1
    assert all(len(response.header(b"date")) == 1 for response in responses)
    # the connection is still usable and idle
    conn = app.records[-1].exchange.http_conn
    assert conn.tcp_conn is not None and conn.idle


def test_each_exchange_gets_its_own_field_list(harness: Harness) -> None:
    app = App(harness)
    app.mutate = True  # every exchange's req_hdrs is changed in place by the application
    server = harness.server(app)
    fed = record_feeds(server)
    responses = serve_one_by_one(harness, server, [GET] * 5)

    assert fed == [GET, GET]  # the last three were known
    # each exchange began with the fields as received, not with what the previous one made
    assert app.start_headers == [GET_FIELDS] * 5
    lists = [record.exchange.req_hdrs for record in app.records]
    assert len({id(fields) for fields in lists}) == 5
    changed = [(b"Host", b" changed"), GET_FIELDS[1], (b"X-Added", b"by the application")]
    assert lists == [changed] * 5
    # the table's entry is untouched
    assert server._known_requests[GET] == (b"GET", b"/health?probe=1", GET_FIELDS, b"1.1", True)
    assert len({normalised(response) for response in responses}) == 1


# -- never learnt --------------------------------------------------------------------------------

# name: (the pieces of one round, each a send of its own; responses per round; a new
# connection each round; the method to read responses by; the expected status; the body)
NEVER_LEARNT: dict[str, tuple[list[bytes], int, bool, bytes, bytes, bytes]] = {
    "content-length body": ([POST_HEAD, b"hello"], 1, False, b"POST", b"200", b"hello"),
    "chunked body": (
        [CHUNKED_HEAD, b"5\r\nhello\r\n0\r\n\r\n"],
        1,
        False,
        b"POST",
        b"200",
        b"hello",
    ),
    "declined upgrade": ([UPGRADE_HEAD], 1, False, b"GET", b"200", b""),
    "CONNECT": ([CONNECT_HEAD], 1, True, b"CONNECT", b"405", b""),
    "after an empty line": ([b"\r\n" + PLAIN], 1, False, b"GET", b"200", b""),
    "two pipelined heads": ([PLAIN + PLAIN], 2, False, b"GET", b"200", b""),
    "split over two reads": ([PLAIN[:13], PLAIN[13:]], 1, False, b"GET", b"200", b""),
}


@pytest.mark.parametrize("case", list(NEVER_LEARNT))
def test_requests_that_are_not_plain_or_not_alone_are_never_learnt(
    harness: Harness, case: str
) -> None:
    pieces, per_round, fresh, method, status, body = NEVER_LEARNT[case]
    rounds = 4
    app = App(harness)
    server = harness.server(app)
    fed = record_feeds(server)

    def client() -> list[Response]:
        responses: list[Response] = []
        sock = connect(harness, server)
        reader = support.ResponseReader(sock)
        for index in range(rounds):
            if fresh and index:
                sock.close()
                sock = connect(harness, server)
                reader = support.ResponseReader(sock)
            send_pieces(sock, pieces)
            responses.extend(reader.read(method) for _ in range(per_round))
        return responses

    responses = harness.client(client, timeout=5.0)
    assert server._known_requests == {}
    # the parser was given every byte sent: nothing skipped it
    assert b"".join(fed) == b"".join(pieces) * rounds
    assert len(app.records) == rounds * per_round
    assert [response.status for response in responses] == [status] * (rounds * per_round)
    for record in app.records:
        assert record.events[0] == "request_start" and record.events[-1] == "request_done"
        assert bytes(record.body) == body
    assert len({normalised(response) for response in responses}) == 1
    if fresh:
        assert all(response.header(b"connection") == [b"close"] for response in responses)


@pytest.mark.parametrize("head", [CLOSE_HEAD, OLD_HEAD], ids=["connection close", "HTTP/1.0"])
def test_a_closing_request_is_learnt_and_its_connection_still_closes(
    harness: Harness, head: bytes
) -> None:
    """A request that ends its connection (``Connection: close``, or HTTP/1.0 without
    keep-alive), one per connection as load generators in close mode send them: learnt on
    the second connection, answered without the parser from the third, and each connection is
    closed by the server after its response, whichever path made the exchange."""
    app = App(harness)
    server = harness.server(app)
    fed = record_feeds(server)

    def client() -> list[tuple[Response, bool]]:
        results: list[tuple[Response, bool]] = []
        for _ in range(5):
            sock = connect(harness, server)
            sock.sendall(head)
            response = support.ResponseReader(sock).read(b"GET")
            results.append((response, support.closed_by_peer(sock, 2.0)))
            sock.close()
        return results

    results = harness.client(client, timeout=10.0)
    assert fed == [head, head]  # the last three skipped the parser
    assert list(server._known_requests) == [head]
    assert server._known_requests[head][4] is False  # not keep-alive
    assert_table_consistent(server)
    assert [closed for _, closed in results] == [True] * 5
    responses = [response for response, _ in results]
    assert all(response.header(b"connection") == [b"close"] for response in responses)
    assert len({normalised(response) for response in responses}) == 1
    assert len(app.records) == 5
    for record in app.records:
        assert record.events[0] == "request_start" and record.events[-1] == "request_done"
        assert record.exchange.req_version == head.split(b"\r\n")[0][-3:]


def test_a_known_closing_request_drops_what_follows_it(harness: Harness) -> None:
    """Bytes arriving after a known ``Connection: close`` request (in a later read) are not
    served: the connection closes after the one response."""
    app = App(harness, delay=0.1)  # the next read arrives before the answer
    server = harness.server(app)
    fed = record_feeds(server)

    def client() -> list[bytes]:
        answers: list[bytes] = []
        for index in range(3):
            sock = connect(harness, server)
            sock.sendall(CLOSE_HEAD)
            if index == 2:
                time.sleep(GAP)
                sock.sendall(PLAIN)
            answers.append(support.recv_until_close(sock, 2.0))
            sock.close()
        return answers

    answers = harness.client(client, timeout=10.0)
    assert fed == [CLOSE_HEAD, CLOSE_HEAD]  # the third was known; PLAIN was never parsed
    assert len(app.records) == 3
    assert [answer.count(b"HTTP/1.1 200 OK") for answer in answers] == [1, 1, 1]
    assert b"uri=/plain" not in answers[2]


def test_http_1_0_keep_alive_is_learnt(harness: Harness) -> None:
    head = b"GET /old HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
    app = App(harness)
    server = harness.server(app)
    fed = record_feeds(server)
    responses = serve_one_by_one(harness, server, [head] * 4)

    assert fed == [head, head]
    assert server._known_requests == {
        head: (b"GET", b"/old", [(b"Host", b" x"), (b"Connection", b" keep-alive")], b"1.0", True)
    }
    assert [record.exchange.req_version for record in app.records] == [b"1.0"] * 4
    # parsed (first two) and known (last two) answered alike, and the connection stayed open
    assert len({normalised(response) for response in responses}) == 1
    assert responses[3].header(b"connection") == [b"keep-alive"]
    assert responses[3].body == b"uri=/old body="


def test_head_request_is_learnt_and_its_response_has_no_body(harness: Harness) -> None:
    head = b"HEAD /page HTTP/1.1\r\nHost: x\r\n\r\n"
    app = App(harness)
    server = harness.server(app)
    fed = record_feeds(server)

    def client() -> tuple[list[Response], bytes]:
        sock = connect(harness, server)
        reader = support.ResponseReader(sock)
        responses: list[Response] = []
        for _ in range(4):
            sock.sendall(head)
            responses.append(reader.read(b"HEAD"))
        # a plain GET afterwards: a stray body would come before its response
        sock.sendall(GET)
        responses.append(reader.read())
        return responses, reader.rest(0.1)

    responses, rest = harness.client(client, timeout=5.0)
    assert fed == [head, head, GET]
    assert list(server._known_requests) == [head]
    heads, after = responses[:4], responses[4]
    assert all(response.body == b"" for response in heads)
    assert heads[3].header(b"content-length") == [b"%d" % len(b"uri=/page body=")]
    assert len({normalised(response) for response in heads}) == 1
    assert after.body == b"uri=/health?probe=1 body="
    assert rest == b""
    assert [record.exchange.method for record in app.records] == [b"HEAD"] * 4 + [b"GET"]


# -- limits --------------------------------------------------------------------------------------


def test_max_known_requests_0_turns_learning_off(harness: Harness) -> None:
    app = App(harness)
    server = harness.server(app, max_known_requests=0)
    fed = record_feeds(server)
    responses = serve_one_by_one(harness, server, [GET] * 4)
    assert fed == [GET] * 4
    assert server._known_requests == {}
    assert _parser._HEADS.hits == 3  # the heads were repeats: only the server declined them
    assert len({normalised(response) for response in responses}) == 1


def test_a_full_table_is_emptied_and_never_holds_more_than_its_limit(harness: Harness) -> None:
    heads = [b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % name for name in (b"a", b"b", b"c")]
    app = App(harness)
    server = harness.server(app, max_known_requests=2)
    fed = record_feeds(server)
    sizes: list[int] = []

    def client() -> list[Response]:
        sock = connect(harness, server)
        reader = support.ResponseReader(sock)
        responses: list[Response] = []
        for head in heads:
            for _ in range(3):
                sock.sendall(head)
                responses.append(reader.read())
                sizes.append(len(server._known_requests))  # (a read: the loop is done with it)
        return responses

    responses = harness.client(client, timeout=5.0)
    a, b, c = heads
    # each head's third sighting was known (c's too, after the table was emptied for it)
    assert fed == [a, a, b, b, c, c]
    assert sizes == [0, 1, 1, 1, 2, 2, 2, 1, 1]
    assert max(app.table_sizes) <= 2
    assert list(server._known_requests) == [c]
    assert [response.body for response in responses] == [
        b"uri=/%s body=" % name for name in (b"a", b"b", b"c") for _ in range(3)
    ]


def test_a_head_longer_than_max_known_request_size_is_not_learnt(harness: Harness) -> None:
    app = App(harness)
    server = harness.server(app, max_known_request_size=len(GET) - 1)
    fed = record_feeds(server)
    responses = serve_one_by_one(harness, server, [GET] * 4)
    assert fed == [GET] * 4
    assert server._known_requests == {}
    assert len({normalised(response) for response in responses}) == 1


def test_a_known_head_longer_than_max_known_request_size_is_not_looked_up(
    harness: Harness,
) -> None:
    app = App(harness)
    server = harness.server(app)
    fed = record_feeds(server)
    fed_before: list[list[bytes]] = []
    table_before: list[list[bytes]] = []

    def client() -> list[Response]:
        sock = connect(harness, server)
        reader = support.ResponseReader(sock)
        responses: list[Response] = []
        for _ in range(3):
            sock.sendall(GET)
            responses.append(reader.read())
        fed_before.append(list(fed))
        table_before.append(list(server._known_requests))
        # (set between requests: the loop is waiting for input, and reads it at each lookup)
        server.max_known_request_size = len(GET) - 1
        for _ in range(2):
            sock.sendall(GET)
            responses.append(reader.read())
        return responses

    responses = harness.client(client, timeout=5.0)
    assert fed_before == [[GET, GET]]  # the third was known
    assert table_before == [[GET]]
    assert fed == [GET] * 4  # then parsed again, though still in the table
    assert list(server._known_requests) == [GET]
    assert [response.body for response in responses] == [b"uri=/health?probe=1 body="] * 5


# -- the fast path's conditions and its failures -------------------------------------------------


def test_a_known_head_completing_a_partial_head_is_parsed(harness: Harness) -> None:
    app = App(harness)
    server = harness.server(app)
    fed = record_feeds(server)
    partial = b"GET /k HTTP/1.1\r\nX-Note: "  # the known head ends its field

    def client() -> list[Response]:
        sock = connect(harness, server)
        reader = support.ResponseReader(sock)
        responses: list[Response] = []
        for _ in range(3):
            sock.sendall(GET)
            responses.append(reader.read())
        send_pieces(sock, [partial, GET])  # the parser is not idle when GET arrives
        responses.append(reader.read())
        sock.sendall(GET)
        responses.append(reader.read())
        return responses

    responses = harness.client(client, timeout=5.0)
    assert fed == [GET, GET, partial, GET]
    assert [response.body for response in responses] == [b"uri=/health?probe=1 body="] * 3 + [
        b"uri=/k body=",
        b"uri=/health?probe=1 body=",
    ]
    assert app.records[3].headers == [(b"X-Note", b" GET /health?probe=1 HTTP/1.1"), *GET_FIELDS]
    assert list(server._known_requests) == [GET]


def test_a_known_head_behind_a_pending_response_is_parsed(harness: Harness) -> None:
    app = App(harness, delay=0.1, numbered=True)
    server = harness.server(app)
    fed = record_feeds(server)

    def client() -> list[Response]:
        sock = connect(harness, server)
        reader = support.ResponseReader(sock)
        responses: list[Response] = []
        for _ in range(2):  # learnt
            sock.sendall(GET)
            responses.append(reader.read())
        sock.sendall(GET)  # known, nothing in progress: the fast path, answered 0.1 s later
        time.sleep(GAP)
        sock.sendall(GET)  # known, but the previous response is pending: parsed
        responses.append(reader.read())
        responses.append(reader.read())
        sock.sendall(GET)  # nothing in progress again: the fast path
        responses.append(reader.read())
        return responses

    responses = harness.client(client, timeout=5.0)
    assert fed == [GET, GET, GET]
    assert [response.body for response in responses] == [
        b"#%d uri=/health?probe=1 body=" % number for number in range(1, 6)
    ]
    assert [response.status for response in responses] == [b"200"] * 5
    assert len({normalised(response).split(b"\r\n\r\n")[0] for response in responses}) == 1
    assert [record.events for record in app.records] == [["request_start", "request_done"]] * 5
    assert list(server._known_requests) == [GET]


def test_an_exception_in_request_done_on_the_fast_path_gives_a_500(harness: Harness) -> None:
    # the first exchange (parsed) and the fourth (known) fail in the application
    app = App(harness, fail_on=(1, 4))
    server = harness.server(app)
    fed = record_feeds(server)

    def client() -> list[tuple[Response, bool]]:
        results = []
        for count in (1, 3, 1):
            sock = connect(harness, server)
            reader = support.ResponseReader(sock)
            for _ in range(count):
                sock.sendall(GET)
                results.append((reader.read(), False))
            last = results.pop()[0]
            results.append((last, support.closed_by_peer(sock, 2.0)))
            sock.close()
        return results

    results = harness.client(client, timeout=8.0)
    # exchange 1 parsed (fails); 2 parsed, learnt; 3 known; 4 known (fails); 5 known, new conn
    assert fed == [GET, GET]
    statuses = [response.status for response, _ in results]
    assert statuses == [b"500", b"200", b"200", b"500", b"200"]
    parsed_500, known_500 = results[0][0], results[3][0]
    assert normalised(parsed_500) == normalised(known_500)
    assert known_500.header(b"connection") == [b"close"]
    # each 500 closed its connection (the last one stays open: the client closes it)
    assert [closed for _, closed in results] == [True, False, False, True, False]
    assert results[4][0].body == b"uri=/health?probe=1 body="
    assert list(server._known_requests) == [GET]


def test_the_application_closing_the_connection_in_request_start(harness: Harness) -> None:
    records: list[support.Record] = []

    def handler(exchange: HttpServerExchange) -> None:
        records.append(support.Record(exchange))

        def start(method: bytes, uri: bytes, headers: RawHeaders) -> None:
            exchange.http_conn.close()

        exchange.on("request_start", start)

    server = harness.server(handler)
    fed = record_feeds(server)

    def client() -> list[bytes]:
        answers = []
        for _ in range(3):  # parsed; parsed and learnt; known
            sock = connect(harness, server)
            sock.sendall(GET)
            answers.append(support.recv_until_close(sock, 2.0))
            sock.close()
        return answers

    assert harness.client(client, timeout=8.0) == [b""] * 3
    assert fed == [GET, GET]
    assert list(server._known_requests) == [GET]
    # the request never completes, on either path: no 'request_done', an error instead
    assert [record.events for record in records] == [["request_start", "error"]] * 3
    assert [record.exchange.req_complete for record in records] == [False] * 3
    assert not server.connections


def test_the_table_is_per_server(harness: Harness) -> None:
    head = b"GET /three HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-B: 2\r\n\r\n"
    app_a, app_b = App(harness), App(harness)
    server_a = harness.server(app_a)
    server_b = harness.server(app_b, max_fields=2)
    fed_a, fed_b = record_feeds(server_a), record_feeds(server_b)

    def client() -> tuple[list[Response], list[Response]]:
        answers_a = []
        sock = connect(harness, server_a)
        reader = support.ResponseReader(sock)
        for _ in range(3):
            sock.sendall(head)
            answers_a.append(reader.read())
        answers_b = []
        for _ in range(3):
            sock_b = connect(harness, server_b)
            sock_b.sendall(head)
            answers_b.append(support.ResponseReader(sock_b).read())
            sock_b.close()
        sock.sendall(head)  # still known to A
        answers_a.append(reader.read())
        return answers_a, answers_b

    answers_a, answers_b = harness.client(client, timeout=5.0)
    assert [response.status for response in answers_a] == [b"200"] * 4
    assert fed_a == [head, head]
    assert list(server_a._known_requests) == [head]
    assert [response.status for response in answers_b] == [b"431"] * 3
    assert fed_b == [head] * 3
    assert server_b._known_requests == {}
    assert app_b.records == []


# -- input held by the previous request ----------------------------------------------------------


def holding_handler(harness: Harness, hold: str) -> Callable[[HttpServerExchange], None]:
    """Delay the answer to /a (or to the Upgrade request) by 0.1 s, holding the connection's
    input meanwhile: by ``req_body_pause`` (``hold == "app"``) or by an Upgrade awaiting its
    answer (declined with a 200)."""

    def handler(exchange: HttpServerExchange) -> None:
        slow = exchange.uri in (b"/a", b"/u")

        def start(method: bytes, uri: bytes, headers: RawHeaders) -> None:
            if slow and hold == "app":
                exchange.http_conn.req_body_pause(True)

        def answer() -> None:
            body = b"uri=" + exchange.uri
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"%d" % len(body))])
            exchange.response_body(body)
            exchange.response_done([])
            if slow and hold == "app":
                exchange.http_conn.req_body_pause(False)

        def done(trailers: RawHeaders) -> None:
            if slow:
                harness.later(0.1, answer)
            else:
                answer()

        exchange.on("request_start", start)
        exchange.on("request_done", done)

    return handler


HEAD_A = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
HEAD_B = b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
HEAD_U = b"GET /u HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
#: a plain head as long as HEAD_U
HEAD_B_PADDED = b"GET /b HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n" % (
    b"p" * (len(HEAD_U) - len(b"GET /b HTTP/1.1\r\nHost: x\r\nX-Pad: \r\n\r\n"))
)


@pytest.mark.parametrize(
    ("hold", "slow", "other"),
    [("app", HEAD_A, HEAD_B), ("upgrade", HEAD_U, HEAD_B_PADDED)],
)
def test_a_head_parsed_after_held_input_is_not_learnt_under_another_reads_bytes(
    harness: Harness, hold: str, slow: bytes, other: bytes
) -> None:
    # A head that arrives while input is held (the previous request awaits its answer) is
    # parsed when input resumes, not in the read it came in: it must not be learnt under the
    # bytes of the last read parsed (here as long as it, and the head of another request).
    assert len(slow) == len(other) and slow != other
    slow_uri = slow.split(b" ")[1]
    server = harness.server(holding_handler(harness, hold))
    fed = record_feeds(server)

    def client() -> list[Response]:
        sock = connect(harness, server)
        reader = support.ResponseReader(sock)
        sock.sendall(other)  # seen once: in the parser's cache of heads
        responses = [reader.read()]
        sock.sendall(slow)  # answered 0.1 s later; input is held meanwhile
        time.sleep(GAP)
        sock.sendall(other)  # arrives while held: parsed when input resumes
        responses += [reader.read(), reader.read()]
        for _ in range(2):
            sock.sendall(slow)
            responses.append(reader.read())
        return responses

    responses = harness.client(client, timeout=5.0)
    uris = [exchange.uri for exchange in harness.exchanges]
    assert uris == [b"/b", slow_uri, b"/b", slow_uri, slow_uri]
    assert [response.body for response in responses] == [b"uri=" + uri for uri in uris]
    assert_table_consistent(server)
    if hold == "app":  # a plain head: learnt on its second sighting, known on its third
        assert list(server._known_requests) == [slow]
        assert fed.count(slow) == 2
    else:  # an Upgrade: never learnt
        assert server._known_requests == {}
        assert fed.count(slow) == 3
