"""Bulk throughput through one loopback TCP connection, writer and reader on the same loop.

The client writes --mib MiB in --chunk-kib KiB writes (one bytes object, reused), honouring flow
control; the server counts the bytes and stops when all have arrived. The first --warmup-mib MiB
of the stream are not timed: the clock (and the CPU count) starts when the server has received
them, and stops when it has received the rest. rate = MiB (2**20 bytes) per second over that
stretch (n: the MiB timed; also avg_read_kib, the mean size of one 'data' / data_received, and
pauses, how often the writer was told to stop).

  thor      thor.tcp TcpServer + TcpClient (ours, or 0.17's). The writer writes while not paused,
            stops on 'pause' (True) and resumes on 'pause' (False); the server's 'data' listener
            counts. Ours pauses above write_bufsize = 256 KiB queued and resumes at half of it,
            reads 64 KiB per recv; 0.17 pauses above 16 queued chunks (1 MiB here), and reads
            16 KiB per recv, one recv per loop turn.
  asyncio   asyncio.Protocol client writing while not paused (pause_writing / resume_writing,
            asyncio's default write buffer limits: high 64 KiB, low 16 KiB) and a server
            Protocol counting data_received (the selector loop reads up to 256 KiB per recv).
  uvloop    the same Protocols on uvloop.

Allocator warm-up: before anything else the script allocates and frees one 4 MiB bytes object
(all implementations; --no-malloc-warmup skips it). Without it the stdlib asyncio row is bimodal
on glibc: each sock.recv(256 KiB) allocates a 256 KiB bytes object, which glibc serves with
mmap (plus page faults) until some freed mmapped block raises its dynamic mmap threshold; in
some runs (apparently when the reads come back short, shrunk before being freed) that never
happens and every read pays mmap + munmap: about 1.1 GiB/s instead of 3.5 here, same code. A
long-running process is normally past that point; the warm-up puts every run there. Reads of
64 KiB (ours) and 16 KiB (0.17) are below glibc's initial threshold (128 KiB) and unaffected;
uvloop reads into its own buffer.
"""

from __future__ import annotations

import _common as c
from tcp_echo import thor_connect_and_run, thor_server

MIB = 1 << 20


class Counter:
    """The reader's side: counts bytes, starts the clock after the warm-up, stops at the end."""

    def __init__(self, total: int, warmup: int, stop) -> None:
        self.total = total
        self.warmup = warmup
        self.stop = stop
        self.got = 0
        self.t0 = self.t1 = 0.0
        self.cpu0 = self.cpu1 = 0.0
        self.reads = 0

    def data(self, chunk: bytes) -> None:
        self.got += len(chunk)
        self.reads += 1
        if not self.t0 and self.got >= self.warmup:
            self.t0 = c.perf()
            self.cpu0 = c.cpu_now()
            self.got0 = self.got
            self.reads0 = self.reads
        if self.got >= self.total:
            self.t1 = c.perf()
            self.cpu1 = c.cpu_now()
            self.stop()

    def case(self, pauses: int) -> dict:
        if not self.t1:
            raise SystemExit(f"incomplete: {self.got} of {self.total} bytes arrived")
        n = self.got - self.got0
        secs = self.t1 - self.t0
        # n in MiB, so that the runner's "per CPU-s" (n / cpu_s) reads MiB per CPU second
        return c.case(
            round(n / MIB, 3),
            secs,
            self.cpu1 - self.cpu0,
            unit="MiB/s",
            bytes=n,
            avg_read_kib=round(n / 1024 / max(1, self.reads - self.reads0), 1),
            pauses=pauses,
            complete=self.got == self.total,
        )


def thor_bulk(args, total: int, warmup: int, chunk: bytes) -> dict:
    import thor.loop

    loop = thor.loop.make()
    counter = Counter(total, warmup, loop.stop)
    conns: list = []
    pauses = [0]

    def accepted(conn) -> None:
        conns.append(conn)
        conn.on("data", counter.data)
        conn.pause(False)

    server, port = thor_server(loop, accepted)

    def connected(conn) -> None:
        conns.append(conn)
        write = conn.write
        size = len(chunk)
        state = {"left": total, "paused": False}

        def pump() -> None:
            left = state["left"]
            while left > 0 and not state["paused"]:
                if left >= size:
                    write(chunk)
                    left -= size
                else:
                    write(chunk[:left])
                    left = 0
                state["left"] = left

        def pause(paused: bool) -> None:
            state["paused"] = paused
            if paused:
                pauses[0] += 1
            else:
                pump()

        conn.on("pause", pause)
        pump()

    thor_connect_and_run(loop, port, connected, args.timeout)
    for conn in conns:
        conn.abort()
    server.shutdown()
    return counter.case(pauses[0])


def asyncio_bulk(args, total: int, warmup: int, chunk: bytes) -> dict:
    import asyncio

    loop = c.new_asyncio_loop(args.impl)
    asyncio.set_event_loop(loop)
    counter = Counter(total, warmup, loop.stop)
    pauses = [0]

    class Sink(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            counter.data(data)

    class Writer(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            self.write = transport.write
            self.left = total
            self.paused = False

        def pump(self) -> None:
            size = len(chunk)
            write = self.write
            left = self.left
            while left > 0 and not self.paused:
                if left >= size:
                    write(chunk)
                    left -= size
                else:
                    write(chunk[:left])
                    left = 0
                self.left = left

        def pause_writing(self) -> None:
            self.paused = True
            pauses[0] += 1

        def resume_writing(self) -> None:
            self.paused = False
            self.pump()

    async def setup():
        server = await loop.create_server(Sink, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, protocol = await loop.create_connection(Writer, "127.0.0.1", port)
        return server, transport, protocol

    server, transport, protocol = loop.run_until_complete(setup())
    loop.call_soon(protocol.pump)
    loop.call_later(args.timeout, loop.stop)  # safety net
    loop.run_forever()
    transport.abort()
    server.close()
    return counter.case(pauses[0])


def main() -> None:
    ap = c.parser(__doc__)
    ap.add_argument("--mib", type=int, default=256, help="MiB written in all (incl. warm-up)")
    ap.add_argument("--warmup-mib", type=int, default=32, help="MiB not timed, at the start")
    ap.add_argument("--chunk-kib", type=int, default=64, help="KiB per write")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument(
        "--no-malloc-warmup",
        action="store_true",
        help="skip freeing a 4 MiB block first (see the module docstring)",
    )
    args = ap.parse_args()
    if not args.no_malloc_warmup:
        # Raise glibc's dynamic mmap threshold above the largest read buffer (asyncio's 256 KiB)
        # before measuring; see the module docstring.
        block = bytes(4 << 20)
        del block
    total, warmup = args.mib * MIB, args.warmup_mib * MIB
    if not 0 <= warmup < total:
        ap.error("--warmup-mib must be below --mib")
    chunk = b"x" * (args.chunk_kib * 1024)
    if args.impl == "thor":
        result = thor_bulk(args, total, warmup, chunk)
        api = "thor.tcp TcpClient writes while not paused ('pause' event); TcpServer counts"
    elif args.impl in ("asyncio", "uvloop"):
        result = asyncio_bulk(args, total, warmup, chunk)
        api = "asyncio.Protocol writer (pause_writing/resume_writing); Protocol sink"
    else:
        ap.error("tcp_bulk runs on thor, asyncio or uvloop")
    c.emit_result(args, "tcp_bulk", api, {"throughput": result})


if __name__ == "__main__":
    main()
