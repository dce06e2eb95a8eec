"""GET chains on thor's HttpClient: ours (thor-http) or classic 0.17, whichever thor the
interpreter has.

    python benchmarks/clients/thor_client.py http://127.0.0.1:PORT/ [--concurrency N]
        [--secs S] [--warmup W] [--profile FILE]

One HttpClient, max_server_conn = --concurrency (0.17's default is 6 per origin, which would queue
the rest). Each chain: client.exchange(), 'response_start' keeps the status, 'response_body'
collects the body, 'response_done' checks it and starts the chain's next exchange; 'error' counts
and retries after 10 ms. HttpClient comes from the facade (`thor.http.HttpClient`, as in 0.17)
when it exists, else from `thor.http.client`.
"""

from __future__ import annotations

import sys

from _clientcommon import Meter, parse_args, perf, profiled

import thor.loop

try:
    from thor.http import HttpClient  # type: ignore[attr-defined]
except ImportError:
    from thor.http.client import HttpClient


def run(a, m: Meter) -> None:
    client = HttpClient()
    client.max_server_conn = a.concurrency
    url = a.url.encode("ascii")
    running = [a.concurrency]

    def chain_ends() -> None:
        running[0] -= 1
        if running[0] == 0:
            thor.loop.stop()

    def request() -> None:
        exchange = client.exchange()
        started = perf()
        status = [0]
        body: list[bytes] = []

        def response_start(code: bytes, phrase: bytes, headers: list) -> None:
            status[0] = int(code)

        def response_done(trailers: list) -> None:
            if m.done(started, status[0], b"".join(body)):
                request()
            else:
                chain_ends()

        def error(err: object) -> None:
            m.error(err)
            if m.going():
                thor.loop.schedule(0.01, request)
            else:
                chain_ends()

        exchange.on("response_start", response_start)
        exchange.on("response_body", body.append)
        exchange.on("response_done", response_done)
        exchange.on("error", error)
        exchange.request_start(b"GET", url, [])
        exchange.request_done([])

    def safety_net() -> None:
        m.give_up(running[0])
        thor.loop.stop()

    for _ in range(a.concurrency):
        request()
    thor.loop.schedule(m.deadline - perf(), safety_net)
    thor.loop.run()


def main() -> None:
    a = parse_args(__doc__)
    m = Meter(a)
    profiled(a, lambda: run(a, m))
    module = sys.modules[HttpClient.__module__]
    m.report("thor", module=module.__file__, facade=HttpClient.__module__ == "thor.http")


if __name__ == "__main__":
    main()
