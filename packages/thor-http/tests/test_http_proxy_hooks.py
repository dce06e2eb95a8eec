"""ReverseProxy hooks and upstream selection: answer_locally (deny, cache), rewrite_request,
rewrite_response, streaming body transforms both ways, a hook that raises (500 and 'error'),
UpstreamGroup balancing with max_conns queueing (acquire answering later, the request body
held meanwhile) and release once per request."""

from __future__ import annotations

import http.client
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import http_server_support as support
import proxy_support as ps

from thor.http.proxy import AccessRecord, ProxyExchange, ReverseProxy, Upstream, UpstreamGroup

if TYPE_CHECKING:
    from proxy_support import Harness, RawHeaders

    from thor.http.server import HttpServerExchange

harness = ps.harness


class LocalProxy(ReverseProxy):
    """Denies /admin, and answers repeated GETs of /cached from its own copy."""

    def answer_locally(self, px: ProxyExchange) -> bool:
        if px.target.startswith(b"/admin"):
            px.respond(403, None, [(b"Content-Type", b"text/plain")], b"denied\n")
            return True
        if px.method == b"GET" and px.target in self.cache:
            px.respond(200, b"OK", [(b"X-Cache", b"hit")], self.cache[px.target])
            return True
        return False

    def rewrite_response(
        self, px: ProxyExchange, status: bytes, phrase: bytes, headers: RawHeaders
    ) -> RawHeaders:
        if px.method == b"GET" and px.target == b"/cached":
            px.data["keep"] = True
        return [*headers, (b"X-Cache", b"miss")]

    def transform_response_body(self, px: ProxyExchange, chunk: bytes) -> bytes:
        if px._data and px.data.get("keep"):
            self.cache[px.target] = self.cache.get(px.target, b"") + chunk
        return chunk

    cache: ClassVar[dict[bytes, bytes]] = {}


def test_answer_locally_denies_and_serves_from_cache(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    LocalProxy.cache = {}
    front, proxy = ps.make_proxy(harness, ps.origin_url(origin), cls=LocalProxy)
    records: list[AccessRecord] = []
    proxy.on("access", records.append)

    def client() -> list[tuple[int, str, bytes]]:
        conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=5)
        out = []
        try:
            for path in ("/admin/x", "/cached", "/cached"):
                conn.request("GET", path)
                response = conn.getresponse()
                out.append((response.status, response.getheader("X-Cache", ""), response.read()))
        finally:
            conn.close()
        return out

    denied, miss, hit = harness.client(client)
    assert denied[:2] == (403, "") and denied[2] == b"denied\n"
    assert miss[:2] == (200, "miss")
    assert hit == (200, "hit", miss[2])
    assert [r["uri"] for r in seen.requests] == [b"/cached"]
    assert [r.status for r in records] == [403, 200, 200]
    assert [r.upstream for r in records] == [None, f"127.0.0.1:{origin.port}", None]


class RewritingProxy(ReverseProxy):
    """Adds a request field, moves the target under /v2, and hides a response field."""

    def rewrite_request(self, px: ProxyExchange) -> None:
        px.req_hdrs.append((b"X-Request-Id", b"42"))
        px.target = b"/v2" + px.target

    def rewrite_response(
        self, px: ProxyExchange, status: bytes, phrase: bytes, headers: RawHeaders
    ) -> RawHeaders:
        return [(n, v) for n, v in headers if n.lower() != b"x-origin"] + [(b"X-Proxy", b"1")]


def test_rewrite_request_and_response(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin), cls=RewritingProxy)

    def client() -> list[support.Response]:
        out = []
        for _ in range(2):  # the same head twice: the hook's change is not remembered
            sock = ps.raw_request(harness, front, b"GET /items HTTP/1.1\r\nHost: h\r\n\r\n")
            out.append(support.ResponseReader(sock).read())
        return out

    for response in harness.client(client):
        assert response.header(b"x-proxy") == [b"1"] and not response.header(b"x-origin")
    for request in seen.requests:
        assert request["uri"] == b"/v2/items"
        assert ps.field(request["headers"], b"x-request-id") == [b"42"]
    assert len(seen.requests) == 2


class UpperProxy(ReverseProxy):
    """Upper-cases bodies both ways, streaming; holds back an odd trailing byte to show that
    a transform may keep bytes until the end (flushed by the b"" call)."""

    def transform_request_body(self, px: ProxyExchange, chunk: bytes) -> bytes:
        return chunk.upper()

    def transform_response_body(self, px: ProxyExchange, chunk: bytes) -> bytes:
        held = px.data.get("held", b"") + chunk
        if chunk and len(held) % 2:
            px.data["held"] = held[-1:]
            return held[:-1].upper()
        px.data["held"] = b""
        return held.upper()


def test_streaming_transforms_rechunk_both_ways(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(support.echo_handler)
    origin.on("exchange", lambda ex: seen.requests.append({"headers": ex.req_hdrs}))
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin), cls=UpperProxy)

    def client() -> support.Response:
        sock = ps.raw_request(
            harness,
            front,
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world",
        )
        return support.ResponseReader(sock).read()

    response = harness.client(client)
    assert response.body == b"HELLO WORLD"
    assert response.header(b"transfer-encoding") == [b"chunked"]
    assert not response.header(b"content-length")
    sent = seen.requests[0]["headers"]
    assert ps.field(sent, b"transfer-encoding") == [b"chunked"]
    assert not ps.field(sent, b"content-length")


