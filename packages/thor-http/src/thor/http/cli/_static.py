"""Serving files from a directory over an HttpServer (``thor serve DIR``).

Theory of operation
-------------------
Each request is answered once it is complete (``'request_done'``). The path is resolved
safely: the request target's path is percent-decoded, any ``..`` segment, NUL byte or
backslash is refused (403), and the real path (symbolic links resolved) must still lie under
the real root, so a link pointing out of the root is refused (403) too. Only regular files are
sent (a FIFO or a device would block or never end: 403). A directory is answered with its
``index.html`` if it has one, else with a listing; a directory asked for without the trailing
slash is redirected (301) to it, so relative links work.

GET and HEAD are served (others: 405 with ``Allow``). ``Content-Type`` comes from
``mimetypes``; ``Last-Modified`` from the file's mtime, and ``If-Modified-Since`` is answered
with 304 when the file has not changed since. A single byte ``Range`` is answered with 206 (or
416 past the end), unless an ``If-Range`` date differs from ``Last-Modified``; several ranges
get the whole file (RFC 9110 §14.2 allows ignoring them).

A file is streamed, never read whole: at most ``chunk_size`` bytes are read at a time, and only
while the client keeps up. The exchange's ``'pause' (True)`` stops the reading until
``'pause' (False)``; even with a fast client, at most ``burst`` bytes are sent per loop turn, so
one large download does not starve the other connections.
"""

from __future__ import annotations

import email.utils
import html
import mimetypes
import os
import stat
import urllib.parse
from typing import TYPE_CHECKING, BinaryIO

from ..error import HttpError

if TYPE_CHECKING:
    from thor.loop import LoopBase

    from .._headers import RawHeaderListType
    from ..server import HttpServerExchange

__all__ = ["UNSATISFIABLE", "StaticFiles", "byte_range", "hello_world"]

_TEXT = b"text/plain; charset=utf-8"


def _simple(
    exchange: HttpServerExchange,
    status: bytes,
    phrase: bytes,
    body: bytes,
    extra: RawHeaderListType | None = None,
) -> None:
    headers: RawHeaderListType = [
        (b"Content-Type", _TEXT),
        (b"Content-Length", b"%d" % len(body)),
    ]
    if extra:
        headers += extra
    exchange.response_start(status, phrase, headers)
    if exchange.method != b"HEAD":
        exchange.response_body(body)
    exchange.response_done([])


def hello_world(exchange: HttpServerExchange, extra: RawHeaderListType) -> None:
    """Answer ``exchange`` with ``Hello, world!`` (text/plain) once its request is complete.

    Args:
        exchange: a new exchange (the server's ``'exchange'`` payload).
        extra: more header fields for the response (e.g. ``X-Thor-Worker``).
    """

    def done(trailers: RawHeaderListType) -> None:
        _simple(exchange, b"200", b"OK", b"Hello, world!\n", extra)

    exchange.on("request_done", done)


class _Sender:
    """Streams one open file as the body of a started response, honouring ``'pause'``."""

    __slots__ = ("exchange", "file", "left", "loop", "owner", "paused", "scheduled")

    def __init__(
        self,
        owner: StaticFiles,
        exchange: HttpServerExchange,
        file: BinaryIO,
        size: int,
        loop: LoopBase,
    ) -> None:
        self.owner = owner
        self.exchange = exchange
        self.file: BinaryIO | None = file
        self.left = size
        self.loop = loop
        self.paused = False
        self.scheduled = False
        exchange.on("pause", self.pause)
        exchange.on("error", self.failed)

    def pause(self, paused: bool) -> None:
        self.paused = paused
        if not paused:
            self.schedule()

    def failed(self, err: HttpError) -> None:
        self.close()

    def schedule(self) -> None:
        if not self.scheduled and self.file is not None:
            self.scheduled = True
            self.loop.schedule(0, self.send)

    def send(self) -> None:
        """Send up to ``burst`` bytes, fewer if the client asks to pause."""
        self.scheduled = False
        file = self.file
        if file is None:
            return
        burst = self.owner.burst
        short = False
        while self.left > 0 and not self.paused and burst > 0:
            try:
                chunk = file.read(min(self.owner.chunk_size, self.left))
            except OSError:
                chunk = b""
            if not chunk:  # the file shrank: end short, which closes the connection
                short = True
                break
            self.left -= len(chunk)
            burst -= len(chunk)
            self.exchange.response_body(chunk)
            if self.file is None:  # the exchange failed while writing
                return
        if self.left > 0 and not short:
            if not self.paused:
                self.schedule()
            return  # else 'pause' (False) resumes
        self.close()
        try:
            self.exchange.response_done([])
        except HttpError:
            pass  # short (the file shrank): the server closes the connection

    def close(self) -> None:
        file, self.file = self.file, None
        if file is not None:
            file.close()


