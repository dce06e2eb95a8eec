"""The ``thor`` command run as users run it: ``python -m thor.http`` in a subprocess, on
ephemeral 127.0.0.1 ports (serve, get, proxy, --config and SIGHUP, --workers, signals).

Every wait is bounded: a process's stderr is read by a thread into a queue, and ``expect``
gives up (failing the test with everything the process said) after ``WAIT`` seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import pytest

WAIT = 30.0  # seconds: the bound on every wait (never reached when things work)


class Thor:
    """A ``thor`` process: its stderr lines are collected by a thread."""

    def __init__(self, *args: str, cwd: Path | None = None, **popen: Any) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("THOR_WORKER", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "thor.http", *args],
            stdout=popen.pop("stdout", subprocess.PIPE),
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
            **popen,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        assert self.proc.stderr is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, pattern: str) -> re.Match[str]:
        """The first stderr line (from now on) matching ``pattern``."""
        deadline = time.monotonic() + WAIT
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                line = ""
                if left <= 0:
                    raise AssertionError(
                        f"no line matching {pattern!r} within {WAIT}s; stderr:\n"
                        + "\n".join(self.seen)
                    ) from None
            if line is None:
                self.lines.put(None)
                raise AssertionError(
                    f"exited ({self.proc.poll()}) before {pattern!r}; stderr:\n"
                    + "\n".join(self.seen)
                )
            if line:
                self.seen.append(line)
                found = re.search(pattern, line)
                if found:
                    return found

    def listening(self) -> int:
        """Wait for the announcement; the port it names."""
        return int(self.expect(r" on http://127\.0\.0\.1:(\d+)").group(1))

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self) -> int:
        """The exit status (bounded wait)."""
        status = self.proc.wait(timeout=WAIT)
        self._reader.join(timeout=WAIT)
        return status

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@contextlib.contextmanager
def thor(*args: str, **popen: Any) -> Iterator[Thor]:
    """Run ``thor *args``; killed at the end if still running."""
    process = Thor(*args, **popen)
    try:
        yield process
    finally:
        process.stop()


def fetch(
    port: int,
    target: str = "/",
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection: (status, headers with lower-case names, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        conn.request(method, target, headers={"Connection": "close", **(headers or {})})
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def raw_request(port: int, request: bytes) -> bytes:
    """Send raw bytes; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "docs").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>\n")
    (root / "hello.txt").write_text("hello file\n")
    (root / "docs" / "guide.json").write_text('{"a": 1}\n')
    (tmp_path / "secret.txt").write_text("TOP SECRET\n")
    (root / "link-out").symlink_to(tmp_path / "secret.txt")
    return root


# -- thor serve --------------------------------------------------------------------------------


def test_serve_hello_world_and_ctrl_c() -> None:
    with thor("serve", "--listen", "127.0.0.1:0") as server:
        port = server.listening()
        status, headers, body = fetch(port)
        assert (status, body) == (200, b"Hello, world!\n")
        assert headers["content-type"].startswith("text/plain")
        server.signal(signal.SIGINT)
        assert server.wait() == 0


def test_serve_a_directory(site: Path) -> None:
    with thor("serve", "--listen", "127.0.0.1:0", str(site)) as server:
        port = server.listening()
        status, headers, body = fetch(port, "/hello.txt")
        assert (status, body) == (200, b"hello file\n")
        assert headers["content-type"] == "text/plain; charset=utf-8"
        assert headers["content-length"] == "11"
        status, headers, body = fetch(port, "/hello.txt", "HEAD")
        assert (status, body, headers["content-length"]) == (200, b"", "11")
        status, headers, body = fetch(port, "/docs/guide.json")
        assert (status, headers["content-type"]) == (200, "application/json; charset=utf-8")
        assert fetch(port, "/")[2] == b"<h1>home</h1>\n"  # the index
        status, headers, _ = fetch(port, "/docs")
        assert (status, headers["location"]) == (301, "/docs/")
        # never a redirect to another host ('//docs/' is one, to a browser)
        assert b"\r\nLocation: /docs/\r\n" in raw_request(port, b"GET //docs HTTP/1.0\r\n\r\n")
        status, _, body = fetch(port, "/docs/")
        assert status == 200 and b'href="guide.json"' in body  # a listing
        assert fetch(port, "/missing.txt")[0] == 404
        status, headers, _ = fetch(port, "/hello.txt", "POST")
        assert (status, headers["allow"]) == (405, "GET, HEAD")
        last_modified = fetch(port, "/hello.txt")[1]["last-modified"]
        status, _, body = fetch(port, "/hello.txt", headers={"If-Modified-Since": last_modified})
        assert (status, body) == (304, b"")
        server.signal(signal.SIGHUP)  # nothing to reload: a graceful shutdown
        server.expect("shutting down")
        assert server.wait() == 0


