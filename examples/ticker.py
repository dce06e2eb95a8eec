"""A small demo of thor.events and thor.loop: timers, events, a worker thread, and signals.

A Ticker emits 'tick' five times a second; a worker thread hands results back to the loop with
run_in_loop; Ctrl-C (SIGINT) or SIGTERM stops everything gracefully. Ends by itself after 2 s.

    python examples/ticker.py
"""

from __future__ import annotations

import signal
import threading
import time

import thor.loop
from thor.events import EventEmitter, on
from thor.loop import Timer


class Ticker(EventEmitter):
    """Emits 'tick' (count) every ``interval`` seconds until stopped; then 'done' (count)."""

    def __init__(self, loop: thor.loop.LoopBase, interval: float) -> None:
        super().__init__()
        self.count = 0
        self.interval = interval
        self._timer = Timer(loop, self._fire)

    def start(self) -> None:
        self._timer.start(self.interval)

    def stop(self) -> None:
        self._timer.stop()
        self.emit("done", self.count)

    def _fire(self) -> None:
        self.count += 1
        self.emit("tick", self.count)
        self._timer.start(self.interval)


def main() -> None:
    loop = thor.loop._loop
    ticker = Ticker(loop, 0.2)
    started = time.monotonic()

    @on(ticker)
    def tick(count: int) -> None:
        print(f"tick {count} at {time.monotonic() - started:.3f} s")

    @on(ticker)
    def done(count: int) -> None:
        print(f"done after {count} ticks")
        thor.loop.stop()

    def worker() -> None:
        total = sum(i * i for i in range(200_000))  # some work off the loop's thread
        thor.loop.run_in_loop(print, f"worker thread finished: {total}")

    def shut_down(name: str) -> None:
        print(f"{name} received: stopping")
        ticker.stop()

    loop.add_signal_handler(signal.SIGINT, shut_down, "SIGINT")
    loop.add_signal_handler(signal.SIGTERM, shut_down, "SIGTERM")
    thor.loop.schedule(2.0, ticker.stop)
    threading.Thread(target=worker, daemon=True).start()
    ticker.start()
    print(f"running on {type(loop).__name__}; Ctrl-C to stop early")
    thor.loop.run()


if __name__ == "__main__":
    main()
