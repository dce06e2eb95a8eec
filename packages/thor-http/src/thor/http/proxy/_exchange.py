"""ProxyExchange: one proxied request, relaying between a server exchange and a client exchange.

Theory of operation
-------------------
A proxied request has two exchanges: the ``HttpServerExchange`` the client's request arrived on
(downstream) and the ``HttpClientExchange`` that forwards it (upstream). Listener closures per
request are what made proxies slow (closure cycles keep the garbage collector busy; every
registration copies a context), so the relay is two objects with ``__slots__``:

- the ``ProxyExchange`` is the **sink** of the server exchange (``request_body``,
  ``request_done``, ``pause``), of the CONNECT ``TcpClient`` (``connect``, ``connect_error``),
  and holds the state;
- an ``_UpstreamSink`` is the sink of the client exchange (``response_*``, ``pause``,
  ``error``): the event names of the two exchanges overlap, so each side needs its own.

Two events are listened to rather than sunk, because the server exchange only emits them to
listeners: ``'error'`` (the client went away, or its body was malformed: the upstream request is
abandoned, so a truncated body is never completed upstream) and ``'upgrade'`` (only for Upgrade
and CONNECT requests).

Flow control, end to end: the server exchange's ``'pause'`` (the client reads the response too
slowly) pauses reading the upstream response (``res_body_pause``); the client exchange's
``'pause'`` (the upstream reads the request body too slowly) pauses reading the request body
from the client (``http_conn.req_body_pause``). So at most a few socket buffers of a body are
in the proxy, whatever its size.

Endings: the exchange is *finished* (``_finish``) once the response to the client is complete
or failed: the upstream is released to its selector (``release(upstream, ok)``, once), the
``'access'`` record is emitted, and the references that would form cycles (sinks, the client
exchange) are dropped. A failure before the response started is answered with 502 (bad or
unreachable upstream; a response that cannot be parsed or relayed, such as a status 099, is
recorded as a "bad upstream response" and closes the client's connection, with ``Connection:
close``), 504 (upstream timeout) or 500 (a hook raised); after it started, the client's
connection is closed, so the client sees a truncated response rather than a complete
wrong one.
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol

from ..error import (
    AccessError,
    ConnectError,
    DnsError,
    HttpError,
    ReadTimeoutError,
    UrlError,
    WriteTimeoutError,
)
from ._access_log import begin_record
from ._intermediary import clean_trailers, strip_response
from ._routing import Router
from ._tunnel import Tunnel

if TYPE_CHECKING:
    from thor.tcp import TcpClient, TcpConnection

    from .._headers import RawHeaderListType
    from .._server_exchange import HttpServerExchange
    from ..client import HttpClientExchange
    from ._base import ProxyBase

__all__ = ["ProxyExchange", "UpstreamLike", "status_for_error"]

logger = logging.getLogger("thor.http.proxy")

_EMPTY: list[tuple[bytes, bytes]] = []
_new_sink = object.__new__
#: b"200" -> 200 for the usual statuses (int() of bytes costs ~100 ns per response)
_STATUS_CODES = {b"%d" % code: code for code in range(100, 600)}
_TEXT = (b"Content-Type", b"text/plain; charset=utf-8")
_CLOSE = (b"Connection", b"close")


class UpstreamLike(Protocol):
    """What the proxies need of an upstream: where it is, and a name for the logs."""

    @property
    def origin(self) -> tuple[str, str, int]: ...  # pragma: no cover - a protocol

    @property
    def url(self) -> str: ...  # pragma: no cover

    @property
    def name(self) -> str: ...  # pragma: no cover


def status_for_error(err: BaseException) -> tuple[bytes, bytes]:
    """The status a proxy answers when the upstream exchange failed with ``err``: 504 for a
    timeout, 400 for a target the client cannot fetch, 403 for a refused address, else 502."""
    if isinstance(err, (ReadTimeoutError, WriteTimeoutError)):
        return b"504", b"Gateway Timeout"
    if isinstance(err, UrlError):
        return b"400", b"Bad Request"
    if isinstance(err, AccessError):
        return b"403", b"Forbidden"
    return b"502", b"Bad Gateway"


def _is_anomaly(err: BaseException) -> bool:
    """A protocol error (as opposed to a network failure): the connection it came with, and
    the client's, should not be trusted with another message."""
    if isinstance(err, (ReadTimeoutError, WriteTimeoutError, DnsError, AccessError, UrlError)):
        return False
    return not isinstance(err, ConnectError)


