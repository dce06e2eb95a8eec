"""TCP echo ping-pong through the TCP API, over one loopback connection, server and client on the
same loop.

The client sends a 64-byte message, the server echoes it, the client sends the next one when the
whole echo is back: one round trip at a time. --warmup seconds are not counted, then round trips
are counted for --secs seconds; rate = round trips / measured seconds, and cpu_s the process CPU
over that window. Unlike the `echo` workload (raw sockets behind EventSource), this goes through
the library's connection objects: buffered writes, flow control, 'data' events.

  thor      from thor.tcp import TcpServer, TcpClient (ours: thor-net; classic: 0.17's
            thor/tcp.py). TcpServer(b"127.0.0.1", 0, loop=loop): on 'connect',
            conn.on('data', conn.write) and conn.pause(False); TcpClient(loop).connect(b"127.0.0.1",
            port): on 'connect', a 'data' listener counts the echo and writes the next message.
            Ours sets TCP_NODELAY on its connections and sends from write() at once when nothing
            is queued; 0.17 neither sets TCP_NODELAY nor sends before the next loop turn (its
            write() always queues and waits for 'fd_writable').
  asyncio   the `echo` workload's Protocols (loop.create_server + loop.create_connection)
  uvloop    the same on uvloop
"""

from __future__ import annotations

import _common as c
from echo import MSG, SIZE, Meter, asyncio_echo


def thor_server(loop, accepted):
    """A thor.tcp TcpServer on 127.0.0.1 (any port) calling ``accepted`` on 'connect'; returns it
    and its port (ours reports the bound port; 0.17 keeps the port it was given, 0: ask the
    socket). Shared with tcp_bulk and tcp_slow_reader."""
    from thor.tcp import TcpServer

    server = TcpServer(b"127.0.0.1", 0, loop=loop)
    server.on("connect", accepted)
    return server, server.sock.getsockname()[1]


def thor_connect_and_run(loop, port: int, connected, timeout: float) -> None:
    """Connect a thor.tcp TcpClient to ``port`` (``connected`` on 'connect') and run ``loop``
    until something stops it, or ``timeout`` seconds (a safety net); SystemExit on
    'connect_error'. Shared with tcp_bulk and tcp_slow_reader."""
    from thor.tcp import TcpClient

    failed: list = []

    def connect_error(*err) -> None:
        failed.append(err)
        loop.stop()

    client = TcpClient(loop)
    client.on("connect", connected)
    client.on("connect_error", connect_error)
    client.connect(b"127.0.0.1", port)
    loop.schedule(timeout, loop.stop)  # safety net
    loop.run()
    if failed:
        raise SystemExit(f"connect_error {failed[0]}")


def thor_tcp_echo(args) -> dict:
    import thor.loop

    loop = thor.loop.make()
    meter: list[Meter] = []
    conns: list = []

    def accepted(conn) -> None:
        conns.append(conn)
        conn.on("data", conn.write)
        conn.pause(False)

    server, port = thor_server(loop, accepted)

    def connected(conn) -> None:
        conns.append(conn)
        write = conn.write
        got = [0]

        def data(chunk: bytes) -> None:
            got[0] += len(chunk)
            if got[0] < SIZE:
                return
            got[0] -= SIZE
            if meter[0].round_trip():
                write(MSG)
            else:
                loop.stop()

        conn.on("data", data)
        conn.on("close", loop.stop)
        conn.pause(False)
        meter.append(Meter(args.warmup, args.secs))
        write(MSG)

    thor_connect_and_run(loop, port, connected, args.warmup + args.secs + 10)
    for conn in conns:
        conn.abort()
    server.shutdown()
    if not meter:
        raise SystemExit("never connected")
    return meter[0].case()


def main() -> None:
    ap = c.parser(__doc__)
    ap.add_argument("--warmup", type=float, default=0.3)
    ap.add_argument("--secs", type=float, default=2.0)
    args = ap.parse_args()
    if args.impl == "thor":
        result = thor_tcp_echo(args)
        api = "thor.tcp TcpServer + TcpClient, 'data' listeners + conn.write"
    elif args.impl in ("asyncio", "uvloop"):
        result = asyncio_echo(args)
        api = "asyncio.Protocol (create_server + create_connection)"
    else:
        ap.error("tcp_echo runs on thor, asyncio or uvloop")
    c.emit_result(args, "tcp_echo", api, {"round trips": result})


if __name__ == "__main__":
    main()
