"""HttpClient: the settings, and the pool of connections per origin.

Theory of operation
-------------------
Per origin (scheme, lower-cased host, port) the pool keeps every live connection (``conns``:
connecting, in use or idle; at most ``max_server_conn``), the idle ones (``idle``, reused last
in first out: the most recently used is the most likely to be alive) and the exchanges waiting
for one (``waiting``, first in first out).

Connects are not tied to an exchange. An exchange that finds no idle connection joins the queue,
and a connect is started if the origin has room and fewer connects are running than exchanges
waiting. A new connection serves the first exchange waiting (or goes idle if none is left: it
timed out meanwhile); a failed connect reports its error to the first exchange waiting; a
released connection goes to the first exchange waiting, else idle. So a request is never stuck
behind a slow connect while another connection becomes free.

A retry (the exchange decides; see ``_exchange``) asks for a *fresh* connection: it goes to the
head of the queue and never takes an idle one (after a server restart every idle connection is
dead); when the origin is full of idle connections, the oldest is closed to make room.
"""

from __future__ import annotations

import os
import ssl
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from thor.loop import get_default_loop

from ._connection import CONNECTING, HttpClientConnection
from ._exchange import HttpClientExchange

if TYPE_CHECKING:
    from thor.loop import LoopBase

    from .._headers import RawHeaderListType
    from ..error import HttpError

__all__ = ["HttpClient", "OriginType"]

OriginType = tuple[str, str, int]


class _Origin:
    """The pool's state for one origin."""

    __slots__ = ("connecting", "conns", "idle", "waiting")

    def __init__(self) -> None:
        self.conns: set[HttpClientConnection] = set()
        self.idle: list[HttpClientConnection] = []
        self.waiting: deque[HttpClientExchange] = deque()
        self.connecting = 0


class _StopRelay:
    """The loop's 'stop' listener for one client, holding it weakly (a loop outlives many
    clients; each would otherwise be kept alive by its listener)."""

    __slots__ = ("client",)

    def __init__(self, client: HttpClient) -> None:
        self.client = weakref.ref(client)

    def __call__(self) -> None:
        client = self.client()
        if client is not None:
            client.close()


