"""The supervisor's metrics endpoint for ``thor proxy --workers N --admin ADDR:PORT``.

Each worker serves its own metrics on a free 127.0.0.1 port, which it reports to the supervisor
with its ``ready`` line (``_common.WorkerPipes``). ``GET /metrics`` on the admin address makes
the supervisor fetch every ready worker's exposition at once (an ``HttpClient`` on the
supervisor's loop, ``fetch_timeout`` seconds each) and answer their sum
(``thor.http.proxy._metrics.merge_expositions``): one endpoint for the whole service, as if it
were one process. A worker that does not answer in time is left out of that sum, and the
answer says so in an ``X-Thor-Workers-Missing`` field; if none answers, 503.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..client import HttpClient
from ..server import HttpServer

if TYPE_CHECKING:
    from thor.loop import LoopBase

    from ..client import HttpClientExchange
    from ..server import HttpServerExchange

__all__ = ["MetricsAggregator"]


class MetricsAggregator:
    """Serves ``GET /metrics`` on ``host``:``port``: the sum of the workers' metrics.

    Args:
        host, port: the admin address (port 0: a free one, see ``server.port``).
        loop: the supervisor's loop.
        worker_ports: called for each scrape; the workers' internal metrics ports.

    Raises:
        OSError: the address cannot be listened on.
        ImportError: prometheus-client is missing (the ``metrics`` extra).
    """

    fetch_timeout: float = 5.0

    def __init__(
        self, host: bytes, port: int, loop: LoopBase, worker_ports: Callable[[], list[int]]
    ) -> None:
        from ..proxy._metrics import _require_prometheus  # noqa: PLC0415 - optional extra

        self.content_type = str(_require_prometheus().CONTENT_TYPE_LATEST).encode("ascii")
        self.worker_ports = worker_ports
        self.client = HttpClient(loop)
        self.client.total_timeout = self.fetch_timeout
        self.client.connect_attempts = 1
        self.server = HttpServer(host, port, loop)
        self.server.on("exchange", self._exchange)

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.client.close()

    def _exchange(self, ex: HttpServerExchange) -> None:
        ex.on("request_done", lambda trailers: self._answer(ex))

    def _answer(self, ex: HttpServerExchange) -> None:
        path = ex.uri.split(b"?", 1)[0]
        if path != b"/metrics":
            _reply(ex, b"404", b"Not Found", b"not found: try /metrics\n")
            return
        if ex.method not in (b"GET", b"HEAD"):
            _reply(ex, b"405", b"Method Not Allowed", b"GET or HEAD only\n", [(b"Allow", b"GET")])
            return
        ports = self.worker_ports()
        texts: list[str] = []
        pending = [len(ports)]

        def one_done(text: str | None) -> None:
            if text is not None:
                texts.append(text)
            pending[0] -= 1
            if pending[0] == 0:
                self._reply_sum(ex, texts, len(ports) - len(texts))

        if not ports:
            self._reply_sum(ex, texts, 0)
            return
        for port in ports:
            self._fetch(port, one_done)

    def _fetch(self, port: int, done: Callable[[str | None], None]) -> None:
        cx: HttpClientExchange = self.client.exchange()
        body: list[bytes] = []
        status = [b""]

        def response_start(code: bytes, phrase: bytes, headers: object) -> None:
            status[0] = code

        def response_done(trailers: object) -> None:
            done(b"".join(body).decode("utf-8", "replace") if status[0] == b"200" else None)

        cx.on("response_start", response_start)
        cx.on("response_body", body.append)
        cx.on("response_done", response_done)
        cx.on("error", lambda err: done(None))
        cx.request_start(b"GET", b"http://127.0.0.1:%d/metrics" % port, [])
        cx.request_done([])

    def _reply_sum(self, ex: HttpServerExchange, texts: list[str], missing: int) -> None:
        from ..proxy._metrics import merge_expositions  # noqa: PLC0415 - optional extra

        if not texts:
            _reply(ex, b"503", b"Service Unavailable", b"no worker answered\n")
            return
        try:
            body = merge_expositions(texts)
        except ValueError as exc:
            _reply(ex, b"502", b"Bad Gateway", f"a worker's metrics: {exc}\n".encode())
            return
        headers = [(b"Content-Type", self.content_type), (b"Cache-Control", b"no-store")]
        if missing:
            headers.append((b"X-Thor-Workers-Missing", b"%d" % missing))
        _reply(ex, b"200", b"OK", body, headers, content_type=None)


def _reply(
    ex: HttpServerExchange,
    status: bytes,
    phrase: bytes,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    content_type: bytes | None = b"text/plain; charset=utf-8",
) -> None:
    fields = list(headers or [])
    if content_type is not None:
        fields.append((b"Content-Type", content_type))
    fields.append((b"Content-Length", b"%d" % len(body)))
    ex.response_start(status, phrase, fields)
    if ex.method != b"HEAD":
        ex.response_body(body)
    ex.response_done([])
