"""Routing: ``Router`` sends each request to the group of the route that matches it best.

Theory of operation
-------------------
A route matches a request when its host is None or equals the request's host, and its path
prefix matches the request path on a segment boundary (``/api`` matches ``/api``, ``/api/x``
and ``/api?q``, not ``/apix``; a prefix ending in ``/`` matches anything under it). Among the
matching routes the longest prefix wins; on equal prefixes a route naming the host beats a
catch-all one, then the first listed wins.

The request's host is the authority of an absolute-form target (RFC 9112 §3.2.2: it overrides
Host), else the request's ``host`` attribute when it has one (the proxy's ``ProxyExchange``
keeps the client's Host there, and removes the field from ``req_hdrs``), else the Host field;
compared case-insensitively, without its port. The path is the target's path, without the
query.

The router has the groups' ``acquire``/``release`` contract; it remembers which group lent each
upstream in flight, so ``release`` reaches the right one even when groups share upstreams.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._balance import Ready, Upstream

__all__ = ["Balancer", "Route", "RouteRequest", "Router"]

NO_ROUTE = "no route"


class RouteRequest(Protocol):
    """What a router reads from the request (the proxy's ``ProxyExchange``)."""

    @property
    def target(self) -> bytes:
        """The request target (origin-form or absolute-form)."""

    @property
    def client_address(self) -> tuple[Any, ...]:
        """The client's address (passed on to the route's group)."""

    @property
    def req_hdrs(self) -> Sequence[tuple[bytes, bytes]]:
        """The request's header list."""


class Balancer(Protocol):
    """Anything with the acquire/release contract: an UpstreamGroup, a Router."""

    def acquire(self, px: Any, ready: Ready) -> None:
        """Call ``ready(upstream, None)`` now or later, or ``ready(None, reason)``."""

    def release(self, upstream: Upstream, ok: bool = True) -> None:
        """Give back an upstream ``ready`` was called with."""


def _is_token_host(host: bytes) -> bool:
    return bool(host) and all(0x21 <= b <= 0x7E and b not in b'/?#@"<>\\^`{|}' for b in host)


def split_host(authority: bytes) -> bytes:
    """The host of an authority (``host[:port]`` or ``[v6][:port]``), lower-cased, no port."""
    authority = authority.strip().rpartition(b"@")[2]
    if authority.startswith(b"["):
        return authority[: authority.find(b"]") + 1].lower()
    return authority.partition(b":")[0].lower()


@dataclass(frozen=True, slots=True)
class Route:
    """Requests for ``host`` (any host when None) under ``path_prefix`` go to ``group``.

    Args:
        host: the host name (bytes; case and a ``:port`` are ignored), or None for any.
        path_prefix: bytes starting with ``/`` (default ``b"/"``: every path).
        group: an UpstreamGroup (or anything with acquire/release, such as another Router).

    Raises:
        ValueError: a bad host or path prefix (the message names it).
    """

    host: bytes | None = None
    path_prefix: bytes = b"/"
    group: Balancer | None = None

    def __post_init__(self) -> None:
        if self.host is not None:
            host: object = self.host
            if not isinstance(host, bytes) or not _is_token_host(host):
                raise ValueError(f"route host must be a host name as bytes, not {self.host!r}")
            object.__setattr__(self, "host", split_host(self.host))
        prefix = self.path_prefix
        given: object = prefix
        if (
            not isinstance(given, bytes)
            or not prefix.startswith(b"/")
            or any(b <= 0x20 or b == 0x7F or b in b"?#" for b in prefix)
        ):
            raise ValueError(
                f"route path_prefix must be bytes starting with '/', without spaces, controls, "
                f"'?' or '#', not {prefix!r}"
            )
        if self.group is None:
            raise ValueError(f"route {self.host!r} {prefix!r} has no group")

    def matches_path(self, path: bytes) -> bool:
        """True when ``path`` is ``path_prefix`` or lies under it (segment-wise)."""
        prefix = self.path_prefix
        if not path.startswith(prefix):
            return False
        return len(path) == len(prefix) or prefix.endswith(b"/") or path[len(prefix)] == 0x2F


def request_host_path(px: RouteRequest) -> tuple[bytes | None, bytes]:
    """The request's host (lower-cased, no port; None when it has none) and path: see the
    module docstring for where the host is taken from."""
    target = px.target
    host: bytes | None = None
    if not target.startswith(b"/"):
        scheme, sep, rest = target.partition(b"://")
        if sep and scheme.isalpha():
            end = len(rest)
            for delimiter in (b"/", b"?", b"#"):
                found = rest.find(delimiter)
                if found != -1:
                    end = min(end, found)
            host = split_host(rest[:end]) or None
            target = rest[end:]
            if not target.startswith(b"/"):
                target = b"/" + target
    if host is None:
        given = getattr(px, "host", None)
        if isinstance(given, bytes) and given:
            host = split_host(given) or None
    if host is None:
        for name, value in px.req_hdrs:
            if name.lower() == b"host":
                host = split_host(value) or None
                break
    path = target.partition(b"?")[0].partition(b"#")[0]
    return host, path


class Router:
    """Dispatches requests to groups by host and path prefix (see the module docstring).

    Args:
        routes: the routes, in order of preference among equals.

    Raises:
        ValueError: no routes.
    """

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes: list[Route] = list(routes)
        if not self.routes:
            raise ValueError("a Router needs at least one route")
        for route in self.routes:
            if not isinstance(route, Route):
                raise ValueError(f"Router takes Route objects, not {route!r}")
        self._lent: dict[Upstream, list[Balancer]] = {}

    def match(self, px: RouteRequest) -> Route | None:
        """The route for the request ``px``, or None when none matches."""
        host, path = request_host_path(px)
        best: Route | None = None
        best_rank = (-1, False)
        for route in self.routes:
            if route.host is not None and route.host != host:
                continue
            if not route.matches_path(path):
                continue
            rank = (len(route.path_prefix), route.host is not None)
            if rank > best_rank:
                best, best_rank = route, rank
        return best

    def acquire(self, px: RouteRequest, ready: Ready) -> None:
        """As ``UpstreamGroup.acquire``, through the matching route's group; ``ready(None,
        "no route")`` at once when no route matches."""
        route = self.match(px)
        if route is None:
            ready(None, NO_ROUTE)
            return
        group = route.group
        assert group is not None

        def lent(upstream: Upstream | None, reason: str | None) -> object:
            if upstream is not None:
                self._lent.setdefault(upstream, []).append(group)
            return ready(upstream, reason)

        group.acquire(px, lent)

    def release(self, upstream: Upstream, ok: bool = True) -> None:
        """Give ``upstream`` back to the group that lent it (as ``UpstreamGroup.release``).

        Raises:
            RuntimeError: this router did not lend ``upstream`` (or it was released already).
        """
        groups = self._lent.get(upstream)
        if not groups:
            raise RuntimeError(f"release({upstream.name}) without a matching acquire")
        group = groups.pop(0)
        if not groups:
            del self._lent[upstream]
        group.release(upstream, ok)

    def groups(self) -> list[Balancer]:
        """The distinct groups of the routes, in route order."""
        seen: list[Balancer] = []
        for route in self.routes:
            group = route.group
            if group is not None and all(group is not other for other in seen):
                seen.append(group)
        return seen

    def cancel(self, px: RouteRequest) -> bool:
        """Forget the queued request ``px`` (its client went away) in whichever group queued
        it; its ``ready`` is not called. Returns True when it was waiting."""
        for group in self.groups():
            cancel = getattr(group, "cancel", None)
            if cancel is not None and cancel(px):
                return True
        return False

    def close(self) -> None:
        """``close()`` every distinct group that has one (UpstreamGroups do)."""
        for group in self.groups():
            close = getattr(group, "close", None)
            if close is not None:
                close()

    def __repr__(self) -> str:
        return f"<Router {len(self.routes)} routes>"
