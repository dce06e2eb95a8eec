"""Router and Route: host matching (case-insensitive, port ignored, absolute-form targets),
longest path prefix on segment boundaries, host-specific routes before catch-alls on equal
prefixes, "no route", release dispatched to the group that lent the upstream, and validation.

Pure unit tests: the request is a plain object with ``target``, ``req_hdrs`` and
``client_address`` (what a router and its groups read).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from thor.http.proxy._balance import Upstream, UpstreamGroup
from thor.http.proxy._routing import Route, Router, request_host_path, split_host


@dataclass
class Req:
    """Stands in for a ProxyExchange."""

    target: bytes = b"/"
    req_hdrs: list[tuple[bytes, bytes]] = field(default_factory=list)
    client_address: tuple[str, int] = ("127.0.0.1", 40000)


def req(target: bytes, host: bytes | None = b"example.com") -> Req:
    return Req(target, [(b"Host", host)] if host is not None else [])


def group(port: int) -> UpstreamGroup:
    return UpstreamGroup([Upstream(f"http://127.0.0.1:{port}")])


def routed(router: Router, request: Req) -> str | None:
    """The name of the upstream the router gives, or the reason it gives none."""
    calls: list[tuple[Upstream | None, str | None]] = []
    router.acquire(request, lambda up, reason: calls.append((up, reason)))
    assert len(calls) == 1
    upstream, reason = calls[0]
    if upstream is None:
        return reason
    router.release(upstream)
    return upstream.name.rpartition(":")[2]


@pytest.fixture
def router() -> Router:
    return Router(
        [
            Route(path_prefix=b"/", group=group(1)),
            Route(path_prefix=b"/api", group=group(2)),
            Route(path_prefix=b"/api/v2/", group=group(3)),
            Route(host=b"Static.Example.COM", path_prefix=b"/", group=group(4)),
            Route(host=b"example.com", path_prefix=b"/api", group=group(5)),
            Route(host=b"example.com:8443", path_prefix=b"/api/v1", group=group(6)),
        ]
    )


@pytest.mark.parametrize(
    ("target", "host", "port"),
    [
        (b"/", b"other.org", "1"),
        (b"/index.html", b"other.org", "1"),
        (b"/api", b"other.org", "2"),
        (b"/api/users?id=1", b"other.org", "2"),
        (b"/api?x", b"other.org", "2"),
        (b"/apix", b"other.org", "1"),  # a prefix matches whole segments only
        (b"/api/v2", b"other.org", "2"),  # "/api/v2/" needs its trailing slash
        (b"/api/v2/x", b"other.org", "3"),
        (b"/api/v2/x", b"example.com", "3"),  # the longest prefix wins over the host
        (b"/anything", b"STATIC.example.com:80", "4"),  # case and port ignored
        (b"/api", b"static.example.com", "2"),  # longer catch-all prefix beats host's "/"
        (b"/api", b"example.com", "5"),  # equal prefixes: the route naming the host
        (b"/api/v1/x", b"Example.Com:8080", "6"),
        (b"/api/v1/x", b"example.org", "2"),
        (b"/", None, "1"),  # no Host at all: only catch-alls match
    ],
)
def test_routes_by_host_and_longest_prefix(
    router: Router, target: bytes, host: bytes | None, port: str
) -> None:
    assert routed(router, req(target, host)) == port


def test_absolute_form_target_overrides_host(router: Router) -> None:
    assert routed(router, req(b"http://static.example.com/api", b"example.com")) == "2"
    assert routed(router, req(b"http://Example.com:81/api?q", b"other.org")) == "5"
    assert routed(router, req(b"https://example.com", b"other.org")) == "1"
    assert routed(router, req(b"http://static.example.com?x", None)) == "4"


def test_no_matching_route_gives_no_route() -> None:
    router = Router([Route(host=b"a.example", path_prefix=b"/app", group=group(1))])
    assert routed(router, req(b"/app/x", b"b.example")) == "no route"
    assert routed(router, req(b"/other", b"a.example")) == "no route"
    assert routed(router, req(b"/app/x", b"a.example")) == "1"


def test_group_failures_pass_through() -> None:
    empty = UpstreamGroup([])
    router = Router([Route(group=empty)])
    assert routed(router, req(b"/")) == "no healthy upstream"


def test_release_goes_to_the_group_that_lent_the_upstream() -> None:
    shared = Upstream("http://127.0.0.1:1")
    first = UpstreamGroup([shared, Upstream("http://127.0.0.1:3")], eject_after=1)
    second = UpstreamGroup([shared, Upstream("http://127.0.0.1:2")], eject_after=3)
    router = Router([Route(path_prefix=b"/one", group=first), Route(group=second)])
    ejected: list[str] = []
    first.on("health", lambda up, healthy: ejected.append(f"first {healthy}"))
    second.on("health", lambda up, healthy: ejected.append(f"second {healthy}"))
    got: list[Upstream | None] = []
    router.acquire(req(b"/two"), lambda up, reason: got.append(up))
    assert got == [shared]
    router.release(shared, ok=False)  # second's eject_after (3) applies: not ejected
    assert shared.healthy
    assert ejected == []
    router.acquire(req(b"/one"), lambda up, reason: got.append(up))
    assert got == [shared, shared]
    router.release(shared, ok=False)  # 2 failures: first's eject_after (1) applies, not 3
    assert ejected == ["first False", "second False"]  # both groups see the shared upstream
    assert shared.active == 0
    with pytest.raises(RuntimeError, match="without a matching acquire"):
        router.release(shared)
    router.close()
    assert shared.healthy


def test_match_is_public_for_diagnostics(router: Router) -> None:
    route = router.match(req(b"/api/v2/z"))
    assert route is not None
    assert route.path_prefix == b"/api/v2/"
    assert router.match(req(b"/", b"static.example.com")) is router.routes[3]


@pytest.mark.parametrize(
    ("target", "headers", "expected"),
    [
        (b"/p?q", [(b"HOST", b" Foo.Example:80 ")], (b"foo.example", b"/p")),
        (b"/p#frag", [], (None, b"/p")),
        (b"http://[::1]:8080/x", [], (b"[::1]", b"/x")),
        (b"http://user@h.example/x", [(b"host", b"other")], (b"h.example", b"/x")),
        (b"*", [(b"host", b"h")], (b"h", b"*")),
    ],
)
def test_request_host_path(
    target: bytes, headers: list[tuple[bytes, bytes]], expected: tuple[bytes | None, bytes]
) -> None:
    assert request_host_path(Req(target, headers)) == expected


@dataclass
class ProxiedReq(Req):
    """As the proxy's ProxyExchange has it: Host moved from the fields to ``host``."""

    host: bytes | None = None


