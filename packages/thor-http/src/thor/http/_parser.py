"""The HTTP/1.1 message parser (RFC 9112): bytes in, message events out, no sockets.

Theory of operation
-------------------
One ``HttpParser`` reads one direction of one connection: requests (a server) or responses (a
client). ``feed(data)`` consumes bytes as they arrive, in any split; the parser calls its owner:

- ``owner.input_start(head) -> framing``: a message head was parsed (``Head``). The parser
  proposes ``head.framing`` (NO_BODY, COUNTED, CHUNKED or CLOSE) from the fields; the owner returns
  the framing to use (a client knows that a response to HEAD, or a 204/304, has no body).
- ``owner.input_body(chunk)``: some body bytes (chunk-framing removed), in order.
- ``owner.input_end(trailers)``: the message is complete (trailers: a field list, maybe empty).

Interim (1xx) responses other than 101 get ``input_start`` only; the parser then reads the next
head. After a 101 response, and whenever the owner calls ``pause()``, the parser stops and keeps
the bytes it has not consumed (``take_buffered()`` hands them over: tunnels, WebSocket).

Strictness: everything RFC 9112 lets a recipient reject is rejected with its own ``HttpError``
subclass (see ``thor.http.error``): the head is checked in a few C-level scans (forbidden bytes,
line structure), field names against the token grammar (cached), numbers against ASCII digits.
Anything that makes the framing ambiguous — Content-Length with Transfer-Encoding, differing or
malformed Content-Lengths, codings other than a final ``chunked``, Transfer-Encoding in HTTP/1.0
— is an error: those are the request-smuggling vectors. Two leniencies can be turned on, each a
named setting that is off by default: ``lenient_bare_lf`` (accept LF line endings; risk: a peer
that treats a bare LF differently sees different field boundaries) and ``lenient_obs_fold``
(unfold obsolete line folding with one space; risk: intermediaries that do not unfold forward
something else). After any error the parser is dead: the connection must be closed.

Same input, same outcome, however it is cut: a head or trailer section is parsed once it is
complete, and the errors that can be seen before that (a request line over its limit, a line
ending in LF alone, a section over its limit) are checked on every partial section, the one whose
evidence comes first winning (``_section_errors``), on complete and partial sections alike.

The parser never raises anything but ``HttpError`` subclasses and always consumes or buffers
its input: every loop iteration either advances or returns waiting for more bytes.
"""

from __future__ import annotations

import re
from operator import attrgetter
from typing import Any, Protocol

from . import _limits
from ._abnf import (
    FIELD_NAME_CACHE,
    OWS,
    field_name_lower,
    is_host_value,
    is_token,
    parse_decimal,
    parse_hex,
)
from .error import (
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

__all__ = ["CHUNKED", "CLOSE", "COUNTED", "NO_BODY", "Head", "HttpParser", "ParserOwner"]

RawHeaders = list[tuple[bytes, bytes]]

# framings (how the end of a body is found); RFC 9112 §6.3
NO_BODY = 0
COUNTED = 1
CHUNKED = 2
CLOSE = 3

# parser states
_HEAD, _BODY_COUNTED, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _BODY_CLOSE = range(7)
#: the state between messages: with nothing in ``_buf``, the parser is ``idle`` (for owners
#: that test it per read, where the property costs more than the test)
HEAD_STATE = _HEAD
_STOPPED, _DEAD = 7, 8

#: bytes a head may not contain anywhere (CR and LF are checked as line structure)
_BAD_HEAD_BYTE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]").search
#: the same bytes, plus CR and LF: deleting them all from a well-formed block removes exactly two
#: bytes per CRLF (one C-level pass instead of a regex scan and two counts)
_LINE_AND_BAD_BYTES = bytes([*range(0x09), 0x0A, 0x0B, 0x0C, 0x0D, *range(0x0E, 0x20), 0x7F])
_HTTP_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]").fullmatch
#: authority-form = uri-host ":" port, both present (RFC 9112 §3.2.3)
_AUTHORITY = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+):[0-9]{1,5}"
).fullmatch
_CHUNK_EXT_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f\"]").search

_METHOD_CACHE: dict[bytes, bool] = {}
#: Host values already validated (a server sees the same few all day)
_HOST_CACHE: dict[bytes, bool] = {}
_CACHE_LIMIT = 256  # entries; a full cache is emptied and fills again
#: the longest method and Host value cached (a name of 253 characters, a port, brackets)
_MAX_CACHED_METHOD = 32
_MAX_CACHED_HOST = 261


