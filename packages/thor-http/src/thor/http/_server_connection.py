"""HttpServerConnection: one client connection of an HttpServer, from bytes to exchanges and back.

Theory of operation
-------------------
**Input.** The TcpConnection's ``'data'`` goes straight into the connection's ``HttpParser``
(this object is the parser's owner): each parsed head makes an ``HttpServerExchange`` (queued,
emitted on the server as ``'exchange'``, then ``'request_start'`` on the exchange); body chunks
and the end go to the exchange being read (``_reading``). Several pipelined requests in one read
are parsed in order, in that one call.

**Known requests.** A request head that arrives alone in a read, on a connection with nothing in
progress, is first looked up in the server's known requests (``HttpServer.max_known_requests``):
heads that the parser had seen before (its cache of heads served them) and that then made up,
alone, a read that began with them, parsed into a plain request (no body, no Upgrade, not CONNECT;
keep-alive or ``Connection: close``, which the entry records). A known head skips the parser: the
exchange is made from what the parser gave before (its own copy of the field list), and the
request's start and end are handled in one step (``_known_request``: what ``input_start`` and
``input_end`` do for such a request). The key is the read's bytes, so the skipped parse is one that
would succeed with the same result (the server's parser settings are fixed when it is made).
Learning happens in ``input_start``, only for the first head of a read that began with the parser
idle (so the key is exactly that head's bytes: no head completing bytes kept from an earlier read,
none after a first one), and only for heads the parser's own cache served (seen before, so a stream
of distinct heads never fills the table). Lookups stop as soon as ``max_known_requests`` is 0 (or
``max_pipeline_depth`` is, which refuses every request).

**Holding input.** Reading stops for several independent reasons, kept as bits in ``_hold``: the
application paused the request body (``req_body_pause``), the client does not read our output
(``HOLD_OUTPUT``: no new request is started while responses back up), pipelined responses held
in memory passed ``max_buffered_response`` (``HOLD_PIPELINE``), an Upgrade or CONNECT request
awaits the application's answer (``HOLD_UPGRADE``: what follows may not be HTTP), or no request
will be served any more (``HOLD_CLOSE``). Setting a bit pauses the parser (bytes already read stay
in it); the socket read is paused lazily, when more data arrives while held, which saves two
system calls on the common short holds. Clearing the last bit resumes on the next loop turn.

**Output.** Responses are written strictly in request order: only the exchange at the front of
the queue writes (into ``_out``); the others hold their bytes until they reach the front. Writes
are batched: while a read is being processed (``_in_batch``) everything written goes into
``_out``, sent with one ``write`` in the server's flush pass at the end of the loop turn, so a
response's head and body, and the responses to several pipelined requests, leave in one send,
and the responses of all connections read in one turn leave close together (a peer such as a
load generator or a proxy is then woken once for several of them: less system time per
request than one send per read, as each send to a sleeping peer wakes it). Outside a batch (an
application answering later), ``response_done`` sends at once and anything else is sent on
the next loop turn (so head and body written together still go together). Past
``_FLUSH_SIZE`` bytes, output goes at once, batch or not, so that the TcpConnection's flow
control (``'pause'``) sees it.

**Expect: 100-continue.** The server sends ``100 Continue`` itself (``auto_continue``) when the
application first wants the body: right after the ``'request_start'`` listeners ran, unless they
started a final response (then no 100 is sent, and the connection closes after the response:
the client may or may not send the body) or paused the body with ``req_body_pause(True)`` (then
the 100 goes when the body is resumed). A ``response_nonfinal(b"100", ...)`` of the application
counts as the 100. HTTP/1.0 requests never get one (RFC 9110 §10.1.1).

**Closing.** After a response that ends the connection, the socket is closed at once when nothing
is left to send or to read, else with the TcpConnection's lingering close (``_nothing_more``).

**Timeouts** are checked by the server's sweep (one timer per server, every
``sweep_interval``), not by timers per connection re-armed on every read: a read only sets
``_fresh`` (not one of ignored empty lines between requests, which would otherwise keep an idle
connection open for ever); the sweep turns that into a timestamp. See ``_check_timeouts`` for
the rules.

**TcpConnection events** arrive through the emitter's sink (``_TcpSink``), which costs less
than listeners (no context switch per event, nothing to register per connection). An
application that adds its own listener for one of those events on ``tcp_conn`` would hide it
from the sink, so the sink also watches ``'newListener'`` and then registers thor's handler as
a listener too.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from typing import TYPE_CHECKING, Any

from thor.events import EventEmitter

from ._parser import HEAD_STATE, NO_BODY, Head
from ._server_exchange import _DONE, _FLUSH_SIZE, _NONE, _STARTED, HttpServerExchange
from .error import (
    BodyTooLargeError,
    ConnectError,
    DuplicateCLError,
    FieldSectionTooLargeError,
    HttpError,
    MalformedCLError,
    PipelineTooDeepError,
    ReadTimeoutError,
    RequestTargetTooLongError,
    RequestTransferEncodingError,
    TooManyFieldsError,
    TransferCodeError,
    TransferEncodingCLError,
    WriteTimeoutError,
)

if TYPE_CHECKING:
    from thor.loop import ScheduledEvent
    from thor.tcp import TcpConnection

    from ._headers import RawHeaderListType
    from ._server import HttpServer

    #: a known request: (method, target, header fields, version, keep-alive)
    KnownRequest = tuple[bytes, bytes, RawHeaderListType, bytes, bool]

__all__ = ["HttpServerConnection"]

logger = logging.getLogger("thor.http")

#: the TcpConnection events the sink handles
_SINK_EVENTS = frozenset(("data", "close", "disconnect", "pause"))
#: recv flags of the peek in _nothing_more (an int: or-ing the enum members costs ~1 µs)
_PEEK_FLAGS = int(socket.MSG_PEEK | socket.MSG_DONTWAIT)
#: in output past _FLUSH_SIZE, pieces this big are written as they are (see _gathered)
_UNJOINED_SIZE = 16 * 1024


class _NoOwner:
    """The parser's owner once its connection is gone (see ``_release``): never called, since
    nothing feeds the parser any more."""

    __slots__ = ()

    def input_start(self, head: Head) -> int:  # pragma: no cover - see the docstring
        return NO_BODY

    def input_body(self, chunk: bytes) -> None:  # pragma: no cover
        pass

    def input_end(self, trailers: RawHeaderListType) -> None:  # pragma: no cover
        pass


_NO_OWNER = _NoOwner()

#: input errors after which the client is most likely still sending: the rest of a head found
#: too large before it ended, or a body the head announced (see ``_nothing_more``)
_MORE_COMING = (
    BodyTooLargeError,
    DuplicateCLError,
    FieldSectionTooLargeError,
    MalformedCLError,
    RequestTargetTooLongError,
    RequestTransferEncodingError,
    TooManyFieldsError,
    TransferCodeError,
    TransferEncodingCLError,
)


def _body_follows(headers: RawHeaderListType) -> bool:
    """Whether a request with these (valid) header fields has a body, as the parser frames
    it: a Transfer-Encoding, or a Content-Length other than 0."""
    for name, value in headers:
        lower = name.lower()
        if lower == b"transfer-encoding" or (lower == b"content-length" and value.strip(b" \t0")):
            return True
    return False


class _TcpSink:
    """Receives the TcpConnection's events for an HttpServerConnection (see the module
    docstring): its attributes are the connection's bound handlers, named after the events."""

    __slots__ = ("close", "data", "disconnect", "newListener", "pause")

    def __init__(self, conn: HttpServerConnection) -> None:
        self.data = conn._on_data
        self.close = conn._on_peer_close
        self.disconnect = conn._on_disconnect
        self.pause = conn._on_output_pause
        self.newListener = conn._on_new_listener


