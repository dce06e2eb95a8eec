"""thor.dns and thor.tcp.TcpClient given hostile configuration: values in resolv.conf, the hosts
file, the environment, constructor arguments and IPv6 zones that once made the resolver raise,
hang or ask for names nobody configured, instead of ignoring the value or reporting a failure.

Covered:

- numbers that are not ASCII digits (``"²"``, ``"⁵³"``: ``str.isdigit()`` takes them, ``int()``
  refuses them) or are too long for ``int()``: in an IPv6 zone (``parse_ip_literal``, a lookup,
  a hosts-file line) the host is not a literal, a lookup calls back with ``socket.gaierror``
  and the rest of the hosts file still loads; a zone above 2**32-1 or over 10 digits is not a
  literal either; in resolv.conf (``options``, ``nameserver [ADDRESS]:PORT``) and
  ``RES_OPTIONS`` such a number is ignored, also when the file changes at run time;
- search domains that are not valid DNS names (``domain .``, ``search a..b``, a label over 63
  characters, a backslash, a byte that is not UTF-8, ``LOCALDOMAIN``, the default domain) are
  left out of the search list, so no lookup asks for a name built from them;
  ``Resolver(search=...)`` refuses them with ValueError;
- ``Resolver(nameservers=...)`` refuses a port that is not an int (a float port made the query
  hang);
- ``TcpClient.connect()`` to an IPv6 literal whose zone names no interface, or is not ASCII,
  emits ``connect_error("gai", ...)`` from the loop and leaves the client free to connect again.

Lookups go to a ``DnsTestServer`` on 127.0.0.1 (dns_test_server.py), connections to a TcpServer
on 127.0.0.1; files are written under ``tmp_path``; every loop run has a time limit.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tcp_fixtures as tf
from dns_test_server import DnsTestServer
from tcp_fixtures import Net

import thor.loop
from thor.dns import (
    ResolvConf,
    Resolver,
    parse_hosts,
    parse_ip_literal,
    parse_resolv_conf,
    read_resolv_conf,
)
from thor.loop import LoopBase
from thor.tcp import TcpConnection

TOO_LONG_FOR_INT = "9" * 5000  # over sys.int_max_str_digits (4300): int() raises ValueError


def _open_fds() -> set[str] | None:
    try:
        return set(os.listdir("/proc/self/fd"))
    except OSError:
        return None


@pytest.fixture(autouse=True)
def _no_resolver_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's LOCALDOMAIN and RES_OPTIONS must not change what a Resolver reads."""
    monkeypatch.delenv("LOCALDOMAIN", raising=False)
    monkeypatch.delenv("RES_OPTIONS", raising=False)


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
def server(loop: LoopBase) -> Iterator[DnsTestServer]:
    dns_server = DnsTestServer(loop)
    dns_server.add("www.test", "A", "192.0.2.1")
    yield dns_server
    dns_server.close()


@pytest.fixture(params=tf.BACKENDS)
def net(request: pytest.FixtureRequest) -> Iterator[Net]:
    yield from tf.open_net(request.param)


def resolve(loop: LoopBase, resolver: Resolver, host: bytes | str, *, limit: float = 5.0) -> Any:
    """Run the loop until the lookup calls back (at most ``limit`` seconds); the result.

    Fails if the lookup did not call back exactly once, or if anything raised inside the loop.
    """
    results: list[Any] = []
    loop_errors: list[tuple[str, BaseException]] = []

    def done(result: Any) -> None:
        results.append(result)
        loop.stop()

    loop.set_exception_handler(lambda _loop, exc, where: loop_errors.append((where, exc)))
    try:
        resolver.lookup(loop, host, 80, socket.SOCK_STREAM, done)
        loop.schedule(limit, loop.stop)
        loop.run()
    finally:
        loop.set_exception_handler(None)
    assert loop_errors == [], f"raised inside the loop: {loop_errors!r}"
    assert len(results) == 1, f"the lookup of {host!r} did not call back within {limit} s"
    return results[0]


def addresses(result: Any) -> list[str]:
    assert isinstance(result, list), f"expected results, got {result!r}"
    return [entry[4][0] for entry in result]


def assert_gaierror(result: Any, code: int) -> None:
    assert isinstance(result, socket.gaierror), f"expected gaierror, got {result!r}"
    assert result.errno == code, result


def asked(server: DnsTestServer) -> set[str]:
    """The names the server was asked about."""
    return {name for _, name, _ in server.queries}


