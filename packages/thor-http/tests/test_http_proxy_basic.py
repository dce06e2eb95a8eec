"""ReverseProxy against thor origins on 127.0.0.1, with http.client and raw sockets in front:
forwarding and connection reuse, hop-by-hop fields removed both ways, Via, Forwarded and
X-Forwarded-For with trusted and untrusted hops, Max-Forwards, 1xx, trailers, Host handling,
absolute-form targets, and the access record."""

from __future__ import annotations

import http.client
import threading
from typing import TYPE_CHECKING

import http_server_support as support
import proxy_support as ps
import pytest

from thor.http.client import HttpClient
from thor.http.proxy import AccessRecord, ReverseProxy

if TYPE_CHECKING:
    from proxy_support import Harness

harness = ps.harness


def test_requests_are_forwarded_on_one_reused_upstream_connection(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, proxy = ps.make_proxy(harness, ps.origin_url(origin))
    records: list[AccessRecord] = []
    proxy.on("access", records.append)

    def client() -> list[tuple[int, bytes]]:
        conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=5)
        out = []
        for index in range(5):
            conn.request("POST", f"/path/{index}?q=1", body=b"data" * index)
            response = conn.getresponse()
            out.append((response.status, response.getheader("X-Origin", "").encode()))
            response.read()
        conn.close()
        return out

    assert harness.client(client) == [(200, b"yes")] * 5
    assert [r["uri"] for r in seen.requests] == [f"/path/{i}?q=1".encode() for i in range(5)]
    assert [bytes(r["body"]) for r in seen.requests] == [b"data" * i for i in range(5)]
    # one upstream connection served them all
    assert len({ex.http_conn for ex in harness.exchanges if ex.http_conn.server is origin}) == 1
    assert [r.status for r in records] == [200] * 5
    assert [r.bytes_in for r in records] == [4 * i for i in range(5)]
    assert records[0].upstream == f"127.0.0.1:{origin.port}"
    assert records[0].method == b"POST" and records[0].target == b"/path/0?q=1"
    assert all(r.total_time is not None and r.first_byte_time is not None for r in records)
    assert records[1].connect_time == 0.0  # pooled


def test_hop_by_hop_fields_are_removed_both_ways(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(
        ps.inspecting_handler(
            seen,
            extra=[
                (b"Connection", b"X-Origin-Private"),
                (b"X-Origin-Private", b"secret"),
                (b"Keep-Alive", b"timeout=5"),
                (b"Proxy-Authenticate", b"Basic"),
                (b"X-Kept", b"kept"),
            ],
        )
    )
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin))

    def client() -> support.Response:
        sock = ps.raw_request(
            harness,
            front,
            b"GET / HTTP/1.1\r\nHost: front\r\nConnection: keep-alive, X-Client-Private\r\n"
            b"X-Client-Private: 1\r\nKeep-Alive: 300\r\nTE: trailers\r\n"
            b"Proxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\n"
            b"Upgrade-Insecure-Requests: 1\r\nX-Kept: yes\r\n\r\n",
        )
        return support.ResponseReader(sock).read()

    response = harness.client(client)
    sent = seen.requests[0]["headers"]
    names = {name.lower() for name, _ in sent}
    for gone in (
        b"x-client-private",
        b"keep-alive",
        b"te",
        b"proxy-authorization",
        b"proxy-connection",
    ):
        assert gone not in names, gone
    assert ps.field(sent, b"x-kept") == [b"yes"]
    assert ps.field(sent, b"upgrade-insecure-requests") == [b"1"]  # not a hop-by-hop field
    assert ps.field(sent, b"connection") in ([], [b"keep-alive"])
    # a field named by Connection is dropped, and ours are still added
    assert ps.field(sent, b"via") == [b"1.1 thor"]
    assert ps.field(sent, b"x-forwarded-for") == [b"127.0.0.1"]
    assert response.status == b"200"
    assert not response.header(b"x-origin-private")
    assert not response.header(b"keep-alive")
    assert not response.header(b"proxy-authenticate")
    assert response.header(b"x-kept") == [b"kept"]


