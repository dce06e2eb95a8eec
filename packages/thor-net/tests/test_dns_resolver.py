"""thor.dns.Resolver against a DNS server on 127.0.0.1: answers, failures, transport, cache.

Every test runs a fresh loop and a ``DnsTestServer`` (``dns_test_server.py``) on it; the
resolver is pointed at that server only, with no hosts file and no resolv.conf, so nothing here
touches the machine's DNS or the internet. The ``loop`` fixture fails a test that leaves file
descriptors open (a query socket not closed).
"""

from __future__ import annotations

import contextvars
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dns_test_server import DnsTestServer, closed_udp_port

import thor.dns
import thor.loop
from thor.dns import Resolver
from thor.loop import LoopBase

EAI_NODATA = getattr(socket, "EAI_NODATA", socket.EAI_NONAME)


def _open_fds() -> set[str] | None:
    try:
        return set(os.listdir("/proc/self/fd"))
    except OSError:
        return None


@pytest.fixture
def loop() -> Iterator[LoopBase]:
    """A fresh loop; fails the test if file descriptors were left open."""
    before = _open_fds()
    new_loop = thor.loop.make()
    yield new_loop
    new_loop.close()
    after = _open_fds()
    if before is not None and after is not None:
        leaked = after - before
        assert not leaked, f"file descriptors left open: {sorted(leaked)}"


@pytest.fixture
def server(loop: LoopBase) -> Iterator[Any]:
    dns_server = DnsTestServer(loop)
    yield dns_server
    dns_server.close()


@pytest.fixture
def second_server(loop: LoopBase) -> Iterator[Any]:
    dns_server = DnsTestServer(loop)
    yield dns_server
    dns_server.close()


def make_resolver(*servers: Any, **settings: Any) -> Resolver:
    settings.setdefault("timeout", 2.0)
    settings.setdefault("attempts", 1)
    settings.setdefault("hosts_path", None)
    settings.setdefault("resolv_conf_path", None)
    nameservers = [s if isinstance(s, tuple) else s.address for s in servers]
    return Resolver(nameservers=nameservers, **settings)


def resolve(
    loop: LoopBase,
    resolver: Resolver,
    host: bytes | str,
    port: int = 80,
    socktype: int = socket.SOCK_STREAM,
    *,
    limit: float = 5.0,
) -> Any:
    """Run the loop until the lookup calls back (at most ``limit`` seconds); the result."""
    results: list[Any] = []

    def done(result: Any) -> None:
        results.append(result)
        loop.stop()

    resolver.lookup(loop, host, port, socktype, done)
    loop.schedule(limit, loop.stop)
    loop.run()
    assert len(results) == 1, f"the lookup of {host!r} did not call back within {limit} s"
    return results[0]


def addresses(result: Any) -> list[str]:
    assert isinstance(result, list), f"expected results, got {result!r}"
    return [entry[4][0] for entry in result]


def assert_gaierror(result: Any, code: int) -> None:
    assert isinstance(result, socket.gaierror), f"expected gaierror, got {result!r}"
    assert result.errno == code, result


# -- answers ---------------------------------------------------------------------------------------


def test_a_record(loop: LoopBase, server: Any) -> None:
    server.add("www.test", "A", "192.0.2.1")
    result = resolve(loop, make_resolver(server), b"www.test", 8080)
    assert result == [
        (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("192.0.2.1", 8080))
    ]
    assert server.count("www.test", "A") == 1
    assert server.count("www.test", "AAAA") == 1  # asked in parallel


def test_aaaa_record(loop: LoopBase, server: Any) -> None:
    server.add("v6.test", "AAAA", "2001:db8::1")
    result = resolve(loop, make_resolver(server), b"v6.test", 443)
    assert result == [
        (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("2001:db8::1", 443, 0, 0))
    ]


