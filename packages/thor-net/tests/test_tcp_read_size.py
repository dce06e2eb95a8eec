"""TcpConnection's read size: ``read_bufsize`` ordinarily, growing (x4 per full read, up to
``max_read_bufsize``) while reads come back full, and back to ``read_bufsize`` after a read that
fits in it. Small sizes are set on the connection so that the kernel's default buffers hold
enough to fill every read; the reader starts once that much is waiting."""

from __future__ import annotations

import array
import fcntl
import termios
from collections.abc import Iterator

import pytest
import tcp_fixtures as tf
from tcp_fixtures import KIB, Net

from thor.tcp import TcpConnection


@pytest.fixture(params=tf.BACKENDS)
def net(request: pytest.FixtureRequest) -> Iterator[Net]:
    yield from tf.open_net(request.param)


def unread(conn: TcpConnection) -> int:
    """Bytes waiting in the connection's socket."""
    count = array.array("i", [0])
    fcntl.ioctl(conn.socket.fileno(), termios.FIONREAD, count)
    return count[0]


def read_bursts(net: Net, grow_to: int) -> list[list[int]]:
    """Two bursts of 48 KiB, each read once it is all waiting, with 100 bytes read alone in
    between; returns the sizes of the 'data' chunks of each burst and of the small message."""
    bursts: list[list[int]] = [[], [], []]
    phase = [0]

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        client_side.read_bufsize = 1 * KIB
        client_side.max_read_bufsize = grow_to
        received = [0]
        targets = [48 * KIB, 48 * KIB + 100, 96 * KIB + 100]

        def on_data(data: bytes) -> None:
            bursts[phase[0]].append(len(data))
            received[0] += len(data)
            if received[0] == targets[phase[0]]:
                client_side.pause(True)
                phase[0] += 1
                if phase[0] == 1:
                    server_side.write(b"x" * 100)
                    net.when(lambda: unread(client_side) == 100, client_side.pause, False)
                elif phase[0] == 2:
                    server_side.write(b"y" * 48 * KIB)
                    net.when(lambda: unread(client_side) == 48 * KIB, client_side.pause, False)
                else:
                    net.done()

        client_side.on("data", on_data)
        server_side.write(b"z" * 48 * KIB)
        net.when(lambda: unread(client_side) == 48 * KIB, client_side.pause, False)

    net.pair(ready)
    net.run(what="the bursts were not read")
    return bursts


def test_reads_grow_while_full_and_shrink_after_a_short_one(net: Net) -> None:
    first, small, second = read_bursts(net, grow_to=16 * KIB)
    # 1 KiB full -> 4 KiB full -> 16 KiB reads until the burst runs out
    assert first[:3] == [1 * KIB, 4 * KIB, 16 * KIB]
    assert max(first) == 16 * KIB and sum(first) == 48 * KIB
    assert small == [100]  # fits in read_bufsize: the next read is read_bufsize again
    assert second[:3] == [1 * KIB, 4 * KIB, 16 * KIB]


def test_max_read_bufsize_equal_to_read_bufsize_reads_a_fixed_size(net: Net) -> None:
    first, small, second = read_bursts(net, grow_to=1 * KIB)
    assert set(first) == {1 * KIB} and set(second) == {1 * KIB}
    assert small == [100]


def test_the_default_sizes() -> None:
    assert TcpConnection.read_bufsize == 64 * KIB
    assert TcpConnection.max_read_bufsize == 256 * KIB
