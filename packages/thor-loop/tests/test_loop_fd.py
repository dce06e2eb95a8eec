"""File descriptor dispatch: EventSource (the classic face) and the loop-level primitives,
on real socket pairs and pipes."""

from __future__ import annotations

import errno
import os
import signal
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from thor.loop import EventSource, LoopBase, SelectLoop

if TYPE_CHECKING:
    from conftest import Watchdog

SocketPairFactory = Callable[[], "tuple[socket.socket, socket.socket]"]
FD_EVENTS = ("fd_readable", "fd_writable", "fd_error", "fd_close")


def recording_source(loop: LoopBase, log: list[str], name: str = "") -> EventSource:
    """An EventSource whose four fd events append ``<name><event>`` to ``log``."""
    source = EventSource(loop)
    for event in FD_EVENTS:
        source.on(event, lambda event=event: log.append(name + event))
    return source


class Target:
    """A classic loop-level fd target: the loop calls its handle_fd_* methods."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def handle_fd_readable(self) -> None:
        self.log.append("readable")

    def handle_fd_writable(self) -> None:
        self.log.append("writable")

    def handle_fd_error(self) -> None:
        self.log.append("error")

    def handle_fd_close(self) -> None:
        self.log.append("close")


# -- EventSource ----------------------------------------------------------------------------------


def test_fd_readable_fires_when_data_arrives(
    loop: LoopBase, socketpair: SocketPairFactory, watchdog: Callable[..., Watchdog]
) -> None:
    inside, outside = socketpair()
    received: list[bytes] = []
    source = EventSource(loop)

    def on_readable() -> None:
        received.append(inside.recv(100))
        loop.stop()

    source.on("fd_readable", on_readable)
    source.register_fd(inside.fileno(), "fd_readable")
    assert source.interesting_events() == {"fd_readable"}
    loop.schedule(0.01, outside.send, b"hello")
    dog = watchdog()
    loop.run()
    dog.check()
    assert received == [b"hello"]


def test_fd_readable_on_a_pipe(loop: LoopBase, watchdog: Callable[..., Watchdog]) -> None:
    read_fd, write_fd = os.pipe()
    try:
        received: list[bytes] = []
        source = EventSource(loop)

        def on_readable() -> None:
            received.append(os.read(read_fd, 100))
            loop.stop()

        source.on("fd_readable", on_readable)
        source.register_fd(read_fd, "fd_readable")
        loop.schedule(0.01, os.write, write_fd, b"piped")
        dog = watchdog()
        loop.run()
        dog.check()
        assert received == [b"piped"]
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_event_add_and_event_del_toggle_writable_events(
    loop: LoopBase, socketpair: SocketPairFactory, watchdog: Callable[..., Watchdog]
) -> None:
    inside, _ = socketpair()
    log: list[str] = []
    interests: list[set[str]] = []
    source = EventSource(loop)
    source.register_fd(inside.fileno(), "fd_readable")  # nothing to read: no events

    def on_writable() -> None:
        # level-triggered: without event_del this would fire on every pass
        log.append("fd_writable")
        source.event_del("fd_writable")
        interests.append(source.interesting_events())
        if len(log) == 1:
            loop.schedule(0.02, rearm)
        else:
            loop.schedule(0.02, loop.stop)

    def rearm() -> None:
        log.append("rearm")
        source.event_add("fd_writable")
        interests.append(source.interesting_events())

    source.on("fd_writable", on_writable)
    source.event_add("fd_writable")
    dog = watchdog()
    loop.run()
    dog.check()
    assert log == ["fd_writable", "rearm", "fd_writable"]
    assert interests == [{"fd_readable"}, {"fd_readable", "fd_writable"}, {"fd_readable"}]


def test_interest_set_while_detached_applies_on_register(
    loop: LoopBase, socketpair: SocketPairFactory, watchdog: Callable[..., Watchdog]
) -> None:
    inside, outside = socketpair()
    outside.send(b"x")
    log: list[str] = []
    source = recording_source(loop, log)
    source.event_add("fd_readable")
    source.event_add("fd_writable")
    source.event_del("fd_writable")
    assert source.interesting_events() == {"fd_readable"}
    copy = source.interesting_events()
    copy.add("fd_close")
    assert source.interesting_events() == {"fd_readable"}  # a copy was returned
    source.register_fd(inside.fileno())
    loop.schedule(0.02, loop.stop)
    dog = watchdog()
    loop.run()
    dog.check()
    assert log
    assert set(log) == {"fd_readable"}


def test_unregister_fd_stops_events_and_is_idempotent(
    loop: LoopBase, socketpair: SocketPairFactory, watchdog: Callable[..., Watchdog]
) -> None:
    inside, outside = socketpair()
    outside.send(b"never read")  # stays readable: level-triggered events would repeat
    log: list[str] = []
    source = EventSource(loop)

    def on_readable() -> None:
        log.append("fd_readable")
        source.unregister_fd()
        source.unregister_fd()
        loop.schedule(0.02, loop.stop)

    source.on("fd_readable", on_readable)
    source.register_fd(inside.fileno(), "fd_readable")
    assert loop.fd_count() == 1
    dog = watchdog()
    loop.run()
    dog.check()
    assert log == ["fd_readable"]
    source.unregister_fd()
    assert loop.fd_count() == 0


def test_register_fd_on_a_new_fd_replaces_the_old_one(
    loop: LoopBase, socketpair: SocketPairFactory, watchdog: Callable[..., Watchdog]
) -> None:
    old_inside, old_outside = socketpair()
    new_inside, new_outside = socketpair()
    received: list[bytes] = []
    source = EventSource(loop)

    def on_readable() -> None:
        received.append(new_inside.recv(100))
        loop.stop()

    source.on("fd_readable", on_readable)
    source.register_fd(old_inside.fileno(), "fd_readable")
    source.register_fd(new_inside.fileno())  # the interest carries over
    assert loop.fd_count() == 1
    assert loop.registered_fd_handlers() == [source]
    assert source.interesting_events() == {"fd_readable"}
    old_outside.send(b"old")  # the old fd is not watched any more

    def then_new() -> None:
        assert received == []
        new_outside.send(b"new")

    loop.schedule(0.02, then_new)
    dog = watchdog()
    loop.run()
    dog.check()
    assert received == [b"new"]


def test_register_fd_again_on_the_same_fd_adds_the_event(
    loop: LoopBase, socketpair: SocketPairFactory, watchdog: Callable[..., Watchdog]
) -> None:
    inside, outside = socketpair()
    outside.send(b"x")
    log: list[str] = []
    source = recording_source(loop, log)
    source.register_fd(inside.fileno(), "fd_writable")
    source.register_fd(inside.fileno(), "fd_readable")
    assert loop.fd_count() == 1
    assert source.interesting_events() == {"fd_readable", "fd_writable"}
    loop.schedule(0, lambda: loop.schedule(0, loop.stop))
    dog = watchdog()
    loop.run()
    dog.check()
    assert {"fd_readable", "fd_writable"} <= set(log)


def test_fd_close_or_eof_when_the_peer_closes(
    loop: LoopBase, socketpair: SocketPairFactory, watchdog: Callable[..., Watchdog]
) -> None:
    inside, outside = socketpair()
    log: list[str] = []
    reads: list[bytes] = []
    source = EventSource(loop)

    def on_readable() -> None:
        log.append("fd_readable")
        reads.append(inside.recv(100))
        loop.schedule(0, loop.stop)  # after the rest of this batch

    def on_close() -> None:
        log.append("fd_close")
        loop.schedule(0, loop.stop)

    source.on("fd_readable", on_readable)
    source.on("fd_close", on_close)
    source.register_fd(inside.fileno(), "fd_readable")
    source.event_add("fd_close")
    loop.schedule(0.01, outside.close)
    dog = watchdog()
    loop.run()
    dog.check()
    assert set(reads) <= {b""}
    if isinstance(loop, SelectLoop):
        # select(2) has no hang-up condition: the peer's close shows as readable, at EOF
        assert set(log) == {"fd_readable"}
        assert reads
    else:
        assert "fd_close" in log


def test_fd_close_alone_when_the_peer_closes(
    loop: LoopBase, socketpair: SocketPairFactory, watchdog: Callable[..., Watchdog]
) -> None:
    inside, outside = socketpair()
    log: list[str] = []
    source = recording_source(loop, log)
    source.on("fd_close", loop.stop)
    source.register_fd(inside.fileno(), "fd_close")
    loop.schedule(0.01, outside.close)
    dog = watchdog()
    loop.run()
    dog.check()
    assert log == ["fd_close"]


def test_a_paused_fd_whose_peer_hung_up_gets_no_events(
    loop: LoopBase, socketpair: SocketPairFactory, watchdog: Callable[..., Watchdog]
) -> None:
    # A connection that stopped reading (no interest left) must not be reported, and the loop
    # must not spin on it, until it asks for events again.
    inside, outside = socketpair()
    log: list[str] = []
    source = recording_source(loop, log)
    source.register_fd(inside.fileno(), "fd_readable")
    source.event_del("fd_readable")
    assert source.interesting_events() == set()
    outside.close()
    loop.schedule(0.05, loop.stop)
    dog = watchdog()
    loop.run()
    dog.check()
    assert not log, f"{len(log)} events ({sorted(set(log))}) for an fd with no interest"


def test_unknown_event_names_raise_value_error(
    loop: LoopBase, socketpair: SocketPairFactory
) -> None:
    inside, _ = socketpair()
    source = EventSource(loop)
    with pytest.raises(ValueError):
        source.register_fd(inside.fileno(), "fd_readble")
    assert loop.fd_count() == 0
    with pytest.raises(ValueError):
        source.event_add("readable")
    assert source.interesting_events() == set()
    target = Target([])
    with pytest.raises(ValueError):
        loop.register_fd(inside.fileno(), ["fd_readable", "fd_nope"], target)
    assert loop.fd_count() == 0
    loop.register_fd(inside.fileno(), "fd_readable", target)
    try:
        with pytest.raises(ValueError):
            loop.event_add(inside.fileno(), "fd_nope")
        with pytest.raises(ValueError):
            loop.event_del(inside.fileno(), "fd_nope")
    finally:
        loop.unregister_fd(inside.fileno())


def test_event_source_event_del_rejects_unknown_names_too(loop: LoopBase) -> None:
    # a typo in event_del must not silently leave the interest on
    source = EventSource(loop)
    source.event_add("fd_writable")
    with pytest.raises(ValueError):
        source.event_del("fd_writeable")
    assert source.interesting_events() == {"fd_writable"}


def test_registered_fd_handlers_and_fd_count(loop: LoopBase, socketpair: SocketPairFactory) -> None:
    # the loop's own wake-up fd is not counted
    assert loop.fd_count() == 0
    assert loop.registered_fd_handlers() == []
    sources = []
    for _ in range(3):
        inside, _outside = socketpair()
        source = EventSource(loop)
        source.register_fd(inside.fileno(), "fd_readable")
        sources.append(source)
    assert loop.fd_count() == 3
    handlers = loop.registered_fd_handlers()
    assert len(handlers) == 3
    assert all(any(handler is source for handler in handlers) for source in sources)
    sources[1].unregister_fd()
    assert loop.fd_count() == 2
    assert not any(handler is sources[1] for handler in loop.registered_fd_handlers())
    for source in sources:
        source.unregister_fd()
    assert loop.fd_count() == 0


@pytest.mark.usefixtures("sigusr1")
def test_fd_count_follows_registrations_but_not_the_loops_own_fds(
    loop: LoopBase, socketpair: SocketPairFactory
) -> None:
    """fd_count() is a running count: checked against the registrations it stands for after
    every kind of change, the loop's own fds (wake-up, signal pipe) coming and going too."""

    def count() -> int:
        assert loop.fd_count() == len(loop.registered_fd_handlers())
        return loop.fd_count()

    log: list[str] = []
    (a, _), (b, _), (c, _) = socketpair(), socketpair(), socketpair()
    assert count() == 0  # the wake-up fd is registered, and not counted
    loop.register_fd(a.fileno(), "fd_readable", Target(log))
    loop.register_fd(b.fileno(), ["fd_readable", "fd_writable"], Target(log))
    assert count() == 2
    loop.register_fd(a.fileno(), "fd_writable", Target(log))  # replaces: no new fd
    loop.event_add(b.fileno(), "fd_close")
    loop.event_del(b.fileno(), "fd_readable")
    assert count() == 2
    source = EventSource(loop)
    source.register_fd(c.fileno(), "fd_readable")  # through an EventSource
    assert count() == 3
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)  # the loop's signal pipe: not counted
    assert count() == 3
    loop.unregister_fd(b.fileno())
    loop.unregister_fd(b.fileno())  # idempotent: counted down once
    assert count() == 2
    assert loop.remove_signal_handler(signal.SIGUSR1)
    assert count() == 2
    loop.stop()  # forgets every fd of the application, keeps the wake-up fd
    assert count() == 0
    source.event_add("fd_writable")  # registers again after stop()
    assert count() == 1
    source.unregister_fd()
    loop.unregister_fd(a.fileno())  # forgotten by stop() already
    assert count() == 0
    assert log == []


