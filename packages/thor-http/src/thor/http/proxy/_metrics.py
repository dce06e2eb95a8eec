"""ProxyMetrics: a proxy's counters, latency histograms and gauges, in the Prometheus format.

Theory of operation
-------------------
The proxy emits one ``AccessRecord`` per request (``'access'``); ``ProxyMetrics.observe`` folds
each record into plain Python numbers: a dict increment per counter, a ``bisect`` and a list
increment per histogram. Nothing on that path takes a lock or touches prometheus-client: the
numbers become metric families only when they are scraped, in ``collect`` (a prometheus-client
custom collector, registered in a ``CollectorRegistry``), and prometheus-client writes the
exposition (``generate_latest``). The loop is single-threaded, so plain numbers are safe; a
scrape from another thread (``prometheus_client.start_http_server``) reads copies, and at worst
sees a record half-counted.

Why not prometheus-client's ``Counter``/``Histogram`` objects: each update takes a lock and,
with labels, looks up a child through validation code. Measured per record updating every
metric below (timeit, CPython 3.11, the development machine): 7.9 µs with those objects, 0.9 µs
here (1.4 µs with the ``'access'`` emit) -- against a proxy's budget of some 50 µs per request,
14% versus 2%. The exposition is still prometheus-client's own.

Label values are bounded, whatever the clients send: methods other than the standard ones count
as ``"other"``; upstreams and error reasons beyond ``max_label_values`` distinct values count as
``"other"`` (a forward proxy's upstreams are chosen by its clients).

prometheus-client is an optional dependency (the ``metrics`` extra): it is imported when a
ProxyMetrics is made, so this module imports without it.

Metrics (each name follows the ``prefix``, ``thor_proxy`` by default):

================================  =========  ===================================================
name                              type       what
================================  =========  ===================================================
``_requests_total``               counter    requests, by ``method`` and ``status_class``
                                             (``"2xx"``...; ``"none"``: no response was sent)
``_request_body_bytes_total``     counter    request body bytes from clients
``_response_body_bytes_total``    counter    response body bytes to clients
``_upstream_requests_total``      counter    requests sent to each ``upstream``
``_upstream_errors_total``        counter    failed exchanges, by ``reason`` (the record's
                                             ``error`` up to any `` (detail)``, 64 characters)
``_request_duration_seconds``     histogram  request head received to response done
``_upstream_connect_seconds``     histogram  until the upstream connection was ready
``_upstream_first_byte_seconds``  histogram  until the upstream's response head
``_open_connections``             gauge      client connections open
``_queue_depth``                  gauge      requests waiting for an upstream
================================  =========  ===================================================
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .._server import HttpServer

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

    from thor.events import EventEmitter
    from thor.loop import LoopBase

    from .._server_exchange import HttpServerExchange
    from ._access_log import AccessRecord

__all__ = ["DEFAULT_BUCKETS", "GaugeValue", "ProxyMetrics", "merge_expositions"]

#: histogram bucket bounds, in seconds: from half a millisecond (a proxy on loopback) to a minute
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

_METHODS = frozenset(
    (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH")
)
_OTHER = b"other"


def _require_prometheus() -> Any:
    """The prometheus_client module, or an ImportError that names the extra to install."""
    try:
        # optional dependency, imported when used
        import prometheus_client  # noqa: PLC0415
        import prometheus_client.metrics_core  # noqa: PLC0415
        import prometheus_client.utils  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError(
            "thor.http.proxy.ProxyMetrics needs prometheus-client: pip install thor-http[metrics]"
        ) from exc
    return prometheus_client


def _reason(error: str) -> str:
    """The label value for an error reason: without its parenthesised detail (an address, a
    message), at most 64 characters."""
    return error.partition(" (")[0][:64]


def _queued(selector: object) -> int:
    """Requests waiting in ``selector``: its ``queued`` (an UpstreamGroup), or the sum over its
    ``groups()`` (a Router); 0 for anything else."""
    queued = getattr(selector, "queued", None)
    if isinstance(queued, int):
        return queued
    groups = getattr(selector, "groups", None)
    if callable(groups):
        return sum(_queued(group) for group in groups())
    return 0


class GaugeValue:
    """A gauge's value, kept by the proxy (``set``/``inc``/``dec``) or read from a function at
    each scrape (``set_function``), like prometheus-client's ``Gauge`` without the lock.

    Args:
        value: the initial value.
    """

    __slots__ = ("_function", "_value")

    def __init__(self, value: float = 0) -> None:
        self._value = value
        self._function: Callable[[], float] | None = None

    def set(self, value: float) -> None:
        """Make the value ``value`` (and forget any function)."""
        self._function = None
        self._value = value

    def inc(self, amount: float = 1) -> None:
        """Add ``amount``."""
        self._value += amount

    def dec(self, amount: float = 1) -> None:
        """Subtract ``amount``."""
        self._value -= amount

    def set_function(self, function: Callable[[], float] | None) -> None:
        """Read the value from ``function()`` at each scrape from now on (None: stop)."""
        self._function = function

    @property
    def has_source(self) -> bool:
        """True when the value was set, changed, or given a function."""
        return self._function is not None or self._value != 0

    def get(self) -> float:
        """The current value (the function's result when there is one)."""
        function = self._function
        return float(function() if function is not None else self._value)


class _Histogram:
    """Observation counts per bucket (not cumulative), their sum, and the bounds."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value


class ProxyMetrics:
    """Counters, latency histograms and gauges of a proxy, exposed in the Prometheus text
    format (see the module docstring for the list).

    Use::

        metrics = ProxyMetrics()
        metrics.attach(proxy)        # counts every 'access' record; wires the gauges
        admin = metrics.serve_admin("127.0.0.1", 9100)           # GET /metrics

    ``open_connections`` and ``queue_depth`` are ``GaugeValue``s: the proxy (or the application)
    either keeps them up to date with ``inc()``/``dec()``/``set()``, or gives each a function
    read at every scrape with ``set_function()`` (which costs nothing per request), e.g.
    ``metrics.queue_depth.set_function(lambda: group.queued)``. ``attach`` does the latter for
    a ReverseProxy or ForwardProxy by itself (see there) when the gauge has no source yet.

    Args:
        registry: the prometheus-client ``CollectorRegistry`` to register in; None makes a new
            one (``registry`` attribute), so that several ProxyMetrics never clash. Pass
            ``prometheus_client.REGISTRY`` to share the process-wide one (and its process
            metrics).
        prefix: the first part of every metric name.
        buckets: the histograms' bucket bounds in seconds, increasing (``DEFAULT_BUCKETS``).
        max_label_values: distinct upstreams, and distinct error reasons, counted under their
            own label value; more count as ``"other"`` (100).

    Raises:
        ImportError: prometheus-client is not installed (``pip install thor-http[metrics]``).
        ValueError: ``buckets`` is empty or not increasing.

    Attributes:
        registry: the CollectorRegistry the metrics are in.
        open_connections: GaugeValue of ``<prefix>_open_connections``.
        queue_depth: GaugeValue of ``<prefix>_queue_depth``.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        prefix: str = "thor_proxy",
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        max_label_values: int = 100,
    ) -> None:
        prometheus_client = _require_prometheus()
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ValueError("buckets must be distinct and increasing")
        self.prefix = prefix
        self.max_label_values = max_label_values
        self.open_connections = GaugeValue()
        self.queue_depth = GaugeValue()
        self._requests: dict[tuple[bytes, int], int] = {}
        self._bytes_in = 0
        self._bytes_out = 0
        self._upstreams: dict[str, int] = {}
        self._errors: dict[str, int] = {}
        self._total = _Histogram(buckets)
        self._connect = _Histogram(buckets)
        self._first_byte = _Histogram(buckets)
        self._attached: list[EventEmitter] = []
        if registry is None:
            registry = prometheus_client.CollectorRegistry()
        self.registry: CollectorRegistry = registry
        registry.register(self)

    # -- the hot path -----------------------------------------------------------------------------

    def observe(self, record: AccessRecord) -> None:
        """Count one request (the ``'access'`` listener ``attach`` adds)."""
        method = record.method
        key = (method if method in _METHODS else _OTHER, record.status)
        requests = self._requests
        requests[key] = requests.get(key, 0) + 1
        self._bytes_in += record.bytes_in
        self._bytes_out += record.bytes_out
        upstream = record.upstream
        if upstream is not None:
            self._count_label(self._upstreams, upstream)
        error = record.error
        if error is not None:
            self._count_label(self._errors, _reason(error))
        value = record.total_time
        if value is not None:
            self._total.observe(value)
        value = record.connect_time
        if value is not None:
            self._connect.observe(value)
        value = record.first_byte_time
        if value is not None:
            self._first_byte.observe(value)

    def _count_label(self, counts: dict[str, int], value: str) -> None:
        if value in counts:
            counts[value] += 1
        elif len(counts) < self.max_label_values:
            counts[value] = 1
        else:
            counts["other"] = counts.get("other", 0) + 1

    # -- wiring ---------------------------------------------------------------------------------

    def attach(self, emitter: EventEmitter) -> None:
        """Count the ``'access'`` records ``emitter`` (a proxy) emits.

        Gauges that have no source yet are wired to what a ``ReverseProxy`` or
        ``ForwardProxy`` shows, read at each scrape: ``open_connections`` to
        ``len(emitter.server.connections)`` when there is such a server; ``queue_depth`` to the
        requests queued in ``emitter.selector`` (an UpstreamGroup's ``queued``, summed over a
        Router's ``groups()``; the selector is looked up at each scrape, so replacing it, as a
        configuration reload does, is followed) when there is one.
        """
        emitter.on("access", self.observe)
        self._attached.append(emitter)
        server = getattr(emitter, "server", None)
        connections = getattr(server, "connections", None)
        if connections is not None and not self.open_connections.has_source:
            self.open_connections.set_function(lambda: len(connections))
        if hasattr(emitter, "selector") and not self.queue_depth.has_source:
            self.queue_depth.set_function(lambda: _queued(getattr(emitter, "selector", None)))

    def detach(self, emitter: EventEmitter) -> None:
        """Stop counting ``emitter``'s records."""
        if emitter in self._attached:
            self._attached.remove(emitter)
            emitter.remove_listener("access", self.observe)

    # -- exposition -----------------------------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        """The metric families, for the registry's name-clash check (prometheus-client)."""
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        """The metric families with their current values (called by prometheus-client at each
        scrape)."""
        core = _require_prometheus().metrics_core
        prefix = self.prefix
        requests = core.CounterMetricFamily(
            f"{prefix}_requests",
            "Requests received, by method and response status class.",
            labels=("method", "status_class"),
        )
        by_labels: dict[tuple[str, str], int] = {}
        for (method, status), count in list(self._requests.items()):
            labels = (method.decode("latin-1"), f"{status // 100}xx" if status else "none")
            by_labels[labels] = by_labels.get(labels, 0) + count
        for labels, count in sorted(by_labels.items()):
            requests.add_metric(labels, count)
        yield requests
        yield core.CounterMetricFamily(
            f"{prefix}_request_body_bytes",
            "Request body bytes received from clients.",
            value=self._bytes_in,
        )
        yield core.CounterMetricFamily(
            f"{prefix}_response_body_bytes",
            "Response body bytes sent to clients.",
            value=self._bytes_out,
        )
        yield self._labelled(
            core,
            "upstream_requests",
            "Requests sent to each upstream.",
            "upstream",
            self._upstreams,
        )
        yield self._labelled(
            core,
            "upstream_errors",
            "Exchanges that failed, by reason (upstream unreachable, timeout, bad response...).",
            "reason",
            self._errors,
        )
        for name, text, histogram in (
            ("request_duration_seconds", "From request head to response done.", self._total),
            ("upstream_connect_seconds", "Until the upstream connection was ready.", self._connect),
            ("upstream_first_byte_seconds", "Until the upstream response head.", self._first_byte),
        ):
            yield self._histogram(core, name, text, histogram)
        for name, text, gauge in (
            ("open_connections", "Client connections open.", self.open_connections),
            ("queue_depth", "Requests waiting for an upstream.", self.queue_depth),
        ):
            yield core.GaugeMetricFamily(f"{prefix}_{name}", text, value=gauge.get())

    def _labelled(self, core: Any, name: str, text: str, label: str, counts: dict[str, int]) -> Any:
        family = core.CounterMetricFamily(f"{self.prefix}_{name}", text, labels=(label,))
        for value, count in sorted(list(counts.items())):
            family.add_metric((value,), count)
        return family

    def _histogram(self, core: Any, name: str, text: str, histogram: _Histogram) -> Any:
        family = core.HistogramMetricFamily(f"{self.prefix}_{name}", text)
        go_float = _require_prometheus().utils.floatToGoString
        buckets = []
        running = 0
        counts = list(histogram.counts)
        for bound, count in zip((*histogram.bounds, float("inf")), counts, strict=True):
            running += count
            buckets.append((go_float(bound), running))
        family.add_metric((), buckets, histogram.total)
        return family

    def exposition(self) -> bytes:
        """The registry's metrics in the Prometheus text format (``generate_latest``)."""
        return bytes(_require_prometheus().generate_latest(self.registry))

    # -- the admin listener ---------------------------------------------------------------------

    def serve_admin(self, host: str | bytes, port: int, loop: LoopBase | None = None) -> HttpServer:
        """Serve the metrics over HTTP: ``GET /metrics`` (or HEAD) answers the exposition
        (``Content-Type`` prometheus-client's ``CONTENT_TYPE_LATEST``); other methods on it get
        405, other paths 404.

        Args:
            host: the address to listen on (``"127.0.0.1"``; ``""`` for all addresses).
            port: the port (0 picks a free one: see the server's ``port``).
            loop: the loop; the default loop when None.

        Returns:
            The HttpServer (``shutdown()`` it to stop serving).
        """
        content_type = str(_require_prometheus().CONTENT_TYPE_LATEST).encode("ascii")
        server = HttpServer(host.encode("ascii") if isinstance(host, str) else host, port, loop)

        def exchange(ex: HttpServerExchange) -> None:
            ex.on("request_done", lambda trailers: self._answer_admin(ex, content_type))

        server.on("exchange", exchange)
        return server

    def _answer_admin(self, ex: HttpServerExchange, content_type: bytes) -> None:
        if not refuse_admin_request(ex):
            metrics_reply(ex, b"200", b"OK", self.exposition(), metrics_headers(content_type))

    def __repr__(self) -> str:
        count = sum(self._requests.values())
        return f"<ProxyMetrics {self.prefix} requests={count}>"