class StaticFiles:
    """Serves the files under ``root`` (see the module docstring).

    Args:
        root: the directory to serve.
        loop: the loop the server runs on.
        extra: header fields added to every response (e.g. ``X-Thor-Worker``).

    Settings (class attributes):
        chunk_size: bytes read from a file at a time (64 KiB).
        burst: bytes sent per loop turn to one client at most (1 MiB).
        index: the file served for a directory (``index.html``).
    """

    chunk_size: int = 64 * 1024
    burst: int = 1024 * 1024
    index: str = "index.html"

    def __init__(self, root: str, loop: LoopBase, extra: RawHeaderListType | None = None) -> None:
        self.root = os.path.realpath(root)
        self.loop = loop
        self.extra: RawHeaderListType = list(extra or [])

    def __call__(self, exchange: HttpServerExchange) -> None:
        """The server's ``'exchange'`` listener."""

        def done(trailers: RawHeaderListType) -> None:
            try:
                self.answer(exchange)
            except OSError:
                _simple(exchange, b"403", b"Forbidden", b"Forbidden\n", self.extra)

        exchange.on("request_done", done)

    # -- resolving ------------------------------------------------------------------------------

    def resolve(self, target: bytes) -> tuple[str | None, bytes]:
        """Map a request target to a real path under the root.

        Returns:
            ``(path, b"")`` for a path (which may not exist), or ``(None, status)`` when the
            target is refused: ``b"400"`` (not origin-form), ``b"403"`` (``..``, NUL,
            backslash, or outside the root once links are resolved).
        """
        path = target.split(b"?", 1)[0].split(b"#", 1)[0]
        if not path.startswith(b"/"):
            return None, b"400"
        decoded = urllib.parse.unquote_to_bytes(path)
        parts = decoded.split(b"/")
        if any(p == b".." for p in parts) or b"\x00" in decoded or b"\\" in decoded:
            return None, b"403"
        relative = os.fsdecode(b"/".join(p for p in parts if p and p != b"."))
        full = os.path.realpath(os.path.join(self.root, relative))
        if full != self.root and not full.startswith(self.root.rstrip(os.sep) + os.sep):
            return None, b"403"
        return full, b""

    # -- answering ------------------------------------------------------------------------------

    def answer(self, exchange: HttpServerExchange) -> None:
        """Answer a complete request (called on ``'request_done'``)."""
        extra = self.extra
        if exchange.method not in (b"GET", b"HEAD"):
            _simple(
                exchange,
                b"405",
                b"Method Not Allowed",
                b"Method Not Allowed\n",
                [*extra, (b"Allow", b"GET, HEAD")],
            )
            return
        full, refusal = self.resolve(exchange.uri)
        if full is None:
            if refusal == b"400":
                _simple(exchange, b"400", b"Bad Request", b"Bad Request\n", extra)
            else:
                _simple(exchange, b"403", b"Forbidden", b"Forbidden\n", extra)
            return
        try:
            info = os.stat(full)
        except (FileNotFoundError, NotADirectoryError):
            _simple(exchange, b"404", b"Not Found", b"Not Found\n", extra)
            return
        if stat.S_ISDIR(info.st_mode):
            self.directory(exchange, full)
            return
        if not stat.S_ISREG(info.st_mode):
            _simple(exchange, b"403", b"Forbidden", b"Forbidden\n", extra)
            return
        self.file(exchange, full, info)

    def directory(self, exchange: HttpServerExchange, full: str) -> None:
        """A directory: redirect to the slashed path, serve its index, or list it."""
        path = exchange.uri.split(b"?", 1)[0]
        if not path.endswith(b"/"):
            # one leading slash, backslashes escaped: to a browser '//sub/' is a URL of
            # the host 'sub' (a network-path reference), and a backslash reads as a slash
            location = b"/" + path.lstrip(b"/").replace(b"\\", b"%5C") + b"/"
            _simple(
                exchange,
                b"301",
                b"Moved Permanently",
                b"Moved to " + location + b"\n",
                [*self.extra, (b"Location", location)],
            )
            return
        index = os.path.join(full, self.index)
        try:
            info = os.stat(index)
        except OSError:
            info = None
        if info is not None and stat.S_ISREG(info.st_mode):
            self.file(exchange, index, info)
            return
        names = sorted(os.listdir(full))
        title = html.escape(urllib.parse.unquote(path.decode("latin-1")))
        rows = []
        for name in names:
            slash = "/" if os.path.isdir(os.path.join(full, name)) else ""
            href = urllib.parse.quote(os.fsencode(name + slash))  # (undecodable names too)
            rows.append(f'<li><a href="{href}">{html.escape(name + slash)}</a></li>')
        body = (
            f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title>'
            f"</head>\n<body><h1>{title}</h1>\n<ul>\n" + "\n".join(rows) + "\n</ul></body></html>\n"
        ).encode("utf-8", "surrogateescape")
        exchange.response_start(
            b"200",
            b"OK",
            [
                (b"Content-Type", b"text/html; charset=utf-8"),
                (b"Content-Length", b"%d" % len(body)),
                *self.extra,
            ],
        )
        if exchange.method != b"HEAD":
            exchange.response_body(body)
        exchange.response_done([])

    def file(self, exchange: HttpServerExchange, full: str, info: os.stat_result) -> None:
        """A regular file: 304, 416, or the head and (for GET) the streamed body, whole (200)
        or one byte range of it (206)."""
        mtime = int(info.st_mtime)
        modified = _http_date(mtime)
        since = _field(exchange, b"if-modified-since")
        if since is not None:
            when = _parse_date(since)
            if when is not None and mtime <= when:
                exchange.response_start(
                    b"304", b"Not Modified", [(b"Last-Modified", modified), *self.extra]
                )
                exchange.response_done([])
                return
        size = info.st_size
        span = None
        wanted = _field(exchange, b"range")
        if_range = _field(exchange, b"if-range")
        if wanted is not None and (if_range is None or if_range.strip() == modified):
            span = byte_range(wanted, size)
            if span == UNSATISFIABLE:
                _simple(
                    exchange,
                    b"416",
                    b"Range Not Satisfiable",
                    b"Range Not Satisfiable\n",
                    [*self.extra, (b"Content-Range", b"bytes */%d" % size)],
                )
                return
        kind, encoding = mimetypes.guess_type(full)
        if kind is None or encoding is not None:
            kind = "application/octet-stream"
        elif kind.startswith("text/") or kind in ("application/javascript", "application/json"):
            kind += "; charset=utf-8"
        handle = open(full, "rb")  # noqa: SIM115 - closed by the _Sender
        headers: RawHeaderListType = [
            (b"Content-Type", kind.encode("ascii")),
            (b"Last-Modified", modified),
            (b"Accept-Ranges", b"bytes"),
            *self.extra,
        ]
        if span is not None:
            first, last = span
            headers.append((b"Content-Range", b"bytes %d-%d/%d" % (first, last, size)))
            length = last - first + 1
            status, phrase = b"206", b"Partial Content"
            handle.seek(first)
        else:
            length = size
            status, phrase = b"200", b"OK"
        headers.append((b"Content-Length", b"%d" % length))
        exchange.response_start(status, phrase, headers)
        if exchange.method == b"HEAD" or length == 0:
            handle.close()
            exchange.response_done([])
            return
        _Sender(self, exchange, handle, length, self.loop).send()


