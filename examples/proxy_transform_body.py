"""A reverse proxy that transforms text bodies as they stream: text/* responses are
upper-cased chunk by chunk (nothing is buffered; the response goes out chunked, since its
length may change). Other responses pass through untouched.

    python examples/proxy_transform_body.py --port 8000 --upstream http://127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import signal
import sys

import thor.loop
from thor.http.proxy import ProxyExchange, ReverseProxy
from thor.http.server import HttpServer

RawHeaders = list[tuple[bytes, bytes]]


class UpperCaseProxy(ReverseProxy):
    """Upper-cases text/* response bodies while they stream."""

    def rewrite_response(
        self, px: ProxyExchange, status: bytes, phrase: bytes, headers: RawHeaders
    ) -> RawHeaders:
        types = [v.strip().lower() for n, v in headers if n.lower() == b"content-type"]
        px.data["text"] = bool(types) and types[0].startswith(b"text/")
        return headers

    def transform_response_body(self, px: ProxyExchange, chunk: bytes) -> bytes:
        # (ASCII upper-casing works on any byte boundary, so no byte is held back)
        return chunk.upper() if px.data.get("text") else chunk


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A reverse proxy upper-casing text bodies.")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (0: any)")
    parser.add_argument("--upstream", default="http://127.0.0.1:8080", help="origin URL")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    server = HttpServer(b"127.0.0.1", args.port)
    UpperCaseProxy(server, args.upstream)
    server.on("start", lambda: print(f"listening on http://127.0.0.1:{server.port}/"))
    server.on("stop", thor.loop.stop)
    loop = thor.loop.get_default_loop()
    loop.add_signal_handler(signal.SIGINT, server.graceful_shutdown)
    loop.add_signal_handler(signal.SIGTERM, server.graceful_shutdown)
    thor.loop.run()


if __name__ == "__main__":
    main()
