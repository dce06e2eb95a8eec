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

Routes are ranked once, at construction (longest prefix, then host-specific, then listed
order), so a match is the first route that fits; the host is not even looked for when no route
names one.

The router has the groups' ``acquire``/``release`` contract. An upstream in exactly one
UpstreamGroup is released to that group directly (it knows its groups), so the common case costs
no bookkeeping; for groups that share upstreams with other groups, and for other balancers
(a nested Router...), the router remembers which one lent each upstream in flight, and to
which request. ``release(upstream, ok, request=px)`` gives it back to the group that lent it to
that request (the proxy passes its exchange); without ``request`` the oldest lending of that
upstream is taken, which is right as long as one Upstream is not shared by two groups.

A router replaced on a reload (``ReverseProxy.set_upstream``) is retired with
``close_when_idle()``: the requests in flight are released to it as usual, and the release that
leaves it idle closes it (its groups' health checks and timers stop); nothing is counted per
request for this.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ._balance import UpstreamGroup

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
    host, path = _split_target(px.target)
    if host is None:
        given = getattr(px, "host", None)
        if isinstance(given, bytes) and given:
            host = split_host(given) or None
    if host is None:
        for name, value in px.req_hdrs:
            if name.lower() == b"host":
                host = split_host(value) or None
                break
    return host, path


def _split_target(target: bytes) -> tuple[bytes | None, bytes]:
    """The host of an absolute-form target (else None), and the target's path."""
    host: bytes | None = None
    if target[:1] != b"/":
        scheme, sep, rest = target.partition(b"://")
        if sep and scheme.isalpha():
            end = len(rest)
            for delimiter in (b"/", b"?", b"#"):
                found = rest.find(delimiter)
                if found != -1:
                    end = min(end, found)
            host = split_host(rest[:end]) or None
            target = rest[end:]
            if target[:1] != b"/":
                target = b"/" + target
    if b"?" in target or b"#" in target:
        target = target.partition(b"?")[0].partition(b"#")[0]
    return host, target


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
        self._lent: dict[Upstream, list[tuple[Balancer, object]]] = {}
        # best first; sorted() is stable, so equals keep the order they were listed in
        self._ranked = sorted(
            self.routes, key=lambda r: (len(r.path_prefix), r.host is not None), reverse=True
        )
        self._need_host = any(route.host is not None for route in self.routes)
        self._direct = {id(r.group) for r in self.routes if isinstance(r.group, UpstreamGroup)}
        # the one route, when it takes every origin-form target (the usual single-group
        # set-up): nothing to match
        only = self._ranked[0]
        catch_all = len(self._ranked) == 1 and only.host is None and only.path_prefix == b"/"
        self._catch_all: Route | None = only if catch_all else None
        self._retiring = False
        self.closed = False

    def match(self, px: RouteRequest) -> Route | None:
        """The route for the request ``px``, or None when none matches."""
        if self._need_host:
            host, path = request_host_path(px)
        else:
            host, path = None, _split_target(px.target)[1]
        for route in self._ranked:
            if route.host is not None and route.host != host:
                continue
            if route.matches_path(path):
                return route
        return None

    def acquire(self, px: RouteRequest, ready: Ready) -> None:
        """As ``UpstreamGroup.acquire``, through the matching route's group; ``ready(None,
        "no route")`` at once when no route matches."""
        route = self._catch_all
        if route is None or px.target[:1] != b"/":
            route = self.match(px)
            if route is None:
                ready(None, NO_ROUTE)
                return
        group = route.group
        assert group is not None
        if isinstance(group, UpstreamGroup) and not group._shared:
            group.acquire(px, ready)  # release() finds the group from the upstream
            return

        def lent(upstream: Upstream | None, reason: str | None) -> object:
            if upstream is not None:
                self._lent.setdefault(upstream, []).append((group, px))
            return ready(upstream, reason)

        group.acquire(px, lent)

    def release(self, upstream: Upstream, ok: bool = True, request: object = None) -> None:
        """Give ``upstream`` back to the group that lent it (as ``UpstreamGroup.release``).

        Args:
            upstream: the upstream ``ready`` was called with.
            ok: as ``UpstreamGroup.release``.
            request: the request it was lent to (the ``px`` of ``acquire``). When one Upstream
                is in two of the router's groups, this says which group the release, and its
                failure count, belongs to; without it the oldest lending is taken.

        Raises:
            RuntimeError: this router did not lend ``upstream`` (or it was released already).
        """
        lendings = self._lent.get(upstream) if self._lent else None
        if lendings:
            index = 0
            if request is not None:
                for i, (_, px) in enumerate(lendings):
                    if px is request:
                        index = i
                        break
            group = lendings.pop(index)[0]
            if not lendings:
                del self._lent[upstream]
            try:
                if request is not None and isinstance(group, Router):
                    group.release(upstream, ok, request)
                else:
                    group.release(upstream, ok)
            finally:
                if self._retiring:
                    self._close_if_idle()
            return
        for owner in getattr(upstream, "_groups", ()):  # (not an Upstream: not ours either)
            if id(owner) in self._direct:
                try:
                    owner.release(upstream, ok)
                finally:
                    if self._retiring:
                        self._close_if_idle()
                return
        raise RuntimeError(f"release({upstream.name}) without a matching acquire")

    @property
    def idle(self) -> bool:
        """True when no upstream it lent is in flight: nothing lent through another balancer,
        and no request in flight or queued in its UpstreamGroups (counted over every group an
        upstream is in, so a group shared with another router keeps this one busy too)."""
        if self._lent:
            return False
        for group in self.groups():
            if isinstance(group, UpstreamGroup) and (group.queued or group.in_flight):
                return False
        return True

    def close_when_idle(self) -> None:
        """``close()`` now when ``idle``, else as soon as the release that makes it idle
        (a router replaced by a reload: the requests in flight keep their upstreams, then its
        health checks and timers stop)."""
        self._retiring = True
        self._close_if_idle()

    def _close_if_idle(self) -> None:
        if self.idle:
            self.close()

    def groups(self) -> list[Balancer]:
        """The distinct groups of the routes, in route order."""
        seen: list[Balancer] = []
        for route in self.routes:
            group = route.group
            if group is not None and all(group is not other for other in seen):
                seen.append(group)
        return seen

    @property
    def queued(self) -> int:
        """Requests waiting for a slot, over every group that has a ``queued`` count."""
        total = 0
        for group in self.groups():
            queued = getattr(group, "queued", 0)
            total += queued if isinstance(queued, int) else 0
        return total

    def cancel(self, px: RouteRequest) -> bool:
        """Forget the queued request ``px`` (its client went away) in whichever group queued
        it; its ``ready`` is not called. Returns True when it was waiting."""
        for group in self.groups():
            cancel = getattr(group, "cancel", None)
            if cancel is not None and cancel(px):
                return True
        return False

    def close(self) -> None:
        """``close()`` every distinct group that has one (UpstreamGroups do); ``closed`` is
        then True."""
        self._retiring = False
        self.closed = True
        for group in self.groups():
            close = getattr(group, "close", None)
            if close is not None:
                close()

    def __repr__(self) -> str:
        return f"<Router {len(self.routes)} routes>"
