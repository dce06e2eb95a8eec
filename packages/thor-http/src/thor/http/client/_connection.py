"""HttpClientConnection: one connection of the client's pool, from connecting to closing.

Theory of operation
-------------------
States: CONNECTING (a TcpClient/TlsClient is working; ``connect_attempts`` attempts of
``connect_timeout`` each) -> ACTIVE (an exchange is using it) <-> IDLE (in the pool) -> CLOSED.
The pool (``HttpClient``) moves a connection between ACTIVE and IDLE; the connection closes
itself (``_close``) on any error, timeout, unsolicited byte or non-persistent response, and tells
the pool and, if it has one, its exchange.

Reading: the TCP connection reads all the time, idle or not (so a FIN or stray bytes on an idle
connection are seen at once, and no pause/resume system calls are spent per request); only the
application's ``res_body_pause`` stops it. Bytes go to the sans-IO ``HttpParser``, which calls
``input_start`` / ``input_body`` / ``input_end`` here. At the end of a response the parser is
paused, so whatever else the same read held is *not* parsed as a next response (a known
response, below, is alone in its read and never reaches the parser): once the read is done
(``_settle``), such bytes make the connection unusable (classic thor's response injection).
Then the connection goes back to the pool **before** ``'response_done'`` is emitted, so a request
started from that listener reuses it.

Known responses: a final response head with a Content-Length body that the parser served from
its cache of heads (``Head.repeated``: seen before), arriving with its whole body and nothing else
in one read that began with it (the parser idle: nothing kept from an earlier read; and the
first head of the read: no 1xx before it), is remembered by the client
(``HttpClient.max_known_responses``). When the same head
bytes arrive again that way (on an idle parser, for a request other than HEAD), the head's parse
is skipped: ``_known_response`` does what ``input_start`` does with what the parser gave before
(the application gets its own copy of the field list), then what the parser's ``input_body`` and
``input_end`` calls would do with the whole body. Should the ``'response_start'`` listener pause
the input or close the connection (or the parser have a body limit), the parser takes over for
the body instead (``HttpParser.known_body``), so delivery, ``res_body_pause`` and the end of the
message are the same code as after a parsed head. The key is the head's bytes, so the skipped
parse is one that would give the same result; a head is learnt on its second sighting only, so
distinct heads (a changing ``Date`` is one per second) never fill the table.

Timers: one per connection, lazy. Every read and write stamps ``_last_io`` (a clock read, no
timer work); the timer fires at the earliest deadline that could matter and, when it fires, works
out whether anything really expired (read inactivity while ACTIVE, ``idle_timeout`` while IDLE)
or re-arms itself for the true deadline. Bytes the kernel takes from the write queue (a large
request body going out) are seen there too: a queue whose size changed since the timer last
looked counts as activity, so a body that drains never times out, and one that stalls does
after one to two ``read_timeout`` periods. So a busy connection schedules about one timer per
``read_timeout`` period, not one per request or per read.
"""

from __future__ import annotations

import errno
import select
import sys
from time import monotonic
from typing import TYPE_CHECKING

from thor.events import EventEmitter
from thor.tcp import TcpClient
from thor.tls import TlsClient, TlsConnection

from .._parser import CLOSE, COUNTED, HEAD_STATE, NO_BODY, Head, HttpParser
from ..error import (
    AccessError,
    ConnectError,
    DnsError,
    HttpError,
    ReadTimeoutError,
    TooManyMsgsError,
    UpgradeError,
)

if TYPE_CHECKING:
    from thor.loop import ScheduledEvent
    from thor.tcp import TcpConnection

    from .._headers import RawHeaderListType
    from ._client import HttpClient, OriginType
    from ._exchange import HttpClientExchange

__all__ = ["HttpClientConnection"]

CONNECTING, ACTIVE, IDLE, CLOSED = "connecting", "active", "idle", "closed"

