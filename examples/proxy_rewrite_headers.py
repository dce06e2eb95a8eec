"""A reverse proxy that rewrites headers: each request gets an X-Request-Id and loses its
Cookie for paths under /public; each response loses Server and X-Powered-By and gets the
request id and a Strict-Transport-Security field.

    python examples/proxy_rewrite_headers.py --port 8000 --upstream http://127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import itertools
import signal
import sys

import thor.loop
from thor.http.proxy import ProxyExchange, ReverseProxy
from thor.http.server import HttpServer

RawHeaders = list[tuple[bytes, bytes]]
HIDDEN = {b"server", b"x-powered-by"}


class RewritingProxy(ReverseProxy):
    """Rewrites request and response fields (see the module docstring)."""

    ids = itertools.count(1)

    def rewrite_request(self, px: ProxyExchange) -> None:
        request_id = b"%d" % next(self.ids)
        px.data["id"] = request_id
        if px.target.startswith(b"/public"):
            px.req_hdrs = [(n, v) for n, v in px.req_hdrs if n.lower() != b"cookie"]
        px.req_hdrs.append((b"X-Request-Id", request_id))

    def rewrite_response(
        self, px: ProxyExchange, status: bytes, phrase: bytes, headers: RawHeaders
    ) -> RawHeaders:
        kept = [(n, v) for n, v in headers if n.lower() not in HIDDEN]
        kept.append((b"X-Request-Id", px.data["id"]))
        kept.append((b"Strict-Transport-Security", b"max-age=31536000"))
        return kept


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A reverse proxy rewriting headers.")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (0: any)")
    parser.add_argument("--upstream", default="http://127.0.0.1:8080", help="origin URL")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    server = HttpServer(b"127.0.0.1", args.port)
    RewritingProxy(server, args.upstream)
    server.on("start", lambda: print(f"listening on http://127.0.0.1:{server.port}/"))
    server.on("stop", thor.loop.stop)
    loop = thor.loop.get_default_loop()
    loop.add_signal_handler(signal.SIGINT, server.graceful_shutdown)
    loop.add_signal_handler(signal.SIGTERM, server.graceful_shutdown)
    thor.loop.run()


if __name__ == "__main__":
    main()
