"""thor.http._parser.HttpParser beyond the vector table: limits detected before a line or section
ends, the hand-over after 101, pause/resume, eof(), framing chosen by the owner, the counters,
and the settings as class attributes."""

from __future__ import annotations

from typing import Any

import http_vectors as V  # noqa: N812  (the tests' short name for the vector tables)
import pytest

from thor.http import _limits
from thor.http._parser import CHUNKED, CLOSE, COUNTED, NO_BODY, Head, HttpParser
from thor.http.error import (
    BodyTooLargeError,
    ChunkSizeError,
    ConnectError,
    FieldSectionTooLargeError,
    HeaderLineEndingError,
    HttpError,
    RequestTargetTooLongError,
)

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
CHUNKED_POST = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


def parser(requests: bool = True, **options: Any) -> tuple[HttpParser, Any]:
    recorder = V.Recorder(requests=requests)
    p = HttpParser(recorder, requests)
    for name, value in options.items():
        setattr(p, name, value)
    return p, recorder


def kinds(recorder: Any) -> list[str]:
    return [kind for kind, _ in recorder.events]


# -- defaults --------------------------------------------------------------------------------------


def test_defaults_are_strict_and_the_documented_limits() -> None:
    assert HttpParser.lenient_bare_lf is False
    assert HttpParser.lenient_obs_fold is False
    assert HttpParser.max_request_line == _limits.DEFAULT_MAX_REQUEST_LINE
    assert HttpParser.max_field_section == _limits.DEFAULT_MAX_FIELD_SECTION
    assert HttpParser.max_fields == _limits.DEFAULT_MAX_FIELDS
    assert HttpParser.max_chunk_line == _limits.DEFAULT_MAX_CHUNK_LINE


def test_settings_are_class_attributes() -> None:
    class Tight(HttpParser):
        max_fields = 1

    recorder = V.Recorder()
    with pytest.raises(HttpError) as info:
        Tight(recorder, True).feed(b"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\n")
    assert info.value.code == "HTTP_TOO_MANY_FIELDS"
    HttpParser(recorder, True).feed(b"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\n")
    assert kinds(recorder) == ["head", "end"]


# -- limits reached before the line or section ends ------------------------------------------------


def test_request_line_too_long_is_seen_before_the_line_ends() -> None:
    """414 as soon as max_request_line + 2 bytes came without a line end: a slow client cannot
    make the server buffer a long line before it is refused."""
    p, recorder = parser()
    limit = HttpParser.max_request_line
    p.feed(b"GET /" + b"a" * (limit - 5))  # limit bytes
    p.feed(b"a")  # limit + 1: a CRLF may still come
    with pytest.raises(RequestTargetTooLongError):
        p.feed(b"a")  # limit + 2, no line end: too long, whatever comes next
    assert recorder.events == []
    assert p.dead


def test_request_line_at_the_limit_is_not_refused_early() -> None:
    p, recorder = parser(max_request_line=20)
    line = b"GET /" + b"a" * 6 + b" HTTP/1.1"
    assert len(line) == 20
    p.feed(line + b"\r")
    p.feed(b"\nHost: x\r\n\r\n")
    assert kinds(recorder) == ["head", "end"]


def test_field_section_too_large_is_seen_before_it_ends() -> None:
    p, recorder = parser()
    p.feed(b"GET / HTTP/1.1\r\nHost: x\r\nX: ")
    with pytest.raises(FieldSectionTooLargeError) as info:
        for _ in range(100):
            p.feed(b"v" * 1024)
    assert info.value.server_status[0] == b"431"
    assert recorder.events == []


def test_trailer_section_too_large_is_seen_before_it_ends() -> None:
    p, recorder = parser(max_field_section=200)
    p.feed(CHUNKED_POST + b"0\r\nT: ")
    with pytest.raises(FieldSectionTooLargeError):
        for _ in range(50):
            p.feed(b"v" * 10)
    assert kinds(recorder) == ["head"]


def test_chunk_size_line_too_long_is_seen_before_it_ends() -> None:
    p, _ = parser()
    p.feed(CHUNKED_POST + b"5;ext=")
    with pytest.raises(ChunkSizeError):
        for _ in range(10):
            p.feed(b"e" * 1000)


def test_bare_lf_is_seen_before_the_head_ends() -> None:
    p, _ = parser()
    with pytest.raises(HeaderLineEndingError):
        p.feed(b"GET / HTTP/1.1\nHost: x")


def test_the_earliest_evidence_decides_the_error() -> None:
    """A head that is too large and has a bare LF early: the LF, whatever the cuts."""
    data = b"GET / HTTP/1.1\r\nA: b\nC: " + b"v" * 100
    for pieces in ([data], [data[:20], data[20:]], [data[i : i + 1] for i in range(len(data))]):
        p, _ = parser(max_field_section=64)
        with pytest.raises(HeaderLineEndingError):
            for piece in pieces:
                p.feed(piece)


