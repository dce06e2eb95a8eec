"""Hostile load: thousands of idle keep-alive connections must not keep a fresh client waiting."""

from __future__ import annotations

import http.client
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IDLE = 2000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except ConnectionRefusedError:
            assert server.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server never listened"
            time.sleep(0.05)


def test_a_fresh_client_is_answered_beside_thousands_of_idle_connections() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = IDLE + 200
    if soft < needed:
        assert hard >= needed, f"RLIMIT_NOFILE hard limit {hard} is below {needed}"
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "hello_server.py"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    idle: list[socket.socket] = []
    try:
        _wait_listening(port, server)
        request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        for _ in range(IDLE):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(request)
            idle.append(sock)
        for sock in idle:  # each got its answer and now sits idle, kept alive
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
        # answered within the socket timeout, or the request fails
        fresh = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        fresh.request("GET", "/")
        response = fresh.getresponse()
        assert response.status == 200
        assert response.read() == b"Hello, world!"
        fresh.close()
        assert server.poll() is None
    finally:
        for sock in idle:
            sock.close()
        server.terminate()
        server.communicate(timeout=10)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
