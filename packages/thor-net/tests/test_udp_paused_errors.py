"""thor.udp.UdpEndpoint: no 'socket_error' after shutdown(); a paused endpoint with a datagram
waiting does not spin the loop (select(2) cannot tell it from the error queue's reports), and
ICMP errors are still reported while paused; on every polling backend of this machine."""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import thor.loop
from thor.loop import LoopBase
from thor.udp import UdpEndpoint

needs_linux = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="ICMP errors reach unconnected sockets on Linux"
)

Errors = list[tuple[str, int, str]]


class CountingEndpoint(UdpEndpoint):
    """A UdpEndpoint that counts how often the loop woke it (any of its fd handlers)."""

    wakes = 0

    def handle_fd_readable(self) -> None:
        self.wakes += 1
        super().handle_fd_readable()

    def handle_fd_error(self) -> None:
        self.wakes += 1
        super().handle_fd_error()

    def handle_fd_close(self) -> None:
        self.wakes += 1
        super().handle_fd_close()


@pytest.fixture(params=thor.loop.available_backends())
def loop(request: pytest.FixtureRequest) -> Iterator[LoopBase]:
    new_loop = thor.loop.make(backend=request.param)
    yield new_loop
    new_loop.close()


@pytest.fixture
def endpoint(loop: LoopBase) -> Iterator[Callable[[], CountingEndpoint]]:
    """A factory of endpoints bound to 127.0.0.1 (paused, as endpoints start), all shut down
    after the test."""
    made: list[CountingEndpoint] = []

    def make() -> CountingEndpoint:
        new = CountingEndpoint(loop)
        made.append(new)
        new.bind(b"127.0.0.1", 0)
        return new

    yield make
    for each in made:
        each.shutdown()


def record_and_stop(loop: LoopBase, into: list[Any]) -> Callable[..., None]:
    """A listener (or callback) that records its arguments into ``into`` and stops ``loop``."""

    def listener(*args: Any) -> None:
        into.append(args)
        loop.stop()

    return listener


def run(loop: LoopBase, what: str, limit: float = 5.0) -> None:
    """Run ``loop`` until the scenario stops it; fail the test if ``limit`` seconds pass."""
    expired: list[object] = []
    safety = loop.schedule(limit, record_and_stop(loop, expired))
    loop.run()
    safety.delete()
    if expired:
        pytest.fail(f"safety timer fired after {limit} s on {type(loop).__name__}: {what}")


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_no_socket_error_after_shutdown(
    loop: LoopBase, endpoint: Callable[[], CountingEndpoint]
) -> None:
    """A send failure is reported on the next loop pass; shutdown() right after the send
    means no more events, so it is not reported. (An endpoint left open, failing the same
    way just after, does report it: the run stops on that, after the other's turn.)"""
    closing, control = endpoint(), endpoint()
    late: Errors = []
    reported: Errors = []
    closing.on("socket_error", lambda *error: late.append(error))
    control.on("socket_error", record_and_stop(loop, reported))
    closing.send(b"x", b"::1", 9)  # the endpoint is IPv4: EAFNOSUPPORT, on the next pass
    closing.shutdown()
    control.send(b"x", b"::1", 9)
    run(loop, "the open endpoint's error was not reported")
    assert [error[:2] for error in reported] == [("socket", errno.EAFNOSUPPORT)]
    assert late == []


def test_a_paused_endpoint_with_a_datagram_waiting_does_not_spin(
    loop: LoopBase, endpoint: Callable[[], CountingEndpoint]
) -> None:
    """A datagram arrives while the endpoint is paused: the loop does not wake the endpoint
    on every pass meanwhile (select showed the waiting datagram as readable on every pass,
    some 100,000 in 0.3 s); after pause(False) the datagram is delivered."""
    receiver = endpoint()
    got: list[tuple[bytes, str, int]] = []
    receiver.on("datagram", record_and_stop(loop, got))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(b"hello", ("127.0.0.1", receiver.port))
    wakes_while_paused: list[int] = []

    def resume() -> None:
        wakes_while_paused.append(receiver.wakes)
        receiver.pause(False)

    loop.schedule(0.3, resume)
    run(loop, "the datagram was not delivered after pause(False)")
    assert wakes_while_paused[0] < 1000, f"woken {wakes_while_paused[0]} times while paused"
    assert [data for data, _, _ in got] == [b"hello"]


@needs_linux
def test_icmp_errors_are_reported_while_paused(
    loop: LoopBase, endpoint: Callable[[], CountingEndpoint]
) -> None:
    """The ICMP port unreachable for a datagram sent by a paused endpoint is reported as
    'socket_error' while it stays paused (on select too, where it was not: the loop spun)."""
    sender = endpoint()
    errors: Errors = []
    sender.on("socket_error", record_and_stop(loop, errors))
    sender.send(b"ping", b"127.0.0.1", closed_port())
    run(loop, "no 'socket_error' while paused")
    assert [error[:2] for error in errors] == [("socket", errno.ECONNREFUSED)]
    assert sender.wakes < 1000, f"woken {sender.wakes} times"


@needs_linux
def test_errors_are_watched_again_after_a_resume(
    loop: LoopBase, endpoint: Callable[[], CountingEndpoint]
) -> None:
    """A datagram waiting while paused (select: the error watch is dropped so the loop does not
    spin), then pause(False), the datagram read, pause(True): ICMP errors are reported while
    paused again (the watch came back with the resume)."""
    peer = endpoint()
    got: list[tuple[bytes, str, int]] = []
    errors: Errors = []
    peer.on("socket_error", record_and_stop(loop, errors))

    def delivered(*datagram: Any) -> None:
        got.append(datagram)
        peer.pause(True)
        peer.send(b"ping", b"127.0.0.1", closed_port())

    peer.on("datagram", delivered)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(b"hello", ("127.0.0.1", peer.port))
    loop.schedule(0.1, peer.pause, False)
    run(loop, "no 'socket_error' while paused after the resume")
    assert [data for data, _, _ in got] == [b"hello"]
    assert [error[:2] for error in errors] == [("socket", errno.ECONNREFUSED)]
