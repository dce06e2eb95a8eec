"""Properties of the parser (hypothesis), over generated message streams:

- byte-split invariance: any cut of a valid stream of pipelined messages (counted and chunked
  bodies, extensions, trailers, interim responses, leading empty lines) gives the events the
  stream was built to give;
- serialize -> parse round trip: what ``_serializer`` writes parses back to the same start line,
  fields (values as written), body and trailers, and a parsed head serialises to the same bytes;
- robustness: arbitrary bytes, and valid streams with a few bytes changed, fed in arbitrary cuts,
  never raise anything but ``HttpError``, finish promptly, leave the parser in a consistent state
  (events in order, the parser dead exactly after an error) and give the same outcome however
  they are cut.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

import http_vectors as V  # noqa: N812  (the tests' short name for the vector tables)
from http_vectors import Case
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thor.http._parser import CHUNKED, COUNTED, NO_BODY
from thor.http._serializer import encode_chunk, request_head, response_head, trailer_section

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: for the properties whose examples are costlier (streams fed several ways, the serializer)
COSTLY = settings(PROPERTY, max_examples=120)

# -- building blocks -----------------------------------------------------------------------------

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: field-value bytes: VCHAR, obs-text, SP, HTAB (RFC 9110 §5.5)
VALUE_BYTES = [9, 32, *range(0x21, 0x7F), *range(0x80, 0x100)]
#: bytes of an origin-form target after its "/" (VCHAR: a URI is ASCII)
TARGET_BYTES = list(range(0x21, 0x7F))
SPECIAL = {b"content-length", b"transfer-encoding", b"host", b"connection", b"expect", b"upgrade"}

tokens = st.text(alphabet=TCHAR, min_size=1, max_size=10).map(str.encode)
plain_names = tokens.filter(lambda name: name.lower() not in SPECIAL)
values = st.lists(st.sampled_from(VALUE_BYTES), max_size=24).map(bytes)
targets = st.lists(st.sampled_from(TARGET_BYTES), max_size=20).map(lambda t: b"/" + bytes(t))
methods = tokens.filter(lambda m: m != b"CONNECT")
bodies = st.binary(max_size=200)
fields = st.lists(st.tuples(plain_names, values), max_size=6)
trailer_fields = st.lists(st.tuples(tokens, values), max_size=3)
extensions = st.one_of(
    st.just(b""),
    tokens.map(lambda t: b";" + t),
    st.tuples(tokens, tokens).map(lambda nv: b";%s=%s" % nv),
    st.tuples(tokens, tokens).map(lambda nv: b' ; %s="%s; x"' % nv),
)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` cut at ``points`` (any integers: taken modulo the length, sorted)."""
    if not data:
        return [data]
    marks = sorted({p % (len(data) + 1) for p in points})
    edges = [0, *marks, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def bytewise(data: bytes) -> list[bytes]:
    """``data`` one byte at a time (its first 1000 bytes, then the rest at once)."""
    return [data[i : i + 1] for i in range(min(len(data), 1000))] + [data[1000:]]


def field_block(headers: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(name + b":" + value + b"\r\n" for name, value in headers)


@st.composite
def chunked_body(draw: st.DrawFn, body: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """``body`` as chunks (random sizes and extensions), the last chunk and trailers."""
    out = []
    rest = body
    while rest:
        size = draw(st.integers(1, max(1, len(rest))))
        upper = draw(st.booleans())
        out.append((b"%X" if upper else b"%x") % size + draw(extensions) + b"\r\n")
        out.append(rest[:size] + b"\r\n")
        rest = rest[size:]
    trailers = draw(trailer_fields)
    out.append(b"0" + draw(extensions) + b"\r\n" + field_block(trailers) + b"\r\n")
    return b"".join(out), trailers


@st.composite
def request_stream(draw: st.DrawFn) -> tuple[bytes, list[Any]]:
    """Pipelined requests: (bytes, the events they must give)."""
    wire = []
    events: list[Any] = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            wire.append(b"\r\n" * draw(st.integers(1, 2)))  # ignored (RFC 9112 §2.2)
        method, target = draw(methods), draw(targets)
        headers = [(b"Host", b" example.com"), *draw(fields)]
        kind = draw(st.sampled_from(["none", "counted", "chunked"]))
        body = draw(bodies) if kind != "none" else b""
        trailers: list[tuple[bytes, bytes]] = []
        if kind == "counted":
            headers.append((b"Content-Length", b" %d" % len(body)))
            framed = body
        elif kind == "chunked":
            headers.append((b"Transfer-Encoding", b" chunked"))
            framed, trailers = draw(chunked_body(body))
        else:
            framed = b""
        wire.append(method + b" " + target + b" HTTP/1.1\r\n" + field_block(headers) + b"\r\n")
        wire.append(framed)
        events.append(V.H(method=method, target=target, headers=headers))
        if body:
            events.append(V.B(body))
        events.append(V.E(*trailers))
    return b"".join(wire), events


@st.composite
def response_stream(draw: st.DrawFn) -> tuple[bytes, list[Any], bool]:
    """Responses to GET, interim ones included: (bytes, events, whether eof ends the last)."""
    wire = []
    events: list[Any] = []
    count = draw(st.integers(1, 4))
    for index in range(count):
        for _ in range(draw(st.integers(0, 1))):
            status = b"%d" % draw(st.sampled_from([100, 102, 103]))
            headers = draw(fields)
            wire.append(b"HTTP/1.1 " + status + b" X\r\n" + field_block(headers) + b"\r\n")
            events.append(V.H(status=status, headers=headers))
        status = b"%d" % draw(st.sampled_from([200, 201, 204, 206, 304, 404, 500, 503]))
        phrase = draw(values)
        headers = draw(fields)
        kinds = ["counted", "chunked"] + (["close"] if index == count - 1 else [])
        kind = draw(st.sampled_from(kinds))
        body = b"" if status in (b"204", b"304") else draw(bodies)
        trailers: list[tuple[bytes, bytes]] = []
        framed = body
        if kind == "counted":
            headers.append((b"Content-Length", b" %d" % len(body)))
        elif kind == "chunked":
            headers.append((b"Transfer-Encoding", b" chunked"))
            if status not in (b"204", b"304"):
                framed, trailers = draw(chunked_body(body))
        head = b"HTTP/1.1 " + status + b" " + phrase + b"\r\n" + field_block(headers) + b"\r\n"
        wire.append(head + framed)
        events.append(V.H(status=status, phrase=phrase, headers=headers))
        if body:
            events.append(V.B(body))
        events.append(V.E(*trailers))
        if kind == "close":
            return b"".join(wire), events, True
    return b"".join(wire), events, False


# -- (a) byte-split invariance ---------------------------------------------------------------------


@COSTLY
@given(request_stream(), st.lists(st.integers(0, 10_000), max_size=12))
def test_requests_any_split_same_events(stream: tuple[bytes, list[Any]], points: list[int]) -> None:
    data, expected = stream
    case = V.Case("generated", "generated", data, tuple(expected))
    for pieces in ([data], cut(data, points), bytewise(data)):
        outcome = V.run(case, pieces)
        assert outcome.error is None, outcome.error
        assert V.matches(outcome.events, case.events), V.describe(outcome.events)
        assert outcome.parser.idle


@COSTLY
@given(response_stream(), st.lists(st.integers(0, 10_000), max_size=12))
def test_responses_any_split_same_events(
    stream: tuple[bytes, list[Any], bool], points: list[int]
) -> None:
    data, expected, eof = stream
    case = V.Case("generated", "generated", data, tuple(expected), requests=False, eof=eof)
    for pieces in ([data], cut(data, points), bytewise(data)):
        outcome = V.run(case, pieces)
        assert outcome.error is None, outcome.error
        assert V.matches(outcome.events, case.events), V.describe(outcome.events)


# -- (b) serialize -> parse ------------------------------------------------------------------------


def as_parsed(value: bytes) -> bytes:
    """A value as the parser returns it after the serializer wrote it: the serializer puts one
    SP after the colon unless the value is empty or starts with whitespace."""
    return value if not value or value[0] in (9, 32) else b" " + value


@COSTLY
@given(
    method=methods,
    target=targets,
    app_fields=st.lists(st.tuples(plain_names, values), max_size=8),
    body=bodies,
    kind=st.sampled_from(["counted", "chunked"]),
    sizes=st.lists(st.integers(1, 50), max_size=6),
    trailers=trailer_fields,
    version=st.sampled_from([b"1.1", b"1.0"]),
)
def test_request_round_trip(
    *,
    method: bytes,
    target: bytes,
    app_fields: list[tuple[bytes, bytes]],
    body: bytes,
    kind: str,
    sizes: list[int],
    trailers: list[tuple[bytes, bytes]],
    version: bytes,
) -> None:
    headers = [(b"Host", b"example.com"), *app_fields]
    if kind == "chunked" and version == b"1.1":
        headers.append((b"Transfer-Encoding", b"chunked"))
        pieces, rest = [], body
        for size in sizes:
            pieces.append(encode_chunk(rest[:size]))
            rest = rest[size:]
        pieces.append(encode_chunk(rest))
        framed = b"".join(pieces) + trailer_section(trailers)
    else:
        headers.append((b"Content-Length", b"%d" % len(body)))
        framed, trailers = body, []
    head = request_head(method, target, headers, version)
    case = V.Case("rt", "round trip", head + framed)
    outcome = V.run(case, [head + framed])
    assert outcome.error is None, outcome.error
    expected = [(name, as_parsed(value)) for name, value in headers]
    parsed = outcome.events[0][1]
    assert (parsed.method, parsed.target, parsed.version) == (method, target, version)
    assert parsed.headers == expected
    if kind == "chunked" and version == b"1.1":
        assert parsed.framing == CHUNKED
    else:
        assert parsed.framing == (COUNTED if body else NO_BODY)
    rest_events = outcome.events[1:]
    assert rest_events == ([("body", body)] if body else []) + [
        ("end", [(n, as_parsed(v)) for n, v in trailers])
    ]
    # and a parsed head is written back byte for byte (a relay changes nothing)
    assert request_head(parsed.method, parsed.target, parsed.headers, parsed.version) == head


@COSTLY
@given(
    status=st.integers(100, 999).filter(lambda s: s // 100 != 1 and s not in (204, 304)),
    phrase=values,
    app_fields=st.lists(st.tuples(plain_names, values), max_size=8),
    body=bodies,
    kind=st.sampled_from(["counted", "chunked"]),
    trailers=trailer_fields,
)
def test_response_round_trip(
    *,
    status: int,
    phrase: bytes,
    app_fields: list[tuple[bytes, bytes]],
    body: bytes,
    kind: str,
    trailers: list[tuple[bytes, bytes]],
) -> None:
    headers = list(app_fields)
    if kind == "chunked":
        headers.append((b"Transfer-Encoding", b"chunked"))
        framed = encode_chunk(body) + trailer_section(trailers)
    else:
        headers.append((b"Content-Length", b"%d" % len(body)))
        framed, trailers = body, []
    head = response_head(b"%d" % status, phrase, headers)
    outcome = V.run(V.Case("rt", "round trip", head + framed, requests=False), [head + framed])
    assert outcome.error is None, outcome.error
    parsed = outcome.events[0][1]
    assert (parsed.status, parsed.phrase, parsed.version) == (b"%d" % status, phrase, b"1.1")
    assert parsed.headers == [(name, as_parsed(value)) for name, value in headers]
    assert outcome.events[1:] == ([("body", body)] if body else []) + [
        ("end", [(n, as_parsed(v)) for n, v in trailers])
    ]
    assert response_head(parsed.status, parsed.phrase, parsed.headers) == head


#: values as they appear on the wire after the colon: empty, or after some whitespace
wire_values = st.one_of(
    st.just(b""),
    st.tuples(st.sampled_from([b" ", b"\t", b"  ", b" \t"]), values).map(b"".join),
)


@COSTLY
@given(
    method=methods,
    target=targets,
    request_fields=st.lists(st.tuples(plain_names, wire_values), max_size=8),
    response_fields=st.lists(st.tuples(tokens, wire_values), max_size=8),
    status=st.integers(100, 999),
    phrase=values,
)
def test_received_heads_are_relayed_byte_identical(
    *,
    method: bytes,
    target: bytes,
    request_fields: list[tuple[bytes, bytes]],
    response_fields: list[tuple[bytes, bytes]],
    status: int,
    phrase: bytes,
) -> None:
    """A head as a peer wrote it (values with their whitespace) is written back unchanged."""
    wire = b"%s %s HTTP/1.1\r\nHost: example.com\r\n%s\r\n" % (
        method,
        target,
        field_block(request_fields),
    )
    outcome = V.run(V.Case("relay", "relay", wire), [wire])
    assert outcome.error is None, outcome.error
    head = outcome.recorder.events[0][1]
    assert request_head(head.method, head.target, head.headers, head.version) == wire
    response_fields = [f for f in response_fields if f[0].lower() not in SPECIAL]
    wire = b"HTTP/1.1 %d %s\r\n%s\r\n" % (status, phrase, field_block(response_fields))
    outcome = V.run(V.Case("relay", "relay", wire, requests=False), [wire])
    assert outcome.error is None, outcome.error
    head = outcome.recorder.events[0][1]
    assert response_head(head.status, head.phrase, head.headers, head.version) == wire


# -- (c) robustness --------------------------------------------------------------------------------


class HangError(Exception):
    """A parser call took longer than the bound."""


@contextlib.contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Fail (raise Hang) if the block runs longer than ``seconds`` (SIGALRM, main thread)."""

    def alarm(signum: int, frame: FrameType | None) -> None:
        raise HangError(f"parser still busy after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


SETTINGS = st.fixed_dictionaries(
    {},
    optional={
        "lenient_bare_lf": st.booleans(),
        "lenient_obs_fold": st.booleans(),
        "max_request_line": st.integers(8, 64),
        "max_field_section": st.integers(16, 256),
        "max_fields": st.integers(0, 6),
        "max_chunk_line": st.integers(2, 16),
        "max_body_size": st.integers(0, 64),
    },
)

INTERESTING = b'\r\n\t :;,0aAfF-+\x00\x0b\x0c\x7f\xa0\xff"/'


@st.composite
def mutated(draw: st.DrawFn, requests: bool) -> bytes:
    """A valid stream with a few bytes inserted, deleted or replaced."""
    if requests:
        data = bytearray(draw(request_stream())[0])
    else:
        data = bytearray(draw(response_stream())[0])
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        where = draw(st.integers(0, len(data) - 1))
        what = draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = draw(st.sampled_from(INTERESTING))
        if what == "insert":
            data.insert(where, byte)
        elif what == "delete":
            del data[where]
        else:
            data[where] = byte
    return bytes(data)


def check_consistent(case: Case, outcome: Any) -> None:
    """Events in a legal order, bodies within their Content-Length, the parser dead exactly
    after an error and silent after it."""
    parser = outcome.parser
    assert parser.dead == (outcome.error is not None)
    in_message = stopped = False
    length: int | None = None
    got = 0
    for kind, value in outcome.events:
        assert not stopped, "an event after a 101"
        if kind == "head":
            assert not in_message
            if not case.requests and value.status[:1] == b"1":
                stopped = value.status == b"101"
                continue
            in_message = True
            length, got = value.content_length, 0
            if value.framing == COUNTED:
                assert length
        elif kind == "body":
            assert in_message and value
            got += len(value)
            assert length is None or got <= length
        else:
            assert in_message
            assert isinstance(value, list)
            in_message = False
    if outcome.error is not None:
        before = len(outcome.recorder.events)
        parser.feed(case.data)
        parser.eof()
        assert len(outcome.recorder.events) == before


def robust(case: Case, points: list[int]) -> None:
    outcomes = []
    for pieces in ([case.data], cut(case.data, points)):
        with time_bound(5.0):
            started = time.perf_counter()
            outcome = V.run(case, pieces)  # anything but HttpError propagates and fails
            elapsed = time.perf_counter() - started
        assert elapsed < 2.0, f"{elapsed:.2f} s for {len(case.data)} bytes"
        check_consistent(case, outcome)
        outcomes.append(outcome)
    whole, split = outcomes
    assert type(whole.error) is type(split.error), (whole.error, split.error)
    assert V.describe(whole.events) == V.describe(split.events)


@PROPERTY
@given(st.binary(max_size=400), st.booleans(), SETTINGS, st.lists(st.integers(0, 500)))
def test_arbitrary_bytes(
    data: bytes, requests: bool, options: dict[str, Any], points: list[int]
) -> None:
    robust(V.Case("fuzz", "arbitrary", data, requests=requests, settings=options), points)


@PROPERTY
@given(st.data(), st.booleans(), SETTINGS, st.lists(st.integers(0, 2000), max_size=10))
def test_mutated_streams(
    draw: st.DataObject, requests: bool, options: dict[str, Any], points: list[int]
) -> None:
    data = draw.draw(mutated(requests))
    robust(V.Case("mutant", "mutated", data, requests=requests, settings=options), points)


FRAGMENTS = [
    b"\r",
    b"\n",
    b"\r\n",
    b" ",
    b"\t",
    b":",
    b";",
    b"0",
    b"5",
    b"a",
    b"\x00",
    b"GET / HTTP/1.1",
    b"HTTP/1.1 200 OK",
    b"HTTP/1.1 101 S",
    b"HTTP/1.1 100 C",
    b"Host: x",
    b"Transfer-Encoding: chunked",
    b"Content-Length: 1",
    b"Connection: close",
]


@PROPERTY
@given(
    st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(b"".join),
    st.booleans(),
    SETTINGS,
    st.lists(st.integers(0, 500)),
)
def test_token_soup(
    data: bytes, requests: bool, options: dict[str, Any], points: list[int]
) -> None:
    """Streams of HTTP-ish fragments reach deeper states than random bytes."""
    robust(V.Case("soup", "fragments", data, requests=requests, settings=options), points)