def test_event_source_binds_to_the_given_loop(loop: LoopBase) -> None:
    assert EventSource(loop).loop is loop


# -- the loop-level primitives --------------------------------------------------------------------


def test_loop_level_register_event_add_event_del_unregister(
    loop: LoopBase, socketpair: SocketPairFactory, watchdog: Callable[..., Watchdog]
) -> None:
    inside, outside = socketpair()
    fd = inside.fileno()
    outside.send(b"x")  # stays readable
    log: list[str] = []
    target = Target(log)
    loop.register_fd(fd, ["fd_readable"], target)
    assert loop.fd_count() == 1
    assert loop.registered_fd_handlers() == [target]

    def add_writable() -> None:
        loop.event_add(fd, "fd_writable")

    def del_readable() -> None:
        loop.event_del(fd, "fd_readable")

    def unregister() -> None:
        loop.unregister_fd(fd)
        loop.unregister_fd(fd)  # idempotent
        loop.event_add(fd, "fd_readable")  # silent for an fd that is not registered
        loop.event_del(fd, "fd_readable")

    changes = [add_writable, del_readable, unregister, loop.stop]
    seen: list[list[str]] = []

    def step() -> None:
        # each step is scheduled by the previous one, so at least one IO poll lies between
        seen.append(sorted(set(log)))
        log.clear()
        changes.pop(0)()
        if changes:
            loop.schedule(0.01, step)

    loop.schedule(0.01, step)
    dog = watchdog()
    loop.run()
    dog.check()
    assert seen == [["readable"], ["readable", "writable"], ["writable"], []]
    assert loop.fd_count() == 0


