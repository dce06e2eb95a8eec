"""UpstreamGroup's selection logic and settings, as pure unit tests: Upstream URL parsing and
validation, round robin (weighted), least connections (ties round robin), consistent hashing
(ring walk past unavailable upstreams, ~1/N remapping when membership changes), max_conns with
the FIFO queue, passive ejection counts, and the acquire/release contract.

The request is a plain object with ``client_address`` and ``req_hdrs`` (what the group reads);
no network is involved. Queued requests are served through the loop, so those tests run a
fresh loop until the callbacks have run (``drain``). Timers are tested in
test_http_balance_loop.py.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

import thor.loop
from thor.http.proxy._balance import Upstream, UpstreamGroup
from thor.loop import LoopBase


@dataclass
class Req:
    """Stands in for a ProxyExchange: what a group reads for the hash key."""

    client_address: tuple[str, int] = ("127.0.0.1", 40000)
    req_hdrs: list[tuple[bytes, bytes]] = field(default_factory=list)


class Grants:
    """Records every ready() call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Upstream | None, str | None]] = []

    def __call__(self, upstream: Upstream | None, reason: str | None) -> None:
        self.calls.append((upstream, reason))

    @property
    def names(self) -> list[str | None]:
        return [up.name if up is not None else reason for up, reason in self.calls]


@pytest.fixture
def loop() -> Any:
    fresh = thor.loop.make()
    yield fresh
    fresh.stop()
    fresh.close()


def drain(loop: LoopBase) -> None:
    """Run the loop until the zero-delay callbacks queued so far (and theirs) have run."""
    loop.schedule(0, loop.schedule, 0, loop.stop)
    safety = loop.schedule(5.0, loop.stop)
    loop.run()
    assert not safety.fired, "the loop did not drain"
    safety.delete()


def ups(*ports: int, **kw: Any) -> list[Upstream]:
    return [Upstream(f"http://127.0.0.1:{port}", **kw) for port in ports]


def pick(group: UpstreamGroup, req: Req | None = None, release: bool = True) -> Upstream:
    grants = Grants()
    group.acquire(req or Req(), grants)
    assert len(grants.calls) == 1
    upstream, reason = grants.calls[0]
    assert upstream is not None, reason
    if release:
        group.release(upstream)
    return upstream


# -- Upstream -------------------------------------------------------------------------------------


def test_upstream_parses_an_origin() -> None:
    up = Upstream("http://127.0.0.1:8080")
    assert up.origin == ("http", "127.0.0.1", 8080)
    assert up.url == "http://127.0.0.1:8080"
    assert up.name == "127.0.0.1:8080"
    assert up.active == 0
    assert up.healthy
    assert not up.full
    assert up.max_conns is None
    assert up.weight == 1


@pytest.mark.parametrize(
    ("url", "origin", "name", "normal"),
    [
        ("https://Example.COM/", ("https", "example.com", 443), "example.com:443", None),
        (b"http://backend", ("http", "backend", 80), "backend:80", "http://backend:80"),
        ("http://[::1]:9000", ("http", "::1", 9000), "[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_upstream_normalises(
    url: str | bytes, origin: tuple[str, str, int], name: str, normal: str | None
) -> None:
    up = Upstream(url)
    assert up.origin == origin
    assert up.name == name
    assert up.url == (normal or f"{origin[0]}://{name}")
    assert "[" in up.url or up.url.endswith(str(origin[2]))


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1:21",
        "127.0.0.1:8080",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:8080/api",
        "http://127.0.0.1:8080/?x=1",
        "http://exämple.com",
        "http://",
    ],
)
def test_upstream_refuses_a_bad_url_naming_it(url: str) -> None:
    with pytest.raises(ValueError, match="upstream URL") as info:
        Upstream(url)
    assert repr(url) in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"max_conns": 0}, "max_conns"),
        ({"max_conns": -3}, "max_conns"),
        ({"max_conns": 2.5}, "max_conns"),
        ({"weight": 0}, "weight"),
        ({"weight": True}, "weight"),
    ],
)
def test_upstream_refuses_bad_settings(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named) as info:
        Upstream("http://127.0.0.1:8080", **kwargs)
    assert repr(next(iter(kwargs.values()))) in str(info.value)


