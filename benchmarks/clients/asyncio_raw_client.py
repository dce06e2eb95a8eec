"""A raw asyncio client Protocol: the pure-Python ceiling for a client on the stdlib loop.

    python benchmarks/clients/asyncio_raw_client.py http://127.0.0.1:PORT/ [--concurrency N]
        [--secs S] [--warmup W]

One keep-alive connection per chain (--concurrency connections), one request in flight on each
(no pipelining). The request is one fixed bytes object; a response is framed by finding the end of
its head and the Content-Length value in it (nothing else is parsed or validated: no chunked, no
status line checks beyond the code). Not an HTTP client: it bounds what one on asyncio's
transports can do.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit

from _clientcommon import Meter, parse_args, perf, profiled

CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


class Chain(asyncio.Protocol):
    def __init__(self, request: bytes, m: Meter, finished: asyncio.Future) -> None:
        self.request = request
        self.m = m
        self.finished = finished
        self.buf = b""
        self.need = 0
        self.head_len = 0
        self.started = 0.0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.send()

    def send(self) -> None:
        self.started = perf()
        self.buf = b""
        self.need = 0
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buf = self.buf = self.buf + data if self.buf else data
        if not self.need:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head_len = end + 4
            length = CONTENT_LENGTH.search(buf, 0, end + 2)
            self.need = self.head_len + (int(length.group(1)) if length else 0)
        if len(buf) < self.need:
            return
        status = int(buf[9:12]) if buf[:5] == b"HTTP/" else 0
        if self.m.done(self.started, status, buf[self.head_len : self.need]):
            self.send()
        else:
            self.transport.close()
            if not self.finished.done():
                self.finished.set_result(None)

    def connection_lost(self, exc) -> None:
        if not self.finished.done():
            self.m.error(exc or "connection closed by the server")
            self.finished.set_result(None)


async def run(a, m: Meter) -> None:
    u = urlsplit(a.url)
    request = b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % ((u.path or "/").encode(), u.netloc.encode())
    loop = asyncio.get_running_loop()
    done = []
    for _ in range(a.concurrency):
        finished = loop.create_future()
        await loop.create_connection(lambda f=finished: Chain(request, m, f), u.hostname, u.port)
        done.append(finished)
    _, pending = await asyncio.wait(done, timeout=m.deadline - perf())
    if pending:
        m.give_up(len(pending))


def main() -> None:
    a = parse_args(__doc__)
    m = Meter(a)
    profiled(a, lambda: asyncio.run(run(a, m)))
    m.report("asyncio raw Protocol")


if __name__ == "__main__":
    main()
