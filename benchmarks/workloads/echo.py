"""TCP echo ping-pong over one loopback connection, server and client on the same loop.

The client sends a 64-byte message, the server echoes it, the client sends the next one when the
whole echo is back: one round trip at a time. --warmup seconds are not counted, then round trips
are counted for --secs seconds; rate = round trips / measured seconds, and cpu_s the process CPU
over that window.

  thor      "raw EventSource" echo: both ends are non-blocking sockets (TCP_NODELAY) watched by
            thor.loop.EventSource(loop).register_fd(sock.fileno(), 'fd_readable') with an
            on('fd_readable', handler) listener that does recv/send. The connection itself is
            made before the loop starts (blocking connect + accept on 127.0.0.1, port 0).
  asyncio   asyncio.Protocol server (loop.create_server) and client (loop.create_connection);
  uvloop    the same Protocols on uvloop. Both set TCP_NODELAY on their TCP transports.
  bare      reference: the thor handlers on a ten-line select.epoll loop, no library at all;
            the most a raw-socket Python loop can do here (syscalls and the TCP stack dominate).
"""

from __future__ import annotations

import socket

import _common as c

MSG = b"x" * 64
SIZE = len(MSG)


class Meter:
    """Counts round trips; knows when the warm-up ends and when to stop."""

    def __init__(self, warmup: float, secs: float) -> None:
        self.warmup = warmup
        self.secs = secs
        self.count = 0
        self.m0 = self.m1 = 0.0
        self.cpu0 = self.cpu1 = 0.0
        self.start = c.perf()
        self.measure_from = self.start + warmup
        self.measure_to = float("inf")

    def round_trip(self) -> bool:
        """One round trip completed; False when it is time to stop."""
        now = c.perf()
        if self.m0:
            self.count += 1
            if now >= self.measure_to:
                self.m1 = now
                self.cpu1 = c.cpu_now()
                return False
        elif now >= self.measure_from:
            self.m0 = now
            self.cpu0 = c.cpu_now()
            self.measure_to = now + self.secs
        return True

    def case(self) -> dict:
        if not self.m1:  # did not finish (safety net fired)
            return c.case(self.count, 0.0, 0.0, complete=False)
        return c.case(self.count, self.m1 - self.m0, self.cpu1 - self.cpu0, complete=True)


def connected_pair() -> tuple[socket.socket, socket.socket]:
    """A connected loopback TCP pair (client, server side), non-blocking, TCP_NODELAY."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    csock = socket.create_connection(lsock.getsockname())
    ssock, _ = lsock.accept()
    lsock.close()
    for s in (csock, ssock):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
    return csock, ssock


def thor_echo(args) -> dict:
    import thor.loop

    loop = thor.loop.make()
    csock, ssock = connected_pair()

    server = thor.loop.EventSource(loop)
    client = thor.loop.EventSource(loop)
    s_recv, s_send = ssock.recv, ssock.send
    c_recv, c_send = csock.recv, csock.send
    got = [0]
    meter: list[Meter] = []

    def server_readable() -> None:
        try:
            data = s_recv(65536)
        except BlockingIOError:
            return
        if data:
            s_send(data)  # 64 bytes into an empty socket buffer: always sent whole
        else:
            server.unregister_fd()

    def client_readable() -> None:
        try:
            data = c_recv(65536)
        except BlockingIOError:
            return
        if not data:
            loop.stop()
            return
        got[0] += len(data)
        if got[0] < SIZE:
            return
        got[0] -= SIZE
        if meter[0].round_trip():
            c_send(MSG)
        else:
            loop.stop()

    server.register_fd(ssock.fileno(), "fd_readable")
    server.on("fd_readable", server_readable)
    client.register_fd(csock.fileno(), "fd_readable")
    client.on("fd_readable", client_readable)

    def kick() -> None:
        meter.append(Meter(args.warmup, args.secs))
        c_send(MSG)

    loop.schedule(0, kick)
    loop.schedule(args.warmup + args.secs + 10, loop.stop)  # safety net
    loop.run()
    csock.close()
    ssock.close()
    return meter[0].case()


def bare_echo(args) -> dict:
    """The floor for the raw-socket style: the same sockets and handlers on a minimal epoll loop
    (no timers, no events, no context: poll, look up the handler, call it)."""
    import select

    csock, ssock = connected_pair()
    ep = select.epoll()
    s_recv, s_send = ssock.recv, ssock.send
    c_recv, c_send = csock.recv, csock.send
    got = [0]
    running = [True]
    meter = Meter(args.warmup, args.secs)

    def server_readable() -> None:
        data = s_recv(65536)
        if data:
            s_send(data)

    def client_readable() -> None:
        data = c_recv(65536)
        got[0] += len(data)
        if got[0] < SIZE:
            return
        got[0] -= SIZE
        if meter.round_trip():
            c_send(MSG)
        else:
            running[0] = False

    handlers = {ssock.fileno(): server_readable, csock.fileno(): client_readable}
    for fd in handlers:
        ep.register(fd, select.EPOLLIN)
    poll = ep.poll
    deadline = c.perf() + args.warmup + args.secs + 10
    c_send(MSG)
    while running[0] and c.perf() < deadline:
        for fd, _ in poll(1.0):
            handlers[fd]()
    ep.close()
    csock.close()
    ssock.close()
    return meter.case()


def asyncio_echo(args) -> dict:
    import asyncio

    loop = c.new_asyncio_loop(args.impl)
    asyncio.set_event_loop(loop)
    meter: list[Meter] = []

    class EchoServer(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            self.write = transport.write

        def data_received(self, data: bytes) -> None:
            self.write(data)

    class PingClient(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            self.transport = transport
            self.write = transport.write
            self.got = 0

        def data_received(self, data: bytes) -> None:
            self.got += len(data)
            if self.got < SIZE:
                return
            self.got -= SIZE
            if meter[0].round_trip():
                self.write(MSG)
            else:
                loop.stop()

        def connection_lost(self, exc) -> None:
            loop.stop()

    async def setup():
        server = await loop.create_server(EchoServer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, protocol = await loop.create_connection(PingClient, "127.0.0.1", port)
        return server, transport, protocol

    server, transport, protocol = loop.run_until_complete(setup())

    def kick() -> None:
        meter.append(Meter(args.warmup, args.secs))
        protocol.write(MSG)

    loop.call_soon(kick)
    loop.call_later(args.warmup + args.secs + 10, loop.stop)  # safety net
    loop.run_forever()
    transport.close()
    server.close()
    return meter[0].case()


def main() -> None:
    ap = c.parser(__doc__)
    ap.add_argument("--warmup", type=float, default=0.3)
    ap.add_argument("--secs", type=float, default=2.0)
    args = ap.parse_args()
    if args.impl == "thor":
        result = thor_echo(args)
        api = "raw EventSource (register_fd + on('fd_readable'))"
    elif args.impl == "bare":
        result = bare_echo(args)
        api = "select.epoll + dict of handlers (reference floor)"
    else:
        result = asyncio_echo(args)
        api = "asyncio.Protocol (create_server + create_connection)"
    c.emit_result(args, "echo", api, {"round trips": result})


if __name__ == "__main__":
    main()
