"""How a server frames a response, and its head serialised in one pass (RFC 9110/9112).

Theory of operation
-------------------
``response_head`` turns what the application passed to ``response_start`` into the bytes of the
head and the framing of the body that follows, in one loop over the header list:

- each field name is validated against the token grammar (through the cached
  ``field_name_lower``) and each value checked for CR and LF; the joined head is then scanned
  once for any other forbidden byte, so nothing the application passes can inject a field or a
  message (``OutputSyntaxError``);
- hop-by-hop fields (``hop_by_hop_hdrs``, plus the fields a Connection field names) are dropped:
  the server manages the connection and the framing itself. Two exceptions: ``Upgrade`` is kept
  on 101 and 426 responses (RFC 9110 §7.8 requires it there; ``Connection: upgrade`` is added);
  ``Content-Length`` is never hop-by-hop: it is validated and decides the framing;
- ``Date`` is added when absent (a cached value the server refreshes once a second).

The body framing is a table lookup (``_STATUS_KIND`` by status, then the request's method and
version), RFC 9112 §6.3:

=====================================  =========================================================
response                               framing
=====================================  =========================================================
to HEAD; 304                           NO_BODY (the application's Content-Length is kept: it
                                       describes the representation)
204; 101; 2xx to CONNECT               NO_BODY (Content-Length dropped)
205                                    NO_BODY, with ``Content-Length: 0`` (RFC 9110 §15.3.6:
                                       no content; 205 is not among the statuses a client
                                       knows to carry none, so the framing says so)
Content-Length given                   COUNTED (the body is counted: more is ``OutputError``)
otherwise, HTTP/1.1 request            CHUNKED (``Transfer-Encoding: chunked`` added)
otherwise, HTTP/1.0 request            CLOSE (the end of the body is the end of the connection)
=====================================  =========================================================

Persistence: the caller says whether the connection may persist (the request's Connection and
version, the server's state); a close-delimited body, or ``Connection: close`` from the
application, ends it too. A response that ends the connection carries ``Connection: close``; a
persistent response to an HTTP/1.0 request carries ``Connection: keep-alive``.
"""

from __future__ import annotations

import re
import time
from email.utils import formatdate

from ._abnf import MAX_DECIMAL_DIGITS, OWS, field_name_lower
from ._headers import RawHeaderListType, hop_by_hop_hdrs
from ._serializer import not_bytes_pairs
from .error import OutputSyntaxError

__all__ = [
    "CHUNKED",
    "CLOSE",
    "COUNTED",
    "NO_BODY",
    "DateCache",
    "date_cache",
    "interim_head",
    "response_head",
    "simple_response",
]

# response framings
NO_BODY = 0
COUNTED = 1
CHUNKED = 2
CLOSE = 3

# status kinds (values of _STATUS_KIND)
_NORMAL = 0
_NO_BODY_KEEP_CL = 1  # 304: no body; a Content-Length describes the selected representation
_NO_BODY = 2  # 204: no body, no Content-Length (RFC 9110 §8.6)
_SWITCH = 3  # 101: the connection changes protocols after the head
_UPGRADE_REQUIRED = 4  # 426: must carry Upgrade
_INTERIM = 5  # other 1xx: not a final response
_RESET_CONTENT = 6  # 205: no body, framed as Content-Length: 0 (RFC 9110 §15.3.6)

_STATUS = re.compile(rb"[1-5][0-9][0-9]").fullmatch
_STATUS_KIND: dict[bytes, int] = {}
#: maps every byte a field value or phrase may not hold (CTLs but HTAB, DEL) to NUL, and the
#: others to themselves: ``0 in value.translate(_NUL_IF_BAD)`` is one C-level scan
_NUL_IF_BAD = bytes(0 if (b < 0x20 and b != 0x09) or b == 0x7F else b for b in range(256))

