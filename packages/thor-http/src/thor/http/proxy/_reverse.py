"""ReverseProxy: an HTTP server that forwards every request to upstream origins.

The upstream is chosen per request by a selector (an ``UpstreamGroup`` for load balancing, a
``Router`` for routes, a URL, or a callable; see ``_base``). Targets are origin-form
(``/path?query``), or absolute-form (``http://host/path``: its authority becomes the Host the
request is for, RFC 9112 §3.2.2); ``OPTIONS *`` is answered by the proxy; CONNECT is refused
(405). The Host sent upstream is the upstream's authority (what the URL of the upstream says),
or, with ``preserve_host``, the Host the client sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._balance import Upstream
from ._base import ProxyBase, StaticUpstream, _prefix, _Single, as_selector
from ._intermediary import options_response

if TYPE_CHECKING:
    from .._server import HttpServer
    from ..client import HttpClient
    from ._exchange import ProxyExchange

__all__ = ["ReverseProxy"]

#: upstream classes whose ``prefix`` is the bytes to put before a target
_PREFIXED = (StaticUpstream, Upstream)


class ReverseProxy(ProxyBase):
    """A reverse proxy (gateway): forwards the requests its server receives to upstreams.

    Args:
        server: the HttpServer whose requests are forwarded (the proxy listens to its
            ``'exchange'``; nothing else should answer them).
        upstream: where to: an object with ``acquire(px, ready)`` / ``release(upstream, ok)``
            (UpstreamGroup, Router), a URL (``"http://127.0.0.1:8080"``), an upstream object
            (``origin``, ``url``, ``name``), or a callable ``(px) -> upstream | URL | None``.
        client: the HttpClient used upstream; one is made (with the ``upstream_*`` settings)
            when None.

    Attributes:
        upstream: what was given (see ``set_upstream`` to change it).
        selector: the object whose ``acquire``/``release`` are called per request.

    Settings: those of ``ProxyBase`` (Via, trusted hops, upstream timeouts), and:
        preserve_host: send the client's Host upstream instead of the upstream's authority
            (False). Requests then cost a little more (their heads are not cached).

    Hooks (override in a subclass): ``choose_upstream``, ``answer_locally``,
    ``rewrite_request``, ``rewrite_response``, ``transform_request_body``,
    ``transform_response_body`` (see ``ProxyBase``).

    Events:
        access (AccessRecord): a request is over; once per request.
        error (Exception): a hook raised; many times.
        tunnel (ProxyExchange, Tunnel): an Upgrade (WebSocket...) became a tunnel; many times.
    """

    preserve_host: bool = False

    def __init__(self, server: HttpServer, upstream: Any, client: HttpClient | None = None) -> None:
        ProxyBase.__init__(self, server, client)
        self.upstream = upstream
        self.selector = as_selector(upstream)

    def set_upstream(self, upstream: Any) -> None:
        """Send new requests to ``upstream`` (same kinds as the constructor's), e.g. on a
        configuration reload. Requests in flight are not affected: each is released to the
        selector it was acquired from, so no wrapper is needed to swap routers."""
        selector = as_selector(upstream)
        self.upstream = upstream
        self.selector = selector

    def _resolve(self, px: ProxyExchange) -> bool:
        target = px.target
        if target[:1] == b"/":
            return True
        if px.method == b"CONNECT":
            if not self._connect_has_content(px):
                px.respond(405, None, [(b"Allow", b"GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS")])
            return False
        if target == b"*":
            px.respond(200, None, options_response())
            return False
        return self._absolute_form(px) is not None

    def _select(self, px: ProxyExchange) -> None:
        selector = self.selector
        if type(selector) is _Single:  # one fixed upstream: nothing to acquire or release
            px._ready(selector.upstream, None)
            return
        px._selector = selector
        px._waiting = True
        selector.acquire(px, px._ready)

    def _send_upstream(self, px: ProxyExchange, upstream: Any) -> None:
        prefix = upstream.prefix if type(upstream) in _PREFIXED else _prefix(upstream)
        host = px.host if self.preserve_host else None
        px._start_request(self.client.exchange(), prefix + px.target, host or None)
