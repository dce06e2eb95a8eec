"""HttpServerExchange: one request received by an HttpServer, and the application's response.

Theory of operation
-------------------
An exchange is made by its connection when a request head has been parsed; the connection emits
the request's events on it (``request_start``, ``request_body``, ``request_done``) and the
application answers through ``response_nonfinal`` / ``response_start`` / ``response_body`` /
``response_done``, from those listeners or later.

Responses leave in request order. The connection keeps its exchanges in a queue; the one at the
front (``_head``) writes into the connection's output batch, the others keep what they produce
(``_held``) until they reach the front. So an application may answer pipelined requests in any
order and in parallel; only the bytes wait.

States of the response: NONE (nothing final yet; 1xx may be sent) -> STARTED (head written) ->
DONE. A call out of that order raises ``OutputStateError``; invalid values raise
``OutputSyntaxError`` before anything is written. Once the exchange is *dead* (its connection
was lost, or the server answered it itself after an application error), output calls are
ignored: the application learnt about it from ``'error'``, and code streaming a body from
elsewhere should not have to race the network.

When both the request and the response are complete (or the connection closes), the exchange is
*finished*: its listeners are dropped, which breaks the reference cycles between the exchange and
the application's closures (the garbage collector would otherwise run every few hundred
requests).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from thor.events import EventEmitter

from ._serializer import LAST_CHUNK, body_bytes, trailer_section
from ._server_framing import (
    CHUNKED,
    CLOSE,
    COUNTED,
    NO_BODY,
    interim_head,
    response_head,
    simple_response,
)
from .error import HttpError, OutputError, OutputStateError

if TYPE_CHECKING:
    from ._headers import RawHeaderListType
    from ._server_connection import HttpServerConnection

__all__ = ["HttpServerExchange"]

logger = logging.getLogger("thor.http")

# response states
_NONE = 0
_STARTED = 1
_DONE = 2

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: above this many bytes, a chunk is written as size line, data and CRLF (no copy of the data)
_COPY_LIMIT = 16 * 1024
#: output is sent at once past this many bytes, in a read batch or not
_FLUSH_SIZE = 64 * 1024
#: (a global is read faster than a class attribute: this is called per request)
_init_emitter = EventEmitter.__init__


class HttpServerExchange(EventEmitter):
    """A request and its response on an HttpServer (see the module docstring).

    Made by the server: applications get it from the server's ``'exchange'`` event.

    Attributes:
        method: the request method (bytes).
        uri: the request target as received (bytes).
        req_hdrs: the request's header fields, ``[(name, value), ...]`` as received.
        req_version: ``b"1.1"`` or ``b"1.0"``.
        http_conn: the HttpServerConnection it arrived on.

    Events:
        request_start (method, uri, req_hdrs): the request head arrived; once, right after the
            server's ``'exchange'``.
        request_body (chunk: bytes): part of the request body (framing removed); many times.
        request_done (trailers): the request is complete (trailers: a header list, usually
            empty); once.
        error (HttpError): the exchange cannot complete: the connection was lost or timed out
            before the response was finished (``ConnectError``, ``ReadTimeoutError``,
            ``WriteTimeoutError``), or the request body was malformed (the server answered it
            with an error status). At most once; nothing follows it. Emitted only when the
            exchange has an ``'error'`` listener or a sink with an ``error`` method (else
            logged at DEBUG on ``thor.http``).
        pause (bool): True when the client does not keep up with the response (stop calling
            ``response_body``), False when it can take more. Many times, alternating.
        upgrade (tcp_conn, data: bytes): after a 101 response (or a 2xx to CONNECT) is done:
            the connection now belongs to the application, paused, with no listener of thor's;
            ``data`` is what the client sent after the request head. Once.
    """

    # Slots, not the instance dict (see HttpServerConnection.__slots__ for CPython 3.11's
    # shared key tables): a server whose first traffic is a burst of connections made its
    # exchanges before any had set its per-response state, and each then worked on a plain
    # dict. Every slot is set in __init__.
    __slots__ = (
        "_born",
        "_continued",
        "_dead",
        "_expect",
        "_framing",
        "_head",
        "_held",
        "_held_size",
        "_left",
        "_paused",
        "_persist",
        "_req_done",
        "_res",
        "_switch",
        "_tunnel",
        "http_conn",
        "method",
        "req_hdrs",
        "req_version",
        "uri",
    )

    def __init__(
        self,
        http_conn: HttpServerConnection,
        method: bytes,
        uri: bytes,
        req_hdrs: RawHeaderListType,
        req_version: bytes,
    ) -> None:
        _init_emitter(self)
        self.http_conn = http_conn
        self.method = method
        self.uri = uri
        self.req_hdrs = req_hdrs
        self.req_version = req_version
        self._dead = False  # the application's output calls are ignored (module docstring)
        self._head = False  # at the front of the connection's queue: writes go straight out
        self._persist = True  # the connection may stay open after this exchange
        self._expect = False  # the request expects 100-continue, not sent yet
        self._tunnel = False  # an Upgrade or CONNECT request: the connection may change hands
        self._switch = False  # the application accepted the Upgrade / CONNECT
        self._res = _NONE  # the response's state
        self._framing = 0
        self._left = 0
        self._req_done = False  # the request is complete
        self._born = 0.0  # when the head arrived (server clock), for response_timeout
        self._held: list[bytes] | None = None  # output kept while not at the front
        self._held_size = 0
        self._paused = False  # told the application to pause
        self._continued = False  # 100 Continue was sent

    # -- state, read-only ------------------------------------------------------------------------

    @property
    def response_started(self) -> bool:
        """True once ``response_start`` was called (or the server answered in its place)."""
        return self._res != _NONE

    @property
    def res_complete(self) -> bool:
        """True once the response is done."""
        return self._res == _DONE

    @property
    def req_complete(self) -> bool:
        """True once the whole request (body and trailers) was received."""
        return self._req_done

    # -- the response ---------------------------------------------------------------------------

    def response_nonfinal(self, status: bytes, phrase: bytes, headers: RawHeaderListType) -> None:
        """Send an interim (1xx) response, e.g. ``103 Early Hints``; ``headers`` are sent as
        given (not stripped). HTTP/1.0 clients do not get interim responses (RFC 9110 §15.2):
        the call is then a no-op.

        Raises:
            OutputStateError: the final response has started.
            OutputSyntaxError: a status other than 1xx (101 goes through ``response_start``),
                or an invalid phrase or field.
        """
        if self._res != _NONE:
            if self._dead:
                return
            raise OutputStateError("response_nonfinal after response_start")
        head = interim_head(status, phrase, headers)
        if self._dead or self.req_version != b"1.1":
            return
        if status == b"100":
            if self._continued:
                return
            self._continued = True
            self._expect = False
        self._output(head)

    def response_start(self, status: bytes, phrase: bytes, headers: RawHeaderListType) -> None:
        """Start the final response. Hop-by-hop fields in ``headers`` are dropped and the
        framing is added (see ``thor.http._server_framing``); ``Date`` is added if absent.

        101 (Switching Protocols) is allowed only when the request asked for an Upgrade, and a
        2xx to CONNECT makes a tunnel: in both cases, ``'upgrade'`` follows ``response_done``.

        Raises:
            OutputStateError: called twice, or 101 to a request without Upgrade.
            OutputSyntaxError: an invalid status, phrase, field or Content-Length.
        """
        if self._res != _NONE:
            if self._dead:
                return
            raise OutputStateError("response_start called twice")
        conn = self.http_conn
        persist = self._persist
        if conn._closing or self._expect or self._tunnel:
            persist = self._may_persist(status)
        head, framing, length, persist = response_head(
            status, phrase, headers, self.method, self.req_version, persist
        )
        if framing == NO_BODY and (self._tunnel or status == b"101"):
            self._check_switch(status, persist)
        if self._dead:
            return
        self._res = _STARTED
        self._framing = framing
        if length:
            self._left = length
        if not persist:
            self._persist = False
        if self._head:  # (the output path, inlined: this is the hot path)
            conn._out.append(head)
            conn._out_size += len(head)
            if not conn._in_batch or conn._out_size > _FLUSH_SIZE:
                conn._output_added()
            if conn._out_paused and not self._paused:
                # the output was paused before this response started (the client is not
                # reading an earlier one): the application hears it now
                self._set_paused(True)
        else:
            self._keep(head)

    def _may_persist(self, status: bytes) -> bool:
        """Whether the connection may persist after this response (the uncommon cases)."""
        conn = self.http_conn
        if not self._persist:
            return False
        if conn._closing and conn._queue and conn._queue[-1] is self:
            return False  # the last response before the connection closes says so
        if self._expect and not self._req_done:
            return False  # no 100 was sent: the client may not send the body at all
        return not (self.method == b"CONNECT" and status[:1] != b"2")

    def _check_switch(self, status: bytes, persist: bool) -> None:
        """A response to an Upgrade or CONNECT request: does it switch protocols?"""
        if status == b"101":
            if not self._tunnel or self.method == b"CONNECT":
                raise OutputStateError("101 Switching Protocols to a request without Upgrade")
            self._switch = True
        elif self.method == b"CONNECT" and persist:
            self._switch = True

    def response_body(self, chunk: bytes | bytearray | memoryview) -> None:
        """Send part of the response body. Ignored (not sent) on responses that have no body
        (to HEAD; 1xx, 204, 205, 304). A bytearray or memoryview is copied (the application may
        reuse it at once).

        Raises:
            TypeError: ``chunk`` is not bytes, a bytearray or a memoryview.
            OutputStateError: before ``response_start`` or after ``response_done``; or on a
                101 / CONNECT 2xx response (the tunnel is written through ``'upgrade'``).
            OutputError: more bytes than the Content-Length given to ``response_start``.
            BufferError: the application wrote on while paused (``'pause'``), and the
                connection's queue would pass the TcpConnection's ``max_write_buffer_size``:
                the connection is dropped (``'error'`` comes first). While not paused, a chunk
                of any size is taken, and sent as the client reads it. Output kept for the end
                of a read batch (less than 64 KiB) is refused later, with the same drop: only
                ``'error'`` tells then. Also raised, without a drop, when the response of a
                pipelined request waiting for earlier ones would be held past 4 x the server's
                ``max_buffered_response``.
        """
        if self._res != _STARTED:
            if self._dead:
                return
            raise OutputStateError("response_body outside of a started response")
        if type(chunk) is not bytes:
            chunk = body_bytes(chunk)
        if not chunk or self._dead:
            return
        framing = self._framing
        if framing == COUNTED:
            left = self._left - len(chunk)
            if left < 0:
                raise OutputError(
                    f"{len(chunk)} body bytes, {self._left} left of the Content-Length"
                )
            self._left = left
        elif framing == CHUNKED:
            size = len(chunk)
            if size > _COPY_LIMIT:
                refused = self._output(b"%x\r\n" % size) or self._output(chunk)
                if refused is not None:
                    raise refused
                chunk = b"\r\n"
            else:
                chunk = b"%x\r\n%b\r\n" % (size, chunk)
        elif framing != CLOSE:  # no body
            if self._switch:
                raise OutputStateError("no body on a 101 or CONNECT 2xx response")
            return
        if self._head:  # (the output path, inlined)
            conn = self.http_conn
            conn._out.append(chunk)
            conn._out_size += len(chunk)
            if not conn._in_batch or conn._out_size > _FLUSH_SIZE:
                refused = conn._output_added()
                if refused is not None:
                    raise refused
        else:
            self._keep(chunk)

    def response_done(self, trailers: RawHeaderListType, close: bool = False) -> None:
        """Finish the response. ``trailers`` are sent with a chunked body (dropped otherwise).

        Args:
            trailers: trailer fields (usually ``[]``).
            close: close the connection once this response is sent.

        Raises:
            OutputStateError: before ``response_start``, or twice.
            OutputSyntaxError: an invalid trailer field.
            OutputError: fewer body bytes than the Content-Length (the connection is closed,
                since the client would wait for the rest).
        """
        if self._res != _STARTED:
            if self._dead:
                return
            raise OutputStateError("response_done outside of a started response")
        if self._dead:
            self._res = _DONE
            return
        framing = self._framing
        short = 0
        if framing == CHUNKED:
            self._output(trailer_section(trailers) if trailers else LAST_CHUNK)
        elif framing == COUNTED and self._left:
            short = self._left
            close = True
        if close:
            self._persist = False
        self._res = _DONE
        if self._head:  # (HttpServerConnection._response_done, inlined)
            conn = self.http_conn
            conn._advance()
            if not conn._in_batch and conn._out:
                conn._flush()
        if short:
            raise OutputError(f"response ended {short} bytes short of its Content-Length")

    # -- internals ------------------------------------------------------------------------------

    def _output(self, data: bytes) -> BufferError | None:
        """Write ``data`` (or hold it: ``_keep``); returns the refusal of a write that dropped
        the connection (``HttpServerConnection._flush``)."""
        if self._head:
            conn = self.http_conn
            conn._out.append(data)
            conn._out_size += len(data)
            if not conn._in_batch or conn._out_size > _FLUSH_SIZE:
                return conn._output_added()
        else:
            self._keep(data)
        return None

    def _keep(self, data: bytes) -> None:
        """Hold output of an exchange that is not at the front of the queue yet."""
        conn = self.http_conn
        size = len(data)
        limit = conn.server.max_buffered_response
        if conn._held_size + size > 4 * limit and conn._held_size:
            raise BufferError(
                f"{conn._held_size} bytes of pipelined responses held already (limit {limit})"
            )
        if self._held is None:
            self._held = [data]
        else:
            self._held.append(data)
        self._held_size += size
        conn._held_size += size
        if conn._held_size > limit:
            conn._hold_set(conn.HOLD_PIPELINE)
            if not self._paused and self._res == _STARTED:
                self._set_paused(True)

    def _set_paused(self, paused: bool) -> None:
        self._paused = paused
        try:
            self.emit("pause", paused)
        except Exception as exc:
            self.http_conn._app_error(self, exc)

    def _send_continue(self) -> None:
        """Send ``100 Continue`` (once) for a request that expects it."""
        if self._expect and self._res == _NONE and not self._dead:
            self._expect = False
            self._continued = True
            self._output(_CONTINUE)

    def _answer(self, status: bytes, phrase: bytes, text: str) -> None:
        """The server answers in place of the application (an error), and closes after."""
        self._output(simple_response(status, phrase, text.encode(), self.method != b"HEAD"))
        self._res = _DONE
        self._persist = False
        self._dead = True
        self.http_conn._response_done(self)

    def _fail(self, error: HttpError) -> None:
        """Tell the application the exchange cannot complete (at most once)."""
        if self._dead:
            return
        self._dead = True
        if self.has_handler("error"):
            try:
                self.emit("error", error)
            except Exception as exc:
                logger.error("exception in an 'error' listener of %r", self, exc_info=exc)
        else:
            logger.debug("%r: %s", self, error)

    def _finish(self) -> None:
        """Drop the listeners: nothing more will be emitted."""
        self.remove_listeners()

    def __repr__(self) -> str:
        state = ("waiting", "responding", "responded")[self._res]
        target = (self.method + b" " + self.uri).decode("latin-1")
        return f"<HttpServerExchange {target!r} {state}{' dead' if self._dead else ''}>"
