"""The server's response-head serialiser (thor.http._server_framing.response_head) and its cache
of prepared heads: a repeated head is the same bytes, a new Date makes a new head, and the cache
never lets an invalid head through."""

from __future__ import annotations

import pytest

from thor.http import _server_framing as framing
from thor.http._server_framing import COUNTED, NO_BODY, date_cache, response_head
from thor.http.error import OutputSyntaxError

HEADERS = [(b"Content-Type", b"text/plain"), (b"Content-Length", b"13")]


def test_a_repeated_head_is_served_from_the_cache_with_the_same_bytes() -> None:
    framing._PREPARED.clear()
    first = response_head(b"200", b"OK", list(HEADERS), b"GET", b"1.1", True)
    assert len(framing._PREPARED) == 1
    second = response_head(b"200", b"OK", list(HEADERS), b"GET", b"1.1", True)
    assert second is first  # the prepared entry itself
    head, kind, length, persist = first
    assert head.startswith(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n")
    assert date_cache.line in head
    assert b"Content-Length: 13\r\n" in head
    assert (kind, length, persist) == (COUNTED, 13, True)


def test_what_differs_gets_its_own_head() -> None:
    framing._PREPARED.clear()
    get = response_head(b"200", b"OK", list(HEADERS), b"GET", b"1.1", True)[0]
    head = response_head(b"200", b"OK", list(HEADERS), b"HEAD", b"1.1", True)
    old = response_head(b"200", b"OK", list(HEADERS), b"GET", b"1.0", True)[0]
    closing = response_head(b"200", b"OK", list(HEADERS), b"GET", b"1.1", False)[0]
    assert len({get, old, closing}) == 3
    assert head[0] == get and head[1] == NO_BODY  # HEAD: same head, no body follows
    assert b"Connection: keep-alive\r\n" in old
    assert b"Connection: close\r\n" in closing


def test_a_new_date_makes_a_new_head(monkeypatch: pytest.MonkeyPatch) -> None:
    framing._PREPARED.clear()
    before = response_head(b"200", b"OK", list(HEADERS), b"GET", b"1.1", True)[0]
    monkeypatch.setattr(date_cache, "line", b"Date: Thu, 01 Jan 2037 00:00:00 GMT\r\n")
    after = response_head(b"200", b"OK", list(HEADERS), b"GET", b"1.1", True)[0]
    assert b"Date: Thu, 01 Jan 2037 00:00:00 GMT\r\n" in after
    assert after.replace(date_cache.line, b"") == before.replace(
        before[before.index(b"Date: ") : before.index(b"\r\n", before.index(b"Date: ")) + 2], b""
    )


def test_invalid_heads_are_refused_every_time_never_cached() -> None:
    framing._PREPARED.clear()
    bad = [(b"X-Evil", b"a\r\nSet-Cookie: x=1")]
    for _ in range(2):
        with pytest.raises(OutputSyntaxError):
            response_head(b"200", b"OK", bad, b"GET", b"1.1", True)
    assert not framing._PREPARED


def test_fields_given_as_lists_or_an_iterator_still_serialise() -> None:
    framing._PREPARED.clear()
    as_lists = response_head(b"200", b"OK", [[b"X-A", b"1"]], b"GET", b"1.1", True)  # type: ignore[list-item]
    as_iter = response_head(b"200", b"OK", iter([(b"X-A", b"1")]), b"GET", b"1.1", True)  # type: ignore[arg-type]
    assert as_lists[0] == as_iter[0]
    assert b"X-A: 1\r\n" in as_lists[0]


def test_the_cache_is_bounded() -> None:
    framing._PREPARED.clear()
    for n in range(framing._PREPARED_LIMIT + 10):
        response_head(b"200", b"OK", [(b"X-N", b"%d" % n)], b"GET", b"1.1", True)
    assert len(framing._PREPARED) <= framing._PREPARED_LIMIT
