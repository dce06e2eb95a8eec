"""HttpClientExchange: one request and its response, as the application sees them.

Theory of operation
-------------------
``request_start`` parses the URL, checks the request line and serialises the head at once (so
a bad URL or request line is reported by ``'error'`` before it returns), then asks the pool for
a connection. The head is *framed* and sent only when the application says what follows it:
``request_body`` (chunked, unless the application gave a Content-Length, which is then
enforced) or ``request_done`` (no body: no Transfer-Encoding; ``Content-Length: 0`` for POST,
PUT and PATCH, as RFC 9110 §8.6 asks). The head and a first body chunk of up to 64 KiB go out
in one write. A request with ``Expect: 100-continue`` sends its head at once (the application
waits for the ``'response_nonfinal'`` 100 before sending the body). Prepared heads are cached
by (method, URL, headers, settings): a client repeats the same requests, and parsing the URL and
validating the head is most of ``request_start``.

What was sent is recorded (wire bytes, head included) while a retry could still need it: for an
idempotent method (GET HEAD PUT DELETE OPTIONS TRACE) while the body is at most
``retry_body_limit`` bytes; for any other method only until a write was accepted by a
connection. Until the exchange has a ready connection, output waits in ``_pending`` (and the
application is asked to ``'pause'`` above the TCP write limit).

Retries (the connection was lost before any byte of a response arrived):

1. A request whose bytes were never accepted by the connection (the write failed, or it was
   never written) is retried whatever its method: nothing of it can have been processed.
2. Otherwise only an idempotent method is retried, and only if its body was kept.
3. If the lost connection came from the pool (it had served a response before: the server
   probably closed it while idle), the first such retry is immediate, on a new connection, and
   does not count against ``retry_limit``. Any other retry waits ``retry_delay`` and counts.
4. Before a non-idempotent request is written on a pooled connection, the pool checks that
   nothing (a FIN, a reset, stray bytes) is waiting on it, so a POST is rarely caught by rule 2.

Everything the exchange emits is final once ``'response_done'``, ``'error'`` or ``'upgrade'`` is
out: then its listeners are dropped (breaking the exchange <-> closure cycles that would
otherwise keep the garbage collector busy) and calls to ``request_body`` / ``request_done`` are
ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from thor.events import EventEmitter
from thor.tcp import TcpConnection

from .._abnf import OWS, is_host_value, parse_decimal
from .._headers import idempotent_methods, strip_hop_by_hop
from .._serializer import body_bytes, encode_chunk, request_head, trailer_section
from ..error import (
    ConnectError,
    HttpError,
    OutputError,
    OutputStateError,
    OutputSyntaxError,
    ReadTimeoutError,
)
from ..uri import parse_uri

if TYPE_CHECKING:
    from thor.loop import ScheduledEvent

    from .._headers import RawHeaderListType
    from ._client import HttpClient, OriginType
    from ._connection import HttpClientConnection

__all__ = ["HttpClientExchange"]

# request states
_NEW, _STARTED, _BODY, _DONE = range(4)
# request framings
_NONE, _COUNTED, _CHUNKED = range(3)

_IDEMPOTENT = frozenset(idempotent_methods)
#: methods whose body-less requests carry "Content-Length: 0" (RFC 9110 §8.6)
_BODY_METHODS = frozenset((b"POST", b"PUT", b"PATCH"))
#: a first body chunk up to this size is joined to the head (one send)
_JOIN_LIMIT = 64 * 1024
_LINE_BREAKERS = (b"\r", b"\n", b"\x00")
#: prepared requests by (method, uri, headers, strict request line, Connection: close)
_Prepared = tuple["OriginType", bytes, bytes, bytes, "int | None", bool]
_HEADS: dict[tuple[object, ...], _Prepared] = {}
_HEADS_MAX = 512


class HttpClientExchange(EventEmitter):
    """One HTTP request and its response; made by ``HttpClient.exchange()``.

    Call ``request_start``, then ``request_body`` any number of times, then ``request_done``;
    the response arrives as events.

    Attributes:
        client: the HttpClient.
        careful: copied from the client: False accepts LF-only line endings and obs-fold in
            responses (each still refused when True, the default).
        method, uri, req_hdrs: as given to ``request_start``.
        req_target, authority: from the URL (origin-form target; the authority is the Host).
        origin: ``(scheme, host, port)`` (host lower-cased).
        res_version: the final response's HTTP version (b"1.1", b"1.0"), set just before
            ``'response_start'``.
        input_header_length: bytes of the (last) response head received.
        input_transfer_length: bytes of the response body as received (framing included).
        conn: the HttpClientConnection in use (``tcp_conn``, ``close()``, ``res_version``),
            None while waiting for one and once the exchange is over.
        ready_at: the loop time (``loop.time()``) when a connection was ready for this
            exchange (the last one, after a retry); None before.

    Settings (class attribute):
        strict_request_line: True (the default) refuses a method that is not a token and a
            target with whitespace or control bytes (``OutputSyntaxError``); False sends them
            as given (CR, LF and NUL are refused always), for probing servers.

    Events:
        response_nonfinal (status, phrase, headers): a 1xx response; any number of times.
        response_start (status, phrase, headers): the final response's head; once.
        response_body (chunk: bytes): part of the body, as it arrives; many times.
        response_done (trailers): the response is complete (trailers: a header list); once.
        error (HttpError): the exchange failed; at most once, never after response_done.
            UrlError / OutputSyntaxError are emitted from inside ``request_start``.
        pause (bool): True: stop calling ``request_body`` (the connection's write buffer is
            full); False: go on.
        upgrade (tcp_conn, rest: bytes): after a 101 response (reported first as
            ``'response_nonfinal'``): the connection now belongs to the application (paused;
            ``rest`` holds bytes read past the 101 head). Only when an ``'upgrade'`` listener
            was registered before ``request_start`` and the request has an Upgrade header
            (then it is sent, with ``Connection: upgrade``); otherwise a 101 is an error.
            Nothing is emitted after it.
    """

    strict_request_line: bool = True

    # Slots, not the instance dict (see HttpServerConnection.__slots__ for CPython 3.11's
    # shared key tables): with 50 requests started in one go, every exchange set attributes
    # after the table had stopped taking new names, and worked on a plain dict; slots: client
    # +13% requests per CPU-second. Every slot is set in __init__.
    __slots__ = (
        "_attempted",
        "_body_size",
        "_finished",
        "_framing",
        "_head",
        "_idempotent",
        "_input_paused",
        "_keep",
        "_kept",
        "_length_left",
        "_pending",
        "_pending_size",
        "_req",
        "_res_started",
        "_retries",
        "_retry_ev",
        "_stale_retried",
        "_told_paused",
        "_total_ev",
        "_transfer_length",
        "_upgrade",
        "_waiting",
        "_written",
        "authority",
        "careful",
        "client",
        "conn",
        "input_header_length",
        "method",
        "origin",
        "ready_at",
        "req_hdrs",
        "req_target",
        "res_version",
        "uri",
    )

    def __init__(self, client: HttpClient) -> None:
        EventEmitter.__init__(self)
        self.client = client
        self.careful = client.careful
        self.req_hdrs: RawHeaderListType = []
        self._transfer_length = 0
        self._req = _NEW
        self._framing = _NONE
        self._head = b""
        self._length_left = 0  # COUNTED: body bytes still owed
        self._body_size = 0
        self._pending: list[bytes] | None = None  # output waiting for a ready connection
        self._pending_size = 0
        self._told_paused = False  # the application's last 'pause' event said True
        self._keep = True  # still recording what is sent, for a retry
        self._kept: list[bytes] | None = None  # ...the record
        self._attempted = False  # some output was handed to a connection
        self._written = False  # ...and the current connection accepted it
        self._idempotent = False
        self._upgrade = False
        self._res_started = False
        self._finished = False
        self._waiting = False  # in the pool's queue
        self._input_paused = False  # res_body_pause(True) is in force
        self._retries = 0
        self._stale_retried = False
        self._retry_ev: ScheduledEvent | None = None
        self._total_ev: ScheduledEvent | None = None
        # the request's and the response's attributes, None until known
        self.method: bytes | None = None
        self.uri: bytes | None = None
        self.req_target: bytes | None = None
        self.authority: bytes | None = None
        self.origin: OriginType | None = None
        self.res_version: bytes | None = None
        self.conn: HttpClientConnection | None = None
        self.input_header_length = 0
        self.ready_at: float | None = None

    def __repr__(self) -> str:
        method = (self.method or b"-").decode("latin-1")
        uri = (self.uri or b"-").decode("latin-1") if isinstance(self.uri, bytes) else "-"
        state = "finished" if self._finished else "connected" if self.conn else "waiting"
        return f"<HttpClientExchange {method} {uri} {state}>"

    @property
    def input_transfer_length(self) -> int:
        """Bytes of the response body received so far (chunk framing included)."""
        conn = self.conn
        if conn is not None and self._res_started and conn.exchange is self:
            return conn.parser.transfer_length
        return self._transfer_length

    # -- the application's calls ----------------------------------------------------------------

    def request_start(
        self,
        method: bytes,
        uri: bytes,
        headers: RawHeaderListType,
        *,
        host: bytes | None = None,
    ) -> None:
        """Start the request. A bad URL (``UrlError``), method, target or header
        (``OutputSyntaxError``) is reported by emitting ``'error'`` before this returns.

        Args:
            method: e.g. b"GET".
            uri: the absolute http(s) URL.
            headers: ``(name, value)`` bytes pairs; Host and hop-by-hop fields are replaced
                by the client's own (except Upgrade, see the ``'upgrade'`` event).
            host: the Host field to send instead of the URL's authority (a proxy keeping
                the Host its client asked for); the connection still goes to the URL's.

        Raises:
            OutputStateError: the request was already started.
        """
        if self._req != _NEW:
            raise OutputStateError("request_start called twice")
        self._req = _STARTED
        self.method = method
        self.uri = uri
        self.req_hdrs = headers
        client = self.client
        key: tuple[object, ...] | None
        try:
            key = (
                method,
                uri,
                tuple(headers) if headers else (),
                self.strict_request_line,
                not client.idle_timeout,
                host,
            )
            prepared = _HEADS.get(key)
        except TypeError:  # unhashable headers (lists...): no caching
            key = prepared = None
        if prepared is None:
            try:
                prepared, cacheable = self._prepare(method, uri, headers, host)
            except HttpError as err:
                self._fail(err)
                return
            if key is not None and cacheable:
                if len(_HEADS) >= _HEADS_MAX:
                    _HEADS.clear()
                _HEADS[key] = prepared
        self.origin, self.authority, self.req_target, self._head, length, expect = prepared
        if length is not None:
            self._framing = _COUNTED
            self._length_left = length
        self._idempotent = method in _IDEMPOTENT
        total = client.total_timeout
        if total:
            self._total_ev = client.loop.schedule(total, self._total_expired)
        if expect:
            # the application waits for '100 Continue' before sending the body: the head
            # must go now (a request that expects 100 has a body: chunked unless counted)
            self.request_body(b"")
            if self._finished:
                return
        client._acquire(self)

    def request_body(self, chunk: bytes | bytearray | memoryview) -> None:
        """Send part of the request body (chunked, unless a Content-Length was given). A
        bytearray or memoryview is copied (the application may reuse it at once). Output the
        connection cannot take (one chunk over thor-net's ``max_write_buffer_size``, 16 MiB:
        split it; or writing on through ``'pause'`` (True) until the queue would pass it)
        fails the exchange with ``OutputError`` (emitted as ``'error'``; the connection is
        closed).

        Raises:
            OutputStateError: before ``request_start`` or after ``request_done``.
            TypeError: ``chunk`` is not bytes, a bytearray or a memoryview.
        """
        if type(chunk) is not bytes:
            chunk = body_bytes(chunk)
        req = self._req
        if req != _BODY:
            if req != _STARTED:
                raise OutputStateError(
                    "request_body before request_start"
                    if req == _NEW
                    else "request_body after request_done"
                )
            if self._finished:
                return
            self._req = _BODY
            if self._framing == _COUNTED:
                head = self._head
            else:
                self._framing = _CHUNKED
                head = self._head[:-2] + b"Transfer-Encoding: chunked\r\n\r\n"
            if not chunk:
                self._send(head)
                return
            if len(chunk) <= _JOIN_LIMIT:
                if not self._count(chunk):
                    return
                if self._framing == _CHUNKED:
                    self._send(b"%b%x\r\n%b\r\n" % (head, len(chunk), chunk))
                else:
                    self._send(head + chunk)
                return
            self._send(head)
        if self._finished or not chunk or not self._count(chunk):
            return
        if self._framing == _CHUNKED:
            if len(chunk) <= _JOIN_LIMIT:
                self._send(encode_chunk(chunk))
            else:
                self._send(b"%x\r\n" % len(chunk))
                self._send(chunk)
                self._send(b"\r\n")
        else:
            self._send(chunk)

    def request_done(self, trailers: RawHeaderListType) -> None:
        """End the request (trailers are sent with a chunked body only).

        Raises:
            OutputStateError: before ``request_start``, or called twice.
        """
        req = self._req
        if req in (_NEW, _DONE):
            raise OutputStateError(
                "request_done before request_start" if req == _NEW else "request_done twice"
            )
        self._req = _DONE
        if self._finished:
            return
        if req == _STARTED:
            if self._framing == _COUNTED:
                if self._length_left:
                    self._fail(OutputError(f"no body, but Content-Length {self._length_left}"))
                    return
                self._send(self._head)
            elif trailers:  # no body, but trailers: an empty chunked body carries them
                try:
                    tail = trailer_section(trailers)
                except OutputSyntaxError as err:
                    self._fail(err)
                    return
                self._send(self._head[:-2] + b"Transfer-Encoding: chunked\r\n\r\n" + tail)
            elif self.method in _BODY_METHODS:
                self._send(self._head[:-2] + b"Content-Length: 0\r\n\r\n")
            else:
                self._send(self._head)
        elif self._framing == _CHUNKED:
            try:
                self._send(trailer_section(trailers))
            except OutputSyntaxError as err:
                self._fail(err)
                return
        elif self._length_left:
            self._fail(
                OutputError(f"request body {self._length_left} bytes short of Content-Length")
            )
            return

    def res_body_pause(self, paused: bool) -> None:
        """Stop (True) or resume (False) reading the response (and so its events); called
        before the exchange has a connection, it takes effect when it gets one."""
        self._input_paused = paused
        conn = self.conn
        if conn is not None and conn.exchange is self:
            conn._pause_input(paused)

    # -- building and sending the request -------------------------------------------------------

    def _prepare(
        self, method: bytes, uri: bytes, headers: RawHeaderListType, host: bytes | None = None
    ) -> tuple[_Prepared, bool]:
        """Parse the URL and serialise the head (without its framing field, added once the body
        is known): ``(origin, authority, target, head, content_length, expect_100)``, and
        whether that can be cached (not with an Upgrade field: then the head depends on this
        exchange's ``'upgrade'`` listener).

        Raises:
            UrlError: a bad URL.
            OutputSyntaxError: a bad method, target or field.
        """
        scheme, hostname, port, authority, target = parse_uri(uri)
        if host is not None:
            if type(host) is not bytes or not host or not is_host_value(host):
                raise OutputSyntaxError(f"invalid Host {host!r}")
            authority = host
        length = None
        upgrade = None
        expect = False
        cacheable = True
        if headers:
            fields = strip_hop_by_hop(headers, also=(b"host",))
            for name, value in fields:
                lower = name.lower()
                if lower == b"content-length":
                    number = parse_decimal(value.strip(OWS))
                    if number is None or (length is not None and number != length):
                        raise OutputSyntaxError(f"invalid Content-Length {value!r}")
                    length = number
                elif lower == b"expect" and value.strip(OWS).lower() == b"100-continue":
                    expect = True
            for name, value in headers:
                if name.lower() == b"upgrade":
                    cacheable = False
                    if self.listener_count("upgrade"):
                        upgrade = value
        else:
            fields = []
        fields.append((b"Host", authority))
        if upgrade is not None:
            self._upgrade = True
            fields.append((b"Connection", b"upgrade"))
            fields.append((b"Upgrade", upgrade))
        elif not self.client.idle_timeout:
            fields.append((b"Connection", b"close"))
        if self.strict_request_line:
            head = request_head(method, target, fields)
        else:
            if not method or any(bad in method for bad in (*_LINE_BREAKERS, b" ")):
                raise OutputSyntaxError(f"invalid method {method!r}")
            if any(bad in target for bad in _LINE_BREAKERS):
                raise OutputSyntaxError(f"invalid request target {target!r}")
            head = request_head(b"GET", b"/", fields)
            head = method + b" " + target + b" HTTP/1.1" + head[head.index(b"\r\n") :]
        return ((scheme, hostname, port), authority, target, head, length, expect), cacheable

    def _count(self, chunk: bytes) -> bool:
        """Account for body bytes; False (and 'error') when they exceed Content-Length."""
        size = len(chunk)
        self._body_size += size
        if self._keep and self._body_size > self.client.retry_body_limit:
            self._keep = False
            self._kept = None
        if self._framing == _COUNTED:
            self._length_left -= size
            if self._length_left < 0:
                self._fail(OutputError("request body longer than its Content-Length"))
                return False
        return True

    def _send(self, data: bytes) -> None:
        if self._finished:
            return  # (failed by an earlier part of the same request_body call)
        if self._keep:
            kept = self._kept
            if kept is None:
                self._kept = [data]
            else:
                kept.append(data)
        conn = self.conn
        if conn is not None:
            self._attempted = True
            # a request that is not idempotent may be retried only while no byte of it was
            # taken: its first write is sent at once, to know
            try:
                written = conn._write(data, not self._idempotent and not self._written)
            except BufferError as exc:
                self._refused(exc)
                return
            if written:
                self._written = True
                if not self._idempotent:
                    self._keep = False  # written: it will never be replayed
                    self._kept = None
            return
        pending = self._pending
        if pending is None:
            self._pending = [data]
        else:
            pending.append(data)
        self._pending_size += len(data)
        if not self._told_paused and self._pending_size > TcpConnection.write_bufsize:
            self._told_paused = True
            self.emit("pause", True)

    def _refused(self, exc: BufferError) -> None:
        """The connection refused a write (over its hard limits): fail the exchange (which
        closes the connection, so no partial framing is ever continued)."""
        self._fail(
            OutputError(
                f"request body refused: {exc}; send it in parts, holding back while 'pause' "
                "(True) is in force"
            )
        )

    def cancel(self) -> None:
        """Abandon the exchange: nothing more is sent, and nothing more is emitted. A request
        waiting for a connection leaves the queue; one using a connection closes it (unless its
        response was complete, which leaves nothing to cancel). Idempotent."""
        if not self._finished:
            self._stop()
            self.remove_listeners()

    def _request_complete(self) -> bool:
        return self._req == _DONE and not self._finished

    # -- called by the pool and the connection --------------------------------------------------

    def _attached(self, conn: HttpClientConnection) -> None:
        """``conn`` is ready for this exchange: write what is pending."""
        self._waiting = False
        self.conn = conn
        self.ready_at = conn._last_io
        self._written = False
        if self._input_paused:
            conn._pause_input(True)
        pending = self._pending
        if pending:
            self._pending = None
            self._pending_size = 0
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            self._attempted = True
            try:
                written = conn._write(data, not self._idempotent)
            except BufferError as exc:
                self._refused(exc)
                return
            if written:
                self._written = True
                if not self._idempotent:
                    self._keep = False
                    self._kept = None
        if self._told_paused and conn.exchange is self and not conn._out_paused:
            self._told_paused = False  # (a retry's new connection also ends an old pause)
            self.emit("pause", False)

    def _output_paused(self, paused: bool) -> None:
        if paused != self._told_paused and self._req != _DONE and not self._finished:
            self._told_paused = paused
            self.emit("pause", paused)

    def _conn_lost(self, err: HttpError, retryable: bool, reused: bool) -> None:
        """The connection closed under this exchange (it is detached already)."""
        self.conn = None
        if self._finished:
            return
        if retryable:
            refusal = self._retry_refusal()
            if refusal is None:
                self._rewind()
                if reused and not self._stale_retried:
                    self._stale_retried = True
                    self.client._acquire(self, fresh=True)
                    return
                if self._retries < self.client.retry_limit:
                    self._retries += 1
                    delay = self.client.retry_delay
                    self._retry_ev = self.client.loop.schedule(max(delay, 0.0), self._retry)
                    return
                err = ConnectError(f"{err.detail or err.desc} (tried {self._retries + 1} times)")
            else:
                err = ConnectError(f"{err.detail or err.desc}; {refusal}")
        self._fail(err)

    def _retry_refusal(self) -> str | None:
        """Why this request cannot be sent again, or None when it can."""
        if not self._attempted:
            return None  # nothing left this exchange: all of it is still pending
        if not self._idempotent and self._written:
            method = (self.method or b"").decode("latin-1")
            return f"Can't retry {method}: the request was sent"
        if not self._keep:
            return "Request body too large to retry"
        return None

    def _rewind(self) -> None:
        """Queue the whole request so far again, for a new connection."""
        kept = self._kept
        if self._attempted:
            self._pending = list(kept or ())
            self._pending_size = sum(len(data) for data in self._pending)
        self._attempted = self._written = False

    def _retry(self) -> None:
        self._retry_ev = None
        if not self._finished:
            self.client._acquire(self, fresh=True)

    def _total_expired(self) -> None:
        self._total_ev = None
        self._fail(ReadTimeoutError("total"))

    # -- endings --------------------------------------------------------------------------------

    def _end(self) -> None:
        self._finished = True
        self.conn = None
        if self._pending is not None:
            self._pending = None
        if self._kept is not None:
            self._kept = None
        if self._total_ev is not None:
            self._total_ev.delete()
            self._total_ev = None
        if self._retry_ev is not None:
            self._retry_ev.delete()
            self._retry_ev = None

    def _fail(self, err: HttpError) -> None:
        """End the exchange with ``'error'`` (once); close its connection."""
        if self._finished:
            return
        self._stop()
        self.emit("error", err)
        self.remove_listeners()

    def _stop(self) -> None:
        """End the exchange: leave the pool's queue, close the connection it was using."""
        conn = self.conn
        self._end()
        if self._waiting:
            self._waiting = False
            self.client._unwait(self)
        if conn is not None and conn.exchange is self:
            conn.exchange = None
            conn._close(None)

    def _response_done(self, trailers: RawHeaderListType) -> None:
        self._end()
        self._emit1("response_done", trailers)
        self.remove_listeners()

    def _abandon(self) -> None:
        """The client was closed (or its loop stopped): end without any event."""
        self._waiting = False
        self._end()
        self.remove_listeners()

    def _upgraded(self, tcp_conn: TcpConnection, rest: bytes) -> None:
        self._end()
        self.emit("upgrade", tcp_conn, rest)
        self.remove_listeners()