class BrokenProxy(ReverseProxy):
    def rewrite_request(self, px: ProxyExchange) -> None:
        if px.target == b"/boom":
            raise RuntimeError("hook failed")

    def rewrite_response(
        self, px: ProxyExchange, status: bytes, phrase: bytes, headers: RawHeaders
    ) -> RawHeaders:
        if px.target == b"/late":
            raise RuntimeError("late hook failed")
        return headers


def test_a_hook_that_raises_is_contained(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, proxy = ps.make_proxy(harness, ps.origin_url(origin), cls=BrokenProxy)
    errors: list[Exception] = []
    proxy.on("error", errors.append)

    def client() -> list[bytes]:
        out = []
        for path in (b"/boom", b"/late", b"/fine"):
            sock = ps.raw_request(harness, front, b"GET " + path + b" HTTP/1.1\r\nHost: h\r\n\r\n")
            out.append(support.ResponseReader(sock).read().status)
        return out

    assert harness.client(client) == [b"500", b"500", b"200"]
    assert [str(e) for e in errors] == ["hook failed", "late hook failed"]


def test_upstream_group_balances_and_queues(harness: Harness) -> None:
    seens = [ps.Seen(), ps.Seen()]
    held: list[Callable[[], None]] = []
    busy = [0, 0]
    peak = [0, 0]

    def holding(index: int) -> Callable[[HttpServerExchange], None]:
        # The first two requests are answered only once both origins hold one, so neither
        # upstream frees its slot before the other is busy: round robin then splits 2 + 2.
        def handler(exchange: HttpServerExchange) -> None:
            body = bytearray()
            busy[index] += 1
            peak[index] = max(peak[index], busy[index])

            def answer() -> None:
                seens[index].requests.append({"body": body})
                busy[index] -= 1
                exchange.response_start(b"200", b"OK", [])
                exchange.response_done([])

            def done(_trailers: Any) -> None:
                if len(held) >= 2:
                    answer()
                    return
                held.append(answer)
                if len(held) == 2:
                    for release in held:
                        release()

            exchange.on("request_body", body.extend)
            exchange.on("request_done", done)

        return handler

    origins = [harness.server(holding(index)) for index in range(2)]
    upstreams = [Upstream(ps.origin_url(origin), max_conns=1) for origin in origins]
    group = UpstreamGroup(upstreams, "round_robin", loop=harness.loop)
    released: list[tuple[Any, bool]] = []
    real_release = group.release

    def release(upstream: Any, ok: bool = True) -> None:
        released.append((upstream, ok))
        real_release(upstream, ok)

    group.release = release  # type: ignore[method-assign]
    front, _proxy = ps.make_proxy(harness, group)

    def client() -> list[int]:
        # four requests at once on four connections: two wait in the group's queue
        socks = [
            ps.raw_request(
                harness,
                front,
                b"POST /%d HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello" % index,
            )
            for index in range(4)
        ]
        return [int(support.ResponseReader(sock).read().status) for sock in socks]

    assert harness.client(client) == [200] * 4
    counts = [len(seen.requests) for seen in seens]
    assert counts == [2, 2]
    assert peak == [1, 1]  # max_conns=1: the other two requests waited in the group's queue
    assert all(bytes(r["body"]) == b"hello" for seen in seens for r in seen.requests)
    assert len(released) == 4 and all(ok for _, ok in released)
    assert all(up.active == 0 for up in upstreams)


def test_failed_upstream_is_released_as_a_failure(harness: Harness) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = sock.getsockname()[1]
    sock.close()
    group = UpstreamGroup([f"http://127.0.0.1:{dead}"], loop=harness.loop, eject_after=1)
    front, proxy = ps.make_proxy(harness, group)
    proxy.client.connect_attempts = 1
    health: list[bool] = []
    group.on("health", lambda upstream, healthy: health.append(healthy))

    def client() -> list[bytes]:
        out = []
        for _ in range(2):
            conn = ps.raw_request(harness, front, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            out.append(support.ResponseReader(conn).read().status)
        return out

    assert harness.client(client) == [b"502", b"502"]
    # both released as failures; a group's only upstream is not ejected: it is tried again
    assert group.upstreams[0].failures == 2
    assert health == []


class InjectingProxy(ReverseProxy):
    """Hooks that try to put CR LF into fields: the serialisers refuse, the proxy answers 502."""

    def rewrite_request(self, px: ProxyExchange) -> None:
        if px.target == b"/in":
            px.req_hdrs.append((b"X-Evil", b"a\r\nInjected: 1"))

    def rewrite_response(
        self, px: ProxyExchange, status: bytes, phrase: bytes, headers: RawHeaders
    ) -> RawHeaders:
        if px.target == b"/out":
            return [*headers, (b"X-Evil", b"a\r\n\r\nHTTP/1.1 200 OK")]
        return headers


def test_cr_lf_from_hooks_is_never_forwarded(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin), cls=InjectingProxy)

    def client() -> list[bytes]:
        out = []
        for path in (b"/in", b"/out"):
            sock = ps.raw_request(harness, front, b"GET " + path + b" HTTP/1.1\r\nHost: h\r\n\r\n")
            out.append(support.recv_until_close(sock))
        return out

    request_side, response_side = harness.client(client)
    for data in (request_side, response_side):
        assert data.startswith(b"HTTP/1.1 502 ")
        assert b"Injected" not in data and data.count(b"HTTP/1.1") == 1
    assert [r["uri"] for r in seen.requests] == [b"/out"]
    assert not any(n.lower() == b"injected" for r in seen.requests for n, _ in r["headers"])
