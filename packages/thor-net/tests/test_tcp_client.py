"""thor.tcp.TcpClient over real loopback sockets: connect errors (refused, timeout, check_ip,
name resolution), connect_dns, and racing several addresses (happy eyeballs).

Name resolution is replaced by a fake ``thor.dns.lookup`` (the function TcpClient.connect calls
for a host name), so no test depends on a resolver. Every test runs on a fresh loop (``net``
fixture, one per backend of this machine) and is driven from that loop; see tcp_fixtures.py.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tcp_fixtures as tf
from tcp_fixtures import Net

import thor.dns
from thor.tcp import TcpClient, TcpConnection, TcpServer


@pytest.fixture(params=tf.BACKENDS)
def net(request: pytest.FixtureRequest) -> Iterator[Net]:
    yield from tf.open_net(request.param)


def result(host: bytes, port: int) -> tuple[Any, ...]:
    """A thor.dns result (family, type, proto, canonname, sockaddr) for an IP literal."""
    family = tf.family_of(host)
    sockaddr = socket.getaddrinfo(
        host.decode(), port, family, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST
    )[0][4]
    return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)


class FakeLookup:
    """Stands in for ``thor.dns.lookup``: records its calls and answers from the loop."""

    def __init__(self, answer: list[tuple[Any, ...]] | Exception) -> None:
        self.answer = answer
        self.calls: list[tuple[Any, ...]] = []

    def __call__(
        self, loop: Any, host: bytes, port: int, socktype: int, callback: Callable[..., object]
    ) -> None:
        self.calls.append((loop, host, port, socktype))
        loop.schedule(0, callback, self.answer)


def watch(net: Net, client: TcpClient, settle: float = 0.05) -> dict[str, list[Any]]:
    """Record ``client``'s outcomes; end the run ``settle`` seconds after the first one (a
    window in which a second outcome, which must not come, would show up)."""
    seen: dict[str, list[Any]] = {"connect": [], "connect_error": []}

    def outcome(kind: str, *args: Any) -> None:
        seen[kind].append(args[0] if kind == "connect" else args)
        if len(seen["connect"]) + len(seen["connect_error"]) == 1:
            net.done(settle)

    client.on("connect", lambda conn: outcome("connect", conn))
    client.on("connect_error", lambda *err: outcome("connect_error", *err))
    return seen


def assert_error(seen: dict[str, list[Any]], err_type: str, err_id: int) -> None:
    assert seen["connect"] == [], "connected although an error was expected"
    assert len(seen["connect_error"]) == 1, seen["connect_error"]
    kind, code, text = seen["connect_error"][0]
    assert (kind, code) == (err_type, err_id), seen["connect_error"][0]
    assert isinstance(text, str)
    assert text


def only_connections_registered(net: Net) -> bool:
    """No connection attempt is left registered on the loop."""
    return all(
        isinstance(source, (TcpConnection, TcpServer))
        for source in net.loop.registered_fd_handlers()
    )


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", tf.HOSTS)
def test_connect_to_a_closed_port_is_refused(net: Net, host: bytes) -> None:
    client = net.client()
    seen = watch(net, client)
    client.connect(host, net.closed_port(host))
    net.run()
    assert_error(seen, "socket", errno.ECONNREFUSED)


@pytest.mark.parametrize("host", tf.HOSTS)
def test_connect_timeout_reports_etimedout(net: Net, host: bytes) -> None:
    port = net.hanging_port(host)
    if port is None:
        pytest.skip("this kernel completes connects beyond a listener's backlog")
    client = net.client()
    seen = watch(net, client)
    st: dict[str, Any] = {}
    client.on(
        "connect_error",
        lambda *err: st.update(at=net.loop.time(), clean=only_connections_registered(net)),
    )
    start = net.loop.time()
    client.connect(host, port, connect_timeout=0.2)
    net.run(timeout=3.0, what="connect_timeout never fired")
    assert_error(seen, "socket", errno.ETIMEDOUT)
    assert st["at"] - start >= 0.15
    assert st["clean"], "the timed-out attempt is still registered on the loop"


@pytest.mark.parametrize("host", tf.HOSTS)
def test_check_ip_refusal_is_reported_before_connect_returns(net: Net, host: bytes) -> None:
    server = net.server(host)
    accepted: list[TcpConnection] = []
    server.on("connect", accepted.append)
    client = net.client()
    asked: list[Any] = []
    client.check_ip = lambda ip: asked.append(ip) or False
    seen = watch(net, client)
    client.connect(host, server.port)
    at_return = list(seen["connect_error"])
    net.run()
    assert len(at_return) == 1, "connect_error ('access') was not emitted before connect() returned"
    assert at_return[0][:2] == ("access", 0)
    assert_error(seen, "access", 0)
    assert asked == [host.decode()]
    assert all(type(ip) is str for ip in asked)
    assert accepted == [], "a connection was made although check_ip refused it"


def test_check_ip_allowing_the_address_connects(net: Net) -> None:
    server = net.server()
    client = net.client()
    asked: list[str] = []
    client.check_ip = lambda ip: asked.append(ip) or True
    seen = watch(net, client)
    client.connect(b"127.0.0.1", server.port)
    net.run()
    assert len(seen["connect"]) == 1
    assert seen["connect_error"] == []
    assert asked == ["127.0.0.1"]


@pytest.mark.parametrize("answer", ["error", "empty"])
def test_name_resolution_failure_is_a_gai_error(
    net: Net, monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    lookup = FakeLookup(socket.gaierror(socket.EAI_NONAME, "x") if answer == "error" else [])
    monkeypatch.setattr(thor.dns, "lookup", lookup, raising=False)
    client = net.client()
    seen = watch(net, client)
    client.connect(b"nowhere.invalid", 8080)
    net.run()
    assert_error(seen, "gai", socket.EAI_NONAME)
    assert lookup.calls == [(net.loop, b"nowhere.invalid", 8080, socket.SOCK_STREAM)]


def test_connect_while_connecting_raises_runtimeerror(net: Net) -> None:
    server = net.server()
    client = net.client()
    seen = watch(net, client)
    client.connect(b"127.0.0.1", server.port)
    with pytest.raises(RuntimeError):
        client.connect(b"127.0.0.1", server.port)
    with pytest.raises(RuntimeError):
        client.connect_dns(b"localhost", result(b"127.0.0.1", server.port))
    net.run()
    assert len(seen["connect"]) == 1
    assert seen["connect_error"] == []


# -- connecting -----------------------------------------------------------------------------------


@pytest.mark.parametrize("host", tf.HOSTS)
def test_connect_dns_uses_the_given_result(net: Net, host: bytes) -> None:
    server = net.server(host)
    client = net.client()
    seen = watch(net, client)
    target = result(host, server.port)
    client.connect_dns(b"example.test", target)
    net.run()
    assert seen["connect_error"] == []
    (conn,) = seen["connect"]
    assert conn.socket.getpeername() == target[4]
    assert tuple(conn.address[:2]) == tuple(target[4][:2])
    assert client.hostname == b"example.test"


def test_bracketed_ipv6_literal(net: Net) -> None:
    if not tf.HAS_IPV6:
        pytest.skip("this machine has no IPv6 loopback (::1)")
    server = net.server(b"::1")
    client = net.client()
    seen = watch(net, client)
    client.connect(b"[::1]", server.port)
    net.run()
    assert seen["connect_error"] == []
    assert seen["connect"][0].socket.getpeername()[:2] == ("::1", server.port)


def test_a_name_is_resolved_through_thor_dns(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    server = net.server()
    lookup = FakeLookup([result(b"127.0.0.1", server.port)])
    monkeypatch.setattr(thor.dns, "lookup", lookup, raising=False)
    client = net.client()
    seen = watch(net, client)
    client.connect(b"service.test", server.port)
    net.run()
    assert seen["connect_error"] == []
    assert len(seen["connect"]) == 1
    assert lookup.calls == [(net.loop, b"service.test", server.port, socket.SOCK_STREAM)]


# -- several addresses: happy eyeballs ------------------------------------------------------------


def first_host() -> bytes:
    """Where the first (failing or hanging) address lives: ::1 as a real dual-stack name's
    IPv6 address would, or 127.0.0.1 on a machine without IPv6."""
    return b"::1" if tf.HAS_IPV6 else b"127.0.0.1"


def test_next_address_is_tried_at_once_when_one_is_refused(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = net.server()
    refused = result(first_host(), net.closed_port(first_host()))
    good = result(b"127.0.0.1", server.port)
    monkeypatch.setattr(thor.dns, "lookup", FakeLookup([refused, good]), raising=False)
    client = net.client()
    client.connect_attempt_delay = 30.0  # a refusal must not wait for the delay
    seen = watch(net, client)
    client.connect(b"dual.test", 80)
    net.run(timeout=3.0, what="the second address was not tried after the first was refused")
    assert seen["connect_error"] == []
    (conn,) = seen["connect"]
    assert conn.socket.getpeername() == good[4]


def test_every_address_refused_gives_one_connect_error(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = [result(first_host(), net.closed_port(first_host()))]
    answers.append(result(b"127.0.0.1", net.closed_port()))
    monkeypatch.setattr(thor.dns, "lookup", FakeLookup(answers), raising=False)
    client = net.client()
    client.connect_attempt_delay = 30.0
    seen = watch(net, client, settle=0.1)
    client.connect(b"dual.test", 80)
    net.run(timeout=3.0)
    assert_error(seen, "socket", errno.ECONNREFUSED)


def test_next_address_races_a_hanging_one_after_the_attempt_delay(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = net.hanging_port(first_host())
    if port is None:
        pytest.skip("this kernel completes connects beyond a listener's backlog")
    server = net.server()
    hanging = result(first_host(), port)
    good = result(b"127.0.0.1", server.port)
    monkeypatch.setattr(thor.dns, "lookup", FakeLookup([hanging, good]), raising=False)
    client = net.client()
    client.connect_attempt_delay = 0.1
    seen = watch(net, client, settle=0.1)
    st: dict[str, Any] = {}
    client.on("connect", lambda conn: st.update(at=net.loop.time()))
    start = net.loop.time()
    client.connect(b"dual.test", 80)
    net.run(timeout=3.0, what="the second address never won the race")
    assert seen["connect_error"] == []
    (conn,) = seen["connect"]
    assert conn.socket.getpeername() == good[4]
    assert st["at"] - start >= 0.08, "the second address was tried before the attempt delay"
    assert only_connections_registered(net), "the losing attempt is still registered"


@tf.needs_ipv6
def test_check_ip_filters_resolved_addresses(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    server = net.server()
    refused_by_policy = result(first_host(), net.closed_port(first_host()))
    good = result(b"127.0.0.1", server.port)
    monkeypatch.setattr(thor.dns, "lookup", FakeLookup([refused_by_policy, good]), raising=False)
    client = net.client()
    asked: list[str] = []
    client.check_ip = lambda ip: asked.append(ip) or ip == "127.0.0.1"
    seen = watch(net, client)
    client.connect(b"dual.test", 80)
    net.run()
    assert seen["connect_error"] == []
    assert seen["connect"][0].socket.getpeername() == good[4]
    assert asked == [refused_by_policy[4][0], "127.0.0.1"]


# -- cancel() -------------------------------------------------------------------------------------


def attempts(net: Net) -> list[Any]:
    """The connection attempts registered on the loop (neither connections nor servers)."""
    return [
        source
        for source in net.loop.registered_fd_handlers()
        if not isinstance(source, (TcpConnection, TcpServer))
    ]


def assert_fd_closed(fd: int) -> None:
    with pytest.raises(OSError) as info:
        os.fstat(fd)
    assert info.value.errno == errno.EBADF


@pytest.mark.parametrize("host", tf.HOSTS)
def test_cancel_before_the_connect_completes_emits_nothing(net: Net, host: bytes) -> None:
    server = net.server(host)
    client = net.client()
    seen = watch(net, client)
    client.connect(host, server.port, connect_timeout=0.1)
    (attempt,) = attempts(net)
    sock, fd = attempt.sock, attempt.fd
    client.cancel()
    assert attempts(net) == [], "the cancelled attempt is still registered on the loop"
    assert sock.fileno() == -1
    assert_fd_closed(fd)
    client.cancel()  # idempotent
    # run past connect_timeout: neither the connection nor the timeout may show up
    net.done(settle=0.3)
    net.run()
    assert seen == {"connect": [], "connect_error": []}


def test_cancel_while_racing_closes_every_attempt(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = [net.hanging_port(first_host()), net.hanging_port()]
    if None in ports:
        pytest.skip("this kernel completes connects beyond a listener's backlog")
    answers = [result(first_host(), ports[0] or 0), result(b"127.0.0.1", ports[1] or 0)]
    monkeypatch.setattr(thor.dns, "lookup", FakeLookup(answers), raising=False)
    client = net.client()
    client.connect_attempt_delay = 0.01
    seen = watch(net, client)
    st: dict[str, Any] = {}

    def cancel_while_racing() -> None:
        racing = attempts(net)
        st["socks"] = [attempt.sock for attempt in racing]
        st["fds"] = [attempt.fd for attempt in racing]
        client.cancel()
        st["left"] = attempts(net)
        net.done(settle=0.3)  # past connect_timeout

    net.when(lambda: len(attempts(net)) == 2, cancel_while_racing)
    client.connect(b"dual.test", 80, connect_timeout=0.2)
    net.run(timeout=3.0, what="the two addresses were never raced")
    assert len(st["socks"]) == 2
    assert st["left"] == [], "a cancelled attempt is still registered on the loop"
    assert [sock.fileno() for sock in st["socks"]] == [-1, -1]
    assert seen == {"connect": [], "connect_error": []}


def test_cancel_during_name_resolution_ignores_the_answer(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first lookup answers after cancel(), while the client is connecting again
    elsewhere (and before that second lookup answers): the stale answer must not start an
    attempt of its own."""
    stale_server = net.server()
    stale_accepted: list[TcpConnection] = []
    stale_server.on("connect", stale_accepted.append)
    server = net.server()
    lookup = FakeLookup([result(b"127.0.0.1", stale_server.port)])
    monkeypatch.setattr(thor.dns, "lookup", lookup, raising=False)
    client = net.client()
    seen = watch(net, client, settle=0.1)
    client.connect(b"stale.test", 80)
    client.cancel()
    lookup.answer = [result(b"127.0.0.1", server.port)]
    client.connect(b"fresh.test", 80)
    net.run()
    assert [call[1] for call in lookup.calls] == [b"stale.test", b"fresh.test"]
    assert seen["connect_error"] == []
    (conn,) = seen["connect"]
    assert conn.socket.getpeername()[1] == server.port
    assert stale_accepted == [], "the cancelled lookup's answer was connected to"


