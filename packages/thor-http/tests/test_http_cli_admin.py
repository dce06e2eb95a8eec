"""The supervisor's metrics endpoint (``thor proxy --workers N --admin``: cli/_admin.py): the
sum of the workers' expositions, fetched from their endpoints on 127.0.0.1, with totals that
never go down (a silent worker counts with its last exposition, a replaced one with its last
counters), shared fetches for overlapping scrapes, and 503 when no worker ever answered.

The workers are HttpServers on this test's loop answering canned expositions (or nothing);
the scrapes are made with http.client from a thread while the loop runs.
"""

from __future__ import annotations

import http.client
import threading
from typing import TYPE_CHECKING, Any

import http_server_support as support
from prometheus_client.parser import text_string_to_metric_families

from thor.http.cli._admin import MetricsAggregator
from thor.http.proxy._access_log import AccessRecord
from thor.http.proxy._metrics import ProxyMetrics

if TYPE_CHECKING:
    from http_server_support import Harness

    from thor.http.server import HttpServerExchange

harness = support.harness
REQUESTS = ("thor_proxy_requests_total", (("method", "GET"), ("status_class", "2xx")))
OPEN = ("thor_proxy_open_connections", ())


def exposition(requests: int, open_connections: int) -> bytes:
    metrics = ProxyMetrics()
    for index in range(requests):
        metrics.observe(
            AccessRecord(("127.0.0.1", index), b"GET", b"/", b"1.1", status=200, total_time=0.01)
        )
    metrics.open_connections.set(open_connections)
    return metrics.exposition()


class Worker:
    """A worker's metrics endpoint: answers ``text``, or nothing while ``text`` is None."""

    def __init__(self, harness: Harness, text: bytes | None) -> None:
        self.text = text
        self.hits = 0
        self.server = harness.server(self.handle)

    def handle(self, ex: HttpServerExchange) -> None:
        def done(trailers: Any) -> None:
            self.hits += 1
            text = self.text
            if text is None:
                return  # silent: the aggregator's fetch times out
            ex.response_start(b"200", b"OK", [(b"Content-Length", b"%d" % len(text))])
            ex.response_body(text)
            ex.response_done([])

        ex.on("request_done", done)


def scrape(
    port: int, method: str = "GET", path: str = "/metrics"
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def values(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def make(harness: Harness, workers: dict[int, Worker]) -> MetricsAggregator:
    aggregator = MetricsAggregator(
        b"127.0.0.1",
        0,
        harness.loop,
        lambda: [(slot, worker.server.port) for slot, worker in sorted(workers.items())],
    )
    aggregator.fetch_timeout = 0.5
    harness.servers.append(aggregator.server)
    return aggregator


def test_totals_add_up_and_never_go_down(harness: Harness) -> None:
    workers = {0: Worker(harness, exposition(3, 2)), 1: Worker(harness, exposition(5, 1))}
    aggregator = make(harness, workers)
    port = aggregator.server.port

    def client() -> list[Any]:
        seen: list[Any] = []
        status, headers, body = scrape(port)
        seen.append((status, "x-thor-workers-missing" in headers, values(body)))
        workers[1].text = None  # worker 1 goes silent: its last exposition still counts
        status, headers, body = scrape(port)
        seen.append((status, headers.get("x-thor-workers-missing"), values(body)))
        # worker 1 is replaced: a new process (another port) that has served 1 request
        workers[1] = Worker(harness, exposition(1, 4))
        status, headers, body = scrape(port)
        seen.append((status, "x-thor-workers-missing" in headers, values(body)))
        head = scrape(port, "HEAD")
        seen.append((head[0], head[1].get("content-length"), head[2], len(body)))
        seen.append(scrape(port, "POST")[:2])
        seen.append(scrape(port, "GET", "/other")[0])
        return seen

    first, silent, replaced, head, post, other = harness.client(client)
    assert first[:2] == (200, False)
    assert (first[2][REQUESTS], first[2][OPEN]) == (8.0, 3.0)
    assert silent[:2] == (200, "1")
    assert (silent[2][REQUESTS], silent[2][OPEN]) == (8.0, 3.0)
    assert replaced[:2] == (200, False)
    # the replaced worker's 5 requests still count; its open connections (a gauge) do not
    assert (replaced[2][REQUESTS], replaced[2][OPEN]) == (9.0, 6.0)
    assert head[0] == 200 and head[2] == b"" and int(head[1]) == head[3]
    assert post[0] == 405 and post[1]["allow"] == "GET, HEAD"
    assert other == 404


def test_overlapping_scrapes_share_one_fetch(harness: Harness) -> None:
    worker = Worker(harness, None)  # silent: the first scrape waits for its fetch timeout
    aggregator = make(harness, {0: worker})
    aggregator.fetch_timeout = 2.0  # (long enough for the three threads to overlap)
    port = aggregator.server.port

    def client() -> list[int]:
        results: list[int] = []
        threads = [
            threading.Thread(target=lambda: results.append(scrape(port)[0])) for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        return results

    statuses = harness.client(client)
    assert statuses == [503, 503, 503]  # no worker ever answered
    assert worker.hits <= 2  # three scrapes, not three fetches each (the last may start anew)


def test_no_workers_yet_is_503(harness: Harness) -> None:
    aggregator = make(harness, {})

    def client() -> int:
        return scrape(aggregator.server.port)[0]

    assert harness.client(client) == 503
