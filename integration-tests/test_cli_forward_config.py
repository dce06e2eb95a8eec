"""``thor proxy --config`` with a ``[forward]`` table: a forward proxy set up by a file, through
the real command (``python -m thor.http proxy`` in a subprocess on ephemeral 127.0.0.1 ports).

The origin is an ``http.server`` in a thread of this process; a second listener plays a TLS
server's port for CONNECT (it echoes). The process helpers (``thor``, ``WAIT``) are
test_cli.py's (importable by name: see conftest.py).
Every wait is bounded; processes are killed at the end of their ``with`` block.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_cli import WAIT, thor


class _Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"origin {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def origin() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A listener that echoes what each connection sends (the far end of a CONNECT tunnel)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(WAIT)
                try:
                    while data := conn.recv(65536):
                        conn.sendall(data)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(WAIT)
        listener.close()


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` to the proxy; what comes back until the response's end (or EOF)."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received or not _complete(received):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def _complete(received: bytes) -> bool:
    head, _, body = received.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


def connect_through(port: int, target_port: int) -> bytes:
    """CONNECT to 127.0.0.1:target_port through the proxy, then a ping through the tunnel."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(
            b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
            % (target_port, target_port)
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                return head
            head += chunk
        if not head.startswith(b"HTTP/1.1 200"):
            return head
        sock.sendall(b"ping")
        echoed = b""
        while len(echoed) < 4:
            chunk = sock.recv(4096)
            if not chunk:
                break
            echoed += chunk
        return head + echoed


def test_a_forward_proxy_from_the_file(origin: int, echo_port: int, tmp_path: Path) -> None:
    path = tmp_path / "forward.toml"
    path.write_text(f'listen = "127.0.0.1:0"\n\n[forward]\nconnect_ports = [{echo_port}]\n')
    with thor("proxy", "--config", str(path)) as proxy:
        port = proxy.listening()
        got = exchange(
            port, b"GET http://127.0.0.1:%d/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % origin
        )
        assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"origin /x\n")
        assert connect_through(port, echo_port).endswith(b"ping")
        refused = connect_through(port, origin)  # not in connect_ports
        assert refused.startswith(b"HTTP/1.1 403 ")
        # SIGHUP: the new ports apply; turning it into a reverse proxy is refused
        path.write_text(f'listen = "127.0.0.1:0"\n\n[forward]\nconnect_ports = [{origin}]\n')
        proxy.signal(signal.SIGHUP)
        proxy.expect(rf"reloaded .*forward\.toml: forward proxy, CONNECT to {origin}")
        assert connect_through(port, echo_port).startswith(b"HTTP/1.1 403 ")
        path.write_text(
            f'listen = "127.0.0.1:0"\n\n[upstreams.a]\nservers = ["http://127.0.0.1:{origin}"]\n'
        )
        proxy.signal(signal.SIGHUP)
        proxy.expect(r"reload refused: .*forward\.toml: not a forward proxy any more: restart")
        got = exchange(
            port, b"GET http://127.0.0.1:%d/y HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % origin
        )
        assert got.endswith(b"origin /y\n")  # still the forward proxy
        proxy.signal(signal.SIGTERM)
        assert proxy.wait() == 0


def test_a_forward_file_with_upstreams_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[forward]\n\n[upstreams.a]\nservers = ["http://127.0.0.1:1"]\n')
    with thor("proxy", "--config", str(path)) as proxy:
        line = proxy.expect(r"bad\.toml:3: upstreams\.a: a forward proxy")
        assert line is not None
        assert proxy.wait() == 1  # (a file that cannot be used: a run-time failure)
