"""Tunnel: splice two TcpConnections together, with flow control both ways.

Used after a ``101 Switching Protocols`` (WebSocket and other Upgrades) and after a ``CONNECT``:
what one side sends is written to the other. Each side gets a sink object (``_End``, no
closures): ``data`` is written to the other side; when a side's write buffer passes its
high-water mark (its ``'pause'`` (True)), the *other* side stops being read until it drains, so
a slow reader slows the fast writer down through TCP and memory stays bounded by the two write
buffers. When either side closes or fails, both are closed (what was queued is still sent):
thor's TcpConnection drops what a peer sends after our ``close()``, so half-closed tunnels are
not kept open.

Idle tunnels: with an ``idle_timeout``, one timer per tunnel fires every ``idle_timeout``
seconds and closes the tunnel when nothing was relayed since the last time (each relayed chunk
only sets a flag), so a tunnel is closed between one and two periods after it went quiet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from thor.events import EventEmitter

if TYPE_CHECKING:
    from thor.loop import LoopBase, ScheduledEvent
    from thor.tcp import TcpConnection

__all__ = ["Tunnel"]


class _End:
    """The sink of one side of a tunnel."""

    __slots__ = ("other", "own", "tunnel")

    def __init__(self, tunnel: Tunnel, own: TcpConnection, other: TcpConnection) -> None:
        self.tunnel = tunnel
        self.own = own
        self.other = other

    def data(self, chunk: bytes) -> None:
        tunnel = self.tunnel
        if tunnel.closed:
            return
        tunnel._fresh = True
        try:
            self.other.write(chunk)
        except (OSError, BufferError):
            tunnel.close()
            return
        if self.own is tunnel.downstream:
            tunnel.bytes_up += len(chunk)
        else:
            tunnel.bytes_down += len(chunk)

    def pause(self, paused: bool) -> None:
        # our write buffer is full: stop reading what the other side sends us
        if not self.tunnel.closed:
            self.other.pause(paused)

    def close(self) -> None:
        self.tunnel.close()

    def disconnect(self) -> None:
        self.tunnel.close()


class Tunnel(EventEmitter):
    """Two connections spliced together; made by the proxies after an Upgrade or CONNECT.

    Args:
        downstream: the client's connection (paused, without listeners).
        upstream: the connection to the next hop (paused, without listeners).
        down_rest: bytes the client sent after the request head (written upstream first).
        up_rest: bytes the next hop sent after its response head (written downstream first).

    Attributes:
        bytes_up: bytes relayed from the client to the next hop.
        bytes_down: bytes relayed from the next hop to the client.
        closed: True once either side closed.

    Events:
        close (): the tunnel is over (both sides are closing); once.
    """

    def __init__(
        self,
        downstream: TcpConnection,
        upstream: TcpConnection,
        down_rest: bytes = b"",
        up_rest: bytes = b"",
        *,
        idle_timeout: float | None = None,
        loop: LoopBase | None = None,
    ) -> None:
        EventEmitter.__init__(self)
        self.downstream = downstream
        self.upstream = upstream
        self.bytes_up = 0
        self.bytes_down = 0
        self.closed = False
        self.idle_timeout = idle_timeout
        self._fresh = False
        self._loop: LoopBase = loop if loop is not None else downstream.loop
        self._timer: ScheduledEvent | None = None
        if idle_timeout:
            self._timer = self._loop.schedule(idle_timeout, self._check_idle)
        downstream.sink(_End(self, downstream, upstream))
        upstream.sink(_End(self, upstream, downstream))
        try:
            if down_rest:
                upstream.write(down_rest)
                self.bytes_up += len(down_rest)
            if up_rest:
                downstream.write(up_rest)
                self.bytes_down += len(up_rest)
        except (OSError, BufferError):
            self.close()
            return
        if not self.closed:
            downstream.pause(False)
            upstream.pause(False)

    def _check_idle(self) -> None:
        self._timer = None
        if self.closed:
            return
        if not self._fresh:
            self.close()
            return
        self._fresh = False
        assert self.idle_timeout is not None
        self._timer = self._loop.schedule(self.idle_timeout, self._check_idle)

    def close(self) -> None:
        """Close both sides (each sends what it has queued first). Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        for conn in (self.downstream, self.upstream):
            conn.close()
        # the sinks hold the tunnel: let them go once the sockets are gone
        self.downstream.sink(None)
        self.upstream.sink(None)
        self.emit("close")
