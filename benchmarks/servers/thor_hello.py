"""Hello-world HTTP server on thor's HttpServer: ours (thor-http) or classic 0.17, whichever thor
the interpreter has.

    python benchmarks/servers/thor_hello.py PORT [--profile FILE]

Answers every request, once it has been read whole ('request_done'), with 200, Content-Type:
text/plain, Content-Length: 13 and "Hello, world!". Connection handling (keep-alive, the request's
Connection: close) is the library's. HttpServer comes from the facade (`thor.http.HttpServer`, as
in 0.17) when it exists, else from `thor.http.server`. --profile runs the server under cProfile and
writes the stats to FILE when SIGTERM or SIGINT arrives.
"""

from __future__ import annotations

import argparse
import signal

import thor.loop
from thor.events import on

try:
    from thor.http import HttpServer  # type: ignore[attr-defined]
except ImportError:
    from thor.http.server import HttpServer

BODY = b"Hello, world!"
HEADERS = [(b"Content-Type", b"text/plain"), (b"Content-Length", b"%d" % len(BODY))]


def exchange(exch) -> None:
    @on(exch)
    def request_done(trailers) -> None:
        exch.response_start(b"200", b"OK", HEADERS)
        exch.response_body(BODY)
        exch.response_done([])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("port", type=int)
    ap.add_argument("--profile", metavar="FILE", help="cProfile the server; stats to FILE on exit")
    args = ap.parse_args()
    server = HttpServer(b"127.0.0.1", args.port)
    server.on("exchange", exchange)
    if not args.profile:
        thor.loop.run()
        return

    import cProfile

    def leave(signum, frame) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGINT, leave)
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        thor.loop.run()
    finally:
        profiler.disable()
        profiler.dump_stats(args.profile)


if __name__ == "__main__":
    main()
