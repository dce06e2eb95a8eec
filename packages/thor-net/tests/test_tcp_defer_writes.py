"""TcpConnection.defer_writes over real loopback sockets, on every loop backend: while the loop
runs, a write only queues, and the queue goes out in one gathered send right after the IO
dispatch of the pass (``loop.after_io``), before that pass's timers and ``schedule(0)``
callbacks; a write past ``write_bufsize`` (or the gathering limit) sends at once; outside a
running loop, and with the setting off (the default), writes send at once as before. Closing,
aborting, half-closing, failures and flow control behave as without deferral.

Most tests drive one TcpConnection whose peer is a plain socket (``tcp_pair``), so that what the
peer has received can be looked at without the loop: ``nothing_arrived`` (a non-blocking recv
that must raise BlockingIOError) while bytes are only deferred; ``Peer.drain`` from loop timers
(``Net.when``), or ``read_exactly`` (select-bounded waits) after the run. Every
run has the safety timer of tcp_fixtures; exceptions reported by the loop fail the test (Net
routes the loop's exception handler to ``Net.errors``, and ``Net.run`` re-raises them).
"""

from __future__ import annotations

import errno
import select
import socket
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import tcp_fixtures as tf
from tcp_fixtures import KIB, Net, assert_pause_events_alternate, block

from thor.tcp import TcpConnection

#: the longest a plain socket's connect, accept or wait for bytes may take (nothing hangs)
SOCKET_TIMEOUT = 2.0


@pytest.fixture(params=tf.BACKENDS)
def net(request: pytest.FixtureRequest) -> Iterator[Net]:
    yield from tf.open_net(request.param)


# -- helpers ---------------------------------------------------------------------------------------


