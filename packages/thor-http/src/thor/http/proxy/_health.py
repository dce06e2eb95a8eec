"""Active health checks: a periodic ``GET`` to every upstream of a group, with thor's HttpClient.

Theory of operation
-------------------
A round starts at once and then every ``interval`` seconds (a loop timer). It sends
``GET <path>`` to each upstream that has no check still running (a slow upstream is not piled
up with checks). A check passes on a final response head with a status below 500 and fails on
a 5xx, on the exchange's ``'error'``, or when no response head came within ``timeout`` seconds;
its verdict goes to ``UpstreamGroup.set_health`` at once (one failure marks an upstream down,
one pass marks it up: the interval already smooths flapping). The response body is read and
dropped by the client, so its connection returns to the pool for the next round.

Every check carries the checker's generation: after ``stop()`` (or a timeout), a late answer
is ignored rather than overriding a newer verdict. A check that times out, or is still waiting
for its answer at ``stop()``, is cancelled (its connection closed): an upstream that accepts
connections and never answers would otherwise hold one more of the client's connections to it
every round.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._balance import _seconds

if TYPE_CHECKING:
    from thor.loop import ScheduledEvent

    from ..client import HttpClient, HttpClientExchange
    from ._balance import Upstream, UpstreamGroup

__all__ = ["HealthChecker"]

USER_AGENT = b"thor-health-check"


class _Check:
    """One check in flight: reports once, whichever comes first of answer, error, timeout."""

    __slots__ = ("checker", "exchange", "generation", "timer", "upstream")

    def __init__(self, checker: HealthChecker, upstream: Upstream) -> None:
        self.checker = checker
        self.upstream = upstream
        self.generation = checker.generation
        self.exchange: HttpClientExchange | None = None
        self.timer: ScheduledEvent | None = None

    def start(self) -> None:
        checker = self.checker
        self.timer = checker.group.loop.schedule(checker.timeout, self.expire)
        exchange = self.exchange = checker.client.exchange()
        exchange.on("response_start", self.on_response_start)
        exchange.on("error", self.on_error)
        exchange.request_start(
            b"GET", self.upstream.url.encode("ascii") + checker.path, [(b"user-agent", USER_AGENT)]
        )
        exchange.request_done([])

    def on_response_start(self, status: bytes, phrase: bytes, headers: object) -> None:
        self.exchange = None  # (answered: its body is read and dropped, the connection pooled)
        self.report(int(status) < 500)

    def expire(self) -> None:
        """No answer within the timeout: a failure, and the exchange is abandoned (its
        connection closed), so that checks do not pile up on an upstream that never answers."""
        self.timer = None
        self.cancel()
        self.report(False)

    def cancel(self) -> None:
        """Abandon the exchange if it is still waiting for its response head."""
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.cancel()

    def on_error(self, err: object) -> None:
        self.report(False)

    def report(self, ok: bool) -> None:
        checker = self.checker
        if checker.running.get(self.upstream) is not self:
            return  # already reported (or the checker was stopped)
        del checker.running[self.upstream]
        if self.timer is not None:
            self.timer.delete()
            self.timer = None
        if self.generation == checker.generation:
            checker.group.set_health(self.upstream, ok)


class HealthChecker:
    """Periodic active health checks of one UpstreamGroup (see the module docstring).

    Made and started by ``UpstreamGroup.start_health_checks``; ``stop()`` ends it.

    Args:
        group: the group whose upstreams are checked (its loop runs the timers).
        client: the HttpClient that sends the checks.
        path: the request target, bytes starting with ``/``.
        interval: seconds between rounds (> 0).
        timeout: seconds a check may take before it counts as failed (None: ``interval``).

    Raises:
        ValueError: a bad path, interval or timeout (the message names the value).

    Attributes:
        rounds: rounds started so far.
    """

    def __init__(
        self,
        group: UpstreamGroup,
        client: HttpClient,
        path: bytes = b"/",
        interval: float = 5.0,
        timeout: float | None = None,
    ) -> None:
        given: object = path
        if (
            not isinstance(given, bytes)
            or not path.startswith(b"/")
            or any(b <= 0x20 for b in path)
        ):
            raise ValueError(
                f"health check path must be bytes starting with '/', without spaces or control "
                f"characters, not {path!r}"
            )
        every = _seconds("health check interval", interval)
        limit = _seconds("health check timeout", timeout, allow_none=True)
        self.group = group
        self.client = client
        self.path = path
        assert every is not None
        self.interval = every
        self.timeout = limit if limit is not None else every
        self.generation = 0
        self.rounds = 0
        self.running: dict[Upstream, _Check] = {}
        self._timer: ScheduledEvent | None = None
        self._active = False

    def start(self) -> None:
        """Run a round now (on the loop's next pass), then every ``interval`` seconds."""
        self._active = True
        self._timer = self.group.loop.schedule(0, self._round)

    def stop(self) -> None:
        """Stop: no more rounds; answers to checks in flight are ignored."""
        self._active = False
        self.generation += 1
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        checks, self.running = self.running, {}
        for check in checks.values():
            if check.timer is not None:
                check.timer.delete()
            check.cancel()

    def _round(self) -> None:
        if not self._active:
            return
        self.rounds += 1
        self._timer = self.group.loop.schedule(self.interval, self._round)
        for upstream in self.group.upstreams:
            if upstream not in self.running:
                check = self.running[upstream] = _Check(self, upstream)
                check.start()
