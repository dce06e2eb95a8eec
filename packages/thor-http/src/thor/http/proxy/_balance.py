"""Load balancing: ``Upstream`` (one origin server) and ``UpstreamGroup`` (several, one policy).

Theory of operation
-------------------
The proxy asks ``acquire(px, ready)`` for every request and calls ``release(upstream, ok)``
exactly once for every upstream it was given. An upstream is *available* when it is healthy
(not ejected, and not failed by an active health check) and below its ``max_conns``; the
policy picks among the available ones only, so a pick fails only when none is available:

- ``round_robin``: smooth weighted round robin (the sequence nginx uses: every pick adds each
  candidate's weight to its score, takes the highest score and subtracts the total weight), so
  weights 5:1:1 give ``a a b a c a a`` rather than five ``a`` in a row. Equal weights are plain
  rotation.
- ``least_conn``: the fewest requests in flight per unit of weight; ties are broken round robin
  (the scan starts after the previous pick), so an idle group still spreads its load.
- ``hash``: consistent hashing on a ring of ``vnodes * weight`` points per upstream (64-bit
  BLAKE2b of ``"<name>#<i>"``). A key (the client's IP address, or a request header's value,
  falling back to the address when the header is absent) maps to the first point clockwise;
  when that upstream is unavailable the walk goes on to the next *different* upstream on the
  ring, so its keys spread over the others instead of piling onto one neighbour. Adding or
  removing one of N upstreams moves only the keys that land on its points (~1/N of them).

When no upstream is available but some are healthy (all are at ``max_conns``), the request
waits in a FIFO queue (at most ``queue_limit``; ``"queue full"`` beyond) for at most
``queue_timeout`` seconds (``"queue timeout"``, from a loop timer). Every change that can free
a slot (a release, a readmission, a passing health check, an added upstream) serves the queue
from its head for as long as the policy finds an upstream; so a waiting queue implies that
nothing is available, and a new request never overtakes one that waits. A queued request's
``ready`` is called from the loop (a zero-delay callback), never from inside ``release()``, so
the proxy's release path is not re-entered; the slot is reserved at once. When the last
healthy upstream goes down, the queue is failed with ``"no healthy upstream"``.

Passive health: ``release(up, ok=False)`` counts a consecutive failure (``ok=True`` resets the
count); at ``eject_after`` failures the upstream is ejected for ``eject_for`` seconds (a loop
timer), then readmitted on probation: its next failure ejects it again at once, its next
success clears the count. An upstream is not ejected while it is the last healthy one of any of
its groups (a group of one, or one whose others are ejected or failed their health checks):
it keeps being tried, so the group serves again as soon as its origin is back. Only an active
health check can take a group's last healthy upstream out.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from thor.events import EventEmitter
from thor.loop import get_default_loop

from ..error import UrlError
from ..uri import parse_uri

if TYPE_CHECKING:
    from thor.loop import LoopBase, ScheduledEvent

    from ..client import HttpClient
    from ._health import HealthChecker

__all__ = [
    "POLICIES",
    "BalanceRequest",
    "GroupStatistics",
    "Ready",
    "Upstream",
    "UpstreamGroup",
    "UpstreamStatistics",
]

#: the balancing policies UpstreamGroup knows
POLICIES = ("round_robin", "least_conn", "hash")

#: ready(upstream, None) when one was chosen, ready(None, reason) when none can be
Ready = Callable[["Upstream | None", "str | None"], object]

NO_HEALTHY = "no healthy upstream"
QUEUE_FULL = "queue full"
QUEUE_TIMEOUT = "queue timeout"
CLOSED = "closed"


class BalanceRequest(Protocol):
    """What a group reads from the request it balances (the proxy's ``ProxyExchange``)."""

    @property
    def client_address(self) -> tuple[Any, ...]:
        """The client's address; its first item (the IP address) is the ``client`` hash key."""

    @property
    def req_hdrs(self) -> Sequence[tuple[bytes, bytes]]:
        """The request's header list (a ``header:<name>`` hash key is read from it)."""


def _positive_int(name: str, value: object, minimum: int) -> int:
    if type(value) is not int or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return value


def _seconds(name: str, value: object, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value > 0
        or value == float("inf")
    ):
        extra = " or None" if allow_none else ""
        raise ValueError(f"{name} must be a number of seconds > 0{extra}, not {value!r}")
    return float(value)


class Upstream:
    """One origin server the proxy forwards to.

    Args:
        url: ``http://host[:port]`` or ``https://host[:port]`` (str or bytes; a trailing ``/``
            is allowed, any other path or query is not).
        max_conns: requests in flight through it at once (None: no limit); more wait in the
            group's queue.
        weight: its share of the traffic relative to the others in a group (integer >= 1).

    Raises:
        ValueError: the URL is not a plain http(s) origin, or a setting is out of range; the
            message names the offending value.

    Attributes:
        url: the origin as a normalised URL, without a trailing slash (``"http://h:8080"``).
        origin: ``(scheme, host, port)`` as HttpClient keys its pool (host lower-cased, an
            IPv6 address without brackets).
        name: ``"host:port"`` (``"[::1]:8080"`` for IPv6), for logs and access records.
        authority: the authority as written in the URL (bytes), e.g. for a Host header.
        prefix: ``url`` as bytes: what the proxy puts before an origin-form target.
        active: requests in flight through it (acquired and not yet released).
        failures: consecutive failed requests (reset by a success).
        ejections: how many times it was ejected for failing.
    """

    __slots__ = (
        "_check_ok",
        "_ejected",
        "_groups",
        "active",
        "authority",
        "ejections",
        "failures",
        "max_conns",
        "name",
        "origin",
        "prefix",
        "url",
        "weight",
    )

    def __init__(self, url: str | bytes, max_conns: int | None = None, weight: int = 1) -> None:
        if isinstance(url, str):
            try:
                raw = url.encode("ascii")
            except UnicodeEncodeError:
                raise ValueError(
                    f"upstream URL {url!r} has non-ASCII characters (give IDNA A-labels)"
                ) from None
        elif isinstance(url, bytes):
            raw = url
        else:
            raise ValueError(f"upstream URL must be str or bytes, not {url!r}")
        try:
            scheme, host, port, authority, target = parse_uri(raw)
        except UrlError as exc:
            raise ValueError(f"bad upstream URL {url!r}: {exc.detail or exc.desc}") from None
        if target != b"/" or raw.endswith(b"#"):
            raise ValueError(f"upstream URL {url!r} must be an origin, with no path or query")
        if max_conns is not None:
            _positive_int("max_conns", max_conns, 1)
        self.max_conns: int | None = max_conns
        self.weight: int = _positive_int("weight", weight, 1)
        self.origin: tuple[str, str, int] = (scheme, host, port)
        self.name = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.url = f"{scheme}://{self.name}"
        self.prefix = self.url.encode("ascii")
        self.authority = authority
        self.active = 0
        self.failures = 0
        self.ejections = 0
        self._ejected = False
        self._check_ok = True
        self._groups: list[UpstreamGroup] = []  # the groups it is in (they share its slots)

    @property
    def healthy(self) -> bool:
        """False while ejected for failing, or while an active health check says it is down."""
        return self._check_ok and not self._ejected

    @property
    def ejected(self) -> bool:
        """True while ejected by passive health tracking."""
        return self._ejected

    @property
    def full(self) -> bool:
        """True when ``max_conns`` requests are in flight through it."""
        return self.max_conns is not None and self.active >= self.max_conns

    def __repr__(self) -> str:
        state = "healthy" if self.healthy else "unhealthy"
        limit = "" if self.max_conns is None else f"/{self.max_conns}"
        return f"<Upstream {self.url} {state} active={self.active}{limit} weight={self.weight}>"


@dataclass(frozen=True, slots=True)
class UpstreamStatistics:
    """A snapshot of one upstream's state (see ``Upstream`` for the fields)."""

    name: str
    url: str
    active: int
    max_conns: int | None
    weight: int
    healthy: bool
    ejected: bool
    failures: int
    ejections: int


@dataclass(frozen=True, slots=True)
class GroupStatistics:
    """A snapshot of an UpstreamGroup: its policy, queue depth and upstreams."""

    policy: str
    queued: int
    upstreams: tuple[UpstreamStatistics, ...]


def _ring_hash(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class _Waiter:
    """A request waiting in the queue."""

    __slots__ = ("px", "ready", "timer")

    def __init__(self, px: BalanceRequest, ready: Ready) -> None:
        self.px = px
        self.ready = ready
        self.timer: ScheduledEvent | None = None


class UpstreamGroup(EventEmitter):
    """Upstreams that share traffic under one policy, with a queue, ejection and health checks.

    Args:
        upstreams: the upstreams (an ``Upstream``, or a URL to make one with defaults); each
            origin at most once.
        policy: ``"round_robin"`` (weighted), ``"least_conn"`` or ``"hash"`` (see the module
            docstring).
        hash_key: for ``"hash"``: ``"client"`` (the client's IP address) or ``"header:<name>"``
            (that request header's value; requests without it use the client's address).
        loop: the loop its timers run on (the default loop when None).
        queue_limit: requests that may wait for a slot when every healthy upstream is at its
            ``max_conns`` (1000); one more gets ``"queue full"``. 0: never wait.
        queue_timeout: seconds a request may wait (10.0): then ``"queue timeout"``. None: no
            limit.
        eject_after: consecutive failures (``release(up, ok=False)``) that eject an upstream
            (5); 0 never ejects. The last healthy upstream of a group is never ejected (as
            nginx ignores ``max_fails`` for a lone server): ejecting it would answer every
            request "no healthy upstream" for ``eject_for`` seconds even once its origin is
            back, so it keeps being tried (its failures still count, and it is ejected at its
            next failure once another upstream of each of its groups is healthy).
        eject_for: seconds an ejected upstream is left out (10.0) before it is tried again.
        vnodes: points on the hash ring per unit of weight (100).

    Raises:
        ValueError: an unknown policy or hash key, a setting out of range, or an origin
            listed twice; the message names the offending value.

    An Upstream may be in several groups (routes with different policies in front of the same
    server): its ``active`` count and ``max_conns`` are then shared, and every group sees its
    health changes and serves its own queue when the upstream frees a slot. Failures count
    against the group the request was released to (its ``eject_after``).

    Events:
        health (upstream, healthy: bool): an upstream of this group became unhealthy (ejected,
            or failed an active check) or healthy again; many times, only on a change.
    """

    def __init__(
        self,
        upstreams: Iterable[Upstream | str],
        policy: str = "round_robin",
        *,
        hash_key: str = "client",
        loop: LoopBase | None = None,
        queue_limit: int = 1000,
        queue_timeout: float | None = 10.0,
        eject_after: int = 5,
        eject_for: float = 10.0,
        vnodes: int = 100,
    ) -> None:
        EventEmitter.__init__(self)
        if policy not in POLICIES:
            expected = ", ".join(repr(p) for p in POLICIES)
            raise ValueError(f"unknown balancing policy {policy!r}; expected one of {expected}")
        self.policy = policy
        self.hash_header: bytes | None = self._parse_hash_key(hash_key)
        self.hash_key = hash_key
        self.loop: LoopBase = loop if loop is not None else get_default_loop()
        self.queue_limit = _positive_int("queue_limit", queue_limit, 0)
        self.queue_timeout = _seconds("queue_timeout", queue_timeout, allow_none=True)
        self.eject_after = _positive_int("eject_after", eject_after, 0)
        eject_seconds = _seconds("eject_for", eject_for)
        assert eject_seconds is not None
        self.eject_for: float = eject_seconds
        self.vnodes = _positive_int("vnodes", vnodes, 1)
        self._upstreams: list[Upstream] = []
        self._queue: deque[_Waiter] = deque()
        self._eject_timers: dict[Upstream, ScheduledEvent] = {}
        self._rr_score: dict[Upstream, int] = {}
        self._lc_next = 0
        self._ring_points: list[int] = []
        self._ring_owners: list[Upstream] = []
        self._checker: HealthChecker | None = None
        self._shared = False  # some upstream is in another group too (read by Router)
        try:
            for upstream in upstreams:
                self._add(upstream if isinstance(upstream, Upstream) else Upstream(upstream))
        except BaseException:
            for added in self._upstreams:  # leave no link to a group that does not exist
                added._groups = [group for group in added._groups if group is not self]
            raise
        self._rebuild_ring()

    @staticmethod
    def _parse_hash_key(hash_key: str) -> bytes | None:
        if hash_key == "client":
            return None
        kind, colon, name = hash_key.partition(":")
        name = name.strip()
        if (
            kind == "header"
            and colon
            and name
            and all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in name)
            and name.isascii()
        ):
            return name.lower().encode("ascii")
        raise ValueError(
            f"unknown hash key {hash_key!r}; expected 'client' or 'header:<field name>'"
        )

    # -- membership -----------------------------------------------------------------------------

    @property
    def upstreams(self) -> list[Upstream]:
        """The upstreams, in the order given (a copy)."""
        return list(self._upstreams)

    @property
    def queued(self) -> int:
        """Requests waiting for a slot."""
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        """Requests in flight through its upstreams (acquired and not released; counted over
        every group an upstream is in)."""
        return sum(upstream.active for upstream in self._upstreams)

    def statistics(self) -> GroupStatistics:
        """A snapshot of the queue depth and every upstream's state (for metrics, admin pages)."""
        return GroupStatistics(
            self.policy,
            len(self._queue),
            tuple(
                UpstreamStatistics(
                    up.name,
                    up.url,
                    up.active,
                    up.max_conns,
                    up.weight,
                    up.healthy,
                    up._ejected,
                    up.failures,
                    up.ejections,
                )
                for up in self._upstreams
            ),
        )

    def add(self, upstream: Upstream | str) -> Upstream:
        """Add an upstream (or a URL); queued requests may go to it at once.

        Returns:
            The Upstream added.

        Raises:
            ValueError: its origin is already in the group (or the URL is bad).
        """
        added = self._add(upstream if isinstance(upstream, Upstream) else Upstream(upstream))
        self._rebuild_ring()
        self._service()
        return added

    def remove(self, upstream: Upstream) -> None:
        """Take an upstream out of rotation. Requests in flight through it go on, and are
        released as usual; an ejection by this group ends.

        Raises:
            ValueError: it is not in the group.
        """
        if upstream not in self._upstreams:
            raise ValueError(f"upstream {upstream.name} is not in this group")
        self._upstreams.remove(upstream)
        upstream._groups = [group for group in upstream._groups if group is not self]
        self._rr_score.pop(upstream, None)
        timer = self._eject_timers.pop(upstream, None)
        if timer is not None:
            timer.delete()
            upstream._ejected = False
        self._rebuild_ring()
        if self._queue and not self._any_healthy():
            self._fail_queue(NO_HEALTHY)

    def _add(self, upstream: Upstream) -> Upstream:
        for known in self._upstreams:
            if known.origin == upstream.origin:
                raise ValueError(f"upstream {upstream.url!r} is listed twice")
        self._upstreams.append(upstream)
        for other in upstream._groups:
            other._shared = self._shared = True
        upstream._groups.append(self)
        self._rr_score[upstream] = 0
        return upstream

    def _rebuild_ring(self) -> None:
        if self.policy != "hash":
            return
        points: list[tuple[int, str, Upstream]] = []
        for upstream in self._upstreams:
            for i in range(self.vnodes * upstream.weight):
                label = f"{upstream.url}#{i}"
                points.append((_ring_hash(label.encode("ascii")), upstream.url, upstream))
        points.sort(key=lambda point: (point[0], point[1]))
        self._ring_points = [point[0] for point in points]
        self._ring_owners = [point[2] for point in points]

    # -- acquire / release ----------------------------------------------------------------------

    def acquire(self, px: BalanceRequest, ready: Ready) -> None:
        """Choose an upstream for the request ``px`` and call ``ready(upstream, None)``.

        ``ready`` is called now when an upstream is available, later (from the loop) when the
        request had to wait for a slot, and always exactly once. It is called
        ``ready(None, reason)`` when no upstream can be had: ``"no healthy upstream"``,
        ``"queue full"``, ``"queue timeout"``, or ``"closed"`` (``close()`` while waiting).
        Each ``ready(upstream, None)`` must be matched by one ``release(upstream, ok)``.
        """
        # (_pick, inlined for the usual policy)
        rr = self.policy == "round_robin"
        upstream = self._pick_round_robin() if rr else self._pick(px)
        if upstream is not None:
            upstream.active += 1
            ready(upstream, None)
            return
        if not self._any_healthy():
            ready(None, NO_HEALTHY)
            return
        if len(self._queue) >= self.queue_limit:
            ready(None, QUEUE_FULL)
            return
        waiter = _Waiter(px, ready)
        if self.queue_timeout is not None:
            waiter.timer = self.loop.schedule(self.queue_timeout, self._expire, waiter)
        self._queue.append(waiter)

    def cancel(self, px: BalanceRequest) -> bool:
        """Forget the queued request ``px`` (its client went away); its ``ready`` is not called.

        Returns:
            True when it was waiting, False otherwise (already served, or never queued).
        """
        for waiter in self._queue:
            if waiter.px is px:
                self._queue.remove(waiter)
                if waiter.timer is not None:
                    waiter.timer.delete()
                return True
        return False

    def release(self, upstream: Upstream, ok: bool = True) -> None:
        """Give back the slot of a request that ``acquire`` sent to ``upstream``.

        Args:
            upstream: the upstream ``ready`` was called with.
            ok: False when the request failed because of the upstream (connect error, timeout,
                bad response, 5xx if the proxy counts those): a consecutive failure, and at
                ``eject_after`` of them the upstream is ejected for ``eject_for`` seconds.

        Raises:
            RuntimeError: ``upstream`` has no request in flight (released twice).
        """
        if upstream.active <= 0:
            raise RuntimeError(f"release({upstream.name}) without a matching acquire")
        upstream.active -= 1
        if ok:
            if upstream.failures:
                upstream.failures = 0
        else:
            upstream.failures += 1
            if (
                self.eject_after
                and upstream.failures >= self.eject_after
                and not upstream._ejected
                and upstream in self._upstreams
                and not self._last_healthy(upstream)
            ):
                self._eject(upstream)
        if self._queue:
            self._service()
        groups = upstream._groups
        if len(groups) > 1:  # an upstream shared with other groups: theirs too
            for group in groups:
                if group is not self and group._queue:
                    group._service()

    @staticmethod
    def _last_healthy(upstream: Upstream) -> bool:
        """True when ejecting ``upstream`` would leave one of its groups without a healthy
        upstream (it is then kept: see the class docstring)."""
        for group in upstream._groups:
            if not any(other.healthy for other in group._upstreams if other is not upstream):
                return True
        return False

    def _any_healthy(self) -> bool:
        return any(upstream.healthy for upstream in self._upstreams)

    def _pick(self, px: BalanceRequest) -> Upstream | None:
        if self.policy == "round_robin":
            return self._pick_round_robin()
        if self.policy == "least_conn":
            return self._pick_least_conn()
        return self._pick_hash(self._key(px))

    def _pick_round_robin(self) -> Upstream | None:
        upstreams = self._upstreams
        if len(upstreams) == 1:  # nothing to rotate (its score would stay 0)
            upstream = upstreams[0]
            if (
                upstream._ejected
                or not upstream._check_ok
                or (upstream.max_conns is not None and upstream.active >= upstream.max_conns)
            ):
                return None
            return upstream
        scores = self._rr_score
        total = 0
        best: Upstream | None = None
        best_score = 0
        for upstream in upstreams:
            # (healthy and not full, inlined: this runs for every request)
            if (
                upstream._ejected
                or not upstream._check_ok
                or (upstream.max_conns is not None and upstream.active >= upstream.max_conns)
            ):
                continue
            score = scores[upstream] + upstream.weight
            scores[upstream] = score
            total += upstream.weight
            if best is None or score > best_score:
                best, best_score = upstream, score
        if best is not None:
            scores[best] = best_score - total
        return best

    def _pick_least_conn(self) -> Upstream | None:
        upstreams = self._upstreams
        count = len(upstreams)
        best: Upstream | None = None
        best_index = 0
        start = self._lc_next % count if count else 0
        for step in range(count):
            index = (start + step) % count
            upstream = upstreams[index]
            if not upstream.healthy or upstream.full:
                continue
            # fewer in flight per unit of weight; compared without division
            if best is None or upstream.active * best.weight < best.active * upstream.weight:
                best, best_index = upstream, index
        if best is not None:
            self._lc_next = best_index + 1
        return best

    def _key(self, px: BalanceRequest) -> bytes:
        header = self.hash_header
        if header is not None:
            values = [value.strip() for name, value in px.req_hdrs if name.lower() == header]
            if values:
                return b",".join(values)
        address = px.client_address
        return str(address[0] if address else "").encode("utf-8", "surrogateescape")

    def _pick_hash(self, key: bytes) -> Upstream | None:
        """The upstream owning ``key`` on the ring, else the next available one clockwise."""
        points = self._ring_points
        count = len(points)
        if not count:
            return None
        owners = self._ring_owners
        start = bisect_left(points, _ring_hash(key))
        tried: set[Upstream] = set()
        members = len(self._upstreams)
        for step in range(count):
            upstream = owners[(start + step) % count]
            if upstream in tried:
                continue
            if upstream.healthy and not upstream.full:
                return upstream
            tried.add(upstream)
            if len(tried) >= members:
                break
        return None

    def owner(self, px: BalanceRequest) -> Upstream | None:
        """For ``"hash"``: the upstream that owns ``px``'s key on the ring, whatever its state
        (None for other policies or an empty group). For tests and diagnostics."""
        if self.policy != "hash" or not self._ring_points:
            return None
        index = bisect_left(self._ring_points, _ring_hash(self._key(px)))
        return self._ring_owners[index % len(self._ring_owners)]

    # -- the queue ------------------------------------------------------------------------------

    def _service(self) -> None:
        """Serve waiting requests from the head for as long as an upstream is available."""
        queue = self._queue
        while queue:
            waiter = queue[0]
            upstream = self._pick(waiter.px)
            if upstream is None:
                if not self._any_healthy():
                    self._fail_queue(NO_HEALTHY)
                return
            queue.popleft()
            if waiter.timer is not None:
                waiter.timer.delete()
            upstream.active += 1
            self.loop.schedule(0, waiter.ready, upstream, None)

    def _expire(self, waiter: _Waiter) -> None:
        try:
            self._queue.remove(waiter)
        except ValueError:
            return
        waiter.ready(None, QUEUE_TIMEOUT)

    def _fail_queue(self, reason: str) -> None:
        waiting, self._queue = self._queue, deque()
        for waiter in waiting:
            if waiter.timer is not None:
                waiter.timer.delete()
            self.loop.schedule(0, waiter.ready, None, reason)

    # -- health ---------------------------------------------------------------------------------

    def _eject(self, upstream: Upstream) -> None:
        was_healthy = upstream.healthy
        upstream._ejected = True
        upstream.ejections += 1
        self._eject_timers[upstream] = self.loop.schedule(self.eject_for, self._readmit, upstream)
        self._changed(upstream, was_healthy)

    def _readmit(self, upstream: Upstream) -> None:
        self._eject_timers.pop(upstream, None)
        was_healthy = upstream.healthy
        upstream._ejected = False
        # on probation: one more failure ejects it again, a success clears the count
        upstream.failures = max(0, self.eject_after - 1)
        self._changed(upstream, was_healthy)

    def set_health(self, upstream: Upstream, healthy: bool) -> None:
        """Record an active health check's verdict on ``upstream`` (used by the checker; an
        application with its own checks may call it too)."""
        was_healthy = upstream.healthy
        upstream._check_ok = healthy
        self._changed(upstream, was_healthy)

    def _changed(self, upstream: Upstream, was_healthy: bool) -> None:
        if upstream.healthy == was_healthy:
            return
        groups = [self, *(group for group in upstream._groups if group is not self)]
        for group in groups:  # every group it is in sees the change
            group.emit("health", upstream, upstream.healthy)
            if upstream.healthy:
                group._service()
            elif group._queue and not group._any_healthy():
                group._fail_queue(NO_HEALTHY)

    def start_health_checks(
        self,
        client: HttpClient,
        path: bytes = b"/",
        interval: float = 5.0,
        timeout: float | None = None,
    ) -> None:
        """Check every upstream now and every ``interval`` seconds with ``GET <path>``.

        A check fails on an error, a 5xx status, or no response head within ``timeout``
        seconds (None: ``interval``); the upstream is then unhealthy until a check passes.
        Replaces checks already running. See ``thor.http.proxy._health``.

        Args:
            client: the HttpClient to send the checks with.
            path: the request target (bytes, starting with ``/``).
            interval: seconds between rounds (> 0).
            timeout: seconds a check may take (> 0, or None).

        Raises:
            ValueError: a bad path, interval or timeout.
        """
        from ._health import HealthChecker  # noqa: PLC0415 - _health imports this module

        checker = HealthChecker(self, client, path, interval, timeout)
        self.stop_health_checks()
        self._checker = checker
        checker.start()

    def stop_health_checks(self) -> None:
        """Stop active checks; upstreams they marked down count as healthy again."""
        checker, self._checker = self._checker, None
        if checker is not None:
            checker.stop()
            for upstream in self._upstreams:
                if not upstream._check_ok:
                    self.set_health(upstream, True)

    def close(self) -> None:
        """Stop health checks and ejection timers (ejected upstreams are readmitted, silently);
        waiting requests get ``"closed"``."""
        self.stop_health_checks()
        for upstream, timer in self._eject_timers.items():
            timer.delete()
            upstream._ejected = False
        self._eject_timers.clear()
        self._fail_queue(CLOSED)

    def __repr__(self) -> str:
        names = ", ".join(upstream.name for upstream in self._upstreams)
        return f"<UpstreamGroup {self.policy} [{names}] queued={len(self._queue)}>"