def tcp_pair(
    net: Net, *, defer: bool = True, peer_rcvbuf: int | None = None
) -> tuple[TcpConnection, socket.socket]:
    """A TcpConnection on ``net.loop`` (on the loop, paused, ``defer_writes = defer`` on the
    instance) and its peer, a plain non-blocking socket, on 127.0.0.1. Made before the loop
    runs: the kernel completes the handshake from the listen queue."""
    listener = net.sock(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(SOCKET_TIMEOUT)
    peer = net.sock(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    if peer_rcvbuf is not None:  # before connect(), for the window to follow it
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, peer_rcvbuf)
    peer.settimeout(SOCKET_TIMEOUT)
    peer.connect(listener.getsockname())
    peer.setblocking(False)  # (with a timeout, even MSG_DONTWAIT would wait for data)
    sock, address = listener.accept()
    conn = TcpConnection(sock, address, loop=net.loop)
    net.conns.append(conn)  # aborted after the test
    conn.defer_writes = defer
    return conn, peer


def nothing_arrived(peer: socket.socket) -> bool:
    """True when a non-blocking recv on ``peer`` raises BlockingIOError: no byte (and no EOF)
    has arrived. (MSG_PEEK: what did arrive stays for the reads that follow.)"""
    try:
        peer.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    return False


def wait_readable(sock: socket.socket, timeout: float = SOCKET_TIMEOUT) -> bool:
    """Wait (bounded) until ``sock`` is readable: bytes, an EOF or an error wait there."""
    return bool(select.select([sock], [], [], timeout)[0])


def read_exactly(peer: socket.socket, size: int) -> bytes:
    """Read ``size`` bytes from the non-blocking ``peer`` (fewer at EOF, or when nothing more
    comes within SOCKET_TIMEOUT: every wait is bounded)."""
    got = bytearray()
    while len(got) < size and wait_readable(peer):
        chunk = peer.recv(size - len(got))
        if not chunk:
            break
        got += chunk
    return bytes(got)


class Peer:
    """Reads a plain socket without blocking, from loop timers (see ``Net.when``)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.got = bytearray()
        self.eof = False
        self.reset = False

    def drain(self) -> bool:
        """Take every byte waiting; True once the peer saw EOF (or a reset)."""
        while not self.eof:
            try:
                data = self.sock.recv(256 * KIB)
            except BlockingIOError:
                break
            except ConnectionResetError:
                self.eof = self.reset = True
                break
            if data:
                self.got += data
            else:
                self.eof = True
        return self.eof


def in_a_data_handler(conn: TcpConnection, peer: socket.socket, action: Callable[[], Any]) -> None:
    """Call ``action()`` from ``conn``'s 'data' handler, i.e. inside a pass's IO dispatch: the
    peer sends a byte that the (unpaused) connection reads once the loop runs."""
    st = {"called": False}

    def on_data(data: bytes) -> None:
        if not st["called"]:
            st["called"] = True
            action()

    conn.on("data", on_data)
    conn.pause(False)
    peer.sendall(b"!")


def recorder(log: list[str], name: str, then: Callable[[], Any] | None = None) -> Any:
    def record(*args: Any) -> None:
        log.append(name)
        if then is not None:
            then()

    return record


# -- deferral inside a pass ------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["data handler", "scheduled callback"])
def test_writes_in_a_pass_wait_for_the_end_of_the_io_dispatch(net: Net, where: str) -> None:
    """Writes made inside a pass are only queued (the peer has nothing yet); the queue goes out
    after the pass's IO dispatch, before the schedule(0) callbacks queued in that pass run (even
    one queued before the writes), in order."""
    conn, peer = tcp_pair(net)
    log: list[str] = []
    st: dict[str, Any] = {}
    reused = bytearray(b"one;")  # first: the write that starts the deferred queue
    pieces: list[bytes | bytearray | memoryview] = [reused, b"two;", memoryview(b"three;"), b"four"]
    expected = b"one;two;three;four"

    def early_check() -> None:  # scheduled before the writes, in the same pass
        log.append("earlier scheduled callback")
        st["queued_in_earlier_callback"] = conn.write_buffer_size

    def write() -> None:
        net.loop.schedule(0, early_check)
        log.append("writes")
        for piece in pieces:
            conn.write(piece)
        reused[:] = b"XXXX"  # a buffer the caller reuses: what was written must not change
        st["queued"] = conn.write_buffer_size
        st["nothing_arrived"] = nothing_arrived(peer)
        net.loop.schedule(0, check)

    def check() -> None:
        log.append("scheduled callback")
        st["queued_in_callback"] = conn.write_buffer_size
        net.done()

    conn.on("sent", recorder(log, "sent"))
    if where == "data handler":
        in_a_data_handler(conn, peer, write)
    else:
        net.loop.schedule(0, write)
    net.run(timeout=2.0)
    assert st["queued"] == len(expected), "the writes were not queued"
    assert st["nothing_arrived"], "the peer got bytes before the pass's IO dispatch ended"
    # after_io, not a scheduled callback: the send comes before callbacks scheduled earlier
    assert log == ["writes", "sent", "earlier scheduled callback", "scheduled callback"], log
    assert st["queued_in_earlier_callback"] == 0
    assert st["queued_in_callback"] == 0, "the deferred bytes were not sent before the callback"
    assert read_exactly(peer, len(expected)) == expected
    assert nothing_arrived(peer)


@pytest.mark.parametrize("count", [1, 20])
def test_the_writes_of_a_pass_go_out_in_one_send(net: Net, count: int) -> None:
    """One write or several: one send after the dispatch, and one 'sent' for it, with the
    queue empty by then."""
    conn, peer = tcp_pair(net)
    messages = [b"message %02d;" % index for index in range(count)]
    st: dict[str, Any] = {"sent": 0}

    def on_sent() -> None:
        st["sent"] += 1
        st["queued_at_sent"] = conn.write_buffer_size

    def write() -> None:
        for message in messages:
            conn.write(message)
        st["sent_during_writes"] = st["sent"]
        net.loop.schedule(0, net.done)

    conn.on("sent", on_sent)
    in_a_data_handler(conn, peer, write)
    net.run(timeout=2.0)
    expected = b"".join(messages)
    assert st["sent_during_writes"] == 0, "'sent' during deferred writes: they were sent"
    assert st["sent"] == 1, f"{st['sent']} 'sent' events for one pass's writes (1 expected)"
    assert st["queued_at_sent"] == 0
    assert conn.write_buffer_size == 0
    assert read_exactly(peer, len(expected)) == expected


def test_output_of_every_connection_read_in_a_pass_goes_out_after_all_the_reads(
    net: Net,
) -> None:
    """Two connections readable in the same pass: neither's output goes out before both were
    read; both go out before the pass's scheduled callbacks."""
    pairs = [tcp_pair(net), tcp_pair(net)]
    seen: list[tuple[int, int]] = []  # (reader, the other connection's queue at that read)
    st: dict[str, Any] = {}

    for number, (conn, _) in enumerate(pairs):
        other = pairs[1 - number][0]

        def on_data(
            data: bytes, number: int = number, conn: TcpConnection = conn, other: Any = other
        ) -> None:
            conn.write(b"answer %d" % number)
            seen.append((number, other.write_buffer_size))
            if len(seen) == 2:
                net.loop.schedule(0, check)

        conn.on("data", on_data)
        conn.pause(False)

    def check() -> None:
        st["queues"] = [conn.write_buffer_size for conn, _ in pairs]
        net.done()

    for _, peer in pairs:
        peer.sendall(b"question")
    # both requests are in their sockets before the loop's first poll: one pass reads both
    for conn, _ in pairs:
        assert wait_readable(conn.socket)
    net.run(timeout=2.0)
    assert len(seen) == 2, seen
    # the second connection read saw the first one's answer still queued
    assert seen[1][1] == len(b"answer 0"), f"output went out between the reads: {seen}"
    assert st["queues"] == [0, 0]
    for number, (_, peer) in enumerate(pairs):
        assert read_exactly(peer, 8) == b"answer %d" % number


