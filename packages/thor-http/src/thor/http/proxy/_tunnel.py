"""Tunnel: splice two TcpConnections together, with flow control both ways.

Used after a ``101 Switching Protocols`` (WebSocket and other Upgrades) and after a ``CONNECT``:
what one side sends is written to the other. Each side gets a sink object (``_End``, no
closures): ``data`` is written to the other side; when a side's write buffer passes its
high-water mark (its ``'pause'`` (True)), the *other* side stops being read until it drains, so
a slow reader slows the fast writer down through TCP and memory stays bounded by the two write
buffers.

Half-close: when one side's peer sends its FIN (that TcpConnection's ``'close'`` with no
``error``), the other side gets ``shutdown_write()``: it sends what it has queued, then its own
FIN, and goes on reading, so bytes keep flowing the other way (flow control unchanged) until
that peer closes too. A TcpConnection closes its socket once both directions are over (the
second FIN: the side whose peer closed first flushes and closes when told to shut its output);
its ``'disconnect'`` ends the tunnel. A TlsConnection cannot half-close (its
``shutdown_write()`` is ``close()``): when it is the side told to shut its output, what its peer
sends afterwards is dropped, and the tunnel ends when that side disconnects.

The tunnel is over (``closed``, ``'close'`` emitted, both sides closed, each still sending what
it has queued) when a side disconnects (both its directions done, or it failed), when a side
fails, on the idle timeout, or on ``close()``.

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

    __slots__ = ("ended", "other", "own", "tunnel")

    def __init__(self, tunnel: Tunnel, own: TcpConnection, other: TcpConnection) -> None:
        self.tunnel = tunnel
        self.own = own
        self.other = other
        self.ended = False  # own's peer sent its FIN: nothing more comes from this side

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
        # own's peer sent its FIN (or own failed): pass the FIN on, once the other side has
        # sent what it has queued; the other direction goes on
        tunnel = self.tunnel
        if tunnel.closed or self.ended:
            return
        if self.own.error is not None:
            tunnel.close()
            return
        self.ended = True
        self.other.shutdown_write()

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
        closed: True once the tunnel is over (see the module docstring).

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
        ends = (_End(self, downstream, upstream), _End(self, upstream, downstream))
        downstream.sink(ends[0])
        upstream.sink(ends[1])
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
        # a peer's FIN that came before the tunnel (told to whoever listened then)
        for end in [end for end in ends if not end.own.tcp_connected]:
            end.close()

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
        """End the tunnel: close both sides (each sends what it has queued first; what their
        peers send afterwards is dropped). Idempotent."""
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
