"""The thor reverse proxy (``thor.http.proxy.ReverseProxy``), run in the new venv.

    python benchmarks/proxies/thor_proxy.py PORT ORIGIN_HOST:ORIGIN_PORT [--workers N]
        [--profile FILE]

One ``HttpServer`` on 127.0.0.1:PORT and ``ReverseProxy(server, "http://ORIGIN")`` with the
proxy's defaults throughout: the HttpClient it makes (``upstream_max_conns`` = 256 pooled
connections to the origin, of which the benchmark's 50 client connections use at most 50),
hop-by-hop fields, Via, X-Forwarded-For / Forwarded, streaming, flow control both ways. No
access-log writer is attached.

--workers N (N > 1) forks N processes, each with its own listening socket on the same port
(``reuse_port=True``, SO_REUSEPORT: the kernel spreads new connections over them) and its own
loop, client and pool; the parent waits, and SIGTERM/SIGINT to it stop them all. The benchmark
uses this for its ``--workers 2`` row only when ``thor proxy --workers`` (the command line) is
not there.

--profile FILE runs the (one) proxy process under cProfile and writes the stats to FILE when it
is stopped (SIGTERM/SIGINT).

Exits with status 3 and says so when ``thor.http.proxy.ReverseProxy`` is not in the installed
thor-http.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable


def missing() -> str:
    """'' when the proxy API this script needs imports, else what is missing."""
    try:
        from thor.http.proxy import ReverseProxy  # noqa: F401
    except ImportError as e:
        return f"thor.http.proxy.ReverseProxy does not import (not written yet?): {e!r}"
    return ""


def serve(port: int, origin: str, reuse_port: bool) -> None:
    """Run one proxy process until it is signalled."""
    import thor.loop
    from thor.http import HttpServer
    from thor.http.proxy import ReverseProxy

    server = HttpServer(b"127.0.0.1", port, reuse_port=reuse_port)
    proxy = ReverseProxy(server, f"http://{origin}")
    proxy.on("error", lambda err: print(f"proxy error: {err!r}", file=sys.stderr, flush=True))
    thor.loop.run()


def profiled(path: str, run: Callable[[], None]) -> None:
    """Run `run` under cProfile; the stats go to `path` when SIGTERM or SIGINT ends it."""
    import cProfile

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGINT, leave)
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        run()
    finally:
        profiler.disable()
        profiler.dump_stats(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("port", type=int)
    ap.add_argument("origin", help="HOST:PORT of the origin server")
    ap.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    ap.add_argument("--profile", metavar="FILE", help="cProfile the proxy; stats to FILE on exit")
    args = ap.parse_args()
    problem = missing()
    if problem:
        print(f"thor_proxy.py: cannot run the thor reverse proxy: {problem}", file=sys.stderr)
        sys.exit(3)
    if args.profile:
        if args.workers > 1:
            ap.error("--profile: one process only")
        profiled(args.profile, lambda: serve(args.port, args.origin, reuse_port=False))
        return
    if args.workers <= 1:
        serve(args.port, args.origin, reuse_port=False)
        return
    children = []
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:
            try:
                serve(args.port, args.origin, reuse_port=True)
            finally:
                os._exit(0)
        children.append(pid)

    def stop(signum: int, frame: object) -> None:
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    for child in children:
        _, code = os.waitpid(child, 0)
        status = status or os.waitstatus_to_exitcode(code)
    sys.exit(0 if status in (0, -signal.SIGTERM) else 1)


if __name__ == "__main__":
    main()
