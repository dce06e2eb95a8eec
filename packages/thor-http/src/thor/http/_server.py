"""HttpServer: accepts connections and turns their requests into exchanges (thor 0.17's API).

Theory of operation
-------------------
The server owns a TcpServer (or a TlsServer for HTTPS) and makes an ``HttpServerConnection`` for
each accepted connection (see ``_server_connection.py`` for input, ordering and batching, and
``_server_exchange.py`` for the response API).

Settings are class attributes, so an application changes them on the class, a subclass or an
instance; the parser limits become attributes of a parser class of the server's own (so a
connection costs no copying of settings), made again when one of them is set on the server:
connections made after that use it.

Time: the server keeps a coarse clock (``_now``) and the cached ``Date`` field, both refreshed
by its **sweep**, one loop timer that runs every ``sweep_interval`` seconds while the server has
connections, and checks every connection's timeouts (``HttpServerConnection._check_timeouts``).
A read costs one attribute store instead of re-arming a timer, and an idle server has no timer
at all. Timeouts therefore fire up to one ``sweep_interval`` late.

Shutdown: ``shutdown()`` stops listening and emits ``'stop'`` at once (connections carry on).
``graceful_shutdown()`` stops listening, closes idle connections, lets every request already
received be answered (with ``Connection: close``), closes each connection after its last
response, and emits ``'stop'`` once every connection is closed. (A connection the kernel still
holds for ``defer_accept`` when the listener closes never reaches the server.)
"""

from __future__ import annotations

import logging
import math
import socket
from typing import TYPE_CHECKING, Any, ClassVar

from thor.events import EventEmitter
from thor.loop import get_default_loop
from thor.tcp import TcpServer

from . import _limits
from ._parser import HttpParser
from ._server_connection import HttpServerConnection
from ._server_framing import date_cache

#: settings that become the parser class's own (see ``HttpServer._make_parser_class``)
_PARSER_SETTINGS = frozenset(
    {
        "max_request_line",
        "max_field_section",
        "max_fields",
        "max_chunk_line",
        "max_body_size",
        "lenient_bare_lf",
        "lenient_obs_fold",
    }
)

if TYPE_CHECKING:
    import ssl

    from thor.loop import LoopBase, ScheduledEvent
    from thor.tcp import TcpConnection

    from ._server_connection import KnownRequest

__all__ = ["HttpServer"]

logger = logging.getLogger("thor.http")