def write_resolv_conf(path: Path, server: DnsTestServer, *lines: bytes) -> Path:
    """A resolv.conf (bytes, so a line may hold any byte) naming ``server`` only."""
    path.write_bytes(b"\n".join([f"nameserver [127.0.0.1]:{server.port}".encode(), *lines, b""]))
    return path


# -- numbers that are not ASCII digits: IPv6 zones ---------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "fe80::1%²",  # str.isdigit() is True, int() refuses it
        "fe80::1%¹²",
        "[fe80::1%³]",
        "fe80::1%" + TOO_LONG_FOR_INT,
        "fe80::1%4294967296",  # 2**32: does not fit sin6_scope_id
        "fe80::1%00000000001",  # 11 digits
    ],
    ids=["superscript", "superscripts", "bracketed", "too-long-for-int", "2**32", "11-digits"],
)
def test_parse_ip_literal_a_zone_not_a_32_bit_ascii_number_is_not_a_literal(host: str) -> None:
    assert parse_ip_literal(host) is None


def test_parse_ip_literal_keeps_the_largest_scope_id_and_ten_digit_zones() -> None:
    # the edge of the checks above: what must still be a literal
    assert parse_ip_literal("fe80::1%4294967295") == (socket.AF_INET6, "fe80::1", 2**32 - 1)
    assert parse_ip_literal("fe80::1%0000000007") == (socket.AF_INET6, "fe80::1", 7)


@pytest.mark.parametrize(
    "host",
    ["fe80::1%²", b"fe80::1%4294967296", "fe80::1%" + TOO_LONG_FOR_INT],
    ids=["superscript", "scope-over-32-bits", "too-long-for-int"],
)
def test_lookup_of_an_ipv6_literal_with_a_bad_zone_calls_back_with_eai_noname(
    loop: LoopBase, server: DnsTestServer, host: str | bytes
) -> None:
    resolver = Resolver(
        nameservers=[server.address], hosts_path=None, resolv_conf_path=None, timeout=2.0
    )
    assert_gaierror(resolve(loop, resolver, host), socket.EAI_NONAME)
    assert server.queries == [], "an address literal was sent to the DNS as a name"


def test_parse_hosts_skips_lines_with_a_bad_zone_and_keeps_the_others() -> None:
    names = parse_hosts(
        "fe80::1%² weird.example\n"
        "127.0.0.1 good.example\n"
        f"fe80::1%{TOO_LONG_FOR_INT} huge.example\n"
        "fe80::1%4294967296 over.example\n"
        "::1 good.example\n"
        "fe80::2%4294967295 edge.example\n"
    )
    assert names == {
        "good.example": ((("::1", 0),), (("127.0.0.1", 0),)),
        "edge.example": ((("fe80::2", 2**32 - 1),), ()),
    }