def test_body_too_large_is_refused_before_the_request_is_delivered() -> None:
    p, recorder = parser(max_body_size=10)
    with pytest.raises(BodyTooLargeError) as info:
        p.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
    assert info.value.server_status[0] == b"413"
    assert recorder.events == []


def test_chunked_body_too_large_while_streaming() -> None:
    p, recorder = parser(max_body_size=10)
    p.feed(CHUNKED_POST + b"6\r\nabcdef\r\n")
    with pytest.raises(BodyTooLargeError):
        p.feed(b"5\r\n")  # refused at the size line, before the data
    assert V.joined(recorder.events)[1:] == [("body", b"abcdef")]


def test_response_body_cap_applies_to_the_framing_the_owner_chose() -> None:
    """A response to HEAD announces a length but has no body: no 413 for it."""
    recorder = V.Recorder(method=b"HEAD", requests=False)
    p = HttpParser(recorder, False)
    p.max_body_size = 5
    p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    assert kinds(recorder) == ["head", "end"]
    p = HttpParser(V.Recorder(requests=False), False)
    p.max_body_size = 5
    with pytest.raises(BodyTooLargeError):
        p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")


# -- 101 and the hand-over -------------------------------------------------------------------------


SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


@pytest.mark.parametrize("point", [0, 1, len(SWITCH) - 1, len(SWITCH), len(SWITCH) + 3])
def test_after_101_the_rest_is_handed_over(point: int) -> None:
    rest = b"\x81\x05hello" + GET
    data = SWITCH + rest
    p, recorder = parser(requests=False)
    p.feed(data[:point])
    p.feed(data[point:])
    p.feed(b"more")
    assert [h.status for k, h in recorder.events if k == "head"] == [b"101"]
    assert not p.idle
    assert p.take_buffered() == rest + b"more"
    assert p.take_buffered() == b""