def test_a_subclass_setting_defers_writes_of_server_connections(net: Net) -> None:
    """The class attribute is the setting (here through TcpServer.connection_class); writes from
    the 'connect' handler (inside the server's accept, a pass) are deferred, then sent."""

    class Deferring(TcpConnection):
        defer_writes = True

    st: dict[str, Any] = {}
    server = net.server()
    server.connection_class = Deferring
    peer = net.raw_connect(b"127.0.0.1", server.port)
    peer.setblocking(False)

    def on_connect(conn: TcpConnection) -> None:
        conn.write(b"hello, ")
        conn.write(b"world")
        st["queued"] = conn.write_buffer_size
        st["nothing_arrived"] = nothing_arrived(peer)

        def check() -> None:
            st["after"] = conn.write_buffer_size
            net.done()

        net.loop.schedule(0, check)

    server.on("connect", on_connect)
    net.run(timeout=2.0)
    assert TcpConnection.defer_writes is False
    assert st["queued"] == 12
    assert st["nothing_arrived"]
    assert st["after"] == 0
    assert read_exactly(peer, 12) == b"hello, world"


# -- sending at once -------------------------------------------------------------------------------


def test_writes_while_the_loop_is_not_running_are_sent_at_once(net: Net) -> None:
    conn, peer = tcp_pair(net)
    sent: list[int] = []
    conn.on("sent", lambda: sent.append(conn.write_buffer_size))
    assert not net.loop.running
    conn.write(b"first;")
    assert conn.write_buffer_size == 0, "a write outside the loop was queued"
    assert sent == [0], "no 'sent' from within the write"
    assert wait_readable(peer)
    assert peer.recv(100) == b"first;"
    conn.write(bytearray(b"second"))
    assert conn.write_buffer_size == 0
    assert read_exactly(peer, 6) == b"second"
    assert net.loop.scheduled_events() == [], "a flush was left waiting for the loop"


def test_writes_are_not_deferred_by_default(net: Net) -> None:
    """defer_writes is False by default: inside a pass each write is sent at once."""
    conn, peer = tcp_pair(net, defer=False)
    del conn.defer_writes  # back to the class default
    st: dict[str, Any] = {"sent": 0, "queues": []}

    def on_sent() -> None:
        st["sent"] += 1

    def write() -> None:
        for index in range(3):
            conn.write(b"piece %d;" % index)
            st["queues"].append(conn.write_buffer_size)
        st["sent_during_writes"] = st["sent"]
        net.loop.schedule(0, net.done)

    conn.on("sent", on_sent)
    in_a_data_handler(conn, peer, write)
    net.run(timeout=2.0)
    assert TcpConnection.defer_writes is False
    assert conn.defer_writes is False
    assert st["queues"] == [0, 0, 0], "writes inside a pass were queued without defer_writes"
    assert st["sent_during_writes"] == 3
    assert read_exactly(peer, 24) == b"piece 0;piece 1;piece 2;"


