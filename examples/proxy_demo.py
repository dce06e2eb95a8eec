"""The quick start's demo: a reverse proxy in front of a local origin, on one loop.

    python examples/proxy_demo.py

Starts an origin (a hello-world HttpServer), a ReverseProxy in front of it, and fetches three
URLs through the proxy with thor's HttpClient over one pooled connection. Prints each response
as the client got it (status, the Via the proxy added, the body) and the proxy's access log
(extended common log format: upstream, connect / first-byte / total times), then stops.
"""

import sys

import thor
from thor.http.proxy import CommonLogWriter, ReverseProxy

PATHS = [b"/", b"/hello?lang=en", b"/missing"]


def origin(exchange):
    """The origin: 200 with a greeting for every path but /missing (404)."""

    def request_done(trailers):
        found = exchange.uri != b"/missing"
        body = b"Hello from the origin: %s\n" % exchange.uri if found else b"no such page\n"
        status, phrase = (b"200", b"OK") if found else (b"404", b"Not Found")
        exchange.response_start(status, phrase, [(b"Content-Type", b"text/plain")])
        exchange.response_body(body)
        exchange.response_done([])

    exchange.on("request_done", request_done)


def fetch(client, base, paths):
    """Fetch ``paths`` through the proxy one after the other, then stop the loop."""
    if not paths:
        thor.stop()
        return
    exchange = client.exchange()
    body = []

    def response_start(status, phrase, headers):
        via = dict(headers).get(b"Via", b"-").strip()
        print(f"client: {status.decode()} {phrase.decode()} (Via: {via.decode()})")

    def response_done(trailers):
        print("client: body", b"".join(body))
        fetch(client, base, paths[1:])

    def error(err):
        print("client: error", err, file=sys.stderr)
        thor.stop()

    exchange.on("response_start", response_start)
    exchange.on("response_body", body.append)
    exchange.on("response_done", response_done)
    exchange.on("error", error)
    exchange.request_start(b"GET", base + paths[0], [])
    exchange.request_done([])


def main():
    upstream = thor.http.HttpServer(b"127.0.0.1", 0)
    upstream.on("exchange", origin)
    front = thor.http.HttpServer(b"127.0.0.1", 0)
    proxy = ReverseProxy(front, f"http://127.0.0.1:{upstream.port}")
    proxy.on("access", CommonLogWriter(sys.stdout, extended=True))
    print(f"origin on port {upstream.port}, reverse proxy on port {front.port}")
    client = thor.http.HttpClient()
    fetch(client, b"http://127.0.0.1:%d" % front.port, PATHS)
    thor.run()


if __name__ == "__main__":
    main()