def _gathered(out: list[bytes]) -> list[bytes]:
    """``out`` for ``writelines``: pieces of ``_UNJOINED_SIZE`` bytes or more as they are (a
    big body chunk is not copied), each run of smaller ones joined, so that many small
    pipelined responses do not fill the TcpConnection's queue with chunks (its
    ``max_write_buffer_chunks``, while its 'pause' counts bytes)."""
    gathered: list[bytes] = []
    run: list[bytes] = []
    for piece in out:
        if len(piece) < _UNJOINED_SIZE:
            run.append(piece)
            continue
        if run:
            gathered.append(b"".join(run))
            run = []
        gathered.append(piece)
    if run:
        gathered.append(b"".join(run))
    return gathered


class HttpServerConnection(EventEmitter):
    """A client's connection to an HttpServer; made by the server for each accepted connection.

    Attributes:
        server: the HttpServer.
        tcp_conn: the TcpConnection, or None once the connection is closed (or handed to the
            application after an Upgrade).

    Events:
        pause (bool): True when the client stopped reading our output (its buffer is over the
            TcpConnection's ``write_bufsize``), False when it caught up. Alternating.
        error (HttpError): a protocol error in the client's input; the server answered it with
            the error's status and closes the connection. Emitted only when listened to.
    """

    HOLD_APP = 1
    HOLD_OUTPUT = 2
    HOLD_PIPELINE = 4
    HOLD_UPGRADE = 8
    HOLD_CLOSE = 16

    # Slots, not the instance dict. CPython 3.11 keeps the attributes of a class's instances
    # in one shared key table (fast reads and writes), which takes at most 30 names and stops
    # taking new ones once some 30 instances were made: an attribute first set on an instance
    # after that (a timeout's bookkeeping, on a server past its first connections) turns that
    # instance's attributes into a plain dict, slower on every access for the rest of its
    # life. Measured with wrk: most connections of a busy server ended up so, and slots gave
    # +6% requests per CPU-second (the proxy +13%). Every slot is set in __init__.
    __slots__ = (
        "_batch",
        "_body_base",
        "_body_cut",
        "_body_since",
        "_cause",
        "_client_done",
        "_closing",
        "_flush_queued",
        "_fresh",
        "_head_since",
        "_held_size",
        "_hold",
        "_in_batch",
        "_in_read",
        "_known",
        "_listening",
        "_mark",
        "_out",
        "_out_paused",
        "_out_size",
        "_parser",
        "_peer_eof",
        "_proxy_active",
        "_proxy_waiting",
        "_queue",
        "_reading",
        "_resume_event",
        "_served",
        "_sink",
        "_stall_since",
        "_stall_size",
        "_switching",
        "_tcp",
        "_tcp_paused",
        "_write_limit",
        "server",
        "tcp_conn",
    )

    def __init__(self, server: HttpServer, tcp_conn: TcpConnection) -> None:
        EventEmitter.__init__(self)
        self.server = server
        self.tcp_conn: TcpConnection | None = tcp_conn
        self._tcp: TcpConnection | None = tcp_conn
        self._parser = server._parser_class(self, True)
        self._queue: deque[HttpServerExchange] = deque()
        self._reading: HttpServerExchange | None = None
        self._out: list[bytes] = []
        self._out_size = 0
        self._in_batch = False
        self._in_read = False  # processing bytes just read (not a resume of held input)
        self._hold = 0
        self._tcp_paused = True  # TcpConnections start paused
        self._out_paused = False
        self._closing = False  # serve what is queued, then close
        self._served = False  # a request head arrived
        # timeouts (see _check_timeouts)
        self._fresh = False
        self._mark = server._now
        self._head_since: float | None = server._now
        self._listening: dict[str, Any] = {}
        self._known = server._known_requests
        self._batch = b""  # the read being parsed (learning known requests: input_start)
        self._flush_queued = False  # in the server's list of connections to flush (per read)
        self._switching: HttpServerExchange | None = None  # to hand over after the batch
        self._sink: _TcpSink | None = _TcpSink(self)
        self._resume_event: ScheduledEvent | None = None
        self._held_size = 0
        self._cause: HttpError | None = None  # why the connection was dropped
        self._stall_since: float | None = None
        self._body_since: float | None = None  # when the current body began (min rate)
        self._body_base = 0  # the parser's body byte count then
        self._stall_size = 0
        self._peer_eof = False
        self._client_done = False  # a request said it was the client's last (see _nothing_more)
        self._body_cut = False  # input may still be coming after an input error (_nothing_more)
        # a proxy's pipelined requests: forwarded and not finished, and those waiting their
        # turn (see ProxyBase.max_forwarded_per_connection)
        self._proxy_active = 0
        self._proxy_waiting: deque[Any] | None = None
        self._write_limit = 0  # the TcpConnection's max_write_buffer_size, while raised (_refused)
        tcp_conn.sink(self._sink)

    # -- public API -----------------------------------------------------------------------------

    @property
    def input_header_length(self) -> int:
        """Bytes of the last request head received (start line and blank line included)."""
        return self._parser.header_length

    @property
    def input_transfer_length(self) -> int:
        """Bytes of the current (or last) request body as received, chunk framing included."""
        return self._parser.transfer_length

    @property
    def idle(self) -> bool:
        """True when no request is in progress or waiting for its response."""
        return not self._queue and self._parser.idle

    def req_body_pause(self, paused: bool) -> None:
        """Stop (True) or resume (False) reading the request body: the socket is not read, so
        a client sending faster than the application consumes is slowed down by TCP.

        A request expecting ``100-continue`` gets its ``100 Continue`` when the body is first
        wanted: right after ``'request_start'`` unless the application paused the body in that
        listener, else when it resumes.
        """
        if paused:
            self._hold_set(self.HOLD_APP)
        elif self._hold & self.HOLD_APP:
            self._hold_clear(self.HOLD_APP)
            ex = self._reading
            if ex is not None and ex._expect and self.server.auto_continue:
                ex._send_continue()
                if not self._in_batch:
                    self._flush()

    def close(self) -> None:
        """Close the connection once what was written is sent. Exchanges whose response is not
        complete get ``'error'`` (ConnectError). Idempotent."""
        tcp = self.tcp_conn
        if tcp is None:
            return
        self._hold_set(self.HOLD_CLOSE)
        if tcp.write_buffer_size or not self._nothing_more(tcp):
            self._flush()
            self.tcp_conn = None
            tcp.close()
            return
        # closed at once (see _nothing_more), our FIN in the same segment as the last bytes
        if self._out:
            self._flush(last=True)
        else:
            tcp.abort()
        self.tcp_conn = None

    def _nothing_more(self, tcp: TcpConnection) -> bool:
        """Whether the socket can be closed at once rather than with a lingering close.

        A lingering close (``TcpConnection.close``: our FIN, then wait for the peer's, reading
        and dropping what it still sends) is there so that a client which sent more than we
        read (pipelined requests after a ``Connection: close`` one, the rest of a body) does
        not get a reset that destroys our response in its receive buffer. When nothing more
        from the client is waiting (the parser holds nothing, the socket has nothing to read),
        closing the socket as soon as the kernel took our last bytes (``write_last``, which
        closes gracefully when it does not) is as safe, and saves a poll round trip, two
        system calls and a timer per connection (as nginx's ``lingering_close on`` heuristic
        does). When the client's own last request said it was its last (``Connection:
        close``, or HTTP/1.0 without keep-alive), was read whole, and is answered while the
        read that brought it is processed, the socket is not even looked at: it was read a
        moment ago, and the client may send nothing more (RFC 9112 §9.6). An answer made
        later (or on a resume of held input) looks first, since a client that sent more
        meanwhile anyway would get a reset, which destroys what of the response it has not
        read yet (its whole tail, when its receive window is small). What such a client
        sends after the socket is closed still meets a reset, as RFC 9112 §9.6 allows for an
        immediate close. Plain TCP only: TLS sends close_notify first. Never while the current
        request is only partly read (its body still coming, or cut short by an input error: a
        malformed body, a 413 for a Content-Length over ``max_body_size``, a head too large
        found before it ended, framing fields refused with a body announced): the client is
        most likely still sending it, even if nothing is readable this instant.
        """
        parser = self._parser
        if parser._state != HEAD_STATE:
            if self._body_cut or not parser.dead:
                return False
        elif self._reading is not None and _body_follows(self._reading.req_hdrs):
            return False  # (a head being announced: the parser is not in its body yet)
        sock = tcp.socket
        if type(sock) is not socket.socket or self._parser.take_buffered():
            return False
        if self._client_done and self._reading is None and self._in_read:
            return True
        try:
            return not sock.recv(1, _PEEK_FLAGS)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return True  # failed already: nothing to protect

    # -- starting -------------------------------------------------------------------------------

    def _start(self) -> None:
        """Begin reading: one read attempt at once (the request is often there already, which
        saves registering for readability and a trip through the poller), then read on."""
        tcp = self._tcp
        assert tcp is not None
        tcp.handle_fd_readable()
        if not self._hold and self.tcp_conn is not None and self._tcp_paused:
            self._tcp_paused = False
            tcp.pause(False)

    # -- input ----------------------------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        if self._hold:
            self._fresh = True
            self._held_input(data)
            return
        self._in_batch = self._in_read = True
        parser = self._parser
        idle = parser._state == HEAD_STATE and not parser._buf  # (parser.idle, inlined)
        # Empty lines before a request (RFC 9112 §2.2: ignored) are not activity: a read that
        # begins with one (or ends one whose CR came alone) counts only if it starts a request
        # (see the end of this method).
        blank = (
            data[0] in b"\r\n" and parser._state == HEAD_STATE and not parser._buf.strip(b"\r\n")
        )
        if not blank:
            self._fresh = True
        request = None
        if idle and self._known and not self._queue:
            server = self.server
            if (
                len(data) <= server.max_known_request_size
                and server.max_known_requests > 0
                and server.max_pipeline_depth > 0
            ):
                request = self._known.get(data)
        if request is not None:
            parser.header_length = len(data)
            parser.transfer_length = 0
            try:
                self._known_request(request)
            finally:
                self._in_batch = self._in_read = False
        else:
            if idle:  # only a read that begins a head can teach a known request
                self._batch = data
            try:
                parser.feed(data)
            except HttpError as err:
                self._input_error(err)
            finally:
                self._in_batch = self._in_read = False
                self._batch = b""  # (an idle connection keeps no read alive)
        if blank and (self._queue or parser._state != HEAD_STATE or parser._buf.strip(b"\r\n")):
            self._fresh = True
        if self._switching is not None:
            self._hand_over(self._switching)
        elif self._out and not self._flush_queued:
            # in the server's flush pass, with the other connections' output of this turn
            # (see Output in the module docstring)
            self._flush_queued = True
            self.server._flush_soon(self)
        if self._tcp is None:
            self._release()

    def _held_input(self, data: bytes) -> None:
        """Data arrived while input is held: pause the socket (now that it matters)."""
        tcp = self._tcp
        if not self._tcp_paused and tcp is not None:
            self._tcp_paused = True
            tcp.pause(True)
        if not self._hold & self.HOLD_CLOSE:
            self._parser.feed(data)  # paused: it keeps the bytes

    def input_start(self, head: Head) -> int:
        """Parser callback: a request head arrived."""
        queue = self._queue
        server = self.server
        if len(queue) >= server.max_pipeline_depth:
            raise PipelineTooDeepError(f"more than {server.max_pipeline_depth} requests waiting")
        batch = self._batch
        if batch:  # the first head of a read that began with it: can it become known?
            self._batch = b""
            if head.repeated and not queue and head.header_length == len(batch):
                self._learn(head, batch)
        method = head.method
        ex = HttpServerExchange(self, method, head.target, head.headers, head.version)
        framing = head.framing
        if not head.keep_alive:
            ex._persist = False
            self._client_done = True
        elif self._closing:
            ex._persist = False
        if head.upgrade or method == b"CONNECT":
            ex._tunnel = True
        if head.expect_continue and framing != NO_BODY and head.version == b"1.1":
            ex._expect = True
        if server.response_timeout is not None:
            ex._born = server._now
        if not queue:
            ex._head = True
        self._announce(ex, method, head.target, head.headers)
        if ex._expect and not self._hold & self.HOLD_APP and server.auto_continue:
            ex._send_continue()
        return framing

    def _learn(self, head: Head, batch: bytes) -> None:
        """A head the parser has seen before is the whole of a read that began with it (the
        parser was idle), with nothing in progress: remember it when it is a plain request
        (see the module docstring)."""
        server = self.server
        if (
            head.framing != NO_BODY
            or head.upgrade
            or head.method == b"CONNECT"
            or len(batch) > server.max_known_request_size
            or server.max_known_requests <= 0
        ):
            return
        known = self._known
        if len(known) >= server.max_known_requests:
            known.clear()
        known[batch] = (head.method, head.target, head.headers[:], head.version, head.keep_alive)

    def _known_request(self, request: KnownRequest) -> None:
        """A known request arrived (see the module docstring): what ``input_start`` does for
        a plain request at the front of an empty queue, then ``input_end``."""
        method, target, fields, version, keep_alive = request
        headers = fields[:]
        server = self.server
        ex = HttpServerExchange(self, method, target, headers, version)
        if not keep_alive:
            ex._persist = False
            self._client_done = True
        elif self._closing:
            ex._persist = False
        if server.response_timeout is not None:
            ex._born = server._now
        ex._head = True
        self._announce(ex, method, target, headers)
        self.input_end([])

    def _announce(
        self, ex: HttpServerExchange, method: bytes, target: bytes, headers: RawHeaderListType
    ) -> None:
        """Queue a new exchange as the one being read, then emit ``'exchange'`` on the server
        and ``'request_start'`` on it (an application error is contained: ``_app_error``)."""
        self._queue.append(ex)
        self._reading = ex
        self._served = True
        self._head_since = None
        try:
            self.server._emit1("exchange", ex)
            if not ex._dead:
                ex._emit3("request_start", method, target, headers)
        except Exception as exc:
            self._app_error(ex, exc)

    def input_body(self, chunk: bytes) -> None:
        """Parser callback: part of the request body."""
        ex = self._reading
        if ex is not None and not ex._dead:
            try:
                ex._emit1("request_body", chunk)
            except Exception as exc:
                self._app_error(ex, exc)

    def input_end(self, trailers: RawHeaderListType) -> None:
        """Parser callback: the request is complete."""
        ex = self._reading
        if ex is None:  # pragma: no cover - the parser reports ends of started messages only
            return
        self._reading = None
        ex._req_done = True
        if not ex._dead:
            try:
                ex._emit1("request_done", trailers)
            except Exception as exc:
                self._app_error(ex, exc)
        if ex._tunnel or not ex._persist or self._closing or self._out_paused:
            self._after_request(ex)
        if ex._res == _DONE and ex._head:
            self._advance()

    def _after_request(self, ex: HttpServerExchange) -> None:
        """Whether to read the next request now (the uncommon cases)."""
        if ex._tunnel and (ex._res != _DONE or ex._switch):
            self._hold_set(self.HOLD_UPGRADE)  # what follows may not be HTTP: keep it
        elif not ex._persist or self._closing:
            self._hold_set(self.HOLD_CLOSE)
        elif self._out_paused:
            self._hold_set(self.HOLD_OUTPUT)

    def _input_error(self, err: HttpError) -> None:
        """The client's input is malformed: answer with the error's status, then close."""
        self._hold_set(self.HOLD_CLOSE)
        if self.listener_count("error"):
            try:
                self.emit("error", err)
            except Exception as exc:
                logger.error("exception in an 'error' listener of %r", self, exc_info=exc)
        logger.debug("%r: %s", self, err)
        status, phrase = err.server_status
        ex = self._reading
        if isinstance(err, _MORE_COMING):
            self._body_cut = True
        if ex is not None and not ex._req_done:  # its body is malformed
            self._reading = None
            self._client_done = False  # (the rest of its body may still be coming)
            self._body_cut = True
            res = ex._res
            ex._fail(err)
            if res == _NONE:
                ex._answer(status, phrase, err.desc)
            else:  # too late for a status: close after what was written
                ex._persist = False
                if res == _STARTED:
                    ex._res = _DONE
                    self._response_done(ex)
                elif ex._head:
                    self._advance()
            return
        ex = HttpServerExchange(self, b"", b"", [], b"1.1")
        ex._req_done = True
        if not self._queue:
            ex._head = True
        self._queue.append(ex)
        ex._answer(status, phrase, err.desc)

    def _app_error(self, ex: HttpServerExchange, exc: Exception) -> None:
        """An application listener raised: log it; answer 500 if no response started, else
        close the connection after this exchange."""
        logger.error("exception in an application listener of %r", ex, exc_info=exc)
        if ex._dead:
            return
        if ex._res == _NONE:
            ex._answer(b"500", b"Internal Server Error", "Internal Server Error")
            return
        ex._dead = True
        ex._persist = False
        if ex._res == _STARTED:  # truncated: the client sees an incomplete body
            ex._res = _DONE
            self._response_done(ex)
        else:  # the response was complete: close once the queue is served
            self._closing = True
            if ex in self._queue:
                if ex._head:
                    self._advance()
            elif not self._queue and self._reading is None:
                self.close()

    # -- holding input --------------------------------------------------------------------------

    def _hold_set(self, bit: int) -> None:
        if not self._hold:
            self._parser.pause()
        self._hold |= bit

    def _hold_clear(self, bit: int) -> None:
        if self._hold & bit:
            self._hold &= ~bit
            if not self._hold and self._resume_event is None and self._tcp is not None:
                self._resume_event = self.server.loop.schedule(0, self._resume)

    def _resume(self) -> None:
        self._resume_event = None
        tcp = self.tcp_conn
        if self._hold or tcp is None:
            return
        if self._tcp_paused:
            self._tcp_paused = False
            tcp.pause(False)
        self._in_batch = True
        try:
            self._parser.resume()
        except HttpError as err:
            self._input_error(err)
        finally:
            self._in_batch = False
        if self._switching is not None:
            self._hand_over(self._switching)
            return
        if self._peer_eof and not self._hold:
            self._input_eof()
        if self._out:
            self._flush()
        if self._tcp is None:
            self._release()

    # -- output ---------------------------------------------------------------------------------

    def _output_added(self) -> BufferError | None:
        """The exchange at the front of the queue added to ``_out`` outside a read batch, or
        past ``_FLUSH_SIZE`` bytes: large output goes now (so that the TCP flow control sees
        it), small output on the next loop turn (so that what is written together leaves
        together), in the server's one flush pass for all its connections (a proxy writes most
        responses outside the client's read batch: a scheduled call per connection and response
        would cost more than the write). Returns the refusal of a write that dropped the
        connection (see ``_flush``), for ``response_body`` to raise."""
        if self._out_size > _FLUSH_SIZE:
            return self._flush()
        if not self._in_batch and not self._flush_queued:
            self._flush_queued = True
            self.server._flush_soon(self)
        return None

    def _flush(self, last: bool = False) -> BufferError | None:
        """Write what the batch produced, in one write (joined; past ``_FLUSH_SIZE`` bytes,
        as they are, through ``writelines``: a large body chunk is not copied); with ``last``,
        as the connection's last bytes (``TcpConnection.write_last``: the connection is closed
        then). Returns the refusal of a write that dropped the connection (see
        ``_refused``)."""
        out = self._out
        if not out:
            return None
        if len(out) == 1:
            data: bytes | list[bytes] = out[0]
        elif self._out_size > _FLUSH_SIZE and not last:
            data = _gathered(out)  # large output: big body chunks are not copied
        else:
            data = b"".join(out)
        out.clear()
        self._out_size = 0
        tcp = self.tcp_conn
        if tcp is None:
            return None
        paused = self._out_paused  # (before the write: a refused one may pause the writer)
        try:
            if isinstance(data, list):
                tcp.writelines(data)
            elif last:
                tcp.write_last(data)
            else:
                tcp.write(data)
        except OSError:
            pass  # closed under us: the 'close' / 'disconnect' events tell the rest
        except BufferError as exc:
            return self._refused(tcp, data, last, exc, paused)
        return None

    def _refused(
        self,
        tcp: TcpConnection,
        data: bytes | list[bytes],
        last: bool,
        exc: BufferError,
        paused: bool,
    ) -> BufferError | None:
        """The TcpConnection refused ``data`` (over its ``max_write_buffer_size``).

        When the writer had not been asked to pause (``paused``: the state before this
        write), the write is taken anyway, and goes out as the client reads it, the writer
        being paused meanwhile: one large chunk is the application's memory already (a flush
        past ``_FLUSH_SIZE`` bytes writes its parts unjoined). The limit is raised by the
        write's size for that, until the queue drains (``_on_output_pause``), or an Upgrade
        hands the connection over. Otherwise the application wrote on while paused: the
        connection is dropped, and the refusal returned."""
        queued = tcp.write_buffer_size
        if not paused:
            limit = self._write_limit or tcp.max_write_buffer_size
            self._write_limit = limit
            size = sum(map(len, data)) if isinstance(data, list) else len(data)
            tcp.max_write_buffer_size = queued + size + limit
            try:
                if isinstance(data, list):
                    tcp.writelines(data)
                elif last:
                    tcp.write_last(data)
                else:
                    tcp.write(data)
            except OSError:
                return None  # closed under us (as in _flush)
            except BufferError as again:  # max_write_buffer_chunks
                exc = again
            else:
                if tcp.write_buffer_size <= limit:
                    self._restore_write_limit(tcp)
                return None
        logger.warning("%r: output refused, the connection is dropped: %s", self, exc)
        self._drop(ConnectError(f"output buffer full: {exc}"))
        return exc

    def _restore_write_limit(self, tcp: TcpConnection) -> None:
        """Put back the TcpConnection's ``max_write_buffer_size`` that ``_refused`` raised."""
        tcp.max_write_buffer_size = self._write_limit
        self._write_limit = 0

    def _response_done(self, ex: HttpServerExchange) -> None:
        """An exchange's response is complete (called by the exchange)."""
        if ex._head:
            self._advance()
            if not self._in_batch and self._out:
                self._flush()

    def _advance(self) -> None:
        """Retire finished exchanges at the front of the queue; the next one starts writing."""
        queue = self._queue
        while queue:
            ex = queue[0]
            if ex._res != _DONE or not (ex._req_done or not ex._persist):
                return
            queue.popleft()
            ex._head = False
            if ex._switch:
                if self._in_batch:  # the parser still holds the bytes after the head
                    self._switching = ex
                else:
                    self._hand_over(ex)
                return
            ex.remove_listeners()  # finished: break the cycles through the listeners
            if not ex._persist:
                self.close()
                return
            if ex._tunnel:  # an Upgrade or CONNECT the application declined: HTTP goes on
                self._hold_clear(self.HOLD_UPGRADE)
            if not queue:
                break
            nxt = queue[0]
            nxt._head = True
            held = nxt._held
            if held is not None:
                nxt._held = None
                self._out += held
                self._out_size += nxt._held_size
                self._held_size -= nxt._held_size
                nxt._held_size = 0
                if self._held_size <= self.server.max_buffered_response:
                    self._hold_clear(self.HOLD_PIPELINE)
            if nxt._paused != self._out_paused and nxt._res == _STARTED:
                nxt._set_paused(self._out_paused)
        # nothing waiting for a response
        self._fresh = True
        if self._closing and self._reading is None:
            self.close()

    def _on_output_pause(self, paused: bool) -> None:
        """The TcpConnection's write buffer passed its high-water mark (True), or drained."""
        self._out_paused = paused
        if paused:
            if self._reading is None:
                self._hold_set(self.HOLD_OUTPUT)
        else:
            if self._write_limit and self._tcp is not None:
                self._restore_write_limit(self._tcp)
            self._hold_clear(self.HOLD_OUTPUT)
        try:
            self.emit("pause", paused)
        except Exception as exc:
            logger.error("exception in a 'pause' listener of %r", self, exc_info=exc)
        if self._queue:
            ex = self._queue[0]
            if ex._res == _STARTED and ex._paused != paused and not ex._dead:
                ex._set_paused(paused)

    # -- the end --------------------------------------------------------------------------------

    def _on_peer_close(self) -> None:
        """The client closed its side (or the connection failed)."""
        tcp = self._tcp
        if tcp is None or tcp.error is not None:
            return  # failed: 'disconnect' tells the exchanges
        self._peer_eof = True
        if not self._hold:
            self._input_eof()
        # else: input is held; the end is seen when it resumes (or the connection closes)

    def _input_eof(self) -> None:
        """No more input: answer what was received, then close."""
        self._closing = True
        try:
            self._parser.eof()
        except HttpError as err:  # in the middle of a request
            self._drop(ConnectError(f"client closed the connection: {err.detail}"))
            return
        if self._reading is None:
            self._hold_set(self.HOLD_CLOSE)
            if not self._queue:
                self.close()

    def _on_disconnect(self) -> None:
        """The socket is closed: tell the exchanges still waiting for their response. The
        parser stops (pipelined requests later in the read being parsed start no exchange)."""
        self.tcp_conn = None
        self._tcp = None
        self._hold_set(self.HOLD_CLOSE)
        if self._resume_event is not None:
            self._resume_event.delete()
            self._resume_event = None
        self._out.clear()
        queue = self._queue
        self._reading = None
        cause = self._cause
        while queue:
            ex = queue.popleft()
            if ex._res != _DONE:
                ex._fail(cause or ConnectError("the connection closed before the response"))
            ex._finish()
        self.server._connection_gone(self)
        if not self._in_batch:  # (else when the batch ends)
            self._release()

    def _release(self) -> None:
        """The connection is gone: break the reference cycles through the parser's owner and
        the sink's bound methods, so that it is freed at once rather than by the garbage
        collector (which would otherwise run every few dozen connections)."""
        self._parser.owner = _NO_OWNER
        self._sink = None

    def _drop(self, cause: HttpError) -> None:
        """Abort the connection; unfinished exchanges get ``cause``."""
        tcp = self._tcp
        if tcp is None:
            return
        self._cause = cause
        self.tcp_conn = None
        tcp.abort()

    def _hand_over(self, ex: HttpServerExchange) -> None:
        """The application accepted an Upgrade or CONNECT: give it the connection."""
        self._switching = None
        tcp = self._tcp
        self._flush()
        rest = self._parser.take_buffered()
        self.tcp_conn = None
        self._tcp = None
        self._hold |= self.HOLD_CLOSE
        if self._resume_event is not None:
            self._resume_event.delete()
            self._resume_event = None
        self.server._connection_gone(self)
        if tcp is None:  # pragma: no cover - disconnect empties the queue first
            return
        if self._write_limit:  # (its 'pause' (False) will not reach us any more)
            self._restore_write_limit(tcp)
        tcp.sink(None)
        for event, handler in self._listening.items():
            tcp.remove_listener(event, handler)
        self._listening.clear()
        tcp.pause(True)
        if not ex.listener_count("upgrade"):
            logger.warning("%r: no 'upgrade' listener: closing the connection", ex)
            tcp.abort()
        else:
            try:
                ex.emit("upgrade", tcp, rest)
            except Exception as exc:
                logger.error("exception in an 'upgrade' listener of %r", ex, exc_info=exc)
                tcp.abort()
        ex._finish()
        self._release()

    def _on_new_listener(self, event: str, listener: Any) -> None:
        """Someone listens on the TcpConnection: the sink no longer gets that event, so
        listen to it too (see the module docstring)."""
        if event not in _SINK_EVENTS or event in self._listening:
            return
        tcp = self._tcp
        if tcp is not None:
            handler = getattr(self._sink, event)
            self._listening[event] = handler
            tcp.prepend_listener(event, handler)

    # -- timeouts -------------------------------------------------------------------------------

    def _check_timeouts(self, now: float) -> None:
        """Called by the server's sweep. Rules, in seconds of the server's settings:

        - write stall: output is waiting and the client took none of it for
          ``write_stall_timeout``: dropped (WriteTimeoutError to the exchanges);
        - while input is not held by thor or the application:
          receiving a body: nothing arrived for ``body_read_timeout`` (``request_timeout``
          when None); receiving a head (or nothing yet on a new connection): the head is not
          complete after ``request_head_timeout``, or nothing arrived for
          ``request_timeout``; idle between requests: ``idle_timeout``; dropped, or closed
          when idle;
        - the first queued exchange has no complete response after ``response_timeout``:
          dropped.
        """
        if self._fresh:
            self._fresh = False
            self._mark = now
        tcp = self._tcp
        if tcp is None:
            return
        server = self.server
        buffered = tcp.write_buffer_size
        if buffered:
            if self._stall_since is None or buffered < self._stall_size:
                self._stall_since = now
            self._stall_size = buffered
            limit = server.write_stall_timeout
            if limit is not None and now - self._stall_since > limit:
                self._drop(WriteTimeoutError(f"the client read nothing for {limit} s"))
                return
        else:
            self._stall_since = None
        queue = self._queue
        if self._hold or self._reading is None:
            # between bodies, or while the application holds one: nothing to measure
            self._body_since = None
        if not self._hold:
            quiet = now - self._mark
            if self._reading is not None:
                limit = server.body_read_timeout
                if limit is None:
                    limit = server.request_timeout
                if limit is not None and quiet > limit:
                    self._drop(ReadTimeoutError(f"no request body data for {limit} s"))
                    return
                if self._body_too_slow(now):
                    self._drop(
                        ReadTimeoutError(f"request body slower than {server.body_min_rate} B/s")
                    )
                    return
            elif not self._parser.idle or not self._served:
                if self._head_since is None:
                    self._head_since = now
                limit = server.request_head_timeout
                if (limit is not None and now - self._head_since > limit) or (
                    server.request_timeout is not None and quiet > server.request_timeout
                ):
                    logger.debug("%r: request head timeout", self)
                    self._drop(ReadTimeoutError("request head timeout"))
                    return
            elif not queue:
                self._head_since = None
                if server.idle_timeout and quiet > server.idle_timeout:
                    self.close()
                    return
        limit = server.response_timeout
        if limit is not None and queue and now - queue[0]._born > limit:
            self._drop(ConnectError(f"the response was not complete after {limit} s"))

    def _body_too_slow(self, now: float) -> bool:
        """True when the body in progress averages less than the server's ``body_min_rate``
        since it started (or since the application last released it), after the grace."""
        rate = self.server.body_min_rate
        if rate is None:
            return False
        received = self._parser.transfer_length
        if self._body_since is None or received < self._body_base:
            self._body_since, self._body_base = now, received
            return False
        elapsed = now - self._body_since
        return elapsed > self.server.body_rate_grace and received - self._body_base < rate * elapsed

    def __repr__(self) -> str:
        tcp = self._tcp
        address = tcp.address if tcp is not None else None
        return f"<HttpServerConnection {address!r} queued={len(self._queue)} hold={self._hold}>"