def test_a_write_past_write_bufsize_flushes_the_deferred_bytes_at_once(net: Net) -> None:
    """600 bytes deferred, then 600 more with write_bufsize = 1000: the deferred bytes go out
    from within that write (the peer has them before the pass ends), in order, no 'pause'."""
    conn, peer = tcp_pair(net)
    conn.write_bufsize = 1000
    first, second = b"a" * 600, b"b" * 600
    log: list[Any] = []
    st: dict[str, Any] = {}

    def write() -> None:
        conn.write(first)
        st["queued_first"] = conn.write_buffer_size
        log.append("write 2")
        conn.write(second)
        log.append("written")
        # the peer has the first write now, while the pass is still in its dispatch
        st["arrived"] = peer.recv(4096, socket.MSG_PEEK) if wait_readable(peer) else b""
        net.loop.schedule(0, net.done)

    conn.on("sent", recorder(log, "sent"))
    conn.on("pause", log.append)
    in_a_data_handler(conn, peer, write)
    net.run(timeout=2.0)
    assert st["queued_first"] == 600
    assert "sent" in log[log.index("write 2") : log.index("written")], log
    assert st["arrived"][:600] == first, "the deferred bytes did not go out at once"
    assert True not in log and False not in log, f"'pause' emitted: {log}"
    assert read_exactly(peer, 1200) == first + second


def test_a_write_past_write_bufsize_is_itself_sent_at_once(net: Net) -> None:
    """The documented rule ("A write that would queue more sends at once, as without
    deferral"): the write that takes the queue past write_bufsize goes out in that call too,
    so nothing is left queued after it when the kernel takes everything."""
    conn, peer = tcp_pair(net)
    conn.write_bufsize = 1000
    pauses: list[bool] = []
    st: dict[str, Any] = {}

    def write() -> None:
        conn.write(b"a" * 600)
        conn.write(b"b" * 600)
        st["queued"] = conn.write_buffer_size
        net.loop.schedule(0, net.done)

    conn.on("pause", pauses.append)
    in_a_data_handler(conn, peer, write)
    net.run(timeout=2.0)
    assert read_exactly(peer, 1200) == b"a" * 600 + b"b" * 600
    assert pauses == []
    assert st["queued"] == 0, (
        f"{st['queued']} bytes left queued after the write that passed write_bufsize "
        "(it was deferred again instead of being sent at once)"
    )


@pytest.mark.parametrize("queue", ["empty", "600 bytes deferred"])
def test_a_write_larger_than_write_bufsize_is_sent_at_once(net: Net, queue: str) -> None:
    conn, peer = tcp_pair(net)
    conn.write_bufsize = 1000
    before = b"a" * 600 if queue != "empty" else b""
    big = b"c" * 1500
    log: list[Any] = []
    st: dict[str, Any] = {}

    def write() -> None:
        if before:
            conn.write(before)
        log.append("big write")
        conn.write(big)
        log.append("written")
        st["queued"] = conn.write_buffer_size
        net.loop.schedule(0, net.done)

    conn.on("sent", recorder(log, "sent"))
    conn.on("pause", log.append)
    in_a_data_handler(conn, peer, write)
    net.run(timeout=2.0)
    assert st["queued"] == 0, "the big write was queued"
    assert "sent" in log[log.index("big write") : log.index("written")], log
    assert True not in log and False not in log, f"'pause' emitted: {log}"
    assert read_exactly(peer, len(before) + len(big)) == before + big