_NO_BODY_STATUS = (b"204", b"304")
_HAS_POLL = hasattr(select, "poll")
if sys.platform.startswith("linux"):
    import fcntl
    import termios

    def _kernel_unsent(fd: int) -> int:
        """Bytes in a TCP socket's send queue that the peer has not acknowledged yet (Linux's
        SIOCOUTQ, which is TIOCOUTQ)."""
        return int.from_bytes(fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0"), sys.byteorder)

else:  # pragma: no cover - elsewhere only the connection's own queue is looked at

    def _kernel_unsent(fd: int) -> int:
        """Not known on this platform."""
        return 0


_ALLOWANCE = 0.001  # a timer firing this early counts as on time


class _DataSink:
    """Takes the TcpConnection's ``'data'`` for an HttpClientConnection: a sink method is
    called directly, without entering a listener's context on every read. Should someone else
    listen to ``'data'`` (the sink then gets none), the connection listens too (``newListener``)."""

    __slots__ = ("data", "newListener")

    def __init__(self, conn: HttpClientConnection) -> None:
        self.data = conn._on_data
        self.newListener = conn._on_new_listener


class HttpClientConnection(EventEmitter):
    """A connection to one origin, owned by an ``HttpClient``'s pool.

    Applications meet it as ``exchange.conn`` while an exchange uses it.

    Attributes:
        client: the HttpClient it belongs to.
        origin: ``(scheme, host, port)``.
        tcp_conn: the TcpConnection (a TlsConnection for https); None while connecting.
        res_version: the HTTP version of the last response head received (b"1.1"), also set
            for 1xx responses.
        state: "connecting", "active", "idle" or "closed".
        connected_at: the loop time (``loop.time()``) the connection was established (TLS
            handshake included); None while connecting.

    Events:
        close (): the connection is closed (by either side, or after an error); once.
        pause (bool): the TCP write buffer went over (True) or back under (False) its limit.
    """

    # Slots, not the instance dict (see HttpServerConnection.__slots__ for CPython 3.11's
    # shared key tables, which take 30 names at most: this class's 27 and the emitter's two
    # came close). Every slot is set in __init__.
    __slots__ = (
        "_app_paused",
        "_attempts",
        "_batch",
        "_careful",
        "_done",
        "_eof_pending",
        "_framing",
        "_keep_alive",
        "_known",
        "_last_io",
        "_nonfinal",
        "_nonfinal_for",
        "_out_paused",
        "_queued_seen",
        "_response_bytes",
        "_sent",
        "_tcp_client",
        "_timer",
        "_timer_at",
        "_tls_stale",
        "_trailers",
        "_upgrade_head",
        "client",
        "connected_at",
        "exchange",
        "origin",
        "parser",
        "res_version",
        "reused",
        "state",
        "tcp_conn",
    )

    def __init__(self, client: HttpClient, origin: OriginType) -> None:
        EventEmitter.__init__(self)
        self.client = client
        self.origin = origin
        self.tcp_conn: TcpConnection | None = None
        self.res_version: bytes | None = None
        self.state = CONNECTING
        self.connected_at: float | None = None
        self.exchange: HttpClientExchange | None = None
        self.reused = False  # it served a response before the current one
        self.parser = HttpParser(self, requests=False)
        self._careful = True
        self._tcp_client: TcpClient | None = None
        self._attempts = 0
        self._sent = False  # the current exchange wrote something here
        self._response_bytes = False  # bytes of a response to the current exchange arrived
        self._framing = NO_BODY
        self._keep_alive = False
        self._done = False  # a response ended during the current read
        self._trailers: RawHeaderListType = []
        self._upgrade_head: Head | None = None
        self._app_paused = False
        self._out_paused = False
        self._eof_pending = False
        self._last_io = 0.0
        self._queued_seen = 0  # the TCP write queue's size when the timer last looked
        self._timer: ScheduledEvent | None = None
        self._timer_at = 0.0
        self._known = client._known_responses
        self._batch = b""  # the read being parsed (learning known responses: input_start)
        self._tls_stale = False  # made before a TLS setting of the client changed
        self._nonfinal = 0  # 1xx responses to the exchange _nonfinal_for
        self._nonfinal_for: HttpClientExchange | None = None

    # -- public ---------------------------------------------------------------------------------

    @property
    def tcp_connected(self) -> bool:
        """True while the TCP connection is open in both directions."""
        return self.tcp_conn is not None and self.tcp_conn.tcp_connected

    def close(self) -> None:
        """Close the connection now. An exchange using it ends with ``'error'``
        (``ConnectError``, not retried); the pool forgets it. Idempotent."""
        self._close(ConnectError("connection closed by the application"))

    def __repr__(self) -> str:
        scheme, host, port = self.origin
        return f"<HttpClientConnection {scheme}://{host}:{port} {self.state}>"

    # -- connecting -----------------------------------------------------------------------------

    def _connect(self) -> None:
        """Start one connection attempt (TcpClient/TlsClient, with happy eyeballs)."""
        client = self.client
        scheme, host, port = self.origin
        self._attempts += 1
        try:
            if scheme == "https":
                if client.tls_context is not None:
                    tcp_client: TcpClient = TlsClient(client.loop, context=client.tls_context)
                else:
                    tcp_client = TlsClient(
                        client.loop,
                        verify=client.tls_verify,
                        ca_file=client.tls_ca_file if client.tls_verify else None,
                        alpn_protocols=["http/1.1"],
                    )
            else:
                tcp_client = TcpClient(client.loop)
            tcp_client.check_ip = client.check_ip
            tcp_client.on("connect", self._connected)
            tcp_client.on("connect_error", self._connect_error)
            self._tcp_client = tcp_client
            tcp_client.connect(host.encode("ascii"), port, client.connect_timeout)
        except (OSError, ValueError) as exc:  # a bad CA file, a bad TLS setting
            self._stop_connecting(cancel=True)
            self.client._connect_failed(self, ConnectError(f"cannot connect: {exc}"))

    def _stop_connecting(self, cancel: bool = False) -> None:
        tcp_client, self._tcp_client = self._tcp_client, None
        if tcp_client is not None:
            tcp_client.remove_listeners("connect", "connect_error")
            if cancel:
                tcp_client.cancel()  # stops its attempts and timers, closes their sockets

    def _connected(self, tcp_conn: TcpConnection) -> None:
        self._stop_connecting()
        if self.state == CLOSED:  # pragma: no cover - listeners are gone by then
            tcp_conn.abort()
            return
        self.tcp_conn = tcp_conn
        self.connected_at = self._last_io = monotonic()
        tcp_conn.defer_writes = self.client.defer_writes
        tcp_conn.on("close", self._on_close)
        tcp_conn.on("pause", self._on_pause)
        tcp_conn.on("disconnect", self._on_disconnect)
        tcp_conn.sink(_DataSink(self))
        tcp_conn.pause(False)
        self.client._conn_ready(self)

    def _connect_error(self, err_type: str, err_id: int, err_str: str) -> None:
        self._stop_connecting()
        if self.state == CLOSED:  # pragma: no cover - listeners are gone by then
            return
        err: HttpError
        if err_type == "gai":
            err = DnsError(err_str)
        elif err_type == "access":
            err = AccessError(err_str)
        elif err_type == "ssl":
            err = ConnectError(err_str)
        elif self._attempts < self.client.connect_attempts:
            self._connect()
            return
        elif err_id == errno.ETIMEDOUT:
            err = ReadTimeoutError("connect")
        else:
            err = ConnectError(err_str)
        self.client._connect_failed(self, err)

    # -- the pool's moves -----------------------------------------------------------------------

    def _activate(self, exchange: HttpClientExchange) -> None:
        """Start serving ``exchange`` (the connection is connected and not in use)."""
        self.state = ACTIVE
        self.exchange = exchange
        self._sent = False
        self._queued_seen = 0
        self._response_bytes = False
        if exchange.careful != self._careful:
            self._careful = careful = exchange.careful
            self.parser.lenient_bare_lf = self.parser.lenient_obs_fold = not careful
        now = self._last_io = monotonic()
        client = self.client
        limit = client.read_timeout
        if limit is None:
            limit = client.connect_timeout
        if limit and (self._timer is None or self._timer_at > now + limit):
            self._arm(now + limit)
        exchange._attached(self)

    def _idle(self) -> None:
        """Wait in the pool."""
        self.state = IDLE
        self.reused = True
        idle = self.client.idle_timeout
        if idle:
            deadline = self._last_io + idle  # the end of the response, as good as now
            if self._timer is None or self._timer_at > deadline:
                self._arm(deadline)

    def _probe(self) -> bool:
        """Whether an idle connection still looks usable: nothing readable (no FIN, no reset,
        no stray bytes) right now. One poll system call; used before sending a request that
        could not be retried if the connection turned out to be dead."""
        tcp_conn = self.tcp_conn
        if tcp_conn is None or not tcp_conn.tcp_connected:
            return False
        try:
            fd = tcp_conn.socket.fileno()
            if _HAS_POLL:
                poller = select.poll()
                poller.register(fd, select.POLLIN | select.POLLPRI)
                return not poller.poll(0)
            readable, _, failed = select.select([fd], [], [fd], 0)
            return not readable and not failed
        except (OSError, ValueError):
            return False

    def _close(self, err: HttpError | None, retryable: bool = False) -> None:
        """Close and forget this connection; tell its exchange, if any, what happened.

        Args:
            err: why, for the exchange using it (callers that end an exchange themselves
                detach it first).
            retryable: the connection was lost before any response byte arrived, so the
                exchange may retry (it decides, by method, body and attempts).
        """
        if self.state == CLOSED:
            return
        self.state = CLOSED
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.delete()
        self._stop_connecting(cancel=True)
        self._upgrade_head = None  # (a 101 whose exchange was cancelled: nothing to hand over)
        tcp_conn = self.tcp_conn
        if tcp_conn is not None:
            tcp_conn.sink(None)
            tcp_conn.remove_listeners("data", "close", "pause", "disconnect")
            if err is None and isinstance(tcp_conn, TlsConnection) and tcp_conn.tcp_connected:
                tcp_conn.close()  # an orderly end: close_notify first (RFC 8446 §6.1)
                if not self.client.loop.running:
                    # (the loop stopped, or never ran: nothing would finish the close, which
                    # sent close_notify now if it could)
                    tcp_conn.abort()
            else:
                tcp_conn.abort()
        self.parser.pause()
        reused = self.reused
        client = self.client
        client._forget(self)
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange._conn_lost(err or ConnectError("connection closed"), retryable, reused)
        client._service(self.origin)
        if self.listener_count("close"):
            self.emit("close")

    # -- writing (for the exchange) -------------------------------------------------------------

    def _write(self, data: bytes, now: bool = False) -> bool:
        """Write part of the current request; False when the connection failed doing so.
        ``now``: not deferred to the end of the loop pass (see ``HttpClient.defer_writes``),
        so that False means the kernel did not take the bytes (the exchange may then retry
        a request that is not idempotent)."""
        tcp_conn = self.tcp_conn
        assert tcp_conn is not None
        self._sent = True
        try:
            tcp_conn.write(data)
            if now:
                tcp_conn.flush()
        except OSError:
            return False
        self._last_io = monotonic()
        return tcp_conn.error is None

    # -- TCP events -----------------------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        self._last_io = monotonic()
        exchange = self.exchange
        if exchange is None or not self._sent:
            if not data.strip(b"\r\n"):
                return  # a stray empty line is harmless (RFC 9112 §2.2)
            # Nothing was asked: these bytes are no response (an injection, or a server that
            # is about to close). Never keep them for the next request.
            self._close(ConnectError("the server sent data before the request"), True)
            return
        self._response_bytes = True
        parser = self.parser
        # a read that begins a response (nothing kept from earlier reads) may be a known one,
        # or teach one (input_start)
        fresh = not self._app_paused and parser._state == HEAD_STATE and not parser._buf  # (idle)
        response = None
        if fresh and self._known:
            client = self.client
            end = data.find(b"\r\n\r\n") + 4
            if (
                end > 4
                and len(data) <= client.max_known_response_size
                and client.max_known_responses > 0
                and exchange.method != b"HEAD"
            ):
                response = self._known.get(data[:end])
                if response is not None and response[5] != len(data) - end:
                    response = None
        try:
            if response is not None:
                self._known_response(response, data, end)
            else:
                if fresh:
                    self._batch = data
                parser.feed(data)
        except HttpError as err:
            self._close(err)
            return
        finally:
            self._batch = b""  # (an idle connection keeps no read alive)
        if self._done:
            self._settle()
        elif self._upgrade_head is not None:
            self._upgrade()

    def _on_new_listener(self, event: str, listener: object) -> None:
        """Someone listens to the TcpConnection's ``'data'``: the sink no longer gets it, so
        listen to it as well (first, as the connection's own reader)."""
        tcp_conn = self.tcp_conn
        if (
            event == "data"
            and tcp_conn is not None
            and self._on_data not in tcp_conn.listeners("data")
        ):
            tcp_conn.prepend_listener("data", self._on_data)

    def _on_close(self) -> None:
        """The peer closed its side (FIN), or the connection failed (reset...)."""
        if self.state == CLOSED:  # pragma: no cover - listeners are gone by then
            return
        if self.exchange is None:
            self._close(None)
        elif self._app_paused and not self.parser.idle:
            self._eof_pending = True  # finish once the application reads the rest
        else:
            self._eof()

    def _eof(self) -> None:
        self._eof_pending = False
        tcp_conn = self.tcp_conn
        assert tcp_conn is not None
        try:
            if self._framing == CLOSE and self._response_bytes:
                if tcp_conn.error is not None:
                    # a reset cannot end a close-delimited body: it may be truncated
                    raise ConnectError(f"connection reset during the response: {tcp_conn.error}")
                if isinstance(tcp_conn, TlsConnection) and not tcp_conn.close_notify_received:
                    # over TLS, only the closure alert ends such a body (RFC 9112 §9.8): a bare
                    # FIN may be an attacker's truncation
                    raise ConnectError(
                        "the server closed TLS without close_notify during a response delimited"
                        " by the connection's end: it may be truncated"
                    )
            self.parser.eof()
        except HttpError as err:
            self._close(err)
            return
        if self._done:
            self._settle()
        elif not self._response_bytes:
            reason = (
                f"connection failed before the response: {tcp_conn.error}"
                if tcp_conn.error is not None
                else "the server closed the connection before responding"
            )
            self._close(ConnectError(reason), True)
        else:
            self._close(ConnectError("Server dropped connection before the response was complete."))

    def _on_disconnect(self) -> None:
        """The socket was closed under us: by ``exchange.conn.tcp_conn.abort()`` (classic
        applications cancel that way), or by a failure, which ``'close'`` reports."""
        tcp_conn = self.tcp_conn
        if self.state != CLOSED and tcp_conn is not None and tcp_conn.error is None:
            self._close(ConnectError("connection aborted by the application"))

    def _on_pause(self, paused: bool) -> None:
        self._out_paused = paused
        self._last_io = monotonic()
        exchange = self.exchange
        if exchange is not None:
            exchange._output_paused(paused)
        if self.listener_count("pause"):
            self.emit("pause", paused)

    # -- application flow control ---------------------------------------------------------------

    def _pause_input(self, paused: bool) -> None:
        tcp_conn = self.tcp_conn
        if tcp_conn is None or paused == self._app_paused:
            return
        self._app_paused = paused
        tcp_conn.pause(paused)
        if paused:
            self.parser.pause()
            return
        self._last_io = monotonic()
        try:
            self.parser.resume()
        except HttpError as err:
            self._close(err)
            return
        if self._done:
            self._settle()
        elif self._upgrade_head is not None:
            self._upgrade()
        elif self._eof_pending and self.state == ACTIVE and not self._app_paused:
            self._eof()

    # -- parser owner ---------------------------------------------------------------------------

    def input_start(self, head: Head) -> int:
        """Parser callback: a response head arrived; emits ``'response_nonfinal'`` or
        ``'response_start'`` on the exchange and returns the body's framing."""
        exchange = self.exchange
        self.res_version = head.version
        batch = self._batch
        if batch:  # only the first head of a read that began with it can become known
            self._batch = b""
        if exchange is None:
            return NO_BODY
        status = head.status
        if status[0] == 49:  # "1": interim response
            if self._nonfinal_for is not exchange:  # (counted here: nothing per request)
                self._nonfinal_for = exchange
                self._nonfinal = 0
            self._nonfinal += 1
            limit = self.client.max_nonfinal_responses
            if limit is not None and self._nonfinal > limit:
                raise TooManyMsgsError(
                    f"more than {limit} interim (1xx) responses (max_nonfinal_responses)"
                )
            if status == b"101":
                if not exchange._upgrade:
                    raise UpgradeError("101 Switching Protocols, but no upgrade was asked for")
                self._upgrade_head = head
            exchange.input_header_length = head.header_length
            exchange.emit("response_nonfinal", status, head.phrase, head.headers)
            return NO_BODY
        self._keep_alive = head.keep_alive
        if status in _NO_BODY_STATUS or exchange.method == b"HEAD":
            framing = NO_BODY
        else:
            framing = head.framing
        self._framing = framing
        if framing == COUNTED and head.repeated and batch:
            self._learn(head, batch)
        exchange.res_version = head.version
        exchange.input_header_length = head.header_length
        exchange._res_started = True
        exchange._emit3("response_start", status, head.phrase, head.headers)
        return framing

    def _learn(self, head: Head, batch: bytes) -> None:
        """A final response head with a Content-Length body, served by the parser's cache of
        heads, is the first head of ``batch``, a read that began with the parser idle:
        remember it when the read holds exactly it and its whole body (see the module
        docstring)."""
        length = head.content_length or 0
        client = self.client
        if (
            not length
            or not head.keep_alive
            or len(batch) != head.header_length + length
            or len(batch) > client.max_known_response_size
            or batch.find(b"\r\n\r\n") + 4 != head.header_length  # (the head began the read)
            or client.max_known_responses <= 0
        ):
            return
        known = self._known
        if len(known) >= client.max_known_responses:
            known.clear()
        known[batch[: head.header_length]] = (
            head.status,
            head.phrase,
            head.headers[:],
            head.version,
            True,
            length,
        )

    def _known_response(
        self,
        response: tuple[bytes, bytes, RawHeaderListType, bytes, bool, int],
        data: bytes,
        end: int,
    ) -> None:
        """A known response arrived whole in one read (see the module docstring): what
        ``input_start`` does for a final response with a Content-Length body, then the body
        and the end of the message. Those are what the parser would do with them
        (``input_body``, ``input_end``), done here while nothing stands in the way; should
        the ``'response_start'`` listener pause the input or close the connection, or the
        parser have a body limit, the parser takes the body
        (``HttpParser.known_body``)."""
        status, phrase, fields, version, keep_alive, length = response
        exchange = self.exchange
        assert exchange is not None
        parser = self.parser
        parser.header_length = end
        parser.transfer_length = 0
        self.res_version = version
        self._keep_alive = keep_alive
        self._framing = COUNTED
        exchange.res_version = version
        exchange.input_header_length = end
        exchange._res_started = True
        exchange._emit3("response_start", status, phrase, fields[:])
        if parser._paused or parser.max_body_size is not None:
            parser.known_body(length, data[end:])
            return
        parser.transfer_length = length
        exchange._emit1("response_body", data[end:])
        if self.exchange is exchange:  # (the listener did not close the connection)
            self._done = True
            self._trailers = []

    def input_body(self, chunk: bytes) -> None:
        """Parser callback: part of the response body; emitted as ``'response_body'``."""
        exchange = self.exchange
        if exchange is not None:
            exchange._emit1("response_body", chunk)

    def input_end(self, trailers: RawHeaderListType) -> None:
        """Parser callback: the response is complete (``_settle`` finishes the exchange once
        the read is looked at)."""
        if self.exchange is not None:
            self._done = True
            self._trailers = trailers
            # what else this read holds is not a response: keep it out of the parser
            self.parser.pause()

    # -- ends -----------------------------------------------------------------------------------

    def _settle(self) -> None:
        """A response is complete and its read fully looked at: pool or close the connection,
        then tell the exchange."""
        self._done = False
        exchange = self.exchange
        if exchange is None:  # pragma: no cover - closed while finishing
            return
        trailers, self._trailers = self._trailers, []
        parser = self.parser
        leftover = parser.take_buffered() if parser._buf else b""
        if parser._paused and not self._app_paused:  # (not paused after a known response)
            parser.resume()
        exchange._transfer_length = parser.transfer_length
        tcp_conn = self.tcp_conn
        assert tcp_conn is not None
        self.exchange = None
        if (
            self._keep_alive
            and self._framing != CLOSE
            and exchange._request_complete()
            and self.client.idle_timeout
            and tcp_conn.tcp_connected
            and not leftover.strip(b"\r\n")
            and self.state == ACTIVE
        ):
            if self._app_paused:
                self._app_paused = False
                tcp_conn.pause(False)
                parser.resume()
            self.client._release(self)
        else:
            self._close(None)
        exchange._response_done(trailers)

    def _upgrade(self) -> None:
        """A 101 response: hand the TCP connection over to the exchange's application."""
        head = self._upgrade_head
        self._upgrade_head = None
        exchange = self.exchange
        tcp_conn = self.tcp_conn
        assert head is not None and exchange is not None and tcp_conn is not None
        rest = self.parser.take_buffered()
        tcp_conn.sink(None)
        tcp_conn.remove_listeners("data", "close", "pause", "disconnect")
        tcp_conn.pause(True)
        self.exchange = None
        self.state = CLOSED
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.delete()
        self.client._forget(self)
        self.client._service(self.origin)
        exchange._upgraded(tcp_conn, rest)

    # -- the timer ------------------------------------------------------------------------------

    def _read_limit(self) -> float | None:
        client = self.client
        limit = client.read_timeout
        return limit if limit is not None else client.connect_timeout

    def _unsent(self) -> int:
        """Bytes of output not yet acknowledged by the server: the TCP connection's write queue
        and, on Linux, what the kernel still holds (SIOCOUTQ)."""
        tcp_conn = self.tcp_conn
        if tcp_conn is None:
            return 0
        unsent = tcp_conn.write_buffer_size
        if tcp_conn.tcp_connected:
            try:
                unsent += _kernel_unsent(tcp_conn.socket.fileno())
            except (OSError, ValueError):
                pass
        return unsent

    def _arm(self, when: float) -> None:
        """Make sure the timer fires no later than ``when``."""
        timer = self._timer
        if timer is not None:
            if self._timer_at <= when:
                return  # it fires earlier and will re-arm itself
            timer.delete()
        self._timer_at = when
        self._timer = self.client.loop.schedule(max(0.0, when - monotonic()), self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = monotonic()
        state = self.state
        if state == IDLE:
            idle = self.client.idle_timeout
            if not idle or now >= self._last_io + idle - _ALLOWANCE:
                self._close(None)
            else:
                self._arm(self._last_io + idle)
        elif state == ACTIVE:
            limit = self._read_limit()
            if not limit:
                return
            if self._app_paused:
                self._last_io = now  # the application holds the response: not the server's fault
            queued = self._unsent()
            if queued != self._queued_seen:
                # bytes went out since the last look: the server is taking the request (a
                # large body), which counts as activity (no per-send bookkeeping)
                self._queued_seen = queued
                self._last_io = now
            if now >= self._last_io + limit - _ALLOWANCE:
                self._close(ReadTimeoutError("read"))
            else:
                self._arm(self._last_io + limit)
