"""Chain of zero-delay callbacks: each one schedules the next; stops after N callbacks or --secs
seconds, whichever comes first.

  thor      loop.schedule(0, cb) from inside cb
  asyncio   --api call_soon: loop.call_soon(cb); --api call_later0: loop.call_later(0, cb)
  uvloop    the same two on uvloop

rate = callbacks run / seconds from the first schedule to the last callback. Classic thor 0.17
runs scheduled events only every `precision` (0.1 s), so it manages about 10 a second: the time
bound keeps it to --secs.
"""

from __future__ import annotations

import _common as c


def main() -> None:
    ap = c.parser(__doc__)
    ap.add_argument("--api", choices=("schedule", "call_soon", "call_later0"), default="schedule")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--secs", type=float, default=2.0)
    args = ap.parse_args()
    n = args.n
    count = [0]
    end = [0.0]

    perf = c.perf
    if args.impl == "thor":
        import thor.loop

        loop = thor.loop.make()
        stop = loop.stop
        schedule = loop.schedule
        api = "loop.schedule(0, cb)"

        def cb() -> None:
            count[0] += 1
            if count[0] >= n or perf() >= deadline:
                end[0] = perf()
                stop()
            else:
                schedule(0, cb)

        first = lambda: schedule(0, cb)  # noqa: E731
        safety = loop.schedule
        run = loop.run
    else:
        loop = c.new_asyncio_loop(args.impl)
        stop = loop.stop
        if args.api == "call_later0":
            call_later = loop.call_later
            api = "loop.call_later(0, cb)"

            def cb() -> None:
                count[0] += 1
                if count[0] >= n or perf() >= deadline:
                    end[0] = perf()
                    stop()
                else:
                    call_later(0, cb)

            first = lambda: call_later(0, cb)  # noqa: E731
        else:
            call_soon = loop.call_soon
            api = "loop.call_soon(cb)"

            def cb() -> None:
                count[0] += 1
                if count[0] >= n or perf() >= deadline:
                    end[0] = perf()
                    stop()
                else:
                    call_soon(cb)

            first = lambda: call_soon(cb)  # noqa: E731
        safety = loop.call_later
        run = loop.run_forever

    cpu0 = c.cpu_now()
    t0 = perf()
    deadline = t0 + args.secs
    first()
    safety(args.secs + 10, stop)
    run()
    cpu = c.cpu_now() - cpu0
    t_end = end[0] or perf()
    cases = {"chain": c.case(count[0], t_end - t0, cpu, reached_n=count[0] >= n)}
    c.emit_result(args, "loop_chain", api, cases)


if __name__ == "__main__":
    main()
