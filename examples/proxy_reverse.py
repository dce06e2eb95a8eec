"""A minimal reverse proxy: every request is forwarded to one upstream; access log on stdout.

    python examples/proxy_reverse.py --port 8000 --upstream http://127.0.0.1:8080

Bodies stream both ways with flow control, upstream connections are reused, hop-by-hop fields
are dropped, Via / Forwarded / X-Forwarded-For are added. Ctrl-C or SIGTERM stop it gracefully.
"""

from __future__ import annotations

import argparse
import signal
import sys

import thor.loop
from thor.http.proxy import CommonLogWriter, ReverseProxy
from thor.http.server import HttpServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A minimal reverse proxy.")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (0: any)")
    parser.add_argument("--upstream", default="http://127.0.0.1:8080", help="origin URL")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    server = HttpServer(b"127.0.0.1", args.port)
    proxy = ReverseProxy(server, args.upstream)
    proxy.on("access", CommonLogWriter(sys.stdout, extended=True))

    server.on("start", lambda: print(f"listening on http://127.0.0.1:{server.port}/"))
    server.on("stop", thor.loop.stop)
    loop = thor.loop.get_default_loop()
    loop.add_signal_handler(signal.SIGINT, server.graceful_shutdown)
    loop.add_signal_handler(signal.SIGTERM, server.graceful_shutdown)
    thor.loop.run()


if __name__ == "__main__":
    main()
