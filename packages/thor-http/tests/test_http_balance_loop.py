"""UpstreamGroup driven by a real thor loop: the queue timeout, ejection expiry (probation after
readmission, the queue served when an upstream comes back), and active health checks sent with
thor's HttpClient to real thor HttpServer origins on 127.0.0.1 (passing, 5xx, refused, silent).

Delays are small and only order events (loop timers fire by deadline); tests assert outcomes,
never elapsed times. Every run has a safety timer that fails the test, and an exception reaching
the loop's exception handler fails it too.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import thor.loop
from thor.http.client import HttpClient
from thor.http.proxy._balance import Upstream, UpstreamGroup
from thor.http.server import HttpServer, HttpServerExchange
from thor.loop import LoopBase

RawHeaders = list[tuple[bytes, bytes]]


@dataclass
class Req:
    """Stands in for a ProxyExchange: what a group reads."""

    client_address: tuple[str, int] = ("127.0.0.1", 40000)
    req_hdrs: RawHeaders = field(default_factory=list)


class Runner:
    """A fresh loop, run until something stops it, failing the test on the safety timer or on
    an exception reported to the loop."""

    def __init__(self) -> None:
        self.loop: LoopBase = thor.loop.make()
        self.errors: list[BaseException] = []
        self.loop.set_exception_handler(self._exception)
        self.cleanups: list[Callable[[], object]] = []

    def _exception(self, loop: LoopBase, exc: BaseException, where: str) -> None:
        self.errors.append(exc)
        loop.stop()

    def run(self, timeout: float = 10.0) -> None:
        expired: list[bool] = []

        def expire() -> None:
            expired.append(True)
            self.loop.stop()

        safety = self.loop.schedule(timeout, expire)
        self.loop.run()
        safety.delete()
        if self.errors:
            raise self.errors[0]
        if expired:
            pytest.fail(f"safety timer fired after {timeout} s", pytrace=False)

    def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            cleanup()
        self.loop.close()


@pytest.fixture
def runner() -> Iterator[Runner]:
    made = Runner()
    try:
        yield made
    finally:
        made.close()


class Grants:
    """Records every ready() call; optionally stops the loop after ``stop_after`` calls."""

    def __init__(self, loop: LoopBase | None = None, stop_after: int = 0) -> None:
        self.calls: list[tuple[Upstream | None, str | None]] = []
        self.loop = loop
        self.stop_after = stop_after

    def __call__(self, upstream: Upstream | None, reason: str | None) -> None:
        self.calls.append((upstream, reason))
        if self.loop is not None and len(self.calls) == self.stop_after:
            self.loop.stop()


# -- queue timeout --------------------------------------------------------------------------------


def test_queue_timeout_fails_the_waiting_request(runner: Runner) -> None:
    up = Upstream("http://127.0.0.1:1", max_conns=1)
    group = UpstreamGroup([up], loop=runner.loop, queue_timeout=0.05)
    held = Grants()
    group.acquire(Req(), held)
    waiting = Grants(runner.loop, stop_after=1)
    group.acquire(Req(), waiting)
    assert waiting.calls == []
    assert group.queued == 1
    runner.run()
    assert waiting.calls == [(None, "queue timeout")]
    assert group.queued == 0
    assert up.active == 1  # only the held request
    group.release(up)
    assert up.active == 0  # the slot did not go to the request that timed out


def test_a_request_served_in_time_does_not_time_out(runner: Runner) -> None:
    up = Upstream("http://127.0.0.1:1", max_conns=1)
    group = UpstreamGroup([up], loop=runner.loop, queue_timeout=0.1)
    group.acquire(Req(), Grants())
    late = Grants()
    group.acquire(Req(), late)
    group.acquire(Req(), late)
    runner.loop.schedule(0.01, group.release, up)  # the first waiting one gets it
    runner.loop.schedule(0.3, runner.loop.stop)  # well after its queue timeout
    runner.run()
    assert late.calls == [(up, None), (None, "queue timeout")]
    assert up.active == 1


# -- ejection expiry ------------------------------------------------------------------------------


def test_an_ejected_upstream_is_tried_again_after_eject_for(runner: Runner) -> None:
    a, b = Upstream("http://127.0.0.1:1"), Upstream("http://127.0.0.1:2")
    group = UpstreamGroup([a, b], "least_conn", loop=runner.loop, eject_after=2, eject_for=0.05)
    changes: list[tuple[str, bool]] = []
    picked_while_out: list[str] = []

    def on_health(upstream: Upstream, healthy: bool) -> None:
        changes.append((upstream.name, healthy))
        if not healthy:
            for _ in range(4):
                grants = Grants()
                group.acquire(Req(), grants)
                chosen, reason = grants.calls[0]
                picked_while_out.append(chosen.name if chosen else str(reason))
                if chosen is not None:
                    group.release(chosen)
        else:
            runner.loop.stop()

    group.on("health", on_health)
    for _ in range(2):
        a.active += 1  # as if acquired
        group.release(a, ok=False)
    assert a.ejected
    runner.run()
    assert changes == [(a.name, False), (a.name, True)]
    assert picked_while_out == [b.name] * 4
    assert a.healthy
    # readmitted on probation: a single failure ejects it again
    assert a.failures == 1
    a.active += 1
    group.release(a, ok=False)
    assert a.ejected
    assert a.ejections == 2
    runner.run()
    assert changes[-1] == (a.name, True)
    a.active += 1
    group.release(a, ok=True)  # a success clears the count
    assert a.failures == 0
    group.close()


def test_a_readmitted_upstream_serves_the_queue(runner: Runner) -> None:
    a = Upstream("http://127.0.0.1:1", max_conns=1)
    b = Upstream("http://127.0.0.1:2")
    group = UpstreamGroup([a, b], loop=runner.loop, eject_after=1, eject_for=0.05)
    b.active += 1
    group.release(b, ok=False)  # b is out
    group.acquire(Req(), Grants())  # a is full
    waiting = Grants(runner.loop, stop_after=1)
    group.acquire(Req(), waiting)
    assert group.queued == 1
    runner.run()
    assert waiting.calls == [(b, None)]
    assert b.active == 1
    group.close()


# -- active health checks -------------------------------------------------------------------------


class Origin:
    """A thor HttpServer on 127.0.0.1 answering every request with ``status`` (None: never)."""

    def __init__(self, loop: LoopBase, status: bytes | None = b"200") -> None:
        self.status = status
        self.requests: list[tuple[bytes, bytes, RawHeaders]] = []
        self.server = HttpServer(b"127.0.0.1", 0, loop)
        self.server.on("exchange", self.on_exchange)
        self.url = f"http://127.0.0.1:{self.server.port}"

    def on_exchange(self, exchange: HttpServerExchange) -> None:
        def start(method: bytes, uri: bytes, headers: RawHeaders) -> None:
            self.requests.append((method, uri, headers))

        def done(trailers: RawHeaders) -> None:
            if self.status is not None:
                body = b"status " + self.status
                length = str(len(body)).encode()
                exchange.response_start(self.status, b"Test", [(b"Content-Length", length)])
                exchange.response_body(body)
                exchange.response_done([])

        exchange.on("request_start", start)
        exchange.on("request_done", done)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def make_client(runner: Runner) -> HttpClient:
    client = HttpClient(runner.loop)
    client.connect_attempts = 1
    client.retry_limit = 0
    client.connect_timeout = 2
    runner.cleanups.append(client.close)
    return client


def serve(runner: Runner, status: bytes | None) -> Origin:
    origin = Origin(runner.loop, status)

    def close() -> None:
        server = origin.server
        server.remove_listeners()
        for tcp in list(server.tcp_server.active_connections):
            tcp.abort()
        server.shutdown()

    runner.cleanups.append(close)
    return origin


def test_health_checks_mark_failing_upstreams_down_and_back_up(runner: Runner) -> None:
    good, bad = serve(runner, b"200"), serve(runner, b"503")
    dead = Upstream(f"http://127.0.0.1:{closed_port()}")
    group = UpstreamGroup([good.url, bad.url, dead], loop=runner.loop)
    up_good, up_bad, _ = group.upstreams
    changes: list[tuple[str, bool]] = []
    picked_while_down: list[str] = []

    def on_health(upstream: Upstream, healthy: bool) -> None:
        changes.append((upstream.name, healthy))
        if not up_bad.healthy and not dead.healthy and bad.status == b"503":
            for _ in range(3):
                grants = Grants()
                group.acquire(Req(), grants)
                chosen, reason = grants.calls[0]
                picked_while_down.append(chosen.name if chosen else str(reason))
                if chosen is not None:
                    group.release(chosen)
            bad.status = b"204"  # it recovers
        if upstream is up_bad and healthy:
            runner.loop.stop()

    group.on("health", on_health)
    group.start_health_checks(make_client(runner), b"/healthz?deep=1", interval=0.05)
    runner.run()
    assert (up_bad.name, False) in changes
    assert (dead.name, False) in changes
    assert changes[-1] == (up_bad.name, True)
    assert all(name != up_good.name for name, _ in changes)
    assert picked_while_down == [up_good.name] * 3
    assert [up.healthy for up in group.upstreams] == [True, True, False]
    method, uri, headers = good.requests[0]
    assert (method, uri) == (b"GET", b"/healthz?deep=1")
    assert (b"user-agent", b"thor-health-check") in [(n.lower(), v.strip()) for n, v in headers]
    group.stop_health_checks()
    assert dead.healthy  # without checks, nothing would ever bring it back
    assert changes[-1] == (dead.name, True)


def test_a_silent_upstream_fails_its_check_on_timeout(runner: Runner) -> None:
    silent = serve(runner, None)
    group = UpstreamGroup([silent.url], loop=runner.loop)
    changes: list[tuple[str, bool]] = []

    def on_health(upstream: Upstream, healthy: bool) -> None:
        changes.append((upstream.name, healthy))
        runner.loop.stop()

    group.on("health", on_health)
    group.start_health_checks(make_client(runner), b"/", interval=1.0, timeout=0.05)
    runner.run()
    assert changes == [(group.upstreams[0].name, False)]
    assert len(silent.requests) == 1
    grants = Grants()
    group.acquire(Req(), grants)
    assert grants.calls == [(None, "no healthy upstream")]
    group.close()
    assert group.upstreams[0].healthy


def test_checks_of_a_silent_upstream_do_not_pile_up(runner: Runner) -> None:
    """A check that times out is cancelled (its connection closed): an upstream that accepts
    and never answers holds one check's connection at a time, round after round, instead of
    one more each round until the client's pool for it is full (then the checks queued)."""
    silent = serve(runner, None)
    group = UpstreamGroup([silent.url], loop=runner.loop)
    client = make_client(runner)
    group.start_health_checks(client, b"/", interval=0.03, timeout=0.02)
    open_at_once: list[int] = []  # the client's connections (the server lingers on its side)

    def sample() -> None:
        open_at_once.append(sum(len(pool.conns) for pool in client._origins.values()))
        if len(open_at_once) < 40:
            runner.loop.schedule(0.01, sample)
        else:
            runner.loop.stop()

    sample()
    runner.run()
    group.close()
    assert max(open_at_once) <= 2, open_at_once
    assert len(silent.requests) > client.max_server_conn  # every round sent its check


