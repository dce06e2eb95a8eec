"""Balancing behind the real ReverseProxy: thor HttpServer origins on 127.0.0.1, the proxy's own
HttpServer, and thor's HttpClient fetching through it. Round robin spreads the requests, a
refused upstream is ejected after its failure and the rest go elsewhere, a full upstream's
queue times out into 503 while the request holding it completes, and a Router picks the origin
by Host.

Delays only order events (loop timers fire by deadline); tests assert outcomes, never times.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import thor.loop
from thor.http.client import HttpClient
from thor.http.proxy import AccessRecord, ReverseProxy
from thor.http.proxy._balance import Upstream, UpstreamGroup
from thor.http.proxy._routing import Route, Router
from thor.http.server import HttpServer, HttpServerExchange
from thor.loop import LoopBase

RawHeaders = list[tuple[bytes, bytes]]


class Stage:
    """A fresh loop with origins, a proxy and a client; fails the test on the safety timer or
    an exception reported to the loop; closes everything afterwards."""

    def __init__(self) -> None:
        self.loop: LoopBase = thor.loop.make()
        self.errors: list[BaseException] = []
        self.loop.set_exception_handler(self._exception)
        self.servers: list[HttpServer] = []
        self.clients: list[HttpClient] = []
        self.responses: list[tuple[int, bytes]] = []
        self.records: list[AccessRecord] = []
        self.expected = 0
        self.chain: tuple[int, int] | None = None

    def _exception(self, loop: LoopBase, exc: BaseException, where: str) -> None:
        self.errors.append(exc)
        loop.stop()

    def origin(self, name: bytes, delay: float = 0.0) -> str:
        """An origin answering ``200`` with its name as the body (after ``delay`` seconds)."""
        server = HttpServer(b"127.0.0.1", 0, self.loop)
        self.servers.append(server)

        def on_exchange(exchange: HttpServerExchange) -> None:
            def answer() -> None:
                exchange.response_start(b"200", b"OK", [(b"Content-Length", b"%d" % len(name))])
                exchange.response_body(name)
                exchange.response_done([])

            def done(trailers: RawHeaders) -> None:
                if delay:
                    self.loop.schedule(delay, answer)
                else:
                    answer()

            exchange.on("request_done", done)

        server.on("exchange", on_exchange)
        return f"http://127.0.0.1:{server.port}"

    def proxy(self, upstream: Any) -> int:
        server = HttpServer(b"127.0.0.1", 0, self.loop)
        self.servers.append(server)
        proxy = ReverseProxy(server, upstream)
        proxy.on("access", self.records.append)
        self.clients.append(proxy.client)
        return server.port

    def fetch(self, port: int, path: bytes = b"/") -> None:
        """GET through the proxy; the response is recorded; the loop stops after the last."""
        client = HttpClient(self.loop)
        client.retry_limit = 0
        self.clients.append(client)
        exchange = client.exchange()
        status: list[int] = []
        body = bytearray()
        exchange.on("response_start", lambda s, p, h: status.append(int(s)))
        exchange.on("response_body", body.extend)
        exchange.on("response_done", lambda t: self._done(status[0], bytes(body)))
        exchange.on("error", lambda err: self._done(0, repr(err).encode()))
        self.expected += 1
        exchange.request_start(b"GET", b"http://127.0.0.1:%d%s" % (port, path), [])
        exchange.request_done([])

    def _done(self, status: int, body: bytes) -> None:
        self.responses.append((status, body))
        if self.chain is not None and len(self.responses) < self.chain[1]:
            self.fetch(self.chain[0])
        elif len(self.responses) == self.expected:
            self.loop.stop()

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

    def in_thread(self, work: Callable[[], Any]) -> Any:
        """Run the blocking ``work()`` in a thread while the loop runs; return its result."""
        result: list[Any] = []
        failure: list[BaseException] = []

        def worker() -> None:
            try:
                result.append(work())
            except BaseException as exc:
                failure.append(exc)
            finally:
                self.loop.run_in_loop(self.loop.stop)

        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        try:
            self.run()
        finally:
            thread.join(10)
        if failure:
            raise failure[0]
        return result[0]

    def sequentially(self, port: int, count: int) -> None:
        """``count`` requests, each sent when the previous one is answered; then stop."""
        self.chain = (port, count)
        self.fetch(port)
        self.run()

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for server in self.servers:
            server.remove_listeners()
            for tcp in list(server.tcp_server.active_connections):
                tcp.abort()
            server.shutdown()
        self.loop.close()


@pytest.fixture
def stage() -> Iterator[Stage]:
    made = Stage()
    try:
        yield made
    finally:
        made.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def bodies(stage: Stage) -> list[bytes]:
    return [body for _, body in stage.responses]


def test_round_robin_through_the_proxy(stage: Stage) -> None:
    origins = [stage.origin(b"a"), stage.origin(b"b"), stage.origin(b"c")]
    group = UpstreamGroup(origins, loop=stage.loop)
    port = stage.proxy(group)
    stage.sequentially(port, 6)
    assert [status for status, _ in stage.responses] == [200] * 6
    assert bodies(stage) == [b"a", b"b", b"c", b"a", b"b", b"c"]
    assert [up.active for up in group.upstreams] == [0, 0, 0]  # every request released
    assert [r.upstream for r in stage.records] == [up.name for up in group.upstreams] * 2


def test_a_refused_upstream_is_ejected_and_the_rest_go_elsewhere(stage: Stage) -> None:
    dead = Upstream(f"http://127.0.0.1:{closed_port()}")
    group = UpstreamGroup([dead, stage.origin(b"alive")], loop=stage.loop, eject_after=1)
    changes: list[tuple[str, bool]] = []
    group.on("health", lambda up, healthy: changes.append((up.name, healthy)))
    port = stage.proxy(group)
    stage.sequentially(port, 5)
    assert stage.responses[0][0] == 502  # the first went to the dead one
    assert stage.responses[1:] == [(200, b"alive")] * 4
    assert changes == [(dead.name, False)]
    assert dead.active == 0
    group.close()


def test_a_full_upstream_queues_and_times_out_into_503(stage: Stage) -> None:
    slow = Upstream(stage.origin(b"slow", delay=0.3), max_conns=1)
    group = UpstreamGroup([slow], loop=stage.loop, queue_timeout=0.05)
    port = stage.proxy(group)
    for _ in range(3):
        stage.fetch(port)
    stage.run()
    statuses = sorted(status for status, _ in stage.responses)
    assert statuses == [200, 503, 503]
    assert sorted(r.error or "" for r in stage.records) == ["", "queue timeout", "queue timeout"]
    assert slow.active == 0


def test_queued_requests_are_served_in_turn(stage: Stage) -> None:
    one = Upstream(stage.origin(b"one", delay=0.02), max_conns=1)
    group = UpstreamGroup([one], loop=stage.loop, queue_timeout=None)
    port = stage.proxy(group)
    for _ in range(4):
        stage.fetch(port)
    stage.run()
    assert stage.responses == [(200, b"one")] * 4
    assert one.active == 0
    assert group.queued == 0


def test_a_queued_request_whose_client_leaves_gives_its_turn_back(stage: Stage) -> None:
    """A request waiting in the queue (its client sent a head announcing a body) whose client
    disconnects is withdrawn from the queue: the upstream's slot is not handed to it and kept
    for good (every later request then waited for the queue timeout, 503)."""
    slow = Upstream(stage.origin(b"slow", delay=0.3), max_conns=1)
    group = UpstreamGroup([slow], loop=stage.loop, queue_timeout=1.0)
    port = stage.proxy(group)
    leaver = socket.create_connection(("127.0.0.1", port), timeout=5)
    queued: list[int] = []

    def leave_once_queued() -> None:
        if group.queued:
            queued.append(group.queued)
            leaver.close()
        else:
            stage.loop.schedule(0.005, leave_once_queued)

    def send_the_leavers_head() -> None:
        leaver.sendall(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        leave_once_queued()

    try:
        stage.chain = (port, 2)  # A, then C once A is answered
        stage.fetch(port)
        stage.loop.schedule(0.05, send_the_leavers_head)
        stage.run()
    finally:
        leaver.close()
    assert queued == [1]
    assert stage.responses == [(200, b"slow"), (200, b"slow")]
    assert (slow.active, group.queued) == (0, 0)
    group.close()


def test_a_router_picks_the_origin_by_host(stage: Stage) -> None:
    api = UpstreamGroup([stage.origin(b"api")], loop=stage.loop)
    web = UpstreamGroup([stage.origin(b"web")], loop=stage.loop)
    router = Router([Route(path_prefix=b"/", group=web), Route(host=b"api.test", group=api)])
    port = stage.proxy(router)

    def client() -> list[tuple[int, bytes]]:
        # thor's client always sends the URL's authority as Host: http.client here
        seen = []
        for host in ("API.test:8080", "www.test", "api.test", None):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", "/x", headers={"Host": host} if host else {})
                response = conn.getresponse()
                seen.append((response.status, response.read()))
            finally:
                conn.close()
        return seen

    assert stage.in_thread(client) == [(200, b"api"), (200, b"web"), (200, b"api"), (200, b"web")]
    assert [r.upstream for r in stage.records] == [
        api.upstreams[0].name,
        web.upstreams[0].name,
        api.upstreams[0].name,
        web.upstreams[0].name,
    ]


def test_a_failure_counts_against_the_group_that_lent_a_shared_upstream(stage: Stage) -> None:
    """One Upstream in two routed groups, a request of each in flight: the later request's
    failure is released to its own group (eject_after 1: ejected), not to the group that lent
    the same upstream first (eject_after 5), as it was when the router took the oldest
    lending."""
    server = HttpServer(b"127.0.0.1", 0, stage.loop)
    stage.servers.append(server)

    def on_exchange(exchange: HttpServerExchange) -> None:
        def done(trailers: RawHeaders) -> None:
            if exchange.uri == b"/two":
                exchange.http_conn.tcp_conn.abort()  # a failure of the upstream
                return

            def answer() -> None:
                exchange.response_start(b"200", b"OK", [(b"Content-Length", b"3")])
                exchange.response_body(b"one")
                exchange.response_done([])

            stage.loop.schedule(0.3, answer)

        exchange.on("request_done", done)

    server.on("exchange", on_exchange)
    shared = Upstream(f"http://127.0.0.1:{server.port}")
    # the spares keep each group from being left without a healthy upstream; round robin
    # tries the first listed first, so both requests go to the shared one
    first = UpstreamGroup(
        [shared, Upstream(f"http://127.0.0.1:{closed_port()}")], loop=stage.loop, eject_after=5
    )
    second = UpstreamGroup(
        [shared, Upstream(f"http://127.0.0.1:{closed_port()}")], loop=stage.loop, eject_after=1
    )
    router = Router([Route(path_prefix=b"/one", group=first), Route(group=second)])
    port = stage.proxy(router)
    stage.clients[-1].retry_limit = 0  # the proxy's client: /two fails while /one waits
    stage.fetch(port, b"/one")
    stage.loop.schedule(0.05, stage.fetch, port, b"/two")
    stage.run()
    assert sorted(status for status, _ in stage.responses) == [200, 502]
    assert (200, b"one") in stage.responses
    assert shared.ejected
    assert shared.active == 0
    router.close()
