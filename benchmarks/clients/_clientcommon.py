"""Shared by the client scripts: the options, the measuring window and the one JSON line.

A client runs --concurrency chains of GET requests (1 = sequential), each chain sending its next
request as soon as the previous response is complete. The first --warmup seconds are not counted.
The measuring window opens at the first response completed after the warm-up and closes at the
first one completed --secs later: requests/s and CPU seconds (time.process_time; the kernel's
share of them from os.times) are taken over exactly that window, so start-up, connection set-up
and the final drain are left out. A chain stops at its first response after the window closed.

Every response is checked: a status other than 200 or a body other than "Hello, world!" counts as
`bad`; an error event or exception counts as `errors` (after which the chain waits 10 ms and goes
on). A safety net ends the run --warmup + --secs + 20 seconds after the start; chains still waiting
then are reported as `unfinished` (a hang).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

BODY = b"Hello, world!"
perf = time.perf_counter
cpu = time.process_time


def parse_args(doc: str | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("url", help="http://127.0.0.1:PORT/ answering 200 'Hello, world!'")
    ap.add_argument("--concurrency", type=int, default=1, help="requests in flight (chains)")
    ap.add_argument("--secs", type=float, default=3.0, help="measured seconds")
    ap.add_argument("--warmup", type=float, default=0.5, help="seconds not counted")
    ap.add_argument("--profile", metavar="FILE", help="cProfile the whole run, stats to FILE")
    a = ap.parse_args()
    if not a.url.startswith("http://127.0.0.1:"):
        ap.error("the benchmark clients only talk to http://127.0.0.1:PORT/")
    if a.concurrency < 1:
        ap.error("--concurrency must be >= 1")
    return a


class Meter:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        start = perf()
        self.open_at = start + a.warmup
        self.close_at = self.open_at + a.secs
        self.deadline = self.close_at + 20.0
        self.w0 = self.w1 = 0.0
        self.cpu0 = self.cpu1 = 0.0
        self.times0 = self.times1 = (0.0, 0.0)  # os.times() user, system
        self.count = 0
        self.errors = 0
        self.bad = 0
        self.first_errors: list[str] = []
        self.lat: list[float] = []
        self.unfinished = 0

    def done(self, started: float, status: int, body: bytes) -> bool:
        """A response completed; False when its chain should stop."""
        now = perf()
        if status != 200 or body != BODY:
            self.bad += 1
            if len(self.first_errors) < 3:
                self.first_errors.append(f"bad response: {status} {body[:60]!r}")
        if self.w1:
            return False
        if not self.w0:
            if now >= self.open_at:
                self.w0, self.cpu0, self.times0 = now, cpu(), os.times()[:2]
            return True
        if now >= self.close_at:
            self.w1, self.cpu1, self.times1 = now, cpu(), os.times()[:2]
            return False
        self.count += 1
        self.lat.append(now - started)
        return True

    def error(self, err: object) -> None:
        self.errors += 1
        if len(self.first_errors) < 3:
            self.first_errors.append(repr(err)[:300])

    def going(self) -> bool:
        return not self.w1 and perf() < self.close_at

    def give_up(self, unfinished: int) -> None:
        """The safety net fired with `unfinished` chains still waiting."""
        self.unfinished = unfinished
        if not self.w1:
            self.w1, self.cpu1, self.times1 = perf(), cpu(), os.times()[:2]
            if not self.w0:
                self.w0, self.cpu0, self.times0 = self.w1, self.cpu1, self.times1

    def report(self, impl: str, **extra: Any) -> None:
        secs = self.w1 - self.w0
        cpu_s = self.cpu1 - self.cpu0
        lat = sorted(self.lat)
        user = self.times1[0] - self.times0[0]
        system = self.times1[1] - self.times0[1]

        def pct(p: float) -> float:
            return 1000 * lat[min(len(lat) - 1, int(len(lat) * p))] if lat else float("nan")

        out = {
            "impl": impl,
            "concurrency": self.a.concurrency,
            "requests": self.count,
            "secs": round(secs, 6),
            "cpu_s": round(cpu_s, 6),
            "rps": self.count / secs if secs > 0 else 0.0,
            "per_cpu_s": self.count / cpu_s if cpu_s > 0 else 0.0,
            "kernel_share": round(system / (user + system), 3) if user + system > 0 else 0.0,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "errors": self.errors,
            "bad": self.bad,
            "unfinished": self.unfinished,
            "first_errors": self.first_errors,
            "python": sys.version.split()[0],
        }
        out.update(extra)
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


def profiled(a: argparse.Namespace, fn: Any) -> Any:
    """fn() under cProfile when --profile was given (stats written to the file)."""
    if not a.profile:
        return fn()
    import cProfile

    profiler = cProfile.Profile()
    try:
        return profiler.runcall(fn)
    finally:
        profiler.dump_stats(a.profile)
