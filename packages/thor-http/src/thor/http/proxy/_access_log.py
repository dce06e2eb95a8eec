"""The proxy's access record, and the writers that turn records into log lines.

A proxy emits one ``AccessRecord`` per request as its ``'access'`` event; a writer is any
callable taking a record, so logging is ``proxy.on("access", CommonLogWriter(sys.stdout))``.
Two writers are provided: ``CommonLogWriter`` (the NCSA common log format, optionally
extended with the upstream and the times) and ``JsonLinesWriter`` (one JSON object per line).

Both write text to a stream and leave buffering and flushing to it (a file opened with
``buffering=1`` flushes each line; ``sys.stdout`` does when it is a terminal). Times in the
lines are UTC, so that a line says the same thing wherever it is read; month names are English
whatever the locale (the common log format requires it).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Protocol

__all__ = ["AccessRecord", "CommonLogWriter", "JsonLinesWriter"]


@dataclass(slots=True)
class AccessRecord:
    """What happened to one proxied (or locally answered) request.

    Times are in seconds, measured on the loop's clock from when the request head arrived;
    None when that step did not happen (no upstream was used, or it never answered).

    Attributes:
        client: the client's address ``(host, port)`` as the proxy believes it (the PROXY
            protocol header's source when that is enabled).
        method, target: the request line's method and request target (bytes, as received).
        version: the request's HTTP version (b"1.1" or b"1.0").
        status: the status code sent to the client (int; 0 when no response was sent).
        bytes_in: request body bytes received from the client.
        bytes_out: response body bytes sent to the client.
        upstream: ``"host:port"`` of the upstream used, or None (answered locally, refused).
        connect_time: until the upstream connection was ready (None: none was used).
        first_byte_time: until the upstream's response head arrived.
        total_time: until the response to the client was done (or the exchange failed).
        error: a short reason when the exchange failed (``"upstream timeout"``), else None.
        started: the wall-clock time (``time.time()``) when the request head arrived.
    """

    client: tuple[str, int]
    method: bytes
    target: bytes
    version: bytes
    status: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    upstream: str | None = None
    connect_time: float | None = None
    first_byte_time: float | None = None
    total_time: float | None = None
    error: str | None = None
    started: float = 0.0


_new_record = object.__new__


def begin_record(
    client: tuple[str, int], method: bytes, target: bytes, version: bytes, started: float
) -> AccessRecord:
    """``AccessRecord(client, method, target, version, started=started)``, made field by field:
    a class call with a keyword argument costs twice as much on CPython 3.11, and the proxy
    makes one record per request. (A test checks that both give equal records.)"""
    record: AccessRecord = _new_record(AccessRecord)
    record.client = client
    record.method = method
    record.target = target
    record.version = version
    record.status = 0
    record.bytes_in = 0
    record.bytes_out = 0
    record.upstream = None
    record.connect_time = None
    record.first_byte_time = None
    record.total_time = None
    record.error = None
    record.started = started
    return record


class TextStream(Protocol):
    """Where writers put their lines: anything with ``write(str)`` (a text file, sys.stdout,
    io.StringIO)."""

    def write(self, text: str, /) -> object:
        """Write ``text``."""


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# bytes of the request line shown as they are: printable ASCII except the space, the quote and
# the backslash, which (like every other byte) are escaped as \xHH, as Apache does, so that a
# line can always be split on its quotes and the request on its spaces (the error reason keeps
# its spaces)
_PLAIN = frozenset(range(0x21, 0x7F)) - {0x22, 0x5C}
_ESCAPES = [chr(b) if b in _PLAIN else f"\\x{b:02x}" for b in range(256)]
_TEXT_ESCAPES = [*_ESCAPES[:0x20], " ", *_ESCAPES[0x21:]]
_PLAIN_BYTES = bytes(sorted(_PLAIN))


def _quoted(data: bytes, escapes: list[str] = _ESCAPES) -> str:
    """``data`` for a quoted log field: printable ASCII as is, anything else escaped."""
    if not data.translate(None, _PLAIN_BYTES):  # nothing to escape (the usual case)
        return data.decode("ascii")
    return "".join([escapes[b] for b in data])


def _ms(seconds: float | None) -> str:
    """A duration for the extended common log line: milliseconds with 3 decimals, or "-"."""
    return "-" if seconds is None else f"{seconds * 1000:.3f}"


def _ms_number(seconds: float | None) -> float | None:
    """A duration for a JSON line: milliseconds rounded to the microsecond, or None."""
    return None if seconds is None else round(seconds * 1000, 3)


class CommonLogWriter:
    """Writes each record as a line in the NCSA common log format (Apache's ``%h %l %u %t
    "%r" %>s %b``)::

        127.0.0.1 - - [26/Nov/2026:12:48:57 +0000] "GET /index.html HTTP/1.1" 200 1234

    Fields: the client's host; ``-`` for identity and user (a proxy knows neither); the time the
    request head arrived (UTC); the request line; the status (``-`` when no response was sent);
    the response body bytes (``-`` for none). Bytes of the method, target and version that are
    not printable ASCII, and the space, ``"`` and ``\\``, appear as ``\\xHH`` (so a line always
    splits on its quotes, and the request on its spaces).

    With ``extended=True`` each line continues with what the proxy adds, as ``key=value``
    fields (values that are absent are ``-``; times in milliseconds with three decimals)::

        ... 200 1234 upstream=10.0.0.2:8080 connect=0.412 first_byte=1.203 total=1.877 in=0

    and ``error="<reason>"`` at the end when the exchange failed.

    Args:
        stream: where the lines go (``write(str)``); not flushed here.
        extended: add the upstream, the times, the request body bytes and any error.
    """

    __slots__ = ("_extended", "_second", "_stamp", "_write")

    def __init__(self, stream: TextStream, *, extended: bool = False) -> None:
        self._write = stream.write
        self._extended = extended
        self._second = -1
        self._stamp = ""

    def _time(self, started: float) -> str:
        """``[dd/Mon/yyyy:HH:MM:SS +0000]``, cached for the current second."""
        second = int(started)
        if second != self._second:
            t = time.gmtime(second)
            self._stamp = (
                f"[{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year:04d}:"
                f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000]"
            )
            self._second = second
        return self._stamp

    def format(self, record: AccessRecord) -> str:
        """The line for ``record``, without its line end."""
        status = str(record.status) if record.status else "-"
        size = str(record.bytes_out) if record.bytes_out else "-"
        line = (
            f'{record.client[0]} - - {self._time(record.started)} "{_quoted(record.method)} '
            f'{_quoted(record.target)} HTTP/{_quoted(record.version)}" {status} {size}'
        )
        if not self._extended:
            return line
        line = (
            f"{line} upstream={record.upstream or '-'} connect={_ms(record.connect_time)} "
            f"first_byte={_ms(record.first_byte_time)} total={_ms(record.total_time)} "
            f"in={record.bytes_in}"
        )
        if record.error is not None:
            line = f'{line} error="{_quoted(record.error.encode("utf-8"), _TEXT_ESCAPES)}"'
        return line

    def __call__(self, record: AccessRecord) -> None:
        """Write the line for ``record`` (an ``'access'`` listener)."""
        self._write(self.format(record) + "\n")


class JsonLinesWriter:
    """Writes each record as one JSON object on a line of its own (JSON Lines)::

        {"time":"2026-11-26T12:48:57.123Z","client":"127.0.0.1","client_port":50412,
         "method":"GET","target":"/","version":"1.1","status":200,"bytes_in":0,
         "bytes_out":13,"upstream":"127.0.0.1:8080","connect_ms":0.412,
         "first_byte_ms":1.203,"total_ms":1.877,"error":null}

    (one line in the output). Bytes fields (method, target, version) are decoded as latin-1, so
    every byte maps to one character and nothing is lost; characters beyond ASCII are written
    as ``\\u00XX`` escapes. Times are milliseconds (rounded to the microsecond), null when that
    step did not happen; ``time`` is when the request head arrived, in UTC (ISO 8601, ms).
    ``status`` is 0 when no response was sent.

    Args:
        stream: where the lines go (``write(str)``); not flushed here.
    """

    __slots__ = ("_dumps", "_write")

    def __init__(self, stream: TextStream) -> None:
        self._write = stream.write
        self._dumps = json.JSONEncoder(separators=(",", ":")).encode

    def format(self, record: AccessRecord) -> str:
        """The JSON text for ``record``, without its line end."""
        whole = int(record.started)
        millis = round((record.started - whole) * 1000)
        if millis == 1000:  # rounded up into the next second
            whole += 1
            millis = 0
        t = time.gmtime(whole)
        stamp = (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{millis:03d}Z"
        )
        return self._dumps(
            {
                "time": stamp,
                "client": record.client[0],
                "client_port": record.client[1],
                "method": record.method.decode("latin-1"),
                "target": record.target.decode("latin-1"),
                "version": record.version.decode("latin-1"),
                "status": record.status,
                "bytes_in": record.bytes_in,
                "bytes_out": record.bytes_out,
                "upstream": record.upstream,
                "connect_ms": _ms_number(record.connect_time),
                "first_byte_ms": _ms_number(record.first_byte_time),
                "total_ms": _ms_number(record.total_time),
                "error": record.error,
            }
        )

    def __call__(self, record: AccessRecord) -> None:
        """Write the line for ``record`` (an ``'access'`` listener)."""
        self._write(self.format(record) + "\n")
