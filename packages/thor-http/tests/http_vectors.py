"""HTTP/1.1 parser test vectors: messages as bytes, with the events or the error each must give.

Each case is data: the bytes on the wire, which side parses them (``requests=True``: a server
reading requests; False: a client reading responses), the parser settings that differ from the
defaults, and either the events expected or the error. Every case carries a one-line reason.

Events are written as ``H(**facts)`` (a head: only the ``Head`` attributes named are checked),
``B(bytes)`` (body bytes: consecutive body events of one message are joined, since how a body is
cut depends on how the input was cut) and ``E(*trailers)`` (end of message). An error case names
the exact ``HttpError`` subclass; ``ERROR_TABLE`` gives each class's ``code`` and the status a
server answers with, and the runner checks both.

The runner (test_http_parser_vectors.py) feeds every case whole, one byte at a time and cut in
two at every position, and requires the same outcome each time. This file also holds the small
harness shared by the parser tests: a recording owner that frames responses as a client does.

Loaded by path (pytest runs with --import-mode=importlib): see ``load_vectors`` in the tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from thor.http._parser import CHUNKED, CLOSE, COUNTED, NO_BODY, Head, HttpParser
from thor.http.error import (
    BareCRError,
    BodyTooLargeError,
    ChunkSizeError,
    ChunkTerminatorError,
    ConnectError,
    DuplicateCLError,
    FieldSectionTooLargeError,
    HeaderLineEndingError,
    HeaderNameError,
    HeaderNoColonError,
    HeaderSpaceError,
    HeaderValueError,
    HostRequiredError,
    HttpError,
    HttpVersionError,
    InvalidHostError,
    MalformedCLError,
    ObsoleteFoldError,
    RequestLineError,
    RequestTargetTooLongError,
    RequestTransferEncodingError,
    StartLineError,
    TooManyFieldsError,
    TopLineSpaceError,
    TransferCodeError,
    TransferEncodingCLError,
)

RawHeaders = list[tuple[bytes, bytes]]
HeadEvent = tuple[str, Mapping[str, Any]]
DataEvent = tuple[str, bytes]
EndEvent = tuple[str, RawHeaders]
Event = HeadEvent | DataEvent | EndEvent

#: every error class the parser raises: (code, the status a server answers with)
ERROR_TABLE: dict[type[HttpError], tuple[str, bytes]] = {
    BareCRError: ("HTTP_BARE_CR", b"400"),
    BodyTooLargeError: ("HTTP_BODY_TOO_LARGE", b"413"),
    ChunkSizeError: ("HTTP_CHUNK_SIZE", b"400"),
    ChunkTerminatorError: ("HTTP_CHUNK_TERMINATOR", b"400"),
    ConnectError: ("HTTP_CONNECT", b"504"),
    DuplicateCLError: ("HTTP_DUPLICATE_CL", b"400"),
    FieldSectionTooLargeError: ("HTTP_FIELDS_TOO_LARGE", b"431"),
    HeaderLineEndingError: ("HTTP_BARE_LF", b"400"),
    HeaderNameError: ("HTTP_HEADER_NAME", b"400"),
    HeaderNoColonError: ("HTTP_HEADER_NO_COLON", b"400"),
    HeaderSpaceError: ("HTTP_HEADER_SPACE", b"400"),
    HeaderValueError: ("HTTP_HEADER_VALUE", b"400"),
    HostRequiredError: ("HTTP_HOST_REQUIRED", b"400"),
    HttpVersionError: ("HTTP_VERSION", b"505"),
    InvalidHostError: ("HTTP_INVALID_HOST", b"400"),
    MalformedCLError: ("HTTP_MALFORMED_CL", b"400"),
    ObsoleteFoldError: ("HTTP_OBS_FOLD", b"400"),
    RequestLineError: ("HTTP_REQUEST_LINE", b"400"),
    RequestTargetTooLongError: ("HTTP_URI_TOO_LONG", b"414"),
    RequestTransferEncodingError: ("HTTP_REQUEST_TE", b"400"),
    StartLineError: ("HTTP_START_LINE", b"400"),
    TooManyFieldsError: ("HTTP_TOO_MANY_FIELDS", b"431"),
    TopLineSpaceError: ("HTTP_TOP_LINE_SPACE", b"400"),
    TransferCodeError: ("HTTP_TRANSFER_CODING", b"501"),
    TransferEncodingCLError: ("HTTP_TE_AND_CL", b"400"),
}


@dataclass(frozen=True)
class Case:
    """One vector: input bytes and the outcome every split of them must give."""

    id: str
    reason: str
    data: bytes
    events: tuple[Event, ...] = ()
    error: type[HttpError] | None = None
    requests: bool = True
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: the method of the request the responses answer (a client frames HEAD responses)
    method: bytes = b"GET"
    #: call ``eof()`` after the last byte (read-until-close bodies, connections lost mid-message)
    eof: bool = False
    #: what ``take_buffered()`` must return at the end (after a 101 the rest is not HTTP)
    rest: bytes | None = None


def H(**facts: Any) -> HeadEvent:
    """A head event; only the ``Head`` attributes given are checked."""
    return ("head", facts)


def B(data: bytes) -> DataEvent:
    """Body bytes of the current message (all of them, joined)."""
    return ("body", data)


def E(*trailers: tuple[bytes, bytes]) -> EndEvent:
    """The end of the current message, with its trailer fields."""
    return ("end", list(trailers))


def ok(id: str, reason: str, data: bytes, *events: Event, **options: Any) -> Case:
    return Case(id, reason, data, events, **options)


def bad(
    id: str,
    reason: str,
    data: bytes,
    error: type[HttpError],
    *events: Event,
    **options: Any,
) -> Case:
    return Case(id, reason, data, events, error=error, **options)


def rq(*fields: bytes, line: bytes = b"GET / HTTP/1.1", body: bytes = b"") -> bytes:
    """A request: start line, field lines (CRLF added to each), blank line, body."""
    return line + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


def rs(*fields: bytes, line: bytes = b"HTTP/1.1 200 OK", body: bytes = b"") -> bytes:
    """A response, as ``rq``."""
    return rq(*fields, line=line, body=body)


HOST = b"Host: example.com"
CHUNKED_TE = b"Transfer-Encoding: chunked"
SMALL_GET = rq(HOST)

# -- valid requests --------------------------------------------------------------------------------

VALID_REQUESTS = [
    ok(
        "origin-form",
        "the usual request: origin-form target, Host, no body",
        rq(HOST, line=b"GET /index.html?q=1&r=%20 HTTP/1.1"),
        H(
            method=b"GET",
            target=b"/index.html?q=1&r=%20",
            version=b"1.1",
            status=b"",
            headers=[(b"Host", b" example.com")],
            host=b"example.com",
            content_length=None,
            chunked=False,
            framing=NO_BODY,
            keep_alive=True,
            expect_continue=False,
            upgrade=False,
            header_length=len(rq(HOST, line=b"GET /index.html?q=1&r=%20 HTTP/1.1")),
        ),
        E(),
    ),
    ok(
        "absolute-form",
        "a request to a proxy: absolute-form target (Host still required and kept)",
        rq(HOST, line=b"GET http://example.com/a/b?c HTTP/1.1"),
        H(target=b"http://example.com/a/b?c", host=b"example.com"),
        E(),
    ),
    ok(
        "absolute-form-query-without-path",
        "an authority followed by a query, no path",
        rq(HOST, line=b"GET http://example.com?q=1 HTTP/1.1"),
        H(target=b"http://example.com?q=1", host=b"example.com"),
        E(),
    ),
    ok(
        "version-1-2",
        "a later HTTP/1 minor version is processed as 1.1 (RFC 9110 §2.5), not a 505",
        rq(HOST, line=b"GET / HTTP/1.2"),
        H(version=b"1.1", keep_alive=True),
        E(),
    ),
    ok(
        "absolute-form-https-uppercase-scheme",
        "the scheme is case-insensitive (RFC 3986 §3.1)",
        rq(b"Host: Example.COM:8443", line=b"GET HTTPS://Example.COM:8443/ HTTP/1.1"),
        H(target=b"HTTPS://Example.COM:8443/", host=b"Example.COM:8443"),
        E(),
    ),
    ok(
        "authority-form-connect",
        "CONNECT takes host:port (RFC 9112 §3.2.3); the tunnel is the owner's business",
        rq(b"Host: example.com:443", line=b"CONNECT example.com:443 HTTP/1.1"),
        H(method=b"CONNECT", target=b"example.com:443", framing=NO_BODY),
        E(),
    ),
    ok(
        "authority-form-connect-ipv6",
        "CONNECT to an IP-literal",
        rq(b"Host: [2001:db8::1]:443", line=b"CONNECT [2001:db8::1]:443 HTTP/1.1"),
        H(target=b"[2001:db8::1]:443", host=b"[2001:db8::1]:443"),
        E(),
    ),
    ok(
        "asterisk-form",
        "OPTIONS * asks about the server as a whole (RFC 9112 §3.2.4)",
        rq(HOST, line=b"OPTIONS * HTTP/1.1"),
        H(method=b"OPTIONS", target=b"*"),
        E(),
    ),
    ok(
        "extension-method",
        "any token is a method, case-sensitively (RFC 9110 §9.1)",
        rq(HOST, line=b"M-SEARCH /x HTTP/1.1") + rq(HOST, line=b"get / HTTP/1.1"),
        H(method=b"M-SEARCH"),
        E(),
        H(method=b"get"),
        E(),
    ),
    ok(
        "http10-no-host",
        "HTTP/1.0 needs no Host and does not persist by default",
        b"GET / HTTP/1.0\r\n\r\n",
        H(version=b"1.0", host=None, keep_alive=False, headers=[]),
        E(),
    ),
    ok(
        "http10-keep-alive",
        "HTTP/1.0 persists when it asks for keep-alive",
        rq(b"Connection: keep-alive", line=b"GET / HTTP/1.0"),
        H(version=b"1.0", keep_alive=True, connection=(b"keep-alive",)),
        E(),
    ),
    ok(
        "http10-keep-alive-and-close",
        "close wins over keep-alive",
        rq(b"Connection: keep-alive, close", line=b"GET / HTTP/1.0"),
        H(keep_alive=False, connection=(b"keep-alive", b"close")),
        E(),
    ),
    ok(
        "http11-close",
        "HTTP/1.1 persists unless Connection: close",
        rq(HOST, b"Connection: close"),
        H(keep_alive=False, connection=(b"close",)),
        E(),
    ),
    ok(
        "http11-close-case-and-list",
        "Connection tokens are case-insensitive list members, across several fields",
        rq(HOST, b"Connection: Keep-Alive ,, ", b"Connection:\tCLOSE"),
        H(keep_alive=False, connection=(b"keep-alive", b"close")),
        E(),
    ),
    ok(
        "expect-100-continue",
        "Expect: 100-continue is reported, the body follows as framed",
        rq(HOST, b"Expect: 100-continue", b"Content-Length: 5", line=b"PUT /f HTTP/1.1") + b"hello",
        H(expect_continue=True, framing=COUNTED, content_length=5),
        B(b"hello"),
        E(),
    ),
    ok(
        "expect-100-continue-case",
        "the expectation is case-insensitive (RFC 9110 §10.1.1)",
        rq(HOST, b"Expect: 100-Continue"),
        H(expect_continue=True),
        E(),
    ),
    ok(
        "expect-other",
        "another expectation is not 100-continue",
        rq(HOST, b"Expect: 100-continue-please"),
        H(expect_continue=False),
        E(),
    ),
    ok(
        "expect-100-continue-http10",
        "a server MUST ignore 100-continue in an HTTP/1.0 request (RFC 9110 §10.1.1)",
        rq(b"Expect: 100-continue", line=b"GET / HTTP/1.0"),
        H(expect_continue=False),
        E(),
    ),
    ok(
        "upgrade",
        "Upgrade counts when Connection lists upgrade (RFC 9110 §7.8)",
        rq(HOST, b"Upgrade: websocket", b"Connection: Upgrade"),
        H(upgrade=True, connection=(b"upgrade",)),
        E(),
    ),
    ok(
        "upgrade-without-connection",
        "Upgrade alone (not in Connection) is ignored: a proxy may have forwarded it blindly",
        rq(HOST, b"Upgrade: websocket"),
        H(upgrade=False),
        E(),
    ),
    ok(
        "connection-upgrade-without-upgrade",
        "Connection: upgrade alone asks for nothing",
        rq(HOST, b"Connection: upgrade"),
        H(upgrade=False),
        E(),
    ),
    ok(
        "chunked-extensions-trailers",
        "chunked body: extensions ignored, hex sizes, trailers delivered as received",
        rq(HOST, CHUNKED_TE, line=b"POST /up HTTP/1.1")
        + b'5;name=value\r\nhello\r\n6;a;b="quoted; str"\r\n world\r\n'
        + b"0;last\r\nChecksum: abc\r\nX-Trailer:\t\xa0v \r\n\r\n",
        H(chunked=True, framing=CHUNKED, content_length=None),
        B(b"hello world"),
        E((b"Checksum", b" abc"), (b"X-Trailer", b"\t\xa0v ")),
    ),
    ok(
        "chunked-hex-case-zeros",
        "hex digits in either case, leading zeros (15 digits is the cap), BWS before ';'",
        rq(HOST, CHUNKED_TE, line=b"POST / HTTP/1.1")
        + b"A\r\n0123456789\r\na \t;x\r\nabcdefghij\r\n000000000000001\r\nz\r\n0\r\n\r\n",
        H(chunked=True),
        B(b"0123456789abcdefghijz"),
        E(),
    ),
    ok(
        "chunked-coding-case-and-empty-members",
        "codings are case-insensitive and empty list members are ignored (RFC 9110 §5.6.1)",
        rq(HOST, b"Transfer-Encoding: , Chunked ,", line=b"POST / HTTP/1.1") + b"0\r\n\r\n",
        H(chunked=True, framing=CHUNKED),
        E(),
    ),
    ok(
        "content-length-zero",
        "Content-Length: 0 is a message without body bytes",
        rq(HOST, b"Content-Length: 0", line=b"POST / HTTP/1.1"),
        H(content_length=0, framing=NO_BODY),
        E(),
    ),
    ok(
        "content-length-ows",
        "OWS around the value is not part of it (the raw value is kept in headers)",
        rq(HOST, b"Content-Length: \t3 \t", line=b"POST / HTTP/1.1") + b"abc",
        H(content_length=3, headers=[(b"Host", b" example.com"), (b"Content-Length", b" \t3 \t")]),
        B(b"abc"),
        E(),
    ),
    ok(
        "content-length-duplicate-identical",
        "identical repeated Content-Length is one length (RFC 9112 §6.3); both lines kept",
        rq(HOST, b"Content-Length: 3", b"content-length: 3", line=b"POST / HTTP/1.1") + b"abc",
        H(
            content_length=3,
            headers=[
                (b"Host", b" example.com"),
                (b"Content-Length", b" 3"),
                (b"content-length", b" 3"),
            ],
        ),
        B(b"abc"),
        E(),
    ),
    ok(
        "content-length-18-digits",
        "the largest length accepted (18 digits): the parser waits for the body",
        rq(HOST, b"Content-Length: 999999999999999999", line=b"POST / HTTP/1.1") + b"abc",
        H(content_length=999999999999999999, framing=COUNTED),
        B(b"abc"),
    ),
    ok(
        "pipelined",
        "several requests in one read are parsed in order, bodies by their own framing",
        rq(HOST, line=b"GET /1 HTTP/1.1")
        + rq(HOST, b"Content-Length: 3", line=b"POST /2 HTTP/1.1")
        + b"abc"
        + rq(HOST, CHUNKED_TE, line=b"POST /3 HTTP/1.1")
        + b"2\r\nde\r\n0\r\nT: 1\r\n\r\n"
        + rq(HOST, line=b"HEAD /4 HTTP/1.1"),
        H(target=b"/1"),
        E(),
        H(target=b"/2"),
        B(b"abc"),
        E(),
        H(target=b"/3"),
        B(b"de"),
        E((b"T", b" 1")),
        H(method=b"HEAD", target=b"/4"),
        E(),
    ),
    ok(
        "leading-empty-lines",
        "empty lines (CRLF) before a request line are ignored (RFC 9112 §2.2)",
        b"\r\n\r\n" + SMALL_GET + b"\r\n" + rq(HOST, line=b"GET /2 HTTP/1.1"),
        H(target=b"/"),
        E(),
        H(target=b"/2"),
        E(),
    ),
    ok(
        "only-empty-lines",
        "empty lines alone are no message",
        b"\r\n\r\n\r\n",
        eof=True,
    ),
    ok(
        "values-as-received",
        "values keep their bytes: OWS around them, HTAB and SP inside, obs-text, NBSP (\\xa0)",
        rq(HOST, b"X-A:  two  spaces ", b"X-B:\ta\tb", b"X-C: caf\xe9 \x80\xff", b"X-D: \xa0v\xa0"),
        H(
            headers=[
                (b"Host", b" example.com"),
                (b"X-A", b"  two  spaces "),
                (b"X-B", b"\ta\tb"),
                (b"X-C", b" caf\xe9 \x80\xff"),
                (b"X-D", b" \xa0v\xa0"),
            ]
        ),
        E(),
    ),
    ok(
        "empty-values",
        "an empty field value is valid",
        rq(HOST, b"X-Empty:", b"X-Space: "),
        H(headers=[(b"Host", b" example.com"), (b"X-Empty", b""), (b"X-Space", b" ")]),
        E(),
    ),
    ok(
        "field-name-token-chars",
        "a field name is any token (RFC 9110 §5.6.2); its case is kept",
        rq(HOST, b"!#$%&'*+-.^_`|~09azAZ: v"),
        H(headers=[(b"Host", b" example.com"), (b"!#$%&'*+-.^_`|~09azAZ", b" v")]),
        E(),
    ),
    ok(
        "host-empty",
        "an empty Host is valid when the target has no authority (RFC 9110 §7.2)",
        rq(b"Host:"),
        H(host=b""),
        E(),
    ),
    ok(
        "host-ip-literal-port",
        "Host may be an IP-literal with a port",
        rq(b"Host: [::1]:8080"),
        H(host=b"[::1]:8080"),
        E(),
    ),
    ok(
        "host-ipv4-empty-port",
        "port = *DIGIT, so an empty port is valid (RFC 3986 §3.2.3)",
        rq(b"Host: 127.0.0.1:"),
        H(host=b"127.0.0.1:"),
        E(),
    ),
    ok(
        "header-length",
        "header_length counts the head as on the wire, leading empty lines excluded",
        b"\r\n" + rq(HOST, b"X: y"),
        H(header_length=len(rq(HOST, b"X: y"))),
        E(),
    ),
]

# -- valid requests under non-default settings (limits exactly reached, leniencies) --------------

VALID_REQUESTS += [
    ok(
        "request-line-at-limit",
        "a request line of exactly max_request_line bytes is accepted",
        rq(HOST, line=b"GET /" + b"a" * 20 + b" HTTP/1.1"),
        H(target=b"/" + b"a" * 20),
        E(),
        settings={"max_request_line": 34},
    ),
    ok(
        "request-line-at-default-limit",
        "the default limit, reached exactly, whatever the split",
        rq(HOST, line=b"GET /" + b"a" * (8192 - 14) + b" HTTP/1.1"),
        H(method=b"GET"),
        E(),
    ),
    ok(
        "field-section-at-limit",
        "a head of exactly max_field_section bytes is accepted",
        rq(HOST, b"X: " + b"v" * 9),
        H(),
        E(),
        settings={"max_field_section": len(rq(HOST, b"X: " + b"v" * 9))},
    ),
    ok(
        "fields-at-limit",
        "exactly max_fields field lines are accepted",
        rq(HOST, b"A: 1", b"B: 2"),
        H(),
        E(),
        settings={"max_fields": 3},
    ),
    ok(
        "body-at-limit-counted",
        "a Content-Length equal to max_body_size is accepted",
        rq(HOST, b"Content-Length: 4", line=b"POST / HTTP/1.1") + b"abcd",
        H(),
        B(b"abcd"),
        E(),
        settings={"max_body_size": 4},
    ),
    ok(
        "body-at-limit-chunked",
        "chunks adding up to max_body_size are accepted",
        rq(HOST, CHUNKED_TE, line=b"POST / HTTP/1.1") + b"2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n",
        H(),
        B(b"abcd"),
        E(),
        settings={"max_body_size": 4},
    ),
    ok(
        "chunk-line-at-limit",
        "a chunk-size line of exactly max_chunk_line bytes (CRLF included) is accepted",
        rq(HOST, CHUNKED_TE, line=b"POST / HTTP/1.1") + b"1;" + b"e" * 10 + b"\r\nx\r\n0\r\n\r\n",
        H(),
        B(b"x"),
        E(),
        settings={"max_chunk_line": 14},
    ),
    ok(
        "lenient-bare-lf-everywhere",
        "lenient_bare_lf: LF alone ends head lines, chunk lines, chunk data and trailers",
        b"\nPOST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n"
        b"3\nabc\n0\nT: v\n\n"
        b"GET /2 HTTP/1.1\r\nHost: x\n\r\n"
        b"GET /3 HTTP/1.1\nHost: x\r\n\n",
        H(headers=[(b"Host", b" x"), (b"Transfer-Encoding", b" chunked")]),
        B(b"abc"),
        E((b"T", b" v")),
        H(target=b"/2", headers=[(b"Host", b" x")]),
        E(),
        H(target=b"/3", headers=[(b"Host", b" x")]),
        E(),
        settings={"lenient_bare_lf": True},
    ),
    ok(
        "lenient-bare-lf-last-chunk",
        "lenient_bare_lf: the message ends on a final LF alone",
        rq(HOST, CHUNKED_TE, line=b"POST / HTTP/1.1") + b"1\r\nz\n0\r\n\n",
        H(),
        B(b"z"),
        E(),
        settings={"lenient_bare_lf": True},
    ),
    ok(
        "lenient-obs-fold",
        "lenient_obs_fold: continuation lines are joined with one SP (RFC 9112 §5.2)",
        rq(HOST, b"X-Long: a ", b"   b", b"\tc", b"Y: d"),
        H(headers=[(b"Host", b" example.com"), (b"X-Long", b" a b c"), (b"Y", b" d")]),
        E(),
        settings={"lenient_obs_fold": True},
    ),
]

# -- valid responses -------------------------------------------------------------------------------

VALID_RESPONSES = [
    ok(
        "response-counted",
        "a response framed by Content-Length",
        rs(b"Content-Length: 5", b"Server: test") + b"hello",
        H(
            status=b"200",
            phrase=b"OK",
            version=b"1.1",
            method=b"",
            target=b"",
            content_length=5,
            framing=COUNTED,
            keep_alive=True,
        ),
        B(b"hello"),
        E(),
        requests=False,
    ),
    ok(
        "response-phrase-bytes",
        "a reason phrase may hold SP, HTAB and obs-text",
        rs(b"Content-Length: 0", line=b"HTTP/1.1 404 Not\tFound \xe9t\xe9"),
        H(status=b"404", phrase=b"Not\tFound \xe9t\xe9"),
        E(),
        requests=False,
    ),
    ok(
        "response-empty-phrase",
        "the reason phrase may be empty, and its SP missing",
        rs(b"Content-Length: 0", line=b"HTTP/1.1 200 ")
        + rs(b"Content-Length: 0", line=b"HTTP/1.1 201"),
        H(status=b"200", phrase=b""),
        E(),
        H(status=b"201", phrase=b""),
        E(),
        requests=False,
    ),
    ok(
        "response-interim-then-final",
        "1xx responses are interim: a head only, then the final response (RFC 9110 §15.2)",
        rs(line=b"HTTP/1.1 100 Continue")
        + rs(b"Link: </a.css>; rel=preload", line=b"HTTP/1.1 103 Early Hints")
        + rs(b"Content-Length: 2")
        + b"ok",
        H(status=b"100", phrase=b"Continue"),
        H(status=b"103", headers=[(b"Link", b" </a.css>; rel=preload")]),
        H(status=b"200"),
        B(b"ok"),
        E(),
        requests=False,
    ),
    ok(
        "response-101-stops",
        "after 101 the bytes are the new protocol's: the parser stops and keeps them",
        rs(b"Upgrade: websocket", b"Connection: Upgrade", line=b"HTTP/1.1 101 Switching Protocols")
        + b"\x81\x05hello"
        + SMALL_GET,
        H(status=b"101", upgrade=True),
        requests=False,
        rest=b"\x81\x05hello" + SMALL_GET,
    ),
    ok(
        "response-to-head",
        "a response to HEAD has no body whatever its fields say (the owner frames it)",
        rs(b"Content-Length: 1000") + rs(CHUNKED_TE) + rs(),
        H(content_length=1000, framing=COUNTED),
        E(),
        H(framing=CHUNKED),
        E(),
        H(framing=CLOSE),
        E(),
        requests=False,
        method=b"HEAD",
    ),
    ok(
        "response-204-304",
        "204 and 304 have no body (RFC 9112 §6.3); the next response follows at once",
        rs(line=b"HTTP/1.1 204 No Content")
        + rs(b"Content-Length: 100", line=b"HTTP/1.1 304 Not Modified")
        + rs(b"Content-Length: 1")
        + b"x",
        H(status=b"204", framing=CLOSE),
        E(),
        H(status=b"304", content_length=100),
        E(),
        H(status=b"200"),
        B(b"x"),
        E(),
        requests=False,
    ),
    ok(
        "response-read-until-close",
        "no Content-Length nor Transfer-Encoding: the body ends when the connection does",
        rs(b"Server: x") + b"hello\r\n\r\nworld",
        H(framing=CLOSE, content_length=None),
        B(b"hello\r\n\r\nworld"),
        E(),
        requests=False,
        eof=True,
    ),
    ok(
        "response-version-1-9",
        "a later HTTP/1 minor version is processed as 1.1 (RFC 9110 §2.5)",
        rs(b"Content-Length: 2", line=b"HTTP/1.9 200 OK", body=b"ok"),
        H(version=b"1.1", keep_alive=True, framing=COUNTED),
        B(b"ok"),
        E(),
        requests=False,
    ),
    ok(
        "response-http10-until-close",
        "an HTTP/1.0 response without length, read until close",
        rs(line=b"HTTP/1.0 200 OK") + b"abc",
        H(version=b"1.0", keep_alive=False, framing=CLOSE),
        B(b"abc"),
        E(),
        requests=False,
        eof=True,
    ),
    ok(
        "response-chunked-trailers",
        "a chunked response with trailers",
        rs(CHUNKED_TE, b"Trailer: Digest") + b"3\r\nabc\r\n0\r\nDigest: sha-256=x\r\n\r\n",
        H(chunked=True, framing=CHUNKED),
        B(b"abc"),
        E((b"Digest", b" sha-256=x")),
        requests=False,
    ),
    ok(
        "response-http10-chunked",
        "Transfer-Encoding in HTTP/1.0 is read, but the connection is closed after (RFC 9112 §6.1)",
        rs(CHUNKED_TE, b"Connection: keep-alive", line=b"HTTP/1.0 200 OK") + b"0\r\n\r\n",
        H(chunked=True, keep_alive=False),
        E(),
        requests=False,
    ),
    ok(
        "response-close",
        "Connection: close on a response",
        rs(b"Content-Length: 0", b"Connection: close"),
        H(keep_alive=False),
        E(),
        requests=False,
    ),
    ok(
        "response-no-host-needed",
        "responses have no Host rule",
        rs(b"Content-Length: 0", b"Host: not a host"),
        H(host=None),
        E(),
        requests=False,
    ),
]

# -- invalid requests: smuggling vectors and malformed input --------------------------------------

POST = b"POST / HTTP/1.1"

INVALID_REQUESTS = [
    # framing ambiguity
    bad(
        "cl-and-te",
        "Content-Length with Transfer-Encoding: the classic smuggling vector (RFC 9112 §6.3)",
        rq(HOST, b"Content-Length: 5", CHUNKED_TE, line=POST) + b"0\r\n\r\n",
        TransferEncodingCLError,
    ),
    bad(
        "te-and-cl",
        "the same, other order",
        rq(HOST, CHUNKED_TE, b"Content-Length: 0", line=POST) + b"0\r\n\r\n",
        TransferEncodingCLError,
    ),
    bad(
        "cl-and-empty-te",
        "an empty Transfer-Encoding with Content-Length is still both",
        rq(HOST, b"Content-Length: 0", b"Transfer-Encoding: ", line=POST),
        TransferEncodingCLError,
    ),
    bad(
        "cl-duplicate-differing",
        "two different Content-Lengths: which one frames the body?",
        rq(HOST, b"Content-Length: 5", b"Content-Length: 6", line=POST) + b"hello!",
        DuplicateCLError,
    ),
    bad(
        "cl-duplicate-same-number-other-text",
        "'5' and '05' are not identical values",
        rq(HOST, b"Content-Length: 5", b"Content-Length: 05", line=POST) + b"hello",
        DuplicateCLError,
    ),
    bad(
        "cl-list",
        "a list '5, 5' is malformed, not deduplicated",
        rq(HOST, b"Content-Length: 5, 5", line=POST) + b"hello",
        MalformedCLError,
    ),
    bad(
        "cl-duplicate-second-malformed",
        "a malformed second Content-Length is malformed, not a duplicate",
        rq(HOST, b"Content-Length: 5", b"Content-Length: 5x", line=POST) + b"hello",
        MalformedCLError,
    ),
    bad(
        "cl-plus",
        "int() accepts '+5'; the grammar is 1*DIGIT",
        rq(HOST, b"Content-Length: +5", line=POST) + b"hello",
        MalformedCLError,
    ),
    bad(
        "cl-minus",
        "a negative length",
        rq(HOST, b"Content-Length: -1", line=POST),
        MalformedCLError,
    ),
    bad(
        "cl-underscore",
        "int() accepts '1_0'",
        rq(HOST, b"Content-Length: 1_0", line=POST) + b"0123456789",
        MalformedCLError,
    ),
    bad(
        "cl-hex",
        "int(x, 0) accepts '0x5'",
        rq(HOST, b"Content-Length: 0x5", line=POST) + b"hello",
        MalformedCLError,
    ),
    bad(
        "cl-inner-space",
        "whitespace inside the number",
        rq(HOST, b"Content-Length: 1 0", line=POST) + b"0123456789",
        MalformedCLError,
    ),
    bad(
        "cl-arabic-indic",
        "int() accepts non-ASCII digits ('\\u0665' is ARABIC-INDIC DIGIT FIVE, here UTF-8)",
        rq(HOST, b"Content-Length: \xd9\xa5", line=POST) + b"hello",
        MalformedCLError,
    ),
    bad(
        "cl-nbsp",
        "str.strip() eats NBSP; OWS is only SP and HTAB",
        rq(HOST, b"Content-Length: 5\xa0", line=POST) + b"hello",
        MalformedCLError,
    ),
    bad(
        "cl-empty",
        "an empty Content-Length",
        rq(HOST, b"Content-Length: ", line=POST),
        MalformedCLError,
    ),
    bad(
        "cl-overlong",
        "more than 18 digits (leading zeros too) is refused, not converted",
        rq(HOST, b"Content-Length: 0000000000000000005", line=POST) + b"hello",
        MalformedCLError,
    ),
    bad(
        "cl-vt",
        "bytes.strip() eats VT: a VT in a value is a forbidden control byte",
        rq(HOST, b"Content-Length: 5\x0b", line=POST) + b"hello",
        HeaderValueError,
    ),
    bad(
        "cl-ff",
        "bytes.split() splits on FF: forbidden control byte",
        rq(HOST, b"Content-Length:\x0c5", line=POST) + b"hello",
        HeaderValueError,
    ),
    bad(
        "te-not-chunked-last",
        "a request whose last coding is not chunked has no knowable length (RFC 9112 §6.3)",
        rq(HOST, b"Transfer-Encoding: chunked, gzip", line=POST),
        RequestTransferEncodingError,
    ),
    bad(
        "te-gzip-only",
        "a request body coded gzip without chunked",
        rq(HOST, b"Transfer-Encoding: gzip", line=POST),
        RequestTransferEncodingError,
    ),
    bad(
        "te-identity",
        "identity is no longer a transfer coding",
        rq(HOST, b"Transfer-Encoding: identity", line=POST),
        RequestTransferEncodingError,
    ),
    bad(
        "te-chunked-twice",
        "chunked applied twice (RFC 9112 §6.1)",
        rq(HOST, b"Transfer-Encoding: chunked, chunked", line=POST) + b"0\r\n\r\n",
        RequestTransferEncodingError,
    ),
    bad(
        "te-chunked-twice-two-fields",
        "chunked twice across two fields",
        rq(HOST, CHUNKED_TE, CHUNKED_TE, line=POST) + b"0\r\n\r\n",
        RequestTransferEncodingError,
    ),
    bad(
        "te-chunked-with-parameter",
        "'chunked;q=1' is not chunked",
        rq(HOST, b"Transfer-Encoding: chunked;q=1", line=POST),
        RequestTransferEncodingError,
    ),
    bad(
        "te-unknown-coding",
        "a coding we do not implement before chunked: 501 (RFC 9112 §6.1)",
        rq(HOST, b"Transfer-Encoding: gzip, chunked", line=POST) + b"0\r\n\r\n",
        TransferCodeError,
    ),
    bad(
        "te-unknown-coding-x",
        "an unknown coding name",
        rq(HOST, b"Transfer-Encoding: x-custom, chunked", line=POST) + b"0\r\n\r\n",
        TransferCodeError,
    ),
    bad(
        "te-http10",
        "Transfer-Encoding in an HTTP/1.0 request: framing is faulty (RFC 9112 §6.1)",
        rq(CHUNKED_TE, line=b"POST / HTTP/1.0") + b"0\r\n\r\n",
        RequestTransferEncodingError,
    ),
    bad(
        "te-empty",
        "an empty Transfer-Encoding",
        rq(HOST, b"Transfer-Encoding: ", line=POST),
        TransferCodeError,
    ),
    bad(
        "te-empty-list",
        "a Transfer-Encoding of empty list members only",
        rq(HOST, b"Transfer-Encoding: , ,", line=POST),
        TransferCodeError,
    ),
    # field syntax
    bad(
        "obs-fold",
        "obs-fold is rejected by default (RFC 9112 §5.2)",
        rq(HOST, b"X: a", b" b"),
        ObsoleteFoldError,
    ),
    bad(
        "obs-fold-tab",
        "obs-fold with HTAB",
        rq(HOST, b"X: a", b"\tb"),
        ObsoleteFoldError,
    ),
    bad(
        "obs-fold-looks-like-field",
        "a folded line that contains a colon is still a continuation",
        rq(HOST, b"X: a", b" Content-Length: 5", line=POST) + b"hello",
        ObsoleteFoldError,
    ),
    bad(
        "first-field-whitespace",
        "a first field line starting with whitespace (RFC 9112 §2.2)",
        rq(b" Host: example.com"),
        TopLineSpaceError,
    ),
    bad(
        "first-field-whitespace-lenient-fold",
        "nothing to fold into: still rejected with lenient_obs_fold",
        rq(b"\tHost: example.com"),
        TopLineSpaceError,
        settings={"lenient_obs_fold": True},
    ),
    bad(
        "space-before-colon",
        "whitespace between name and colon (RFC 9112 §5.1)",
        rq(b"Host : example.com"),
        HeaderSpaceError,
    ),
    bad(
        "tab-before-colon",
        "HTAB between name and colon",
        rq(HOST, b"Content-Length\t: 5", line=POST) + b"hello",
        HeaderSpaceError,
    ),
    bad(
        "bare-cr-in-value",
        "a CR not followed by LF: splitlines() would make two fields of it",
        rq(HOST, b"X: a\rContent-Length: 5", line=POST) + b"hello",
        BareCRError,
    ),
    bad(
        "bare-cr-end-of-line",
        "CR CR LF",
        rq(HOST + b"\r"),
        BareCRError,
    ),
    bad(
        "bare-cr-request-line",
        "a bare CR in the request line",
        rq(HOST, line=b"GET /\r HTTP/1.1"),
        BareCRError,
    ),
    bad(
        "bare-lf-request-line",
        "LF alone ends the request line",
        b"GET / HTTP/1.1\nHost: x\r\n\r\n",
        HeaderLineEndingError,
    ),
    bad(
        "bare-lf-field",
        "LF alone ends a field line",
        b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
        HeaderLineEndingError,
    ),
    bad(
        "bare-lf-head-end",
        "LF LF ends the head",
        b"GET / HTTP/1.1\r\nHost: x\n\n",
        HeaderLineEndingError,
    ),
    bad(
        "bare-lf-empty-line-end",
        "CRLF then LF alone",
        b"GET / HTTP/1.1\r\nHost: x\r\n\n",
        HeaderLineEndingError,
    ),
    bad(
        "bare-lf-leading-empty-line",
        "LF alone as an empty line before the request line",
        b"\n" + SMALL_GET,
        HeaderLineEndingError,
    ),
    bad(
        "bare-lf-everywhere",
        "a message with LF line endings only",
        b"GET / HTTP/1.1\nHost: x\n\n",
        HeaderLineEndingError,
    ),
    bad(
        "nul-in-value",
        "NUL in a field value (RFC 9110 §5.5)",
        rq(HOST, b"X: a\x00b"),
        HeaderValueError,
    ),
    bad(
        "ctl-01-in-value",
        "a control byte in a value",
        rq(HOST, b"X: \x01"),
        HeaderValueError,
    ),
    bad(
        "ctl-1f-in-value",
        "a control byte in a value",
        rq(HOST, b"X: a\x1f"),
        HeaderValueError,
    ),
    bad(
        "vt-in-value",
        "VT (\\x0b) is whitespace to bytes.strip() but not to HTTP",
        rq(HOST, b"X: \x0ba"),
        HeaderValueError,
    ),
    bad(
        "ff-in-value",
        "FF (\\x0c) likewise",
        rq(HOST, b"X: a\x0c"),
        HeaderValueError,
    ),
    bad(
        "del-in-value",
        "DEL is not VCHAR",
        rq(HOST, b"X: a\x7f"),
        HeaderValueError,
    ),
    bad(
        "nul-in-name",
        "a control byte anywhere in the head is caught by the same scan",
        rq(HOST, b"X\x00Y: a"),
        HeaderValueError,
    ),
    bad(
        "nul-in-request-line",
        "NUL in the request target",
        rq(HOST, line=b"GET /\x00 HTTP/1.1"),
        HeaderValueError,
    ),
    bad(
        "name-separator",
        "'@' is not a tchar",
        rq(HOST, b"X@Y: a"),
        HeaderNameError,
    ),
    bad(
        "name-slash",
        "'/' is not a tchar",
        rq(HOST, b"X/Y: a"),
        HeaderNameError,
    ),
    bad(
        "name-parenthesis",
        "'(' is not a tchar",
        rq(HOST, b"X(: a"),
        HeaderNameError,
    ),
    bad(
        "name-quote",
        "'\"' is not a tchar",
        rq(HOST, b'"X": a'),
        HeaderNameError,
    ),
    bad(
        "name-obs-text",
        "obs-text is allowed in values, not in names",
        rq(HOST, b"X\xe9: a"),
        HeaderNameError,
    ),
    bad(
        "name-nbsp",
        "NBSP before the colon is not whitespace: it is an invalid name byte",
        rq(HOST, b"Content-Length\xa0: 5", line=POST) + b"hello",
        HeaderNameError,
    ),
    bad(
        "name-inner-space",
        "a space inside a name",
        rq(HOST, b"Content Length: 5", line=POST) + b"hello",
        HeaderNameError,
    ),
    bad(
        "name-empty",
        "a field line starting with the colon",
        rq(HOST, b": a"),
        HeaderNameError,
    ),
    bad(
        "no-colon",
        "a field line without a colon",
        rq(HOST, b"X-No-Colon"),
        HeaderNoColonError,
    ),
    bad(
        "no-colon-known-name",
        "a well-known name without its colon",
        rq(b"Host"),
        HeaderNoColonError,
    ),
    # Host
    bad(
        "host-missing",
        "HTTP/1.1 requires Host (RFC 9112 §3.2)",
        rq(b"Accept: */*"),
        HostRequiredError,
    ),
    bad(
        "host-missing-absolute-form",
        "Host is required with an absolute-form target too",
        rq(line=b"GET http://example.com/ HTTP/1.1"),
        HostRequiredError,
    ),
    bad(
        "host-twice",
        "two Host fields (RFC 9110 §7.2)",
        rq(HOST, HOST),
        InvalidHostError,
    ),
    bad(
        "host-twice-http10",
        "two Host fields in HTTP/1.0 too",
        rq(HOST, b"host: other.example", line=b"GET / HTTP/1.0"),
        InvalidHostError,
    ),
    bad(
        "host-list",
        "a comma list is not a host",
        rq(b"Host: a.example, b.example"),
        InvalidHostError,
    ),
    bad(
        "host-space",
        "a space inside the host",
        rq(b"Host: exa mple.com"),
        InvalidHostError,
    ),
    bad(
        "host-userinfo",
        "userinfo is not allowed in Host",
        rq(b"Host: user@example.com"),
        InvalidHostError,
    ),
    bad(
        "host-path",
        "a path is not part of Host",
        rq(b"Host: example.com/path"),
        InvalidHostError,
    ),
    bad(
        "host-bad-port",
        "the port is digits",
        rq(b"Host: example.com:http"),
        InvalidHostError,
    ),
    bad(
        "host-unclosed-literal",
        "an IP-literal without its ']'",
        rq(b"Host: [::1"),
        InvalidHostError,
    ),
    bad(
        "host-obs-text",
        "non-ASCII in Host (an IDN must arrive as A-labels)",
        rq(b"Host: caf\xc3\xa9.example"),
        InvalidHostError,
    ),
    # request line
    bad(
        "version-2",
        "HTTP/2.0 is a version this parser does not speak: 505",
        rq(HOST, line=b"GET / HTTP/2.0"),
        HttpVersionError,
    ),
    bad(
        "target-non-ascii",
        "a URI is ASCII (RFC 3986 §2): bytes over 0x7F in the target are refused",
        rq(HOST, line=b"GET /caf\xc3\xa9 HTTP/1.0"),
        RequestLineError,
    ),
    bad(
        "target-non-ascii-fast-path",
        "the same, in an origin-form HTTP/1.1 request (the parser's common case)",
        rq(HOST, line=b"GET /\x80\xff HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "absolute-form-host-non-ascii",
        "a proxy would take 'ex\\xa0ample.com' for the host",
        rq(HOST, line=b"GET http://ex\xa0ample.com/ HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "version-0-9-style",
        "an HTTP/0.9 request (no version): 505",
        b"GET /\r\n\r\n",
        HttpVersionError,
    ),
    bad(
        "version-trailing-garbage",
        "'HTTP/1.1x' is not an HTTP-version",
        rq(HOST, line=b"GET / HTTP/1.1x"),
        RequestLineError,
    ),
    bad(
        "version-lowercase",
        "HTTP-name is case-sensitive (RFC 9112 §2.3)",
        rq(HOST, line=b"GET / http/1.1"),
        RequestLineError,
    ),
    bad(
        "version-two-digits",
        "one digit each side of the dot",
        rq(HOST, line=b"GET / HTTP/10.1"),
        RequestLineError,
    ),
    bad(
        "version-no-minor",
        "HTTP/1 is not a version",
        rq(HOST, line=b"GET / HTTP/1"),
        RequestLineError,
    ),
    bad(
        "method-separator",
        "a method is a token",
        rq(HOST, line=b"G(T / HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "method-non-ascii",
        "a method is a token (ASCII)",
        rq(HOST, line=b"G\xc3\x89T / HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "method-empty",
        "a request line starting with SP",
        rq(HOST, line=b" / HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "double-space-after-method",
        "exactly one SP between the parts (RFC 9112 §3)",
        rq(HOST, line=b"GET  / HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "double-space-before-version",
        "exactly one SP between the parts",
        rq(HOST, line=b"GET /  HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "trailing-space",
        "nothing after the version",
        rq(HOST, line=b"GET / HTTP/1.1 "),
        RequestLineError,
    ),
    bad(
        "tab-separator",
        "HTAB is not the separator",
        rq(HOST, line=b"GET\t/ HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "tab-in-target",
        "whitespace inside the target: peers that split on any whitespace see another target",
        rq(HOST, line=b"GET /a\tHTTP/1.1 HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "four-parts",
        "a space inside the target",
        rq(HOST, line=b"GET /a b HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "target-relative",
        "no form of request-target starts like this",
        rq(HOST, line=b"GET index.html HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "target-authority-not-connect",
        "authority-form is only for CONNECT",
        rq(HOST, line=b"GET example.com:80 HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "target-asterisk-not-options",
        "asterisk-form is only for OPTIONS",
        rq(HOST, line=b"GET * HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "target-absolute-ftp",
        "absolute-form with a scheme other than http/https",
        rq(HOST, line=b"GET ftp://example.com/ HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "target-absolute-no-slashes",
        "'http:' without an authority",
        rq(HOST, line=b"GET http:/x HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "target-absolute-empty-host",
        "an http URI without a host is invalid (RFC 9110 §4.2.1)",
        rq(HOST, line=b"GET http:///x HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "target-absolute-port-only",
        "an authority of only a port has no host",
        rq(HOST, line=b"GET http://:80/x HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "target-absolute-userinfo",
        "userinfo in an http(s) URI is an error (RFC 9110 §4.2.4)",
        rq(HOST, line=b"GET http://user:pw@example.com/ HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "connect-no-port",
        "CONNECT needs host:port",
        rq(HOST, line=b"CONNECT example.com HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "connect-empty-port",
        "CONNECT needs a port number",
        rq(HOST, line=b"CONNECT example.com: HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "connect-empty-host",
        "CONNECT needs a host",
        rq(HOST, line=b"CONNECT :443 HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "connect-origin-form",
        "CONNECT takes authority-form only (RFC 9112 §3.2.3)",
        rq(HOST, line=b"CONNECT / HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "connect-absolute-form",
        "CONNECT takes authority-form only",
        rq(HOST, line=b"CONNECT http://example.com:443/ HTTP/1.1"),
        RequestLineError,
    ),
    bad(
        "connect-asterisk",
        "CONNECT takes authority-form only",
        rq(HOST, line=b"CONNECT * HTTP/1.1"),
        RequestLineError,
    ),
    # chunked bodies
    bad(
        "chunk-size-plus",
        "int(x, 16) accepts '+5'",
        rq(HOST, CHUNKED_TE, line=POST) + b"+5\r\nhello\r\n0\r\n\r\n",
        ChunkSizeError,
        H(),
    ),
    bad(
        "chunk-size-0x",
        "int(x, 16) accepts '0x5'",
        rq(HOST, CHUNKED_TE, line=POST) + b"0x5\r\nhello\r\n0\r\n\r\n",
        ChunkSizeError,
        H(),
    ),
    bad(
        "chunk-size-negative",
        "a negative size",
        rq(HOST, CHUNKED_TE, line=POST) + b"-1\r\n",
        ChunkSizeError,
        H(),
    ),
    bad(
        "chunk-size-leading-space",
        "whitespace before the size",
        rq(HOST, CHUNKED_TE, line=POST) + b" 5\r\nhello\r\n0\r\n\r\n",
        ChunkSizeError,
        H(),
    ),
    bad(
        "chunk-size-trailing-space",
        "whitespace after the size without an extension",
        rq(HOST, CHUNKED_TE, line=POST) + b"5 \r\nhello\r\n0\r\n\r\n",
        ChunkSizeError,
        H(),
    ),
    bad(
        "chunk-size-underscore",
        "int(x, 16) accepts '1_0'",
        rq(HOST, CHUNKED_TE, line=POST) + b"1_0\r\n",
        ChunkSizeError,
        H(),
    ),
    bad(
        "chunk-size-16-digits",
        "more than 15 hex digits is refused, not converted (leading zeros too)",
        rq(HOST, CHUNKED_TE, line=POST) + b"0000000000000005\r\nhello\r\n0\r\n\r\n",
        ChunkSizeError,
        H(),
    ),
    bad(
        "chunk-size-huge",
        "a size that overflows 64 bits",
        rq(HOST, CHUNKED_TE, line=POST) + b"ffffffffffffffffff\r\n",
        ChunkSizeError,
        H(),
    ),
    bad(
        "chunk-size-not-hex",
        "a size that is not hex",
        rq(HOST, CHUNKED_TE, line=POST) + b"g\r\n",
        ChunkSizeError,
        H(),
    ),
    bad(
        "chunk-size-empty",
        "an empty chunk-size line",
        rq(HOST, CHUNKED_TE, line=POST) + b"\r\n",
        ChunkSizeError,
        H(),
    ),
    bad(
        "chunk-size-non-ascii-digit",
        "a fullwidth digit (UTF-8) is not hex",
        rq(HOST, CHUNKED_TE, line=POST) + b"\xef\xbc\x95\r\nhello\r\n0\r\n\r\n",
        ChunkSizeError,
        H(),
    ),
    bad(
        "chunk-size-bare-lf",
        "a chunk-size line ending with LF alone",
        rq(HOST, CHUNKED_TE, line=POST) + b"5\nhello\r\n0\r\n\r\n",
        ChunkSizeError,
        H(),
    ),
    bad(
        "chunk-size-bare-cr",
        "a chunk-size line with a bare CR",
        rq(HOST, CHUNKED_TE, line=POST) + b"5\r0\r\n",
        ChunkSizeError,
        H(),
    ),
    bad(
        "chunk-ext-nul",
        "NUL in a chunk extension",
        rq(HOST, CHUNKED_TE, line=POST) + b"5;a\x00b\r\nhello\r\n0\r\n\r\n",
        ChunkSizeError,
        H(),
    ),
    bad(
        "chunk-ext-bare-cr",
        "a bare CR in a chunk extension",
        rq(HOST, CHUNKED_TE, line=POST) + b"5;a\rb\r\nhello\r\n0\r\n\r\n",
        ChunkSizeError,
        H(),
    ),
    bad(
        "chunk-ext-del",
        "DEL in a chunk extension",
        rq(HOST, CHUNKED_TE, line=POST) + b"5;\x7f\r\nhello\r\n0\r\n\r\n",
        ChunkSizeError,
        H(),
    ),
    bad(
        "chunk-line-too-long",
        "a chunk-size line over max_chunk_line (long extensions)",
        rq(HOST, CHUNKED_TE, line=POST) + b"1;" + b"e" * 11 + b"\r\nx\r\n0\r\n\r\n",
        ChunkSizeError,
        H(),
        settings={"max_chunk_line": 14},
    ),
    bad(
        "chunk-line-too-long-default",
        "the default cap on a chunk-size line",
        rq(HOST, CHUNKED_TE, line=POST) + b"1;" + b"e" * 5000 + b"\r\nx\r\n0\r\n\r\n",
        ChunkSizeError,
        H(),
    ),
    bad(
        "chunk-data-no-crlf",
        "chunk data not followed by CRLF: the size lied",
        rq(HOST, CHUNKED_TE, line=POST) + b"5\r\nhelloXX\r\n0\r\n\r\n",
        ChunkTerminatorError,
        H(),
        B(b"hello"),
    ),
    bad(
        "chunk-data-cr-only",
        "chunk data followed by CR and something else",
        rq(HOST, CHUNKED_TE, line=POST) + b"5\r\nhello\r0\r\n\r\n",
        ChunkTerminatorError,
        H(),
        B(b"hello"),
    ),
    bad(
        "chunk-data-lf-only",
        "chunk data followed by LF alone",
        rq(HOST, CHUNKED_TE, line=POST) + b"5\r\nhello\n0\r\n\r\n",
        ChunkTerminatorError,
        H(),
        B(b"hello"),
    ),
    bad(
        "trailer-obs-fold",
        "trailers follow the field rules: obs-fold",
        rq(HOST, CHUNKED_TE, line=POST) + b"0\r\nT: a\r\n b\r\n\r\n",
        ObsoleteFoldError,
        H(),
    ),
    bad(
        "trailer-first-line-whitespace",
        "a trailer section starting with whitespace",
        rq(HOST, CHUNKED_TE, line=POST) + b"0\r\n T: a\r\n\r\n",
        TopLineSpaceError,
        H(),
    ),
    bad(
        "trailer-bare-lf",
        "LF alone in the trailer section",
        rq(HOST, CHUNKED_TE, line=POST) + b"0\r\nT: a\n\r\n",
        HeaderLineEndingError,
        H(),
    ),
    bad(
        "trailer-bare-lf-end",
        "LF LF ends the trailer section",
        rq(HOST, CHUNKED_TE, line=POST) + b"0\r\nT: a\n\n",
        HeaderLineEndingError,
        H(),
    ),
    bad(
        "trailer-nul",
        "NUL in a trailer value",
        rq(HOST, CHUNKED_TE, line=POST) + b"0\r\nT: \x00\r\n\r\n",
        HeaderValueError,
        H(),
    ),
    bad(
        "trailer-no-colon",
        "a trailer line without a colon",
        rq(HOST, CHUNKED_TE, line=POST) + b"0\r\nT\r\n\r\n",
        HeaderNoColonError,
        H(),
    ),
    bad(
        "trailer-space-before-colon",
        "whitespace before the colon in a trailer",
        rq(HOST, CHUNKED_TE, line=POST) + b"0\r\nT : a\r\n\r\n",
        HeaderSpaceError,
        H(),
    ),
    # limits
    bad(
        "request-line-over-limit",
        "one byte over max_request_line: 414",
        rq(HOST, line=b"GET /" + b"a" * 21 + b" HTTP/1.1"),
        RequestTargetTooLongError,
        settings={"max_request_line": 34},
    ),
    bad(
        "request-line-over-default-limit",
        "one byte over the default request-line limit",
        rq(HOST, line=b"GET /" + b"a" * (8192 - 13) + b" HTTP/1.1"),
        RequestTargetTooLongError,
    ),
    bad(
        "request-line-without-end",
        "a request line that never ends fails once max_request_line bytes have come",
        b"GET /" + b"a" * 9000,
        RequestTargetTooLongError,
    ),
    bad(
        "field-section-over-limit",
        "one byte over max_field_section: 431",
        rq(HOST, b"X: " + b"v" * 10),
        FieldSectionTooLargeError,
        settings={"max_field_section": len(rq(HOST, b"X: " + b"v" * 9))},
    ),
    bad(
        "field-section-over-default-limit",
        "a head over the default max_field_section (64 KiB)",
        rq(HOST, *[b"X-%d: %s" % (i, b"v" * 1000) for i in range(66)]),
        FieldSectionTooLargeError,
    ),
    bad(
        "field-section-without-end",
        "a head that never ends fails once max_field_section bytes have come",
        b"GET / HTTP/1.1\r\n" + b"X: " + b"v" * 70000,
        FieldSectionTooLargeError,
    ),
    bad(
        "too-many-fields",
        "one field line over max_fields: 431",
        rq(HOST, b"A: 1", b"B: 2", b"C: 3"),
        TooManyFieldsError,
        settings={"max_fields": 3},
    ),
    bad(
        "too-many-fields-default",
        "over the default max_fields (100)",
        rq(HOST, *[b"X: %d" % i for i in range(100)]),
        TooManyFieldsError,
    ),
    bad(
        "trailers-over-limit",
        "a trailer section over max_field_section",
        rq(b"Host: x", CHUNKED_TE, line=POST) + b"0\r\nT: " + b"v" * 60 + b"\r\n\r\n",
        FieldSectionTooLargeError,
        H(),
        settings={"max_field_section": 64},
    ),
    bad(
        "trailers-without-end",
        "a trailer section that never ends fails once max_field_section bytes have come",
        rq(b"Host: x", CHUNKED_TE, line=POST) + b"0\r\nT: " + b"v" * 100,
        FieldSectionTooLargeError,
        H(),
        settings={"max_field_section": 64},
    ),
    bad(
        "too-many-trailers",
        "more trailer lines than max_fields",
        rq(HOST, CHUNKED_TE, line=POST) + b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
        TooManyFieldsError,
        H(),
        settings={"max_fields": 2},
    ),
    bad(
        "body-over-limit-counted",
        "a Content-Length over max_body_size: 413 before the request is delivered",
        rq(HOST, b"Content-Length: 5", line=POST) + b"hello",
        BodyTooLargeError,
        settings={"max_body_size": 4},
    ),
    bad(
        "body-over-limit-chunked",
        "chunks adding up to more than max_body_size: 413 at the chunk-size line",
        rq(HOST, CHUNKED_TE, line=POST) + b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        BodyTooLargeError,
        H(),
        B(b"abc"),
        settings={"max_body_size": 4},
    ),
    # the connection ends too early
    bad(
        "eof-mid-body-counted",
        "the connection closed before Content-Length bytes came",
        rq(HOST, b"Content-Length: 10", line=POST) + b"hello",
        ConnectError,
        H(),
        B(b"hello"),
        eof=True,
    ),
    bad(
        "eof-mid-chunk",
        "the connection closed inside a chunk",
        rq(HOST, CHUNKED_TE, line=POST) + b"5\r\nhel",
        ConnectError,
        H(),
        B(b"hel"),
        eof=True,
    ),
    bad(
        "eof-before-last-chunk",
        "the connection closed before the last chunk",
        rq(HOST, CHUNKED_TE, line=POST) + b"5\r\nhello\r\n",
        ConnectError,
        H(),
        B(b"hello"),
        eof=True,
    ),
    bad(
        "eof-in-trailers",
        "the connection closed inside the trailer section",
        rq(HOST, CHUNKED_TE, line=POST) + b"0\r\nT: a\r\n",
        ConnectError,
        H(),
        eof=True,
    ),
    bad(
        "eof-mid-head",
        "the connection closed inside a head",
        b"GET / HTTP/1.1\r\nHost: exa",
        ConnectError,
        eof=True,
    ),
    bad(
        "error-after-valid-request",
        "a valid request is delivered, the next one's error ends the connection",
        SMALL_GET + rq(HOST, line=b"GET / HTTP/2.0") + SMALL_GET,
        HttpVersionError,
        H(),
        E(),
    ),
]

# -- invalid responses -----------------------------------------------------------------------------

INVALID_RESPONSES = [
    bad(
        "response-cl-and-te",
        "Content-Length with Transfer-Encoding in a response is refused as well",
        rs(b"Content-Length: 3", CHUNKED_TE) + b"0\r\n\r\n",
        TransferEncodingCLError,
        requests=False,
    ),
    bad(
        "response-cl-duplicate",
        "two different Content-Lengths in a response",
        rs(b"Content-Length: 3", b"Content-Length: 4") + b"abcd",
        DuplicateCLError,
        requests=False,
    ),
    bad(
        "response-cl-malformed",
        "a malformed Content-Length in a response (not read-until-close instead)",
        rs(b"Content-Length: 3a") + b"abc",
        MalformedCLError,
        requests=False,
    ),
    bad(
        "response-te-not-chunked",
        "a response coding we cannot decode as the last coding: 501 class",
        rs(b"Transfer-Encoding: gzip") + b"abc",
        TransferCodeError,
        requests=False,
    ),
    bad(
        "response-te-chunked-not-last",
        "chunked, then another coding",
        rs(b"Transfer-Encoding: chunked, gzip") + b"abc",
        TransferCodeError,
        requests=False,
    ),
    bad(
        "response-te-chunked-twice",
        "chunked applied twice to a response",
        rs(b"Transfer-Encoding: chunked, chunked") + b"0\r\n\r\n",
        TransferCodeError,
        requests=False,
    ),
    bad(
        "response-te-unknown",
        "an unknown coding before chunked",
        rs(b"Transfer-Encoding: br, chunked") + b"0\r\n\r\n",
        TransferCodeError,
        requests=False,
    ),
    bad(
        "response-obs-fold",
        "obs-fold in a response",
        rs(b"Content-Length: 0", b"X: a", b" b"),
        ObsoleteFoldError,
        requests=False,
    ),
    bad(
        "response-bare-lf",
        "LF line endings in a response",
        b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
        HeaderLineEndingError,
        requests=False,
    ),
    bad(
        "response-bare-cr",
        "a bare CR in a response field",
        rs(b"X: a\rb", b"Content-Length: 0"),
        BareCRError,
        requests=False,
    ),
    bad(
        "response-nul",
        "NUL in a response field",
        rs(b"Content-Length: 0", b"Server: \x00"),
        HeaderValueError,
        requests=False,
    ),
    bad(
        "response-ctl-in-phrase",
        "a control byte in the reason phrase",
        rs(b"Content-Length: 0", line=b"HTTP/1.1 200 O\x01K"),
        HeaderValueError,
        requests=False,
    ),
    bad(
        "response-status-two-digits",
        "a status code is three digits",
        rs(b"Content-Length: 0", line=b"HTTP/1.1 20 OK"),
        StartLineError,
        requests=False,
    ),
    bad(
        "response-status-four-digits",
        "a status code is three digits",
        rs(b"Content-Length: 0", line=b"HTTP/1.1 2000 OK"),
        StartLineError,
        requests=False,
    ),
    bad(
        "response-status-sign",
        "'+20' is not a status code",
        rs(b"Content-Length: 0", line=b"HTTP/1.1 +20 OK"),
        StartLineError,
        requests=False,
    ),
    bad(
        "response-status-non-ascii",
        "Arabic-Indic digits are not a status code",
        rs(b"Content-Length: 0", line=b"HTTP/1.1 \xd9\xa2\xd9\xa0\xd9\xa0 OK"),
        StartLineError,
        requests=False,
    ),
    bad(
        "response-status-missing",
        "a status line without a status",
        rs(b"Content-Length: 0", line=b"HTTP/1.1"),
        StartLineError,
        requests=False,
    ),
    bad(
        "response-double-space",
        "one SP after the version",
        rs(b"Content-Length: 0", line=b"HTTP/1.1  200 OK"),
        StartLineError,
        requests=False,
    ),
    bad(
        "response-version-2",
        "HTTP/2.0 on an HTTP/1 connection",
        rs(b"Content-Length: 0", line=b"HTTP/2.0 200 OK"),
        HttpVersionError,
        requests=False,
    ),
    bad(
        "response-version-short",
        "'HTTP/2' is not an HTTP-version",
        rs(b"Content-Length: 0", line=b"HTTP/2 200 OK"),
        StartLineError,
        requests=False,
    ),
    bad(
        "response-not-http",
        "another protocol's status line",
        rs(b"Content-Length: 0", line=b"ICY 200 OK"),
        StartLineError,
        requests=False,
    ),
    bad(
        "response-after-head-body",
        "a 204 has no body: bytes after it are read as the next status line",
        rs(b"Content-Length: 3", line=b"HTTP/1.1 204 No Content") + b"abc\r\n\r\n",
        StartLineError,
        H(status=b"204"),
        E(),
        requests=False,
    ),
    bad(
        "response-eof-mid-chunked",
        "the connection closed inside a chunked response",
        rs(CHUNKED_TE) + b"3\r\nab",
        ConnectError,
        H(),
        B(b"ab"),
        requests=False,
        eof=True,
    ),
    bad(
        "response-eof-mid-counted",
        "the connection closed before Content-Length bytes came",
        rs(b"Content-Length: 3") + b"ab",
        ConnectError,
        H(),
        B(b"ab"),
        requests=False,
        eof=True,
    ),
]

VALID = VALID_REQUESTS + VALID_RESPONSES
INVALID = INVALID_REQUESTS + INVALID_RESPONSES
ALL = VALID + INVALID

# -- the harness -----------------------------------------------------------------------------------


class Recorder:
    """A parser owner that records events and frames responses as a client does.

    Args:
        method: the method of the request the responses answer.
        requests: the parser reads requests (a server) rather than responses.
    """

    def __init__(self, method: bytes = b"GET", requests: bool = True) -> None:
        self.method = method
        self.requests = requests
        self.events: list[tuple[str, Any]] = []

    def input_start(self, head: Head) -> int:
        self.events.append(("head", head))
        if self.requests:
            return head.framing
        if self.method == b"HEAD" or head.status in (b"204", b"304"):
            return NO_BODY
        return head.framing

    def input_body(self, chunk: bytes) -> None:
        assert isinstance(chunk, bytes) and chunk, chunk
        self.events.append(("body", chunk))

    def input_end(self, trailers: RawHeaders) -> None:
        self.events.append(("end", trailers))


def joined(events: Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The events with consecutive body chunks joined (how bodies are cut is not an event)."""
    out: list[tuple[str, Any]] = []
    for kind, value in events:
        if kind == "body" and out and out[-1][0] == "body":
            out[-1] = ("body", out[-1][1] + value)
        else:
            out.append((kind, value))
    return out


