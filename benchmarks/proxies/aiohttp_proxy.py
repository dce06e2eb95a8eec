"""A reverse proxy on aiohttp (run it in the peers venv), on asyncio's loop or uvloop's.

    python benchmarks/proxies/aiohttp_proxy.py PORT ORIGIN_HOST:ORIGIN_PORT [--uvloop] [--pool N]

aiohttp's low-level ``web.Server`` (no application, router or middlewares; access log off) and
one ``ClientSession`` whose ``TCPConnector`` keeps up to --pool (64) upstream connections alive.
Each request goes upstream with its body streamed (``request.content``) and its hop-by-hop fields
dropped; the response comes back with its hop-by-hop fields dropped too. A response that
announces a Content-Length of at most 64 KiB is read whole and answered with ``web.Response``
(aiohttp's cheapest path, what an aiohttp user would write for small answers); any other is
streamed with ``web.StreamResponse``, chunk by chunk as it arrives, each ``write`` awaited (so the
client's pace bounds what is buffered). Upstream failures are answered 502.
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
from aiohttp import web

# RFC 9110 7.6.1 connection-specific fields, plus those a proxy sets itself (Host; framing is
# redone by aiohttp on each side)
HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    )
)
WHOLE_LIMIT = 64 * 1024


def end_to_end(headers, also: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """The fields of `headers` that are not hop-by-hop (including those Connection names)."""
    named = set()
    for value in headers.getall("Connection", ()):
        named.update(token.strip().lower() for token in value.split(","))
    return [(k, v) for k, v in headers.items() if (k.lower() not in HOP_BY_HOP | also | named)]


async def serve(port: int, origin: str, pool: int) -> None:
    connector = aiohttp.TCPConnector(limit=pool, limit_per_host=pool, keepalive_timeout=60)
    session = aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
    )
    base = f"http://{origin}"

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        body = request.content if request.body_exists else None
        try:
            async with session.request(
                request.method,
                base + request.raw_path,
                headers=end_to_end(request.headers, frozenset(("host",))),
                data=body,
                allow_redirects=False,
            ) as upstream:
                length = upstream.content_length
                if length is not None and length <= WHOLE_LIMIT:
                    content = await upstream.read()
                    return web.Response(
                        status=upstream.status,
                        reason=upstream.reason,
                        headers=end_to_end(upstream.headers, frozenset(("content-length",))),
                        body=content,
                    )
                response = web.StreamResponse(
                    status=upstream.status,
                    reason=upstream.reason,
                    headers=end_to_end(upstream.headers),
                )
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
        except aiohttp.ClientError as e:
            return web.Response(status=502, text=f"Bad Gateway: {e!r}")

    runner = web.ServerRunner(web.Server(handle), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    await asyncio.Event().wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("port", type=int)
    ap.add_argument("origin", help="HOST:PORT of the origin server")
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop's loop")
    ap.add_argument("--pool", type=int, default=64, help="upstream connections kept alive")
    args = ap.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.run(serve(args.port, args.origin, args.pool))
    else:
        asyncio.run(serve(args.port, args.origin, args.pool))


if __name__ == "__main__":
    main()