def test_loop_level_register_fd_accepts_one_event_name_and_replaces(
    loop: LoopBase, socketpair: SocketPairFactory, watchdog: Callable[..., Watchdog]
) -> None:
    inside, outside = socketpair()
    outside.send(b"x")
    first_log: list[str] = []
    second_log: list[str] = []
    loop.register_fd(inside.fileno(), "fd_readable", Target(first_log))
    second = Target(second_log)
    loop.register_fd(inside.fileno(), "fd_readable", second)  # replaces the registration
    assert loop.fd_count() == 1
    assert loop.registered_fd_handlers() == [second]
    loop.schedule(0.02, loop.stop)
    dog = watchdog()
    loop.run()
    dog.check()
    assert first_log == []
    assert second_log
    assert set(second_log) == {"readable"}


# -- dispatch within a batch ----------------------------------------------------------------------


def test_readable_is_dispatched_before_writable(
    loop: LoopBase, socketpair: SocketPairFactory, watchdog: Callable[..., Watchdog]
) -> None:
    inside, outside = socketpair()
    outside.send(b"x")
    log: list[str] = []
    source = recording_source(loop, log)
    source.register_fd(inside.fileno(), "fd_readable")
    source.event_add("fd_writable")
    source.on("fd_writable", loop.stop)
    dog = watchdog()
    loop.run()
    dog.check()
    assert log == ["fd_readable", "fd_writable"]


