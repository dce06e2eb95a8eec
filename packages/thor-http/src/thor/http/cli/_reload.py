"""A balancer whose routing can be replaced while requests are in flight (SIGHUP reload).

``SwitchableBalancer`` has the acquire/release contract of ``UpstreamGroup`` and ``Router``
and passes each request to the *current* balancer. ``switch(new)`` makes ``new`` current:
requests acquired before keep their upstream and are released to the balancer that lent it
(each lent upstream is remembered with its lender), and a retired balancer is closed (its
health checks and timers stopped) once nothing it lent is in flight any more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..proxy._balance import Ready, Upstream
    from ..proxy._routing import Balancer

__all__ = ["SwitchableBalancer"]


class SwitchableBalancer:
    """Delegates to a replaceable balancer (see the module docstring).

    Args:
        current: the balancer to start with (a Router or an UpstreamGroup).

    Attributes:
        current: the balancer new requests go to.
        retired: balancers replaced while they had upstreams lent out.
    """

    def __init__(self, current: Balancer) -> None:
        self.current: Balancer = current
        self.retired: list[Balancer] = []
        self._lent: dict[Upstream, list[Balancer]] = {}
        self._out: dict[int, int] = {}  # id(balancer) -> upstreams lent and not released

    def acquire(self, px: Any, ready: Ready) -> None:
        """Ask the current balancer for an upstream for ``px`` (``ready`` as it calls it)."""
        balancer = self.current

        def lent(upstream: Upstream | None, reason: str | None) -> object:
            if upstream is not None:
                self._lent.setdefault(upstream, []).append(balancer)
                self._out[id(balancer)] = self._out.get(id(balancer), 0) + 1
            return ready(upstream, reason)

        balancer.acquire(px, lent)

    def release(self, upstream: Upstream, ok: bool = True) -> None:
        """Give ``upstream`` back to the balancer that lent it.

        Raises:
            RuntimeError: ``upstream`` was not lent (or was released already).
        """
        lenders = self._lent.get(upstream)
        if not lenders:
            raise RuntimeError(f"release({upstream.name}) without a matching acquire")
        balancer = lenders.pop(0)
        if not lenders:
            del self._lent[upstream]
        left = self._out[id(balancer)] = self._out[id(balancer)] - 1
        try:
            balancer.release(upstream, ok)
        finally:
            if left == 0:
                del self._out[id(balancer)]
                if any(old is balancer for old in self.retired):
                    self.retired = [old for old in self.retired if old is not balancer]
                    _close(balancer)

    def cancel(self, px: Any) -> bool:
        """Forget a queued request (its client went away), in whichever balancer queued it."""
        for balancer in (self.current, *self.retired):
            cancel = getattr(balancer, "cancel", None)
            if cancel is not None and cancel(px):
                return True
        return False

    def switch(self, new: Balancer) -> None:
        """Send new requests to ``new``; the old balancer finishes what it lent, then closes."""
        old, self.current = self.current, new
        if old is new:
            return
        if self._out.get(id(old)):
            self.retired.append(old)
        else:
            _close(old)

    def balancers(self) -> list[Balancer]:
        """The current balancer and the retired ones still in use."""
        return [self.current, *self.retired]

    def close(self) -> None:
        """Close every balancer (at shutdown)."""
        for balancer in self.balancers():
            _close(balancer)


def _close(balancer: object) -> None:
    close = getattr(balancer, "close", None)
    if close is not None:
        close()
