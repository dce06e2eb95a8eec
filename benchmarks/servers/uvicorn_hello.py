"""Hello-world HTTP server: a raw ASGI application (no framework) under uvicorn with its
httptools parser and the uvloop loop, one process, access log and lifespan off.

    python benchmarks/servers/uvicorn_hello.py PORT
"""

from __future__ import annotations

import sys

import uvicorn

START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
}
BODY = {"type": "http.response.body", "body": b"Hello, world!"}


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    await send(START)
    await send(BODY)


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        http="httptools",
        loop="uvloop",
        lifespan="off",
        access_log=False,
        log_level="error",
        backlog=1024,
    )
