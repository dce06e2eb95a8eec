"""EventEmitter.emit throughput, no loop involved.

Cases (each time-bounded: after a short warm-up, batches of emits for --secs seconds in --slices
equal time slices; the rate is the median slice's):
  1 listener, 1 arg    emitter.emit("ev", 1) with one listener registered
  3 listeners, 1 arg   the same with three listeners (three different functions)
  no listener          emit("ev", 1) on an emitter with no listener at all

--impl thor: thor.events.EventEmitter (whichever thor is installed: ours or classic 0.17)
--impl pyee: pyee.EventEmitter (the synchronous base class). pyee's emit differs slightly:
  it copies the listener list under a threading.Lock on every emit, and an "error" event with no
  listener raises; neither matters for the event names used here.

Rates are emits per second, including the cost of the Python `for` loop that drives them
(the same for every implementation).
"""

from __future__ import annotations

import statistics
from itertools import repeat

import _common as c

BATCH = 2_000


def make_emitter(impl: str):
    if impl == "thor":
        from thor.events import EventEmitter
    else:
        from pyee import EventEmitter
    return EventEmitter()


def listener_a(arg):
    pass


def listener_b(arg):
    pass


def listener_c(arg):
    pass


def measure(emit, secs: float, slices: int) -> dict:
    """Emit in batches for `secs`, split into `slices` equal time slices; the rate reported is
    the median slice's, so a short disturbance from outside costs one slice, not the figure."""
    for _ in repeat(None, BATCH):  # warm-up (lets the specialising interpreter settle)
        emit("ev", 1)
    rates = []
    n_total = 0
    cpu0 = c.cpu_now()
    t_start = c.perf()
    for _ in range(slices):
        n = 0
        t0 = c.perf()
        deadline = t0 + secs / slices
        while True:
            for _ in repeat(None, BATCH):
                emit("ev", 1)
            n += BATCH
            t1 = c.perf()
            if t1 >= deadline:
                break
        rates.append(n / (t1 - t0))
        n_total += n
    cpu = c.cpu_now() - cpu0
    rate = statistics.median(rates)
    return c.case(
        n_total,
        c.perf() - t_start,
        cpu,
        rate=rate,
        ns_per_emit=round(1e9 / rate, 1),
        slice_rates=[round(r) for r in rates],
    )


def main() -> None:
    ap = c.parser(__doc__)
    ap.add_argument("--secs", type=float, default=0.5, help="seconds per case")
    ap.add_argument("--slices", type=int, default=5, help="time slices per case (median taken)")
    args = ap.parse_args()
    if args.impl not in ("thor", "pyee"):
        ap.error("events runs on thor or pyee")

    cases = {}
    one = make_emitter(args.impl)
    one.on("ev", listener_a)
    cases["1 listener, 1 arg"] = measure(one.emit, args.secs, args.slices)

    three = make_emitter(args.impl)
    for fn in (listener_a, listener_b, listener_c):
        three.on("ev", fn)
    cases["3 listeners, 1 arg"] = measure(three.emit, args.secs, args.slices)

    none = make_emitter(args.impl)
    cases["no listener"] = measure(none.emit, args.secs, args.slices)

    api = "thor.events.EventEmitter" if args.impl == "thor" else "pyee.EventEmitter"
    c.emit_result(args, "events", api, cases)


if __name__ == "__main__":
    main()
