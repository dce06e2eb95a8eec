"""Message shapes through the ReverseProxy: Expect: 100-continue, HEAD with a Content-Length,
204 and 304, pipelined requests answered in order, a client that goes away in the middle of a
large response (the upstream connection is dropped, the record says why), and a selector that
answers later while the request body waits."""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING, Any

import http_server_support as support
import proxy_support as ps
import pytest

from thor.http.proxy import AccessRecord, ProxyExchange, StaticUpstream
from thor.http.proxy import _base as proxy_base

if TYPE_CHECKING:
    from proxy_support import Harness, RawHeaders

    from thor.http.server import HttpServerExchange

harness = ps.harness


def test_expect_100_continue(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin))

    def client() -> tuple[bytes, support.Response]:
        sock = ps.raw_request(
            harness,
            front,
            b"PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
        )
        reader = support.ResponseReader(sock)
        interim = reader.read()
        sock.sendall(b"data")
        return interim.status, reader.read()

    interim, final = harness.client(client)
    assert interim == b"100"
    assert final.status == b"200"
    assert bytes(seen.requests[0]["body"]) == b"data"
    assert not ps.field(seen.requests[0]["headers"], b"expect")


def status_handler(exchange: HttpServerExchange) -> None:
    """Answers /204 with 204, /304 with 304 (and a Content-Length describing the
    representation), anything else with 200 and 5 bytes."""

    def done(trailers: RawHeaders) -> None:
        if exchange.uri == b"/204":
            exchange.response_start(b"204", b"No Content", [])
        elif exchange.uri == b"/304":
            exchange.response_start(b"304", b"Not Modified", [(b"Content-Length", b"99")])
        else:
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"5")])
            exchange.response_body(b"12345")
        exchange.response_done([])

    exchange.on("request_done", done)


def test_head_204_304_and_pipelining(harness: Harness) -> None:
    origin = harness.server(status_handler)
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin))

    def client() -> list[support.Response]:
        sock = ps.raw_request(
            harness,
            front,
            b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n"
            b"GET /204 HTTP/1.1\r\nHost: h\r\n\r\n"
            b"GET /304 HTTP/1.1\r\nHost: h\r\n\r\n"
            b"GET /last HTTP/1.1\r\nHost: h\r\n\r\n",
        )
        reader = support.ResponseReader(sock)
        return [reader.read(b"HEAD"), reader.read(), reader.read(), reader.read()]

    head, no_content, not_modified, last = harness.client(client)
    assert head.status == b"200" and head.header(b"content-length") == [b"5"]
    assert head.body == b""
    assert no_content.status == b"204" and not no_content.header(b"content-length")
    assert not_modified.status == b"304" and not_modified.header(b"content-length") == [b"99"]
    assert last.status == b"200" and last.body == b"12345"


@pytest.mark.parametrize(("limit", "most"), [(1, 1), (2, 2), (None, 5)])
def test_pipelined_requests_are_forwarded_as_far_as_max_forwarded_per_connection(
    harness: Harness, limit: int | None, most: int
) -> None:
    """Five pipelined GETs to an origin that answers each after a delay: at most
    ``max_forwarded_per_connection`` are upstream at once (1 by default; before, all of them,
    so a few connections pipelining requests they never read took every upstream
    connection); the responses come back in order either way."""
    in_flight: list[int] = [0]
    peak: list[int] = [0]

    def slow_origin(exchange: HttpServerExchange) -> None:
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])

        def answer() -> None:
            in_flight[0] -= 1
            body = exchange.uri
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"%d" % len(body))])
            exchange.response_body(body)
            exchange.response_done([])

        exchange.on("request_done", lambda trailers: harness.later(0.05, answer))

    origin = harness.server(slow_origin)
    front, proxy = ps.make_proxy(harness, ps.origin_url(origin))
    proxy.max_forwarded_per_connection = limit

    def client() -> list[bytes]:
        sock = ps.raw_request(
            harness, front, b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % n for n in range(5))
        )
        reader = support.ResponseReader(sock)
        return [reader.read().body for _ in range(5)]

    assert harness.client(client) == [b"/%d" % n for n in range(5)]
    assert peak[0] == most