class _UpstreamSink:
    """The client exchange's sink: relays the upstream response to the client."""

    __slots__ = ("px",)

    def __init__(self, px: ProxyExchange) -> None:
        self.px = px

    def response_nonfinal(self, status: bytes, phrase: bytes, headers: RawHeaderListType) -> None:
        px = self.px
        if px._done:
            return
        try:
            ex = px.server_exchange
            if status == b"101":
                px.record.status = 101
                ex.response_start(status, phrase, strip_response(headers) + _upgrade(headers))
                ex.response_done(_EMPTY)
            else:
                # (Content-Length or Transfer-Encoding in one: the server's interim head drops it)
                ex.response_nonfinal(status, phrase, strip_response(headers))
        except Exception as exc:
            px._internal_error(exc)

    def response_start(self, status: bytes, phrase: bytes, headers: RawHeaderListType) -> None:
        px = self.px
        if px._done:
            return
        proxy = px.proxy
        record = px.record
        t0 = px._t0
        record.first_byte_time = proxy.loop.time() - t0
        cx = px.upstream_exchange
        conn = cx.conn if cx is not None else None
        if conn is not None and cx is not None and cx.ready_at is not None:
            # as nginx's $upstream_connect_time: 0 on a connection made before the request
            connected = conn.connected_at
            fresh = connected is not None and connected >= t0
            waited = cx.ready_at - t0
            record.connect_time = waited if fresh and waited > 0.0 else 0.0
        try:
            record.status = _STATUS_CODES.get(status) or int(status)
            if proxy._via_response:
                version = cx.res_version if cx is not None else None
                via = proxy._via_11 if version != b"1.0" else proxy._via_10
                headers = [*headers, (b"Via", via)]
            if proxy._transform_response:
                headers = [field for field in headers if field[0].lower() != b"content-length"]
            if proxy._rewrite_response:
                headers = proxy.rewrite_response(px, status, phrase, strip_response(headers))
            elif conn is not None and not conn._keep_alive:
                # the upstream connection ends (its Connection: close): that is no reason to
                # close the client's, which the server would read the field as
                headers = strip_response(headers)
            px.server_exchange.response_start(status, phrase, headers)
            px._res_started = True
        except HttpError as exc:  # the response cannot be relayed (a status such as 099)
            if proxy._rewrite_response:  # (the hook's fields may be at fault: reported)
                px._internal_error(exc, upstream_fault=True)
            else:
                px._bad_response(exc)
        except Exception as exc:
            px._internal_error(exc)

    def response_body(self, chunk: bytes) -> None:
        px = self.px
        if px._done:
            return
        try:
            proxy = px.proxy
            if proxy._transform_response:
                chunk = proxy.transform_response_body(px, chunk)
                if not chunk:
                    return
            px.record.bytes_out += len(chunk)
            px.server_exchange.response_body(chunk)
        except Exception as exc:
            px._internal_error(exc)

    def response_done(self, trailers: RawHeaderListType) -> None:
        px = self.px
        if px._done:
            return
        try:
            proxy = px.proxy
            if proxy._transform_response:
                tail = proxy.transform_response_body(px, b"")
                if tail:
                    px.record.bytes_out += len(tail)
                    px.server_exchange.response_body(tail)
            px.server_exchange.response_done(clean_trailers(trailers) if trailers else _EMPTY)
        except Exception as exc:  # a hook raised, or a body shorter than its Content-Length
            px._internal_error(exc)
            return
        px._finish(True, None)

    def error(self, err: HttpError) -> None:
        self.px._upstream_failed(err)

    def pause(self, paused: bool) -> None:
        # the upstream reads the request body too slowly: stop reading it from the client
        self.px._hold_body(paused)

    def upgrade(self, tcp_conn: TcpConnection, rest: bytes) -> None:
        """(A listener: the client exchange emits ``'upgrade'`` only to listeners.)"""
        self.px._upstream_upgraded(tcp_conn, rest)


def _release(selector: Any, upstream: Any, ok: bool, px: ProxyExchange) -> None:
    """``selector.release(upstream, ok)``; a Router is told the request too, so an Upstream
    shared by two of its groups is given back to the group that lent it."""
    if isinstance(selector, Router):
        selector.release(upstream, ok, px)
    else:
        selector.release(upstream, ok)


def _upgrade(headers: RawHeaderListType) -> RawHeaderListType:
    return [field for field in headers if field[0].lower() == b"upgrade"]