def test_many_tiny_writes_in_one_pass_are_not_refused(net: Net) -> None:
    """5000 writes in one pass with max_write_buffer_chunks at its default (4096): deferral
    never queues more chunks than one gathered send takes; no BufferError, all in order."""
    conn, peer = tcp_pair(net)
    assert conn.max_write_buffer_chunks == 4096
    messages = [b"%05d" % index for index in range(5000)]
    st: dict[str, Any] = {"refused": None, "max_queued": 0}

    def write() -> None:
        for index, message in enumerate(messages):
            try:
                conn.write(message)
            except BufferError as exc:
                st["refused"] = (index, str(exc))
                break
            st["max_queued"] = max(st["max_queued"], conn.write_buffer_size)
        st["queued"] = conn.write_buffer_size
        net.loop.schedule(0, net.done)

    in_a_data_handler(conn, peer, write)
    net.run(timeout=3.0)
    expected = b"".join(messages)
    assert st["refused"] is None, f"write refused: {st['refused']}"
    assert 0 < st["queued"] < len(expected), "the writes were not deferred"
    assert read_exactly(peer, len(expected)) == expected
    assert nothing_arrived(peer)


@pytest.mark.parametrize("defer", [False, True], ids=["immediate", "deferred"])
@pytest.mark.parametrize("limit", ["max_write_buffer_chunks", "max_write_buffer_size"])
def test_deferral_does_not_make_the_hard_limits_refuse_writes_the_socket_takes(
    net: Net, limit: str, defer: bool
) -> None:
    """Hard limits below what deferral queues (8 chunks; 4 KiB with write_bufsize at 256 KiB):
    writes the socket takes at once are not refused (no BufferError, no 'pause'): what
    deferral holds is sent before a write would take the queue past a hard limit."""
    conn, peer = tcp_pair(net, defer=defer)
    if limit == "max_write_buffer_chunks":
        conn.max_write_buffer_chunks = 8
        messages = [b"<%04d>" % index for index in range(20)]  # 120 bytes in 20 writes
    else:
        conn.max_write_buffer_size = 4 * KIB
        messages = [block(index, 2 * KIB) for index in range(6)]  # 12 KiB in 6 writes
    pauses: list[bool] = []
    st: dict[str, Any] = {"refused": None}

    def write() -> None:
        for index, message in enumerate(messages):
            try:
                conn.write(message)
            except BufferError as exc:
                st["refused"] = (index, str(exc))
                break
        net.loop.schedule(0, net.done)

    conn.on("pause", pauses.append)
    in_a_data_handler(conn, peer, write)
    net.run(timeout=2.0)
    assert st["refused"] is None, (
        f"write {st['refused'][0]} of {len(messages)} refused with defer_writes={defer} "
        f"(pauses: {pauses}): {st['refused'][1]}"
    )
    assert pauses == []
    expected = b"".join(messages)
    assert read_exactly(peer, len(expected)) == expected


def test_bytes_deferred_in_the_pass_that_stops_the_loop_are_still_sent(net: Net) -> None:
    conn, peer = tcp_pair(net)
    st: dict[str, Any] = {}

    def write_and_stop() -> None:
        conn.write(b"last words")
        st["queued"] = conn.write_buffer_size
        net.done()

    net.loop.schedule(0, write_and_stop)
    net.run(timeout=2.0)
    assert st["queued"] == 10
    assert conn.write_buffer_size == 0, "run() returned with the deferred bytes unsent"
    assert read_exactly(peer, 10) == b"last words"


def test_a_deferred_flush_into_a_full_socket_goes_out_once_writable(net: Net) -> None:
    """The kernel's buffers are full (the peer does not read) and nothing is queued in the
    connection: a deferred write's flush is refused (EAGAIN); the bytes stay queued and go out,
    after the rest, once the peer reads."""
    conn, peer = tcp_pair(net, peer_rcvbuf=16 * KIB)
    conn.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * KIB)
    expected = bytearray()
    for index in range(1024):  # straight into the socket, past the connection: it stays empty
        try:
            sent = conn.socket.send(block(index, 4 * KIB))
        except BlockingIOError:
            break
        expected += block(index, 4 * KIB)[:sent]
    tail = block(9999, 4 * KIB)
    expected += tail
    reader = Peer(peer)
    st: dict[str, Any] = {}

    def write() -> None:
        conn.write(tail)
        st["queued"] = conn.write_buffer_size
        net.loop.schedule(0, after_the_flush)

    def after_the_flush() -> None:
        st["queued_after_flush"] = conn.write_buffer_size
        net.when(lambda: bool(reader.drain() or len(reader.got) >= len(expected)), net.done)

    net.loop.schedule(0, write)
    net.run(timeout=3.0, what="the refused flush was not retried once the socket was writable")
    assert st["queued"] == len(tail)
    assert st["queued_after_flush"] == len(tail), "the kernel took the flush: case not reached"
    assert conn.write_buffer_size == 0
    assert bytes(reader.got) == bytes(expected)


