"""Writing HTTP/1.1 messages: start lines, field sections and chunked framing, validated.

Nothing invalid leaves: a name that is not a token, a value with CR, LF, NUL or another control
byte, a bad method, target, status or phrase raises ``OutputSyntaxError`` at the caller, so a
header value taken from one peer can never inject fields or messages towards another. A head is
built as one flat list joined once; forbidden bytes are found with one scan of the result.

A relayed field is written back byte-identical: a value that starts with whitespace (as values
are kept from the wire), or is empty, is written right after the colon, others after ``": "``.
"""

from __future__ import annotations

import re

from ._abnf import field_name_lower, is_token
from ._headers import RawHeaderListType
from .error import OutputSyntaxError

__all__ = [
    "LAST_CHUNK",
    "body_bytes",
    "encode_chunk",
    "not_bytes_pairs",
    "request_head",
    "response_head",
    "trailer_section",
]

LAST_CHUNK = b"0\r\n\r\n"

_BAD_OUTPUT_BYTE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]").search
#: the same bytes, for ``bytes.translate`` (one C-level pass, several times faster than the regex)
_BAD_OUTPUT_BYTES = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
#: a request target is VCHARs (a URI is ASCII: RFC 9112 §3.2, RFC 3986 §2)
_BAD_TARGET_BYTE = re.compile(rb"[\x00-\x20\x7f-\xff]").search
_STATUS = re.compile(rb"[1-9][0-9][0-9]").fullmatch


def _fields(lines: list[bytes], headers: RawHeaderListType) -> None:
    """Append the field lines of ``headers`` to ``lines`` (validated)."""
    append = lines.append
    try:
        for name, value in headers:
            if field_name_lower(name) is None:
                raise OutputSyntaxError(f"invalid field name {name!r}")
            if 13 in value or 10 in value:
                raise OutputSyntaxError(f"CR or LF in the value of {name!r}")
            if not value or value[0] in (32, 9):  # empty, or starts with SP / HTAB
                append(name + b":" + value + b"\r\n")
            else:
                append(name + b": " + value + b"\r\n")
    except (TypeError, ValueError):  # not pairs of bytes (str, None, a triple...)
        raise OutputSyntaxError(not_bytes_pairs(headers)) from None


def not_bytes_pairs(headers: object) -> str:
    """What is wrong with header fields that are not ``(name, value)`` pairs of bytes (the
    first such field, or the whole when it is not a list), for an ``OutputSyntaxError``."""
    pairs = headers if isinstance(headers, list | tuple) else ()
    bad = next((field for field in pairs if not _bytes_pair(field)), headers)
    return f"a header field is a (name, value) pair of bytes, not {bad!r}"


def _bytes_pair(field: object) -> bool:
    return (
        isinstance(field, tuple | list)
        and len(field) == 2
        and isinstance(field[0], bytes)
        and isinstance(field[1], bytes)
    )


def _finish(lines: list[bytes]) -> bytes:
    lines.append(b"\r\n")
    head = b"".join(lines)
    if len(head.translate(None, _BAD_OUTPUT_BYTES)) != len(head):
        bad = _BAD_OUTPUT_BYTE(head)
        assert bad is not None
        raise OutputSyntaxError(f"forbidden byte {bad.group()!r} in the message head")
    return head


def _version(version: bytes) -> bytes:
    if version not in (b"1.1", b"1.0"):
        raise OutputSyntaxError(f"invalid HTTP version {version!r}")
    return version


def request_head(
    method: bytes, target: bytes, headers: RawHeaderListType, version: bytes = b"1.1"
) -> bytes:
    """The serialised head of a request (request line, fields, blank line).

    Raises:
        OutputSyntaxError: an invalid method, target, version or field.
    """
    if not is_token(method):
        raise OutputSyntaxError(f"invalid method {method!r}")
    if not target or _BAD_TARGET_BYTE(target) is not None:
        raise OutputSyntaxError(f"invalid request target {target!r}")
    lines = [method + b" " + target + b" HTTP/" + _version(version) + b"\r\n"]
    _fields(lines, headers)
    return _finish(lines)


def response_head(
    status: bytes, phrase: bytes, headers: RawHeaderListType, version: bytes = b"1.1"
) -> bytes:
    """The serialised head of a response (status line, fields, blank line).

    Raises:
        OutputSyntaxError: an invalid status (three digits), phrase, version or field.
    """
    if not _STATUS(status):
        raise OutputSyntaxError(f"invalid status code {status!r}")
    if 13 in phrase or 10 in phrase:
        raise OutputSyntaxError(f"CR or LF in the reason phrase {phrase!r}")
    lines = [b"HTTP/" + _version(version) + b" " + status + b" " + phrase + b"\r\n"]
    _fields(lines, headers)
    return _finish(lines)


def body_bytes(chunk: bytes | bytearray | memoryview) -> bytes:
    """A body chunk the application gave, as bytes: a copy of a bytearray or memoryview (the
    output may wait, and the application may reuse its buffer meanwhile; a memoryview's items
    may be wider than a byte, and framing counts bytes).

    Raises:
        TypeError: ``chunk`` is not bytes, a bytearray or a memoryview.
    """
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(
        f"a body chunk is bytes, a bytearray or a memoryview, not {type(chunk).__name__}"
    )


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body; nothing for empty ``data`` (an empty chunk would be the
    last-chunk, ending the body early)."""
    if not data:
        return b""
    return b"%x\r\n%b\r\n" % (len(data), data)


def trailer_section(trailers: RawHeaderListType) -> bytes:
    """The end of a chunked body: the last chunk, the trailer fields and the blank line."""
    if not trailers:
        return LAST_CHUNK
    lines = [b"0\r\n"]
    _fields(lines, trailers)
    return _finish(lines)
