"""The parser's cache of parsed heads (thor.http._parser._HEADS): a repeated head gives an equal
Head with its own field list; the settings that decide a head's fate are part of the key; errors
are never cached; a stream of heads that never repeat turns the cache off for a while."""

from __future__ import annotations

import pytest

from thor.http import _parser
from thor.http._parser import Head, HttpParser
from thor.http.error import HttpError, TooManyFieldsError


class Owner:
    def __init__(self) -> None:
        self.heads: list[Head] = []

    def input_start(self, head: Head) -> int:
        self.heads.append(head)
        return head.framing

    def input_body(self, chunk: bytes) -> None:
        pass

    def input_end(self, trailers: list[tuple[bytes, bytes]]) -> None:
        pass


pytestmark = pytest.mark.usefixtures("fresh_head_cache")


REQUEST = b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-One: 1\r\nConnection: close\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer:  nginx\r\n\r\nok"


def facts(head: Head) -> dict[str, object]:
    return {name: getattr(head, name) for name in Head.ATTRIBUTES}


@pytest.mark.parametrize(("requests", "message"), [(True, REQUEST), (False, RESPONSE)])
def test_a_repeated_head_is_an_equal_head_with_its_own_field_list(
    requests: bool, message: bytes
) -> None:
    owner = Owner()
    parser = HttpParser(owner, requests)
    parser.feed(message)
    parser.feed(message)
    first, second = owner.heads
    assert _parser._HEADS.hits == 1
    assert facts(first) == facts(second)
    assert first is not second and first.headers is not second.headers
    second.headers.append((b"X-Added", b"by the application"))
    third_owner = Owner()
    HttpParser(third_owner, requests).feed(message)
    assert facts(third_owner.heads[0]) == facts(first)  # the cached copy was not touched


def test_the_cache_keeps_every_attribute_of_a_head_in_its_place() -> None:
    head = Head([(b"Host", b"x")])
    for number, name in enumerate(Head.ATTRIBUTES):
        if name != "headers":
            setattr(head, name, f"value {number}")  # a distinct value for each attribute
    fields = [(b"Host", b"y")]
    copy = _parser._head_from(_parser._head_values(head), fields)
    assert {name: getattr(copy, name) for name in Head.ATTRIBUTES if name != "headers"} == {
        name: getattr(head, name) for name in Head.ATTRIBUTES if name != "headers"
    }
    assert copy.headers is fields
    assert copy.repeated is True and head.repeated is False


def test_the_limits_are_part_of_the_key() -> None:
    HttpParser(Owner(), True).feed(REQUEST)  # cached under the default limits
    strict = HttpParser(Owner(), True)
    strict.max_fields = 2
    with pytest.raises(TooManyFieldsError):
        strict.feed(REQUEST)
    short = HttpParser(Owner(), True)
    short.max_request_line = 10
    with pytest.raises(HttpError):
        short.feed(REQUEST)


def test_requests_and_responses_do_not_share_entries() -> None:
    head = b"HTTP/1.1 200 OK\r\nHost: x\r\n\r\n"
    HttpParser(Owner(), False).feed(head)
    with pytest.raises(HttpError):  # not a request line
        HttpParser(Owner(), True).feed(head)


def test_lenient_parsers_do_not_use_the_cache() -> None:
    lenient = HttpParser(Owner(), True)
    lenient.lenient_obs_fold = True
    lenient.feed(REQUEST)
    lenient.feed(REQUEST)
    assert not _parser._HEADS.entries and _parser._HEADS.hits == 0


def test_errors_are_never_cached() -> None:
    bad = b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"
    for _ in range(3):
        with pytest.raises(HttpError):
            HttpParser(Owner(), True).feed(bad)
    assert not _parser._HEADS.entries


def test_heads_that_never_repeat_turn_the_cache_off_for_a_while() -> None:
    owner = Owner()
    parser = HttpParser(owner, True)
    limit = _parser._HEADS_LIMIT
    for n in range(limit + 1):
        parser.feed(b"GET /%d HTTP/1.1\r\nHost: example.com\r\n\r\n" % n)
    assert _parser._HEADS.skip == _parser._HEADS_PAUSE
    assert len(_parser._HEADS.entries) <= 1
    parser.feed(b"GET /0 HTTP/1.1\r\nHost: example.com\r\n\r\n")  # parsed, not looked up
    assert _parser._HEADS.skip == _parser._HEADS_PAUSE - 1
    assert [h.target for h in owner.heads[-2:]] == [b"/%d" % limit, b"/0"]


def test_a_window_with_enough_hits_keeps_the_cache_on() -> None:
    parser = HttpParser(Owner(), True)
    limit = _parser._HEADS_LIMIT
    for n in range(limit + 1):
        parser.feed(b"GET /%d HTTP/1.1\r\nHost: example.com\r\n\r\n" % n)
        for _ in range(2):
            parser.feed(b"GET /popular HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert _parser._HEADS.skip == 0


def test_large_heads_are_not_cached() -> None:
    filler = b"X-Filler: " + b"a" * _parser._HEADS_MAX_SIZE + b"\r\n"
    big = b"GET / HTTP/1.1\r\nHost: example.com\r\n" + filler + b"\r\n"
    owner = Owner()
    parser = HttpParser(owner, True)
    parser.feed(big)
    parser.feed(big)
    assert len(owner.heads) == 2
    assert not _parser._HEADS.entries and _parser._HEADS.hits == 0
    parser.feed(REQUEST)
    assert len(_parser._HEADS.entries) == 1  # small ones still are
