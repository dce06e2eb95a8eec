"""thor.udp.UdpEndpoint on loopback, over every polling backend of this machine."""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import thor.dns
import thor.loop
from thor.dns import Resolver
from thor.loop import LoopBase
from thor.udp import MAX_DGRAM_IPV4, MAX_DGRAM_IPV6, UdpEndpoint


def _has_ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


HAS_IPV6 = _has_ipv6()
needs_ipv6 = pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback here")
needs_linux = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="ICMP errors reach unconnected sockets on Linux"
)


def _open_fds() -> set[str] | None:
    try:
        return set(os.listdir("/proc/self/fd"))
    except OSError:
        return None


@pytest.fixture(params=thor.loop.available_backends())
def loop(request: pytest.FixtureRequest) -> Iterator[LoopBase]:
    """A fresh loop per backend; fails the test if sockets were left open."""
    before = _open_fds()
    new_loop = thor.loop.make(backend=request.param)
    yield new_loop
    new_loop.close()
    after = _open_fds()
    if before is not None and after is not None:
        assert not after - before, f"file descriptors left open: {sorted(after - before)}"


@pytest.fixture
def endpoints(loop: LoopBase) -> Iterator[Callable[[], UdpEndpoint]]:
    """A factory of endpoints on ``loop``, all shut down after the test.

    ``loop.stop()`` forgets every registered fd (thor's classic loop contract), so each time the
    loop starts again the endpoints re-register theirs: tests may run the loop in phases.
    """
    made: list[UdpEndpoint] = []

    def make() -> UdpEndpoint:
        endpoint = UdpEndpoint(loop)
        made.append(endpoint)
        return endpoint

    def reattach() -> None:
        for endpoint in made:
            if endpoint.sock is not None:
                endpoint.register_fd(endpoint.sock.fileno())

    loop.on("start", reattach)
    yield make
    for endpoint in made:
        endpoint.shutdown()


def run_until(loop: LoopBase, done: Callable[[], bool], limit: float = 5.0) -> None:
    """Run the loop until ``done()`` (checked every few milliseconds) or ``limit`` seconds."""

    def check() -> None:
        if done():
            loop.stop()
        else:
            loop.schedule(0.002, check)

    loop.schedule(0, check)
    loop.schedule(limit, loop.stop)
    loop.run()
    assert done(), f"not done within {limit} s"


def run_for(loop: LoopBase, seconds: float) -> None:
    loop.schedule(seconds, loop.stop)
    loop.run()


def closed_port(family: int = socket.AF_INET, host: str = "127.0.0.1") -> int:
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


Received = list[tuple[bytes, str, int]]


def socket_of(endpoint: UdpEndpoint) -> socket.socket | None:
    """``endpoint.sock``, read through a function so that type checkers do not narrow it."""
    return endpoint.sock


def receiver(endpoint: UdpEndpoint) -> Received:
    received: Received = []
    endpoint.on("datagram", lambda data, host, port: received.append((data, host, port)))
    endpoint.pause(False)
    return received


# -- bind and exchange -----------------------------------------------------------------------------


def test_bind_ipv4_literal_and_exchange(loop: LoopBase, endpoints: Any) -> None:
    server, client = endpoints(), endpoints()
    server.bind(b"127.0.0.1", 0)
    assert server.sock is not None and server.sock.family == socket.AF_INET
    assert server.host == b"127.0.0.1"
    assert server.port == server.sock.getsockname()[1] != 0
    assert server.max_dgram == MAX_DGRAM_IPV4 == 65507
    got = receiver(server)
    server.on("datagram", lambda data, host, port: server.send(data.upper(), host, port))
    replies = receiver(client)
    client.send(b"ping", b"127.0.0.1", server.port)
    run_until(loop, lambda: bool(replies))
    assert got == [(b"ping", "127.0.0.1", client.port)]
    assert replies == [(b"PING", "127.0.0.1", server.port)]
    assert client.sock is not None and client.sock.family == socket.AF_INET  # made on demand


@needs_ipv6
def test_bind_ipv6_literal_and_exchange(loop: LoopBase, endpoints: Any) -> None:
    server, client = endpoints(), endpoints()
    server.bind(b"::1", 0)
    assert server.sock is not None and server.sock.family == socket.AF_INET6
    assert server.max_dgram == MAX_DGRAM_IPV6 == 65527
    got = receiver(server)
    client.send(b"hello", "::1", server.port)
    run_until(loop, lambda: bool(got))
    assert got == [(b"hello", "::1", client.port)]