def test_a_handler_unregistering_its_fd_stops_the_rest_of_its_events(
    loop: LoopBase, socketpair: SocketPairFactory, watchdog: Callable[..., Watchdog]
) -> None:
    inside, outside = socketpair()
    outside.send(b"x")  # readable and writable in the same batch
    log: list[str] = []
    source = recording_source(loop, log)
    source.on("fd_readable", source.unregister_fd)
    source.register_fd(inside.fileno(), "fd_readable")
    source.event_add("fd_writable")
    loop.schedule(0.02, loop.stop)
    dog = watchdog()
    loop.run()
    dog.check()
    assert log == ["fd_readable"]


def test_a_handler_unregistering_another_fd_drops_its_pending_event(
    loop: LoopBase, socketpair: SocketPairFactory, watchdog: Callable[..., Watchdog]
) -> None:
    # Both fds are readable before the loop polls, so both are in the first batch; whichever
    # handler runs first unregisters the other, which must then not be called.
    called: list[str] = []
    sources: dict[str, EventSource] = {}
    for name in ("one", "two"):
        inside, outside = socketpair()
        outside.send(b"x")
        sources[name] = EventSource(loop)
        sources[name].register_fd(inside.fileno(), "fd_readable")

    def handler(name: str) -> None:
        called.append(name)
        other = "two" if name == "one" else "one"
        sources[other].unregister_fd()
        sources[name].unregister_fd()
        loop.schedule(0.02, loop.stop)

    for name, source in sources.items():
        source.on("fd_readable", lambda name=name: handler(name))
    dog = watchdog()
    loop.run()
    dog.check()
    assert len(called) == 1, called