class _HeadCache:
    """Heads already parsed, by their bytes and the settings that decide the outcome.

    Clients and servers see the same heads again and again (a load balancer's health check, an
    API client's requests, an origin's responses within one second of ``Date``), and parsing a
    head is most of a small message's cost. A hit gives a new ``Head`` with the cached result
    (its own field list; the bytes are shared, being immutable); an error is never cached, so a
    head that is refused is parsed and refused every time. When most heads are new (distinct
    URLs, cookies), lookups would only cost: a window of ``_HEADS_LIMIT`` misses with fewer hits
    than that turns the cache off for the next ``_HEADS_PAUSE`` heads. Heads over
    ``_HEADS_MAX_SIZE`` bytes are not cached, so what peers can make it hold stays small.
    """

    __slots__ = ("entries", "hits", "skip")

    def __init__(self) -> None:
        self.entries: dict[tuple[bytes, bool, int, int], tuple[_HeadValues, RawHeaders]] = {}
        self.hits = 0
        self.skip = 0


_HEADS = _HeadCache()
_HEADS_LIMIT = 256
_HEADS_PAUSE = 4096
#: larger heads are not cached (what a peer can make the cache hold: 256 x 4 KiB)
_HEADS_MAX_SIZE = 4096


class ParserOwner(Protocol):
    """What a parser reports to (the server or client connection)."""

    def input_start(self, head: Head) -> int: ...
    def input_body(self, chunk: bytes) -> None: ...
    def input_end(self, trailers: RawHeaders) -> None: ...


class Head:
    """One parsed message head: start line, fields, and what they mean for the framing.

    Attributes:
        method, target: of a request (b"" for a response).
        status, phrase: of a response (b"" for a request).
        version: b"1.1" or b"1.0".
        headers: the field lines as ``(name, value)`` bytes, in order, exactly as received
            (value with any whitespace around it).
        content_length: the validated Content-Length, or None.
        chunked: Transfer-Encoding ends in chunked.
        framing: NO_BODY, COUNTED, CHUNKED or CLOSE, as the fields say.
        connection: the lower-case tokens of the Connection field(s).
        keep_alive: whether the connection persists after this message, as its fields say
            (version and Connection; an HTTP/1.0 message with Transfer-Encoding does not). A
            body read until close (``framing == CLOSE``, unless the owner frames it otherwise)
            ends the connection whatever this says.
        expect_continue: the HTTP/1.1 request carries ``Expect: 100-continue`` (ignored in
            HTTP/1.0, RFC 9110 §10.1.1).
        upgrade: the HTTP/1.1 message asks for (request) or agrees to (101 response) a protocol
            upgrade: an Upgrade field and ``upgrade`` in Connection.
        host: the Host field value of a request (None without one).
        header_length: bytes of the head on the wire, start line and final blank line included.
        repeated: the same head (bytes and parser settings) was parsed before, and this one
            comes from the parser's cache of heads (servers learn their known requests and
            clients their known responses from these: see ``HttpServerConnection`` and
            ``HttpClientConnection``).
    """

    # Defaults at class level: a head sets only what its message says (a request with just a
    # Host field sets four attributes), since this object is made for every message.
    method = target = status = phrase = b""
    version = b"1.1"
    content_length: int | None = None
    chunked = False
    framing = NO_BODY
    connection: tuple[bytes, ...] = ()
    keep_alive = True
    expect_continue = False
    upgrade = False
    host: bytes | None = None
    header_length = 0
    repeated = False
    #: the names of all the attributes above (for tests comparing heads)
    ATTRIBUTES = (
        "chunked",
        "connection",
        "content_length",
        "expect_continue",
        "framing",
        "header_length",
        "headers",
        "host",
        "keep_alive",
        "method",
        "phrase",
        "status",
        "target",
        "upgrade",
        "version",
    )

    def __init__(self, headers: RawHeaders | None = None) -> None:
        self.headers: RawHeaders = [] if headers is None else headers

    def __repr__(self) -> str:
        if self.method:
            start = self.method + b" " + self.target
        else:
            start = self.status + b" " + self.phrase
        text = start.decode("latin-1")
        return f"<Head {text!r} HTTP/{self.version.decode()} fields={len(self.headers)}>"


#: what the head cache keeps of a Head: its attributes but ``headers``, in ``Head.ATTRIBUTES``
#: order, then ``repeated`` (always True: what a hit gives)
_HeadValues = tuple[Any, ...]
_head_attributes = attrgetter(*[name for name in Head.ATTRIBUTES if name != "headers"])
_new_head = object.__new__


def _head_values(head: Head) -> _HeadValues:
    """What the head cache keeps of ``head``."""
    return (*_head_attributes(head), True)


def _head_from(values: _HeadValues, headers: RawHeaders) -> Head:
    """A new Head from ``_head_values`` and its own field list. Every attribute is set on the
    instance (not left to the class defaults, nor set through ``__dict__``): the server and
    client read most of them at once, and CPython reads instance attributes faster. (A Head
    attribute added to ``Head.ATTRIBUTES`` but not here fails this unpacking loudly.)"""
    head: Head = _new_head(Head)
    head.headers = headers
    (
        head.chunked, head.connection, head.content_length, head.expect_continue, head.framing,
        head.header_length, head.host, head.keep_alive, head.method, head.phrase, head.status,
        head.target, head.upgrade, head.version, head.repeated,
    ) = values  # fmt: skip
    return head


