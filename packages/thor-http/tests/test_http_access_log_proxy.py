"""Observability end to end on a real ReverseProxy: a front server with the PROXY protocol
enabled relays to an origin on 127.0.0.1; the client's address named by the PROXY header is
the one in the access log lines (common and JSON) and in the metrics scraped from the admin
listener."""

from __future__ import annotations

import http.client
import io
import json
from typing import TYPE_CHECKING, Any

import http_server_support as support
from prometheus_client.parser import text_string_to_metric_families

from thor.http.proxy import ReverseProxy
from thor.http.proxy._access_log import CommonLogWriter, JsonLinesWriter
from thor.http.proxy._metrics import ProxyMetrics

if TYPE_CHECKING:
    from http_server_support import Harness

harness = support.harness


def test_proxied_requests_logged_and_counted_with_the_proxy_protocol_address(
    harness: Harness,
) -> None:
    origin = harness.server(support.hello_handler())
    front = harness.server(proxy_protocol=True)
    proxy = ReverseProxy(front, f"http://127.0.0.1:{origin.port}")
    common, lines = io.StringIO(), io.StringIO()
    proxy.on("access", CommonLogWriter(common, extended=True))
    proxy.on("access", JsonLinesWriter(lines))
    metrics = ProxyMetrics()
    metrics.attach(proxy)
    admin = metrics.serve_admin("127.0.0.1", 0, harness.loop)
    harness.servers.append(admin)
    request = b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\n\r\n"

    def client() -> tuple[list[bytes], str]:
        sock = harness.connect(front)
        sock.sendall(b"PROXY TCP4 203.0.113.7 198.51.100.2 41000 80\r\n" + request + request)
        reader = support.ResponseReader(sock)
        bodies = [reader.read().body, reader.read().body]
        sock.close()
        conn = http.client.HTTPConnection("127.0.0.1", admin.port, timeout=5)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        return bodies, text

    bodies, text = harness.client(client)
    assert bodies == [support.HELLO, support.HELLO]

    upstream = f"127.0.0.1:{origin.port}"
    common_lines = common.getvalue().splitlines()
    assert len(common_lines) == 2
    for line in common_lines:
        assert line.startswith("203.0.113.7 - - [")
        assert f'] "GET /a?b=c HTTP/1.1" 200 13 upstream={upstream} connect=' in line
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert [(r["client"], r["client_port"], r["status"], r["upstream"]) for r in records] == [
        ("203.0.113.7", 41000, 200, upstream)
    ] * 2
    assert all(r["total_ms"] is not None and r["first_byte_ms"] is not None for r in records)

    samples: dict[tuple[str, frozenset[tuple[str, str]]], Any] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    labels = frozenset({("method", "GET"), ("status_class", "2xx")})
    assert samples[("thor_proxy_requests_total", labels)] == 2
    assert samples[("thor_proxy_response_body_bytes_total", frozenset())] == 26
    assert samples[("thor_proxy_upstream_requests_total", frozenset({("upstream", upstream)}))] == 2
    assert samples[("thor_proxy_request_duration_seconds_count", frozenset())] == 2
    assert samples[("thor_proxy_queue_depth", frozenset())] == 0