def test_via_both_ways(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen, extra=[(b"Via", b"1.1 origin-cache")]))
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin), via_name="edge-1")

    def client() -> support.Response:
        sock = ps.raw_request(
            harness, front, b"GET / HTTP/1.1\r\nHost: h\r\nVia: 1.0 first-hop\r\n\r\n"
        )
        return support.ResponseReader(sock).read()

    response = harness.client(client)
    assert ps.field(seen.requests[0]["headers"], b"via") == [b"1.0 first-hop", b"1.1 edge-1"]
    assert response.header(b"via") == [b"1.1 origin-cache", b"1.1 edge-1"]


def test_no_via_when_disabled(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin), via_name=None)

    def client() -> support.Response:
        sock = ps.raw_request(harness, front, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        return support.ResponseReader(sock).read()

    response = harness.client(client)
    assert not ps.field(seen.requests[0]["headers"], b"via")
    assert not response.header(b"via")


FORGED = (
    b"GET / HTTP/1.1\r\nHost: public.example\r\nX-Forwarded-For: 6.6.6.6\r\n"
    b"Forwarded: for=6.6.6.6;proto=https\r\n\r\n"
)


def test_forwarding_fields_from_an_untrusted_client_are_dropped(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin), trusted_hops=("10.0.0.0/8",))

    def client() -> support.Response:
        return support.ResponseReader(ps.raw_request(harness, front, FORGED)).read()

    assert harness.client(client).status == b"200"
    sent = seen.requests[0]["headers"]
    assert ps.field(sent, b"x-forwarded-for") == [b"127.0.0.1"]
    assert ps.field(sent, b"forwarded") == [b"for=127.0.0.1;proto=http;host=public.example"]


def test_forwarding_fields_from_a_trusted_hop_are_extended(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin), trusted_hops=["127.0.0.0/8"])

    def client() -> support.Response:
        return support.ResponseReader(ps.raw_request(harness, front, FORGED)).read()

    assert harness.client(client).status == b"200"
    sent = seen.requests[0]["headers"]
    assert ps.field(sent, b"x-forwarded-for") == [b"6.6.6.6, 127.0.0.1"]
    assert ps.field(sent, b"forwarded") == [
        b"for=6.6.6.6;proto=https, for=127.0.0.1;proto=http;host=public.example"
    ]


