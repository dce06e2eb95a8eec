"""ProxyMetrics: records fed through a real EventEmitter's 'access' event, the exposition
fetched from the admin listener (a real thor HttpServer on 127.0.0.1) with http.client and
parsed with prometheus-client's own parser; 404/405 on the admin listener; bounded label
values; the error that names the extra when prometheus-client is missing."""

from __future__ import annotations

import http.client
import sys
from typing import TYPE_CHECKING, Any

import http_server_support as support
import pytest
from prometheus_client.parser import text_string_to_metric_families

from thor.events import EventEmitter
from thor.http.proxy._access_log import AccessRecord
from thor.http.proxy._metrics import ProxyMetrics

if TYPE_CHECKING:
    from http_server_support import Harness

    from thor.http.server import HttpServer

harness = support.harness

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def record(
    *,
    method: bytes = b"GET",
    status: int = 200,
    upstream: str | None = "127.0.0.1:8080",
    total: float | None = 0.003,
    connect: float | None = 0.0004,
    first_byte: float | None = 0.002,
    error: str | None = None,
    bytes_in: int = 0,
    bytes_out: int = 13,
) -> AccessRecord:
    return AccessRecord(
        client=("127.0.0.1", 40000),
        method=method,
        target=b"/",
        version=b"1.1",
        status=status,
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        upstream=upstream,
        connect_time=connect,
        first_byte_time=first_byte,
        total_time=total,
        error=error,
        started=1.0,
    )


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def fetch(
    server: HttpServer, method: str = "GET", path: str = "/metrics"
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


class FakeProxy(EventEmitter):
    """Stands for a proxy: an emitter of 'access' with a ``server``."""

    def __init__(self, server: HttpServer) -> None:
        EventEmitter.__init__(self)
        self.server = server


def test_metrics_from_access_events_served_on_the_admin_listener(harness: Harness) -> None:
    metrics = ProxyMetrics()
    admin = metrics.serve_admin("127.0.0.1", 0, harness.loop)
    harness.servers.append(admin)
    proxy = FakeProxy(admin)
    metrics.attach(proxy)
    metrics.queue_depth.set(3)
    metrics.queue_depth.inc()

    proxy.emit("access", record(bytes_in=5, bytes_out=100))
    proxy.emit("access", record(total=0.0004, first_byte=0.0003, connect=0.0))
    proxy.emit("access", record(method=b"POST", status=201, total=2.0, bytes_in=7))
    proxy.emit("access", record(method=b"BREW", status=418, upstream="10.0.0.2:80", total=None))
    proxy.emit(
        "access",
        record(status=504, error="upstream timeout", first_byte=None, total=30.0, bytes_out=0),
    )
    proxy.emit(
        "access",
        record(status=0, upstream=None, error="client closed", connect=None, first_byte=None),
    )

    status, headers, body = harness.client(lambda: fetch(admin))
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=1.0.0; charset=utf-8"
    samples = parse(body.decode("utf-8"))

    def value(name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    assert value("thor_proxy_requests_total", method="GET", status_class="2xx") == 2
    assert value("thor_proxy_requests_total", method="POST", status_class="2xx") == 1
    assert value("thor_proxy_requests_total", method="other", status_class="4xx") == 1
    assert value("thor_proxy_requests_total", method="GET", status_class="5xx") == 1
    assert value("thor_proxy_requests_total", method="GET", status_class="none") == 1
    assert sum(v for (n, _), v in samples.items() if n == "thor_proxy_requests_total") == 6
    assert value("thor_proxy_request_body_bytes_total") == 12
    assert value("thor_proxy_response_body_bytes_total") == 100 + 13 * 4
    assert value("thor_proxy_upstream_requests_total", upstream="127.0.0.1:8080") == 4
    assert value("thor_proxy_upstream_requests_total", upstream="10.0.0.2:80") == 1
    assert value("thor_proxy_upstream_errors_total", reason="upstream timeout") == 1
    assert value("thor_proxy_upstream_errors_total", reason="client closed") == 1

    # request duration: observed 0.003, 0.0004, 2.0, 30.0, 0.003 (5 of 6 records had one)
    name = "thor_proxy_request_duration_seconds"
    assert value(f"{name}_count") == 5
    assert value(f"{name}_sum") == pytest.approx(0.003 + 0.0004 + 2.0 + 30.0 + 0.003)
    assert value(f"{name}_bucket", le="0.0005") == 1
    assert value(f"{name}_bucket", le="0.005") == 3
    assert value(f"{name}_bucket", le="2.5") == 4
    assert value(f"{name}_bucket", le="30.0") == 5  # a bound is inclusive (le)
    assert value(f"{name}_bucket", le="+Inf") == 5
    name = "thor_proxy_upstream_first_byte_seconds"
    assert value(f"{name}_count") == 4
    assert value(f"{name}_bucket", le="0.0005") == 1
    assert value(f"{name}_bucket", le="0.0025") == 4
    name = "thor_proxy_upstream_connect_seconds"
    assert value(f"{name}_count") == 5
    assert value(f"{name}_bucket", le="0.0005") == 5

    assert value("thor_proxy_queue_depth") == 4
    # attach() wired the gauge to the server's connections: the scrape's own one
    assert value("thor_proxy_open_connections") == 1


def test_admin_listener_other_paths_and_methods(harness: Harness) -> None:
    metrics = ProxyMetrics()
    admin = metrics.serve_admin(b"127.0.0.1", 0, harness.loop)
    harness.servers.append(admin)

    def client() -> list[tuple[int, dict[str, str], bytes]]:
        return [
            fetch(admin, "GET", "/"),
            fetch(admin, "POST", "/metrics"),
            fetch(admin, "HEAD", "/metrics"),
            fetch(admin, "GET", "/metrics?x=1"),
        ]

    missing, post, head, query = harness.client(client)
    assert missing[0] == 404
    assert post[0] == 405
    assert post[1]["Allow"] == "GET, HEAD"
    assert head[0] == 200
    assert head[2] == b""
    assert int(head[1]["Content-Length"]) > 0
    assert query[0] == 200
    assert ("thor_proxy_requests_total", frozenset()) not in parse(query[2].decode())
    assert b"# TYPE thor_proxy_requests_total counter" in query[2]


def test_label_values_are_bounded_and_detach_stops_counting() -> None:
    metrics = ProxyMetrics(max_label_values=2, prefix="edge")
    emitter = EventEmitter()
    metrics.attach(emitter)
    for upstream in ("a:1", "b:2", "c:3", "d:4", "a:1"):
        emitter.emit("access", record(upstream=upstream, error=f"failed at {upstream}"))
    metrics.detach(emitter)
    emitter.emit("access", record())
    samples = parse(metrics.exposition().decode())
    upstreams = {
        dict(labels)["upstream"]: v
        for (n, labels), v in samples.items()
        if n == "edge_upstream_requests_total"
    }
    assert upstreams == {"a:1": 2, "b:2": 1, "other": 2}
    reasons = {
        dict(labels)["reason"]: v
        for (n, labels), v in samples.items()
        if n == "edge_upstream_errors_total"
    }
    assert reasons == {"failed at a:1": 2, "failed at b:2": 1, "other": 2}
    assert (
        samples[("edge_requests_total", frozenset({("method", "GET"), ("status_class", "2xx")}))]
        == 5
    )
    assert emitter.listener_count("access") == 0


def test_gauge_function_and_shared_registry() -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    first = ProxyMetrics(registry, prefix="one")
    second = ProxyMetrics(registry, prefix="two")
    depth = [7]
    first.queue_depth.set_function(lambda: depth[0])
    second.open_connections.inc(3)
    second.open_connections.dec()
    depth[0] = 9
    samples = parse(first.exposition().decode())
    assert samples[("one_queue_depth", frozenset())] == 9
    assert samples[("two_open_connections", frozenset())] == 2
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        ProxyMetrics(registry, prefix="one")
    with pytest.raises(ValueError, match="increasing"):
        ProxyMetrics(buckets=(1.0, 0.5))


def test_missing_prometheus_client_names_the_extra(monkeypatch: Any) -> None:
    for name in list(sys.modules):
        if name == "prometheus_client" or name.startswith("prometheus_client."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match=r"pip install thor-http\[metrics\]"):
        ProxyMetrics()


class Group:
    def __init__(self, queued: int) -> None:
        self.queued = queued


class RouterLike:
    def __init__(self, *groups: Group) -> None:
        self._groups = list(groups)

    def groups(self) -> list[Group]:
        return self._groups


def test_attach_wires_queue_depth_to_the_selector_followed_on_reload() -> None:
    metrics = ProxyMetrics()
    proxy = EventEmitter()
    proxy.selector = RouterLike(Group(2), Group(3))  # type: ignore[attr-defined]
    metrics.attach(proxy)
    assert parse(metrics.exposition().decode())[("thor_proxy_queue_depth", frozenset())] == 5
    proxy.selector = Group(4)  # type: ignore[attr-defined]  # a reload replaced it
    assert parse(metrics.exposition().decode())[("thor_proxy_queue_depth", frozenset())] == 4
    proxy.selector = lambda px, ready: None  # type: ignore[attr-defined]  # a plain callable
    assert parse(metrics.exposition().decode())[("thor_proxy_queue_depth", frozenset())] == 0
    # a gauge given a source first is left alone
    other = ProxyMetrics()
    other.queue_depth.set(9)
    other.attach(proxy)
    assert parse(other.exposition().decode())[("thor_proxy_queue_depth", frozenset())] == 9


def test_error_reasons_lose_their_detail() -> None:
    metrics = ProxyMetrics()
    for error in (
        "upstream: Read timeout (no response after 30 s)",
        "upstream: Read timeout (no response after 31 s)",
        "queue timeout",
        "x" * 100,
    ):
        metrics.observe(record(error=error))
    reasons = {
        dict(labels)["reason"]: v
        for (n, labels), v in parse(metrics.exposition().decode()).items()
        if n == "thor_proxy_upstream_errors_total"
    }
    assert reasons == {"upstream: Read timeout": 2, "queue timeout": 1, "x" * 64: 1}


def test_merge_expositions_adds_up_every_sample() -> None:
    from thor.http.proxy._metrics import merge_expositions

    texts = []
    for requests, latency in ((3, 0.002), (5, 0.2)):
        metrics = ProxyMetrics()
        for index in range(requests):
            metrics.observe(
                AccessRecord(
                    ("127.0.0.1", 1000 + index),
                    b"GET",
                    b"/",
                    b"1.1",
                    status=200,
                    bytes_out=10,
                    upstream="127.0.0.1:8000",
                    first_byte_time=latency,
                    total_time=latency,
                )
            )
        metrics.open_connections.set(requests)
        texts.append(metrics.exposition().decode())
    merged = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(merge_expositions(texts).decode())
        for sample in family.samples
    }
    requests_2xx = ("thor_proxy_requests_total", (("method", "GET"), ("status_class", "2xx")))
    assert merged[requests_2xx] == 8.0
    assert merged[("thor_proxy_open_connections", ())] == 8.0
    buckets = {
        labels: value
        for (name, labels), value in merged.items()
        if name == "thor_proxy_request_duration_seconds_bucket"
    }
    assert buckets[(("le", "0.0025"),)] == 3.0  # the first process's 3 fast requests
    assert buckets[(("le", "+Inf"),)] == 8.0
    families = {
        f.name: f.type for f in text_string_to_metric_families(merge_expositions(texts).decode())
    }
    assert families["thor_proxy_requests"] == "counter"
    assert families["thor_proxy_request_duration_seconds"] == "histogram"
    with pytest.raises(ValueError):
        merge_expositions(["this is not { an exposition"])