def test_cancel_drops_an_error_not_yet_reported(net: Net, tmp_path: Path) -> None:
    """A Unix socket that does not exist fails inside connect(); the error is reported from
    the loop, so a cancel() right after connect() must drop it."""
    client = net.client()
    seen = watch(net, client)
    client.connect_unix(str(tmp_path / "nobody-listens.sock"), connect_timeout=0.1)
    client.cancel()
    net.done(settle=0.3)
    net.run()
    assert seen == {"connect": [], "connect_error": []}


def test_cancel_after_the_outcome_does_nothing(net: Net) -> None:
    server = net.server()
    client = net.client()
    client.cancel()  # before connect(): nothing to cancel
    seen = watch(net, client)
    client.connect(b"127.0.0.1", server.port)
    net.run()
    (conn,) = seen["connect"]
    client.cancel()
    client.cancel()
    assert conn.socket.fileno() != -1, "cancel() closed the connection it had handed out"
    assert conn.socket.getpeername()[1] == server.port

    failing = net.client()
    failed = watch(net, failing)
    failing.connect(b"127.0.0.1", net.closed_port())
    net.run()
    failing.cancel()
    net.done(settle=0.05)
    net.run()
    assert_error(failed, "socket", errno.ECONNREFUSED)
    assert seen["connect_error"] == []
    assert len(seen["connect"]) == 1


def _can_unshare_network() -> bool:
    try:
        probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@pytest.mark.skipif(not _can_unshare_network(), reason="needs `unshare --net` (root, util-linux)")
def test_unreachable_network_is_a_socket_connect_error() -> None:
    """In a network namespace whose loopback is down, 127.0.0.1 is unreachable: ENETUNREACH."""
    script = (
        "import json, thor.loop\n"
        "from thor.tcp import TcpClient\n"
        "loop = thor.loop.make()\n"
        "client = TcpClient(loop)\n"
        "seen = []\n"
        "client.on('connect_error', lambda *a: (seen.append(list(a)), loop.stop()))\n"
        "client.on('connect', lambda conn: (seen.append('connected'), loop.stop()))\n"
        "loop.schedule(10, loop.stop)\n"
        "client.connect(b'127.0.0.1', 80)\n"
        "loop.run()\n"
        "print(json.dumps(seen))\n"
    )
    result = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(seen) == 1, seen
    err_type, err_id, err_str = seen[0]
    assert err_type == "socket"
    assert err_id == errno.ENETUNREACH
    assert err_str