@needs_ipv6
def test_bind_brackets_are_accepted(loop: LoopBase, endpoints: Any) -> None:
    server = endpoints()
    server.bind(b"[::1]", 0)
    assert server.sock is not None and server.sock.getsockname()[0] == "::1"


def test_bind_empty_host_binds_every_address(loop: LoopBase, endpoints: Any) -> None:
    server, client4 = endpoints(), endpoints()
    server.bind(b"", 0)
    assert server.sock is not None
    assert server.sock.getsockname()[0] in ("::", "0.0.0.0")
    got = receiver(server)
    client4.send(b"over ipv4", b"127.0.0.1", server.port)
    expected = [(b"over ipv4", "127.0.0.1", client4.port)]  # IPv4-mapped shown as IPv4
    if HAS_IPV6:
        assert server.sock.family == socket.AF_INET6
        assert server.sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
        assert server.max_dgram == MAX_DGRAM_IPV4  # a dual-stack socket can send IPv4 too
        client6 = endpoints()
        client6.send(b"over ipv6", b"::1", server.port)
        expected.append((b"over ipv6", "::1", client6.port))
    run_until(loop, lambda: len(got) == len(expected))
    assert sorted(got) == sorted(expected)
    # replies to an IPv4 sender go out over IPv4
    back = receiver(client4)
    server.send(b"reply", got[0][1] if got[0][0] == b"over ipv4" else got[1][1], client4.port)
    run_until(loop, lambda: bool(back))
    assert back == [(b"reply", "127.0.0.1", server.port)]


def test_bind_twice_raises(loop: LoopBase, endpoints: Any) -> None:
    endpoint = endpoints()
    endpoint.bind(b"127.0.0.1", 0)
    with pytest.raises(OSError):
        endpoint.bind(b"127.0.0.1", 0)


def test_bind_failure_closes_the_endpoint_and_reports(loop: LoopBase, endpoints: Any) -> None:
    first, second = endpoints(), endpoints()
    first.bind(b"127.0.0.1", 0)
    errors: list[tuple[str, int, str]] = []
    second.on("socket_error", lambda *args: errors.append(args))
    second.bind(b"127.0.0.1", first.port)
    assert errors == []  # reported on the next loop pass, not from inside bind()
    assert second.sock is None
    run_until(loop, lambda: bool(errors))
    assert errors[0][:2] == ("socket", errno.EADDRINUSE)
    with pytest.raises(OSError):
        second.send(b"x", b"127.0.0.1", first.port)


# -- datagram sizes --------------------------------------------------------------------------------


def test_a_full_size_ipv4_datagram_arrives_whole(loop: LoopBase, endpoints: Any) -> None:
    server, client = endpoints(), endpoints()
    server.bind(b"127.0.0.1", 0)
    got = receiver(server)
    payload = os.urandom(65507)
    client.send(payload, b"127.0.0.1", server.port)
    client.send(b"small after big", b"127.0.0.1", server.port)
    run_until(loop, lambda: len(got) == 2)
    assert got[0][0] == payload
    assert got[1][0] == b"small after big"


@needs_ipv6
def test_a_full_size_ipv6_datagram_arrives_whole(loop: LoopBase, endpoints: Any) -> None:
    server, client = endpoints(), endpoints()
    server.bind(b"::1", 0)
    client.bind(b"::1", 0)
    got = receiver(server)
    payload = os.urandom(MAX_DGRAM_IPV6)
    client.send(payload, b"::1", server.port)
    run_until(loop, lambda: bool(got))
    assert got[0][0] == payload


def test_an_oversize_datagram_is_refused(loop: LoopBase, endpoints: Any) -> None:
    endpoint = endpoints()
    endpoint.bind(b"127.0.0.1", 0)
    with pytest.raises(ValueError, match=r"65508 bytes.*65507"):
        endpoint.send(b"x" * 65508, b"127.0.0.1", 9)
    unbound = endpoints()
    with pytest.raises(ValueError, match="65508"):
        unbound.send(b"x" * 65508, b"127.0.0.1", 9)
    assert unbound.sock is None  # nothing was made for a refused datagram


# -- pause -----------------------------------------------------------------------------------------


def test_endpoints_start_paused(loop: LoopBase, endpoints: Any) -> None:
    server, client = endpoints(), endpoints()
    server.bind(b"127.0.0.1", 0)
    got: Received = []
    server.on("datagram", lambda *args: got.append(args))
    client.send(b"while paused", b"127.0.0.1", server.port)
    run_for(loop, 0.05)
    assert got == []  # waiting in the kernel
    server.pause(False)
    run_until(loop, lambda: bool(got))
    assert got == [(b"while paused", "127.0.0.1", client.port)]


