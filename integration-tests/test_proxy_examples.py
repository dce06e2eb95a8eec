"""The proxy examples (examples/proxy_*.py), each run as a process in front of origins started
here (stdlib http.server on 127.0.0.1 ephemeral ports), checked with real requests, then
stopped with SIGTERM (graceful: exit status 0)."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


class OriginHandler(BaseHTTPRequestHandler):
    """Answers ``hello from <name> <path>`` (text/plain), echoing a few request fields back as
    ``X-Seen-*``; POST bodies are echoed. Counts requests per path on the server."""

    protocol_version = "HTTP/1.1"
    server: Origin

    def do_GET(self) -> None:
        self.answer(f"hello from {self.server.name} {self.path}".encode())

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.answer(self.rfile.read(length))

    def answer(self, body: bytes) -> None:
        with self.server.lock:
            self.server.hits[self.path] = self.server.hits.get(self.path, 0) + 1
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Powered-By", "stdlib")
        for name in ("X-Request-Id", "Cookie", "Via", "X-Forwarded-For"):
            self.send_header(f"X-Seen-{name}", self.headers.get(name, "-"))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Origin(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), OriginHandler)
        self.name = name
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin("origin")
    yield server
    server.stop()


class Example:
    """An example process; ``port`` is where it listens."""

    def __init__(self, name: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / name), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", first)
        if match is None:
            self.process.kill()
            _, err = self.process.communicate(timeout=10)
            pytest.fail(f"{name} did not start: {first!r} {err}")
        self.port = int(match.group(1))

    def get(self, path: str, method: str = "GET", body: bytes | None = None, **headers: str) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=30)
        assert self.process.returncode == 0, err
        return out


def test_proxy_reverse(origin: Origin) -> None:
    example = Example("proxy_reverse.py", "--upstream", origin.url)
    try:
        status, headers, body = example.get("/hello?x=1")
        post = example.get("/echo", "POST", b"posted body")
    finally:
        out = example.stop()
    assert status == 200 and body == b"hello from origin /hello?x=1"
    assert headers["Via"] == "1.1 thor"
    assert headers["X-Seen-Via"] == "1.1 thor" and headers["X-Seen-X-Forwarded-For"] == "127.0.0.1"
    assert post[0] == 200 and post[2] == b"posted body"
    assert '"GET /hello?x=1 HTTP/1.1" 200 28 upstream=127.0.0.1:' in out
    assert '"POST /echo HTTP/1.1" 200 11' in out


def test_proxy_forward(origin: Origin) -> None:
    port = origin.server_address[1]
    example = Example("proxy_forward.py", "--connect-port", str(port))
    try:
        status, _headers, body = example.get(f"http://127.0.0.1:{port}/via-proxy")
        # CONNECT to the origin's port, then plain HTTP through the tunnel
        sock = socket.create_connection(("127.0.0.1", example.port), timeout=10)
        with sock:
            sock.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = sock.recv(4096)
            sock.sendall(b"GET /tunnelled HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        refused = socket.create_connection(("127.0.0.1", example.port), timeout=10)
        with refused:
            refused.sendall(b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\n\r\n")
            refused_head = refused.recv(4096)
    finally:
        out = example.stop()
    assert status == 200 and body == b"hello from origin /via-proxy"
    assert head.startswith(b"HTTP/1.1 200 ")
    assert data.startswith(b"HTTP/1.0 200 ") or data.startswith(b"HTTP/1.1 200 ")
    assert data.endswith(b"hello from origin /tunnelled")
    assert refused_head.startswith(b"HTTP/1.1 403 ")
    assert f"upstream=127.0.0.1:{port}" in out


def test_proxy_rewrite_headers(origin: Origin) -> None:
    example = Example("proxy_rewrite_headers.py", "--upstream", origin.url)
    try:
        first = example.get("/public/page", Cookie="session=1")
        second = example.get("/private", Cookie="session=2")
    finally:
        example.stop()
    status, headers, _ = first
    assert status == 200
    assert headers["X-Request-Id"] == headers["X-Seen-X-Request-Id"] == "1"
    assert headers["X-Seen-Cookie"] == "-"  # dropped under /public
    assert "Server" not in headers and "X-Powered-By" not in headers
    assert headers["Strict-Transport-Security"] == "max-age=31536000"
    assert second[1]["X-Seen-Cookie"] == "session=2" and second[1]["X-Request-Id"] == "2"


def test_proxy_transform_body(origin: Origin) -> None:
    example = Example("proxy_transform_body.py", "--upstream", origin.url)
    try:
        status, headers, body = example.get("/some/text")
    finally:
        example.stop()
    assert status == 200
    assert body == b"HELLO FROM ORIGIN /SOME/TEXT"
    assert headers.get("Transfer-Encoding") == "chunked"


def test_proxy_answer_locally(origin: Origin) -> None:
    example = Example("proxy_answer_locally.py", "--upstream", origin.url, "--ttl", "60")
    try:
        denied = example.get("/admin/users")
        miss = example.get("/page")
        hit = example.get("/page")
    finally:
        example.stop()
    assert denied[0] == 403
    assert miss[0] == 200 and miss[1]["X-Cache"] == "miss"
    assert hit[0] == 200 and hit[1]["X-Cache"] == "hit" and hit[2] == miss[2]
    assert origin.hits == {"/page": 1}  # /admin never reached it; the hit came from the cache


def test_proxy_load_balance() -> None:
    origins = [Origin(f"origin-{index}") for index in range(3)]
    args: list[str] = []
    for server in origins:
        args += ["--upstream", server.url]
    try:
        example = Example("proxy_load_balance.py", *args)
        try:
            answers = [example.get(f"/n/{index}") for index in range(9)]
        finally:
            example.stop()
    finally:
        for server in origins:
            server.stop()
    assert all(status == 200 for status, _, _ in answers)
    assert sorted(sum(server.hits.values()) for server in origins) == [3, 3, 3]
    names = {headers["X-Upstream"] for _, headers, _ in answers}
    assert names == {server.url.removeprefix("http://") for server in origins}
