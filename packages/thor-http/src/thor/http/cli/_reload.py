"""The routing of ``thor proxy``, replaceable while requests are in flight (SIGHUP reload).

``SwitchableBalancer`` holds the proxy's current Router. ``switch(new)`` makes ``new`` the
proxy's selector (``ReverseProxy.set_upstream``): requests acquired before keep their upstream
and are released to the router that lent it (the proxy remembers, per request, the selector it
acquired from), and a retired router closes itself (its health checks and timers stopped) once
nothing it lent is in flight any more (``Router.close_when_idle``).

Requests do not go through this object: the proxy calls the current router directly, so a
request costs no wrapper, closure or bookkeeping here (a wrapper that made a closure per
request to remember the lender was a measurable part of the command's cost per request).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..proxy import ReverseProxy
    from ..proxy._routing import Router

__all__ = ["SwitchableBalancer"]


class SwitchableBalancer:
    """A proxy's replaceable Router (see the module docstring).

    Args:
        proxy: the ReverseProxy whose selector it sets (now, and at each ``switch``).
        current: the Router to start with.

    Attributes:
        proxy: the proxy.
        current: the router new requests go to.
        retired: routers replaced while they had upstreams lent out, not closed yet.
    """

    def __init__(self, proxy: ReverseProxy, current: Router) -> None:
        self.proxy = proxy
        self.current: Router = current
        self._retired: list[Router] = []
        proxy.set_upstream(current)

    @property
    def retired(self) -> list[Router]:
        """The replaced routers that still have requests in flight (a copy)."""
        self._retired = [router for router in self._retired if not router.closed]
        return list(self._retired)

    def switch(self, new: Router) -> None:
        """Send new requests to ``new``; the old router finishes what it lent, then closes."""
        old, self.current = self.current, new
        if old is new:
            return
        self.proxy.set_upstream(new)
        old.close_when_idle()
        if not old.closed:
            self._retired.append(old)

    def balancers(self) -> list[Router]:
        """The current router and the retired ones still in use."""
        return [self.current, *self.retired]

    def close(self) -> None:
        """Close every router (at shutdown)."""
        for router in self.balancers():
            router.close()