@dataclass
class Outcome:
    events: list[tuple[str, Any]]
    error: HttpError | None
    parser: HttpParser
    recorder: Recorder


def make_parser(case: Case) -> tuple[HttpParser, Recorder]:
    recorder = Recorder(case.method, case.requests)
    parser = HttpParser(recorder, case.requests)
    for name, value in case.settings.items():
        assert hasattr(HttpParser, name), name
        setattr(parser, name, value)
    return parser, recorder


def run(case: Case, pieces: Iterable[bytes]) -> Outcome:
    """Feed ``pieces`` (then ``eof()`` if the case says so); stop at the first error."""
    parser, recorder = make_parser(case)
    error: HttpError | None = None
    try:
        for piece in pieces:
            parser.feed(piece)
        if case.eof:
            parser.eof()
    except HttpError as exc:
        error = exc
    return Outcome(joined(recorder.events), error, parser, recorder)


def describe(events: Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Events with heads as their full fact dicts (for comparisons and readable diffs)."""
    return [(kind, facts(v) if kind == "head" else v) for kind, v in events]


HEAD_FACTS = (
    "method",
    "target",
    "status",
    "phrase",
    "version",
    "headers",
    "content_length",
    "chunked",
    "framing",
    "connection",
    "keep_alive",
    "expect_continue",
    "upgrade",
    "host",
    "header_length",
)


def facts(head: Head) -> dict[str, Any]:
    return {name: getattr(head, name) for name in HEAD_FACTS}


def matches(actual: list[tuple[str, Any]], expected: tuple[Event, ...]) -> bool:
    """True when the recorded (joined) events are the expected ones (heads: the facts given)."""
    if len(actual) != len(expected):
        return False
    for (kind, value), (want_kind, want) in zip(actual, expected, strict=True):
        if kind != want_kind:
            return False
        if kind == "head":
            assert isinstance(want, Mapping)
            if any(getattr(value, k) != v for k, v in want.items()):
                return False
        elif value != want:
            return False
    return True
