"""The supervisor's metrics endpoint for ``thor proxy --workers N --admin ADDR:PORT``.

Each worker serves its own metrics on a free 127.0.0.1 port, which it reports to the supervisor
with its ``ready`` line (``_common.WorkerPipes``). ``GET /metrics`` on the admin address makes
the supervisor fetch every ready worker's exposition at once (an ``HttpClient`` on the
supervisor's loop, at most ``fetch_timeout`` seconds each) and answer their sum
(``thor.http.proxy._metrics.merge_expositions``): one endpoint for the whole service.

Totals never go down (Prometheus would read that as a counter reset):

- a worker that does not answer in time counts with the last exposition it gave (the answer
  says how many were missing in ``X-Thor-Workers-Missing``);
- a worker that was replaced (its slot now reports another port, or it is gone) keeps counting
  with its last counters and histograms (not its gauges: those were its present state), summed
  into one "retired" exposition so that memory does not grow with restarts.

Scrapes that arrive while one is fetching share its result (a scraper cannot make the workers
build more expositions than one per ``fetch_timeout``). No worker has ever answered: 503.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..client import HttpClient
from ..proxy._metrics import (
    _require_prometheus,
    merge_expositions,
    metrics_headers,
    metrics_reply,
    refuse_admin_request,
)
from ..server import HttpServer

if TYPE_CHECKING:
    from thor.loop import LoopBase

    from ..client import HttpClientExchange
    from ..server import HttpServerExchange

__all__ = ["MetricsAggregator"]

#: a worker slot (its index) and the port of its metrics endpoint
WorkerPorts = Callable[[], list[tuple[int, int]]]


class MetricsAggregator:
    """Serves ``GET /metrics`` (and HEAD) on ``host``:``port``: the sum of the workers' metrics.

    Args:
        host, port: the admin address (port 0: a free one, see ``server.port``).
        loop: the supervisor's loop.
        worker_ports: called for each scrape; ``(slot, port)`` of every worker ready now.

    Settings:
        fetch_timeout: seconds a worker has to answer a scrape (5.0), read at each scrape.

    Raises:
        OSError: the address cannot be listened on.
        ImportError: prometheus-client is missing (the ``metrics`` extra).
    """

    fetch_timeout: float = 5.0

    def __init__(self, host: bytes, port: int, loop: LoopBase, worker_ports: WorkerPorts) -> None:
        self.content_type = str(_require_prometheus().CONTENT_TYPE_LATEST).encode("ascii")
        self.worker_ports = worker_ports
        self.client = HttpClient(loop)
        self.client.connect_attempts = 1
        self.server = HttpServer(host, port, loop)
        self.server.on("exchange", self._exchange)
        self._last: dict[int, tuple[int, str]] = {}  # slot -> (port, its last exposition)
        self._retired: list[str] = []  # at most one: the sum of replaced workers' counters
        self._waiting: list[HttpServerExchange] | None = None  # scrapes the fetch will answer

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.client.close()

    def _exchange(self, ex: HttpServerExchange) -> None:
        ex.on("request_done", lambda trailers: self._answer(ex))

    def _answer(self, ex: HttpServerExchange) -> None:
        if refuse_admin_request(ex):
            return
        if self._waiting is not None:  # a fetch is under way: its result answers this too
            self._waiting.append(ex)
            return
        self._waiting = [ex]
        workers = self.worker_ports()
        got: dict[int, tuple[int, str]] = {}
        pending = [len(workers)]

        def one_done(slot: int, port: int, text: str | None) -> None:
            if text is not None:
                got[slot] = (port, text)
            pending[0] -= 1
            if pending[0] == 0:
                self._complete(workers, got)

        if not workers:
            self._complete(workers, got)
            return
        timeout = self.fetch_timeout
        client = self.client
        client.connect_timeout = client.read_timeout = client.total_timeout = timeout
        for slot, port in workers:
            self._fetch(slot, port, one_done)

    def _fetch(self, slot: int, port: int, done: Callable[[int, int, str | None], None]) -> None:
        cx: HttpClientExchange = self.client.exchange()
        body: list[bytes] = []
        status = [b""]

        def response_start(code: bytes, phrase: bytes, headers: object) -> None:
            status[0] = code

        def response_done(trailers: object) -> None:
            ok = status[0] == b"200"
            done(slot, port, b"".join(body).decode("utf-8", "replace") if ok else None)

        cx.on("response_start", response_start)
        cx.on("response_body", body.append)
        cx.on("response_done", response_done)
        cx.on("error", lambda err: done(slot, port, None))
        cx.request_start(b"GET", b"http://127.0.0.1:%d/metrics" % port, [])
        cx.request_done([])

    def _complete(self, workers: list[tuple[int, int]], got: dict[int, tuple[int, str]]) -> None:
        """Every fetch is over: update the history, answer every waiting scrape."""
        waiting, self._waiting = self._waiting or [], None
        current = dict(workers)
        replaced = []
        for slot, (port, text) in list(self._last.items()):
            if current.get(slot) != port:  # that worker is gone, or its slot has a new one
                replaced.append(text)
                del self._last[slot]
        self._last.update(got)
        try:
            if replaced:
                retired = merge_expositions([], [*self._retired, *replaced])
                self._retired = [retired.decode("utf-8")]
            texts = [text for _, text in self._last.values()]
            if not texts and not self._retired:
                body = None
            else:
                body = merge_expositions(texts, self._retired)
        except ValueError as exc:
            for ex in waiting:
                message = f"a worker's metrics: {exc}\n".encode()
                metrics_reply(ex, b"502", b"Bad Gateway", message)
            return
        missing = len(workers) - len(got)
        for ex in waiting:
            if body is None:
                metrics_reply(ex, b"503", b"Service Unavailable", b"no worker answered\n")
                continue
            headers = metrics_headers(self.content_type)
            if missing:
                headers.append((b"X-Thor-Workers-Missing", b"%d" % missing))
            metrics_reply(ex, b"200", b"OK", body, headers)
