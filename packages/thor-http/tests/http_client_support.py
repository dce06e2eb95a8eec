"""Shared support of the HttpClient tests (test_http_client_*.py): a fresh loop per test with a
safety timer that FAILS the test, a recorder of exchange events, and real peers on 127.0.0.1:
scripted raw-socket servers (byte by byte, for hostile and malformed cases), Python's
``http.server`` (ThreadingHTTPServer, plain or TLS with trustme certificates) and nginx.

pytest runs with ``--import-mode=importlib``: test modules load this file by path (``load()``)
and take its fixtures by assignment. Nothing here is collected as tests.

Rules: listeners never assert (they record; the test asserts after ``run()``); the servers run
in threads and never touch the loop; whatever a test made is closed afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import thor.loop
from thor.http.client import HttpClient, HttpClientExchange
from thor.http.error import HttpError
from thor.loop import LoopBase

RawHeaders = list[tuple[bytes, bytes]]


# -- the loop and the client side ----------------------------------------------------------------


class Recorder:
    """Everything one exchange emits, in order (a sink object: no closures)."""

    def __init__(
        self, harness: Harness, exchange: HttpClientExchange, upgrade: bool = False
    ) -> None:
        self.harness = harness
        self.exchange = exchange
        self.events: list[str] = []
        self.nonfinal: list[tuple[bytes, bytes, RawHeaders]] = []
        self.status: bytes | None = None
        self.phrase: bytes | None = None
        self.headers: RawHeaders | None = None
        self.body = bytearray()
        self.chunks: list[bytes] = []
        self.trailers: RawHeaders | None = None
        self.error: HttpError | None = None
        self.pauses: list[bool] = []
        self.upgrade: tuple[Any, bytes] | None = None
        self.res_version: bytes | None = None
        self.counts: dict[Any, int] | None = None
        self.finished = False
        for event in (
            "response_nonfinal",
            "response_start",
            "response_body",
            "response_done",
            "error",
            "pause",
        ):
            exchange.on(event, getattr(self, "on_" + event))
        if upgrade:  # listening for 'upgrade' asks for one (with an Upgrade header)
            exchange.on("upgrade", self.on_upgrade)

    def on_response_nonfinal(self, status: bytes, phrase: bytes, headers: RawHeaders) -> None:
        self.events.append("response_nonfinal")
        self.nonfinal.append((status, phrase, headers))

    def on_response_start(self, status: bytes, phrase: bytes, headers: RawHeaders) -> None:
        self.events.append("response_start")
        self.status, self.phrase, self.headers = status, phrase, headers
        self.res_version = self.exchange.res_version

    def on_response_body(self, chunk: bytes) -> None:
        if not self.events or self.events[-1] != "response_body":
            self.events.append("response_body")
        self.body += chunk
        self.chunks.append(chunk)

    def on_response_done(self, trailers: RawHeaders) -> None:
        self.events.append("response_done")
        self.trailers = trailers
        self._finish()

    def on_error(self, err: HttpError) -> None:
        self.events.append("error")
        self.error = err
        self._finish()

    def on_pause(self, paused: bool) -> None:
        self.pauses.append(paused)

    def on_upgrade(self, tcp_conn: Any, rest: bytes) -> None:
        self.events.append("upgrade")
        self.upgrade = (tcp_conn, rest)
        self._finish()

    def _finish(self) -> None:
        self.finished = True
        # the client's live connections when the exchange ended (a stopped loop drops them all)
        self.counts = self.exchange.client.conn_counts
        self.harness.finished(self)

    def header(self, name: bytes) -> list[bytes]:
        return [v.strip() for n, v in self.headers or [] if n.lower() == name]

    def __repr__(self) -> str:
        return f"<Recorder {self.events} status={self.status!r} error={self.error!r}>"


class Harness:
    """A test's loop and client. ``run()`` runs the loop until every exchange started with
    ``fetch`` (or ``track``) has finished, or until ``stop()``; a safety timer fails the test.

    Stopping the loop drops the client's pooled connections (as it must), so a scenario that
    needs the pool to survive between phases chains them with ``then(step)``: when no exchange
    is outstanding, the next step runs (from the last exchange's final listener, or ``delay``
    seconds later) instead of the loop stopping.
    """

    def __init__(self, loop: LoopBase) -> None:
        self.loop = loop
        self.clients: list[HttpClient] = []
        self.outstanding = 0
        self.failures: list[str] = []
        self.expired = False
        self.on_finished: Callable[[Recorder], object] | None = None
        self.steps: list[tuple[Callable[[], object], float | None]] = []
        loop.set_exception_handler(self._loop_exception)

    def _loop_exception(self, loop: LoopBase, exc: BaseException, where: str) -> None:
        self.failures.append(f"exception in {where}: {exc!r}")
        loop.stop()

    def client(self, **settings: Any) -> HttpClient:
        client = HttpClient(self.loop)
        for name, value in settings.items():
            assert hasattr(client, name), name
            setattr(client, name, value)
        self.clients.append(client)
        return client

    def track(self, exchange: HttpClientExchange, upgrade: bool = False) -> Recorder:
        self.outstanding += 1
        return Recorder(self, exchange, upgrade)

    def fetch(
        self,
        client: HttpClient,
        uri: bytes | str,
        method: bytes = b"GET",
        *,
        headers: RawHeaders | None = None,
        body: list[bytes] | bytes | None = None,
        done: bool = True,
    ) -> Recorder:
        """Start an exchange (and, with ``done``, send ``body`` and end the request)."""
        exchange = client.exchange()
        recorder = self.track(exchange)
        if isinstance(uri, str):
            uri = uri.encode()
        exchange.request_start(method, uri, headers or [])
        if done:
            chunks = [body] if isinstance(body, bytes) else body or []
            for chunk in chunks:
                exchange.request_body(chunk)
            exchange.request_done([])
        return recorder

    def then(self, step: Callable[[], object], delay: float | None = None) -> None:
        """Run ``step`` once the exchanges so far (and earlier steps') have finished."""
        self.steps.append((step, delay))

    def finished(self, recorder: Recorder) -> None:
        self.outstanding -= 1
        if self.on_finished is not None:
            self.on_finished(recorder)
        if self.outstanding <= 0:
            self._next_step()

    def _next_step(self) -> None:
        if self.steps:
            step, delay = self.steps.pop(0)
            if delay is None:
                step()
                if self.outstanding <= 0:
                    self._next_step()
            else:
                self.loop.schedule(delay, self._delayed, step)
        elif self.loop.running:
            self.loop.stop()

    def _delayed(self, step: Callable[[], object]) -> None:
        step()
        if self.outstanding <= 0:
            self._next_step()

    def stop(self) -> None:
        self.loop.stop()

    def run(
        self,
        timeout: float = 10.0,
        what: str = "the exchanges did not finish",
        until_done: bool = True,
    ) -> None:
        """Run the loop; with ``until_done``, stop once no exchange is outstanding (at once if
        none is)."""
        if until_done and self.outstanding <= 0:
            self.loop.schedule(0, self._next_step)
        watchdog = self.loop.schedule(timeout, self._expire)
        self.loop.run()
        watchdog.delete()
        if self.failures:
            pytest.fail("; ".join(self.failures))
        if self.expired:
            pytest.fail(f"safety timer ({timeout} s): {what}")

    def _expire(self) -> None:
        self.expired = True
        self.loop.stop()

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.loop.close()


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness(thor.loop.make())
    try:
        yield h
    finally:
        h.close()


# -- raw scripted servers ------------------------------------------------------------------------


def read_head(sock: socket.socket, buffered: bytearray | None = None) -> tuple[bytes, bytearray]:
    """Read up to the end of a message head; returns (head, bytes read past it)."""
    data = buffered if buffered is not None else bytearray()
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed in the head: {bytes(data)!r}")
        data += chunk
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    return head, bytearray(rest)


def head_fields(head: bytes) -> dict[bytes, list[bytes]]:
    fields: dict[bytes, list[bytes]] = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields.setdefault(name.strip().lower(), []).append(value.strip())
    return fields


def read_request(
    sock: socket.socket, buffered: bytearray | None = None
) -> tuple[bytes, bytes, bytearray]:
    """Read one request; returns (head, decoded body, bytes read past it)."""
    head, rest = read_head(sock, buffered)
    fields = head_fields(head)

    def need(count: int) -> None:
        while len(rest) < count:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed in the body")
            rest.extend(chunk)

    if b"chunked" in b",".join(fields.get(b"transfer-encoding", [])).lower():
        body = bytearray()
        while True:
            while b"\r\n" not in rest:
                need(len(rest) + 1)
            line, _, after = bytes(rest).partition(b"\r\n")
            rest[:] = after
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while not (rest.startswith(b"\r\n") or b"\r\n\r\n" in rest):
                    need(len(rest) + 1)
                if rest.startswith(b"\r\n"):
                    del rest[:2]
                else:
                    cut = rest.index(b"\r\n\r\n") + 4
                    del rest[:cut]
                return head, bytes(body), rest
            need(size + 2)
            body += rest[:size]
            del rest[: size + 2]
    length = int(fields.get(b"content-length", [b"0"])[0])
    need(length)
    body = bytes(rest[:length])
    del rest[:length]
    return head, body, rest


def response(
    status: int = 200, body: bytes = b"", headers: list[str] | None = None, length: bool = True
) -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever"]
    lines += headers or []
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


Script = Callable[[socket.socket, int, "ScriptedServer"], object]


class ScriptedServer:
    """A TCP server on 127.0.0.1 running ``script(sock, index, server)`` in a thread for each
    accepted connection (index: 0, 1, ...). Counts accepts; records script exceptions."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port: int = self.listener.getsockname()[1]
        self.accepts = 0
        self.socks: list[socket.socket] = []
        self.errors: list[BaseException] = []
        self.notes: list[Any] = []
        self.events: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        self.closing = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def event(self, name: str) -> threading.Event:
        with self.lock:
            return self.events.setdefault(name, threading.Event())

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if self.closing:
                    sock.close()
                    return
                index = self.accepts
                self.accepts += 1
                self.socks.append(sock)
            threading.Thread(target=self._serve, args=(sock, index), daemon=True).start()

    def _serve(self, sock: socket.socket, index: int) -> None:
        try:
            self.script(sock, index, self)
        except (ConnectionError, OSError) as exc:
            if not self.closing:
                self.notes.append(exc)
        except BaseException as exc:
            if not self.closing:  # a socket closed under the script by close() is no bug
                self.errors.append(exc)

    def close(self) -> None:
        with self.lock:
            self.closing = True
        for ev in self.events.values():
            ev.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for sock in self.socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.thread.join(5)
        if self.errors:
            raise AssertionError(f"scripted server failed: {self.errors!r}")


@pytest.fixture
def scripted() -> Iterator[Callable[[Script], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def make(script: Script) -> ScriptedServer:
        server = ScriptedServer(script)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def keep_alive_script(body: bytes = b"ok", extra: list[str] | None = None) -> Script:
    """Answer every request on the connection with ``body`` (keep-alive)."""

    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        rest = bytearray()
        while True:
            try:
                _, _, rest = read_request(sock, rest)
            except ConnectionError:
                return
            sock.sendall(response(200, body, extra))

    return script


# -- http.server ---------------------------------------------------------------------------------


class EchoHandler(BaseHTTPRequestHandler):
    """Answers every method with a JSON description of the request (keep-alive, HTTP/1.1).

    Paths: /status/NNN answers with that status and no body; /slow/MS sleeps first;
    /big/N sends N bytes.
    """

    protocol_version = "HTTP/1.1"
    server: EchoServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()  # a refused certificate fails here, in this thread
        super().setup()

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if not size:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _answer(self) -> None:
        body = self._body()
        with self.server.lock:
            self.server.requests += 1
            self.server.active += 1
            self.server.max_active = max(self.server.max_active, self.server.active)
        try:
            parts = self.path.partition("?")[0].split("/")
            if self.path.startswith("/slow/"):
                time.sleep(int(parts[2]) / 1000)
            if self.path.startswith("/status/"):
                self.send_response(int(parts[2]))
                self.end_headers()
                return
            if self.path.startswith("/big/"):
                payload = b"x" * int(parts[2])
            else:
                payload = json.dumps(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": [[k, v] for k, v in self.headers.items()],
                        "body": body.decode("latin-1"),
                    }
                ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        finally:
            with self.server.lock:
                self.server.active -= 1

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = _answer  # noqa: N815


class EchoServer(ThreadingHTTPServer):
    """ThreadingHTTPServer on 127.0.0.1 counting accepted connections and requests."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), EchoHandler)
        self.context = context
        self.lock = threading.Lock()
        self.accepts = 0
        self.requests = 0
        self.active = 0
        self.max_active = 0
        self.port: int = self.server_address[1]
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        with self.lock:
            self.accepts += 1
        if self.context is not None:
            sock = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # failed handshakes and dropped connections are what some tests are about

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        scheme = "https" if self.context is not None else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(5)


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


def echoed(recorder: Recorder) -> dict[str, Any]:
    """The request as the echo server saw it."""
    result: dict[str, Any] = json.loads(bytes(recorder.body))
    return result


# -- nginx ---------------------------------------------------------------------------------------

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 100000;
  server {{
    listen 127.0.0.1:{port};
    location = /nginx_status {{ stub_status; }}
    location / {{ default_type text/plain; return 200 "Hello, world!"; }}
  }}
}}
"""


def find_nginx() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Nginx:
    def __init__(self, binary: str, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        conf = directory / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=directory, port=self.port))
        self.process = subprocess.Popen(
            [binary, "-e", str(directory / "error.log"), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.process.stderr.read()!r}")  # type: ignore[union-attr]
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError("nginx did not start listening")

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def accepts(self) -> int:
        """Connections nginx accepted so far (stub_status; this query's own counts too)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"GET /nginx_status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        text = data.partition(b"\r\n\r\n")[2].decode()
        return int(text.splitlines()[2].split()[0])

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


@pytest.fixture(scope="module")
def nginx() -> Iterator[Nginx]:
    binary = find_nginx()
    if binary is None:
        pytest.fail("nginx is not installed: apt-get install nginx-light")
    directory = Path(tempfile.mkdtemp(prefix="thor-nginx-"))
    server = Nginx(binary, directory)
    yield server
    server.close()
    shutil.rmtree(directory, ignore_errors=True)