# -- closing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("where", ["data handler", "connect handler"])
def test_close_right_after_deferred_writes_sends_them_then_the_fin(
    net: Net, where: str, count: int
) -> None:
    log: list[str] = []
    messages = [b"header;", b"body;", b"trailer"][:count]
    expected = b"".join(messages)
    st: dict[str, Any] = {}

    def write_and_close(conn: TcpConnection) -> None:
        for message in messages:
            conn.write(message)
        st["queued"] = conn.write_buffer_size
        conn.close()
        st["queued_after_close"] = conn.write_buffer_size
        conn.on("close", recorder(log, "close"))
        conn.on("disconnect", recorder(log, "disconnect", net.done))

    if where == "data handler":
        conn, peer = tcp_pair(net)
        in_a_data_handler(conn, peer, lambda: write_and_close(conn))
    else:  # from TcpServer's 'connect' (before the server puts the connection on the loop)
        server = net.server()
        server.on("connect", lambda conn: setattr(conn, "defer_writes", True))
        server.on("connect", write_and_close)
        peer = net.raw_connect(b"127.0.0.1", server.port)
        peer.setblocking(False)
    reader = Peer(peer)

    def peer_got_eof() -> None:
        st["got_at_eof"] = bytes(reader.got)
        peer.shutdown(socket.SHUT_WR)  # our FIN: the connection closes its socket

    net.when(reader.drain, peer_got_eof, interval=0.001)
    net.run(timeout=3.0)
    assert st["queued"] == len(expected), "the writes were not deferred"
    assert st["queued_after_close"] == len(expected)
    assert st["got_at_eof"] == expected, "the peer's EOF did not follow all the bytes"
    assert not reader.reset
    assert log == ["close", "disconnect"]


def test_abort_right_after_deferred_writes_offers_them_to_the_kernel_first(net: Net) -> None:
    # as without deferral, where the writes would have reached the kernel before the abort
    conn, peer = tcp_pair(net)
    log: list[str] = []
    st: dict[str, Any] = {}

    def write_and_abort() -> None:
        conn.write(b"sent")
        conn.write(b" before the abort")
        st["queued"] = conn.write_buffer_size
        conn.on("close", recorder(log, "close"))
        conn.on("disconnect", recorder(log, "disconnect"))
        conn.abort()
        st["queued_after_abort"] = conn.write_buffer_size
        st["log_after_abort"] = list(log)

    in_a_data_handler(conn, peer, write_and_abort)
    reader = Peer(peer)
    net.when(reader.drain, net.done, 0.02, interval=0.001)
    net.run(timeout=2.0)
    assert net.errors == []
    assert st["queued"] == 21
    assert st["queued_after_abort"] == 0
    assert st["log_after_abort"] == ["disconnect"]
    assert log == ["disconnect"]
    assert bytes(reader.got) == b"sent before the abort"
    assert conn.error is None


def test_flush_sends_deferred_bytes_at_once(net: Net) -> None:
    conn, peer = tcp_pair(net)
    st: dict[str, Any] = {}

    def write_and_flush() -> None:
        conn.write(b"now, ")
        conn.write(b"not later")
        st["before"] = conn.write_buffer_size
        conn.flush()
        st["after"] = conn.write_buffer_size
        st["arrived"] = read_exactly(peer, 14)
        conn.flush()  # nothing held: a no-op

    in_a_data_handler(conn, peer, write_and_flush)
    net.when(lambda: "arrived" in st, net.done, 0.01, interval=0.001)
    net.run(timeout=2.0)
    assert net.errors == []
    assert (st["before"], st["after"]) == (14, 0)
    assert st["arrived"] == b"now, not later"