def test_a_hosts_file_with_a_bad_zone_line_still_answers_its_other_names(
    loop: LoopBase, server: DnsTestServer, tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text(
        f"fe80::1%² weird.test\n127.0.0.1 good.test\nfe80::1%{TOO_LONG_FOR_INT} huge.test\n",
        encoding="utf-8",
    )
    server.add("weird.test", "A", "192.0.2.7")
    resolver = Resolver(
        nameservers=[server.address], hosts_path=hosts, resolv_conf_path=None, timeout=2.0
    )
    assert addresses(resolve(loop, resolver, b"good.test")) == ["127.0.0.1"]
    assert server.queries == [], "good.test is in the hosts file: the DNS must not be asked"
    # the bad line gave weird.test no entry: it is a DNS name like any other
    assert addresses(resolve(loop, resolver, b"weird.test")) == ["192.0.2.7"]


# -- numbers that are not ASCII digits: resolv.conf and RES_OPTIONS ----------------------------


@pytest.mark.parametrize(
    "line",
    [
        "options ndots:²",
        "options timeout:¹",
        "options attempts:³",
        f"options timeout:{TOO_LONG_FOR_INT}",
        "nameserver [::1]:⁵³",
        f"nameserver [::1]:{TOO_LONG_FOR_INT}",
        "nameserver fe80::1%²",
    ],
    ids=[
        "ndots-superscript",
        "timeout-superscript",
        "attempts-superscript",
        "timeout-too-long-for-int",
        "port-superscripts",
        "port-too-long-for-int",
        "zone-superscript",
    ],
)
def test_resolv_conf_numbers_that_are_not_ascii_digits_are_ignored(line: str) -> None:
    conf = parse_resolv_conf(f"nameserver 192.0.2.53\n{line}\noptions attempts:3\n")
    assert conf == ResolvConf(nameservers=(("192.0.2.53", 53),), attempts=3)


def test_resolv_conf_ascii_numbers_with_leading_zeros_still_count() -> None:
    # the edge of the digit limits (ports at most 5 digits, options at most 6)
    conf = parse_resolv_conf("nameserver [::1]:05353\noptions timeout:000007 ndots:000002\n")
    assert conf.nameservers == (("::1", 5353),)
    assert (conf.timeout, conf.ndots) == (7.0, 2)


def test_res_options_that_are_not_ascii_digits_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 192.0.2.53\noptions timeout:²\n", encoding="utf-8")
    conf = read_resolv_conf(path, environ={"RES_OPTIONS": "ndots:² attempts:³ rotate timeout:4"})
    assert (conf.ndots, conf.timeout, conf.attempts, conf.rotate) == (1, 4.0, 2, True)


def test_resolver_resolves_with_a_resolv_conf_holding_bad_numbers(
    loop: LoopBase, server: DnsTestServer, tmp_path: Path
) -> None:
    path = write_resolv_conf(
        tmp_path / "resolv.conf",
        server,
        "nameserver [::1]:⁵³".encode(),
        "options ndots:² timeout:¹".encode(),
        f"options attempts:{TOO_LONG_FOR_INT}".encode(),
        b"search test",
    )
    resolver = Resolver(resolv_conf_path=path, hosts_path=None)
    assert resolver.nameservers == [server.address]
    assert (resolver.ndots, resolver.timeout, resolver.attempts) == (1, 5.0, 2)
    assert addresses(resolve(loop, resolver, b"www")) == ["192.0.2.1"]


def test_resolv_conf_rewritten_with_bad_numbers_at_run_time_does_not_break_lookups(
    loop: LoopBase, server: DnsTestServer, tmp_path: Path
) -> None:
    path = write_resolv_conf(tmp_path / "resolv.conf", server, b"options timeout:3")
    now = [0.0]
    resolver = Resolver(resolv_conf_path=path, hosts_path=None, clock=lambda: now[0])
    assert resolver.timeout == 3.0
    write_resolv_conf(path, server, "options attempts:³ timeout:²".encode(), b"# changed")
    now[0] += 10.0  # past the resolver's next check of the file
    assert addresses(resolve(loop, resolver, b"www.test")) == ["192.0.2.1"]
    assert (resolver.timeout, resolver.attempts) == (5.0, 2)  # re-read; the bad values ignored


# -- search domains that are not valid DNS names -----------------------------------------------

LONG_LABEL = "a" * 64 + ".example"  # a label over 63 characters


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("domain .", ()),
        ("domain a..b", ()),
        ("search a..b good.example", ("good.example",)),
        (f"search {LONG_LABEL} good.example", ("good.example",)),
        ("search ex\\ample good.example", ("good.example",)),
        ("search corp\ufffd.example good.example", ("good.example",)),  # as read_resolv_conf
        ("search Good.Example. . x..y Other.Example", ("good.example", "other.example")),
    ],
    ids=[
        "domain-root",
        "domain-empty-label",
        "empty-label",
        "long-label",
        "backslash",
        "replacement-char",
        "mixed",
    ],
)
def test_resolv_conf_leaves_invalid_search_domains_out(
    text: str, expected: tuple[str, ...]
) -> None:
    assert parse_resolv_conf(text).search == expected


@pytest.mark.parametrize(
    "domain", ["a..b", LONG_LABEL, "ex\\ample"], ids=["empty-label", "long-label", "backslash"]
)
def test_an_invalid_default_domain_is_not_searched(domain: str) -> None:
    assert parse_resolv_conf("nameserver 192.0.2.53\n", default_domain=domain).search == ()


def test_a_search_domain_with_a_byte_that_is_not_utf8_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_bytes(b"nameserver 192.0.2.53\nsearch corp\xff.example good.example\n")
    assert read_resolv_conf(path, environ={}).search == ("good.example",)


def test_localdomain_leaves_invalid_search_domains_out(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 192.0.2.53\nsearch file.example\n", encoding="utf-8")
    env = {"LOCALDOMAIN": f"a..b good.example {LONG_LABEL} x\\y ."}
    assert read_resolv_conf(path, environ=env).search == ("good.example",)


@pytest.mark.parametrize(
    "domain",
    [".", "", "a..b", LONG_LABEL, "ex\\ample", "corp\ufffd.example", "a b"],
    ids=["root", "empty", "empty-label", "long-label", "backslash", "replacement-char", "space"],
)
def test_resolver_refuses_an_invalid_search_domain(domain: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(domain))):
        Resolver(search=["good.example", domain], resolv_conf_path=None, hosts_path=None)


