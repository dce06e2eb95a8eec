"""A fast writer and a deliberately slow reader on one loopback TCP connection (same loop): does
flow control keep the writer's memory bounded, and does every byte arrive, in order?

The writer (TcpClient side) writes --mib MiB in --chunk-kib KiB writes while not paused: it stops
on 'pause' (True) and resumes on 'pause' (False). Every write is a fresh bytes object cut from a
1 MiB random pattern at a shifting offset, so each chunk differs and a lost, repeated or reordered
chunk changes the checksum. The reader (TcpServer side) keeps its connection paused and, every
--interval-ms ms (a loop timer), resumes it until it has taken --read-kib KiB, then pauses again:
about read-kib / interval (1 MiB per 10 ms = 100 MiB/s by default), far below what the writer can
produce, so the writer spends most of the run paused with the socket buffers full.

Reported (headline: the writer's peak queued bytes, KiB, lower is better):
  peak queued    the largest write-queue size seen right after any write: ours
                 conn.write_buffer_size; 0.17: conn._write_buffer.size (its WriteBuffer)
  RSS growth     the process's peak RSS during the transfer minus its RSS before connecting, MiB:
                 the peak (VmHWM) is reset to the current RSS just before connecting (writing "5"
                 to /proc/self/clear_refs; where that is refused, the growth of ru_maxrss is
                 given instead, which hides a peak lower than the one before the transfer); also
                 the largest VmRSS sampled at each reader tick minus VmRSS before connecting
  intact         1 when the reader's byte count and SHA-256 equal the writer's, else 0 (and the
                 process exits non-zero, so the runner reports the run as failed)
  pauses         'pause' (True) events the writer got; MiB/s the transfer rate (paced by the
                 reader)

  thor      ours: thor.tcp with write_bufsize 256 KiB (bytes); 0.17: thor/tcp.py, whose 'pause'
            counts chunks (16 queued chunks = 1 MiB here) and whose loop runs timers only every
            `precision` seconds (0.1 by default): its loop is made with precision = the reader's
            interval, so the reader keeps roughly the same pace.
"""

from __future__ import annotations

import hashlib
import random
import resource

import _common as c
from tcp_echo import thor_connect_and_run, thor_server

MIB = 1 << 20
PATTERN_SIZE = MIB
STRIDE = 65_537  # odd: the chunk offsets modulo 1 MiB do not repeat within 16 Ki chunks


def vm_rss_kib(field: str = "VmRSS") -> int:
    """Current resident set size (or VmHWM: its peak), KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak_rss() -> bool:
    """Reset VmHWM (and so ru_maxrss) to the current RSS; False where Linux refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def chunks(pattern: bytes, total: int, size: int):
    """The stream, as the writer writes it: fresh bytes objects, each cut from the pattern."""
    offset = 0
    left = total
    while left > 0:
        n = min(size, left)
        yield pattern[offset : offset + n]
        left -= n
        offset = (offset + STRIDE) % PATTERN_SIZE


