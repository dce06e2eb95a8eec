"""thor.tcp.TcpServer over real loopback sockets: its events, shutdown and graceful shutdown,
listening options (backlog, SO_REUSEPORT, a given socket, all addresses, Unix domain sockets),
the connection cap, and the accept back-off when the process runs out of file descriptors.

Every test runs on a fresh loop (``net`` fixture, one per backend of this machine) and is driven
from that loop; see tcp_fixtures.py for the rules (no sleeps, a failing safety timer per run).
"""

from __future__ import annotations

import errno
import json
import os
import select
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import tcp_fixtures as tf
from tcp_fixtures import Net

from thor.tcp import TcpConnection, TcpServer, server_listen_unix

needs_unix = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix domain sockets")


@pytest.fixture(params=tf.BACKENDS)
def net(request: pytest.FixtureRequest) -> Iterator[Net]:
    yield from tf.open_net(request.param)


@pytest.fixture
def unix_path() -> Iterator[str]:
    """A path for a Unix socket, short enough for sun_path (about 100 bytes)."""
    base = "/tmp" if os.path.isdir("/tmp") else None
    with tempfile.TemporaryDirectory(prefix="thor-tcp-", dir=base) as directory:
        yield os.path.join(directory, "server.sock")


def echo(conn: TcpConnection) -> None:
    """Serve ``conn`` as an echo server, closing our side when the peer closes its."""
    conn.on("data", conn.write)
    conn.on("close", conn.close)
    conn.pause(False)


def expect_refused(net: Net, port: int, then: Any, into: dict[str, Any]) -> None:
    """Connect to ``port`` and record the outcome in ``into["refused"]`` (the connect_error
    payload) or ``into["connected"]``; then call ``then()``."""
    client = net.client()

    def connected(conn: TcpConnection) -> None:
        into["connected"] = True
        then()

    def failed(*err: Any) -> None:
        into["refused"] = err
        then()

    client.on("connect", connected)
    client.on("connect_error", failed)
    client.connect(b"127.0.0.1", port)


def round_trip(net: Net, conn: TcpConnection, message: bytes, then: Any) -> None:
    """Send ``message`` on ``conn`` (to an echo server) and call ``then(echoed)`` once that
    many bytes came back."""
    echoed = bytearray()

    def on_data(data: bytes) -> None:
        echoed.extend(data)
        if len(echoed) >= len(message):
            then(bytes(echoed))

    conn.on("data", on_data)
    conn.pause(False)
    conn.write(message)


# -- events and connections -----------------------------------------------------------------------


def test_start_is_emitted_on_the_first_loop_turn(net: Net) -> None:
    log: list[str] = []
    server = net.server()
    server.on("start", lambda: log.append("start"))
    log.append("constructed")
    net.later(0, log.append, "first turn")
    net.later(0.05, net.done)
    net.run()
    assert log == ["constructed", "start", "first turn"]
    assert server.sock is not None
    assert server.port != 0
    assert server.port == server.sock.getsockname()[1]


def test_connect_per_connection_and_active_connections(net: Net) -> None:
    server = net.server()
    accepted: list[TcpConnection] = []
    connected: list[TcpConnection] = []
    st: dict[str, Any] = {}

    def check() -> None:
        if len(accepted) == 3 and len(connected) == 3 and "all" not in st:
            st["all"] = set(server.active_connections)
            connected[0].close()

    def on_accept(conn: TcpConnection) -> None:
        accepted.append(conn)
        conn.on("close", conn.close)
        conn.on("disconnect", lambda: on_disconnect(conn))
        conn.pause(False)
        check()

    def on_connect(conn: TcpConnection) -> None:
        connected.append(conn)
        check()

    def on_disconnect(conn: TcpConnection) -> None:
        st["gone"] = conn
        st["after"] = set(server.active_connections)
        net.done(0.05)

    server.on("connect", on_accept)
    for _ in range(3):
        client = net.client()
        client.on("connect", on_connect)
        client.connect(b"127.0.0.1", server.port)
    net.run()
    assert len(set(accepted)) == 3
    assert all(isinstance(conn, TcpConnection) for conn in accepted)
    assert st["all"] == set(accepted)
    assert st["gone"] in accepted
    assert st["after"] == set(accepted) - {st["gone"]}


