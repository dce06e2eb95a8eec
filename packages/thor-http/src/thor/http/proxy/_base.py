"""ProxyBase: what the reverse and forward proxies share (settings, hooks, the request flow).

Theory of operation
-------------------
The proxy listens to its server's ``'exchange'``; for each request it makes a ``ProxyExchange``
(the relay, see ``_exchange``), which becomes the server exchange's sink. Then, in order:

1. the request target is resolved (``_resolve``: the reverse proxy takes origin-form and
   absolute-form targets, the forward proxy absolute-form and CONNECT);
2. the fields to forward are computed (``_intermediary.upstream_fields``); TRACE and OPTIONS
   with ``Max-Forwards: 0`` are answered here;
3. hooks: ``answer_locally`` (may answer with ``px.respond``), ``rewrite_request``;
4. an upstream is chosen: the ``choose_upstream`` hook when a subclass overrides it, else the
   selector's ``acquire(px, ready)`` (which may answer later: the request body is held until
   then), and the selector's ``release(upstream, ok)`` is called once when the request is over;
5. the request is forwarded with an ``HttpClientExchange`` of the proxy's ``HttpClient``, whose
   pooled connections are reused from one request to the next.

Hooks that a subclass does not override cost nothing: the proxy notes at construction which
ones are overridden and calls only those.

Upstream selectors: anything with ``acquire(px, ready)`` and ``release(upstream, ok)`` (an
``UpstreamGroup`` or a ``Router``), or, through small adapters here, a URL (``str`` or
``bytes``), an object with ``origin``/``url``/``name`` (one upstream), or a callable
``(px) -> upstream | URL | None``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from thor.events import EventEmitter

from ..client import HttpClient
from ..error import UrlError
from ..uri import parse_uri
from ._exchange import ProxyExchange, UpstreamLike
from ._intermediary import (
    TrustedHops,
    has_content,
    options_response,
    trace_body,
    upstream_fields,
)

if TYPE_CHECKING:
    from thor.loop import LoopBase

    from .._headers import RawHeaderListType
    from .._server import HttpServer
    from .._server_connection import HttpServerConnection
    from .._server_exchange import HttpServerExchange
    from ..client import HttpClientExchange

__all__ = ["ProxyBase", "StaticUpstream", "as_selector"]

logger = logging.getLogger("thor.http.proxy")

_TRACE_OPTIONS = (b"TRACE", b"OPTIONS")
#: entries of a proxy's cache of upstream_fields results (cleared when full)
_FIELDS_MAX = 512
#: requests that skip that cache after it filled up with fewer hits than entries
_FIELDS_PAUSE = 8192
#: the most bytes of field names and values a head may have to be kept in that cache (512
#: heads of up to 64 KiB each would be 32 MiB; most heads are well under 1 KiB)
_FIELDS_ENTRY_MAX = 4096


def _small(fields: RawHeaderListType) -> bool:
    """Whether a head's fields are small enough to be kept in a proxy's upstream_fields cache
    (counted on a miss only: a hit was small when it was stored)."""
    size = 0
    for name, value in fields:
        size += len(name) + len(value)
        if size > _FIELDS_ENTRY_MAX:
            return False
    return True


#: ProxyBase's settings -> the HttpClient attributes they set (on a client the proxy made)
_CLIENT_SETTINGS = {
    "upstream_connect_timeout": "connect_timeout",
    "upstream_read_timeout": "read_timeout",
    "upstream_total_timeout": "total_timeout",
    "upstream_max_conns": "max_server_conn",
    "upstream_idle_timeout": "idle_timeout",
    "upstream_max_idle_conns": "max_idle_conns",
}
#: the settings a proxy derives things from when it is made and when one is set on it
_DERIVED = frozenset(("trusted_hops", "via_name", *_CLIENT_SETTINGS))


class StaticUpstream:
    """One upstream given by its URL (``http://host:port`` with an optional path prefix).

    Attributes:
        url: the URL as given (str).
        origin: ``(scheme, host, port)``.
        name: ``"host:port"``.
        prefix: the URL as bytes, without a trailing slash: the target is appended to it.
    """

    __slots__ = ("name", "origin", "prefix", "url")

    def __init__(self, url: str | bytes) -> None:
        raw = url if isinstance(url, bytes) else url.encode("ascii")
        scheme, host, port, _authority, target = parse_uri(raw)
        self.url = raw.decode("ascii")
        self.origin = (scheme, host, port)
        self.name = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        if b"?" in target:
            raise ValueError(f"an upstream URL has no query: {self.url!r}")
        self.prefix = raw.split(b"#", 1)[0].rstrip(b"/")

    def __repr__(self) -> str:
        return f"<StaticUpstream {self.url}>"


class _Single:
    """Selector for one fixed upstream."""

    __slots__ = ("upstream",)

    def __init__(self, upstream: UpstreamLike) -> None:
        self.upstream = upstream

    def acquire(self, px: ProxyExchange, ready: Callable[[Any, str | None], None]) -> None:
        ready(self.upstream, None)

    def release(self, upstream: UpstreamLike, ok: bool) -> None:
        pass


class _Chooser:
    """Selector calling ``fn(px)``: an upstream, a URL, or None (no upstream: 502)."""

    __slots__ = ("cache", "fn")

    def __init__(self, fn: Callable[[ProxyExchange], Any]) -> None:
        self.fn = fn
        self.cache: dict[str | bytes, StaticUpstream] = {}

    def acquire(self, px: ProxyExchange, ready: Callable[[Any, str | None], None]) -> None:
        chosen = self.fn(px)
        if isinstance(chosen, (str, bytes)):
            upstream = self.cache.get(chosen)
            if upstream is None:
                if len(self.cache) > 1024:
                    self.cache.clear()
                upstream = self.cache[chosen] = StaticUpstream(chosen)
            chosen = upstream
        ready(chosen, None if chosen is not None else "no upstream")

    def release(self, upstream: UpstreamLike, ok: bool) -> None:
        pass


def as_selector(upstream: Any) -> Any:
    """An object with ``acquire``/``release`` for what ``ReverseProxy`` was given (see the
    module docstring).

    Raises:
        TypeError: ``upstream`` is none of the accepted kinds.
        UrlError: a URL that is not a valid http(s) URL.
    """
    if hasattr(upstream, "acquire") and hasattr(upstream, "release"):
        return upstream
    if isinstance(upstream, (str, bytes)):
        return _Single(StaticUpstream(upstream))
    if hasattr(upstream, "origin") and hasattr(upstream, "url"):
        return _Single(upstream)
    if callable(upstream):
        return _Chooser(upstream)
    raise TypeError(f"not an upstream, a selector, a URL or a callable: {upstream!r}")


def _prefix(upstream: Any) -> bytes:
    """The bytes to put before an origin-form target to make the upstream URL."""
    prefix = getattr(upstream, "prefix", None)
    if isinstance(prefix, bytes):
        return prefix
    url = upstream.url
    raw = url if isinstance(url, bytes) else url.encode("ascii")
    return raw.rstrip(b"/")


class ProxyBase(EventEmitter):
    """The common part of ReverseProxy and ForwardProxy (not used alone).

    Settings (class attributes; change them on a subclass, or on an instance at any time: a
    change takes effect from the next request; the ``upstream_*`` ones apply to the client the
    proxy made, not to one it was given):
        via_name: the pseudonym in the Via fields added both ways (``"thor"``); None: no Via.
        loop_hops: a request whose Via fields already name ``via_name`` this many times is
            going round a forwarding loop (the proxy, or a chain through it, forwarding to
            itself): answered 508 Loop Detected, not forwarded (10; 0: never; needs via_name).
            Give chained proxies distinct names for a tighter bound.
        trusted_hops: addresses or networks (strings) whose Forwarded / X-Forwarded-For fields
            are believed and extended; from any other client they are dropped (``()``).
        forwarded: add a ``Forwarded`` field (RFC 7239) to requests (True).
        x_forwarded_for: add an ``X-Forwarded-For`` field to requests (True).
        upstream_connect_timeout: seconds to connect upstream, per attempt (5): 504 beyond
            (502 when refused).
        upstream_read_timeout: seconds the upstream may stay silent while a response is
            expected (60): 504 before the response started, a cut response after.
        upstream_total_timeout: seconds an upstream exchange may take in all, from the request
            to the response's end (None: no limit); an origin that drips its response just
            inside ``upstream_read_timeout`` is cut there (504 before the response started).
        upstream_max_conns: connections per upstream origin in the client's pool (256); more
            requests wait for one.
        upstream_idle_timeout: seconds an idle upstream connection is kept (60).
        upstream_max_idle_conns: idle upstream connections kept over every origin (256; None:
            no limit); one more closes the one idle longest (a forward proxy meets many).
        tunnel_idle_timeout: an Upgrade or CONNECT tunnel with nothing relayed either way for
            about this many seconds is closed (300; None: never).
        max_forwarded_per_connection: requests of one client connection forwarded at once
            (1; None: no limit). Later pipelined requests wait for their turn (their responses
            go back in order either way), so that a few connections pipelining many requests
            they never read cannot take every upstream connection.

    Events:
        access (AccessRecord): a request is over (answered, failed or turned into a tunnel);
            once per request.
        error (Exception): a hook raised (the request was answered 500, or cut); many times.
        tunnel (ProxyExchange, Tunnel): an Upgrade or CONNECT became a tunnel; many times.
    """

    via_name: str | None = "thor"
    loop_hops: int = 10
    trusted_hops: tuple[str, ...] | list[str] = ()
    forwarded: bool = True
    x_forwarded_for: bool = True
    upstream_connect_timeout: float | None = 5
    upstream_read_timeout: float | None = 60
    upstream_total_timeout: float | None = None
    upstream_max_conns: int = 256
    upstream_idle_timeout: float | None = 60
    upstream_max_idle_conns: int | None = 256
    tunnel_idle_timeout: float | None = 300
    max_forwarded_per_connection: int | None = 1

    #: the proto= of Forwarded
    _proto = b"http"

    def __init__(self, server: HttpServer, client: HttpClient | None = None) -> None:
        EventEmitter.__init__(self)
        self.server = server
        self.loop: LoopBase = server.loop
        self._own_client = client is None
        if client is None:
            client = HttpClient(self.loop)
        self.client = client
        self._trusted = TrustedHops(())
        self._via_11 = self._via_10 = b""
        self._via_response = False
        if server.tls:
            self._proto = b"https"
        cls = type(self)
        self._answer_locally = cls.answer_locally is not ProxyBase.answer_locally
        self._rewrite_request = cls.rewrite_request is not ProxyBase.rewrite_request
        self._rewrite_response = cls.rewrite_response is not ProxyBase.rewrite_response
        self._transform_request = cls.transform_request_body is not ProxyBase.transform_request_body
        self._transform_response = (
            cls.transform_response_body is not ProxyBase.transform_response_body
        )
        self._choose = cls.choose_upstream is not ProxyBase.choose_upstream
        self._url_upstreams: dict[str | bytes, StaticUpstream] = {}
        #: (request fields, client, version, TRACE/OPTIONS, forwarded, x_forwarded_for,
        #: absolute-form authority) ->
        #: what upstream_fields made of them: a proxy sees the same heads from the same clients
        #: over and over, and a lookup costs less than the pass over the fields (0.7 us less
        #: for a one-field head, 2 us for a browser's). When the heads do not repeat (a request
        #: id in each), the cache is mostly misses: it is then left alone for a while. Heads
        #: whose fields total more than _FIELDS_ENTRY_MAX bytes are not kept.
        self._fields: dict[tuple[Any, ...], tuple[RawHeaderListType, Any, Any, Any, int]] = {}
        #: [hits, requests left that skip the cache] (a list: the per-request path sets no
        #: attribute, so it never goes through __setattr__)
        self._fields_counts = [0, 0]
        for name in _DERIVED:
            self._derive(name)
        self._settings_derived = True
        server.on("exchange", self._on_exchange)

    # (a class default, not a test of self.__dict__: on CPython 3.11, touching an instance's
    # __dict__ makes every later attribute read of it a slow lookup)
    _settings_derived = False  # __init__ is done: setting a _DERIVED name recomputes it

    def __setattr__(self, name: str, value: Any) -> None:
        # settings whose values the proxy derives things from (see _derive) take effect when
        # set on an instance; other attributes are set as usual
        if name in _DERIVED and self._settings_derived:
            before = getattr(self, name)
            object.__setattr__(self, name, value)
            try:
                self._derive(name)
            except BaseException:  # an invalid value: the setting keeps its former value
                object.__setattr__(self, name, before)
                raise
        else:
            object.__setattr__(self, name, value)

    def _derive(self, name: str) -> None:
        """Recompute what the proxy keeps of the setting ``name`` (one of ``_DERIVED``).

        Raises:
            ValueError, UnicodeEncodeError: an invalid trusted_hops or via_name.
        """
        if name == "trusted_hops":
            self._trusted = TrustedHops(self.trusted_hops)
            self._fields.clear()  # (its results depend on whether the client is trusted)
        elif name == "via_name":
            via = self.via_name
            self._via_11 = b"1.1 " + via.encode("ascii") if via else b""
            self._via_10 = b"1.0 " + via.encode("ascii") if via else b""
            self._via_response = via is not None
            self._fields.clear()  # (its results hold the Via field)
        elif self._own_client:
            setattr(self.client, _CLIENT_SETTINGS[name], getattr(self, name))

    # -- hooks (override in a subclass) ---------------------------------------------------------

    def choose_upstream(self, px: ProxyExchange) -> Any:
        """Pick the upstream for ``px`` (an object with ``origin``, ``url`` and ``name``, or a
        URL); None answers 502. When not overridden, the proxy's selector decides (it may
        queue the request)."""
        return None

    def answer_locally(self, px: ProxyExchange) -> bool:
        """Return True when the proxy answers ``px`` itself (call ``px.respond(...)`` now or
        later); False forwards it. Default: False."""
        return False

    def rewrite_request(self, px: ProxyExchange) -> None:
        """Change ``px.req_hdrs`` / ``px.target`` before the request is forwarded. Default:
        nothing."""

    def rewrite_response(
        self, px: ProxyExchange, status: bytes, phrase: bytes, headers: RawHeaderListType
    ) -> RawHeaderListType:
        """Return the fields to send to the client for an upstream response (``headers``
        without hop-by-hop fields, Via added). Default: ``headers``."""
        return headers

    def transform_request_body(self, px: ProxyExchange, chunk: bytes) -> bytes:
        """Return what to forward for a chunk of the request body (``b""`` forwards nothing
        now: a transform may hold bytes back). Called with ``b""`` once at the end, to flush.
        Overriding it sends request bodies chunked. Default: ``chunk``."""
        return chunk

    def transform_response_body(self, px: ProxyExchange, chunk: bytes) -> bytes:
        """Like ``transform_request_body``, for response bodies (which then go to the client
        chunked, or close-delimited to HTTP/1.0 clients). Default: ``chunk``."""
        return chunk

    # -- the flow -------------------------------------------------------------------------------

    def _on_exchange(self, ex: HttpServerExchange) -> None:
        px = ProxyExchange(self, ex)
        ex.sink(px)
        if not self._resolve(px):
            return
        method = px.method
        tm = method in _TRACE_OPTIONS
        peer = px.client_address[0]
        version = px.version
        forwarded, xff = self.forwarded, self.x_forwarded_for
        # the same fields from the same client give the same result (see _fields)
        key: tuple[Any, ...] | None = None
        found = None
        counts = self._fields_counts
        if counts[1]:
            counts[1] -= 1
        else:
            try:
                key = (tuple(ex.req_hdrs), peer, version, tm, forwarded, xff, px.host)
                found = self._fields.get(key)
            except TypeError:  # (fields that are not tuples of bytes: not cached)
                key = None
        if found is not None:
            counts[0] += 1
        else:
            found = upstream_fields(
                ex.req_hdrs,
                client_host=peer,
                trusted=bool(self._trusted) and peer in self._trusted,
                proto=self._proto,
                via=(self._via_11 if version != b"1.0" else self._via_10) or None,
                forwarded=forwarded,
                x_forwarded_for=xff,
                keep_length=not self._transform_request,
                max_forwards_methods=tm,
                authority=px.host,  # (an absolute-form target's, set by _resolve)
            )
            if key is not None and _small(ex.req_hdrs):
                cache = self._fields
                if len(cache) >= _FIELDS_MAX:
                    if counts[0] < _FIELDS_MAX:  # mostly misses: heads do not repeat
                        counts[1] = _FIELDS_PAUSE
                    counts[0] = 0
                    cache.clear()
                cache[key] = found
        fields, host, upgrade, remaining, own_hops = found
        if own_hops and 0 < self.loop_hops <= own_hops:
            px.record.error = "forwarding loop"
            px.respond(
                508,
                b"Loop Detected",
                [(b"Content-Type", b"text/plain")],
                b"forwarding loop: this request already went through %d proxies named %s\n"
                % (own_hops, (self.via_name or "").encode("ascii")),
                close=True,
            )
            return
        px.req_hdrs = fields[:]  # (a copy: hooks and selectors may change it)
        if px.host is None:
            px.host = host
        if version == b"1.1":  # (an Upgrade in an HTTP/1.0 request is ignored: RFC 9110 §7.8)
            px._upgrade = upgrade
        if remaining == 0:
            if method == b"TRACE":
                body = trace_body(method, ex.uri, px.version, ex.req_hdrs)
                px.respond(200, None, [(b"Content-Type", b"message/http")], body)
            else:
                px.respond(200, None, options_response())
            return
        conn = ex.http_conn
        limit = self.max_forwarded_per_connection
        if limit is not None and conn._proxy_active >= limit:
            waiting = conn._proxy_waiting
            if waiting is None:
                waiting = conn._proxy_waiting = deque()
            waiting.append(px)  # its body, if any, is kept and held as while selecting
            return
        conn._proxy_active += 1
        px._counted = True
        self._forward(px)

    def _forward(self, px: ProxyExchange) -> None:
        """The request's turn: the hooks, then an upstream."""
        try:
            if self._answer_locally and self.answer_locally(px):
                return
            if self._rewrite_request:
                self.rewrite_request(px)
            if self._choose:
                chosen = self.choose_upstream(px)
                if isinstance(chosen, (str, bytes)):
                    chosen = self.upstream_for_url(chosen)
                px._ready(chosen, None if chosen is not None else "no upstream")
                return
            self._select(px)
        except Exception as exc:  # a hook or a selector raised: this request fails
            px._internal_error(exc)

    def _forward_waiting(self, conn: HttpServerConnection) -> None:
        """A forwarded request of ``conn`` finished, and others wait: start them, as far as
        ``max_forwarded_per_connection`` allows."""
        waiting = conn._proxy_waiting
        if waiting and conn.tcp_conn is None:  # the client is gone: they end with its error
            waiting.clear()
            return
        limit = self.max_forwarded_per_connection
        while waiting and (limit is None or conn._proxy_active < limit):
            px = waiting.popleft()
            if px._done:  # (its client went away while it waited)
                continue
            conn._proxy_active += 1
            px._counted = True
            self._forward(px)

    def upstream_for_url(self, url: str | bytes) -> StaticUpstream:
        """A StaticUpstream for ``url`` (kept: the same URL gives the same object).

        Raises:
            UrlError: not a valid http(s) URL.
        """
        cache = self._url_upstreams
        upstream = cache.get(url)
        if upstream is None:
            if len(cache) >= 1024:
                cache.clear()
            upstream = cache[url] = StaticUpstream(url)
        return upstream

    def close(self) -> None:
        """Stop proxying: the server's new requests are no longer given to this proxy
        (requests in flight finish). The server and the client are left alone (see
        ``server.graceful_shutdown()`` and ``client.close()``)."""
        self.server.remove_listener("exchange", self._on_exchange)

    def _resolve(self, px: ProxyExchange) -> bool:
        """Check the request target; False when the request was answered here."""
        raise NotImplementedError

    def _connect_has_content(self, px: ProxyExchange) -> bool:
        """A CONNECT with content is answered 400 (RFC 9110 §9.3.6): True when it was."""
        if has_content(px.server_exchange.req_hdrs):
            px.respond(400, None, [], b"CONNECT has no content\n", close=True)
            return True
        return False

    def _absolute_form(self, px: ProxyExchange) -> bytes | None:
        """Take an absolute-form target apart: ``px.target`` becomes its origin form and
        ``px.host`` its authority. Its ``scheme://authority``, or None when it was answered
        400."""
        try:
            scheme, _host, _port, authority, origin_form = parse_uri(px.target)
        except UrlError:
            px.respond(400, None, [], b"Bad request target\n", close=True)
            return None
        px.target = origin_form
        px.host = authority
        return scheme.encode("ascii") + b"://" + authority

    def _select(self, px: ProxyExchange) -> None:
        """Ask the selector for an upstream (the default when ``choose_upstream`` is not
        overridden)."""
        raise NotImplementedError

    def _send_upstream(self, px: ProxyExchange, upstream: Any) -> None:
        """Forward ``px`` to ``upstream`` with a client exchange."""
        cx: HttpClientExchange = self.client.exchange()
        px._start_request(cx, _prefix(upstream) + px.target)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} on port {self.server.port}>"
