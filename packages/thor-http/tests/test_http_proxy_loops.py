"""Forwarding loops (RFC 9110 §7.6.3: Via lets an intermediary notice a request going round):
a request whose Via fields already name the proxy ``loop_hops`` times is answered 508."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import http_server_support as support
import proxy_support as ps
import pytest

from thor.http.proxy import AccessRecord, ForwardProxy, ReverseProxy
from thor.http.proxy._intermediary import via_hops

if TYPE_CHECKING:
    from proxy_support import Harness

harness = ps.harness


@pytest.mark.parametrize(
    ("value", "pseudonym", "count"),
    [
        (b"1.1 thor", b"thor", 1),
        (b"1.1 thor, 1.1 thor", b"thor", 2),
        (b"1.0 thor (comment), HTTP/1.1 edge,1.1\tthor", b"thor", 2),
        (b"1.1 thorough, 1.1 other", b"thor", 0),
        (b"1.1 thor", b"THOR", 0),  # a pseudonym is compared as sent
        (b"", b"thor", 0),
        (b"thor", b"thor", 0),  # no received-protocol: not an entry naming it
        (b"1.1 a\x0bthor", b"thor", 0),  # only SP and HTAB separate
        (b"1.1 thor (a, 1.1 thor, 1.1 thor)", b"thor", 1),  # a comment's commas and words
        (b"1.1 edge (see, e.g. thor docs), 1.1 thor", b"thor", 1),
        (b"1.1 edge (nested (1.1 thor) \\) 1.1 thor), 1.1 thor", b"thor", 1),
        (b"1.1 thor (unclosed, 1.1 thor", b"thor", 1),
    ],
)
def test_via_hops(value: bytes, pseudonym: bytes, count: int) -> None:
    assert via_hops(value, pseudonym) == count


def get(harness: Harness, front: Any, *extras: bytes) -> list[support.Response]:
    """One request per extra field block, each on its own connection, on one run of the loop
    (a stopped loop forgets the listening sockets)."""

    def client() -> list[support.Response]:
        responses = []
        for extra in extras or (b"",):
            head = b"GET /x HTTP/1.1\r\nHost: h\r\n" + extra + b"\r\n"
            responses.append(support.ResponseReader(ps.raw_request(harness, front, head)).read())
        return responses

    result: list[support.Response] = harness.client(client)
    return result


def test_a_proxy_forwarding_to_itself_stops_after_loop_hops(harness: Harness) -> None:
    front = harness.server(None)
    proxy_class = type("Looping", (ReverseProxy,), {"loop_hops": 3})
    proxy = proxy_class(front, ps.origin_url(front))  # its own upstream: a misconfiguration
    harness.proxies.append(proxy)
    records: list[AccessRecord] = []
    proxy.on("access", records.append)
    (response,) = get(harness, front)
    assert response.status == b"508"
    assert b"forwarding loop" in response.body
    # the first request and three returns through itself: four exchanges, the last one refused
    assert len(records) == 4
    assert [record.status for record in records] == [508] * 4
    assert sum(1 for record in records if record.error == "forwarding loop") == 1


def test_chained_proxies_of_other_names_pass(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    inner, _ = ps.make_proxy(harness, ps.origin_url(origin), via_name="inner", loop_hops=1)
    outer, _ = ps.make_proxy(harness, ps.origin_url(inner), via_name="outer", loop_hops=1)
    (response,) = get(harness, outer)
    assert response.status == b"200"
    assert ps.field(seen.requests[0]["headers"], b"via") == [b"1.1 outer", b"1.1 inner"]


def test_fewer_own_entries_than_loop_hops_pass(harness: Harness) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, _ = ps.make_proxy(harness, ps.origin_url(origin), loop_hops=3)
    passed, refused = get(
        harness,
        front,
        b"Via: 1.1 thor, 1.1 thor\r\n",
        b"Via: 1.1 thor, 1.1 thor\r\nVia: 1.0 thor\r\n",
    )
    assert passed.status == b"200"
    assert refused.status == b"508"
    assert refused.header(b"connection") == [b"close"]
    assert len(seen.requests) == 1


@pytest.mark.parametrize("settings", [{"loop_hops": 0}, {"via_name": None}])
def test_loop_detection_can_be_off(harness: Harness, settings: dict[str, Any]) -> None:
    seen = ps.Seen()
    origin = harness.server(ps.inspecting_handler(seen))
    front, _ = ps.make_proxy(harness, ps.origin_url(origin), **settings)
    (response,) = get(harness, front, b"Via: " + b", ".join([b"1.1 thor"] * 20) + b"\r\n")
    assert response.status == b"200"


def test_a_forward_proxy_asked_for_its_own_address_does_not_loop(harness: Harness) -> None:
    # it forwards origin-form, which a forward proxy refuses: the second hop ends it
    front, proxy = ps.make_proxy(harness, cls=ForwardProxy)
    records: list[AccessRecord] = []
    proxy.on("access", records.append)
    target = b"http://127.0.0.1:%d/x" % front.port

    def client() -> support.Response:
        sock = ps.raw_request(
            harness, front, b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        return support.ResponseReader(sock).read()

    response = harness.client(client)
    assert response.status == b"400"
    assert len(records) == 2  # the request, and its copy that came back