def test_the_requests_host_attribute_wins_over_the_host_field(router: Router) -> None:
    proxied = ProxiedReq(b"/api", [(b"Host", b"other.org")], host=b"Example.com:80")
    assert request_host_path(proxied) == (b"example.com", b"/api")
    assert routed(router, proxied) == "5"
    assert routed(router, ProxiedReq(b"/api", [(b"Host", b"example.com")])) == "5"
    assert routed(router, ProxiedReq(b"http://static.example.com/", host=b"example.com")) == "4"


def test_split_host() -> None:
    assert split_host(b"Example.com:8080") == b"example.com"
    assert split_host(b"[::1]:80") == b"[::1]"
    assert split_host(b"[::1]") == b"[::1]"
    assert split_host(b"plain") == b"plain"


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"host": "example.com"}, "'example.com'"),
        ({"host": b""}, "b''"),
        ({"host": b"a b"}, "b'a b'"),
        ({"host": b"a/b"}, "b'a/b'"),
        ({"path_prefix": b"api"}, "b'api'"),
        ({"path_prefix": "/api"}, "'/api'"),
        ({"path_prefix": b"/a?b"}, "b'/a\\?b'"),
        ({"path_prefix": b"/a b"}, "b'/a b'"),
    ],
)
def test_route_validation_names_the_value(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        Route(group=group(1), **kwargs)  # type: ignore[arg-type]


def test_route_needs_a_group_and_router_needs_routes() -> None:
    with pytest.raises(ValueError, match="no group"):
        Route(path_prefix=b"/x")
    with pytest.raises(ValueError, match="at least one route"):
        Router([])
    with pytest.raises(ValueError, match="Route objects"):
        Router([group(1)])  # type: ignore[list-item]


def test_cancel_reaches_the_group_that_queued_the_request() -> None:
    up = Upstream("http://127.0.0.1:1", max_conns=1)
    busy = UpstreamGroup([up])
    router = Router([Route(path_prefix=b"/a", group=group(2)), Route(group=busy)])
    calls: list[tuple[Upstream | None, str | None]] = []
    router.acquire(req(b"/b"), lambda u, r: calls.append((u, r)))
    waiting = req(b"/b")
    router.acquire(waiting, lambda u, r: calls.append((u, r)))
    assert busy.queued == router.queued == 1
    assert router.cancel(waiting)
    assert busy.queued == 0
    assert not router.cancel(waiting)
    assert calls == [(up, None)]
    assert [type(g).__name__ for g in router.groups()] == ["UpstreamGroup", "UpstreamGroup"]
    router.close()


def test_release_reaches_unshared_groups_and_nested_routers() -> None:
    a, b = Upstream("http://127.0.0.1:1"), Upstream("http://127.0.0.1:2")
    spare = Upstream("http://127.0.0.1:3")  # (a group's last healthy upstream is never ejected)
    first, second = UpstreamGroup([a, spare], eject_after=1), UpstreamGroup([b], eject_after=2)
    inner = Router([Route(path_prefix=b"/", group=second)])
    router = Router([Route(path_prefix=b"/a", group=first), Route(group=inner)])
    got: list[Upstream | None] = []
    router.acquire(req(b"/a/1"), lambda up, reason: got.append(up))
    router.acquire(req(b"/b/1"), lambda up, reason: got.append(up))
    assert got == [a, b]
    assert (a.active, b.active) == (1, 1)
    router.release(b, ok=False)  # through the inner router, to second: 1 failure of 2
    router.release(a, ok=False)  # to first: ejected at its first failure
    assert (a.active, b.active) == (0, 0)
    assert (a.ejected, b.ejected) == (True, False)
    assert b.failures == 1
    for upstream in (a, b):
        with pytest.raises(RuntimeError, match="without a matching acquire"):
            router.release(upstream)
    router.close()


def test_a_single_catch_all_route_takes_every_target_a_full_match_would() -> None:
    only = Router([Route(path_prefix=b"/", group=group(1))])
    assert routed(only, req(b"/any/path?q")) == "1"
    assert routed(only, req(b"http://other.example/x")) == "1"
    assert routed(only, req(b"*")) == "no route"  # not a path: the full match says so


def test_close_when_idle_waits_for_the_last_release() -> None:
    first, second = group(1), group(2)
    router = Router([Route(path_prefix=b"/", group=first), Route(b"h", b"/", second)])
    lent: list[Upstream | None] = []
    router.acquire(req(b"/a"), lambda up, reason: lent.append(up))
    router.acquire(req(b"/b", b"h"), lambda up, reason: lent.append(up))
    assert not router.idle
    router.close_when_idle()
    assert not router.closed
    a, b = lent
    assert a is not None and b is not None
    router.release(a)
    assert not router.closed  # one left in flight
    router.release(b, ok=False)
    assert router.closed and router.idle
    idle = Router([Route(path_prefix=b"/", group=group(3))])
    idle.close_when_idle()
    assert idle.closed


def test_release_with_the_request_finds_its_lending_among_several() -> None:
    """Two groups lend one Upstream at once: ``release(..., request=px)`` goes to the group
    that lent it to ``px`` whatever the order; without ``request`` the oldest lending is taken."""
    shared = Upstream("http://127.0.0.1:1")
    lenient = UpstreamGroup([shared, Upstream("http://127.0.0.1:3")], eject_after=5)
    strict = UpstreamGroup([shared, Upstream("http://127.0.0.1:2")], eject_after=1)
    inner = Router([Route(group=strict)])  # nested: the request is passed on
    router = Router([Route(path_prefix=b"/lenient", group=lenient), Route(group=inner)])
    got: list[Upstream | None] = []
    first, second = req(b"/lenient/a"), req(b"/strict/b")
    router.acquire(first, lambda up, reason: got.append(up))
    router.acquire(second, lambda up, reason: got.append(up))
    assert got == [shared, shared]
    router.release(shared, ok=False, request=second)  # strict's eject_after (1) applies
    assert shared.ejected
    assert shared.active == 1
    router.release(shared, ok=True, request=first)
    assert shared.active == 0
    assert router.idle
    with pytest.raises(RuntimeError, match="without a matching acquire"):
        router.release(shared, request=first)
    router.close()