class HttpParser:
    """Incremental parser of the HTTP/1.1 messages one peer sends (see the module docstring).

    Args:
        owner: receives ``input_start``, ``input_body`` and ``input_end``.
        requests: True to parse requests (a server), False for responses (a client).

    Settings (class attributes; see ``thor.http._limits`` for the defaults):
        max_request_line: bytes of a request line (414 RequestTargetTooLongError beyond).
        max_field_section: bytes of a head or trailer section (431 FieldSectionTooLargeError).
        max_fields: field lines per section (431 TooManyFieldsError).
        max_chunk_line: bytes of a chunk-size line (400 ChunkSizeError).
        max_body_size: bytes of a body (413 BodyTooLargeError); None for no limit.
        lenient_bare_lf: accept LF alone as a line ending (off: HeaderLineEndingError).
        lenient_obs_fold: unfold obs-fold continuation lines (off: ObsoleteFoldError).

    Attributes:
        header_length: bytes of the last head parsed.
        transfer_length: bytes of the current/last body as received (chunk framing included).
    """

    max_request_line: int = _limits.DEFAULT_MAX_REQUEST_LINE
    max_field_section: int = _limits.DEFAULT_MAX_FIELD_SECTION
    max_fields: int = _limits.DEFAULT_MAX_FIELDS
    max_chunk_line: int = _limits.DEFAULT_MAX_CHUNK_LINE
    max_body_size: int | None = None
    lenient_bare_lf: bool = False
    lenient_obs_fold: bool = False

    def __init__(self, owner: ParserOwner, requests: bool) -> None:
        self.owner = owner
        self.requests = requests
        self._buf = b""
        self._scan = 0  # where to resume looking for the end of a partial head
        self._state = _HEAD
        self._paused = False
        self._left = 0  # body bytes (COUNTED) or chunk bytes (CHUNK_DATA) still to come
        self._body_seen = 0
        self.header_length = 0
        self.transfer_length = 0

    # -- driving --------------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Consume ``data``, calling the owner for every event it completes.

        Raises:
            HttpError: a subclass naming what is wrong with the input; the parser is then dead.
        """
        if self._buf:
            data = self._buf + data
            self._buf = b""
        stopped = self._state >= _STOPPED or self._paused  # (not narrowing _paused for mypy)
        if stopped:
            if self._state == _DEAD:
                return
            self._buf = data
            return
        try:  # (the parsing loop, inlined: it runs for every read)
            pos = 0
            end = len(data)
            owner = self.owner
            while pos < end:
                if self._paused or self._state == _STOPPED:
                    self._buf = data[pos:]
                    return
                state = self._state
                if state == _HEAD:
                    pos = self._parse_head(data, pos)
                    if pos < 0:
                        return
                elif state == _BODY_COUNTED:
                    take = end - pos
                    if self._left < take:  # noqa: PLR1730 (min() costs a builtin call per read)
                        take = self._left
                    chunk = data if (pos == 0 and take == end) else data[pos : pos + take]
                    pos += take
                    self._left -= take
                    self.transfer_length += take
                    owner.input_body(chunk)
                    if not self._left:
                        self._message_done([])
                elif state == _CHUNK_DATA:
                    take = end - pos
                    if self._left < take:  # noqa: PLR1730 (min() costs a builtin call per read)
                        take = self._left
                    chunk = data if (pos == 0 and take == end) else data[pos : pos + take]
                    pos += take
                    self._left -= take
                    self.transfer_length += take
                    owner.input_body(chunk)
                    if not self._left:
                        self._state = _CHUNK_END
                elif state == _CHUNK_SIZE:
                    pos = self._parse_chunk_size(data, pos)
                    if pos < 0:
                        return
                elif state == _CHUNK_END:
                    if data.startswith(b"\r\n", pos):
                        pos += 2
                        self.transfer_length += 2
                        self._state = _CHUNK_SIZE
                    elif data[pos] == 10 and self.lenient_bare_lf:
                        pos += 1
                        self.transfer_length += 1
                        self._state = _CHUNK_SIZE
                    elif data[pos] == 13 and end - pos == 1:
                        self._buf = data[pos:]
                        return
                    else:
                        raise ChunkTerminatorError(
                            f"chunk data followed by {data[pos : pos + 2]!r}"
                        )
                elif state == _TRAILERS:
                    pos = self._parse_trailers(data, pos)
                    if pos < 0:
                        return
                elif state == _BODY_CLOSE:
                    chunk = data if pos == 0 else data[pos:]
                    self.transfer_length += len(chunk)
                    pos = end
                    owner.input_body(chunk)
                else:
                    return
        except HttpError:
            self._state = _DEAD
            self._buf = b""
            raise

    def eof(self) -> None:
        """The peer closed the connection: ends a read-until-close body.

        Raises:
            ConnectError: the connection closed in the middle of a message.
        """
        state = self._state
        if state == _BODY_CLOSE:
            self._state = _HEAD
            self.owner.input_end([])
        elif state == _HEAD:
            if self._buf.strip(b"\r\n"):
                self._state = _DEAD
                raise ConnectError("connection closed in the middle of a message head")
        elif state in (_BODY_COUNTED, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS):
            self._state = _DEAD
            raise ConnectError("connection closed in the middle of a message body")

    def pause(self) -> None:
        """Stop parsing after the current event; bytes still to parse are kept."""
        self._paused = True

    def resume(self) -> None:
        """Parse again, starting with the bytes kept while paused."""
        if self._paused:
            self._paused = False
            if self._state == _STOPPED:
                self._state = _HEAD
            if self._buf:
                data, self._buf = self._buf, b""
                self.feed(data)

    def known_body(self, length: int, body: bytes) -> None:
        """Go on after a head the owner recognised without this parser (a client's known
        response, whose owner already set ``header_length`` and ``transfer_length`` and
        emitted the head): a body of ``length`` bytes (Content-Length, more than 0) follows,
        and ``body`` is what of it has arrived. As after a parsed head: the body is delivered,
        or kept while paused, and the message ends.

        Raises:
            HttpError: as ``feed`` (BodyTooLargeError over ``max_body_size``).
        """
        if self._state == _DEAD:
            return
        max_body = self.max_body_size
        if max_body is not None and length > max_body:
            self._state = _DEAD
            raise BodyTooLargeError(f"Content-Length {length} (limit {max_body})")
        self._body_seen = 0
        if len(body) == length and not self._paused and not self._buf:
            # the whole body, nothing kept: what feed's counted-body step does, once
            self._left = 0
            self._state = _BODY_COUNTED
            self.transfer_length += length
            try:
                self.owner.input_body(body)
                self._message_done([])
            except HttpError:
                self._state = _DEAD  # (as feed does)
                raise
            return
        self._left = length
        self._state = _BODY_COUNTED
        self.feed(body)

    def take_buffered(self) -> bytes:
        """Hand over (and forget) the bytes received but not parsed: after an upgrade, they
        belong to the new protocol."""
        data, self._buf = self._buf, b""
        return data

    @property
    def idle(self) -> bool:
        """True between messages with nothing buffered (no partial message)."""
        return self._state == _HEAD and not self._buf

    @property
    def dead(self) -> bool:
        """True after an error: nothing more will be parsed."""
        return self._state == _DEAD

    # -- heads ----------------------------------------------------------------------------------

    def _parse_head(self, data: bytes, pos: int) -> int:
        """Parse a head starting at ``pos``; return the position after it, or -1 when the head
        is not complete yet (the rest is buffered)."""
        lenient = self.lenient_bare_lf
        first = data[pos]  # (the caller has bytes at pos)
        if first == 13 or (first == 10 and lenient):
            # empty lines before a start line are ignored (RFC 9112 §2.2); LF alone only when
            # LF line endings are accepted
            while True:
                if data.startswith(b"\r\n", pos):
                    pos += 2
                elif lenient and data.startswith(b"\n", pos):
                    pos += 1
                else:
                    break
            if pos == len(data):
                return pos
        scan = self._scan if self._scan > pos else pos  # (max(), inlined)
        if lenient:
            head_end, after = _lenient_section_end(data, scan)
        else:
            head_end = data.find(b"\r\n\r\n", scan)
            after = head_end + 4
        if head_end == -1:
            self._section_errors(data, pos, scan, len(data), self.requests)
            self._buf = data[pos:]
            self._scan = max(0, len(data) - pos - 3)
            return -1
        self._scan = 0
        size = after - pos
        if size > self.max_field_section or (self.requests and size >= self.max_request_line + 2):
            self._section_errors(data, pos, scan, after, self.requests)
        # the head (_lines and _fields inlined: this runs for every message)
        block = data[pos:head_end]
        heads = _HEADS
        key: tuple[bytes, bool, int, int] | None = None
        if heads.skip:
            heads.skip -= 1
        elif not lenient and not self.lenient_obs_fold and head_end - pos <= _HEADS_MAX_SIZE:
            key = (block, self.requests, self.max_fields, self.max_request_line)
            cached = heads.entries.get(key)
            if cached is not None:
                heads.hits += 1
                attributes, template = cached
                head = _head_from(attributes, template[:])
                self.header_length = size
                self.transfer_length = 0
                self._start_message(head)
                return after
        if lenient:
            lines = self._lines(block)
        else:
            lines = block.split(b"\r\n")
            if len(block) - len(block.translate(None, _LINE_AND_BAD_BYTES)) != 2 * len(lines) - 2:
                self._lines(block)  # raises the error the line structure or bytes show
        fields: RawHeaders = []
        head = Head(fields)
        line = lines[0]
        if self.requests:
            parts = line.split(b" ")
            if len(parts) == 3 and len(line) <= self.max_request_line:
                method, target, version = parts
                if (
                    target[:1] == b"/"
                    and method in _METHOD_CACHE
                    and version == b"HTTP/1.1"
                    and 9 not in target
                    and target.isascii()
                    and method != b"CONNECT"
                ):  # the common case, an origin-form HTTP/1.1 request: _request_line's checks
                    head.method = method
                    head.target = target
                else:
                    self._request_line(head, line)
            else:
                self._request_line(head, line)
        else:
            self._status_line(head, line)
        if len(lines) - 1 > self.max_fields:
            raise TooManyFieldsError(f"{len(lines) - 1} field lines (limit {self.max_fields})")
        special: list[tuple[bytes, int]] = []
        append = fields.append
        known = FIELD_NAME_CACHE.get
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            lower = known(name)
            if lower is None or not colon:
                lower = self._field_name(fields, line, name, colon)
                if lower is None:
                    continue  # folded into the previous field
            if lower in _SPECIAL_FIELDS:
                special.append((lower, len(fields)))
            append((name, value))
        self._interpret(head, fields, special)
        head.header_length = size
        self.header_length = size
        self.transfer_length = 0
        if key is not None:
            entries = heads.entries
            if len(entries) >= _HEADS_LIMIT:  # a window of misses is over
                if heads.hits < len(entries):
                    heads.skip = _HEADS_PAUSE
                entries.clear()
                heads.hits = 0
            entries[key] = (_head_values(head), fields[:])
        self._start_message(head)
        return after

    def _section_errors(
        self, data: bytes, pos: int, scan: int, stop: int, request_line: bool
    ) -> None:
        """Raise the error whose evidence comes first in ``data[pos:stop]``, a head or trailer
        section, complete or not yet: a request line over max_request_line (414), a line ending
        in LF alone (unless lenient_bare_lf), more than max_field_section bytes (431).

        These are the errors found before a section is complete; raising the one whose
        evidence comes first (wherever the input was cut) is what makes the error the same for
        any split of the input. Bytes before ``scan`` were checked by an earlier call.
        """
        error: HttpError | None = None
        point = 0  # bytes (from the start of data) it takes to see ``error``
        pending = stop - pos
        limit = self.max_request_line
        if request_line and pending >= limit + 2 and data.find(b"\n", pos, pos + limit + 2) < 0:
            error = RequestTargetTooLongError(f"request line longer than {limit} bytes")
            point = pos + limit + 2
        limit = self.max_field_section
        if pending > limit and (error is None or pos + limit + 1 < point):
            error = FieldSectionTooLargeError(f"more than {limit} bytes in a field section")
            point = pos + limit + 1
        if not self.lenient_bare_lf:
            bare = _bare_lf(data, pos, scan, stop)
            if bare >= 0 and (error is None or bare + 1 < point):
                error = HeaderLineEndingError("a line of the head ends with LF alone")
        if error is not None:
            raise error

    def _lines(self, block: bytes) -> list[bytes]:
        """The lines of a head or trailer block, line structure and bytes checked.

        Strict: ``block`` ends before the CRLF of its last line, lines end with CRLF. With
        lenient_bare_lf, ``block`` ends before the LF of its last line, and a line ends with LF
        after an optional CR.
        """
        if self.lenient_bare_lf:
            bad = _BAD_HEAD_BYTE(block)
            if bad is not None:
                raise HeaderValueError(f"forbidden byte {bad.group()!r} in the head")
            lines = [line[:-1] if line[-1:] == b"\r" else line for line in block.split(b"\n")]
            for line in lines:
                if 13 in line:
                    raise BareCRError("a CR not followed by LF in the head")
            return lines
        lines = block.split(b"\r\n")
        if len(block) - len(block.translate(None, _LINE_AND_BAD_BYTES)) == 2 * len(lines) - 2:
            return lines  # no forbidden byte, every CR and every LF in a CRLF
        if _bare_lf(block, 0, 0, len(block)) >= 0:
            raise HeaderLineEndingError("a line of the head ends with LF alone")
        bad = _BAD_HEAD_BYTE(block)
        if bad is not None:
            raise HeaderValueError(f"forbidden byte {bad.group()!r} in the head")
        raise BareCRError("a CR not followed by LF in the head")

    def _request_line(self, head: Head, line: bytes) -> None:
        if len(line) > self.max_request_line:
            raise RequestTargetTooLongError(
                f"request line of {len(line)} bytes (limit {self.max_request_line})"
            )
        parts = line.split(b" ")
        if len(parts) != 3:
            if len(parts) == 2 and parts[1] and parts[1][:1] == b"/":
                raise HttpVersionError("no HTTP version (HTTP/0.9 request)")
            raise RequestLineError(f"request line is not 'method SP target SP version': {line!r}")
        method, target, version = parts
        if method not in _METHOD_CACHE:
            if not is_token(method):
                raise RequestLineError(f"invalid method {method!r}")
            if len(method) <= _MAX_CACHED_METHOD:
                if len(_METHOD_CACHE) >= _CACHE_LIMIT:
                    _METHOD_CACHE.clear()
                _METHOD_CACHE[method] = True
        if not target or 9 in target or not target.isascii():
            # (a URI is ASCII: RFC 9112 §3.2, RFC 3986 §2; other control bytes are refused
            # with the whole head)
            raise RequestLineError(
                f"empty request target, or HTAB or a non-ASCII byte in it: {target[:40]!r}"
            )
        head.method = method
        head.target = target
        if version != b"HTTP/1.1":  # (the default)
            head.version = _version(version, RequestLineError)
        if method == b"CONNECT":  # authority-form, and only it (RFC 9112 §3.2.3)
            if not _AUTHORITY(target):
                raise RequestLineError(f"invalid CONNECT target {target!r}")
            return
        if target[0] == 47:  # "/": origin-form
            return
        if target == b"*":
            if method != b"OPTIONS":
                raise RequestLineError("asterisk-form target is only for OPTIONS")
            return
        scheme, sep, rest = target.partition(b"://")
        if not sep or scheme.lower() not in (b"http", b"https"):
            raise RequestLineError(f"invalid request target {target!r}")
        authority = rest.partition(b"/")[0].partition(b"?")[0]
        if not authority or authority[0] == 58 or 64 in authority:  # "" / ":port" / "@"
            # an http(s) URI without a host is invalid, and userinfo is an error (RFC 9110
            # §4.2.1, §4.2.4)
            raise RequestLineError(
                f"absolute-form target without a host, or with userinfo: {target[:60]!r}"
            )

    def _status_line(self, head: Head, line: bytes) -> None:
        parts = line.split(b" ", 2)
        if len(parts) < 2:
            raise StartLineError(f"invalid status line {line!r}")
        version, status = parts[0], parts[1]
        if len(status) != 3 or not status.isdigit():
            raise StartLineError(f"invalid status code {status!r}")
        head.version = _version(version, StartLineError)
        head.status = status
        head.phrase = parts[2] if len(parts) == 3 else b""

    def _fields(self, lines: list[bytes], special: list[tuple[bytes, int]]) -> RawHeaders:
        """The field lines as (name, value); ``special`` gets (lower-case name, index) of each
        field that says something about framing or the connection (``_SPECIAL_FIELDS``)."""
        fields: RawHeaders = []
        append = fields.append
        known = FIELD_NAME_CACHE.get
        special_names = _SPECIAL_FIELDS
        for line in lines:
            name, colon, value = line.partition(b":")
            lower = known(name)
            if lower is None or not colon:
                lower = self._field_name(fields, line, name, colon)
                if lower is None:
                    continue  # folded into the previous field
            if lower in special_names:
                special.append((lower, len(fields)))
            append((name, value))
        return fields

    def _field_name(
        self, fields: RawHeaders, line: bytes, name: bytes, colon: bytes
    ) -> bytes | None:
        """The lower-case name of a field line not seen before; None when the line continues
        the previous field (lenient_obs_fold).

        Raises:
            HttpError: the line is not a valid field line.
        """
        if not colon:
            if line[:1] in (b" ", b"\t"):
                self._fold(fields, line)
                return None
            raise HeaderNoColonError(f"field line without a colon: {line[:40]!r}")
        if not name:
            raise HeaderNameError("empty field name")
        lower = field_name_lower(name)
        if lower is not None:
            return lower
        if name[:1] in (b" ", b"\t"):
            self._fold(fields, line)
            return None
        if name[-1:] in (b" ", b"\t"):
            raise HeaderSpaceError(f"whitespace before the colon in {name!r}")
        raise HeaderNameError(f"invalid field name {name[:40]!r}")

    def _fold(self, fields: RawHeaders, line: bytes) -> None:
        if not fields:
            raise TopLineSpaceError("whitespace before the first field line")
        if not self.lenient_obs_fold:
            raise ObsoleteFoldError(f"folded continuation line {line[:40]!r}")
        name, value = fields[-1]
        fields[-1] = (name, value.rstrip(OWS) + b" " + line.strip(OWS))

    def _interpret(self, head: Head, headers: RawHeaders, special: list[tuple[bytes, int]]) -> None:
        """Framing and connection facts from the fields (RFC 9112 §6, §9.6; RFC 9110 §7.2)."""
        # (a list is made only for what the head has: most requests have a Host and little else)
        lengths: list[bytes] | None = None
        codings: list[bytes] | None = None
        connection: list[bytes] | None = None
        host: bytes | None = None
        hosts = 0
        for lower, index in special:
            value = headers[index][1]
            if lower == b"host":
                hosts += 1
                if host is None:
                    host = value.strip(OWS)
            elif lower == b"connection":
                if 44 in value:  # ","
                    listed = [c.strip(OWS).lower() for c in value.split(b",")]
                    connection = listed if connection is None else connection + listed
                elif connection is None:
                    connection = [value.strip(OWS).lower()]
                else:
                    connection.append(value.strip(OWS).lower())
            elif lower == b"content-length":
                if lengths is None:
                    lengths = [value.strip(OWS)]
                else:
                    lengths.append(value.strip(OWS))
            elif lower == b"transfer-encoding":
                coded = [c.strip(OWS).lower() for c in value.split(b",")]
                codings = coded if codings is None else codings + coded
            elif lower == b"expect":
                if value.strip(OWS).lower() == b"100-continue":
                    head.expect_continue = True
            else:  # upgrade
                head.upgrade = True
        http11 = head.version == b"1.1"
        if connection is not None:
            if b"" in connection:
                connection = [c for c in connection if c]
            tokens = head.connection = tuple(connection)
            if http11:
                if b"close" in tokens:
                    head.keep_alive = False
            else:
                head.keep_alive = b"keep-alive" in tokens and b"close" not in tokens
        elif not http11:
            head.keep_alive = False
        if head.upgrade and (not http11 or b"upgrade" not in head.connection):
            # Upgrade means something only when Connection lists it, and never in HTTP/1.0
            # (RFC 9110 §7.8)
            head.upgrade = False
        if head.expect_continue and not http11:
            head.expect_continue = False  # to be ignored in HTTP/1.0 (RFC 9110 §10.1.1)
        if self.requests:
            if hosts > 1:
                raise InvalidHostError(f"{hosts} Host fields")
            if host is not None:
                if host not in _HOST_CACHE:
                    if not is_host_value(host):
                        raise InvalidHostError(f"invalid Host {host!r}")
                    if len(host) <= _MAX_CACHED_HOST:
                        if len(_HOST_CACHE) >= _CACHE_LIMIT:
                            _HOST_CACHE.clear()
                        _HOST_CACHE[host] = True
                head.host = host
            elif http11:
                raise HostRequiredError("HTTP/1.1 request without Host")
        if codings is not None:
            if lengths is not None:
                raise TransferEncodingCLError("both Transfer-Encoding and Content-Length")
            if not http11:
                if self.requests:
                    raise RequestTransferEncodingError("Transfer-Encoding in an HTTP/1.0 request")
                head.keep_alive = False  # faulty framing: close after it (RFC 9112 §6.1)
            codings = [c for c in codings if c]
            if not codings:
                raise TransferCodeError("empty Transfer-Encoding")
            for coding in codings[:-1]:
                if coding == b"chunked" and self.requests:
                    raise RequestTransferEncodingError("chunked is not the last coding")
                raise TransferCodeError(f"transfer coding {coding!r} before the last one")
            if codings[-1] != b"chunked":
                if self.requests:
                    raise RequestTransferEncodingError(
                        f"request Transfer-Encoding ends in {codings[-1]!r}, not chunked"
                    )
                raise TransferCodeError(f"unsupported transfer coding {codings[-1]!r}")
            head.chunked = True
            head.framing = CHUNKED
        elif lengths is not None:
            length = parse_decimal(lengths[0])
            if length is None:
                raise MalformedCLError(f"Content-Length {lengths[0]!r}")
            for other in lengths[1:]:
                if other != lengths[0]:
                    if parse_decimal(other) is None:
                        raise MalformedCLError(f"Content-Length {other!r}")
                    raise DuplicateCLError(f"Content-Lengths {lengths[0]!r} and {other!r}")
            head.content_length = length
            head.framing = COUNTED if length else NO_BODY
        elif not self.requests:
            head.framing = CLOSE
        # (else NO_BODY, the default)

    # -- message boundaries ---------------------------------------------------------------------

    def _start_message(self, head: Head) -> None:
        max_body = self.max_body_size
        if max_body is not None and self.requests and (head.content_length or 0) > max_body:
            # refused before the owner sees the request: nothing of it reaches an application
            raise BodyTooLargeError(f"Content-Length {head.content_length} (limit {max_body})")
        framing = self.owner.input_start(head)
        if self._state == _DEAD:
            return
        if not self.requests:
            status = head.status
            if status[:1] == b"1":
                if status == b"101":
                    self._state = _STOPPED
                    self._paused = True
                return  # interim response: the next head follows
        self._body_seen = 0
        if framing == COUNTED:
            length = head.content_length or 0
            if max_body is not None and length > max_body:
                raise BodyTooLargeError(f"Content-Length {length} (limit {max_body})")
            self._left = length
            self._state = _BODY_COUNTED
            if not length:
                self._message_done([])
        elif framing == CHUNKED:
            self._state = _CHUNK_SIZE
        elif framing == CLOSE:
            self._state = _BODY_CLOSE
        else:  # (_message_done, inlined: most requests have no body)
            self._state = _HEAD
            self.owner.input_end([])

    def _message_done(self, trailers: RawHeaders) -> None:
        self._state = _HEAD
        self.owner.input_end(trailers)

    # -- chunked bodies -------------------------------------------------------------------------

    def _parse_chunk_size(self, data: bytes, pos: int) -> int:
        line_end = data.find(b"\n", pos, pos + self.max_chunk_line)
        if line_end == -1:
            if len(data) - pos >= self.max_chunk_line:
                raise ChunkSizeError(f"chunk-size line longer than {self.max_chunk_line} bytes")
            self._buf = data[pos:]
            return -1
        if data[line_end - 1 : line_end] == b"\r" and line_end > pos:
            line = data[pos : line_end - 1]
        elif self.lenient_bare_lf:
            line = data[pos:line_end]
        else:
            raise ChunkSizeError("chunk-size line ends with LF alone")
        size_part, semicolon, extension = line.partition(b";")
        if semicolon and _CHUNK_EXT_BAD(extension.replace(b'"', b"")) is not None:
            raise ChunkSizeError(f"invalid chunk extension {extension[:40]!r}")
        size = parse_hex(size_part.rstrip(OWS) if semicolon else size_part)
        if size is None:
            raise ChunkSizeError(f"invalid chunk size {size_part[:40]!r}")
        self.transfer_length += line_end + 1 - pos
        max_body = self.max_body_size
        if max_body is not None:
            self._body_seen += size
            if self._body_seen > max_body:
                raise BodyTooLargeError(f"chunked body over {max_body} bytes")
        if size:
            self._left = size
            self._state = _CHUNK_DATA
        else:
            self._state = _TRAILERS
        return line_end + 1

    def _parse_trailers(self, data: bytes, pos: int) -> int:
        if data.startswith(b"\r\n", pos):
            self.transfer_length += 2
            self._message_done([])
            return pos + 2
        lenient = self.lenient_bare_lf
        if lenient and data[pos] == 10:
            self.transfer_length += 1
            self._message_done([])
            return pos + 1
        scan = self._scan if self._scan > pos else pos  # (max(), inlined)
        if lenient:
            end, after = _lenient_section_end(data, scan)
        else:
            end = data.find(b"\r\n\r\n", scan)
            after = end + 4
        if end == -1:
            self._section_errors(data, pos, scan, len(data), False)
            self._buf = data[pos:]
            self._scan = max(0, len(data) - pos - 3)
            return -1
        self._scan = 0
        if after - pos > self.max_field_section:
            self._section_errors(data, pos, scan, after, False)
        lines = self._lines(data[pos:end])
        if len(lines) > self.max_fields:
            raise TooManyFieldsError(f"{len(lines)} trailer lines (limit {self.max_fields})")
        trailers = self._fields(lines, [])
        self.transfer_length += after - pos
        self._message_done(trailers)
        return after


def _bare_lf(data: bytes, pos: int, start: int, stop: int) -> int:
    """The index of the first LF in ``data[start:stop]`` without a CR before it (a section
    starts at ``pos``: an LF there has none), or -1."""
    low = start - 1 if start > pos else pos
    if data.count(b"\n", start, stop) == data.count(b"\r\n", low, stop):
        return -1
    lf = data.find(b"\n", start, stop)
    while lf >= 0:
        if lf == pos or data[lf - 1] != 13:
            return lf
        lf = data.find(b"\n", lf + 1, stop)
    return -1  # pragma: no cover - the counts said there is one


def _lenient_section_end(data: bytes, scan: int) -> tuple[int, int]:
    """With LF line endings accepted: (where the last line's LF is, where the section ends) for
    the first empty line at or after ``scan``, or (-1, -1)."""
    lf_lf = data.find(b"\n\n", scan)
    lf_crlf = data.find(b"\n\r\n", scan)
    if lf_lf >= 0 and (lf_crlf < 0 or lf_lf < lf_crlf):
        return lf_lf, lf_lf + 2
    if lf_crlf >= 0:
        return lf_crlf, lf_crlf + 3
    return -1, -1


def _version(version: bytes, error: type[HttpError]) -> bytes:
    if version == b"HTTP/1.1":
        return b"1.1"
    if version == b"HTTP/1.0":
        return b"1.0"
    if _HTTP_VERSION(version):
        if version[:7] == b"HTTP/1.":
            # a later minor version of HTTP/1: processed as the highest we implement
            # (RFC 9110 §2.5); only another major version is unsupported (§15.6.6)
            return b"1.1"
        raise HttpVersionError(f"HTTP version {version!r}")
    raise error(f"invalid HTTP version {version!r}")


_SPECIAL_FIELDS = frozenset(
    (b"content-length", b"transfer-encoding", b"connection", b"host", b"expect", b"upgrade")
)
