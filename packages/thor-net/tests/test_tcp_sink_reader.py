"""TcpConnection (and TlsConnection) with a sink: the sink's ``data`` handler is cached in
``_reader`` and called straight from the read while nobody listens to ``'data'``; a ``'data'``
listener added later (``_listener_added``) sends the data through ``emit`` again, where listeners
come first and the sink gets nothing.

Real loopback sockets, on every loop backend; the scenarios are driven from the loop (see
tcp_fixtures.py and tls_fixtures.py for the rules: no sleeps, a failing safety timer per run).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import tcp_fixtures as tf
from tcp_fixtures import KIB, Net, block
from tls_fixtures import Pki, run

import thor.loop
from thor.loop import LoopBase
from thor.tcp import TcpConnection
from thor.tls import TlsClient, TlsConnection, TlsServer


@pytest.fixture(params=tf.BACKENDS)
def net(request: pytest.FixtureRequest) -> Iterator[Net]:
    yield from tf.open_net(request.param)


class Recorder:
    """Records the chunks it gets, then calls ``then(self)``."""

    def __init__(self, then: Callable[[Any], object] | None = None) -> None:
        self.got: list[bytes] = []
        self.then = then

    @property
    def received(self) -> bytes:
        return b"".join(self.got)

    def record(self, data: bytes) -> None:
        self.got.append(data)
        if self.then is not None:
            self.then(self)


class DataSink(Recorder):
    """A sink with a ``data`` method."""

    def data(self, data: bytes) -> None:
        self.record(data)


class Collector(Recorder):
    """A 'data' listener."""

    def __call__(self, data: bytes) -> None:
        self.record(data)


def spy_emits(conn: TcpConnection) -> list[tuple[str, Any]]:
    """Record the events ``conn`` emits (with their first argument), then emit them as before."""
    emitted: list[tuple[str, Any]] = []
    emit = conn.emit

    def spy(event: str, *args: Any) -> bool:
        emitted.append((event, args[0] if args else None))
        return emit(event, *args)

    conn.emit = spy  # type: ignore[method-assign]
    return emitted


def data_emitted(emitted: list[tuple[str, Any]]) -> bytes:
    return b"".join(arg for event, arg in emitted if event == "data")


# -- the sink's data handler is called directly ---------------------------------------------------


def test_the_sink_data_handler_gets_the_bytes_without_emit(net: Net) -> None:
    message = b"".join(block(i, 16 * KIB) for i in range(16))  # 256 KiB: reads of many sizes
    st: dict[str, Any] = {}

    def enough(sink: DataSink) -> None:
        if len(sink.received) >= len(message):
            net.done()

    sink = DataSink(enough)

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        server_side.sink(sink)
        st["reader"] = server_side._reader
        st["emitted"] = spy_emits(server_side)
        server_side.pause(False)
        client_side.write(message)

    net.pair(ready)
    net.run()
    assert st["reader"] == sink.data
    assert sink.received == message
    assert data_emitted(st["emitted"]) == b"", "'data' went through emit with no listener"


def test_a_sink_without_a_data_method_caches_no_reader(net: Net) -> None:
    class CloseOnly:
        def __init__(self) -> None:
            self.closed = 0

        def close(self) -> None:
            self.closed += 1
            net.done()

    sink = CloseOnly()
    st: dict[str, Any] = {}

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        server_side.sink(sink)
        st["reader"] = server_side._reader
        server_side.pause(False)
        client_side.write(b"nobody reads this")
        client_side.close()

    net.pair(ready)
    net.run()
    assert st["reader"] is None
    assert sink.closed == 1


# -- a 'data' listener takes over from the sink ---------------------------------------------------


@pytest.mark.parametrize("method", ["on", "add_listener", "prepend_listener"])
def test_a_data_listener_added_after_the_sink_gets_the_following_data(
    net: Net, method: str
) -> None:
    st: dict[str, Any] = {}
    conns: dict[str, TcpConnection] = {}

    def listened(collector: Collector) -> None:
        if collector.received == b"two":
            net.done(0.05)  # (a window for anything that would still reach the sink)

    listener = Collector(listened)

    def switch() -> None:
        getattr(conns["server"], method)("data", listener)
        st["reader_after"] = conns["server"]._reader
        conns["client"].write(b"two")

    def first(sink: DataSink) -> None:
        if sink.received == b"one":
            net.later(0, switch)

    sink = DataSink(first)

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        conns.update(server=server_side, client=client_side)
        server_side.sink(sink)
        st["reader_before"] = server_side._reader
        st["emitted"] = spy_emits(server_side)
        server_side.pause(False)
        client_side.write(b"one")

    net.pair(ready)
    net.run()
    assert st["reader_before"] == sink.data
    assert st["reader_after"] is None
    assert sink.got == [b"one"], "the sink got data that a listener was there for"
    assert listener.got == [b"two"]
    assert data_emitted(st["emitted"]) == b"two"


def test_a_data_listener_added_from_the_sink_handler_gets_the_following_data(net: Net) -> None:
    """The listener is added while the sink's handler runs (inside the read): the next read
    goes to the listener."""
    conns: dict[str, TcpConnection] = {}

    def listened(collector: Collector) -> None:
        if collector.received == b"two":
            net.done(0.05)

    listener = Collector(listened)

    def first(sink: DataSink) -> None:
        if sink.received == b"one":
            conns["server"].on("data", listener)
            conns["client"].write(b"two")

    sink = DataSink(first)

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        conns.update(server=server_side, client=client_side)
        server_side.sink(sink)
        server_side.pause(False)
        client_side.write(b"one")

    net.pair(ready)
    net.run()
    assert sink.got == [b"one"]
    assert listener.got == [b"two"]


def test_the_sink_gets_data_again_after_a_once_listener_fired(net: Net) -> None:
    conns: dict[str, TcpConnection] = {}
    order: list[str] = []

    def on_sink(sink: DataSink) -> None:
        order.append("sink:" + sink.got[-1].decode())
        if sink.got == [b"one"]:
            net.later(0, switch)
        elif sink.got[-1] == b"three":
            net.done(0.05)

    def listened(collector: Collector) -> None:
        order.append("listener:" + collector.got[-1].decode())
        net.later(0, conns["client"].write, b"three")

    sink = DataSink(on_sink)
    listener = Collector(listened)

    def switch() -> None:
        conns["server"].once("data", listener)
        conns["client"].write(b"two")

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        conns.update(server=server_side, client=client_side)
        server_side.sink(sink)
        server_side.pause(False)
        client_side.write(b"one")

    net.pair(ready)
    net.run()
    assert order == ["sink:one", "listener:two", "sink:three"]


def test_the_sink_gets_data_again_after_the_listener_is_removed(net: Net) -> None:
    conns: dict[str, TcpConnection] = {}

    def listened(collector: Collector) -> None:
        if collector.received == b"two":
            net.later(0, unswitch)

    listener = Collector(listened)

    def on_sink(sink: DataSink) -> None:
        if sink.got == [b"one"]:
            net.later(0, switch)
        elif sink.received == b"onethree":
            net.done(0.05)

    sink = DataSink(on_sink)

    def switch() -> None:
        conns["server"].on("data", listener)
        conns["client"].write(b"two")

    def unswitch() -> None:
        conns["server"].remove_listener("data", listener)
        conns["client"].write(b"three")

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        conns.update(server=server_side, client=client_side)
        server_side.sink(sink)
        server_side.pause(False)
        client_side.write(b"one")

    net.pair(ready)
    net.run()
    assert sink.got == [b"one", b"three"]
    assert listener.got == [b"two"]


def test_a_listener_that_is_not_for_data_leaves_the_reader_alone(net: Net) -> None:
    st: dict[str, Any] = {}

    def enough(sink: DataSink) -> None:
        if sink.received == b"hello":
            net.done()

    sink = DataSink(enough)

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        server_side.sink(sink)
        server_side.on("close", lambda: None)
        server_side.on("pause", lambda paused: None)
        st["reader"] = server_side._reader
        st["emitted"] = spy_emits(server_side)
        server_side.pause(False)
        client_side.write(b"hello")

    net.pair(ready)
    net.run()
    assert st["reader"] == sink.data
    assert sink.received == b"hello"
    assert data_emitted(st["emitted"]) == b""


# -- setting the sink when a 'data' listener is there already -------------------------------------


def test_a_sink_set_while_a_data_listener_exists_gets_nothing(net: Net) -> None:
    st: dict[str, Any] = {}

    def listened(collector: Collector) -> None:
        if collector.received == b"hello":
            net.done(0.05)

    listener = Collector(listened)
    sink = DataSink()

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        server_side.on("data", listener)
        server_side.sink(sink)
        st["reader"] = server_side._reader
        server_side.pause(False)
        client_side.write(b"hello")

    net.pair(ready)
    net.run()
    assert st["reader"] is None
    assert listener.received == b"hello"
    assert sink.got == []


# -- replacing and removing the sink --------------------------------------------------------------


def test_sink_none_then_a_listener_gets_the_data(net: Net) -> None:
    st: dict[str, Any] = {}

    def listened(collector: Collector) -> None:
        if collector.received == b"hello":
            net.done(0.05)

    listener = Collector(listened)
    sink = DataSink()

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        server_side.sink(sink)
        server_side.sink(None)
        st["reader"] = server_side._reader
        server_side.on("data", listener)
        server_side.pause(False)
        client_side.write(b"hello")

    net.pair(ready)
    net.run()
    assert st["reader"] is None
    assert listener.received == b"hello"
    assert sink.got == []


def test_sink_none_after_data_went_to_the_sink_then_a_listener(net: Net) -> None:
    conns: dict[str, TcpConnection] = {}
    st: dict[str, Any] = {}

    def listened(collector: Collector) -> None:
        if collector.received == b"two":
            net.done(0.05)

    listener = Collector(listened)

    def switch() -> None:
        conns["server"].sink(None)
        st["reader"] = conns["server"]._reader
        conns["server"].on("data", listener)
        conns["client"].write(b"two")

    def first(sink: DataSink) -> None:
        if sink.received == b"one":
            net.later(0, switch)

    sink = DataSink(first)

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        conns.update(server=server_side, client=client_side)
        server_side.sink(sink)
        server_side.pause(False)
        client_side.write(b"one")

    net.pair(ready)
    net.run()
    assert st["reader"] is None
    assert sink.got == [b"one"]
    assert listener.got == [b"two"]


def test_a_replaced_sink_gets_nothing_more(net: Net) -> None:
    conns: dict[str, TcpConnection] = {}
    st: dict[str, Any] = {}

    def second_got(sink: DataSink) -> None:
        if sink.received == b"two":
            net.done(0.05)

    second = DataSink(second_got)

    def switch() -> None:
        conns["server"].sink(second)
        st["reader"] = conns["server"]._reader
        conns["client"].write(b"two")

    def first_got(sink: DataSink) -> None:
        if sink.received == b"one":
            net.later(0, switch)

    first = DataSink(first_got)

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        conns.update(server=server_side, client=client_side)
        server_side.sink(first)
        server_side.pause(False)
        client_side.write(b"one")

    net.pair(ready)
    net.run()
    assert st["reader"] == second.data
    assert first.got == [b"one"]
    assert second.got == [b"two"]


# -- a sink data handler that raises --------------------------------------------------------------


class BoomError(Exception):
    pass


def test_a_raising_sink_data_handler_aborts_the_connection_and_is_reported(
    net: Net, caplog: pytest.LogCaptureFixture
) -> None:
    """As an exception in a 'data' listener (test_tcp_connection's
    test_exception_in_a_data_listener_aborts_that_connection_only): the connection is aborted,
    the peer sees its close, the loop logs the exception once and goes on."""
    net.loop.set_exception_handler(None)  # the default: log to "thor.loop"
    caplog.set_level(logging.ERROR, logger="thor.loop")
    st: dict[str, Any] = {}
    logs: dict[str, list[str]] = {"server": [], "client": []}

    def explode(sink: DataSink) -> None:
        raise BoomError("sink bug")

    sink = DataSink(explode)

    def client_closed() -> None:
        logs["client"].append("close")
        net.done(0.05)

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        st["server"] = server_side
        server_side.sink(sink)
        server_side.on("disconnect", lambda: logs["server"].append("disconnect"))
        st["reader"] = server_side._reader
        server_side.pause(False)
        client_side.on("close", client_closed)
        client_side.pause(False)
        client_side.write(b"boom")

    net.pair(ready)
    net.run()
    assert st["reader"] == sink.data, "the reader was dropped by a listener of another event"
    assert sink.got == [b"boom"]
    assert logs["server"] == ["disconnect"], "the connection whose sink raised was not aborted"
    assert logs["client"] == ["close"]
    assert st["server"].socket.fileno() == -1
    errors = [r for r in caplog.records if r.name == "thor.loop" and r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], BoomError)


def test_a_raising_sink_data_handler_reaches_the_loop_exception_handler(net: Net) -> None:
    """Net's exception handler re-raises what reached the loop from ``run()``."""
    st: dict[str, Any] = {}

    def explode(sink: DataSink) -> None:
        raise BoomError("sink bug")

    sink = DataSink(explode)

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        st["server"] = server_side
        server_side.sink(sink)
        server_side.pause(False)
        client_side.write(b"boom")

    net.pair(ready)
    with pytest.raises(BoomError, match="sink bug"):
        net.run()
    assert st["server"].socket.fileno() == -1, "the connection whose sink raised is still open"


