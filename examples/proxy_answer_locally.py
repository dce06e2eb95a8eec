"""A reverse proxy that answers some requests itself: paths under /admin are denied (403),
and small successful GET responses are kept for --ttl seconds and served from memory
(``X-Cache: hit``) without asking the origin again.

    python examples/proxy_answer_locally.py --port 8000 --upstream http://127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

import thor.loop
from thor.http.proxy import ProxyExchange, ReverseProxy
from thor.http.server import HttpServer

RawHeaders = list[tuple[bytes, bytes]]
MAX_ENTRY = 64 * 1024  # bodies larger than this are not cached


class CachingProxy(ReverseProxy):
    """Denies /admin; caches small 200 responses to GET (see the module docstring)."""

    ttl = 5.0

    def __init__(self, server: HttpServer, upstream: str) -> None:
        super().__init__(server, upstream)
        self.cache: dict[bytes, tuple[float, RawHeaders, bytes]] = {}

    def answer_locally(self, px: ProxyExchange) -> bool:
        if px.target.startswith(b"/admin"):
            px.respond(403, None, [(b"Content-Type", b"text/plain")], b"Forbidden\n")
            return True
        if px.method != b"GET":
            return False
        entry = self.cache.get(px.target)
        if entry is None or entry[0] < time.monotonic():
            return False
        _, headers, body = entry
        px.respond(200, b"OK", [*headers, (b"X-Cache", b"hit")], body)
        return True

    def rewrite_response(
        self, px: ProxyExchange, status: bytes, phrase: bytes, headers: RawHeaders
    ) -> RawHeaders:
        if px.method == b"GET" and status == b"200":
            kept = [(n, v) for n, v in headers if n.lower() in (b"content-type", b"etag")]
            px.data["entry"] = (kept, [])
        return [*headers, (b"X-Cache", b"miss")]

    def transform_response_body(self, px: ProxyExchange, chunk: bytes) -> bytes:
        entry = px.data.get("entry")
        if entry is not None:
            headers, parts = entry
            if chunk:
                parts.append(chunk)
                if sum(map(len, parts)) > MAX_ENTRY:
                    px.data["entry"] = None
            else:  # the end of the body: keep it
                expires = time.monotonic() + self.ttl
                self.cache[px.target] = (expires, headers, b"".join(parts))
        return chunk


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A reverse proxy with a deny list and a cache.")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (0: any)")
    parser.add_argument("--upstream", default="http://127.0.0.1:8080", help="origin URL")
    parser.add_argument("--ttl", type=float, default=5.0, help="seconds a response is kept")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    server = HttpServer(b"127.0.0.1", args.port)
    proxy = CachingProxy(server, args.upstream)
    proxy.ttl = args.ttl
    server.on("start", lambda: print(f"listening on http://127.0.0.1:{server.port}/"))
    server.on("stop", thor.loop.stop)
    loop = thor.loop.get_default_loop()
    loop.add_signal_handler(signal.SIGINT, server.graceful_shutdown)
    loop.add_signal_handler(signal.SIGTERM, server.graceful_shutdown)
    thor.loop.run()


if __name__ == "__main__":
    main()
