"""Hello-world HTTP server on aiohttp's low-level server (`aiohttp.web.Server`: a handler
coroutine per request, no application, router or middlewares), stdlib asyncio loop, access log off.

    python benchmarks/servers/aiohttp_hello.py PORT
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

BODY = b"Hello, world!"


async def hello(request: web.BaseRequest) -> web.Response:
    return web.Response(body=BODY, content_type="text/plain")


async def serve(port: int) -> None:
    runner = web.ServerRunner(web.Server(hello), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
