"""GET chains on aiohttp's ClientSession (stdlib asyncio loop).

    python benchmarks/clients/aiohttp_client.py http://127.0.0.1:PORT/ [--concurrency N]
        [--secs S] [--warmup W]

One ClientSession on a TCPConnector(limit=--concurrency) (the pool holds every chain's
connection); each chain: `async with session.get(url) as r: body = await r.read()`.
"""

from __future__ import annotations

import asyncio

import aiohttp
from _clientcommon import Meter, parse_args, perf, profiled


async def run(a, m: Meter) -> None:
    connector = aiohttp.TCPConnector(limit=a.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def chain() -> None:
            while True:
                started = perf()
                try:
                    async with session.get(a.url) as r:
                        body = await r.read()
                        status = r.status
                except Exception as e:
                    m.error(e)
                    if not m.going():
                        return
                    await asyncio.sleep(0.01)
                    continue
                if not m.done(started, status, body):
                    return

        tasks = [asyncio.ensure_future(chain()) for _ in range(a.concurrency)]
        _, pending = await asyncio.wait(tasks, timeout=m.deadline - perf())
        if pending:
            m.give_up(len(pending))
            for t in pending:
                t.cancel()


def main() -> None:
    a = parse_args(__doc__)
    m = Meter(a)
    profiled(a, lambda: asyncio.run(run(a, m)))
    m.report("aiohttp", aiohttp=aiohttp.__version__)


if __name__ == "__main__":
    main()