def main() -> None:
    ap = c.parser(__doc__)
    ap.add_argument("--mib", type=int, default=32, help="MiB to transfer")
    ap.add_argument("--chunk-kib", type=int, default=64, help="KiB per write")
    ap.add_argument("--read-kib", type=int, default=1024, help="KiB the reader takes per tick")
    ap.add_argument("--interval-ms", type=float, default=10.0, help="the reader's tick")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    if args.impl != "thor":
        ap.error("tcp_slow_reader runs on thor (ours or 0.17)")

    import thor.loop

    total = args.mib * MIB
    size = args.chunk_kib * 1024
    budget_per_tick = args.read_kib * 1024
    interval = args.interval_ms / 1000
    pattern = random.Random(4).randbytes(PATTERN_SIZE + size)
    expected = hashlib.sha256()
    for piece in chunks(pattern, total, size):
        expected.update(piece)

    classic = thor.loop.__file__.endswith("loop.py")
    loop = thor.loop.make(precision=interval) if classic else thor.loop.make()
    conns: list = []
    st = {
        "got": 0,
        "budget": 0,
        "peak_queued": 0,
        "rss_peak": 0,
        "pauses": 0,
        "resumes": 0,
        "ticks": 0,
        "t0": 0.0,
        "t1": 0.0,
    }
    received = hashlib.sha256()

    # -- the slow reader ------------------------------------------------------------------------

    def accepted(conn) -> None:
        conns.append(conn)

        def data(chunk: bytes) -> None:
            received.update(chunk)
            st["got"] += len(chunk)
            st["budget"] -= len(chunk)
            if st["got"] >= total:
                st["t1"] = c.perf()
                loop.stop()
            elif st["budget"] <= 0:
                conn.pause(True)

        def tick() -> None:
            st["ticks"] += 1
            rss = vm_rss_kib()
            st["rss_peak"] = max(st["rss_peak"], rss)
            st["budget"] = budget_per_tick
            conn.pause(False)
            loop.schedule(interval, tick)

        conn.on("data", data)
        loop.schedule(interval, tick)  # starts paused; the first tick resumes it

    server, port = thor_server(loop, accepted)

    # -- the writer -----------------------------------------------------------------------------

    def connected(conn) -> None:
        conns.append(conn)
        write = conn.write
        if classic:
            wbuf = conn._write_buffer
            queued = lambda: wbuf.size  # noqa: E731
        else:
            queued = lambda: conn.write_buffer_size  # noqa: E731
        stream = chunks(pattern, total, size)
        state = {"paused": False, "done": False}

        def pump() -> None:
            peak = st["peak_queued"]
            while not state["paused"] and not state["done"]:
                piece = next(stream, None)
                if piece is None:
                    state["done"] = True
                    break
                write(piece)
                q = queued()
                peak = max(peak, q)
            st["peak_queued"] = peak

        def pause(paused: bool) -> None:
            state["paused"] = paused
            if paused:
                st["pauses"] += 1
            else:
                st["resumes"] += 1
                pump()

        conn.on("pause", pause)
        st["t0"] = c.perf()
        pump()

    peak_reset = reset_peak_rss()
    rss0 = vm_rss_kib()
    hwm0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    st["rss_peak"] = rss0
    cpu0 = c.cpu_now()
    thor_connect_and_run(loop, port, connected, args.timeout)
    cpu = c.cpu_now() - cpu0
    hwm1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    growth_kib = vm_rss_kib("VmHWM") - rss0 if peak_reset else hwm1 - hwm0
    st["rss_peak"] = max(st["rss_peak"], vm_rss_kib())
    for conn in conns:
        conn.abort()
    server.shutdown()

    intact = st["got"] == total and received.digest() == expected.digest()
    secs = (st["t1"] or c.perf()) - st["t0"]
    result = c.case(
        st["got"],
        secs,
        cpu,
        rate=st["peak_queued"] / 1024,
        lower_is_better=True,
        unit="KiB",
        peak_queued_kib=round(st["peak_queued"] / 1024, 1),
        rss_growth_mib=round(growth_kib / 1024, 2),
        peak_reset=peak_reset,
        ru_maxrss_growth_mib=round((hwm1 - hwm0) / 1024, 2),
        rss_sampled_growth_mib=round((st["rss_peak"] - rss0) / 1024, 2),
        rss_before_mib=round(rss0 / 1024, 1),
        mib_s=round(st["got"] / MIB / secs, 1) if secs > 0 else 0.0,
        intact=int(intact),
        received_mib=round(st["got"] / MIB, 3),
        pauses=st["pauses"],
        resumes=st["resumes"],
        ticks=st["ticks"],
        loop_precision=getattr(loop, "precision", None),
    )
    api = "thor.tcp: writer honours 'pause'; reader pause(True)/pause(False) on a loop timer"
    c.emit_result(args, "tcp_slow_reader", api, {"peak queued": result})
    if not intact:
        raise SystemExit(
            f"data lost or reordered: {st['got']} of {total} bytes arrived, "
            f"sha256 {'matches' if received.digest() == expected.digest() else 'differs'}"
        )


if __name__ == "__main__":
    main()