def test_shutdown_stops_listening_and_leaves_connections_alone(net: Net) -> None:
    server = net.server()
    server.on("connect", echo)
    stops: list[str] = []
    server.on("stop", lambda: stops.append("stop"))
    st: dict[str, Any] = {}

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        server.shutdown()
        server.shutdown()  # idempotent
        st["stops_at_once"] = list(stops)
        st["sock"] = server.sock
        expect_refused(net, server.port, lambda: old_connection(server_side, client_side), st)

    def old_connection(server_side: TcpConnection, client_side: TcpConnection) -> None:
        st["still_active"] = server_side in server.active_connections
        round_trip(net, client_side, b"still served", finish)

    def finish(echoed: bytes) -> None:
        st["echoed"] = echoed
        net.done(0.05)

    net.pair(ready, server=server)
    net.run()
    assert st["stops_at_once"] == ["stop"]
    assert stops == ["stop"]
    assert st["sock"] is None
    assert "connected" not in st, "a new connection was accepted after shutdown()"
    assert st["refused"][:2] == ("socket", errno.ECONNREFUSED)
    assert st["still_active"]
    assert st["echoed"] == b"still served"


def test_graceful_shutdown_stops_after_the_last_connection_closed(net: Net) -> None:
    server = net.server()
    server.on("connect", echo)
    log: list[str] = []
    pairs: list[tuple[TcpConnection, TcpConnection]] = []
    st: dict[str, Any] = {}

    def on_stop() -> None:
        log.append("stop")
        st["active_at_stop"] = len(server.active_connections)
        st["sockets_closed_at_stop"] = [s.socket.fileno() == -1 for s, _ in pairs]
        net.done(0.05)

    def first(server_side: TcpConnection, client_side: TcpConnection) -> None:
        pairs.append((server_side, client_side))
        net.pair(second, server=server)

    def second(server_side: TcpConnection, client_side: TcpConnection) -> None:
        pairs.append((server_side, client_side))
        for index, (conn, _) in enumerate(pairs):
            conn.on("disconnect", lambda index=index: log.append(f"disconnect {index}"))
        server.graceful_shutdown()
        server.graceful_shutdown()  # idempotent
        log.append("graceful_shutdown")
        st["sock"] = server.sock
        expect_refused(net, server.port, close_first, st)

    def close_first() -> None:
        pairs[0][1].close()
        net.later(0.1, close_second)

    def close_second() -> None:
        st["log_before_last"] = list(log)
        pairs[1][1].close()

    server.on("stop", on_stop)
    net.pair(first, server=server)
    net.run()
    assert st["sock"] is None
    assert "connected" not in st, "a new connection was accepted after graceful_shutdown()"
    assert st["refused"][:2] == ("socket", errno.ECONNREFUSED)
    assert st["log_before_last"] == ["graceful_shutdown", "disconnect 0"], "'stop' came early"
    assert log.count("stop") == 1
    assert sorted(log) == sorted(["graceful_shutdown", "disconnect 0", "disconnect 1", "stop"])
    assert st["active_at_stop"] == 0
    assert st["sockets_closed_at_stop"] == [True, True]


def test_graceful_shutdown_with_no_connections_stops_at_once(net: Net) -> None:
    server = net.server()
    stops: list[str] = []
    server.on("stop", lambda: stops.append("stop"))
    st: dict[str, Any] = {}
    server.graceful_shutdown()
    st["at_once"] = list(stops)
    server.graceful_shutdown()
    server.shutdown()
    expect_refused(net, server.port, lambda: net.done(0.05), st)
    net.run()
    assert st["at_once"] == ["stop"]
    assert stops == ["stop"]
    assert st["refused"][:2] == ("socket", errno.ECONNREFUSED)


# -- listening options ----------------------------------------------------------------------------


