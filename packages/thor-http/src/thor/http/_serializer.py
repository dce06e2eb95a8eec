"""Writing HTTP/1.1 messages: start lines, field sections and chunked framing, validated.

Nothing invalid leaves: a name that is not a token, a value with CR, LF, NUL or another control
byte, a bad method, target, status or phrase raises ``OutputSyntaxError`` at the caller, so a
header value taken from one peer can never inject fields or messages towards another. A head is
built as one flat list joined once; forbidden bytes are found with one scan of the result.

A relayed field is written back byte-identical: a value that starts with whitespace (as values
are kept from the wire) is written right after the colon, others after ``": "``.
"""

from __future__ import annotations

import re

from ._abnf import field_name_lower, is_token
from ._headers import RawHeaderListType
from .error import OutputSyntaxError

__all__ = [
    "LAST_CHUNK",
    "encode_chunk",
    "request_head",
    "response_head",
    "trailer_section",
]

LAST_CHUNK = b"0\r\n\r\n"

_BAD_OUTPUT_BYTE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]").search
_BAD_TARGET_BYTE = re.compile(rb"[\x00-\x20\x7f]").search
_STATUS = re.compile(rb"[1-9][0-9][0-9]").fullmatch


def _fields(lines: list[bytes], headers: RawHeaderListType) -> None:
    """Append the field lines of ``headers`` to ``lines`` (validated)."""
    append = lines.append
    for name, value in headers:
        if field_name_lower(name) is None:
            raise OutputSyntaxError(f"invalid field name {name!r}")
        if 13 in value or 10 in value:
            raise OutputSyntaxError(f"CR or LF in the value of {name!r}")
        if value[:1] in (b" ", b"\t"):
            append(name + b":" + value + b"\r\n")
        else:
            append(name + b": " + value + b"\r\n")


def _finish(lines: list[bytes]) -> bytes:
    lines.append(b"\r\n")
    head = b"".join(lines)
    bad = _BAD_OUTPUT_BYTE(head)
    if bad is not None:
        raise OutputSyntaxError(f"forbidden byte {bad.group()!r} in the message head")
    return head


def request_head(
    method: bytes, target: bytes, headers: RawHeaderListType, version: bytes = b"1.1"
) -> bytes:
    """The serialised head of a request (request line, fields, blank line).

    Raises:
        OutputSyntaxError: an invalid method, target or field.
    """
    if not is_token(method):
        raise OutputSyntaxError(f"invalid method {method!r}")
    if not target or _BAD_TARGET_BYTE(target) is not None:
        raise OutputSyntaxError(f"invalid request target {target!r}")
    lines = [method + b" " + target + b" HTTP/" + version + b"\r\n"]
    _fields(lines, headers)
    return _finish(lines)


def response_head(
    status: bytes, phrase: bytes, headers: RawHeaderListType, version: bytes = b"1.1"
) -> bytes:
    """The serialised head of a response (status line, fields, blank line).

    Raises:
        OutputSyntaxError: an invalid status (three digits), phrase or field.
    """
    if not _STATUS(status):
        raise OutputSyntaxError(f"invalid status code {status!r}")
    if 13 in phrase or 10 in phrase:
        raise OutputSyntaxError(f"CR or LF in the reason phrase {phrase!r}")
    lines = [b"HTTP/" + version + b" " + status + b" " + phrase + b"\r\n"]
    _fields(lines, headers)
    return _finish(lines)


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (``data`` must not be empty)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def trailer_section(trailers: RawHeaderListType) -> bytes:
    """The end of a chunked body: the last chunk, the trailer fields and the blank line."""
    if not trailers:
        return LAST_CHUNK
    lines = [b"0\r\n"]
    _fields(lines, trailers)
    return _finish(lines)
