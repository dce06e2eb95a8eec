"""A forward proxy: clients configured to use it fetch http:// URLs through it, and open
CONNECT tunnels (for https://) to the allowed ports.

    python examples/proxy_forward.py --port 3128 [--connect-port 443 ...]
    curl -x http://127.0.0.1:3128 http://example.com/
    curl -x http://127.0.0.1:3128 https://example.com/

Ctrl-C or SIGTERM stop it gracefully.
"""

from __future__ import annotations

import argparse
import signal
import sys

import thor.loop
from thor.http.proxy import CommonLogWriter, ForwardProxy
from thor.http.server import HttpServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A forward proxy with CONNECT.")
    parser.add_argument("--port", type=int, default=3128, help="port to listen on (0: any)")
    parser.add_argument(
        "--connect-port",
        type=int,
        action="append",
        help="a port CONNECT may reach (repeat; default: 443)",
    )
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    server = HttpServer(b"127.0.0.1", args.port)
    proxy = ForwardProxy(server, connect_ports=args.connect_port or (443,))
    proxy.on("access", CommonLogWriter(sys.stdout, extended=True))

    server.on("start", lambda: print(f"listening on http://127.0.0.1:{server.port}/"))
    server.on("stop", thor.loop.stop)
    loop = thor.loop.get_default_loop()
    loop.add_signal_handler(signal.SIGINT, server.graceful_shutdown)
    loop.add_signal_handler(signal.SIGTERM, server.graceful_shutdown)
    thor.loop.run()


if __name__ == "__main__":
    main()