def test_resolver_search_domains_are_still_normalised() -> None:
    # the edge of the check above: a trailing dot and upper case are not invalid
    resolver = Resolver(search=["Corp.Example.", "x"], resolv_conf_path=None, hosts_path=None)
    assert resolver.search == ["corp.example", "x"]


@pytest.mark.parametrize(
    "case",
    [
        (b"domain .", None),
        (b"search a..b", None),
        (b"search " + LONG_LABEL.encode(), None),
        (b"search ex\\ample", None),
        (b"search corp\xff.example", None),
        (b"# no search line", "a..b"),
    ],
    ids=["root", "empty-label", "long-label", "backslash", "not-utf8", "LOCALDOMAIN"],
)
def test_lookup_never_asks_for_a_name_made_with_an_invalid_search_domain(
    loop: LoopBase,
    server: DnsTestServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[bytes, str | None],
) -> None:
    line, localdomain = case  # a resolv.conf line, and LOCALDOMAIN
    if localdomain is not None:
        monkeypatch.setenv("LOCALDOMAIN", localdomain)
    # ndots:2: "www.test" (one dot) is tried with the search domains first
    path = write_resolv_conf(tmp_path / "resolv.conf", server, line, b"options ndots:2")
    resolver = Resolver(resolv_conf_path=path, hosts_path=None, timeout=2.0, attempts=1)
    assert addresses(resolve(loop, resolver, b"www.test")) == ["192.0.2.1"]
    assert asked(server) == {"www.test"}
    assert resolver.search == []


def test_a_name_not_found_is_eai_noname_not_a_failure_of_an_invalid_search_domain(
    loop: LoopBase, server: DnsTestServer, tmp_path: Path
) -> None:
    # ndots 1: "nx.test" is tried as is first (NXDOMAIN), then with the search domains
    path = write_resolv_conf(tmp_path / "resolv.conf", server, b"search a..b good.test")
    resolver = Resolver(resolv_conf_path=path, hosts_path=None, timeout=2.0, attempts=1)
    assert_gaierror(resolve(loop, resolver, b"nx.test"), socket.EAI_NONAME)
    assert asked(server) == {"nx.test", "nx.test.good.test"}


# -- nameserver ports that are not ints --------------------------------------------------------


@pytest.mark.parametrize("port", [53.0, 5353.0, True, "53"])
def test_resolver_refuses_a_nameserver_port_that_is_not_an_int(port: Any) -> None:
    with pytest.raises(ValueError, match="nameserver"):
        Resolver(nameservers=[("127.0.0.1", port)], resolv_conf_path=None, hosts_path=None)


# -- TcpClient: an IPv6 zone that names no interface -------------------------------------------


@pytest.mark.parametrize(
    "host", [b"fe80::1%nosuchif0", "fe80::1%²".encode()], ids=["unknown-interface", "not-ascii"]
)
def test_connect_to_an_ipv6_zone_naming_no_interface_is_a_gai_error_from_the_loop(
    net: Net, host: bytes
) -> None:
    """The error comes from the loop, not from connect(); no timer is left armed; the client
    connects again."""
    server = net.server(b"127.0.0.1")
    client = net.client()
    errors: list[tuple[Any, ...]] = []
    connected: list[TcpConnection] = []

    def failed(*err: Any) -> None:
        errors.append(err)
        # past the first connect_timeout: a timer left armed would report a second error
        net.later(0.2, client.connect, b"127.0.0.1", server.port)

    def succeeded(conn: TcpConnection) -> None:
        connected.append(conn)
        net.done(settle=0.05)

    client.on("connect_error", failed)
    client.on("connect", succeeded)
    client.connect(host, server.port, connect_timeout=0.1)
    assert errors == [], "connect_error was emitted inside connect()"
    net.run(timeout=5.0, what="the client did not report the bad zone, then connect")
    assert len(errors) == 1, errors
    err_type, code, text = errors[0]
    assert err_type == "gai"
    assert isinstance(code, int)
    assert code
    assert isinstance(text, str)
    assert text
    assert len(connected) == 1
    assert connected[0].socket.getpeername() == ("127.0.0.1", server.port)