# -- group settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"policy": "random"}, "'random'"),
        ({"policy": "least-conn"}, "'least-conn'"),
        ({"hash_key": "cookie"}, "'cookie'"),
        ({"hash_key": "header:"}, "'header:'"),
        ({"hash_key": "header:x y"}, "'header:x y'"),
        ({"queue_limit": -1}, "queue_limit.*-1"),
        ({"queue_timeout": 0}, "queue_timeout.*0"),
        ({"queue_timeout": -2.0}, "queue_timeout.*-2.0"),
        ({"eject_after": -1}, "eject_after.*-1"),
        ({"eject_for": 0}, "eject_for.*0"),
        ({"eject_for": None}, "eject_for.*None"),
        ({"vnodes": 0}, "vnodes.*0"),
    ],
)
def test_group_refuses_bad_settings_naming_the_value(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        UpstreamGroup(ups(1, 2), **kwargs)


def test_group_refuses_an_origin_twice_and_accepts_urls() -> None:
    one = Upstream("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="listed twice"):
        UpstreamGroup([one, "http://127.0.0.1:1/"])
    alone = UpstreamGroup([one], "least_conn")
    assert not alone._shared  # the group that failed to be made left no trace on `one`
    group = UpstreamGroup(["http://127.0.0.1:1", "http://127.0.0.1:2"])
    assert [up.name for up in group.upstreams] == ["127.0.0.1:1", "127.0.0.1:2"]
    with pytest.raises(ValueError, match="listed twice"):
        group.add("http://127.0.0.1:2")


def test_empty_group_has_no_healthy_upstream() -> None:
    grants = Grants()
    UpstreamGroup([]).acquire(Req(), grants)
    assert grants.calls == [(None, "no healthy upstream")]


def test_release_without_acquire_raises() -> None:
    group = UpstreamGroup(ups(1))
    up = pick(group)
    with pytest.raises(RuntimeError, match="without a matching acquire"):
        group.release(up)


# -- round robin ----------------------------------------------------------------------------------


def test_round_robin_rotates() -> None:
    group = UpstreamGroup(ups(1, 2, 3))
    assert [pick(group).name[-1] for _ in range(7)] == list("1231231")


def test_weighted_round_robin_is_smooth() -> None:
    a, b, c = Upstream("http://a:1", weight=5), Upstream("http://b:1"), Upstream("http://c:1")
    group = UpstreamGroup([a, b, c])
    picked = [pick(group).name[0] for _ in range(14)]
    assert "".join(picked) == "aabacaa" * 2  # 5:1:1, never five a's in a row


def test_round_robin_skips_unhealthy_and_full() -> None:
    first, second, third = ups(1, 2, 3)
    second.max_conns = 1
    group = UpstreamGroup([first, second, third], eject_after=1)
    held = pick(group, release=False)
    assert held is first
    group.release(first, ok=False)  # ejected
    assert not first.healthy
    held = pick(group, release=False)
    assert held is second  # now full
    assert [pick(group).name[-1] for _ in range(3)] == ["3"] * 3
    group.close()


# -- least connections ----------------------------------------------------------------------------


def test_least_conn_breaks_ties_round_robin() -> None:
    group = UpstreamGroup(ups(1, 2, 3), "least_conn")
    assert [pick(group).name[-1] for _ in range(6)] == list("123123")


def test_least_conn_prefers_the_least_busy() -> None:
    group = UpstreamGroup(ups(1, 2, 3), "least_conn")
    held = [pick(group, release=False) for _ in range(6)]
    assert Counter(up.name for up in held) == {
        n: 2 for n in ("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3")
    }
    second = held[1]
    group.release(second)
    group.release(held[4])  # the second one again: it now has none in flight
    assert pick(group, release=False) is second
    assert pick(group, release=False) is second  # 1 in flight vs 2 and 2
    assert sorted(up.active for up in group.upstreams) == [2, 2, 2]


def test_least_conn_counts_per_unit_of_weight() -> None:
    heavy, light = Upstream("http://heavy:1", weight=3), Upstream("http://light:1")
    group = UpstreamGroup([heavy, light], "least_conn")
    held = [pick(group, release=False) for _ in range(8)]
    assert Counter(up.name for up in held) == {"heavy:1": 6, "light:1": 2}


# -- consistent hashing ---------------------------------------------------------------------------


def clients(n: int) -> list[Req]:
    return [Req((f"10.{i // 250}.{i % 250}.{i % 7}", 1000 + i)) for i in range(n)]


def owners(group: UpstreamGroup, reqs: list[Req]) -> list[str]:
    found = []
    for req in reqs:
        up = group.owner(req)
        assert up is not None
        found.append(up.name)
    return found


def test_hash_keeps_a_client_on_one_upstream_whatever_its_port() -> None:
    group = UpstreamGroup(ups(1, 2, 3, 4), "hash")
    for req in clients(50):
        first = pick(group, req)
        same_host = Req((req.client_address[0], 9))
        assert all(pick(group, same_host) is first for _ in range(3))


def test_hash_spreads_keys_evenly() -> None:
    group = UpstreamGroup(ups(*range(1, 11)), "hash")
    counts = Counter(owners(group, clients(10000)))
    assert len(counts) == 10
    assert all(600 <= count <= 1400 for count in counts.values()), counts


def test_hash_adding_an_upstream_moves_only_about_one_in_n_keys() -> None:
    reqs = clients(10000)
    group = UpstreamGroup(ups(*range(1, 11)), "hash")
    before = owners(group, reqs)
    added = group.add("http://127.0.0.1:11")
    after = owners(group, reqs)
    moved = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert all(new == added.name for _, new in moved)  # keys only ever move to the newcomer
    assert 10000 / 11 / 2 < len(moved) < 10000 / 11 * 2


def test_hash_removing_an_upstream_moves_only_its_keys() -> None:
    reqs = clients(10000)
    group = UpstreamGroup(ups(*range(1, 11)), "hash")
    before = owners(group, reqs)
    gone = group.upstreams[3]
    group.remove(gone)
    after = owners(group, reqs)
    moved = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert all(old == gone.name for old, _ in moved)
    assert len(moved) == before.count(gone.name)
    assert 10000 / 10 / 2 < len(moved) < 10000 / 10 * 2
    # and they spread over the others rather than landing on one neighbour
    assert len({new for _, new in moved}) >= 5


def test_hash_walks_the_ring_past_unavailable_upstreams() -> None:
    group = UpstreamGroup(ups(1, 2, 3, 4, 5), "hash", eject_after=1)
    reqs = clients(2000)
    home = owners(group, reqs)
    down = group.upstreams[0]
    held = pick(group, Req(reqs[home.index(down.name)].client_address), release=False)
    assert held is down
    group.release(down, ok=False)  # ejected
    rerouted = [pick(group, req).name for req in reqs]
    assert down.name not in rerouted
    # keys of healthy upstreams stay put; the ejected one's keys spread over several others
    assert all(new == old for new, old in zip(rerouted, home, strict=True) if old != down.name)
    assert len({new for new, old in zip(rerouted, home, strict=True) if old == down.name}) >= 3
    group.close()  # readmits silently
    assert [pick(group, req).name for req in reqs] == home


def test_hash_moves_on_when_the_owner_is_full() -> None:
    group = UpstreamGroup(ups(1, 2, 3, max_conns=1), "hash")
    req = clients(1)[0]
    first = pick(group, req, release=False)
    second = pick(group, req, release=False)
    third = pick(group, req, release=False)
    assert len({first.name, second.name, third.name}) == 3
    assert first is group.owner(req)


def test_hash_on_a_header_with_the_address_as_fallback() -> None:
    group = UpstreamGroup(ups(*range(1, 9)), "hash", hash_key="header:X-Session")
    sessions = [f"s{i}".encode() for i in range(40)]
    for session in sessions:
        chosen = {
            pick(group, Req(req.client_address, [(b"x-SESSION", session)])).name
            for req in clients(20)
        }
        assert len(chosen) == 1  # many clients, one session: one upstream
    spread = {pick(group, Req(("10.0.0.1", 1), [(b"X-Session", s)])).name for s in sessions}
    assert len(spread) >= 4
    no_header = clients(30)
    assert [pick(group, req).name for req in no_header] == [
        pick(group, Req(req.client_address, [(b"other", b"x")])).name for req in no_header
    ]


# -- limits and the queue -------------------------------------------------------------------------


def test_max_conns_queues_fifo_and_hands_each_released_slot_to_the_first(loop: LoopBase) -> None:
    up = Upstream("http://127.0.0.1:1", max_conns=2)
    group = UpstreamGroup([up], loop=loop)
    grants = Grants()
    for _ in range(5):
        group.acquire(Req(), grants)
    assert len(grants.calls) == 2
    assert group.queued == 3
    assert up.active == 2 and up.full
    group.release(up)
    assert up.active == 2  # the slot is reserved for the first waiting at once
    assert group.queued == 2
    assert len(grants.calls) == 2  # ...and handed over from the loop, not inside release()
    drain(loop)
    assert len(grants.calls) == 3
    for n in range(3, 5):
        group.release(up)
        drain(loop)
        assert len(grants.calls) == n + 1
    assert all(upstream is up and reason is None for upstream, reason in grants.calls)
    assert group.queued == 0


def test_waiting_requests_are_served_in_arrival_order(loop: LoopBase) -> None:
    up = Upstream("http://127.0.0.1:1", max_conns=1)
    group = UpstreamGroup([up], loop=loop)
    served: list[int] = []

    def served_as(n: int) -> Any:
        return lambda upstream, reason: served.append(n)

    for n in range(6):
        group.acquire(Req(), served_as(n))
    for _ in range(5):
        group.release(up)
        drain(loop)
    assert served == [0, 1, 2, 3, 4, 5]


def test_queue_limit_refuses_beyond(loop: LoopBase) -> None:
    group = UpstreamGroup(ups(1, 2, max_conns=1), loop=loop, queue_limit=2)
    grants = Grants()
    for _ in range(6):
        group.acquire(Req(), grants)
    assert [reason for _, reason in grants.calls] == [None, None, "queue full", "queue full"]
    assert group.queued == 2
    no_queue = UpstreamGroup(ups(3, max_conns=1), loop=loop, queue_limit=0)
    refused = Grants()
    no_queue.acquire(Req(), refused)
    no_queue.acquire(Req(), refused)
    assert refused.names == ["127.0.0.1:3", "queue full"]
    group.close()
    drain(loop)
    assert [reason for _, reason in grants.calls[4:]] == ["closed", "closed"]


def test_cancel_forgets_a_waiting_request(loop: LoopBase) -> None:
    up = Upstream("http://127.0.0.1:1", max_conns=1)
    group = UpstreamGroup([up], loop=loop)
    first, gone, last = Req(), Req(), Req()
    grants = Grants()
    group.acquire(first, grants)
    group.acquire(gone, lambda u, r: grants.calls.append((None, "cancelled one called")))
    group.acquire(last, grants)
    assert group.cancel(gone)
    assert not group.cancel(gone)
    assert not group.cancel(first)
    group.release(up)
    drain(loop)
    assert grants.calls == [(up, None), (up, None)]


def test_a_released_slot_of_another_upstream_serves_the_queue(loop: LoopBase) -> None:
    a, b = ups(1, 2, max_conns=1)
    group = UpstreamGroup([a, b], "least_conn", loop=loop)
    grants = Grants()
    for _ in range(4):
        group.acquire(Req(), grants)
    assert grants.names == ["127.0.0.1:1", "127.0.0.1:2"]
    group.release(b)
    group.release(a)
    drain(loop)
    assert grants.names == ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:2", "127.0.0.1:1"]


# -- passive health -------------------------------------------------------------------------------


def test_consecutive_failures_eject_and_a_success_resets_the_count(loop: LoopBase) -> None:
    a, b = ups(1, 2)
    group = UpstreamGroup([a, b], loop=loop, eject_after=3)
    changes: list[tuple[str, bool]] = []
    group.on("health", lambda up, healthy: changes.append((up.name, healthy)))

    def through_a(ok: bool) -> None:
        up = pick(group, release=False)
        while up is not a:
            group.release(up)
            up = pick(group, release=False)
        group.release(a, ok)

    for ok in (False, False, True, False, False):
        through_a(ok)
    assert a.failures == 2
    assert a.healthy
    assert changes == []
    through_a(False)
    assert (a.healthy, a.ejected) == (False, True)
    assert a.ejections == 1
    assert changes == [("127.0.0.1:1", False)]
    assert [pick(group).name for _ in range(3)] == ["127.0.0.1:2"] * 3
    group.close()


def test_eject_after_zero_never_ejects() -> None:
    group = UpstreamGroup(ups(1), eject_after=0)
    for _ in range(20):
        up = pick(group, release=False)
        group.release(up, ok=False)
    assert up.healthy and up.failures == 20


def test_when_the_last_healthy_upstream_goes_down_the_queue_fails(loop: LoopBase) -> None:
    up = Upstream("http://127.0.0.1:1", max_conns=1)
    group = UpstreamGroup([up], loop=loop, eject_after=1)
    grants = Grants()
    for _ in range(3):
        group.acquire(Req(), grants)
    group.set_health(up, False)  # (an active health check: ejection keeps a lone upstream)
    group.release(up, ok=False)
    drain(loop)
    assert grants.calls == [
        (up, None),
        (None, "no healthy upstream"),
        (None, "no healthy upstream"),
    ]
    refused = Grants()
    group.acquire(Req(), refused)
    assert refused.calls == [(None, "no healthy upstream")]
    group.close()


def test_the_only_upstream_of_a_group_is_never_ejected(loop: LoopBase) -> None:
    group = UpstreamGroup(ups(1), loop=loop, eject_after=2, eject_for=60)
    for _ in range(10):
        up = pick(group, release=False)
        group.release(up, ok=False)
    assert (up.healthy, up.ejected, up.ejections, up.failures) == (True, False, 0, 10)
    assert pick(group) is up  # still tried: the group serves as soon as its origin is back
    group.close()


def test_the_last_healthy_upstream_is_not_ejected_when_the_others_are(loop: LoopBase) -> None:
    a, b, c = ups(1, 2, 3)
    group = UpstreamGroup([a, b, c], loop=loop, eject_after=1, eject_for=60)
    for up in (a, b, c):
        up.active += 1
        group.release(up, ok=False)
    assert [(up.ejected, up.healthy) for up in (a, b, c)] == [
        (True, False),
        (True, False),
        (False, True),
    ]
    assert [pick(group) for _ in range(3)] == [c, c, c]
    # with one failed by its health check instead, the last one is kept too
    d, e = ups(4, 5)
    checked = UpstreamGroup([d, e], loop=loop, eject_after=1, eject_for=60)
    checked.set_health(d, False)
    e.active += 1
    checked.release(e, ok=False)
    assert (e.ejected, e.healthy) == (False, True)
    # once another is healthy again, the next failure ejects it
    checked.set_health(d, True)
    e.active += 1
    checked.release(e, ok=False)
    assert e.ejected
    group.close()
    checked.close()


def test_an_upstream_last_healthy_in_another_group_is_not_ejected(loop: LoopBase) -> None:
    shared, other = ups(1, 2)
    wide = UpstreamGroup([shared, other], loop=loop, eject_after=1, eject_for=60)
    lone = UpstreamGroup([shared], loop=loop)
    shared.active += 1
    wide.release(shared, ok=False)  # wide could do without it, lone could not
    assert not shared.ejected
    assert pick(lone) is shared
    wide.close()
    lone.close()


def test_remove_takes_an_upstream_out_and_its_requests_still_release() -> None:
    a, b = ups(1, 2)
    group = UpstreamGroup([a, b])
    held = pick(group, release=False)
    group.remove(held)
    assert [pick(group).name for _ in range(3)] == [b.name] * 3
    group.release(held)
    assert held.active == 0
    with pytest.raises(ValueError, match="not in this group"):
        group.remove(held)
    ejecting = UpstreamGroup(ups(3, 4), eject_after=1, eject_for=60)
    out = pick(ejecting, release=False)
    ejecting.release(out, ok=False)
    assert out.ejected
    ejecting.remove(out)  # its ejection by this group ends with its membership
    assert out.healthy


def test_statistics_snapshot(loop: LoopBase) -> None:
    a, b = ups(1, 2, max_conns=1)
    group = UpstreamGroup([a, b], "least_conn", loop=loop, eject_after=1)
    pick(group, release=False)
    held = pick(group, release=False)
    waiting = Grants()
    group.acquire(Req(), waiting)
    group.release(held, ok=False)  # ejected: the waiting request cannot have its slot
    stats = group.statistics()
    assert stats.policy == "least_conn"
    assert stats.queued == 1
    assert [(s.name, s.active, s.healthy, s.failures, s.ejections) for s in stats.upstreams] == [
        ("127.0.0.1:1", 1, True, 0, 0),
        ("127.0.0.1:2", 0, False, 1, 1),
    ]
    assert stats.upstreams[0].max_conns == 1
    group.close()
    drain(loop)
    assert waiting.calls == [(None, "closed")]
    assert group.statistics().queued == 0


def test_an_upstream_shared_by_two_groups_shares_its_slots_and_health(loop: LoopBase) -> None:
    shared = Upstream("http://127.0.0.1:1", max_conns=1)
    first = UpstreamGroup(
        [shared, Upstream("http://127.0.0.1:3")], loop=loop, eject_after=1, eject_for=60
    )
    second = UpstreamGroup([shared, Upstream("http://127.0.0.1:2", max_conns=1)], loop=loop)
    seen: list[str] = []
    first.on("health", lambda up, healthy: seen.append(f"first {up.name} {healthy}"))
    second.on("health", lambda up, healthy: seen.append(f"second {up.name} {healthy}"))
    held = Grants()
    first.acquire(Req(), held)
    second.acquire(Req(), held)  # the shared one is full: the other one
    waiting = Grants()
    second.acquire(Req(), waiting)
    assert held.names == ["127.0.0.1:1", "127.0.0.1:2"]
    assert second.queued == 1
    first.release(shared)  # frees a slot second's queue can use
    drain(loop)
    assert waiting.calls == [(shared, None)]
    second.release(shared)
    shared.active += 1
    first.release(shared, ok=False)  # ejected by first: second sees it too
    assert seen == ["first 127.0.0.1:1 False", "second 127.0.0.1:1 False"]
    assert second.statistics().upstreams[0].healthy is False
    first.close()
    second.close()
