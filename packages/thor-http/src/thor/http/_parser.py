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

The parser never raises anything but ``HttpError`` subclasses and always consumes or buffers
its input: every loop iteration either advances or returns waiting for more bytes.
"""

from __future__ import annotations

import re
from typing import Protocol

from . import _limits
from ._abnf import OWS, field_name_lower, is_token, parse_decimal, parse_hex
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
_STOPPED, _DEAD = 7, 8

#: bytes a head may not contain anywhere (CR and LF are checked as line structure)
_BAD_HEAD_BYTE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]").search
_HTTP_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]").fullmatch
#: uri-host [ ":" port ] as a Host value: reg-name / IPv4 / IP-literal (RFC 9110 §7.2, 3986 §3.2.2)
_HOST_VALUE = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?"
).fullmatch
_CHUNK_EXT_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f\"]").search

_METHOD_CACHE: dict[bytes, bool] = {}


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
        keep_alive: whether the connection persists after this message (version and Connection).
        expect_continue: the request carries ``Expect: 100-continue``.
        upgrade: the message asks for (request) or agrees to (101 response) a protocol upgrade.
        host: the Host field value of a request (None without one).
        header_length: bytes of the head on the wire, start line and final blank line included.
    """

    __slots__ = (
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

    def __init__(self) -> None:
        self.method = self.target = self.status = self.phrase = b""
        self.version = b"1.1"
        self.headers: RawHeaders = []
        self.content_length: int | None = None
        self.chunked = False
        self.framing = NO_BODY
        self.connection: tuple[bytes, ...] = ()
        self.keep_alive = True
        self.expect_continue = False
        self.upgrade = False
        self.host: bytes | None = None
        self.header_length = 0

    def __repr__(self) -> str:
        if self.method:
            start = self.method + b" " + self.target
        else:
            start = self.status + b" " + self.phrase
        text = start.decode("latin-1")
        return f"<Head {text!r} HTTP/{self.version.decode()} fields={len(self.headers)}>"


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
        if self._state >= _STOPPED or self._paused:
            if self._state == _DEAD:
                return
            self._buf = data
            return
        try:
            self._run(data)
        except HttpError:
            self._state = _DEAD
            self._buf = b""
            raise

    def _run(self, data: bytes) -> None:
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
                take = min(self._left, end - pos)
                chunk = data if (pos == 0 and take == end) else data[pos : pos + take]
                pos += take
                self._left -= take
                self.transfer_length += take
                owner.input_body(chunk)
                if not self._left:
                    self._message_done([])
            elif state == _CHUNK_DATA:
                take = min(self._left, end - pos)
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
                if end - pos < 2:
                    self._buf = data[pos:]
                    if data[pos : pos + 1] != b"\r":
                        raise ChunkTerminatorError(f"chunk data followed by {data[pos:]!r}")
                    return
                if data[pos : pos + 2] != b"\r\n":
                    if self.lenient_bare_lf and data[pos : pos + 1] == b"\n":
                        pos += 1
                        self.transfer_length += 1
                        self._state = _CHUNK_SIZE
                        continue
                    raise ChunkTerminatorError(f"chunk data followed by {data[pos : pos + 2]!r}")
                pos += 2
                self.transfer_length += 2
                self._state = _CHUNK_SIZE
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
        if data.startswith(b"\r\n", pos) or data.startswith(b"\n", pos):
            # empty lines before a start line are ignored (RFC 9112 §2.2); LF alone too
            while data.startswith(b"\r\n", pos) or data.startswith(b"\n", pos):
                pos += 2 if data[pos] == 13 else 1
            if pos == len(data):
                return pos
        scan = max(pos, self._scan)
        end = data.find(b"\r\n\r\n", scan)
        bare = data.find(b"\n\n", scan)
        if bare != -1 and (end == -1 or bare < end):
            if not self.lenient_bare_lf:
                raise HeaderLineEndingError("a line of the head ends with LF alone")
            head_end, after = bare, bare + 2
        elif end != -1:
            head_end, after = end, end + 4
        else:
            self._check_partial_head(data, pos)
            self._buf = data[pos:]
            self._scan = max(0, len(data) - pos - 3)
            return -1
        self._scan = 0
        size = after - pos
        if size > self.max_field_section:
            raise FieldSectionTooLargeError(f"{size} bytes (limit {self.max_field_section})")
        head = self._head_from(data[pos:head_end])
        head.header_length = size
        self.header_length = size
        self.transfer_length = 0
        self._start_message(head)
        return after

    def _check_partial_head(self, data: bytes, pos: int) -> None:
        """Fail early on an incomplete head that is already too large."""
        pending = len(data) - pos
        if self.requests and pending > self.max_request_line:
            line_end = data.find(b"\n", pos, pos + self.max_request_line + 1)
            if line_end == -1:
                raise RequestTargetTooLongError(
                    f"request line longer than {self.max_request_line} bytes"
                )
        if pending > self.max_field_section:
            raise FieldSectionTooLargeError(
                f"more than {self.max_field_section} bytes without the end of the head"
            )

    def _lines(self, block: bytes) -> list[bytes]:
        """The lines of a head or trailer block, line structure and bytes checked."""
        bad = _BAD_HEAD_BYTE(block)
        if bad is not None:
            raise HeaderValueError(f"forbidden byte {bad.group()!r} in the head")
        lines = block.split(b"\r\n")
        crs = block.count(b"\r")
        lfs = block.count(b"\n")
        if crs == lfs == len(lines) - 1:
            return lines
        if lfs > len(lines) - 1:  # some line ends with LF alone
            if not self.lenient_bare_lf:
                raise HeaderLineEndingError("a line of the head ends with LF alone")
            lines = [line[:-1] if line.endswith(b"\r") else line for line in block.split(b"\n")]
            if any(b"\r" in line for line in lines):
                raise BareCRError("a CR not followed by LF in the head")
            return lines
        raise BareCRError("a CR not followed by LF in the head")

    def _head_from(self, block: bytes) -> Head:
        lines = self._lines(block)
        head = Head()
        if self.requests:
            self._request_line(head, lines[0])
        else:
            self._status_line(head, lines[0])
        if len(lines) - 1 > self.max_fields:
            raise TooManyFieldsError(f"{len(lines) - 1} field lines (limit {self.max_fields})")
        headers = head.headers = self._fields(lines, 1, first_is_top=True)
        self._interpret(head, headers)
        return head

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
            if len(_METHOD_CACHE) < 256:
                _METHOD_CACHE[method] = True
        if not target:
            raise RequestLineError("empty request target")
        head.method = method
        head.target = target
        head.version = _version(version, RequestLineError)
        first = target[0]
        if first == 47:  # "/": origin-form
            return
        if method == b"CONNECT":  # authority-form
            if not _HOST_VALUE(target) or b":" not in target:
                raise RequestLineError(f"invalid CONNECT target {target!r}")
            return
        if target == b"*":
            if method != b"OPTIONS":
                raise RequestLineError("asterisk-form target is only for OPTIONS")
            return
        scheme, sep, _ = target.partition(b"://")
        if not sep or scheme.lower() not in (b"http", b"https"):
            raise RequestLineError(f"invalid request target {target!r}")

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

    def _fields(self, lines: list[bytes], start: int, first_is_top: bool) -> RawHeaders:
        fields: RawHeaders = []
        append = fields.append
        for index in range(start, len(lines)):
            line = lines[index]
            colon = line.find(b":")
            if colon > 0:
                name = line[:colon]
                if field_name_lower(name) is None:
                    if name[:1] in (b" ", b"\t"):
                        self._fold(fields, line, first_is_top and index == start)
                        continue
                    if name[-1:] in (b" ", b"\t"):
                        raise HeaderSpaceError(f"whitespace before the colon in {name!r}")
                    raise HeaderNameError(f"invalid field name {name!r}")
                append((name, line[colon + 1 :]))
            elif line[:1] in (b" ", b"\t"):
                self._fold(fields, line, first_is_top and index == start)
            elif colon == 0:
                raise HeaderNameError("empty field name")
            else:
                raise HeaderNoColonError(f"field line without a colon: {line[:40]!r}")
        return fields

    def _fold(self, fields: RawHeaders, line: bytes, first: bool) -> None:
        if first or not fields:
            raise TopLineSpaceError("whitespace before the first field line")
        if not self.lenient_obs_fold:
            raise ObsoleteFoldError(f"folded continuation line {line[:40]!r}")
        name, value = fields[-1]
        fields[-1] = (name, value.rstrip(OWS) + b" " + line.strip(OWS))

    def _interpret(self, head: Head, headers: RawHeaders) -> None:
        """Framing and connection facts from the fields (RFC 9112 §6, §9.6; RFC 9110 §7.2)."""
        lengths: list[bytes] = []
        codings: list[bytes] = []
        connection: list[bytes] = []
        hosts: list[bytes] = []
        for name, value in headers:
            lower = field_name_lower(name) or name.lower()
            if lower not in _SPECIAL_FIELDS:
                continue
            if lower == b"content-length":
                lengths.append(value.strip(OWS))
            elif lower == b"transfer-encoding":
                codings += [c.strip(OWS).lower() for c in value.split(b",")]
            elif lower == b"connection":
                connection += [c.strip(OWS).lower() for c in value.split(b",")]
            elif lower == b"host":
                hosts.append(value.strip(OWS))
            elif lower == b"expect":
                if value.strip(OWS).lower() == b"100-continue":
                    head.expect_continue = True
            elif lower == b"upgrade":
                head.upgrade = True
        head.connection = tuple(c for c in connection if c)
        if head.version == b"1.1":
            head.keep_alive = b"close" not in head.connection
        else:
            head.keep_alive = b"keep-alive" in head.connection and b"close" not in head.connection
        if head.upgrade and b"upgrade" not in head.connection:
            head.upgrade = False  # Upgrade is only meaningful when Connection lists it
        if self.requests:
            self._check_host(head, hosts)
        if codings:
            if lengths:
                raise TransferEncodingCLError("both Transfer-Encoding and Content-Length")
            if head.version == b"1.0" and self.requests:
                raise RequestTransferEncodingError("Transfer-Encoding in an HTTP/1.0 request")
            codings = [c for c in codings if c]
            if not codings:
                raise TransferCodeError("empty Transfer-Encoding")
            for coding in codings[:-1]:
                if coding == b"chunked":
                    raise RequestTransferEncodingError("chunked is not the last coding")
                raise TransferCodeError(f"unsupported transfer coding {coding!r}")
            if codings[-1] != b"chunked":
                if self.requests:
                    raise RequestTransferEncodingError(
                        f"request Transfer-Encoding ends in {codings[-1]!r}, not chunked"
                    )
                raise TransferCodeError(f"unsupported transfer coding {codings[-1]!r}")
            head.chunked = True
            head.framing = CHUNKED
        elif lengths:
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
        elif self.requests:
            head.framing = NO_BODY
        else:
            head.framing = CLOSE

    def _check_host(self, head: Head, hosts: list[bytes]) -> None:
        if len(hosts) > 1:
            raise InvalidHostError(f"{len(hosts)} Host fields")
        if not hosts:
            if head.version == b"1.1":
                raise HostRequiredError("HTTP/1.1 request without Host")
            return
        host = hosts[0]
        if not _HOST_VALUE(host):
            raise InvalidHostError(f"invalid Host {host!r}")
        head.host = host

    # -- message boundaries ---------------------------------------------------------------------

    def _start_message(self, head: Head) -> None:
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
        max_body = self.max_body_size
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
        else:
            self._message_done([])

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
        if len(data) - pos < 2:
            self._buf = data[pos:]
            return -1
        if self.lenient_bare_lf and data.startswith(b"\n", pos):
            self.transfer_length += 1
            self._message_done([])
            return pos + 1
        end = data.find(b"\r\n\r\n", pos)
        if end == -1:
            if len(data) - pos > self.max_field_section:
                raise FieldSectionTooLargeError(f"trailers over {self.max_field_section} bytes")
            if data.find(b"\n\n", pos) != -1 and not self.lenient_bare_lf:
                raise HeaderLineEndingError("a trailer line ends with LF alone")
            self._buf = data[pos:]
            return -1
        if end + 4 - pos > self.max_field_section:
            raise FieldSectionTooLargeError(f"trailers over {self.max_field_section} bytes")
        lines = self._lines(data[pos:end])
        if len(lines) > self.max_fields:
            raise TooManyFieldsError(f"{len(lines)} trailer lines (limit {self.max_fields})")
        trailers = self._fields(lines, 0, first_is_top=True)
        self.transfer_length += end + 4 - pos
        self._message_done(trailers)
        return end + 4


def _version(version: bytes, error: type[HttpError]) -> bytes:
    if version == b"HTTP/1.1":
        return b"1.1"
    if version == b"HTTP/1.0":
        return b"1.0"
    if _HTTP_VERSION(version):
        raise HttpVersionError(f"HTTP version {version!r}")
    raise error(f"invalid HTTP version {version!r}")


_SPECIAL_FIELDS = frozenset(
    (b"content-length", b"transfer-encoding", b"connection", b"host", b"expect", b"upgrade")
)