def test_pipelined_requests_waiting_their_turn_are_dropped_when_the_client_leaves(
    harness: Harness,
) -> None:
    """Three pipelined GETs, the first answered slowly; the client resets meanwhile. The two
    waiting for their turn (``max_forwarded_per_connection``) never reach the origin."""
    seen: list[bytes] = []

    def slow_origin(exchange: HttpServerExchange) -> None:
        seen.append(exchange.uri)

        def answer() -> None:
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"2")])
            exchange.response_body(b"ok")
            exchange.response_done([])

        exchange.on("request_done", lambda trailers: harness.later(0.3, answer))

    origin = harness.server(slow_origin)
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin))

    def client() -> None:
        sock = ps.raw_request(
            harness, front, b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % n for n in range(3))
        )
        threading.Event().wait(0.1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # a reset: the client is gone

    harness.client(client, settle=0.6)
    assert seen == [b"/0"]


def test_client_leaving_mid_response_drops_the_upstream(harness: Harness) -> None:
    origin = harness.server(ps.streaming_handler(64 * 1024 * 1024))
    front, proxy = ps.make_proxy(harness, ps.origin_url(origin))
    records: list[AccessRecord] = []
    proxy.on("access", records.append)

    def stop_when_recorded(record: AccessRecord) -> None:
        harness.later(0.2, harness.loop.stop)

    proxy.on("access", stop_when_recorded)

    def client() -> None:
        sock = ps.raw_request(harness, front, b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
        sock.recv(65536)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # a reset: the proxy learns at once

    harness.client(client, settle=30)
    assert len(records) == 1
    assert records[0].status == 200 and records[0].error is not None
    assert records[0].error.startswith("client")
    assert records[0].bytes_out < 64 * 1024 * 1024
    assert not proxy.client.conn_counts  # the upstream connection was not kept
    assert not [c for c in origin.connections if c.tcp_conn is not None and not c.idle]


class LaterSelector:
    """A selector that answers on a later loop turn (as a balancer's queue would)."""

    def __init__(self, harness: Harness, url: str) -> None:
        self.harness = harness
        self.upstream = StaticUpstream(url)
        self.released: list[bool] = []

    def acquire(self, px: ProxyExchange, ready: Any) -> None:
        self.harness.later(0.05, ready, self.upstream, None)

    def release(self, upstream: Any, ok: bool) -> None:
        self.released.append(ok)


def test_selector_answering_later_with_a_body_waiting(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    selector = LaterSelector(harness, ps.origin_url(origin))
    front, _proxy = ps.make_proxy(harness, selector)

    def client() -> list[bytes]:
        sock = ps.raw_request(
            harness,
            front,
            b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
        )
        reader = support.ResponseReader(sock)
        return [reader.read().status, reader.read().status]

    assert harness.client(client) == [b"200", b"200"]
    assert [bytes(r["body"]) for r in seen.requests] == [b"hello world", b"abc"]
    assert selector.released == [True, True]


def test_no_upstream_from_a_selector_is_503_for_queues(harness: Harness) -> None:
    class Refusing:
        def acquire(self, px: ProxyExchange, ready: Any) -> None:
            ready(None, "queue full")

        def release(self, upstream: Any, ok: bool) -> None:
            raise AssertionError("never acquired")

    front, proxy = ps.make_proxy(harness, Refusing())
    records: list[AccessRecord] = []
    proxy.on("access", records.append)

    def client() -> bytes:
        sock = ps.raw_request(harness, front, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        return support.ResponseReader(sock).read().status

    assert harness.client(client) == b"503"
    assert records[0].error == "queue full"


def test_set_upstream_switches_new_requests(harness: Harness) -> None:
    seens = [ps.Seen(), ps.Seen()]
    origins = [harness.server(ps.inspecting_handler(seen)) for seen in seens]
    front, proxy = ps.make_proxy(harness, ps.origin_url(origins[0]))

    def client() -> list[bytes]:
        out = []
        sock = ps.raw_request(harness, front, b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
        reader = support.ResponseReader(sock)
        out.append(reader.read().status)
        switched = threading.Event()

        def switch() -> None:
            proxy.set_upstream(ps.origin_url(origins[1]))
            switched.set()

        # (the loop may see the next request before a run_in_loop call: wait for the switch)
        harness.loop.run_in_loop(switch)
        assert switched.wait(5)
        sock.sendall(b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
        out.append(reader.read().status)
        closed = threading.Event()

        def close() -> None:
            proxy.close()
            closed.set()

        harness.loop.run_in_loop(close)
        assert closed.wait(5)
        sock.sendall(b"GET /3 HTTP/1.1\r\nHost: h\r\n\r\n")
        out.append(reader.rest(0.5))  # nobody answers it any more
        return out

    assert harness.client(client) == [b"200", b"200", b""]
    assert [r["uri"] for r in seens[0].requests] == [b"/1"]
    assert [r["uri"] for r in seens[1].requests] == [b"/2"]


def test_heads_that_never_repeat_are_forwarded_right_past_the_fields_cache(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a small cache, so that a few requests fill it with misses and then bypass it
    monkeypatch.setattr(proxy_base, "_FIELDS_MAX", 3)
    monkeypatch.setattr(proxy_base, "_FIELDS_PAUSE", 4)
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin))
    ids = [b"%d" % i for i in range(12)] + [b"same"] * 4

    def client() -> list[support.Response]:
        heads = b"".join(
            b"GET /r HTTP/1.1\r\nHost: h\r\nX-Request-Id: " + rid + b"\r\nConnection: x-a\r\n"
            b"X-A: hop\r\n\r\n"
            for rid in ids
        )
        reader = support.ResponseReader(ps.raw_request(harness, front, heads))
        return [reader.read() for _ in ids]

    responses = harness.client(client)
    assert [r.status for r in responses] == [b"200"] * len(ids)
    assert len(seen.requests) == len(ids)
    for rid, request in zip(ids, seen.requests, strict=True):
        headers = request["headers"]
        assert ps.field(headers, b"x-request-id") == [rid]
        assert ps.field(headers, b"x-a") == []  # named by Connection: not forwarded
        assert ps.field(headers, b"x-forwarded-for") == [b"127.0.0.1"], (rid, headers)
        assert ps.field(headers, b"via") == [b"1.1 thor"]


def test_only_small_heads_are_kept_in_the_fields_cache(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, proxy = ps.make_proxy(harness, ps.origin_url(origin))
    small = b"GET /s HTTP/1.1\r\nHost: h\r\nX-Small: 1\r\n\r\n"
    large = b"GET /l HTTP/1.1\r\nHost: h\r\nX-Large: " + b"x" * 8000 + b"\r\n\r\n"

    def client() -> list[bytes]:
        reader = support.ResponseReader(ps.raw_request(harness, front, small + large + large))
        return [reader.read().status for _ in range(3)]

    assert harness.client(client) == [b"200"] * 3
    kept = [[name for name, _value in key[0]] for key in proxy._fields]
    assert kept == [[b"Host", b"X-Small"]]  # the large head is not kept
    assert ps.field(seen.requests[2]["headers"], b"x-large") == [b"x" * 8000]
