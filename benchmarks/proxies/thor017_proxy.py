"""The reverse proxy written on thor 0.17's API (run it in the classic venv).

    python benchmarks/proxies/thor017_proxy.py PORT ORIGIN_HOST:ORIGIN_PORT [--pool N]

What someone would write on classic thor: one ``HttpServer``, one ``HttpClient`` (the upstream
connection pool, ``max_server_conn`` = --pool, 64 like the other proxies' pools, where 0.17's
default is 6), and for every server exchange a client exchange. The request is relayed as it
arrives (``request_start`` / ``request_body`` / ``request_done`` go upstream at once), and so is
the response (``response_start`` / ``response_body`` / ``response_done`` come back as they
arrive): bodies are streamed, never collected. Hop-by-hop fields of the response are dropped
with 0.17's ``strip_hop_by_hop`` (its client drops the request's, and sets Host). When the
client connection is slow to take the response (the server connection's ``'pause'``), reading
the upstream response is paused too (the client exchange's ``res_body_pause``). An upstream
error before the response started is answered 502; after, the client connection is closed.
"""

from __future__ import annotations

import argparse

import thor
from thor.http import HttpClient, HttpServer, strip_hop_by_hop


class Relay:
    """One proxied request: the server exchange ``sx`` relayed through the client exchange ``cx``.

    A single object with bound methods as listeners (rather than a closure per event), dropped
    with its listeners when the response is done."""

    __slots__ = ("conn", "cx", "origin", "started", "sx")

    def __init__(self, sx, client: HttpClient, origin: bytes) -> None:
        self.sx = sx
        self.cx = client.exchange()
        self.origin = origin
        self.started = False
        self.conn = sx.http_conn
        sx.on("request_start", self.request_start)
        sx.on("request_body", self.cx.request_body)
        sx.on("request_done", self.cx.request_done)
        self.cx.on("response_start", self.response_start)
        self.cx.on("response_body", self.sx.response_body)
        self.cx.on("response_done", self.response_done)
        self.cx.on("error", self.error)
        self.conn.on("pause", self.pause)

    def request_start(self, method: bytes, uri: bytes, headers: list) -> None:
        self.cx.request_start(method, self.origin + uri, headers)

    def response_start(self, status: bytes, phrase: bytes, headers: list) -> None:
        self.started = True
        self.sx.response_start(status, phrase, strip_hop_by_hop(headers))

    def pause(self, paused: bool) -> None:
        self.cx.res_body_pause(paused)

    def response_done(self, trailers: list) -> None:
        self.finish()
        self.sx.response_done(trailers)

    def error(self, err) -> None:
        self.finish()
        if self.started:  # mid-response: the client cannot be told, only cut off
            self.sx.response_done([], close=True)
            return
        body = b"Bad Gateway: " + str(getattr(err, "desc", err)).encode("utf-8", "replace")
        self.sx.response_start(
            b"502",
            b"Bad Gateway",
            [(b"Content-Type", b"text/plain"), (b"Content-Length", b"%d" % len(body))],
        )
        self.sx.response_body(body)
        self.sx.response_done([])

    def finish(self) -> None:
        if self.conn is not None:
            self.conn.remove_listener("pause", self.pause)
            self.conn = None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("port", type=int)
    ap.add_argument("origin", help="HOST:PORT of the origin server")
    ap.add_argument("--pool", type=int, default=64, help="upstream connections (max_server_conn)")
    args = ap.parse_args()
    origin = b"http://" + args.origin.encode("ascii")
    client = HttpClient()
    client.max_server_conn = args.pool
    server = HttpServer(b"127.0.0.1", args.port)
    server.on("exchange", lambda sx: Relay(sx, client, origin))
    thor.run()


if __name__ == "__main__":
    main()
