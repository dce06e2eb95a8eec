"""TcpConnection's direct sink reader and write limits, the edges: ``write()`` with
``max_write_buffer_chunks = 0`` on an empty queue is refused without a 'pause'; the sink's
``data`` handler is looked up by ``sink()`` (``emit`` looks handlers up on every event), so a
sink that replaces its handler sets itself again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import tcp_fixtures as tf
from tcp_fixtures import Net

from thor.tcp import TcpConnection


@pytest.fixture(params=tf.BACKENDS)
def net(request: pytest.FixtureRequest) -> Iterator[Net]:
    yield from tf.open_net(request.param)


def test_zero_max_write_buffer_chunks_refuses_a_write_on_an_empty_queue(net: Net) -> None:
    st: dict[str, Any] = {"refused": None, "pauses": []}

    def ready(writer: TcpConnection, reader: TcpConnection) -> None:
        writer.max_write_buffer_chunks = 0
        writer.on("pause", st["pauses"].append)
        try:
            writer.write(b"x")
        except BufferError as exc:
            st["refused"] = (str(exc), writer.write_buffer_size)
        net.done()

    net.pair(ready)
    net.run()
    assert st["refused"] is not None, "max_write_buffer_chunks = 0 accepted a write"
    message, queued = st["refused"]
    assert message == (
        "write of 1 bytes refused: 0 bytes in 0 chunks already queued "
        "(limits: 16777216 bytes, 0 chunks)"
    )
    assert queued == 0
    assert st["pauses"] == []


class SwitchingSink:
    """A sink that changes its ``data`` handler as it goes (a small state machine)."""

    def __init__(self) -> None:
        self.first: list[bytes] = []
        self.second: list[bytes] = []
        self.data = self._first

    def _first(self, data: bytes) -> None:
        self.first.append(data)
        self.data = self._second  # from now on, through the other handler

    def _second(self, data: bytes) -> None:
        self.second.append(data)


def test_a_sink_that_replaces_its_data_handler_sets_itself_again(net: Net) -> None:
    """The sink's 'data' handler is looked up by ``sink()`` (documented): after replacing it,
    the sink is set again, and the new handler gets what follows."""
    sink = SwitchingSink()
    sides: dict[str, TcpConnection] = {}

    def ready(server_side: TcpConnection, client_side: TcpConnection) -> None:
        sides["server"] = server_side
        server_side.sink(sink)
        server_side.pause(False)
        client_side.write(b"one")
        net.when(lambda: bool(sink.first), lambda: second(client_side))

    def second(client_side: TcpConnection) -> None:
        sides["server"].sink(sink)  # (sink.data is _second now)
        client_side.write(b"two")
        net.when(lambda: len(sink.first) + len(sink.second) >= 2, net.done)

    net.pair(ready)
    net.run()
    assert sink.first == [b"one"]
    assert sink.second == [b"two"]