# how response_head treats an application's field, by lower-case name
_PLAIN = -1  # written as given
_DROP = 0
_CONTENT_LENGTH = 1
_DATE = 2
_CONNECTION = 3
_UPGRADE = 4
_MANAGED: dict[bytes, int] = dict.fromkeys(hop_by_hop_hdrs, _DROP)
_MANAGED.update({b"content-length": _CONTENT_LENGTH, b"date": _DATE, b"connection": _CONNECTION})
_MANAGED[b"upgrade"] = _UPGRADE
#: field name (as given) -> what to do with it, for names seen before (validated)
_OUT_NAMES: dict[bytes, int] = {}
_OUT_NAMES_LIMIT = 4096
#: (status, phrase) -> (status kind, status line), for the final statuses seen (validated)
_STATUS_LINES: dict[tuple[bytes, bytes], tuple[int, bytes]] = {}
_STATUS_LINES_LIMIT = 256
#: response heads already serialised, by everything that went into them (the Date line too):
#: an application sends the same few heads all day, and a repeated head needs no validation
_PREPARED: dict[tuple[object, ...], tuple[bytes, int, int, bool]] = {}
_PREPARED_LIMIT = 512
#: Connection tokens that are options, not names of fields to drop
_CONNECTION_OPTIONS = frozenset((b"close", b"keep-alive", b"upgrade"))

_CRLF = b"\r\n"
_COLON = b":"
_COLON_SP = b": "
_CHUNKED_LINE = b"Transfer-Encoding: chunked\r\n"
_CLOSE_LINE = b"Connection: close\r\n"
_KEEP_ALIVE_LINE = b"Connection: keep-alive\r\n"
_UPGRADE_LINE = b"Connection: upgrade\r\n"