def test_a_failed_flush_sets_error_at_once_and_closes_from_the_loop(net: Net) -> None:
    conn, peer = tcp_pair(net)
    log: list[str] = []
    st: dict[str, Any] = {}
    conn.on("close", recorder(log, "close"))
    conn.on("disconnect", recorder(log, "disconnect"))

    def reset_then_flush() -> None:
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # an RST, received at once on loopback
        conn.write(b"into a reset connection")
        conn.flush()
        st["error"] = conn.error
        st["log_in_flush"] = list(log)

    in_a_data_handler(conn, peer, reset_then_flush)
    net.when(lambda: "close" in log, net.done, 0.01, interval=0.001)
    net.run(timeout=2.0)
    assert net.errors == []
    assert isinstance(st["error"], OSError)
    assert st["error"].errno in (errno.ECONNRESET, errno.EPIPE)
    assert st["log_in_flush"] == []  # reported from the loop, not from inside flush()
    assert "close" in log and "disconnect" in log


def test_shutdown_write_after_deferred_writes_sends_them_then_the_fin_and_keeps_reading(
    net: Net,
) -> None:
    conn, peer = tcp_pair(net)
    log: list[Any] = []
    st: dict[str, Any] = {}
    expected = b"request line;headers;body"

    def write_and_shut() -> None:
        conn.write(b"request line;")
        conn.write(b"headers;")
        conn.write(b"body")
        st["queued"] = conn.write_buffer_size
        conn.shutdown_write()
        st["queued_after_shutdown"] = conn.write_buffer_size
        try:
            conn.write(b"late")
        except OSError:
            st["write_raised"] = True

    def on_data(data: bytes) -> None:
        if data != b"!":  # (the byte that triggered the writes)
            log.append(("data", data))

    conn.on("data", on_data)
    conn.on("close", recorder(log, "close"))
    conn.on("disconnect", recorder(log, "disconnect", net.done))
    in_a_data_handler(conn, peer, write_and_shut)
    reader = Peer(peer)

    def answer() -> None:
        st["got_at_eof"] = bytes(reader.got)
        peer.sendall(b"the answer")
        peer.shutdown(socket.SHUT_WR)

    net.when(reader.drain, answer, interval=0.001)
    net.run(timeout=2.0)
    assert st["queued"] == len(expected), "the writes were not deferred"
    assert st["queued_after_shutdown"] == len(expected)
    assert st.get("write_raised"), "write() after shutdown_write() did not raise"
    assert st["got_at_eof"] == expected, "the peer's EOF did not follow all the bytes"
    assert log == [("data", b"the answer"), "close", "disconnect"], log


@pytest.mark.parametrize("how", ["close", "abort", "shutdown_write"])
@pytest.mark.parametrize("where", ["in a pass", "outside the loop"])
def test_write_after_closing_raises_oserror(net: Net, how: str, where: str) -> None:
    conn, peer = tcp_pair(net)
    st: dict[str, Any] = {}

    def write_close_write() -> None:
        conn.write(b"deferred")
        getattr(conn, how)()
        try:
            conn.write(b"too late")
        except OSError as exc:
            st["error"] = exc
        if net.loop.running:
            net.done()

    if where == "in a pass":
        in_a_data_handler(conn, peer, write_close_write)
        net.run(timeout=2.0)
    else:
        write_close_write()
    assert isinstance(st.get("error"), OSError), f"write() after {how}() did not raise"
    assert st["error"].errno == errno.EPIPE


# -- failures --------------------------------------------------------------------------------------


def reset_by(peer: socket.socket) -> None:
    """Close ``peer`` with an RST (SO_LINGER 0), not a FIN."""
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()