def test_settings_changed_on_an_instance_take_effect(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, proxy = ps.make_proxy(harness, ps.origin_url(origin))

    def change() -> None:
        proxy.trusted_hops = ["127.0.0.0/8"]
        proxy.via_name = "edge-2"
        proxy.upstream_read_timeout = 7.5
        proxy.upstream_max_conns = 3
        proxy.upstream_max_idle_conns = 5
        changed.set()

    changed = threading.Event()

    def client() -> list[support.Response]:
        sock = ps.raw_request(harness, front, FORGED)
        reader = support.ResponseReader(sock)
        responses = [reader.read()]  # (its fields are now cached)
        harness.loop.run_in_loop(change)
        assert changed.wait(5)
        sock.sendall(FORGED)
        responses.append(reader.read())
        return responses

    before, after = harness.client(client)
    assert (before.status, after.status) == (b"200", b"200")
    assert before.header(b"via") == [b"1.1 thor"]
    assert after.header(b"via") == [b"1.1 edge-2"]
    first, second = (request["headers"] for request in seen.requests)
    assert ps.field(first, b"x-forwarded-for") == [b"127.0.0.1"]
    assert ps.field(first, b"via") == [b"1.1 thor"]
    assert ps.field(second, b"x-forwarded-for") == [b"6.6.6.6, 127.0.0.1"]
    assert ps.field(second, b"via") == [b"1.1 edge-2"]
    assert (proxy.client.read_timeout, proxy.client.max_server_conn) == (7.5, 3)
    assert proxy.client.max_idle_conns == 5
    with pytest.raises(ValueError):
        proxy.trusted_hops = ["not an address"]
    assert proxy.trusted_hops == ["127.0.0.0/8"]  # (an invalid value is not kept)
    # a client the proxy was given keeps its own settings
    given = HttpClient(harness.loop)
    given.read_timeout = 2
    other = ReverseProxy(harness.server(None), ps.origin_url(origin), client=given)
    other.upstream_read_timeout = 9
    assert given.read_timeout == 2
    other.close()
    given.close()


def test_forwarding_fields_can_be_turned_off(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, _proxy = ps.make_proxy(
        harness, ps.origin_url(origin), forwarded=False, x_forwarded_for=False
    )

    def client() -> support.Response:
        return support.ResponseReader(ps.raw_request(harness, front, FORGED)).read()

    assert harness.client(client).status == b"200"
    sent = seen.requests[0]["headers"]
    assert not ps.field(sent, b"x-forwarded-for") and not ps.field(sent, b"forwarded")


def test_max_forwards_zero_is_answered_by_the_proxy(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin))

    def client() -> list[support.Response]:
        sock = ps.raw_request(
            harness,
            front,
            b"TRACE /t HTTP/1.1\r\nHost: h\r\nMax-Forwards: 0\r\nCookie: secret\r\nX-A: 1\r\n\r\n"
            b"OPTIONS /o HTTP/1.1\r\nHost: h\r\nMax-Forwards: 0\r\n\r\n"
            b"OPTIONS /o HTTP/1.1\r\nHost: h\r\nMax-Forwards: 3\r\n\r\n"
            b"GET /g HTTP/1.1\r\nHost: h\r\nMax-Forwards: 0\r\n\r\n",
        )
        reader = support.ResponseReader(sock)
        return [reader.read() for _ in range(4)]

    trace, options, forwarded_options, get = harness.client(client)
    assert trace.status == b"200" and trace.header(b"content-type") == [b"message/http"]
    assert trace.body.startswith(b"TRACE /t HTTP/1.1\r\n") and b"X-A: 1" in trace.body
    assert b"secret" not in trace.body
    assert options.status == b"200" and options.header(b"allow")
    assert forwarded_options.header(b"x-origin") == [b"yes"]
    assert get.header(b"x-origin") == [b"yes"]  # only TRACE and OPTIONS
    assert [r["method"] for r in seen.requests] == [b"OPTIONS", b"GET"]
    assert ps.field(seen.requests[0]["headers"], b"max-forwards") == [b"2"]
    assert ps.field(seen.requests[1]["headers"], b"max-forwards") == [b"0"]


def test_interim_responses_and_trailers_are_forwarded(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(
        ps.inspecting_handler(
            seen,
            interim=[(b"Link", b"</style.css>; rel=preload")],
            trailers=[(b"X-Checksum", b"abc"), (b"Content-Length", b"5")],
        )
    )
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin))

    def client() -> tuple[support.Response, support.Response]:
        sock = ps.raw_request(
            harness,
            front,
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\nX-Request-Sum: 42\r\n\r\n",
        )
        reader = support.ResponseReader(sock)
        return reader.read(), reader.read()

    early, final = harness.client(client)
    assert early.status == b"103" and early.header(b"link") == [b"</style.css>; rel=preload"]
    assert final.status == b"200"
    assert final.trailers == [(b"X-Checksum", b" abc")]  # Content-Length is never a trailer
    assert bytes(seen.requests[0]["body"]) == b"abc"
    assert seen.requests[0]["trailers"] == [(b"X-Request-Sum", b" 42")]


def test_http10_client_gets_no_interim_and_no_chunks(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(
        ps.inspecting_handler(seen, interim=[], trailers=[(b"X-Checksum", b"abc")])
    )
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin))

    def client() -> bytes:
        sock = ps.raw_request(harness, front, b"GET / HTTP/1.0\r\nHost: h\r\n\r\n")
        return support.recv_until_close(sock)

    data = harness.client(client)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b"103" not in data.split(b"\r\n", 1)[0]
    assert b"Transfer-Encoding" not in data and b"X-Checksum" not in data
    assert ps.field(seen.requests[0]["headers"], b"via") == [b"1.0 thor"]


