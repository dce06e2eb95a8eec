"""Serve hello-world over HTTP and fetch it with thor's own client, on one loop.

    python examples/hello_and_fetch.py

The server answers every request with "Hello, world!"; the client fetches it three times over
one pooled keep-alive connection, prints what it got, and everything stops.
"""

import thor
from thor.events import on

FETCHES = 3


def serve(exchange):
    @on(exchange)
    def request_done(trailers):
        exchange.response_start(b"200", b"OK", [(b"Content-Type", b"text/plain")])
        exchange.response_body(b"Hello, world!")
        exchange.response_done([])


def fetch(client, url, left):
    exchange = client.exchange()
    body = []

    @on(exchange)
    def response_start(status, phrase, headers):
        print(status.decode(), phrase.decode(), dict(headers).get(b"Content-Type", b"").decode())

    @on(exchange)
    def response_body(chunk):
        body.append(chunk)

    @on(exchange)
    def response_done(trailers):
        print("  body:", b"".join(body).decode())
        if left > 1:
            fetch(client, url, left - 1)
        else:
            thor.stop()

    @on(exchange)
    def error(err):
        print("error:", err)
        thor.stop()

    exchange.request_start(b"GET", url, [])
    exchange.request_done([])


def main():
    server = thor.HttpServer(b"127.0.0.1", 0)  # any free port
    server.on("exchange", serve)
    url = b"http://127.0.0.1:%d/" % server.port
    print("serving", url.decode())
    client = thor.HttpClient()
    thor.schedule(0, fetch, client, url, FETCHES)
    thor.schedule(10, thor.stop)  # a safety net
    thor.run()
    server.shutdown()


if __name__ == "__main__":
    main()
