"""A load-balancing reverse proxy over several local origins, with a per-origin connection
limit (extra requests queue), passive health tracking (an origin that keeps failing is left out
for a while) and an ``X-Upstream`` response field naming the origin that answered.

    python examples/proxy_load_balance.py --port 8000 \\
        --upstream http://127.0.0.1:8081 --upstream http://127.0.0.1:8082 [--policy least_conn]
"""

from __future__ import annotations

import argparse
import signal
import sys

import thor.loop
from thor.http.proxy import ProxyExchange, ReverseProxy, Upstream, UpstreamGroup
from thor.http.server import HttpServer

RawHeaders = list[tuple[bytes, bytes]]


class NamingProxy(ReverseProxy):
    """Says which upstream answered."""

    def rewrite_response(
        self, px: ProxyExchange, status: bytes, phrase: bytes, headers: RawHeaders
    ) -> RawHeaders:
        name = px.upstream.name if px.upstream is not None else "-"
        return [*headers, (b"X-Upstream", name.encode("ascii"))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A load-balancing reverse proxy.")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (0: any)")
    parser.add_argument("--upstream", action="append", required=True, help="an origin URL (repeat)")
    parser.add_argument(
        "--policy", default="round_robin", choices=("round_robin", "least_conn", "hash")
    )
    parser.add_argument("--max-conns", type=int, default=100, help="requests per origin at once")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    upstreams = [Upstream(url, max_conns=args.max_conns) for url in args.upstream]
    group = UpstreamGroup(upstreams, args.policy, eject_after=3, eject_for=10.0)
    server = HttpServer(b"127.0.0.1", args.port)
    NamingProxy(server, group)
    group.on("health", lambda up, ok: print(f"{up.name} {'healthy' if ok else 'ejected'}"))
    server.on("start", lambda: print(f"listening on http://127.0.0.1:{server.port}/"))
    server.on("stop", thor.loop.stop)
    loop = thor.loop.get_default_loop()
    loop.add_signal_handler(signal.SIGINT, server.graceful_shutdown)
    loop.add_signal_handler(signal.SIGTERM, server.graceful_shutdown)
    thor.loop.run()


if __name__ == "__main__":
    main()
