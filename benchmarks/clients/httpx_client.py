"""GET chains on httpx's AsyncClient (stdlib asyncio loop, httpcore's pool).

    python benchmarks/clients/httpx_client.py http://127.0.0.1:PORT/ [--concurrency N]
        [--secs S] [--warmup W]

One AsyncClient with Limits(max_connections=N, max_keepalive_connections=N), N = --concurrency;
each chain: `r = await client.get(url)`, then r.status_code and r.content.
"""

from __future__ import annotations

import asyncio

import httpx
from _clientcommon import Meter, parse_args, perf, profiled


async def run(a, m: Meter) -> None:
    n = a.concurrency
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(limits=limits) as client:

        async def chain() -> None:
            while True:
                started = perf()
                try:
                    r = await client.get(a.url)
                    body = r.content
                except Exception as e:
                    m.error(e)
                    if not m.going():
                        return
                    await asyncio.sleep(0.01)
                    continue
                if not m.done(started, r.status_code, body):
                    return

        tasks = [asyncio.ensure_future(chain()) for _ in range(n)]
        _, pending = await asyncio.wait(tasks, timeout=m.deadline - perf())
        if pending:
            m.give_up(len(pending))
            for t in pending:
                t.cancel()


def main() -> None:
    a = parse_args(__doc__)
    m = Meter(a)
    profiled(a, lambda: asyncio.run(run(a, m)))
    import httpcore

    m.report("httpx", httpx=httpx.__version__, httpcore=httpcore.__version__)


if __name__ == "__main__":
    main()
