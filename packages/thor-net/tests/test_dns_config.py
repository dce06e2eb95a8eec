"""thor.dns without the network: resolv.conf and hosts parsing, names and literals, the cache."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import thor.loop
from thor.dns import (
    DnsCache,
    HostsFile,
    ResolvConf,
    Resolver,
    parse_hosts,
    parse_ip_literal,
    parse_resolv_conf,
    read_resolv_conf,
    to_dns_name,
)
from thor.dns._cache import ANSWER, NODATA, NXDOMAIN

# -- resolv.conf -----------------------------------------------------------------------------------


def test_resolv_conf_defaults() -> None:
    conf = parse_resolv_conf("")
    assert conf == ResolvConf()
    assert conf.nameservers == (("127.0.0.1", 53),)
    assert (conf.ndots, conf.timeout, conf.attempts, conf.rotate) == (1, 5.0, 2, False)


def test_resolv_conf_full() -> None:
    conf = parse_resolv_conf(
        """
        # comment
        ; another
        nameserver 192.0.2.53
        nameserver 2001:db8::53   # trailing comment
        nameserver not-an-address
        nameserver [2001:db8::54]:5353
        nameserver 192.0.2.99
        domain ignored.example
        search Example.COM. corp.example
        options ndots:2 timeout:3 attempts:4 rotate edns0 unknown:7
        """
    )
    assert conf.nameservers == (
        ("192.0.2.53", 53),
        ("2001:db8::53", 53),
        ("2001:db8::54", 5353),
    )  # at most three, as the C library
    assert conf.search == ("example.com", "corp.example")
    assert (conf.ndots, conf.timeout, conf.attempts, conf.rotate) == (2, 3.0, 4, True)


def test_resolv_conf_last_of_domain_and_search_wins_and_options_are_capped() -> None:
    conf = parse_resolv_conf(
        "search a.example\ndomain b.example\noptions ndots:99 timeout:0 attempts:9"
    )
    assert conf.search == ("b.example",)
    assert (conf.ndots, conf.timeout, conf.attempts) == (15, 1.0, 5)


def test_resolv_conf_default_domain_is_used_without_search() -> None:
    assert parse_resolv_conf("", default_domain="corp.example.").search == ("corp.example",)
    assert parse_resolv_conf("search x.example", default_domain="corp.example").search == (
        "x.example",
    )


def test_read_resolv_conf_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 192.0.2.1\nsearch file.example\noptions ndots:3\n")
    conf = read_resolv_conf(path, environ={})
    assert conf.nameservers == (("192.0.2.1", 53),)
    assert conf.search == ("file.example",)
    env = {"LOCALDOMAIN": "env1.example env2.example", "RES_OPTIONS": "ndots:4 attempts:1"}
    conf = read_resolv_conf(path, environ=env)
    assert conf.search == ("env1.example", "env2.example")
    assert (conf.ndots, conf.attempts) == (4, 1)
    missing = read_resolv_conf(tmp_path / "missing", environ={})
    assert missing.nameservers == (("127.0.0.1", 53),)


def test_resolver_reads_resolv_conf_and_explicit_settings_win(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 192.0.2.1\nsearch file.example\noptions timeout:7 attempts:3\n")
    resolver = Resolver(resolv_conf_path=path, hosts_path=None, attempts=1)
    assert resolver.nameservers == [("192.0.2.1", 53)]
    assert resolver.search == ["file.example"]
    assert (resolver.timeout, resolver.attempts) == (7.0, 1)
    path.write_text("nameserver 192.0.2.2\n")
    resolver.reload()
    assert resolver.nameservers == [("192.0.2.2", 53)]
    assert resolver.attempts == 1


def test_resolver_rereads_resolv_conf_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 192.0.2.1\n")
    now = [0.0]
    resolver = Resolver(resolv_conf_path=path, hosts_path=None, clock=lambda: now[0], timeout=9)
    loop = thor.loop.make()
    try:
        path.write_text("nameserver 192.0.2.2\noptions timeout:1\n# longer than before\n")
        resolver.lookup(loop, b"localhost", 80, socket.SOCK_STREAM, lambda result: None)
        assert resolver.nameservers == [("192.0.2.1", 53)]  # not checked yet
        now[0] += 6.0
        resolver.lookup(loop, b"www.example", 80, socket.SOCK_STREAM, lambda result: None)
        assert resolver.nameservers == [("192.0.2.2", 53)]
        assert resolver.timeout == 9  # given to the constructor: kept
    finally:
        loop.stop()
        loop.close()


def test_resolver_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="nameserver"):
        Resolver(nameservers=["dns.example"], resolv_conf_path=None)
    with pytest.raises(ValueError, match="timeout"):
        Resolver(timeout=0, resolv_conf_path=None)
    with pytest.raises(ValueError, match="attempts"):
        Resolver(attempts=0, resolv_conf_path=None)
    assert Resolver(
        nameservers=["::1", ("192.0.2.1", 5353)], resolv_conf_path=None
    ).nameservers == [
        ("::1", 53),
        ("192.0.2.1", 5353),
    ]


# -- hosts -----------------------------------------------------------------------------------------


def test_parse_hosts() -> None:
    names = parse_hosts(
        """
        127.0.0.1   localhost
        ::1         localhost ip6-localhost  # comment
        192.0.2.1   www.example WWW.Example. alias
        192.0.2.2   www.example
        192.0.2.1   www.example
        fe80::1%1   link.example
        not-an-ip   broken.example
        192.0.2.3
        # 192.0.2.4 commented.example
        """
    )
    assert names["localhost"] == ((("::1", 0),), (("127.0.0.1", 0),))
    assert names["www.example"] == ((), (("192.0.2.1", 0), ("192.0.2.2", 0)))
    assert names["alias"] == ((), (("192.0.2.1", 0),))
    assert names["link.example"] == ((("fe80::1", 1),), ())
    assert "broken.example" not in names
    assert "commented.example" not in names


def test_hosts_file_rereads_when_changed(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    now = [0.0]
    hosts = HostsFile(path, clock=lambda: now[0], check_interval=1.0)
    assert hosts.lookup("a.example") is None  # missing file: no names
    path.write_text("192.0.2.1 a.example\n")
    assert hosts.lookup("a.example") is None  # not checked again yet
    now[0] = 1.5
    assert hosts.lookup("a.example") == ((), (("192.0.2.1", 0),))
    path.write_text("192.0.2.2 a.example b.example\n")
    hosts.reload()
    assert hosts.lookup("b.example") == ((), (("192.0.2.2", 0),))


# -- names and literals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (b"192.0.2.1", (socket.AF_INET, "192.0.2.1", 0)),
        ("::1", (socket.AF_INET6, "::1", 0)),
        ("[::1]", (socket.AF_INET6, "::1", 0)),
        ("2001:DB8:0:0::1", (socket.AF_INET6, "2001:db8::1", 0)),
        ("fe80::1%7", (socket.AF_INET6, "fe80::1", 7)),
        ("::ffff:192.0.2.1", (socket.AF_INET6, "::ffff:192.0.2.1", 0)),
        ("127.1", None),  # inet_aton spellings are not literals
        ("0x7f.0.0.1", None),
        ("2130706433", None),
        ("01.2.3.4", None),
        ("[192.0.2.1]", None),
        ("[::1", None),
        ("fe80::1%no-such-interface", None),
        ("www.example", None),
        ("", None),
        (b"\xff", None),
    ],
)
def test_parse_ip_literal(host: str | bytes, expected: object) -> None:
    assert parse_ip_literal(host) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (b"WWW.Example.COM", ("www.example.com", False)),
        (b"www.example.com.", ("www.example.com", True)),
        ("bücher.example", ("xn--bcher-kva.example", False)),
        ("bücher.example".encode(), ("xn--bcher-kva.example", False)),
        (b"xn--bcher-kva.example", ("xn--bcher-kva.example", False)),
        (b"_sip._udp.example", ("_sip._udp.example", False)),
        (b"a" * 63 + b".example", ("a" * 63 + ".example", False)),
    ],
)
def test_to_dns_name(host: str | bytes, expected: tuple[str, bool]) -> None:
    assert to_dns_name(host) == expected


@pytest.mark.parametrize(
    "host",
    [b"", b".", b"a..b", b"a b", b"a\x00b", b"a" * 64, b"a." * 127 + b"b", b"\xff\xfe", "a/b"],
)
def test_to_dns_name_refuses_bad_names_with_gaierror(host: str | bytes) -> None:
    with pytest.raises(socket.gaierror) as info:
        to_dns_name(host)
    assert info.value.errno == socket.EAI_NONAME


# -- cache -----------------------------------------------------------------------------------------


def test_cache_respects_ttl() -> None:
    now = [0.0]
    cache = DnsCache(8, clock=lambda: now[0])
    cache.put("a.example", 1, ANSWER, (("192.0.2.1", 0),), 10)
    cache.put("a.example", 28, NODATA, (), 5)
    cache.put("zero.example", 1, ANSWER, (("192.0.2.2", 0),), 0)  # TTL 0: not cached
    assert cache.get("a.example", 1) == (ANSWER, (("192.0.2.1", 0),))
    assert cache.get("zero.example", 1) is None
    now[0] = 6.0
    assert cache.get("a.example", 28) is None
    assert cache.get("a.example", 1) is not None
    now[0] = 10.0
    assert cache.get("a.example", 1) is None
    assert len(cache) == 0


def test_cache_negative_ttls_and_caps() -> None:
    now = [0.0]
    cache = DnsCache(8, clock=lambda: now[0], max_ttl=100, negative_ttl=3, max_negative_ttl=50)
    cache.put("nx.example", 1, NXDOMAIN, (), None)  # no SOA: the default
    cache.put("big.example", 1, ANSWER, (("192.0.2.1", 0),), 10**6)
    cache.put("bignx.example", 1, NXDOMAIN, (), 10**6)
    now[0] = 2.9
    assert cache.get("nx.example", 1) == (NXDOMAIN, ())
    now[0] = 3.0
    assert cache.get("nx.example", 1) is None
    now[0] = 49.0
    assert cache.get("bignx.example", 1) is not None
    now[0] = 50.0
    assert cache.get("bignx.example", 1) is None
    assert cache.get("big.example", 1) is not None
    now[0] = 100.0
    assert cache.get("big.example", 1) is None


def test_cache_is_bounded_least_recently_used_first_out() -> None:
    cache = DnsCache(3, clock=lambda: 0.0)
    for name in ("a", "b", "c"):
        cache.put(name, 1, ANSWER, ((name, 0),), 60)
    assert cache.get("a", 1) is not None  # a is now the most recently used
    cache.put("d", 1, ANSWER, (("d", 0),), 60)
    assert len(cache) == 3
    assert cache.get("b", 1) is None
    assert all(cache.get(name, 1) is not None for name in ("a", "c", "d"))
    cache.clear()
    assert len(cache) == 0
    off = DnsCache(0)
    off.put("a", 1, ANSWER, (("a", 0),), 60)
    assert len(off) == 0