def test_pausing_from_a_listener_stops_at_once(loop: LoopBase, endpoints: Any) -> None:
    server, client = endpoints(), endpoints()
    server.bind(b"127.0.0.1", 0)
    got: list[bytes] = []

    def on_datagram(data: bytes, host: str, port: int) -> None:
        got.append(data)
        server.pause(True)

    server.on("datagram", on_datagram)
    for index in range(3):
        client.send(b"%d" % index, b"127.0.0.1", server.port)
    server.pause(False)
    run_until(loop, lambda: bool(got))
    run_for(loop, 0.05)
    assert got == [b"0"]
    server.pause(False)
    run_until(loop, lambda: len(got) == 2)
    server.pause(False)
    run_until(loop, lambda: len(got) == 3)
    assert got == [b"0", b"1", b"2"]


def test_reads_are_batched_but_nothing_is_lost(loop: LoopBase, endpoints: Any) -> None:
    server, client = endpoints(), endpoints()
    server.bind(b"127.0.0.1", 0)
    server.read_batch = 3
    got = receiver(server)
    for index in range(50):
        client.send(b"%d" % index, b"127.0.0.1", server.port)
    run_until(loop, lambda: len(got) == 50)
    assert [data for data, _, _ in got] == [b"%d" % index for index in range(50)]


# -- shutdown --------------------------------------------------------------------------------------


def test_shutdown_is_idempotent_and_later_sends_raise(loop: LoopBase, endpoints: Any) -> None:
    endpoint = endpoints()
    endpoint.bind(b"127.0.0.1", 0)
    assert loop.fd_count() == 1
    endpoint.shutdown()
    endpoint.shutdown()
    assert endpoint.sock is None
    assert loop.fd_count() == 0
    with pytest.raises(OSError):
        endpoint.send(b"x", b"127.0.0.1", 9)
    with pytest.raises(OSError):
        endpoint.bind(b"127.0.0.1", 0)
    never_bound = endpoints()
    never_bound.shutdown()
    with pytest.raises(OSError):
        never_bound.send(b"x", b"127.0.0.1", 9)


def test_shutdown_from_a_listener_stops_the_batch(loop: LoopBase, endpoints: Any) -> None:
    server, client = endpoints(), endpoints()
    server.bind(b"127.0.0.1", 0)
    got: list[bytes] = []

    def on_datagram(data: bytes, host: str, port: int) -> None:
        got.append(data)
        server.shutdown()

    server.on("datagram", on_datagram)
    client.send(b"a", b"127.0.0.1", server.port)
    client.send(b"b", b"127.0.0.1", server.port)
    server.pause(False)
    run_until(loop, lambda: bool(got))
    run_for(loop, 0.05)
    assert got == [b"a"]


# -- errors ----------------------------------------------------------------------------------------


@needs_linux
def test_icmp_port_unreachable_is_reported_and_the_endpoint_lives_on(
    loop: LoopBase, endpoints: Any
) -> None:
    client, server = endpoints(), endpoints()
    server.bind(b"127.0.0.1", 0)
    got = receiver(server)
    errors: list[tuple[str, int, str]] = []
    client.on("socket_error", lambda *args: errors.append(args))
    dead = closed_port()
    client.send(b"one", b"127.0.0.1", dead)
    client.send(b"two", b"127.0.0.1", dead)  # Linux would fail this one with the first's error
    client.send(b"alive", b"127.0.0.1", server.port)
    run_until(loop, lambda: len(errors) == 2 and bool(got))
    run_for(loop, 0.05)
    assert [error[:2] for error in errors] == [("socket", errno.ECONNREFUSED)] * 2
    assert f"127.0.0.1:{dead}" in errors[0][2]
    assert got == [(b"alive", "127.0.0.1", client.port)]
    assert client.sock is not None  # still open


@needs_linux
@needs_ipv6
def test_icmp_errors_on_a_dual_stack_socket(loop: LoopBase, endpoints: Any) -> None:
    client = endpoints()
    client.bind(b"", 0)
    errors: list[tuple[str, int, str]] = []
    client.on("socket_error", lambda *args: errors.append(args))
    client.pause(False)
    client.send(b"x", b"127.0.0.1", closed_port())
    client.send(b"y", b"::1", closed_port(socket.AF_INET6, "::1"))
    run_until(loop, lambda: len(errors) == 2)
    assert {error[1] for error in errors} == {errno.ECONNREFUSED}