def test_backlog_is_passed_to_listen(net: Net) -> None:
    server = net.server(backlog=0)
    # with a backlog of 0 the kernel queues one connection: a second one hangs (on Linux)
    first = net.raw_connect(b"127.0.0.1", server.port)
    second = net.sock(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    second.setblocking(False)
    second.connect_ex(("127.0.0.1", server.port))
    _, writable, _ = select.select([], [second], [], 0.2)  # a probe, before the loop runs
    if writable:
        pytest.skip("this kernel completes connects beyond a listener's backlog")
    st: dict[str, Any] = {}
    server.on("connect", lambda conn: (st.setdefault("accepted", conn), net.done()))
    net.run()
    assert st["accepted"].address == first.getsockname()


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT here")
def test_reuse_port_lets_two_servers_share_a_port(net: Net) -> None:
    one = net.server(reuse_port=True)
    two = net.server(port=one.port, reuse_port=True)
    assert two.port == one.port
    with pytest.raises(OSError) as refused:
        net.server(port=one.port)  # without SO_REUSEPORT the port is taken
    assert refused.value.errno == errno.EADDRINUSE
    counts = {"one": 0, "two": 0, "clients": 0}
    one.on("connect", lambda conn: counts.__setitem__("one", counts["one"] + 1))
    two.on("connect", lambda conn: counts.__setitem__("two", counts["two"] + 1))

    def check(*args: Any) -> None:
        if counts["one"] + counts["two"] == 8:
            net.done()

    one.on("connect", check)
    two.on("connect", check)
    for _ in range(8):
        client = net.client()
        client.on("connect_error", lambda *err: net.fail(f"connect_error {err!r}"))
        client.connect(b"127.0.0.1", one.port)
    net.run()
    assert counts["one"] + counts["two"] == 8
    for server in (one, two):
        assert server.sock is not None
        assert server.sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)