def test_host_is_the_upstream_authority_or_preserved(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin))
    front2, _proxy2 = ps.make_proxy(harness, ps.origin_url(origin), preserve_host=True)

    def client() -> None:
        for server in (front, front2):
            sock = ps.raw_request(
                harness, server, b"GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n"
            )
            support.ResponseReader(sock).read()

    harness.client(client)
    hosts = [ps.field(r["headers"], b"host") for r in seen.requests]
    assert hosts == [[f"127.0.0.1:{origin.port}".encode()], [b"www.example.com"]]


def test_absolute_form_target_regenerates_host(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin), preserve_host=True)

    def client() -> support.Response:
        sock = ps.raw_request(
            harness,
            front,
            b"GET http://real.example:8080/a?b HTTP/1.1\r\nHost: other.example\r\n\r\n",
        )
        response = support.ResponseReader(sock).read()
        # the same head for another authority (not the first one's cached fields)
        sock.sendall(b"GET http://second.example/ HTTP/1.1\r\nHost: other.example\r\n\r\n")
        assert support.ResponseReader(sock).read().status == b"200"
        return response

    assert harness.client(client).status == b"200"
    assert ps.field(seen.requests[1]["headers"], b"forwarded") == [
        b"for=127.0.0.1;proto=http;host=second.example"
    ]
    request = seen.requests[0]
    assert request["uri"] == b"/a?b"
    # the target's authority replaces the Host field (RFC 9112 §3.2.2), in Forwarded too
    assert ps.field(request["headers"], b"host") == [b"real.example:8080"]
    assert ps.field(request["headers"], b"forwarded") == [
        b'for=127.0.0.1;proto=http;host="real.example:8080"'
    ]


def test_upstream_with_a_path_prefix(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin) + "/base/")

    def client() -> None:
        support.ResponseReader(
            ps.raw_request(harness, front, b"GET /x?y HTTP/1.1\r\nHost: h\r\n\r\n")
        ).read()

    harness.client(client)
    assert seen.requests[0]["uri"] == b"/base/x?y"


def test_connect_and_asterisk_on_a_reverse_proxy(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin))

    def client() -> list[bytes]:
        statuses = []
        sock = ps.raw_request(harness, front, b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
        statuses.append(support.ResponseReader(sock).read().status)
        sock = ps.raw_request(harness, front, b"CONNECT a.example:443 HTTP/1.1\r\nHost: a\r\n\r\n")
        statuses.append(support.ResponseReader(sock).read(b"CONNECT").status)
        return statuses

    assert harness.client(client) == [b"200", b"405"]
    assert not seen.requests


def test_callable_upstream_and_no_upstream(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))

    def choose(px: object) -> str | None:
        target = getattr(px, "target", b"")
        return ps.origin_url(origin) if target.startswith(b"/ok") else None

    front, _proxy = ps.make_proxy(harness, choose)

    def client() -> list[bytes]:
        out = []
        for path in (b"/ok", b"/nowhere"):
            sock = ps.raw_request(harness, front, b"GET " + path + b" HTTP/1.1\r\nHost: h\r\n\r\n")
            out.append(support.ResponseReader(sock).read().status)
        return out

    assert harness.client(client) == [b"200", b"502"]
    assert [r["uri"] for r in seen.requests] == [b"/ok"]


def test_proxy_made_without_a_front_helper(harness: Harness) -> None:
    """The documented two-line use: a server and a ReverseProxy on it."""
    origin = harness.server(support.hello_handler())
    front = harness.server(None)
    proxy = ReverseProxy(front, ps.origin_url(origin).encode())
    harness.proxies.append(proxy)

    def client() -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=5)
        try:
            conn.request("GET", "/")
            return conn.getresponse().read()
        finally:
            conn.close()

    assert harness.client(client) == support.HELLO