def test_events_polled_for_a_reused_fd_number_are_dropped(
    loop: LoopBase, socketpair: SocketPairFactory, watchdog: Callable[..., Watchdog]
) -> None:
    # Both fds are readable in the first batch. The first handler closes the other socket and
    # makes a new one, which gets the same fd number (POSIX hands out the lowest free number);
    # the event polled for the closed socket must not reach the new owner, which has no data.
    new_log: list[str] = []
    reused: list[bool] = []
    fresh: list[socket.socket] = []
    pairs: dict[str, tuple[socket.socket, socket.socket]] = {}
    sources: dict[str, EventSource] = {}
    for name in ("one", "two"):
        pairs[name] = socketpair()
        pairs[name][1].send(b"x")
        sources[name] = EventSource(loop)
        sources[name].register_fd(pairs[name][0].fileno(), "fd_readable")

    def handler(name: str) -> None:
        if reused:
            return
        other = "two" if name == "one" else "one"
        old_fd = pairs[other][0].fileno()
        sources[other].unregister_fd()
        pairs[other][0].close()
        fresh.extend(socket.socketpair())
        same_number = [sock for sock in fresh if sock.fileno() == old_fd]
        reused.append(bool(same_number))
        if same_number:
            reuser = recording_source(loop, new_log, "new ")
            reuser.register_fd(old_fd, "fd_readable")
        sources[name].unregister_fd()
        loop.schedule(0.02, loop.stop)

    for name, source in sources.items():
        source.on("fd_readable", lambda name=name: handler(name))
    dog = watchdog()
    try:
        loop.run()
    finally:
        for sock in fresh:
            sock.close()
    dog.check()
    assert reused == [True], "the fd number was not reused: the test proves nothing"
    assert new_log == []


def test_registering_a_closed_fd_raises_or_reports_fd_error(
    loop: LoopBase, watchdog: Callable[..., Watchdog]
) -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    os.close(write_fd)
    log: list[str] = []
    source = recording_source(loop, log)
    source.on("fd_error", source.unregister_fd)
    source.on("fd_error", loop.stop)
    refused = False
    try:
        source.register_fd(read_fd, "fd_readable")
    except (OSError, ValueError):
        refused = True
    if refused:
        # refused at once (epoll, kqueue): then nothing may stay registered
        phantoms = loop.fd_count()
        loop.unregister_fd(read_fd)  # so the fixture does not report it a second time
        assert phantoms == 0, "a failed register_fd left a phantom registration"
        return
    # accepted (poll, select): the next poll reports it as an error
    loop.schedule(1, loop.stop)
    dog = watchdog()
    loop.run()
    dog.check()
    assert "fd_error" in log


def test_event_add_after_stop_watches_the_fd_again(
    loop: LoopBase, socketpair: SocketPairFactory, watchdog: Callable[..., Watchdog]
) -> None:
    """stop() forgets every fd; a source that adds interest afterwards is registered anew."""
    inside, outside = socketpair()
    log: list[str] = []
    source = recording_source(loop, log)
    source.register_fd(inside.fileno())
    loop.schedule(0, loop.stop)
    loop.run()
    assert loop.fd_count() == 0
    source.event_add("fd_readable")
    assert loop.fd_count() == 1
    source.on("fd_readable", loop.stop)
    outside.send(b"x")
    dog = watchdog()
    loop.run()
    dog.check()
    assert "fd_readable" in log
    source.event_del("fd_readable")
    source.unregister_fd()


def test_interest_in_fd_error_alone_reports_errors(
    loop: LoopBase, watchdog: Callable[..., Watchdog]
) -> None:
    """An fd watched only for errors is still polled: a pending socket error is reported."""
    if isinstance(loop, SelectLoop):
        pytest.skip("select(2) has no error condition for a failed datagram")
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        udp.setblocking(False)
        udp.connect(("127.0.0.1", port))
        log: list[str] = []
        source = recording_source(loop, log)
        source.on("fd_error", loop.stop)
        source.register_fd(udp.fileno(), "fd_error")
        udp.send(b"nobody listens")  # the ICMP port-unreachable sets SO_ERROR on the socket
        dog = watchdog()
        loop.run()
        dog.check()
        assert "fd_error" in log
        assert udp.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
        source.unregister_fd()
    finally:
        udp.close()