def test_an_existing_listening_socket_is_used(net: Net) -> None:
    listener = net.sock(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    server = net.server(b"127.0.0.1", 0, sock=listener)
    assert server.sock is listener
    assert server.port == listener.getsockname()[1]
    server.on("connect", echo)
    st: dict[str, Any] = {}

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        round_trip(net, client_side, b"via the given socket", finish)

    def finish(echoed: bytes) -> None:
        st["echoed"] = echoed
        net.done()

    net.pair(ready, server=server)
    net.run()
    assert st["echoed"] == b"via the given socket"


@pytest.mark.parametrize("connect_to", tf.HOSTS)
def test_empty_host_listens_on_all_addresses(net: Net, connect_to: bytes) -> None:
    server = net.server(b"")
    server.on("connect", echo)
    st: dict[str, Any] = {}

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        round_trip(net, client_side, b"anyone there?", finish)

    def finish(echoed: bytes) -> None:
        st["echoed"] = echoed
        net.done()

    net.pair(ready, connect_to, server=server)
    net.run()
    assert st["echoed"] == b"anyone there?"


class OneAtATime(TcpServer):
    max_connections = 1


@pytest.mark.parametrize("how", ["instance", "subclass"])
def test_max_connections_makes_extra_clients_wait(net: Net, how: str) -> None:
    if how == "subclass":
        server = net.server(cls=OneAtATime)
    else:
        server = net.server()
        server.max_connections = 1
    log: list[str] = []
    st: dict[str, Any] = {"most_active": 0}
    waiting_data = bytearray()

    def on_accept(conn: TcpConnection) -> None:
        number = len([entry for entry in log if entry.startswith("accept")]) + 1
        log.append(f"accept {number}")
        st["most_active"] = max(st["most_active"], len(server.active_connections))
        conn.on("close", conn.close)
        conn.on("disconnect", lambda: log.append(f"disconnect {number}"))
        if number == 2:
            conn.on("data", on_waiting_data)
        conn.pause(False)

    def on_waiting_data(data: bytes) -> None:
        waiting_data.extend(data)
        if waiting_data == b"I waited":
            net.done(0.05)

    def first(server_side: TcpConnection, client_side: TcpConnection) -> None:
        extra = net.client()
        extra.on("connect", lambda conn: extra_connected(conn, client_side))
        extra.connect(b"127.0.0.1", server.port)

    def extra_connected(conn: TcpConnection, first_client: TcpConnection) -> None:
        log.append("extra client connected")  # by the kernel, from the listen queue
        conn.write(b"I waited")
        net.later(0.1, release, first_client)

    def release(first_client: TcpConnection) -> None:
        st["log_while_full"] = list(log)
        first_client.close()

    server.on("connect", on_accept)
    net.pair(first, server=server)
    net.run()
    assert st["log_while_full"] == ["accept 1", "extra client connected"]
    assert log == ["accept 1", "extra client connected", "disconnect 1", "accept 2"]
    assert st["most_active"] == 1
    assert waiting_data == b"I waited"


# -- Unix domain sockets --------------------------------------------------------------------------


@needs_unix
def test_unix_socket_echo(net: Net, unix_path: str) -> None:
    server = net.server(b"", 0, sock=server_listen_unix(unix_path))
    server.on("connect", echo)
    st: dict[str, Any] = {}

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        st["families"] = (server_side.socket.family, client_side.socket.family)
        round_trip(net, client_side, b"over a Unix socket" * 1000, finish)

    def finish(echoed: bytes) -> None:
        st["echoed"] = echoed
        net.done()

    net.pair(ready, server=server, connect=lambda client, _: client.connect_unix(unix_path))
    net.run()
    assert st["families"] == (socket.AF_UNIX, socket.AF_UNIX)
    assert st["echoed"] == b"over a Unix socket" * 1000


@needs_unix
def test_unix_stale_socket_file_is_replaced(net: Net, unix_path: str) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(unix_path)
    stale.close()  # the file stays: what a crashed server leaves behind
    assert stat.S_ISSOCK(os.stat(unix_path).st_mode)
    st: dict[str, Any] = {}

    def refused(*err: Any) -> None:
        st["refused"] = err
        net.later(0, serve)

    def serve() -> None:
        server = net.server(b"", 0, sock=server_listen_unix(unix_path))
        server.on("connect", echo)
        net.pair(ready, server=server, connect=lambda client, _: client.connect_unix(unix_path))

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        round_trip(net, client_side, b"fresh", finish)

    def finish(echoed: bytes) -> None:
        st["echoed"] = echoed
        net.done()

    client = net.client()
    client.on("connect_error", refused)
    client.connect_unix(unix_path)
    net.run()
    assert st["refused"][:2] == ("socket", errno.ECONNREFUSED)
    assert st["echoed"] == b"fresh"


@needs_unix
def test_unix_listen_does_not_replace_a_regular_file(unix_path: str) -> None:
    Path(unix_path).write_text("precious")
    with pytest.raises(OSError):
        server_listen_unix(unix_path)
    assert Path(unix_path).read_text() == "precious"


# -- running out of file descriptors --------------------------------------------------------------

CHILD = r'''
"""Child of test_accept_backs_off_when_out_of_file_descriptors: a TcpServer in a process whose
RLIMIT_NOFILE leaves room for only a few accepted connections. Reports as JSON lines."""
import json
import os
import resource
import sys

import thor.loop
from thor.tcp import TcpServer

backend, want, room = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
loop = thor.loop.make(backend=backend)
server = TcpServer(b"127.0.0.1", 0, loop=loop)
server.accept_backoff = 0.2
log, conns, cpu = [], [], {}


def say(**message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def cpu_now():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def on_connect(conn):
    conns.append(conn)
    log.append(["connect", len(conns)])
    conn.on("close", conn.close)  # the parent closed its end: give our fd back
    conn.pause(False)
    if len(conns) == want:
        say(phase="done", log=log)
        loop.stop()


def on_paused(code):
    log.append(["accept_paused", code])
    if "start" not in cpu:
        cpu["start"] = cpu_now()
        loop.schedule(1.5, measured)


def measured():
    log.append(["measured"])
    say(phase="measured", accepted=len(conns), cpu=cpu_now() - cpu["start"])


def give_up():
    say(phase="timeout", log=log)
    loop.stop()


server.on("connect", on_connect)
server.on("accept_paused", on_paused)
server.on("accept_resumed", lambda: log.append(["accept_resumed"]))
loop.schedule(20.0, give_up)


def is_open(fd):
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


open_fds = [fd for fd in map(int, os.listdir("/proc/self/fd")) if is_open(fd)]
limit = max(open_fds) + 1 + room
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
say(phase="listening", port=server.port, room=limit - len(open_fds))
loop.run()
'''


def test_accept_backs_off_when_out_of_file_descriptors(tmp_path: Path) -> None:
    """In a child process with RLIMIT_NOFILE lowered to leave room for 3 connections, 6 clients
    connect: the server emits 'accept_paused' (EMFILE) instead of spinning on the readable
    listening socket, and once clients leave it resumes and accepts the ones that waited."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to count the child's open file descriptors")
    want, room = 6, 3
    script = tmp_path / "accept_backoff_child.py"
    script.write_text(CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script), tf.BACKENDS[0], str(want), str(room)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stderr is not None
    clients: list[socket.socket] = []

    def message(stream: IO[str]) -> dict[str, Any]:
        line = stream.readline()  # the child always ends within 20 s (its own safety timer)
        if not line:
            child.wait(timeout=10)
            assert child.stderr is not None
            pytest.fail(f"the child ended early:\n{child.stderr.read()}", pytrace=False)
        result: dict[str, Any] = json.loads(line)
        return result

    try:
        listening = message(child.stdout)
        assert listening["phase"] == "listening"
        assert 0 < listening["room"] < want
        for _ in range(want):  # all complete at once: the kernel queues what is not accepted
            clients.append(socket.create_connection(("127.0.0.1", listening["port"]), timeout=5))
        measured = message(child.stdout)
        assert measured["phase"] == "measured", measured
        # the listen queue is FIFO: the first clients are the accepted ones
        for sock in clients[: measured["accepted"]]:
            sock.close()
        done = message(child.stdout)
        assert child.wait(timeout=10) == 0
    finally:
        for sock in clients:
            sock.close()
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()

    assert 0 < measured["accepted"] < want, measured
    assert measured["cpu"] < 0.5, f"the child used {measured['cpu']:.2f} s of CPU in 1.5 s"
    assert done["phase"] == "done", done
    log = [tuple(entry) for entry in done["log"]]
    paused = [entry for entry in log if entry[0] == "accept_paused"]
    assert paused, log
    assert paused[0][1] == errno.EMFILE
    cut = log.index(("measured",))
    before, after = log[:cut], log[cut + 1 :]
    assert [e for e in before if e[0] == "connect"][-1] == ("connect", measured["accepted"])
    assert ("accept_resumed",) in after
    resumed = after.index(("accept_resumed",))
    later = [e[1] for e in after if e[0] == "connect"]
    assert later == list(range(measured["accepted"] + 1, want + 1))
    assert after.index(("connect", later[0])) > resumed


# -- what an accepted socket is ----------------------------------------------------------------


@pytest.mark.parametrize("host", tf.HOSTS)
def test_accepted_sockets_are_non_blocking_close_on_exec_and_of_the_listeners_kind(
    net: Net, host: bytes
) -> None:
    server = net.server(host)
    seen: list[TcpConnection] = []

    def accepted(conn: TcpConnection) -> None:
        seen.append(conn)
        net.done()

    server.on("connect", accepted)
    net.raw_connect(host, server.port)
    net.run()
    sock = seen[0].socket
    assert not os.get_blocking(sock.fileno())  # the fd itself, not only Python's timeout
    assert not os.get_inheritable(sock.fileno())
    assert sock.family == tf.family_of(host)
    assert sock.type == socket.SOCK_STREAM
    assert sock.getpeername()[1] == seen[0].address[1]


@needs_unix
def test_accepted_unix_sockets_are_non_blocking_too(net: Net, unix_path: str) -> None:
    server = net.server(b"", 0, sock=server_listen_unix(unix_path))
    seen: list[TcpConnection] = []

    def accepted(conn: TcpConnection) -> None:
        seen.append(conn)
        net.done()

    server.on("connect", accepted)
    client = net.sock(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
    client.connect(unix_path)
    net.run()
    sock = seen[0].socket
    assert not os.get_blocking(sock.fileno())
    assert sock.family == socket.AF_UNIX