@pytest.mark.parametrize(
    "target",
    [
        b"/../secret.txt",
        b"/docs/../../secret.txt",
        b"/%2e%2e/secret.txt",
        b"/docs/..%2f..%2fsecret.txt",
        b"/link-out",
    ],
)
def test_serve_refuses_to_leave_its_root(site: Path, target: bytes) -> None:
    with thor("serve", "--listen", "127.0.0.1:0", str(site)) as server:
        port = server.listening()
        answer = raw_request(
            port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 403 ")
        assert b"TOP SECRET" not in answer


def test_serve_streams_a_large_file_intact(tmp_path: Path) -> None:
    data = os.urandom(24 * 1024 * 1024 + 7)
    (tmp_path / "big.bin").write_bytes(data)
    with thor("serve", "--listen", "127.0.0.1:0", str(tmp_path)) as server:
        port = server.listening()
        status, headers, body = fetch(port, "/big.bin")
        assert (status, headers["content-type"]) == (200, "application/octet-stream")
        assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()


def test_serve_byte_ranges(tmp_path: Path) -> None:
    data = bytes(range(256)) * 1024
    (tmp_path / "data.bin").write_bytes(data)
    with thor("serve", "--listen", "127.0.0.1:0", str(tmp_path)) as server:
        port = server.listening()
        status, headers, body = fetch(port, "/data.bin", headers={"Range": "bytes=1000-1999"})
        assert (status, body) == (206, data[1000:2000])
        assert headers["content-range"] == f"bytes 1000-1999/{len(data)}"
        status, _, body = fetch(port, "/data.bin", headers={"Range": "bytes=-10"})
        assert (status, body) == (206, data[-10:])
        status, headers, _ = fetch(port, "/data.bin", headers={"Range": f"bytes={len(data)}-"})
        assert (status, headers["content-range"]) == (416, f"bytes */{len(data)}")
        modified = fetch(port, "/data.bin", "HEAD")[1]["last-modified"]
        status, _, body = fetch(
            port, "/data.bin", headers={"Range": "bytes=0-0", "If-Range": modified}
        )
        assert (status, body) == (206, data[:1])
        stale = "Thu, 01 Jan 1970 00:00:00 GMT"
        status, _, body = fetch(
            port, "/data.bin", headers={"Range": "bytes=0-0", "If-Range": stale}
        )
        assert (status, body) == (200, data)


def test_serve_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with thor("serve", "--listen", f"127.0.0.1:{port}") as server:
            assert server.wait() == 1
            line = server.expect("cannot listen")
            assert (
                line.string
                == f"thor serve: cannot listen on 127.0.0.1:{port}: Address already in use"
            )
            assert len(server.seen) == 1  # one line


# -- thor get -----------------------------------------------------------------------------------


def test_get_prints_the_response(site: Path) -> None:
    with thor("serve", "--listen", "127.0.0.1:0", str(site)) as server:
        port = server.listening()
        result = subprocess.run(
            [sys.executable, "-m", "thor.http", "get", f"http://127.0.0.1:{port}/hello.txt"],
            capture_output=True,
            timeout=WAIT,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(b"HTTP/1.1 200 OK\n")
        assert b"Content-Length:11\n" in result.stdout.replace(b": ", b":")
        assert result.stdout.endswith(b"\n\nhello file\n")


def test_get_to_a_file_is_quiet_without_a_terminal(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    (tmp_path / "blob.bin").write_bytes(data)
    out = tmp_path / "out" / "copy.bin"
    out.parent.mkdir()
    with thor("serve", "--listen", "127.0.0.1:0", str(tmp_path)) as server:
        port = server.listening()
        base = [sys.executable, "-m", "thor.http", "get"]
        result = subprocess.run(
            [*base, f"http://127.0.0.1:{port}/blob.bin", "-o", str(out)],
            capture_output=True,
            timeout=WAIT,
        )
        assert result.returncode == 0, result.stderr
        assert (result.stdout, result.stderr) == (b"", b"")  # no bar, no note
        assert out.read_bytes() == data
        assert sorted(p.name for p in out.parent.iterdir()) == ["copy.bin"]
        # a 404 is not saved (and no .part is left)
        result = subprocess.run(
            [*base, f"http://127.0.0.1:{port}/nope", "-o", str(tmp_path / "out" / "nope")],
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        assert result.returncode == 1
        assert (
            result.stderr == f"thor get: {tmp_path}/out/nope: the server answered 404 Not Found\n"
        )
        assert sorted(p.name for p in out.parent.iterdir()) == ["copy.bin"]


@pytest.mark.parametrize("size", [(24, 100), (0, 0)], ids=["sized", "unsized"])
def test_get_shows_a_progress_bar_on_a_terminal(tmp_path: Path, size: tuple[int, int]) -> None:
    import fcntl
    import pty
    import struct
    import termios

    (tmp_path / "blob.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    with thor("serve", "--listen", "127.0.0.1:0", str(tmp_path)) as server:
        port = server.listening()
        controller, terminal = pty.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "thor.http",
                    "get",
                    f"http://127.0.0.1:{port}/blob.bin",
                    "-o",
                    str(tmp_path / "copy.bin"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=terminal,
            )
            os.close(terminal)
            terminal = -1
            shown = b""
            while True:  # read the terminal until the process closes it
                try:
                    data = os.read(controller, 4096)
                except OSError:  # EIO: the other side is closed
                    break
                if not data:
                    break
                shown += data
            assert process.wait(timeout=WAIT) == 0
        finally:
            os.close(controller)
            if terminal >= 0:
                os.close(terminal)
    text = shown.decode("utf-8", "replace")
    assert "copy.bin" in text
    assert "100%" in text
    assert "2.00M" in text  # bytes, scaled (tqdm's unit_scale with 1024)
    assert "B/s" in text  # the rate
    assert (tmp_path / "copy.bin").stat().st_size == 2 * 1024 * 1024


def test_get_connection_refused_exits_1() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: refused
        result = subprocess.run(
            [sys.executable, "-m", "thor.http", "get", f"http://127.0.0.1:{port}/"],
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
    assert result.returncode == 1
    assert result.stderr.startswith("thor get: ")
    assert result.stderr.count("\n") == 1


# -- a controllable origin (in this process) ------------------------------------------------------


def serve_in_thread(
    handler: type[BaseHTTPRequestHandler],
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """An http.server origin on a free 127.0.0.1 port, served by a daemon thread (close it
    with ``server.shutdown()``, ``server.server_close()``, ``thread.join()``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


class Origin:
    """An HTTP origin in a thread: answers ``name`` (and ``/slow`` only once released)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.slow_arrived = threading.Event()
        self.release = threading.Event()
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path == "/slow":
                    origin.slow_arrived.set()
                    origin.release.wait(WAIT)
                body = f"{origin.name} {self.path}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("X-Seen-Host", self.headers.get("Host", ""))
                self.send_header("X-Seen-XFF", self.headers.get("X-Forwarded-For", ""))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server, self.thread = serve_in_thread(Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origins() -> Iterator[tuple[Origin, Origin]]:
    a, b = Origin("A"), Origin("B")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


class Background:
    """A request made in a thread (so the test can act while it is in flight)."""

    def __init__(self, port: int, target: str) -> None:
        self.result: tuple[int, dict[str, str], bytes] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(port, target), daemon=True)
        self.thread.start()

    def _run(self, port: int, target: str) -> None:
        try:
            self.result = fetch(port, target)
        except BaseException as exc:
            self.error = exc

    def join(self) -> tuple[int, dict[str, str], bytes]:
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the request did not finish"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


# -- thor proxy ---------------------------------------------------------------------------------


def test_quick_start_reverse_proxy_in_front_of_a_local_origin(site: Path) -> None:
    """The README quick start: an origin, the proxy in front of it, a fetch through it."""
    with thor("serve", "--listen", "127.0.0.1:0", str(site)) as origin:
        origin_port = origin.listening()
        with thor(
            "proxy", "--listen", "127.0.0.1:0", "--upstream", f"http://127.0.0.1:{origin_port}"
        ) as proxy:
            port = proxy.listening()
            result = subprocess.run(
                [sys.executable, "-m", "thor.http", "get", f"http://127.0.0.1:{port}/hello.txt"],
                capture_output=True,
                timeout=WAIT,
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith(b"HTTP/1.1 200 OK\n")
            assert b"\nVia:1.1 thor\n" in result.stdout.replace(b": ", b":")
            assert result.stdout.endswith(b"\n\nhello file\n")


def test_reverse_proxy_balances_and_logs(origins: tuple[Origin, Origin], tmp_path: Path) -> None:
    a, b = origins
    log = tmp_path / "access.log"
    with thor(
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        f"{a.url},{b.url}",
        "--access-log",
        str(log),
        "--access-log-format",
        "json",
    ) as proxy:
        port = proxy.listening()
        answers = [fetch(port, f"/r{i}") for i in range(4)]
        assert all(status == 200 for status, _, _ in answers)
        assert all("thor" in headers["via"] for _, headers, _ in answers)
        bodies = sorted(body for _, _, body in answers)
        assert bodies == [b"A /r0\n", b"A /r2\n", b"B /r1\n", b"B /r3\n"]  # round robin
        proxy.signal(signal.SIGTERM)
        assert proxy.wait() == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["status"] for r in records] == [200] * 4
    assert {r["upstream"] for r in records} == {f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"}


def test_proxy_settings_from_flags_and_file(origins: tuple[Origin, Origin], tmp_path: Path) -> None:
    a, _ = origins
    client = {"Host": "www.example.com", "X-Forwarded-For": "192.0.2.7"}
    with thor("proxy", "--listen", "127.0.0.1:0", "--upstream", a.url) as proxy:
        _, headers, _ = fetch(proxy.listening(), "/", headers=client)
        assert headers["x-seen-host"] == f"127.0.0.1:{a.port}"
        assert headers["x-seen-xff"] == "127.0.0.1"  # an untrusted client's entry is dropped
        assert headers["via"] == "1.1 thor"
    with thor(
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        a.url,
        "--preserve-host",
        "--trusted-hops",
        "127.0.0.0/8,::1",
    ) as proxy:
        _, headers, _ = fetch(proxy.listening(), "/", headers=client)
        assert headers["x-seen-host"] == "www.example.com"
        assert headers["x-seen-xff"] == "192.0.2.7, 127.0.0.1"
    path = tmp_path / "proxy.toml"
    path.write_text(config_text(a.url) + '\n[proxy]\nvia = false\ntrusted_hops = ["127.0.0.1"]\n')
    with thor("proxy", "--config", str(path)) as proxy:
        _, headers, _ = fetch(proxy.listening(), "/", headers=client)
        assert "via" not in headers
        assert headers["x-seen-xff"] == "192.0.2.7, 127.0.0.1"


def test_proxy_protocol_on_the_listener(origins: tuple[Origin, Origin]) -> None:
    a, _ = origins
    with thor("proxy", "--listen", "127.0.0.1:0", "--upstream", a.url, "--proxy-protocol") as proxy:
        port = proxy.listening()
        answer = raw_request(
            port,
            b"PROXY TCP4 192.0.2.9 127.0.0.1 40000 80\r\n"
            b"GET /pp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert b"\r\nX-Seen-XFF: 192.0.2.9\r\n" in answer  # the address the header named
        assert answer.endswith(b"A /pp\n")


def test_reverse_proxy_admin_metrics(origins: tuple[Origin, Origin]) -> None:
    a, _ = origins
    with thor(
        "proxy", "--listen", "127.0.0.1:0", "--upstream", a.url, "--admin", "127.0.0.1:0"
    ) as proxy:
        found = proxy.expect(
            r" on http://127\.0\.0\.1:(\d+) .*metrics on http://127\.0\.0\.1:(\d+)/metrics"
        )
        port, admin = int(found.group(1)), int(found.group(2))
        assert fetch(port, "/x")[0] == 200
        status, _, body = fetch(admin, "/metrics")
        assert status == 200
        assert b'thor_proxy_requests_total{method="GET",status_class="2xx"} 1.0' in body


def test_reverse_proxy_unreachable_upstream_is_502() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
        with thor(
            "proxy", "--listen", "127.0.0.1:0", "--upstream", f"http://127.0.0.1:{dead}"
        ) as proxy:
            port = proxy.listening()
            assert fetch(port, "/")[0] == 502


def test_forward_proxy(origins: tuple[Origin, Origin]) -> None:
    a, _ = origins
    with thor("proxy", "--forward", "--listen", "127.0.0.1:0") as proxy:
        port = proxy.listening()
        status, _, body = fetch(port, f"{a.url}/via-forward")
        assert (status, body) == (200, b"A /via-forward\n")
        # CONNECT to a port not allowed
        answer = raw_request(
            port,
            f"CONNECT 127.0.0.1:{a.port} HTTP/1.1\r\nHost: 127.0.0.1:{a.port}\r\n\r\n".encode(),
        )
        assert answer.startswith(b"HTTP/1.1 403 ")


def config_text(url: str, extra: str = "") -> str:
    return f'listen = "127.0.0.1:0"\n\n[upstreams.app]\nservers = ["{url}"]\n{extra}'


def test_config_errors_name_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "proxy.toml"
    path.write_text(
        'listen = "127.0.0.1:0"\n'
        "\n"
        "[upstreams.app]\n"
        'servers = ["http://127.0.0.1:1/app"]\n'
        'balance = "random"\n'
        "\n"
        "[[routes]]\n"
        'upstream = "nope"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "thor.http", "proxy", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"thor proxy: {path}:4: upstreams.app.servers[0]: ")
    assert lines[1].startswith(f"thor proxy: {path}:5: upstreams.app.balance: unknown policy")
    assert lines[2].startswith(f"thor proxy: {path}:8: routes[0].upstream: no upstream group")
    path.write_text('listen = "127.0.0.1:0"\n[upstreams.app\n')
    result = subprocess.run(
        [sys.executable, "-m", "thor.http", "proxy", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"thor proxy: {path}:2: TOML syntax: ")


def test_sighup_reload_keeps_requests_in_flight(
    origins: tuple[Origin, Origin], tmp_path: Path
) -> None:
    a, b = origins
    path = tmp_path / "proxy.toml"
    path.write_text(config_text(a.url))
    with thor("proxy", "--config", str(path)) as proxy:
        port = proxy.listening()
        assert fetch(port, "/first")[2] == b"A /first\n"
        slow = Background(port, "/slow")
        assert a.slow_arrived.wait(WAIT), "the slow request did not reach origin A"
        path.write_text(config_text(b.url))
        proxy.signal(signal.SIGHUP)
        proxy.expect(r"reloaded .*proxy\.toml: 1 upstream group, 1 route")
        assert fetch(port, "/second")[2] == b"B /second\n"
        a.release.set()
        status, _, body = slow.join()
        assert (status, body) == (200, b"A /slow\n")  # it kept its upstream
        # a file with errors is refused; the running configuration stays
        path.write_text(config_text(a.url, 'balance = "sideways"\n'))
        proxy.signal(signal.SIGHUP)
        proxy.expect(r"reload refused: .*proxy\.toml:5: upstreams\.app\.balance: unknown policy")
        assert fetch(port, "/third")[2] == b"B /third\n"
        proxy.signal(signal.SIGTERM)
        assert proxy.wait() == 0


def test_sigterm_lets_a_request_in_flight_finish(origins: tuple[Origin, Origin]) -> None:
    a, _ = origins
    with thor("proxy", "--listen", "127.0.0.1:0", "--upstream", a.url) as proxy:
        port = proxy.listening()
        slow = Background(port, "/slow")
        assert a.slow_arrived.wait(WAIT)
        proxy.signal(signal.SIGTERM)
        proxy.expect("shutting down")
        wait_refused(port)
        assert proxy.proc.poll() is None  # still running: a request is in flight
        a.release.set()
        assert slow.join()[:3:2] == (200, b"A /slow\n")
        assert proxy.wait() == 0


def wait_refused(port: int) -> None:
    """Wait (bounded) until connections to ``port`` are refused."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=WAIT).close()
        except ConnectionRefusedError:
            return
        except (ConnectionResetError, ConnectionAbortedError):
            pass  # a listener closed while this connection waited in its queue: not yet
        assert time.monotonic() < deadline, f"port {port} still accepts connections"
        time.sleep(0.05)


# -- --workers ----------------------------------------------------------------------------------


def worker_pids(port: int, want: int, tries: int = 400) -> set[int]:
    """Worker PIDs seen over new connections, until ``want`` distinct ones (bounded)."""
    seen: set[int] = set()
    for _ in range(tries):
        status, headers, _ = fetch(port)
        assert status == 200
        seen.add(int(headers["x-thor-worker"]))
        if len(seen) >= want:
            break
    return seen


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_workers_share_the_port_are_restarted_and_stop_on_sigterm() -> None:
    with thor("serve", "--listen", "127.0.0.1:0", "--workers", "2", "--worker-header") as sup:
        found = sup.expect(r" on http://127\.0\.0\.1:(\d+) \(2 workers: (\d+), (\d+); supervisor")
        port = int(found.group(1))
        started = {int(found.group(2)), int(found.group(3))}
        assert worker_pids(port, 2) == started  # both answer
        victim = min(started)
        os.kill(victim, signal.SIGKILL)
        sup.expect(rf"worker {victim} exited \(signal 9\); restarting")
        replacement = int(sup.expect(r"worker (\d+) ready").group(1))
        assert replacement not in started
        survivors = (started - {victim}) | {replacement}
        assert worker_pids(port, 2) == survivors
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0
        for pid in survivors:
            deadline = time.monotonic() + WAIT
            while alive(pid):
                assert time.monotonic() < deadline, f"worker {pid} outlived its supervisor"
                time.sleep(0.05)


def test_ctrl_c_with_workers_lets_a_request_in_flight_finish(
    origins: tuple[Origin, Origin],
) -> None:
    a, _ = origins
    with thor(
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        a.url,
        "--workers",
        "2",
        start_new_session=True,
    ) as sup:
        port = sup.listening()
        slow = Background(port, "/slow")
        assert a.slow_arrived.wait(WAIT)
        os.killpg(sup.proc.pid, signal.SIGINT)  # Ctrl-C: the whole process group
        sup.expect("shutting down 2 workers")
        wait_refused(port)  # every worker stopped listening
        assert sup.proc.poll() is None  # a request is still in flight
        a.release.set()
        assert slow.join()[2] == b"A /slow\n"
        assert sup.wait() == 0


def test_workers_on_an_inherited_socket() -> None:
    with thor(
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--inherit-socket",
        "--worker-header",
    ) as sup:
        found = sup.expect(r" on http://127\.0\.0\.1:(\d+) \(2 workers: (\d+), (\d+); supervisor")
        port = int(found.group(1))
        started = {int(found.group(2)), int(found.group(3))}
        for _ in range(20):
            status, headers, body = fetch(port)
            assert (status, body) == (200, b"Hello, world!\n")
            assert int(headers["x-thor-worker"]) in started
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0


def test_a_worker_dying_on_start_is_restarted_with_back_off(tmp_path: Path) -> None:
    root = tmp_path / "site"
    root.mkdir()
    (root / "a.txt").write_text("a\n")
    with thor(
        "serve", "--listen", "127.0.0.1:0", "--workers", "2", "--worker-header", str(root)
    ) as sup:
        found = sup.expect(r" on http://127\.0\.0\.1:(\d+) \(2 workers: (\d+), (\d+); supervisor")
        port = int(found.group(1))
        victim = int(found.group(2))
        root.rename(tmp_path / "away")  # a worker started now fails at once
        os.kill(victim, signal.SIGKILL)
        sup.expect(rf"worker {victim} exited \(signal 9\); restarting")
        delays = [
            float(sup.expect(r"exited \(status 1\); restarting in ([0-9.]+)s").group(1))
            for _ in range(3)
        ]
        assert delays[0] < delays[1] < delays[2]  # backing off
        (tmp_path / "away").rename(root)
        replacement = int(sup.expect(r"worker (\d+) ready").group(1))
        assert replacement != victim
        assert fetch(port, "/a.txt")[2] == b"a\n"
        sup.signal(signal.SIGHUP)  # no --config: SIGHUP shuts down
        sup.expect("shutting down 2 workers")
        assert sup.wait() == 0


def test_sighup_reaches_every_worker(origins: tuple[Origin, Origin], tmp_path: Path) -> None:
    a, b = origins
    path = tmp_path / "proxy.toml"
    path.write_text("workers = 2\n" + config_text(a.url))
    with thor("proxy", "--config", str(path), "--worker-header") as sup:
        found = sup.expect(r" on http://127\.0\.0\.1:(\d+) \(2 workers: (\d+), (\d+); supervisor")
        port = int(found.group(1))
        assert fetch(port, "/before")[2] == b"A /before\n"
        path.write_text("workers = 2\n" + config_text(b.url))
        sup.signal(signal.SIGHUP)
        sup.expect("reloaded")
        sup.expect("reloaded")  # one line per worker
        seen = set()
        for i in range(40):
            _, headers, body = fetch(port, f"/after{i}")
            assert body == f"B /after{i}\n".encode()
            seen.add(int(headers["x-thor-worker"]))
        assert seen <= {int(found.group(2)), int(found.group(3))}
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0


def test_grace_bounds_the_shutdown(origins: tuple[Origin, Origin]) -> None:
    a, _ = origins
    with thor("proxy", "--listen", "127.0.0.1:0", "--upstream", a.url, "--grace", "0.2") as proxy:
        port = proxy.listening()
        stuck = Background(port, "/slow")  # never answered while the proxy runs
        assert a.slow_arrived.wait(WAIT)
        proxy.signal(signal.SIGTERM)
        assert proxy.wait() == 0  # the grace period ran out: stopped anyway
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            stuck.join()


def test_workers_failing_to_start_fail_the_supervisor(tmp_path: Path) -> None:
    args = ["--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1", "--workers", "2"]
    # each worker opens the access log itself: in a directory that does not exist, it fails
    log = tmp_path / "missing" / "access.log"
    with thor("proxy", *args, "--access-log", str(log)) as sup:
        assert sup.wait() == 1
        sup.expect(r"access\.log")
        sup.expect(r"worker \d+ exited \(status 1\) while starting")


def test_an_admin_address_in_use_fails_the_supervisor_at_once() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        args = ["--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1", "--workers", "2"]
        with thor("proxy", *args, "--admin", f"127.0.0.1:{taken}") as sup:
            assert sup.wait() == 1
            sup.expect(rf"cannot listen on 127\.0\.0\.1:{taken} \(--admin\)")


def test_workers_admin_metrics_are_added_up(origins: tuple[Origin, Origin]) -> None:
    a, _ = origins
    args = ["--listen", "127.0.0.1:0", "--upstream", a.url, "--workers", "2", "--worker-header"]
    with thor("proxy", *args, "--admin", "127.0.0.1:0") as sup:
        found = sup.expect(
            r" on http://127\.0\.0\.1:(\d+) \(2 workers: (\d+), (\d+); supervisor pid \d+\); "
            r"metrics on http://127\.0\.0\.1:(\d+)/metrics"
        )
        port, admin = int(found.group(1)), int(found.group(4))
        workers = {int(found.group(2)), int(found.group(3))}
        served: set[int] = set()
        sent = 0
        while served != workers:  # new connections until both workers have answered
            status, headers, _ = fetch(port, "/x")
            assert status == 200
            served.add(int(headers["x-thor-worker"]))
            sent += 1
            assert sent < 400, "the kernel never gave a connection to both workers"
        status, headers, body = fetch(admin, "/metrics")
        assert status == 200
        assert headers["content-type"].startswith("text/plain")
        assert "x-thor-workers-missing" not in headers
        total = f'thor_proxy_requests_total{{method="GET",status_class="2xx"}} {float(sent)}'
        assert total.encode() in body  # both workers' counts, added up
        assert fetch(admin, "/other")[0] == 404
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0


def test_workers_stop_when_the_supervisor_is_killed() -> None:
    with thor("serve", "--listen", "127.0.0.1:0", "--workers", "2") as sup:
        found = sup.expect(r"\(2 workers: (\d+), (\d+); supervisor")
        workers = {int(found.group(1)), int(found.group(2))}
        sup.proc.kill()
        sup.wait()
        for pid in workers:  # their lifeline pipe reached end-of-file
            deadline = time.monotonic() + WAIT
            while alive(pid):
                assert time.monotonic() < deadline, f"worker {pid} outlived a killed supervisor"
                time.sleep(0.05)