def test_resume_after_101_parses_http_again() -> None:
    p, recorder = parser(requests=False)
    p.feed(SWITCH + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert kinds(recorder) == ["head"]
    p.resume()
    assert kinds(recorder) == ["head", "head", "end"]


# -- pause / resume --------------------------------------------------------------------------------


class PausingOwner(V.Recorder):
    """Pauses the parser at every end of message (as a server does between pipelined requests)."""

    parser: HttpParser

    def input_end(self, trailers: list[tuple[bytes, bytes]]) -> None:
        super().input_end(trailers)
        self.parser.pause()


def test_pause_keeps_pipelined_requests_until_resume() -> None:
    owner = PausingOwner()
    p = owner.parser = HttpParser(owner, True)
    p.feed(GET + GET + b"GET /3 HTTP/1.1\r\nHo")
    assert kinds(owner) == ["head", "end"]
    p.feed(b"st: x\r\n\r\n")  # still paused: kept
    assert kinds(owner) == ["head", "end"]
    p.resume()
    assert kinds(owner) == ["head", "end"] * 2
    p.resume()
    assert kinds(owner) == ["head", "end"] * 3
    assert [h.target for k, h in owner.events if k == "head"] == [b"/", b"/", b"/3"]
    p.resume()
    assert p.idle


def test_pause_in_the_middle_of_a_body() -> None:
    class Owner(V.Recorder):
        def input_body(self, chunk: bytes) -> None:
            super().input_body(chunk)
            p.pause()

    owner = Owner()
    p = HttpParser(owner, True)
    p.feed(CHUNKED_POST + b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert V.joined(owner.events)[1:] == [("body", b"abc")]
    p.resume()
    assert V.joined(owner.events)[1:] == [("body", b"abcde")]
    p.resume()
    assert V.joined(owner.events)[1:] == [("body", b"abcde"), ("end", [])]


# -- eof -------------------------------------------------------------------------------------------


def test_eof_between_messages_is_quiet() -> None:
    p, recorder = parser()
    p.eof()
    p.feed(GET + b"\r\n")
    p.eof()
    p.eof()
    assert kinds(recorder) == ["head", "end"]
    assert not p.dead


def test_eof_ends_a_read_until_close_body_once() -> None:
    p, recorder = parser(requests=False)
    p.feed(b"HTTP/1.0 200 OK\r\n\r\nabc")
    assert not p.idle
    p.eof()
    p.eof()
    assert V.joined(recorder.events)[1:] == [("body", b"abc"), ("end", [])]


@pytest.mark.parametrize(
    "data",
    [b"G", b"GET / HTTP/1.1\r\n", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\na"],
)
def test_eof_in_the_middle_of_a_message(data: bytes) -> None:
    p, _ = parser()
    p.feed(data)
    with pytest.raises(ConnectError):
        p.eof()
    assert p.dead


# -- framing chosen by the owner -------------------------------------------------------------------


def test_the_owner_decides_the_framing() -> None:
    """The parser proposes, the owner decides: here a response to HEAD, then one to GET."""

    methods = [b"HEAD", b"GET"]

    class Owner(V.Recorder):
        def input_start(self, head: Head) -> int:
            self.events.append(("head", head))
            return NO_BODY if methods.pop(0) == b"HEAD" else head.framing

    owner = Owner(requests=False)
    p = HttpParser(owner, False)
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
    p.feed(response + response + b"abc")
    heads = [h for k, h in owner.events if k == "head"]
    assert [h.framing for h in heads] == [COUNTED, COUNTED]
    assert V.joined(owner.events)[2:] == [("head", heads[1]), ("body", b"abc"), ("end", [])]


def test_proposed_framings() -> None:
    cases = [
        (True, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", NO_BODY),
        (True, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", NO_BODY),
        (True, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n", COUNTED),
        (True, CHUNKED_POST, CHUNKED),
        (False, b"HTTP/1.1 200 OK\r\n\r\n", CLOSE),
        (False, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", NO_BODY),
    ]
    for requests, data, framing in cases:
        p, recorder = parser(requests=requests)
        p.feed(data)
        assert recorder.events[0][1].framing == framing, data


def test_an_owner_error_kills_the_parser() -> None:
    class Owner(V.Recorder):
        def input_start(self, head: Head) -> int:
            raise HttpError("no")

    p = HttpParser(Owner(), True)
    with pytest.raises(HttpError):
        p.feed(GET + GET)
    assert p.dead
    p.feed(GET)


# -- counters and body hand-off ------------------------------------------------------------------


def test_header_and_transfer_lengths() -> None:
    p, _ = parser()
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"
    p.feed(b"\r\n" + head + b"abc")
    assert p.header_length == len(head)
    assert p.transfer_length == 3
    body = b"3;e=1\r\nabc\r\n0\r\nT: 1\r\n\r\n"
    p.feed(CHUNKED_POST + body)
    assert p.header_length == len(CHUNKED_POST)
    assert p.transfer_length == len(body)


def test_a_body_read_whole_is_handed_on_without_a_copy() -> None:
    p, recorder = parser()
    p.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n")
    piece = b"x" * 100000
    p.feed(piece)
    assert recorder.events[-1][1] is piece


def test_head_repr() -> None:
    p, recorder = parser()
    p.feed(GET)
    assert repr(recorder.events[0][1]) == "<Head 'GET /' HTTP/1.1 fields=1>"
    p, recorder = parser(requests=False)
    p.feed(b"HTTP/1.0 404 Not Found\r\n\r\n")
    assert repr(recorder.events[0][1]) == "<Head '404 Not Found' HTTP/1.0 fields=0>"


# -- known_body (a client's known response: the owner recognised the head) -----------------------

RESPONSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"


@pytest.mark.parametrize("pieces", [[b"hello"], [b"he", b"llo"], [b"", b"hello"]])
def test_known_body_delivers_the_body_and_ends_the_message(pieces: list[bytes]) -> None:
    p, recorder = parser(requests=False)
    p.header_length = len(RESPONSE_HEAD)
    p.known_body(5, pieces[0])
    for piece in pieces[1:]:
        p.feed(piece)
    assert V.joined(recorder.events) == [("body", b"hello"), ("end", [])]
    assert p.transfer_length == 5
    assert p.idle
    before = len(recorder.events)
    p.feed(RESPONSE_HEAD + b"again")  # and the next response is parsed as usual
    assert kinds(recorder)[before:] == ["head", "body", "end"]
    assert recorder.events[before + 1] == ("body", b"again")


def test_known_body_on_a_paused_parser_is_kept_until_resume() -> None:
    p, recorder = parser(requests=False)
    p.pause()
    p.known_body(5, b"hello")
    assert recorder.events == []
    p.resume()
    assert recorder.events == [("body", b"hello"), ("end", [])]
    assert p.idle


def test_known_body_over_max_body_size_raises_and_kills_the_parser() -> None:
    p, recorder = parser(requests=False, max_body_size=4)
    with pytest.raises(BodyTooLargeError):
        p.known_body(5, b"hello")
    p.feed(RESPONSE_HEAD + b"hello")
    assert recorder.events == []


def test_known_body_whose_owner_raises_an_http_error_leaves_the_parser_dead() -> None:
    class Refusing(V.Recorder):
        def input_body(self, chunk: bytes) -> None:
            raise BodyTooLargeError("the owner's own limit")

    owner = Refusing(requests=False)
    p = HttpParser(owner, False)
    with pytest.raises(BodyTooLargeError):
        p.known_body(5, b"hello")
    p.feed(RESPONSE_HEAD + b"hello")  # as after feed raised: nothing more is parsed
    assert owner.events == []
