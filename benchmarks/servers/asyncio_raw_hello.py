"""The ceiling for a pure-Python asyncio server: a Protocol that parses nothing.

    python benchmarks/servers/asyncio_raw_hello.py PORT

Every CRLF CRLF seen in the input counts as one request head (no request line, header or body
parsing, no validation) and is answered with a fixed 200 "Hello, world!" response; a head that
contains "connection: close" (any case) gets the same response with Connection: close, after which
the connection is closed. Pipelined heads get their responses in one write. Not an HTTP server:
it bounds from above what a server on the stdlib loop and transports can do.
"""

from __future__ import annotations

import asyncio
import sys

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!"
RESPONSE_CLOSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n"
    b"\r\nHello, world!"
)
END = b"\r\n\r\n"


class Hello(asyncio.Protocol):
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        buf = self.pending + data if self.pending else data
        heads = buf.count(END)
        if not heads:
            self.pending = buf
            return
        end = buf.rfind(END) + 4
        self.pending = buf[end:]
        if b"connection: close" in buf[:end].lower():
            self.transport.write(RESPONSE * (heads - 1) + RESPONSE_CLOSE)
            self.transport.close()
        else:
            self.transport.write(RESPONSE * heads if heads > 1 else RESPONSE)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_server(Hello, "127.0.0.1", port, backlog=1024)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
