"""The parser's cache of parsed heads (thor.http._parser._HEADS): a repeated head gives an equal
Head with its own field list; the settings that decide a head's fate are part of the key; errors
are never cached; a stream of heads that never repeat turns the cache off for a while."""

from __future__ import annotations

from collections.abc import Iterator

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


# -- the validation caches (field names, methods, Host values) ------------------------------------


@pytest.fixture
def saved_validation_caches() -> Iterator[None]:
    """The validation caches are process-wide: the test may empty them; restore them after."""
    from thor.http import _abnf

    saved = (dict(_abnf.FIELD_NAME_CACHE), dict(_parser._METHOD_CACHE), dict(_parser._HOST_CACHE))
    yield
    for cache, contents in zip(
        (_abnf.FIELD_NAME_CACHE, _parser._METHOD_CACHE, _parser._HOST_CACHE), saved, strict=True
    ):
        cache.clear()
        cache.update(contents)


@pytest.mark.usefixtures("saved_validation_caches")
def test_long_names_methods_and_hosts_from_a_peer_are_validated_but_not_cached() -> None:
    """A peer's made-up field names, methods and Host values of kilobytes were kept for the
    life of the process (up to 4096 names: hundreds of MiB); only short ones are cached now."""
    from thor.http import _abnf

    long_name = b"X-" + b"n" * 25_000
    long_method = b"M" * 8_000
    long_host = b"h" * 25_000 + b".example"
    owner = Owner()
    parser = HttpParser(owner, True)
    parser.feed(
        long_method
        + b" / HTTP/1.1\r\nHost: "
        + long_host
        + b"\r\n"
        + long_name
        + b": 1\r\nX-Short: 2\r\n\r\n"
    )
    assert owner.heads[0].headers[1][0] == long_name  # parsed as ever
    assert long_name not in _abnf.FIELD_NAME_CACHE
    assert b"X-Short" in _abnf.FIELD_NAME_CACHE
    assert long_method not in _parser._METHOD_CACHE
    assert long_host not in _parser._HOST_CACHE


@pytest.mark.usefixtures("saved_validation_caches")
def test_a_full_validation_cache_is_emptied_and_fills_again() -> None:
    """Once full, a cache kept its first entries for ever and took no new name; now it is
    emptied, so the names in use get in again."""
    from thor.http import _abnf

    _abnf.FIELD_NAME_CACHE.clear()
    for number in range(_abnf._NAME_CACHE_LIMIT):
        assert _abnf.field_name_lower(b"X-%d" % number) is not None
    assert len(_abnf.FIELD_NAME_CACHE) == _abnf._NAME_CACHE_LIMIT
    parser = HttpParser(Owner(), True)
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX-New-Name: 1\r\n\r\n")
    assert _abnf.FIELD_NAME_CACHE.get(b"X-New-Name") == b"x-new-name"
    assert len(_abnf.FIELD_NAME_CACHE) < _abnf._NAME_CACHE_LIMIT
    for number in range(_parser._CACHE_LIMIT + 1):
        HttpParser(Owner(), True).feed(b"M%d / HTTP/1.1\r\nHost: h%d\r\n\r\n" % (number, number))
    assert b"M%d" % _parser._CACHE_LIMIT in _parser._METHOD_CACHE
    assert b"h%d" % _parser._CACHE_LIMIT in _parser._HOST_CACHE
    assert len(_parser._METHOD_CACHE) <= _parser._CACHE_LIMIT
    assert len(_parser._HOST_CACHE) <= _parser._CACHE_LIMIT