#: ``byte_range`` result for a range that lies wholly past the end of the file
UNSATISFIABLE = (-1, -1)


def byte_range(value: bytes, size: int) -> tuple[int, int] | None:
    """The ``(first, last)`` byte positions (inclusive) a ``Range`` field asks of a file of
    ``size`` bytes (RFC 9110 §14.1.2), ``UNSATISFIABLE``, or None to send the whole file: the
    field is malformed, asks for several ranges (allowed to be ignored, §14.2), or is not in
    bytes."""
    unit, eq, spec = value.strip().partition(b"=")
    if not eq or unit.strip().lower() != b"bytes" or b"," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition(b"-")
    first_text, last_text = first_text.strip(), last_text.strip()
    if not dash or (last_text and not last_text.isdigit()):
        return None
    if not first_text:  # the last N bytes
        if not last_text:
            return None
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return max(size - suffix, 0), size - 1
    if not first_text.isdigit():
        return None
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None
    if first >= size:
        return UNSATISFIABLE
    return first, min(int(last_text), size - 1) if last_text else size - 1


def _field(exchange: HttpServerExchange, name: bytes) -> bytes | None:
    """The last value of a request field (whole: dates and ranges hold commas)."""
    found = None
    for field, value in exchange.req_hdrs:
        if field.lower() == name:
            found = value
    return found


def _parse_date(value: bytes) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value.decode("latin-1").strip())
    except (TypeError, ValueError, IndexError):
        return None
    return when.timestamp() if when.tzinfo is not None else None


def _http_date(timestamp: float) -> bytes:
    return email.utils.formatdate(timestamp, usegmt=True).encode("ascii")