@needs_ipv6
def test_a_destination_of_the_wrong_family_is_reported_not_raised(
    loop: LoopBase, endpoints: Any
) -> None:
    endpoint = endpoints()
    endpoint.bind(b"127.0.0.1", 0)
    errors: list[tuple[str, int, str]] = []
    endpoint.on("socket_error", lambda *args: errors.append(args))
    endpoint.send(b"x", b"::1", 9)
    run_until(loop, lambda: bool(errors))
    assert errors[0][:2] == ("socket", errno.EAFNOSUPPORT)
    assert endpoint.sock is not None


def test_a_listener_exception_does_not_break_the_endpoint(loop: LoopBase, endpoints: Any) -> None:
    server, client = endpoints(), endpoints()
    server.bind(b"127.0.0.1", 0)
    reported: list[BaseException] = []
    loop.set_exception_handler(lambda _loop, exc, where: reported.append(exc))
    got: list[bytes] = []

    def on_datagram(data: bytes, host: str, port: int) -> None:
        got.append(data)
        if data == b"boom":
            raise RuntimeError("listener failed")

    server.on("datagram", on_datagram)
    server.pause(False)
    for data in (b"before", b"boom", b"after"):
        client.send(data, b"127.0.0.1", server.port)
    run_until(loop, lambda: len(got) == 3)
    client.send(b"later", b"127.0.0.1", server.port)
    run_until(loop, lambda: len(got) == 4)
    assert got == [b"before", b"boom", b"after", b"later"]
    assert [str(exc) for exc in reported] == ["listener failed"]


# -- names -----------------------------------------------------------------------------------------


@pytest.fixture
def hosts_resolver(tmp_path: Path) -> Iterator[Resolver]:
    """The default resolver, for the test, answers from a temporary hosts file only."""
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 udp-server.test\n127.0.0.1 other.test\n")
    resolver = Resolver(nameservers=[], hosts_path=hosts, resolv_conf_path=None)
    saved = thor.dns.get_default_resolver()
    thor.dns.set_default_resolver(resolver)
    yield resolver
    thor.dns.set_default_resolver(saved)


def test_bind_a_name_from_the_hosts_file(
    loop: LoopBase, endpoints: Any, hosts_resolver: Resolver
) -> None:
    server, client = endpoints(), endpoints()
    server.bind(b"udp-server.test", 0)
    assert socket_of(server) is None  # bound once resolved
    got = receiver(server)
    run_until(loop, lambda: server.sock is not None)
    assert server.sock is not None and server.sock.getsockname()[0] == "127.0.0.1"
    assert server.host == b"udp-server.test"
    client.send(b"to a name", b"udp-server.test", server.port)
    client.send(b"second", b"udp-server.test", server.port)
    client.send(b"third", "udp-server.test", server.port)
    run_until(loop, lambda: len(got) == 3)
    assert [data for data, _, _ in got] == [b"to a name", b"second", b"third"]


def test_sends_wait_for_a_pending_name_bind(
    loop: LoopBase, endpoints: Any, hosts_resolver: Resolver
) -> None:
    server, client = endpoints(), endpoints()
    server.bind(b"127.0.0.1", 0)
    got = receiver(server)
    client.bind(b"other.test", 0)
    client.send(b"queued", b"127.0.0.1", server.port)
    assert socket_of(client) is None
    run_until(loop, lambda: bool(got))
    assert client.sock is not None
    assert got == [(b"queued", "127.0.0.1", client.port)]


def test_bind_an_unknown_name_reports_gai_and_closes(
    loop: LoopBase, endpoints: Any, hosts_resolver: Resolver
) -> None:
    endpoint = endpoints()
    errors: list[tuple[str, int, str]] = []
    endpoint.on("socket_error", lambda *args: errors.append(args))
    endpoint.bind(b"nowhere.test", 0)
    run_until(loop, lambda: bool(errors))
    assert errors[0][0] == "gai"
    assert errors[0][1] == socket.EAI_FAIL  # no nameserver: only the hosts file
    with pytest.raises(OSError):
        endpoint.send(b"x", b"127.0.0.1", 9)


def test_sending_to_an_unknown_name_reports_gai_and_stays_open(
    loop: LoopBase, endpoints: Any, hosts_resolver: Resolver
) -> None:
    endpoint = endpoints()
    endpoint.bind(b"127.0.0.1", 0)
    errors: list[tuple[str, int, str]] = []
    endpoint.on("socket_error", lambda *args: errors.append(args))
    endpoint.send(b"x", b"nowhere.test", 9)
    run_until(loop, lambda: bool(errors))
    assert errors[0][0] == "gai"
    assert endpoint.sock is not None