# -- the same over TLS ----------------------------------------------------------------------------


@pytest.fixture(params=thor.loop.available_backends())
def loop(request: pytest.FixtureRequest) -> Iterator[LoopBase]:
    new_loop = thor.loop.make(backend=request.param)
    yield new_loop
    new_loop.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def test_tls_sink_then_a_data_listener(loop: LoopBase, pki: Pki) -> None:
    conns: dict[str, TlsConnection] = {}
    st: dict[str, Any] = {}
    problems: list[str] = []

    def listened(collector: Collector) -> None:
        if collector.received == b"two":
            loop.schedule(0.05, loop.stop)

    listener = Collector(listened)

    def switch() -> None:
        conns["server"].on("data", listener)
        st["reader_after"] = conns["server"]._reader
        conns["client"].write(b"two")

    def first(sink: DataSink) -> None:
        if sink.received == b"one":
            loop.schedule(0, switch)

    sink = DataSink(first)

    def both_up() -> None:
        if len(conns) == 2:
            conns["client"].write(b"one")

    def on_server_connect(conn: TlsConnection) -> None:
        conns["server"] = conn
        conn.sink(sink)
        st["reader_before"] = conn._reader
        st["emitted"] = spy_emits(conn)
        conn.pause(False)
        both_up()

    def on_client_connect(conn: TlsConnection) -> None:
        conns["client"] = conn
        both_up()

    def stop_on(message: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            problems.append(f"{message} {args!r}")
            loop.stop()

        return record

    server = TlsServer(b"127.0.0.1", 0, loop=loop, certfile=pki.cert_file)
    server.on("tls_error", stop_on("tls_error"))
    server.on("connect", on_server_connect)
    client = TlsClient(loop, ca_file=pki.ca_file)
    client.on("connect_error", stop_on("connect_error"))
    client.on("connect", on_client_connect)
    try:
        client.connect_dns(
            b"localhost",
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", server.port)),
            5,
        )
        run(loop, 5.0, "the TLS exchange did not finish")
    finally:
        for conn in conns.values():
            conn.remove_listeners()
            conn.abort()
        server.shutdown()
    assert problems == []
    assert isinstance(conns["server"], TlsConnection)
    assert st["reader_before"] == sink.data
    assert st["reader_after"] is None
    assert sink.got == [b"one"], "the sink got data that a listener was there for"
    assert listener.got == [b"two"]
    assert data_emitted(st["emitted"]) == b"two", "b'one' went through emit, or b'two' did not"