def test_both_families_interleaved_ipv6_first(loop: LoopBase, server: Any) -> None:
    server.add("dual.test", "A", "192.0.2.1", "192.0.2.2", "192.0.2.3")
    server.add("dual.test", "AAAA", "2001:db8::1", "2001:db8::2")
    result = resolve(loop, make_resolver(server), b"dual.test")
    # order within an RRset is the server's (dnspython keeps it as a set); the families alternate
    assert sorted(addresses(result)) == sorted(
        ["2001:db8::1", "192.0.2.1", "2001:db8::2", "192.0.2.2", "192.0.2.3"]
    )
    assert [entry[0] for entry in result] == [
        socket.AF_INET6,
        socket.AF_INET,
        socket.AF_INET6,
        socket.AF_INET,
        socket.AF_INET,
    ]


def test_requested_socktype_and_protocol(loop: LoopBase, server: Any) -> None:
    server.add("www.test", "A", "192.0.2.1")
    result = resolve(loop, make_resolver(server), b"www.test", 53, socket.SOCK_DGRAM)
    assert result == [
        (socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP, "", ("192.0.2.1", 53))
    ]


def test_cname_chain_is_followed(loop: LoopBase, server: Any) -> None:
    server.add_cname("www.test", "alias1.test")
    server.add_cname("alias1.test", "alias2.test")
    server.add_cname("alias2.test", "real.test")
    server.add("real.test", "A", "192.0.2.9")
    server.add("real.test", "AAAA", "2001:db8::9")
    result = resolve(loop, make_resolver(server), b"www.test")
    assert addresses(result) == ["2001:db8::9", "192.0.2.9"]
    assert server.count() == 2  # the chain came in the answers: no further queries


def test_cname_loop_is_an_error_not_a_hang(loop: LoopBase, server: Any) -> None:
    server.add_cname("a.test", "b.test")
    server.add_cname("b.test", "a.test")
    assert_gaierror(resolve(loop, make_resolver(server), b"a.test"), EAI_NODATA)


# -- negative answers and failures -----------------------------------------------------------------


def test_nxdomain_is_eai_noname(loop: LoopBase, server: Any) -> None:
    assert_gaierror(resolve(loop, make_resolver(server), b"missing.test"), socket.EAI_NONAME)


def test_name_without_addresses_is_eai_nodata(loop: LoopBase, server: Any) -> None:
    server.add("text.test", "TXT", '"hello"')
    assert_gaierror(resolve(loop, make_resolver(server), b"text.test"), EAI_NODATA)


def test_timeout_is_eai_again_after_every_attempt(loop: LoopBase, server: Any) -> None:
    server.mode = "drop"
    resolver = make_resolver(server, timeout=0.05, attempts=3)
    assert_gaierror(resolve(loop, resolver, b"slow.test"), socket.EAI_AGAIN)
    assert server.count("slow.test", "A") == 3
    assert server.count("slow.test", "AAAA") == 3


def test_servfail_is_eai_again(loop: LoopBase, server: Any) -> None:
    server.mode = "servfail"
    assert_gaierror(resolve(loop, make_resolver(server), b"broken.test"), socket.EAI_AGAIN)


def test_refused_everywhere_is_eai_fail(loop: LoopBase, server: Any) -> None:
    server.mode = "refused"
    assert_gaierror(resolve(loop, make_resolver(server), b"private.test"), socket.EAI_FAIL)


def test_no_nameserver_is_eai_fail(loop: LoopBase) -> None:
    resolver = make_resolver()
    assert_gaierror(resolve(loop, resolver, b"www.test"), socket.EAI_FAIL)


def test_retry_goes_to_the_second_nameserver(
    loop: LoopBase, server: Any, second_server: Any
) -> None:
    server.mode = "drop"
    second_server.add("www.test", "A", "192.0.2.2")
    resolver = make_resolver(server, second_server, timeout=0.05)
    assert addresses(resolve(loop, resolver, b"www.test")) == ["192.0.2.2"]
    assert server.count("www.test", "A") == 1
    assert second_server.count("www.test", "A") == 1


def test_a_refused_port_fails_over_without_waiting_for_the_timeout(
    loop: LoopBase, server: Any
) -> None:
    server.add("www.test", "A", "192.0.2.3")
    # a 60 s timeout: the lookup completes within the 5 s limit only if the ICMP port
    # unreachable from the dead server moves it on at once
    resolver = make_resolver(("127.0.0.1", closed_udp_port()), server, timeout=60.0)
    assert addresses(resolve(loop, resolver, b"www.test", limit=5.0)) == ["192.0.2.3"]