class HttpClient:
    """An HTTP/1.1 client: makes exchanges and keeps their connections pooled per origin.

    Args:
        loop: the loop to run on; the default loop when None.

    Settings (instance attributes, changeable at any time; read when used):
        connect_timeout: seconds for one connection attempt, TLS handshake included (3); also
            the read timeout when ``read_timeout`` is None. None: no limit.
        connect_attempts: attempts at connecting before giving up (3); each races the
            server's addresses (happy eyeballs). Name, access and TLS failures are not retried.
        read_timeout: seconds without any byte received or sent while an exchange uses a
            connection, ``ReadTimeoutError("read")`` (None: ``connect_timeout``). Not counted
            while the application pauses the response. A request body that the server takes
            slowly counts as sent as long as the write queue moves (looked at when the limit
            comes: a stalled upload fails after one to two periods).
        total_timeout: seconds from ``request_start`` to ``'response_done'``, waiting, connecting
            and retrying included: ``ReadTimeoutError("total")`` (None, the default: no limit).
        idle_timeout: seconds an idle connection is kept in the pool (60); 0 or None: no
            pooling (requests carry ``Connection: close``).
        retry_limit: retries of a request whose connection was lost before any response byte
            (2); see ``thor.http.client._exchange`` for which requests qualify.
        retry_delay: seconds before each retry (0.5).
        retry_body_limit: bytes of request body kept so that the request can be retried
            (1 MiB); a request with a longer body is not retried.
        max_server_conn: connections per origin (6); more requests wait their turn (FIFO).
        max_idle_conns: idle pooled connections over every origin (256; None: no limit); one
            more closes the one idle longest (a client, or a forward proxy, that talks to
            many origins would otherwise keep a socket per origin for ``idle_timeout``).
        check_ip: None, or a callable taking an IP address (str) and returning whether the
            client may connect there (``AccessError`` when every address is refused).
        careful: True (default) refuses sloppy responses; False accepts LF-only line endings and
            obs-fold (other errors stay fatal).
        max_nonfinal_responses: interim (1xx) responses an exchange may receive before its
            final one (20; None: no limit); one more ends it with ``TooManyMsgsError``. A
            server that sends them without end would otherwise hold the exchange (and, in a
            proxy, the memory of the relayed heads) as long as it likes.
        tls_verify: verify HTTPS certificates and host names (True). False accepts any
            certificate, as thor 0.17 did (logged once per process as a warning); for tools
            that probe misconfigured sites, never for fetching data you rely on.
        tls_ca_file: PEM file of CAs to trust instead of the system store (None).
        tls_context: an ``ssl.SSLContext`` to use as it is (then ``tls_verify`` and
            ``tls_ca_file`` are not used); None. The three TLS settings apply to the
            connections made after they are set: setting one closes the idle HTTPS
            connections, and those in use or connecting are closed instead of being reused,
            so no request made after the change goes over a connection verified the old way.
        defer_writes: True (default): a request written from inside a loop pass is sent
            right after that pass's IO events are dispatched, with the other requests of the
            pass (thor-net's ``TcpConnection.defer_writes``, read when a connection is made);
            several writes of one request go out in one send, and a proxy's upstream
            requests go out together. Outside a running loop, writes go at once either way.
            False: every write is sent as it is made.
        max_known_responses: how many known responses the client remembers (class attribute,
            read when the client is made, or set on the client; 64; 0 turns it off, lookups
            too, at once): response heads with a Content-Length body that the parser had seen
            before, then arriving first in a read that began with them and held exactly them
            and their whole body; the same head bytes arriving again that way skip the head's
            parse (see ``thor.http.client._connection``). When full, it is emptied and learnt
            again.
        max_known_response_size: bytes of a read (head and body) that may be looked up or
            learnt (class attribute, read when the client is made, or set on the client;
            4096).

    Attributes:
        loop: the loop.
    """

    max_known_responses: int = 64
    max_known_response_size: int = 4096

    def __init__(self, loop: LoopBase | None = None) -> None:
        self.loop: LoopBase = loop if loop is not None else get_default_loop()
        self.connect_timeout: float | None = 3
        self.connect_attempts: int = 3
        self.read_timeout: float | None = None
        self.total_timeout: float | None = None
        self.idle_timeout: float | None = 60
        self.retry_limit: int = 2
        self.retry_delay: float = 0.5
        self.retry_body_limit: int = 1024 * 1024
        self.max_server_conn: int = 6
        self.check_ip: Callable[[str], bool] | None = None
        self.careful: bool = True
        self.max_nonfinal_responses: int | None = 20
        self.max_idle_conns: int | None = 256
        self._origins: dict[OriginType, _Origin] = {}
        self._idle_total = 0  # idle connections over every origin (see max_idle_conns)
        self._tls_verify = True
        self._tls_ca_file: str | os.PathLike[str] | None = None
        self._tls_context: ssl.SSLContext | None = None
        self.defer_writes: bool = True
        # read on every response: instance attributes (a class default read through the
        # instance is a slow lookup on CPython 3.11)
        self.max_known_responses = self.max_known_responses
        self.max_known_response_size = self.max_known_response_size
        #: known responses: head bytes -> (status, phrase, fields, version, keep_alive,
        #: Content-Length), as the parser gave them
        self._known_responses: dict[
            bytes, tuple[bytes, bytes, RawHeaderListType, bytes, bool, int]
        ] = {}
        self.loop.on("stop", _StopRelay(self))

    @property
    def tls_verify(self) -> bool:
        """Verify HTTPS certificates and host names (see the class docstring)."""
        return self._tls_verify

    @tls_verify.setter
    def tls_verify(self, value: bool) -> None:
        self._tls_verify = value
        self._tls_changed()

    @property
    def tls_ca_file(self) -> str | os.PathLike[str] | None:
        """PEM file of CAs to trust instead of the system store (see the class docstring)."""
        return self._tls_ca_file

    @tls_ca_file.setter
    def tls_ca_file(self, value: str | os.PathLike[str] | None) -> None:
        self._tls_ca_file = value
        self._tls_changed()

    @property
    def tls_context(self) -> ssl.SSLContext | None:
        """An ``ssl.SSLContext`` used as it is (see the class docstring)."""
        return self._tls_context

    @tls_context.setter
    def tls_context(self, value: ssl.SSLContext | None) -> None:
        self._tls_context = value
        self._tls_changed()

    def _tls_changed(self) -> None:
        """A TLS setting was set: HTTPS connections made before are not used again."""
        # (getattr, not self.__dict__: touching that slows every later attribute read of the
        # client on CPython 3.11; the pool is missing when a subclass sets one before init)
        origins: dict[OriginType, _Origin] = getattr(self, "_origins", {})
        for origin, pool in list(origins.items()):
            if origin[0] != "https":
                continue
            for conn in list(pool.conns):
                if conn in pool.idle:
                    conn._close(None)
                else:
                    conn._tls_stale = True  # closed by _release instead of being reused

    def exchange(self) -> HttpClientExchange:
        """A new exchange (one request and its response) on this client."""
        return HttpClientExchange(self)

    @property
    def conn_counts(self) -> dict[OriginType, int]:
        """Live connections (connecting, in use or idle) per origin."""
        return {origin: len(pool.conns) for origin, pool in self._origins.items() if pool.conns}

    def close(self) -> None:
        """Close every connection and forget every waiting request, without events (as when
        the loop stops). The client stays usable."""
        origins, self._origins = self._origins, {}
        self._idle_total = 0
        for pool in origins.values():
            for waiting in pool.waiting:
                waiting._abandon()
            pool.waiting.clear()
            for conn in list(pool.conns):
                active = conn.exchange
                if active is not None:
                    conn.exchange = None
                    active._abandon()
                conn._close(None)

    def __repr__(self) -> str:
        return f"<HttpClient {sum(len(p.conns) for p in self._origins.values())} connections>"

    # -- the pool -------------------------------------------------------------------------------

    def _pool(self, origin: OriginType) -> _Origin:
        pool = self._origins.get(origin)
        if pool is None:
            pool = self._origins[origin] = _Origin()
        return pool

    def _acquire(self, exchange: HttpClientExchange, fresh: bool = False) -> None:
        """Give ``exchange`` a connection now, or queue it (first, for a retry)."""
        origin = exchange.origin
        assert origin is not None
        pool = self._origins.get(origin)
        if pool is None:
            pool = self._origins[origin] = _Origin()
        if fresh:
            if pool.idle and len(pool.conns) >= max(1, self.max_server_conn):
                self._idle_total -= 1
                pool.idle.pop(0)._close(None)  # the oldest idle one makes room
                pool = self._pool(origin)
            exchange._waiting = True
            pool.waiting.appendleft(exchange)
        else:
            while pool.idle:
                conn = pool.idle.pop()
                self._idle_total -= 1
                if exchange._idempotent or conn._probe():
                    conn._activate(exchange)
                    return
                conn._close(None)  # dead, or bytes are waiting on it: not for a POST
                pool = self._pool(origin)
            exchange._waiting = True
            pool.waiting.append(exchange)
        self._service(origin)

    def _service(self, origin: OriginType) -> None:
        """Start connects for the exchanges waiting, as far as the origin has room; forget an
        origin with nothing left."""
        limit = max(1, self.max_server_conn)
        while True:
            pool = self._origins.get(origin)
            if pool is None:
                return
            if len(pool.waiting) <= pool.connecting or len(pool.conns) >= limit:
                break
            conn = HttpClientConnection(self, origin)
            pool.conns.add(conn)
            pool.connecting += 1
            conn._connect()  # may fail at once (check_ip on an address), calling us again
        if not pool.conns and not pool.waiting:
            del self._origins[origin]

    def _conn_ready(self, conn: HttpClientConnection) -> None:
        """A new connection is up: serve the first exchange waiting, or pool it."""
        pool = self._origins.get(conn.origin)
        if pool is not None and conn.state == CONNECTING:
            pool.connecting -= 1
        self._release(conn)

    def _connect_failed(self, conn: HttpClientConnection, err: HttpError) -> None:
        """A connect failed for good: the first exchange waiting gets the error."""
        pool = self._origins.get(conn.origin)
        exchange = None
        if pool is not None and pool.waiting:
            exchange = pool.waiting.popleft()
            exchange._waiting = False
        conn._close(None)
        if exchange is not None:
            exchange._fail(err)
        self._service(conn.origin)

    def _release(self, conn: HttpClientConnection) -> None:
        """``conn`` is free: the first exchange waiting gets it, else it idles in the pool."""
        pool = self._origins.get(conn.origin)
        if pool is None:  # pragma: no cover - forgotten by close()
            conn._close(None)
            return
        if conn._tls_stale:  # made before a TLS setting changed
            conn._close(None)
            return
        if pool.waiting:
            exchange = pool.waiting[0]
            if not exchange._idempotent and conn.state != CONNECTING and not conn._probe():
                # a used connection, and the server closed it (or sent more) meanwhile: not
                # for a request that could not be retried (as in _acquire); the exchange
                # waits for a new connection
                conn._close(None)
                return
            pool.waiting.popleft()
            exchange._waiting = False
            conn._activate(exchange)
            return
        if not self.idle_timeout:
            conn._close(None)
            return
        conn._idle()
        pool.idle.append(conn)
        self._idle_total += 1
        limit = self.max_idle_conns
        if limit is not None and self._idle_total > limit:
            self._close_oldest_idle()

    def _close_oldest_idle(self) -> None:
        """Over ``max_idle_conns``: close the connection that has been idle longest (the
        first of its origin's idle list; compared across origins)."""
        oldest: _Origin | None = None
        for pool in self._origins.values():
            if pool.idle and (oldest is None or pool.idle[0]._last_io < oldest.idle[0]._last_io):
                oldest = pool
        if oldest is not None:
            conn = oldest.idle.pop(0)
            self._idle_total -= 1
            conn._close(None)

    def _forget(self, conn: HttpClientConnection) -> None:
        """Stop counting a closed connection (the caller then runs ``_service``)."""
        pool = self._origins.get(conn.origin)
        if pool is None:
            return
        if conn in pool.conns:
            pool.conns.discard(conn)
            if conn.tcp_conn is None:  # it was still connecting
                pool.connecting -= 1
            if conn in pool.idle:
                pool.idle.remove(conn)
                self._idle_total -= 1

    def _unwait(self, exchange: HttpClientExchange) -> None:
        """An exchange left the queue (it failed while waiting)."""
        origin = exchange.origin
        pool = self._origins.get(origin) if origin is not None else None
        if pool is not None:
            try:
                pool.waiting.remove(exchange)
            except ValueError:
                pass
