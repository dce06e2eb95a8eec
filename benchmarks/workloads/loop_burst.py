"""Burst of zero-delay callbacks: schedule N of them up front, then run the loop until all ran.

  thor      loop = thor.loop.make(); loop.schedule(0, cb) N times; loop.run()
  asyncio   --api call_soon: loop.call_soon(cb); --api call_later0: loop.call_later(0, cb)
  uvloop    the same two on uvloop

rate = N / (seconds from the first schedule call to the end of the last callback); the time spent
scheduling alone is reported too (schedule_ms). A safety timer stops the loop after --timeout s.
"""

from __future__ import annotations

import _common as c


def main() -> None:
    ap = c.parser(__doc__)
    ap.add_argument("--api", choices=("schedule", "call_soon", "call_later0"), default="schedule")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    n = args.n
    left = [n]
    end = [0.0]

    if args.impl == "thor":
        import thor.loop

        loop = thor.loop.make()
        stop = loop.stop

        def cb() -> None:
            left[0] -= 1
            if not left[0]:
                end[0] = c.perf()
                stop()

        schedule = loop.schedule
        cpu0 = c.cpu_now()
        t0 = c.perf()
        for _ in range(n):
            schedule(0, cb)
        t_sched = c.perf()
        loop.schedule(args.timeout, stop)
        loop.run()
        api = "loop.schedule(0, cb)"
    else:
        loop = c.new_asyncio_loop(args.impl)
        stop = loop.stop

        def cb() -> None:
            left[0] -= 1
            if not left[0]:
                end[0] = c.perf()
                stop()

        cpu0 = c.cpu_now()
        t0 = c.perf()
        if args.api == "call_later0":
            call_later = loop.call_later
            for _ in range(n):
                call_later(0, cb)
            api = "loop.call_later(0, cb)"
        else:
            call_soon = loop.call_soon
            for _ in range(n):
                call_soon(cb)
            api = "loop.call_soon(cb)"
        t_sched = c.perf()
        loop.call_later(args.timeout, stop)
        loop.run_forever()
        loop.close()
    cpu = c.cpu_now() - cpu0
    done = n - left[0]
    t_end = end[0] or c.perf()
    cases = {
        "burst": c.case(
            done,
            t_end - t0,
            cpu,
            schedule_ms=round(1000 * (t_sched - t0), 2),
            run_ms=round(1000 * (t_end - t_sched), 2),
            complete=done == n,
        )
    }
    c.emit_result(args, "loop_burst", api, cases)


if __name__ == "__main__":
    main()