def test_garbage_is_ignored_and_the_next_server_asked(
    loop: LoopBase, server: Any, second_server: Any
) -> None:
    server.mode = "garbage"
    second_server.add("www.test", "A", "192.0.2.4")
    resolver = make_resolver(server, second_server, timeout=0.05)
    assert addresses(resolve(loop, resolver, b"www.test")) == ["192.0.2.4"]


def test_servfail_then_answer_from_the_next_server(
    loop: LoopBase, server: Any, second_server: Any
) -> None:
    server.mode = "servfail"
    second_server.add("www.test", "AAAA", "2001:db8::4")
    resolver = make_resolver(server, second_server)
    assert addresses(resolve(loop, resolver, b"www.test")) == ["2001:db8::4"]


def test_a_server_without_edns_is_asked_again_without_it(loop: LoopBase, server: Any) -> None:
    server.mode = "no_edns"
    server.add("old.test", "A", "192.0.2.40")
    assert addresses(resolve(loop, make_resolver(server), b"old.test")) == ["192.0.2.40"]
    assert server.count("old.test", "A") == 2


def test_rotate_spreads_queries_over_the_servers(
    loop: LoopBase, server: Any, second_server: Any
) -> None:
    for dns_server in (server, second_server):
        dns_server.add("www.test", "A", "192.0.2.5")
    resolver = make_resolver(server, second_server, rotate=True, cache_size=0)
    for _ in range(2):
        assert addresses(resolve(loop, resolver, b"www.test")) == ["192.0.2.5"]
    assert server.count() == 2
    assert second_server.count() == 2


# -- transport -------------------------------------------------------------------------------------


def test_truncated_answer_is_retried_over_tcp(loop: LoopBase, server: Any) -> None:
    many = [f"10.0.{index // 200}.{index % 200 + 1}" for index in range(300)]
    server.add("big.test", "A", *many)
    result = resolve(loop, make_resolver(server), b"big.test")
    assert sorted(addresses(result)) == sorted(many)
    transports = {transport for transport, name, rdtype in server.queries if rdtype == "A"}
    assert transports == {"udp", "tcp"}


def test_truncation_at_512_bytes_without_edns_sized_answers(loop: LoopBase, server: Any) -> None:
    server.udp_max_size = 512
    many = [f"2001:db8::{index:x}" for index in range(1, 41)]
    server.add("big6.test", "AAAA", *many)
    result = resolve(loop, make_resolver(server), b"big6.test")
    assert sorted(addresses(result)) == sorted(many)
    assert server.count("big6.test", "AAAA") == 2  # once over UDP, once over TCP


def test_truncated_answer_with_no_tcp_server_fails_over(loop: LoopBase, second_server: Any) -> None:
    udp_only = DnsTestServer(loop, tcp=False)
    try:
        udp_only.udp_max_size = 512  # dnspython's smallest
        udp_only.add("big.test", "A", *[f"10.1.0.{index}" for index in range(1, 80)])
        second_server.add("big.test", "A", "192.0.2.30")
        resolver = make_resolver(udp_only, second_server)
        assert addresses(resolve(loop, resolver, b"big.test")) == ["192.0.2.30"]
    finally:
        udp_only.close()


# -- search domains and ndots ----------------------------------------------------------------------


def test_search_domains_are_tried_in_order(loop: LoopBase, server: Any) -> None:
    server.add("www.two.test", "A", "192.0.2.6")
    resolver = make_resolver(server, search=["one.test", "two.test"], ndots=1)
    assert addresses(resolve(loop, resolver, b"www")) == ["192.0.2.6"]
    asked = [name for _, name, rdtype in server.queries if rdtype == "A"]
    assert asked == ["www.one.test", "www.two.test"]


def test_a_name_with_ndots_dots_is_tried_as_is_first(loop: LoopBase, server: Any) -> None:
    server.add("www.one.one.test", "A", "192.0.2.7")
    resolver = make_resolver(server, search=["one.test"], ndots=1)
    assert addresses(resolve(loop, resolver, b"www.one")) == ["192.0.2.7"]
    asked = [name for _, name, rdtype in server.queries if rdtype == "A"]
    assert asked == ["www.one", "www.one.one.test"]