def metrics_headers(content_type: bytes) -> list[tuple[bytes, bytes]]:
    """The fields of a ``200`` exposition answer."""
    return [(b"Content-Type", content_type), (b"Cache-Control", b"no-store")]


def refuse_admin_request(ex: HttpServerExchange) -> bool:
    """Answer a request to an admin listener that is not ``GET``/``HEAD /metrics`` (404, or 405
    with ``Allow``) and return True; return False for a scrape, which the caller answers."""
    if ex.uri.split(b"?", 1)[0] != b"/metrics":
        metrics_reply(ex, b"404", b"Not Found", b"not found: try /metrics\n")
        return True
    if ex.method not in (b"GET", b"HEAD"):
        allow = [(b"Allow", b"GET, HEAD")]
        metrics_reply(ex, b"405", b"Method Not Allowed", b"GET or HEAD only\n", allow)
        return True
    return False


def metrics_reply(
    ex: HttpServerExchange,
    status: bytes,
    phrase: bytes,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """A whole answer from an admin listener: ``headers`` (plain text when they name no
    Content-Type), a Content-Length, and the body unless the request was a HEAD."""
    fields = list(headers or [])
    if not any(name == b"Content-Type" for name, _ in fields):
        fields.append((b"Content-Type", b"text/plain; charset=utf-8"))
    fields.append((b"Content-Length", b"%d" % len(body)))
    ex.response_start(status, phrase, fields)
    if ex.method != b"HEAD":
        ex.response_body(body)
    ex.response_done([])


#: the kinds of metric a process that is gone still counts for (a gauge is its present state)
_CUMULATIVE = frozenset(("counter", "histogram", "summary"))


def merge_expositions(texts: Sequence[str], retired: Sequence[str] = ()) -> bytes:
    """Several processes' expositions (Prometheus text format) as one: the samples of the same
    name and labels added up (counters, gauges such as open connections or queue depth, and
    histogram buckets, sums and counts all add across processes); a family's help and type are
    the first text's. ``retired``: expositions of processes that are gone, of which only the
    cumulative families (counters, histograms, summaries) are added, so that totals never go
    down when a process is replaced. Used by ``thor proxy --workers N --admin``.

    Raises:
        ImportError: prometheus-client is not installed (the ``metrics`` extra).
        ValueError: a text is not in the Prometheus text format.
    """
    prometheus = _require_prometheus()
    import prometheus_client.parser  # noqa: PLC0415 - optional dependency, imported when used

    families: dict[str, Any] = {}
    sums: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    sources = [(text, False) for text in texts] + [(text, True) for text in retired]
    for text, gone in sources:
        for family in prometheus_client.parser.text_string_to_metric_families(text):
            if gone and family.type not in _CUMULATIVE:
                continue
            if family.name not in families:
                families[family.name] = family
                sums[family.name] = {}
            samples = sums[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                samples[key] = samples.get(key, 0.0) + sample.value

    class _Merged:
        def collect(self) -> Iterator[Metric]:
            for name, family in families.items():
                merged = prometheus.metrics_core.Metric(name, family.documentation, family.type)
                for (sample_name, labels), value in sums[name].items():
                    merged.add_sample(sample_name, dict(labels), value)
                yield merged

    registry = prometheus.CollectorRegistry(auto_describe=False)
    registry.register(_Merged())
    return bytes(prometheus.generate_latest(registry))
