"""Handing work to the loop from another thread.

  thor      loop.run_in_loop(cb)        asyncio / uvloop   loop.call_soon_threadsafe(cb)

Once the loop runs, a worker thread does two phases:

  throughput   calls run_in_loop(cb) N times back to back; rate = N / (seconds from its first
               call to the end of the N-th callback on the loop's thread)
  latency      up to --probes sequential round trips thread -> loop -> thread: run_in_loop(ev.set),
               then ev.wait() on a threading.Event; 1 ms pause between probes so the loop is
               asleep in its poll each time (this measures waking a sleeping loop). Bounded by
               --probe-secs too: classic thor 0.17 never wakes its loop, so every probe waits for
               its next 0.1 s poll timeout (~50 ms on average).

The runner pins the process to one CPU, so both threads share it (and the GIL).
A phase that does not complete within --timeout seconds is reported as stalled.
"""

from __future__ import annotations

import statistics
import threading
import time

import _common as c


def main() -> None:
    ap = c.parser(__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--probe-secs", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=20.0)
    args = ap.parse_args()

    if args.impl == "thor":
        import thor.loop

        loop = thor.loop.make()
        call = loop.run_in_loop
        stop = loop.stop
        later = loop.schedule
        run = loop.run
        api = "loop.run_in_loop(cb)"
    else:
        loop = c.new_asyncio_loop(args.impl)
        call = loop.call_soon_threadsafe
        stop = loop.stop
        later = loop.call_later
        run = loop.run_forever
        api = "loop.call_soon_threadsafe(cb)"

    n = args.n
    count = [0]
    done = threading.Event()
    end = [0.0]
    result: dict = {}

    def cb() -> None:
        count[0] += 1
        if count[0] == n:
            end[0] = c.perf()
            done.set()

    def worker() -> None:
        try:
            # throughput
            cpu0 = c.cpu_now()
            t0 = c.perf()
            for _ in range(n):
                call(cb)
            t_sent = c.perf()
            ok = done.wait(args.timeout)
            cpu = c.cpu_now() - cpu0
            t_end = end[0] if ok else c.perf()
            result["throughput"] = c.case(
                count[0],
                t_end - t0,
                cpu,
                send_ms=round(1000 * (t_sent - t0), 2),
                stalled=not ok,
            )
            # latency
            ev = threading.Event()
            lat = []
            stalls = 0
            cpu0 = c.cpu_now()
            p0 = c.perf()
            limit = p0 + args.probe_secs
            for _ in range(args.probes):
                time.sleep(0.001)
                ev.clear()
                t = c.perf()
                call(ev.set)
                if not ev.wait(args.timeout):
                    stalls += 1
                    break
                lat.append(c.perf() - t)
                if c.perf() >= limit:
                    break
            cpu = c.cpu_now() - cpu0
            lat.sort()
            if lat:
                result["latency"] = c.case(
                    len(lat),
                    c.perf() - p0,
                    cpu,
                    rate=1e6 * statistics.median(lat),
                    lower_is_better=True,
                    unit="us",
                    p90_us=round(1e6 * lat[int(0.9 * (len(lat) - 1))], 1),
                    max_us=round(1e6 * lat[-1], 1),
                    min_us=round(1e6 * lat[0], 1),
                    stalled=bool(stalls),
                )
        finally:
            call(stop)

    def start() -> None:
        threading.Thread(target=worker, daemon=True).start()

    later(0, start)
    later(2 * args.timeout + args.probe_secs + 5, stop)  # safety net
    run()
    c.emit_result(args, "run_in_loop", api, result)


if __name__ == "__main__":
    main()