class ProxyExchange:
    """One request through a proxy: what the hooks see and change, and the relay itself.

    Made by the proxy for every request; hooks get it as ``px``.

    Attributes:
        proxy: the ReverseProxy / ForwardProxy.
        server_exchange: the HttpServerExchange the request arrived on.
        method: the request method (bytes).
        target: the request target to send upstream (origin-form, ``b"/path?query"``);
            ``rewrite_request`` may change it.
        version: the request's HTTP version (b"1.1" or b"1.0").
        req_hdrs: the fields to send upstream (hop-by-hop fields removed, Via, Forwarded and
            X-Forwarded-For added); ``rewrite_request`` may change the list.
        host: the Host the client asked for (the authority of an absolute-form target wins
            over the Host field), or None.
        client_address: the client's address ``(host, port)`` (the PROXY protocol's source when
            that is enabled on the server).
        upstream: the chosen upstream (None until chosen, and for local answers).
        upstream_exchange: the HttpClientExchange forwarding the request (None before and
            after).
        record: the AccessRecord being filled in (emitted as the proxy's ``'access'``).
        data: a dict for the application's own per-request state (made on first use).
    """

    __slots__ = (
        "_body_done",
        "_connecting",
        "_counted",
        "_data",
        "_done",
        "_down_tunnel",
        "_held",
        "_local",
        "_pending",
        "_pending_trailers",
        "_req_done",
        "_res_started",
        "_selector",
        "_t0",
        "_up_tunnel",
        "_upgrade",
        "_waiting",
        "client_address",
        "host",
        "method",
        "proxy",
        "record",
        "req_hdrs",
        "server_exchange",
        "target",
        "upstream",
        "upstream_exchange",
        "version",
    )

    def __init__(self, proxy: ProxyBase, server_exchange: HttpServerExchange) -> None:
        self.proxy = proxy
        self.server_exchange = server_exchange
        self.method = server_exchange.method
        self.target = server_exchange.uri
        self.version = server_exchange.req_version
        self.req_hdrs: RawHeaderListType = server_exchange.req_hdrs
        self.host: bytes | None = None
        tcp = server_exchange.http_conn.tcp_conn
        address: Any = tcp.address if tcp is not None else ("", 0)
        self.client_address: tuple[str, int] = (
            address if len(address) == 2 else (address[0], address[1])
        )
        self.upstream: UpstreamLike | None = None
        self.upstream_exchange: HttpClientExchange | None = None
        self._t0 = proxy.loop.time()
        self.record = begin_record(
            self.client_address, self.method, self.target, self.version, time.time()
        )
        self._selector: Any = None
        self._upgrade: bytes | None = None
        self._pending: list[bytes] | None = None
        self._pending_trailers: RawHeaderListType | None = None
        self._waiting = False
        self._counted = False  # forwarded, in its connection's _proxy_active
        self._held = False
        self._done = False
        self._local = False
        self._req_done = False
        self._body_done = False
        self._res_started = False
        self._connecting: TcpClient | None = None
        self._down_tunnel: tuple[TcpConnection, bytes] | None = None
        self._up_tunnel: tuple[TcpConnection, bytes] | None = None
        self._data: dict[str, Any] | None = None

    @property
    def data(self) -> dict[str, Any]:
        """Per-request state of the application (hooks share it)."""
        if self._data is None:
            self._data = {}
        return self._data

    def __repr__(self) -> str:
        target = (self.method + b" " + self.target).decode("latin-1")
        return f"<ProxyExchange {target!r}{' done' if self._done else ''}>"

    # -- the application's calls ----------------------------------------------------------------

    def respond(
        self,
        status: bytes | int,
        phrase: bytes | None = None,
        headers: RawHeaderListType | None = None,
        body: bytes = b"",
        *,
        close: bool = False,
    ) -> None:
        """Answer the client from the proxy itself (a hook's local answer: a denial, a cache
        hit); nothing is sent upstream. A Content-Length is added when ``headers`` has none.

        Args:
            status: the status code (``b"403"`` or ``403``).
            phrase: the reason phrase; the standard one when None.
            headers: the response fields.
            body: the whole body.
            close: close the client's connection after this response.
        """
        if self._done or self._res_started:
            return
        self._local = True
        code = status if isinstance(status, int) else int(status)
        status_b = b"%d" % code
        if phrase is None:
            try:
                phrase = HTTPStatus(code).phrase.encode("latin-1")
            except ValueError:
                phrase = b"Unknown"
        fields = list(headers) if headers else []
        if not any(name.lower() == b"content-length" for name, _ in fields):
            fields.append((b"Content-Length", b"%d" % len(body)))
        if close:  # announced (RFC 9112 §9.6), not just done
            fields.append(_CLOSE)
        ex = self.server_exchange
        self.record.status = code
        self._res_started = True
        ex.response_start(status_b, phrase, fields)
        if body and self.method != b"HEAD":
            ex.response_body(body)
            self.record.bytes_out += len(body)
        ex.response_done(_EMPTY, close)
        self._finish(True, None)

    # -- called by the proxy --------------------------------------------------------------------

    def _ready(self, upstream: UpstreamLike | None, reason: str | None) -> None:
        """The selector's answer: forward to ``upstream``, or answer 502/503."""
        self._waiting = False
        if self._done:  # the client went away while the request waited for an upstream
            if upstream is not None and self._selector is not None:
                _release(self._selector, upstream, True, self)
            return
        if upstream is None:
            self._selector = None
            text = reason or "no upstream"
            status = b"503" if "queue" in text else b"502"
            self.record.error = text
            self._answer_error(status, None, text)
            return
        self.upstream = upstream
        self.record.upstream = upstream.name
        try:
            self.proxy._send_upstream(self, upstream)
        except Exception as exc:
            self._internal_error(exc)
            return
        if self._held and not self._waiting:
            self._hold_body(False)

    def _start_request(self, cx: HttpClientExchange, url: bytes, host: bytes | None = None) -> None:
        """Start the upstream request on ``cx`` (its sink set) and send what is pending;
        ``host``: the Host to send instead of the URL's authority."""
        self.upstream_exchange = cx
        sink = _new_sink(_UpstreamSink)  # (_UpstreamSink(self) without an __init__ call)
        sink.px = self
        cx.sink(sink)
        fields = self.req_hdrs
        if self._upgrade is not None:
            cx.on("upgrade", sink.upgrade)
            self.server_exchange.on("upgrade", self._downstream_upgraded)
            fields = [*fields, (b"Upgrade", self._upgrade)]
        cx.request_start(self.method, url, fields, host=host)
        if self._done or self.upstream_exchange is None:  # failed at once (a bad URL...)
            return
        pending = self._pending
        if pending is not None:
            self._pending = None
            for chunk in pending:
                cx.request_body(chunk)
        if self._body_done:
            trailers = self._pending_trailers
            self._pending_trailers = None
            cx.request_done(trailers or _EMPTY)

    # -- the server exchange's sink -------------------------------------------------------------

    def request_body(self, chunk: bytes) -> None:
        """Sink of the server exchange: part of the request body."""
        if self._done or self._local:
            return
        self.record.bytes_in += len(chunk)
        try:
            proxy = self.proxy
            if proxy._transform_request:
                chunk = proxy.transform_request_body(self, chunk)
                if not chunk:
                    return
            cx = self.upstream_exchange
            if cx is not None:
                cx.request_body(chunk)
                return
        except Exception as exc:
            self._internal_error(exc)
            return
        # no upstream yet: keep it, and stop reading more until there is one
        if self._pending is None:
            self._pending = [chunk]
        else:
            self._pending.append(chunk)
        if not self._held:
            self._hold_body(True)

    def request_done(self, trailers: RawHeaderListType) -> None:
        """Sink of the server exchange: the request is complete."""
        self._req_done = True
        if self._done:
            self.server_exchange.sink(None)
            return
        if self._local:
            return
        try:
            proxy = self.proxy
            if proxy._transform_request:
                tail = proxy.transform_request_body(self, b"")
                if tail:
                    self._body_tail(tail)
            cx = self.upstream_exchange
            self._body_done = True
            if cx is not None:
                cx.request_done(clean_trailers(trailers) if trailers else _EMPTY)
            elif trailers:
                self._pending_trailers = clean_trailers(trailers)
        except Exception as exc:
            self._internal_error(exc)

    def _body_tail(self, chunk: bytes) -> None:
        """The transform's last bytes, sent or kept like a body chunk."""
        cx = self.upstream_exchange
        if cx is not None:
            cx.request_body(chunk)
        elif self._pending is None:
            self._pending = [chunk]
        else:
            self._pending.append(chunk)

    def pause(self, paused: bool) -> None:
        """Sink of the server exchange: the client reads the response too slowly (True), or
        caught up (False): the upstream response is read accordingly."""
        cx = self.upstream_exchange
        if cx is not None:
            cx.res_body_pause(paused)

    def _downstream_error(self, err: HttpError) -> None:
        """Listener of the server exchange's ``'error'``: the client went away, timed out, or
        sent a malformed body; abandon the upstream request (never complete it)."""
        if self._done:
            return
        self.record.error = f"client: {err.desc}"
        self._abandon_upstream()
        self._finish(True, self.record.error)

    error = _downstream_error  # (as the server exchange's sink)

    # -- the CONNECT TcpClient's sink -----------------------------------------------------------

    def connect(self, tcp_conn: TcpConnection) -> None:
        """Sink of the CONNECT TcpClient: the tunnel's upstream side is connected."""
        self._connecting = None
        if self._done:
            tcp_conn.abort()
            return
        self.record.connect_time = self.proxy.loop.time() - self._t0
        self._up_tunnel = (tcp_conn, b"")
        ex = self.server_exchange
        ex.on("upgrade", self._downstream_upgraded)
        self.record.status = 200
        self._res_started = True
        ex.response_start(b"200", b"Connection Established", _EMPTY)
        ex.response_done(_EMPTY)

    def connect_error(self, err_type: str, err_id: int, err_str: str) -> None:
        """Sink of the CONNECT TcpClient: the next hop cannot be reached."""
        self._connecting = None
        if self._done:
            return
        if err_type == "access":
            status = b"403"
        elif err_type == "socket" and err_id == 110:  # ETIMEDOUT
            status = b"504"
        else:
            status = b"502"
        self.record.error = f"connect: {err_str}"
        self._answer_error(status, None, f"cannot connect: {err_str}")

    # -- upgrades and tunnels -------------------------------------------------------------------

    def _downstream_upgraded(self, tcp_conn: TcpConnection, rest: bytes) -> None:
        self._down_tunnel = (tcp_conn, rest)
        self._splice()

    def _upstream_upgraded(self, tcp_conn: TcpConnection, rest: bytes) -> None:
        self._up_tunnel = (tcp_conn, rest)
        self.upstream_exchange = None
        self._splice()

    def _splice(self) -> None:
        down, up = self._down_tunnel, self._up_tunnel
        if down is None or up is None:
            return
        self._down_tunnel = self._up_tunnel = None
        proxy = self.proxy
        tunnel = Tunnel(
            down[0], up[0], down[1], up[1], idle_timeout=proxy.tunnel_idle_timeout, loop=proxy.loop
        )
        self._finish(True, None)
        if proxy.listener_count("tunnel"):
            proxy.emit("tunnel", self, tunnel)

    # -- failures -------------------------------------------------------------------------------

    def _upstream_failed(self, err: HttpError) -> None:
        """The client exchange failed: answer the client, or cut its response short."""
        self.upstream_exchange = None
        if self._done:
            return
        anomaly = _is_anomaly(err)
        # (a parse error of the response: its class's desc may speak of a request, as the
        # parser's error classes serve both)
        what = "bad upstream response" if anomaly else "upstream"
        self.record.error = f"{what}: {err.desc}" + (f" ({err.detail})" if err.detail else "")
        if self._res_started:
            self._cut_short(False)
            return
        status, phrase = status_for_error(err)
        text = "Bad upstream response" if anomaly else err.desc
        self._answer_error(status, phrase, text, close=anomaly, ok=False)

    def _bad_response(self, err: HttpError) -> None:
        """The upstream's response head cannot be sent to the client (the server's serialiser
        refused it): 502, the upstream's fault; not an internal error."""
        if self._done:
            return
        detail = err.detail or err.desc
        self.record.error = f"bad upstream response: {detail}"
        self._abandon_upstream()
        self._answer_error(b"502", b"Bad Gateway", "Bad upstream response", close=True, ok=False)

    def _internal_error(self, exc: BaseException, upstream_fault: bool = False) -> None:
        """A hook raised, or the upstream's message could not be relayed: contain it."""
        if self._done:
            return
        if not upstream_fault:
            logger.error("error while proxying %r", self, exc_info=exc)
        proxy = self.proxy
        if proxy.listener_count("error"):
            try:
                proxy.emit("error", exc)
            except Exception as inner:
                logger.error("exception in an 'error' listener of %r", proxy, exc_info=inner)
        self.record.error = f"{type(exc).__name__}: {exc}"
        self._abandon_upstream()
        if self._res_started:
            self._cut_short(not upstream_fault)
            return
        if upstream_fault:
            self._answer_error(b"502", b"Bad Gateway", "Bad Gateway", close=True, ok=False)
        else:
            self._answer_error(b"500", b"Internal Server Error", "Internal Server Error", True)

    def _answer_error(
        self,
        status: bytes,
        phrase: bytes | None,
        text: str,
        close: bool = False,
        ok: bool = True,
    ) -> None:
        if self._done:
            return
        if self._res_started:
            self._cut_short(ok)
            return
        ex = self.server_exchange
        body = text.encode("utf-8", "replace") + b"\n"
        code = int(status)
        self._local = True
        self._res_started = True
        self.record.status = code
        if phrase is None:
            phrase = HTTPStatus(code).phrase.encode("latin-1")
        close = close or not self._req_done
        fields = [_TEXT, (b"Content-Length", b"%d" % len(body))]
        if close:  # announced (RFC 9112 §9.6), not just done
            fields.append(_CLOSE)
        try:
            ex.response_start(status, phrase, fields)
            if self.method != b"HEAD":
                ex.response_body(body)
                self.record.bytes_out += len(body)
            ex.response_done(_EMPTY, close)
        except HttpError:  # the exchange is in a state that cannot take it: just close
            self._cut_short(ok)
            return
        self._finish(ok, self.record.error)

    def _cut_short(self, ok: bool) -> None:
        """Finish with the error recorded, then close the client's connection (its response
        cannot be completed). Finished first: the close emits the server exchange's
        ``'error'``, which must not be taken for a failure of the client."""
        self._finish(ok, self.record.error)
        conn = self.server_exchange.http_conn
        if conn.tcp_conn is not None:
            conn.close()

    def _abandon_upstream(self) -> None:
        cx = self.upstream_exchange
        self.upstream_exchange = None
        if cx is not None:
            cx.remove_listeners()
            cx.sink(None)
            cx.cancel()  # (emits nothing)
        connecting = self._connecting
        if connecting is not None:  # a CONNECT still connecting: give up the attempt
            self._connecting = None
            connecting.cancel()
            connecting.sink(None)
        tunnel = self._up_tunnel
        if tunnel is not None:
            self._up_tunnel = None
            tunnel[0].abort()

    # -- flow control ---------------------------------------------------------------------------

    def _hold_body(self, paused: bool) -> None:
        """Stop or resume reading the request body from the client (upstream back-pressure,
        or no upstream yet)."""
        if paused == self._held:
            return
        if not paused and (self._waiting or self._pending):
            return
        self._held = paused
        self.server_exchange.http_conn.req_body_pause(paused)

    # -- the end --------------------------------------------------------------------------------

    def _finish(self, ok: bool, error: str | None) -> None:
        """Once: release the upstream, emit the access record, drop the references."""
        if self._done:
            return
        self._done = True
        if self._held:
            self._held = False
            self.server_exchange.http_conn.req_body_pause(False)
        proxy = self.proxy
        record = self.record
        record.total_time = proxy.loop.time() - self._t0
        if error is not None:
            record.error = error
        cx = self.upstream_exchange
        if cx is not None:
            self.upstream_exchange = None
            cx.sink(None)
        self._pending = None
        selector = self._selector
        if selector is not None:
            if self._waiting:
                # still queued for an upstream: withdrawn from the queue; a selector that
                # cannot withdraw it hands it a slot later, which _ready then gives back
                cancel = getattr(selector, "cancel", None)
                try:
                    withdrawn = cancel is not None and cancel(self)
                except Exception as exc:
                    withdrawn = False
                    logger.error("cancel() of %r failed", selector, exc_info=exc)
                if withdrawn:
                    self._waiting = False
                    self._selector = None
            else:
                self._selector = None
                upstream = self.upstream
                if upstream is not None:
                    try:
                        _release(selector, upstream, ok, self)
                    except Exception as exc:
                        logger.error("release() of %r failed", selector, exc_info=exc)
        if self._req_done:
            self.server_exchange.sink(None)
        if proxy.listener_count("access"):
            try:
                proxy.emit("access", record)
            except Exception as exc:
                logger.error("exception in an 'access' listener of %r", proxy, exc_info=exc)
        if self._counted:  # the next pipelined request of the client connection may go
            self._counted = False
            conn = self.server_exchange.http_conn
            conn._proxy_active -= 1
            if conn._proxy_waiting:
                proxy._forward_waiting(conn)