@pytest.mark.parametrize("when", ["flush after the dispatch", "flush from a write"])
def test_a_deferred_send_that_fails_closes_the_connection(net: Net, when: str) -> None:
    """The peer reset the connection in the pass that wrote; the RST is in our socket before the
    send: the flush fails (after the dispatch, or from a write past write_bufsize). No exception
    leaves write() or reaches the loop; the connection fails as any write failure does: 'error'
    set, one 'disconnect' and one 'close' (in _fail's order, as for any reset), write() raises."""
    conn, peer = tcp_pair(net)
    conn.write_bufsize = 1000
    log: list[str] = []
    st: dict[str, Any] = {}

    def reset_then_write() -> None:
        reset_by(peer)
        # the RST reached our socket (readable: its error is pending), the loop has not seen it
        st["rst_arrived"] = wait_readable(conn.socket)
        try:
            conn.write(b"a" * 600)
            st["queued"] = conn.write_buffer_size
            if when == "flush from a write":
                conn.write(b"b" * 600)  # past write_bufsize: the deferred bytes are sent now
                st["error_after_write"] = conn.error
        except Exception as exc:
            st["raised"] = exc
        st["log_in_pass"] = list(log)
        net.loop.schedule(0, check)

    def check() -> None:
        st["log_in_callback"] = list(log)
        try:
            conn.write(b"after the failure")
        except OSError as exc:
            st["write_after"] = exc
        net.done(0.02)  # a window for a repeated 'close' or 'disconnect'

    conn.on("close", recorder(log, "close"))
    conn.on("disconnect", recorder(log, "disconnect"))
    in_a_data_handler(conn, peer, reset_then_write)
    net.run(timeout=2.0)
    assert net.errors == []
    assert st["rst_arrived"], "the peer's RST did not arrive"
    assert "raised" not in st, f"write() raised: {st.get('raised')!r}"
    assert st["queued"] == 600, "the first write was not deferred"
    assert st["log_in_pass"] == [], "the connection failed before the deferred send"
    if when == "flush from a write":
        assert isinstance(st["error_after_write"], OSError)
    assert st["log_in_callback"] == ["disconnect", "close"], st["log_in_callback"]
    assert log == ["disconnect", "close"], log
    assert isinstance(conn.error, OSError)
    assert conn.error.errno in (errno.ECONNRESET, errno.EPIPE), conn.error
    assert isinstance(st.get("write_after"), OSError)
    assert conn.write_buffer_size == 0


# -- flow control ----------------------------------------------------------------------------------


def test_flow_control_holds_with_deferral(net: Net) -> None:
    """A reader that does not read: writes (each inside a pass) go on until 'pause' (True); once
    the peer reads, 'pause' (False) follows, writing goes on, and everything arrives in order.
    The 'pause' events alternate, True above write_bufsize, False at half of it."""
    conn, peer = tcp_pair(net, peer_rcvbuf=32 * KIB)
    conn.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * KIB)
    conn.write_bufsize = 64 * KIB
    chunk_size, chunk_count = 16 * KIB, 96  # 1.5 MiB, far more than the socket buffers hold
    expected = b"".join(block(index, chunk_size) for index in range(chunk_count))
    events: list[tuple[bool, int]] = []
    reader = Peer(peer)
    st: dict[str, Any] = {"next": 0, "paused": False, "max_queued": 0, "reading": False}

    def pump() -> None:  # called inside passes only: a scheduled callback, a 'pause' listener
        while not st["paused"] and st["next"] < chunk_count:
            conn.write(block(st["next"], chunk_size))
            st["next"] += 1
            st["max_queued"] = max(st["max_queued"], conn.write_buffer_size)

    def on_pause(paused: bool) -> None:
        events.append((paused, conn.write_buffer_size))
        st["paused"] = paused
        if paused and not st["reading"]:
            st["reading"] = True
            st["written_at_first_pause"] = st["next"]
            st["got_at_first_pause"] = len(reader.got)
            net.when(
                lambda: bool(reader.drain() or len(reader.got) >= len(expected)),
                net.done,
                interval=0.001,
            )
        if not paused:
            pump()

    conn.on("pause", on_pause)
    net.loop.schedule(0, pump)
    net.run(timeout=5.0, what="the transfer did not complete")
    assert events, "'pause' was never emitted although the peer did not read"
    assert st["got_at_first_pause"] == 0
    assert st["written_at_first_pause"] < chunk_count
    assert_pause_events_alternate(events, conn.write_bufsize)
    assert st["max_queued"] <= conn.write_bufsize + chunk_size
    assert bytes(reader.got) == expected, "the peer did not get every byte in order"
    assert not reader.eof