class DateCache:
    """The ``Date`` field line, refreshed at most once a second (``refresh``).

    Attributes:
        line: ``b"Date: <IMF-fixdate>\\r\\n"`` for the second of the last refresh.
    """

    __slots__ = ("_second", "line")

    def __init__(self) -> None:
        self._second = -1
        self.line = b""
        self.refresh()

    def refresh(self) -> None:
        """Recompute the line if the wall-clock second changed."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self.line = b"Date: " + formatdate(second, usegmt=True).encode("ascii") + _CRLF


#: shared by every server of the process (each server's sweep refreshes it)
date_cache = DateCache()


def _status_kind(status: bytes) -> int:
    """The kind of a status code (validated: three digits, 1xx to 5xx)."""
    kind = _STATUS_KIND.get(status)
    if kind is not None:
        return kind
    if type(status) is not bytes or not _STATUS(status):
        raise OutputSyntaxError(f"invalid status code {status!r}")
    if status == b"101":
        kind = _SWITCH
    elif status[:1] == b"1":
        kind = _INTERIM
    elif status == b"204":
        kind = _NO_BODY
    elif status == b"304":
        kind = _NO_BODY_KEEP_CL
    elif status == b"205":
        kind = _RESET_CONTENT
    elif status == b"426":
        kind = _UPGRADE_REQUIRED
    else:
        kind = _NORMAL
    _STATUS_KIND[status] = kind
    return kind


def _classify(name: bytes) -> int:
    """What response_head does with a field name (validated and cached)."""
    what = _OUT_NAMES.get(name)
    if what is None:
        lower = field_name_lower(name)
        if lower is None:
            raise OutputSyntaxError(f"invalid field name {name!r}")
        what = _MANAGED.get(lower, _PLAIN)
        if len(_OUT_NAMES) < _OUT_NAMES_LIMIT:
            _OUT_NAMES[name] = what
    return what


def _status_line(status: bytes, phrase: bytes) -> tuple[int, bytes]:
    """The kind of a final status and its status line (validated, and cached when there is
    room)."""
    kind = _status_kind(status)
    if kind == _INTERIM:
        raise OutputSyntaxError(f"{status!r} is not a final status: use response_nonfinal")
    if type(phrase) is not bytes or 0 in phrase.translate(_NUL_IF_BAD):
        raise OutputSyntaxError(f"invalid reason phrase {phrase!r}")
    entry = (kind, b"HTTP/1.1 " + status + b" " + phrase + _CRLF)
    if len(_STATUS_LINES) < _STATUS_LINES_LIMIT:
        _STATUS_LINES[status, phrase] = entry
    return entry


def response_head(  # noqa: PLR0917 - positional: a hot path
    status: bytes,
    phrase: bytes,
    headers: RawHeaderListType,
    method: bytes,
    req_version: bytes,
    persist: bool,
) -> tuple[bytes, int, int, bool]:
    """Serialise a final response head for a request, deciding its framing.

    Args:
        status, phrase, headers: as given to ``response_start``.
        method, req_version: of the request answered.
        persist: whether the connection may stay open after this response.

    Returns:
        ``(head, framing, content_length, persist)``: the bytes of the head, the body framing
        (NO_BODY, COUNTED, CHUNKED, CLOSE), the Content-Length to count (COUNTED only) and
        whether the connection stays open after this response.

    Raises:
        OutputSyntaxError: an invalid status, phrase, field name or value, Content-Length, or a
            1xx status (those go through ``response_nonfinal``).
    """
    key = prepared = None
    if type(headers) is list:
        try:
            key = (status, phrase, method, req_version, persist, date_cache.line, *headers)
            prepared = _PREPARED.get(key)
        except TypeError:  # a field given as a list (unhashable): serialise it every time
            key = None
    else:  # (any iterable: it is read once)
        headers = list(headers)
    if prepared is None:
        try:
            prepared = _response_head(status, phrase, headers, method, req_version, persist)
        except (TypeError, ValueError):  # fields that are not pairs of bytes (str, a triple)
            raise OutputSyntaxError(not_bytes_pairs(headers)) from None
        if key is not None:
            if len(_PREPARED) >= _PREPARED_LIMIT:
                _PREPARED.clear()  # (the Date changes every second: old heads are dead weight)
            _PREPARED[key] = prepared
    return prepared


def _response_head(  # noqa: PLR0917
    status: bytes,
    phrase: bytes,
    headers: RawHeaderListType,
    method: bytes,
    req_version: bytes,
    persist: bool,
) -> tuple[bytes, int, int, bool]:
    """``response_head`` without the cache (the work it saves)."""
    try:
        kind, status_line = _STATUS_LINES[status, phrase]
    except (KeyError, TypeError):  # not seen yet (or unhashable: invalid)
        kind, status_line = _status_line(status, phrase)
    parts = [status_line]
    length: bytes | None = None
    has_date = False
    tokens: list[bytes] | None = None
    upgrade = False
    names = _OUT_NAMES
    for name, value in headers:
        what = names.get(name)
        if what is None:
            what = _classify(name)
        if 0 in value.translate(_NUL_IF_BAD):
            raise OutputSyntaxError(f"forbidden byte in the value of {name!r}: {value!r}")
        if what != _PLAIN:
            if what == _DATE:
                has_date = True
            elif what == _CONTENT_LENGTH:
                digits = value.strip(OWS)
                if not digits.isdigit() or len(digits) > MAX_DECIMAL_DIGITS:
                    raise OutputSyntaxError(f"invalid Content-Length {value!r}")
                if length is not None and length != digits:
                    raise OutputSyntaxError(f"Content-Lengths {length!r} and {digits!r}")
                length = digits
                continue
            elif what == _CONNECTION:
                if tokens is None:
                    tokens = []
                tokens += [t.strip(OWS).lower() for t in value.split(b",")]
                continue
            elif what == _UPGRADE and (kind in (_SWITCH, _UPGRADE_REQUIRED)):
                upgrade = True
            else:
                continue
        parts += (name, _COLON if value[:1] <= b" " else _COLON_SP, value, _CRLF)
    if tokens:
        if b"close" in tokens:
            persist = False
        nominated = set(tokens) - _CONNECTION_OPTIONS
        nominated.discard(b"")
        nominated.discard(b"content-length")
        if nominated:  # fields the application marked hop-by-hop: drop them, start again
            nominated.add(b"connection")
            kept = [(n, v) for n, v in headers if field_name_lower(n) not in nominated]
            return _response_head(status, phrase, kept, method, req_version, persist)
    if not has_date:
        parts.append(date_cache.line)
    content_length = 0
    if kind not in (_NORMAL, _UPGRADE_REQUIRED):
        framing = NO_BODY
        if kind == _NO_BODY_KEEP_CL and length is not None:
            parts += (b"Content-Length: ", length, _CRLF)
        elif kind == _RESET_CONTENT:
            parts.append(b"Content-Length: 0\r\n")
    elif method == b"HEAD":
        framing = NO_BODY
        if length is not None:
            parts += (b"Content-Length: ", length, _CRLF)
    elif method == b"CONNECT" and status[:1] == b"2":
        framing = NO_BODY  # a tunnel follows (RFC 9110 §9.3.6: no Content-Length)
    elif length is not None:
        framing = COUNTED
        content_length = int(length)
        parts += (b"Content-Length: ", length, _CRLF)
    elif req_version == b"1.1":
        framing = CHUNKED
        parts.append(_CHUNKED_LINE)
    else:
        framing = CLOSE
        persist = False
    if kind == _SWITCH:
        parts.append(_UPGRADE_LINE)
    elif upgrade:
        parts.append(_UPGRADE_LINE if persist else b"Connection: upgrade, close\r\n")
    elif not persist:
        parts.append(_CLOSE_LINE)
    elif req_version == b"1.0":
        parts.append(_KEEP_ALIVE_LINE)
    parts.append(_CRLF)
    return b"".join(parts), framing, content_length, persist


_INTERIM_DROPPED = (b"content-length", b"transfer-encoding")


def interim_head(status: bytes, phrase: bytes, headers: RawHeaderListType) -> bytes:
    """Serialise a 1xx (non-final) response head; its fields are written as given, but for
    Content-Length and Transfer-Encoding, which a 1xx never carries (it has no content: RFC 9110
    §6.4.1, §8.6; a client honouring them would take the next bytes as a body).

    Raises:
        OutputSyntaxError: a status that is not 1xx (or is 101, which ``response_start``
            sends), an invalid phrase, field name or value.
    """
    if _status_kind(status) != _INTERIM:
        raise OutputSyntaxError(f"{status!r} is not a non-final status (101 is response_start's)")
    if type(phrase) is not bytes or 0 in phrase.translate(_NUL_IF_BAD):
        raise OutputSyntaxError(f"invalid reason phrase {phrase!r}")
    parts = [b"HTTP/1.1 ", status, b" ", phrase, _CRLF]
    for name, value in headers:
        lower = field_name_lower(name)
        if lower is None:
            raise OutputSyntaxError(f"invalid field name {name!r}")
        if 0 in value.translate(_NUL_IF_BAD):
            raise OutputSyntaxError(f"forbidden byte in the value of {name!r}: {value!r}")
        if lower in _INTERIM_DROPPED:
            continue
        parts += (name, _COLON if value[:1] <= b" " else _COLON_SP, value, _CRLF)
    parts.append(_CRLF)
    return b"".join(parts)


def simple_response(status: bytes, phrase: bytes, text: bytes, with_body: bool = True) -> bytes:
    """A complete ``text/plain`` response that closes the connection (error answers)."""
    body = text if with_body else b""
    return b"".join(
        (
            b"HTTP/1.1 ",
            status,
            b" ",
            phrase,
            _CRLF,
            date_cache.line,
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: ",
            str(len(text)).encode("ascii"),
            _CRLF,
            _CLOSE_LINE,
            _CRLF,
            body,
        )
    )