def test_a_name_with_fewer_dots_than_ndots_tries_the_search_list_first(
    loop: LoopBase, server: Any
) -> None:
    server.add("www.one", "A", "192.0.2.8")
    resolver = make_resolver(server, search=["one.test"], ndots=2)
    assert addresses(resolve(loop, resolver, b"www.one")) == ["192.0.2.8"]
    asked = [name for _, name, rdtype in server.queries if rdtype == "A"]
    assert asked == ["www.one.one.test", "www.one"]


def test_an_absolute_name_skips_the_search_list(loop: LoopBase, server: Any) -> None:
    resolver = make_resolver(server, search=["one.test"], ndots=5)
    assert_gaierror(resolve(loop, resolver, b"www."), socket.EAI_NONAME)
    assert [name for _, name, _ in server.queries] == ["www", "www"]


def test_a_timeout_stops_the_search(loop: LoopBase, server: Any) -> None:
    server.mode = "drop"
    resolver = make_resolver(server, search=["one.test", "two.test"], timeout=0.05)
    assert_gaierror(resolve(loop, resolver, b"www"), socket.EAI_AGAIN)
    assert {name for _, name, _ in server.queries} == {"www.one.test"}


# -- hosts file, localhost, literals --------------------------------------------------------------


def test_hosts_file_wins_over_dns(loop: LoopBase, server: Any, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("# test hosts\n192.0.2.50 www.test www\n2001:db8::50 www.test\n")
    server.add("www.test", "A", "192.0.2.1")
    resolver = make_resolver(server, hosts_path=hosts)
    assert addresses(resolve(loop, resolver, b"WWW.test")) == ["2001:db8::50", "192.0.2.50"]
    assert addresses(resolve(loop, resolver, b"www")) == ["192.0.2.50"]
    assert server.count() == 0


def test_hosts_file_changes_are_seen(loop: LoopBase, server: Any, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("192.0.2.51 app.test\n")
    now = [100.0]
    resolver = make_resolver(server, hosts_path=hosts, clock=lambda: now[0])
    assert addresses(resolve(loop, resolver, b"app.test")) == ["192.0.2.51"]
    hosts.write_text("192.0.2.52 app.test # moved\n")
    now[0] += 2.0  # past the check interval
    assert addresses(resolve(loop, resolver, b"app.test")) == ["192.0.2.52"]


def test_localhost_resolves_with_no_hosts_file_and_no_nameserver(loop: LoopBase) -> None:
    resolver = make_resolver()
    for name in (b"localhost", b"LOCALHOST.", b"app.localhost"):
        assert addresses(resolve(loop, resolver, name)) == ["::1", "127.0.0.1"]


@pytest.mark.parametrize(
    "case",
    [
        (b"192.0.2.7", socket.AF_INET, ("192.0.2.7", 9)),
        ("192.0.2.7", socket.AF_INET, ("192.0.2.7", 9)),
        (b"::1", socket.AF_INET6, ("::1", 9, 0, 0)),
        (b"[::1]", socket.AF_INET6, ("::1", 9, 0, 0)),
        (b"2001:DB8:0::1", socket.AF_INET6, ("2001:db8::1", 9, 0, 0)),
        (b"fe80::1%1", socket.AF_INET6, ("fe80::1", 9, 0, 1)),
    ],
)
@pytest.mark.parametrize("socktype", [socket.SOCK_STREAM, socket.SOCK_DGRAM])
def test_ip_literals_answer_without_dns_with_the_requested_socktype(
    loop: LoopBase,
    server: Any,
    case: tuple[bytes | str, socket.AddressFamily, tuple[Any, ...]],
    socktype: socket.SocketKind,
) -> None:
    host, family, sockaddr = case
    result = resolve(loop, make_resolver(server), host, 9, socktype)
    proto = socket.IPPROTO_TCP if socktype == socket.SOCK_STREAM else socket.IPPROTO_UDP
    assert result == [(family, socktype, proto, "", sockaddr)]
    assert result[0][1] is socktype
    assert server.count() == 0


@pytest.mark.parametrize(
    "host",
    [b"", b"bad name", b"a..b", b"x" * 64 + b".test", b"a." * 130 + b"test", b"\xff\xfe", b"[::1"],
)
def test_bad_names_give_gaierror(loop: LoopBase, server: Any, host: bytes) -> None:
    assert_gaierror(resolve(loop, make_resolver(server), host), socket.EAI_NONAME)
    assert server.count() == 0


def test_non_ascii_names_are_idna_encoded(loop: LoopBase, server: Any) -> None:
    server.add("xn--bcher-kva.test", "A", "192.0.2.10")
    resolver = make_resolver(server)
    assert addresses(resolve(loop, resolver, "bücher.test")) == ["192.0.2.10"]
    assert addresses(resolve(loop, resolver, "bücher.test".encode())) == ["192.0.2.10"]
    assert {name for _, name, _ in server.queries} == {"xn--bcher-kva.test"}


def test_bad_port_and_socktype(loop: LoopBase) -> None:
    resolver = make_resolver()
    assert_gaierror(resolve(loop, resolver, b"127.0.0.1", port=70000), socket.EAI_SERVICE)
    assert_gaierror(resolve(loop, resolver, b"127.0.0.1", socktype=12345), socket.EAI_SOCKTYPE)


# -- cache -----------------------------------------------------------------------------------------


def test_cache_hit_sends_no_query(loop: LoopBase, server: Any) -> None:
    server.add("www.test", "A", "192.0.2.11")
    resolver = make_resolver(server)
    first = resolve(loop, resolver, b"www.test")
    second = resolve(loop, resolver, b"www.test", port=8443)
    assert addresses(first) == addresses(second) == ["192.0.2.11"]
    assert second[0][4] == ("192.0.2.11", 8443)
    assert server.count() == 2  # A and AAAA, once


def test_answers_expire_with_their_ttl(loop: LoopBase, server: Any) -> None:
    server.add("www.test", "A", "192.0.2.12", ttl=30)
    server.add_cname("alias.test", "www.test", ttl=10)  # the shortest TTL in the chain counts
    now = [1000.0]
    resolver = make_resolver(server, clock=lambda: now[0])
    resolve(loop, resolver, b"alias.test")
    now[0] += 9.0
    resolve(loop, resolver, b"alias.test")
    assert server.count("alias.test", "A") == 1
    now[0] += 2.0
    assert addresses(resolve(loop, resolver, b"alias.test")) == ["192.0.2.12"]
    assert server.count("alias.test", "A") == 2


def test_negative_answers_are_cached_for_the_soa_minimum(loop: LoopBase, server: Any) -> None:
    server.negative_ttl = 20
    now = [1000.0]
    resolver = make_resolver(server, clock=lambda: now[0])
    resolve(loop, resolver, b"missing.test")
    now[0] += 19.0
    assert_gaierror(resolve(loop, resolver, b"missing.test"), socket.EAI_NONAME)
    assert server.count("missing.test", "A") == 1
    now[0] += 2.0
    resolve(loop, resolver, b"missing.test")
    assert server.count("missing.test", "A") == 2


def test_negative_answers_without_soa_are_cached_briefly(loop: LoopBase, server: Any) -> None:
    server.send_soa = False
    now = [1000.0]
    resolver = make_resolver(server, clock=lambda: now[0])
    resolve(loop, resolver, b"missing.test")
    now[0] += resolver.cache.negative_ttl - 1
    resolve(loop, resolver, b"missing.test")
    assert server.count("missing.test", "A") == 1
    now[0] += 2.0
    resolve(loop, resolver, b"missing.test")
    assert server.count("missing.test", "A") == 2


def test_failures_are_not_cached(loop: LoopBase, server: Any) -> None:
    server.mode = "servfail"
    resolver = make_resolver(server)
    resolve(loop, resolver, b"flaky.test")
    server.mode = "answer"
    server.add("flaky.test", "A", "192.0.2.13")
    assert addresses(resolve(loop, resolver, b"flaky.test")) == ["192.0.2.13"]


def test_identical_lookups_in_flight_share_one_query(loop: LoopBase, server: Any) -> None:
    server.add("www.test", "A", "192.0.2.14")
    resolver = make_resolver(server, cache_size=0)
    results: list[Any] = []

    def done(result: Any) -> None:
        results.append(result)
        if len(results) == 3:
            loop.stop()

    for port in (1, 2, 3):
        resolver.lookup(loop, b"www.test", port, socket.SOCK_STREAM, done)
    loop.schedule(5.0, loop.stop)
    loop.run()
    assert [result[0][4] for result in results] == [
        ("192.0.2.14", 1),
        ("192.0.2.14", 2),
        ("192.0.2.14", 3),
    ]
    assert server.count("www.test", "A") == 1


# -- the callback contract -------------------------------------------------------------------------

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


@pytest.mark.parametrize("host", [b"192.0.2.1", b"localhost", b"www.test", b"missing.test"])
def test_callback_is_async_once_on_the_loop_thread_in_the_callers_context(
    loop: LoopBase, server: Any, host: bytes
) -> None:
    server.add("www.test", "A", "192.0.2.15")
    resolver = make_resolver(server)
    calls: list[tuple[bool, str, int]] = []
    returned = [False]

    def done(result: Any) -> None:
        calls.append((returned[0], REQUEST_ID.get(), threading.get_ident()))

    def start() -> None:
        REQUEST_ID.set("request-42")
        resolver.lookup(loop, host, 80, socket.SOCK_STREAM, done)
        returned[0] = True

    contextvars.copy_context().run(start)
    # keep the loop running well after the answer, to catch a second call
    loop.schedule(0.3, loop.stop)
    loop.run()
    assert calls == [(True, "request-42", threading.get_ident())]
    assert REQUEST_ID.get() == "none"


def test_no_thread_is_created(loop: LoopBase, server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    server.add("www.test", "A", "192.0.2.16")
    server.add("big.test", "A", *[f"10.2.{index // 200}.{index % 200}" for index in range(300)])
    resolver = make_resolver(server)
    before = threading.active_count()
    started: list[threading.Thread] = []

    def record(thread: threading.Thread) -> None:  # replaces Thread.start: records, starts nothing
        started.append(thread)

    monkeypatch.setattr(threading.Thread, "start", record)
    for host in (b"www.test", b"big.test", b"missing.test", b"localhost"):
        resolve(loop, resolver, host)
        assert threading.active_count() == before
    assert started == []


def test_stopping_the_loop_cancels_queries_and_closes_their_sockets(
    loop: LoopBase, server: Any
) -> None:
    server.mode = "drop"
    resolver = make_resolver(server, timeout=30.0)
    calls: list[Any] = []
    resolver.lookup(loop, b"slow.test", 80, socket.SOCK_STREAM, calls.append)
    loop.schedule(0.05, loop.stop)
    loop.run()
    assert calls == []
    assert resolver._flights == {}
    # the loop fixture checks that the query sockets were closed


def test_default_resolver_is_replaceable(loop: LoopBase, server: Any) -> None:
    server.add("www.test", "A", "192.0.2.17")
    saved = thor.dns.get_default_resolver()
    mine = make_resolver(server)
    thor.dns.set_default_resolver(mine)
    try:
        assert thor.dns.get_default_resolver() is mine
        results: list[Any] = []

        def done(result: Any) -> None:
            results.append(result)
            loop.stop()

        thor.dns.lookup(loop, b"www.test", 80, socket.SOCK_STREAM, done)
        loop.schedule(5.0, loop.stop)
        loop.run()
        assert addresses(results[0]) == ["192.0.2.17"]
    finally:
        thor.dns.set_default_resolver(saved)


def test_resolving_without_the_network_does_not_import_dnspython() -> None:
    code = (
        "import socket, sys, thor.loop, thor.dns\n"
        "loop = thor.loop.make()\n"
        "r = thor.dns.Resolver(nameservers=[], hosts_path=None, resolv_conf_path=None)\n"
        "got = []\n"
        "for host in (b'127.0.0.1', b'[::1]', b'localhost'):\n"
        "    r.lookup(loop, host, 80, socket.SOCK_STREAM, got.append)\n"
        "loop.schedule(0.01, loop.stop)\n"
        "loop.run()\n"
        "assert len(got) == 3 and all(isinstance(g, list) for g in got), got\n"
        "assert 'dns.message' not in sys.modules, 'dnspython was imported'\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