class HttpServer(EventEmitter):
    """An HTTP/1.1 server: emits an ``HttpServerExchange`` for every request it receives.

    Args:
        host: the address to listen on, as bytes (``b"127.0.0.1"``, ``b"::1"``, ``b""`` for
            all addresses).
        port: the port; 0 picks a free one (see ``port``).
        loop: the loop to run on; the default loop when None.
        sock: an already listening socket to serve instead of binding ``host``/``port``.
        backlog: the listen queue length (default ``socket.SOMAXCONN``).
        reuse_port: set SO_REUSEPORT, so several processes can serve the same port.
        tls_context: a server ``ssl.SSLContext``: serve HTTPS (through ``thor.tls.TlsServer``).

    Attributes:
        tcp_server: the TcpServer (a TlsServer with ``tls_context``).
        tls: True when the server speaks HTTPS (made with ``tls_context``).
        loop: the loop.
        port: the port it listens on.
        connections: the open HttpServerConnections.
        shutting_down: True once ``graceful_shutdown()`` was called.

    Settings (class attributes; seconds, or bytes; None disables a timeout; set them on the
    class, a subclass, or the server; the parser limits set on a server apply to the
    connections it accepts afterwards; ``tcp_server_class`` and ``defer_accept`` are used
    when the server is made, so only the class or a subclass can change them):
        tcp_server_class: the TcpServer class (TcpServer).
        idle_timeout: a keep-alive connection with no request for this long is closed (60).
        request_timeout: receiving a request (head or body) stalls for this long: the
            connection is dropped (60).
        request_head_timeout: a request head is not complete this long after it started (or
            after the connection opened): dropped (slow-loris defence) (10).
        body_read_timeout: receiving a request body stalls for this long: dropped, the
            exchange gets ReadTimeoutError; None means ``request_timeout`` applies (None).
        body_min_rate: bytes per second a request body must average once ``body_rate_grace``
            seconds have passed since it started (not counting time the application paused
            it): slower bodies (slow-loris trickles that never go idle) are dropped with
            ReadTimeoutError (500; None: no minimum).
        body_rate_grace: seconds before ``body_min_rate`` applies (20).
        response_timeout: the first waiting exchange has no complete response after this
            long: dropped, the exchange gets ConnectError (None).
        write_stall_timeout: the client takes none of the waiting output for this long:
            dropped, the exchanges get WriteTimeoutError (60).
        sweep_interval: how often timeouts are checked, and the Date refreshed (1.0).
        max_pipeline_depth: requests received and not yet answered on one connection; one more
            is answered 400 (PipelineTooDeepError) and the connection closes (100).
        max_buffered_response: bytes of pipelined responses held while an earlier response is
            not finished: beyond, the producing exchange gets ``'pause'`` and no new request is
            read; beyond four times this, ``response_body`` raises BufferError (1 MiB).
        max_body_size: bytes of a request body: 413 beyond (1 GiB; None for no limit).
        max_request_line: bytes of a request line: 414 beyond (8 KiB).
        max_field_section: bytes of a request head or trailer section: 431 beyond (64 KiB).
        max_fields: field lines in a head or trailer section: 431 beyond (100).
        max_chunk_line: bytes of a chunk-size line: 400 beyond (4 KiB).
        lenient_bare_lf: accept requests whose lines end with LF alone (False). Risk: a
            front-end that ends lines differently sees other field boundaries (smuggling).
        lenient_obs_fold: accept obsolete folded field lines, unfolded with one space (False).
            Risk: an intermediary that forwards them unfolded differently.
        auto_continue: answer ``Expect: 100-continue`` by itself when the application wants
            the body (see ``HttpServerConnection.req_body_pause``); False leaves it to the
            application (``response_nonfinal(b"100", b"Continue", [])``) (True).
        proxy_protocol: every connection starts with a PROXY protocol header, version 1 or 2
            (from a load balancer: see ``_proxy_protocol.py``); the connection's ``address``
            becomes the client's address it names. The header must be complete within
            ``request_head_timeout`` (``request_timeout`` when None); a connection whose
            header is missing, malformed or late is closed without a response. With
            ``tls_context``, the header is read before the TLS handshake, as a balancer
            passing TLS through sends it (see ``_proxy_protocol_tls.py``): set it on the class
            (or a subclass), since the listener is made by the constructor (False).
        max_known_requests: how many known requests the server remembers: request heads
            the parser had seen before that then made up, alone, a read beginning with them,
            and parsed to a plain request (no body, no Upgrade, not CONNECT); such
            a head arriving again, alone in a read on a connection with nothing in progress,
            skips the parser (health checks, polling clients and load generators repeat their
            heads byte for byte). The parse it skips is the one that would give the same
            result under this server's settings. 0 turns it off (lookups too, at once); when
            full, it is emptied and learnt again (64).
        max_known_request_size: bytes of a head that may become known: a read is looked up
            only when it is no longer than this (2048).
        defer_accept: the kernel hands the server a connection once its first bytes have
            arrived, or after this many seconds of silence, rounded up to 1, 3, 7, 15...
            (``TcpServer.defer_accept``: Linux's TCP_DEFER_ACCEPT, as nginx's ``deferred``
            and Apache's ``AcceptFilter``). A connection then arrives with its request, so a
            ``Connection: close`` exchange costs the server no extra wake-up and no poll
            registration. ``request_head_timeout`` counts from the handover; until then a
            silent connection waits in the kernel's SYN queue, and if the server stops
            listening meanwhile (``shutdown``, ``graceful_shutdown``) it is dropped without a
            packet: its client gets a reset when it sends its request. 0 turns it off; None
            leaves the listening socket as it is (one given as ``sock`` may have it set).
            Elsewhere, and with a ``tcp_server_class`` that has no ``defer_accept``, it does
            nothing. Read when the server is made (1).

    Events:
        start (): the server is listening, on the loop's first turn; once.
        exchange (HttpServerExchange): a request head arrived; many times.
        stop (): after ``shutdown()``, or when ``graceful_shutdown()`` has closed every
            connection; once.
    """

    tcp_server_class: ClassVar[type[TcpServer]] = TcpServer
    idle_timeout: float | None = 60
    request_timeout: float | None = 60
    request_head_timeout: float | None = 10
    body_read_timeout: float | None = None
    body_min_rate: float | None = 500
    body_rate_grace: float = 20
    response_timeout: float | None = None
    write_stall_timeout: float | None = 60
    sweep_interval: float = 1.0
    max_pipeline_depth: int = 100
    max_buffered_response: int = 1024 * 1024
    max_body_size: int | None = _limits.DEFAULT_MAX_BODY_SIZE
    max_request_line: int = _limits.DEFAULT_MAX_REQUEST_LINE
    max_field_section: int = _limits.DEFAULT_MAX_FIELD_SECTION
    max_fields: int = _limits.DEFAULT_MAX_FIELDS
    max_chunk_line: int = _limits.DEFAULT_MAX_CHUNK_LINE
    lenient_bare_lf: bool = False
    lenient_obs_fold: bool = False
    auto_continue: bool = True
    proxy_protocol: bool = False
    max_known_requests: int = 64
    max_known_request_size: int = 2048
    defer_accept: float | None = 1

    def __init__(
        self,
        host: bytes,
        port: int,
        loop: LoopBase | None = None,
        *,
        sock: socket.socket | None = None,
        backlog: int | None = None,
        reuse_port: bool = False,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        EventEmitter.__init__(self)
        defer_accept: object = self.defer_accept
        if defer_accept is not None and (  # checked before the server listens
            isinstance(defer_accept, bool)
            or not isinstance(defer_accept, (int, float))
            or not 0 <= defer_accept < math.inf
        ):
            raise ValueError(
                f"defer_accept needs a finite number of seconds >= 0 or None, not {defer_accept!r}"
            )
        self.loop: LoopBase = loop or get_default_loop()
        self.connections: set[HttpServerConnection] = set()
        self.shutting_down = False
        self._stopped = False
        self._now = self.loop.time()
        self._sweep_event: ScheduledEvent | None = None
        self._to_flush: list[HttpServerConnection] = []
        #: known requests (see max_known_requests): the head's bytes -> (method, target,
        #: header fields, version, keep-alive), as the parser gave them
        self._known_requests: dict[bytes, KnownRequest] = {}
        self._flush_pending = False  # _flush_connections is due after this pass's IO
        # settings read on every request: instance attributes (CPython specialises reads of
        # those; a class default read through the instance is a slow lookup every time)
        self.response_timeout = self.response_timeout
        self.max_pipeline_depth = self.max_pipeline_depth
        self.max_known_requests = self.max_known_requests
        self.max_known_request_size = self.max_known_request_size
        self._parser_class: type[HttpParser] = self._make_parser_class()
        self.tcp_server: TcpServer
        self.tls = tls_context is not None
        # the PROXY header comes before the TLS handshake: the TLS listener reads it
        self._header_before_tls = tls_context is not None and self.proxy_protocol
        if tls_context is not None:
            from thor.tls import TlsServer  # noqa: PLC0415 - ssl is imported only for HTTPS

            tls_class: type[TlsServer] = TlsServer
            extra: dict[str, Any] = {}
            if self._header_before_tls:
                from ._proxy_protocol_tls import ProxyTlsServer  # noqa: PLC0415

                tls_class = ProxyTlsServer
                extra["header_timeout"] = self._proxy_header_timeout
            self.tcp_server = tls_class(
                host,
                port,
                sock,
                self.loop,
                backlog,
                context=tls_context,
                reuse_port=reuse_port,
                **extra,
            )
        else:
            # only the options given: a tcp_server_class written for thor 0.17 takes
            # (host, port, sock=None, loop=None)
            options: dict[str, Any] = {"loop": self.loop}
            if sock is not None:
                options["sock"] = sock
            if backlog is not None:
                options["backlog"] = backlog
            if reuse_port:
                options["reuse_port"] = True
            self.tcp_server = self.tcp_server_class(host, port, **options)
        defer = getattr(self.tcp_server, "defer_accept", None)
        if defer_accept is not None and callable(defer):
            defer(defer_accept)
        self.tcp_server.on("start", self._on_start)
        self.tcp_server.on("connect", self.handle_conn)

    def _proxy_header_timeout(self) -> float | None:
        """Seconds a PROXY protocol header has to arrive: ``request_head_timeout``, else
        ``request_timeout``, as they are when the connection arrives."""
        timeout = self.request_head_timeout
        return self.request_timeout if timeout is None else timeout

    def _make_parser_class(self) -> type[HttpParser]:
        """A parser class with this server's parser limits and leniencies as its own."""
        settings = {name: getattr(self, name) for name in _PARSER_SETTINGS}
        return type("ServerHttpParser", (HttpParser,), settings)

    if not TYPE_CHECKING:  # (hidden from mypy, which would then allow any attribute name)

        def __setattr__(self, name: str, value: object) -> None:
            object.__setattr__(self, name, value)
            # (getattr, not self.__dict__: touching that slows every later attribute read)
            if name in _PARSER_SETTINGS and getattr(self, "_parser_class", None) is not None:
                # a parser setting set on the server: connections made from now on use it,
                # and no request learnt under the old ones skips the parser
                self._parser_class = self._make_parser_class()
                self._known_requests.clear()

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self.tcp_server.port

    def _on_start(self) -> None:
        self.emit("start")

    def handle_conn(self, tcp_conn: TcpConnection, after_header: bytes | None = None) -> None:
        """Serve an accepted connection (the TcpServer's ``'connect'`` listener).

        With ``proxy_protocol``, a ProxyHeaderReader reads the PROXY header first, sets the
        connection's address and calls this again with ``after_header``, the bytes that came
        after the header: they are served as if just read from the connection.
        """
        if after_header is None and self.proxy_protocol and not self._header_before_tls:
            if self.tls:  # (set after construction: the handshake is done, no header came)
                logger.error(
                    "%r: proxy_protocol set after an HTTPS server was made: connection refused "
                    "(set it before, or on the class, so that the header is read before TLS)",
                    self,
                )
                tcp_conn.abort()
                return
            # imported here: only servers behind a balancer need it
            from ._proxy_protocol import ProxyHeaderReader  # noqa: PLC0415

            ProxyHeaderReader(tcp_conn, self.loop, self._proxy_header_timeout(), self.handle_conn)
            return
        sweep = self._sweep_event
        if sweep is None or sweep.cancelled:  # idle until now: start the sweep
            self._now = self.loop.time()
            date_cache.refresh()
            self._sweep_event = self.loop.schedule(self.sweep_interval, self._sweep)
        conn = HttpServerConnection(self, tcp_conn)
        self.connections.add(conn)
        if self.shutting_down:
            conn._closing = True
        if after_header:
            # the connection's 'data' is what feeds the HttpServerConnection (its sink)
            tcp_conn.emit("data", after_header)
            if conn.tcp_conn is None:  # answered and closed, or handed over, already
                return
        conn._start()

    def _flush_soon(self, conn: HttpServerConnection) -> None:
        """Flush ``conn``'s output once this loop pass has dispatched its IO events, with the
        other connections queued meanwhile; at once when the loop is not running (there is
        no pass to flush in: an application feeding a connection by hand)."""
        if not self.loop.running:
            conn._flush_queued = False
            conn._flush()
            return
        self._to_flush.append(conn)
        if not self._flush_pending:
            self._flush_pending = True
            self.loop.after_io(self._flush_connections)

    def _flush_connections(self) -> None:
        """The flush pass: write what each queued connection gathered. An exception from one
        (a listener of its TcpConnection raising) aborts that connection, as it would have
        from its read, and is raised (reported by the loop) once the others are written."""
        self._flush_pending = False
        conns, self._to_flush = self._to_flush, []
        for conn in conns:
            conn._flush_queued = False
        failed: Exception | None = None
        for conn in conns:
            if conn._out:
                try:
                    conn._flush()
                except Exception as exc:
                    tcp = conn.tcp_conn
                    if tcp is not None:
                        tcp.abort()
                    if failed is None:
                        failed = exc
        if failed is not None:
            raise failed

    def _sweep(self) -> None:
        """Every ``sweep_interval`` while there are connections: the clock, the Date, the
        timeouts."""
        now = self._now = self.loop.time()
        date_cache.refresh()
        if not self.connections:
            self._sweep_event = None
            return
        self._sweep_event = self.loop.schedule(self.sweep_interval, self._sweep)
        for conn in list(self.connections):
            conn._check_timeouts(now)

    def _connection_gone(self, conn: HttpServerConnection) -> None:
        """A connection closed (or was handed to the application after an Upgrade)."""
        self.connections.discard(conn)
        if self.shutting_down and not self.connections:
            self._emit_stop()

    def shutdown(self) -> None:
        """Stop listening and emit ``'stop'``; open connections carry on. Idempotent."""
        self.tcp_server.shutdown()
        self._emit_stop()

    def graceful_shutdown(self) -> None:
        """Stop listening; close idle connections at once and the others after the responses
        to the requests already received; emit ``'stop'`` when every connection is closed.
        Idempotent."""
        if self.shutting_down:
            return
        self.shutting_down = True
        self.tcp_server.shutdown()
        for conn in list(self.connections):
            conn._closing = True
            if conn._reading is None:
                conn._hold_set(conn.HOLD_CLOSE)
                if not conn._queue:
                    conn.close()
        if not self.connections:
            self._emit_stop()

    def _emit_stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.emit("stop")

    def __repr__(self) -> str:
        return (
            f"<HttpServer {self.tcp_server.host!r}:{self.port} connections={len(self.connections)}>"
        )