def test_health_checks_restore_an_upstream_and_serve_the_queue(runner: Runner) -> None:
    origin = serve(runner, b"500")
    other = Upstream(serve(runner, b"200").url, max_conns=1)
    group = UpstreamGroup([origin.url, other], loop=runner.loop)
    checked = group.upstreams[0]
    waiting = Grants(runner.loop, stop_after=1)

    def on_health(upstream: Upstream, healthy: bool) -> None:
        if not healthy:
            group.acquire(Req(), Grants())  # takes `other`, the only one left
            group.acquire(Req(), waiting)  # waits
            origin.status = b"200"

    group.on("health", on_health)
    group.start_health_checks(make_client(runner), b"/", interval=0.05)
    runner.run()
    assert waiting.calls == [(checked, None)]
    assert other.active == 1
    group.stop_health_checks()


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"path": b"health"}, "b'health'"),
        ({"path": "/health"}, "'/health'"),
        ({"path": b"/a b"}, "b'/a b'"),
        ({"interval": 0}, "interval.*0"),
        ({"interval": -1.0}, "interval.*-1.0"),
        ({"timeout": 0}, "timeout.*0"),
    ],
)
def test_health_check_settings_are_validated(
    runner: Runner, kwargs: dict[str, Any], named: str
) -> None:
    group = UpstreamGroup(["http://127.0.0.1:1"], loop=runner.loop)
    with pytest.raises(ValueError, match=named):
        group.start_health_checks(make_client(runner), **kwargs)
    assert group.upstreams[0].healthy
