"""Timers created and cancelled: the pattern of a timeout armed and disarmed per request.

  thor      ev = loop.schedule(10.0, cb); ev.delete()        N times
  asyncio   h = loop.call_later(10.0, cb); h.cancel()         N times (uvloop: the same)

then one more loop pass to include the clean-up (thor: loop.schedule(0, loop.stop); loop.run();
asyncio: loop.call_soon(loop.stop); loop.run_forever()).

rate = N / (seconds for the N create+cancel pairs plus that pass); the pairs alone (cancel_rate)
and the pass alone (pass_ms) are reported too. Classic thor 0.17's pass includes waiting for its
0.1 s poll tick.
"""

from __future__ import annotations

import _common as c


def noop() -> None:
    pass


def main() -> None:
    ap = c.parser(__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    n = args.n

    if args.impl == "thor":
        import thor.loop

        loop = thor.loop.make()
        schedule = loop.schedule
        cpu0 = c.cpu_now()
        t0 = c.perf()
        for _ in range(n):
            schedule(10.0, noop).delete()
        t1 = c.perf()
        loop.schedule(0, loop.stop)
        loop.run()
        api = "loop.schedule(10.0, cb).delete()"
    else:
        loop = c.new_asyncio_loop(args.impl)
        call_later = loop.call_later
        cpu0 = c.cpu_now()
        t0 = c.perf()
        for _ in range(n):
            call_later(10.0, noop).cancel()
        t1 = c.perf()
        loop.call_soon(loop.stop)
        loop.run_forever()
        api = "loop.call_later(10.0, cb).cancel()"
    t2 = c.perf()
    cpu = c.cpu_now() - cpu0
    cases = {
        "create+cancel": c.case(
            n,
            t2 - t0,
            cpu,
            cancel_rate=round(n / (t1 - t0)),
            pass_ms=round(1000 * (t2 - t1), 2),
        )
    }
    c.emit_result(args, "timers", api, cases)


if __name__ == "__main__":
    main()
