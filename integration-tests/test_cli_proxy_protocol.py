"""``thor proxy`` behind a load balancer: the PROXY protocol on its listener, through the real
command (``python -m thor.http proxy`` in a subprocess on ephemeral 127.0.0.1 ports).

Each test plays the balancer with raw sockets: a PROXY header (version 2 binary, or version 1
text) naming a client address, then the HTTP request. The origin, an ``http.server`` in a
thread of this process, answers with the fields it received as JSON, so the tests see what the
proxy forwarded: ``X-Forwarded-For`` and ``Forwarded`` carry the address the header named, and
that address (not the balancer's own, 127.0.0.1) is the one ``--trusted-hops`` is checked
against. Covered: a reverse proxy, a forward proxy (absolute-form and CONNECT), ``--workers 2``,
``proxy_protocol = true`` in a ``--config`` file, and connections whose header is missing or
malformed (closed without a response, while the next good one is served).

The process helpers (``thor``, ``WAIT``, ``config_text``) are test_cli.py's (importable by name:
see conftest.py). Every wait is bounded by ``WAIT``; processes are killed at the end of their
``with`` block whatever happens.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from test_cli import WAIT, config_text, serve_in_thread, thor

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"  # (written out here, not taken from the library)


def proxy_v2(
    source: tuple[str, int], destination: tuple[str, int] = ("127.0.0.1", 80), command: int = 1
) -> bytes:
    """A PROXY protocol version 2 header: command PROXY (1) or LOCAL (0), AF_INET, STREAM."""
    block = (
        socket.inet_aton(source[0])
        + socket.inet_aton(destination[0])
        + source[1].to_bytes(2, "big")
        + destination[1].to_bytes(2, "big")
    )
    return V2_SIGNATURE + bytes([0x20 | command, 0x11]) + len(block).to_bytes(2, "big") + block


def proxy_v1(source: tuple[str, int], destination: tuple[str, int] = ("127.0.0.1", 80)) -> bytes:
    return f"PROXY TCP4 {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n".encode()


# -- the origin ---------------------------------------------------------------------------------


class Origin:
    """An HTTP origin in a thread: answers every GET with JSON of what it received."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                seen = {
                    "path": self.path,
                    "host": self.headers.get("Host"),
                    "xff": self.headers.get("X-Forwarded-For"),
                    "forwarded": self.headers.get("Forwarded"),
                }
                body = json.dumps(seen).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server, self.thread = serve_in_thread(Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(WAIT)


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin()
    try:
        yield server
    finally:
        server.close()


# -- the balancer's side -------------------------------------------------------------------------


def through_balancer(
    port: int,
    header: bytes,
    target: str = "/",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """Send ``header`` then one GET (Connection: close) on a new connection; returns (status,
    lower-cased response fields, the origin's JSON (None when the body is not JSON))."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        sock.sendall(header)
        conn.sock = sock  # (http.client uses it as it is: the header is already sent)
        conn.request("GET", target, headers={"Connection": "close", **(headers or {})})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
        sock.close()
    fields = {k.lower(): v for k, v in response.getheaders()}
    try:
        seen = json.loads(body)
    except ValueError:
        seen = None
    return response.status, fields, seen


def answer_to(port: int, data: bytes, half_close: bool = False) -> bytes:
    """Send ``data`` on a new connection (then shut down the writing side if ``half_close``);
    everything the server sends back before it closes (a reset counts as closed)."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except ConnectionResetError:
            pass
    return received


# -- (a) version 2 on a reverse proxy; trusted hops ---------------------------------------------

CLIENT = ("192.0.2.9", 40000)  # the address the balancer's header names
FORGED = {"X-Forwarded-For": "203.0.113.5", "Forwarded": "for=203.0.113.5"}

# (extra options, the X-Forwarded-For and Forwarded the origin sees, why)
TRUST: list[tuple[list[str], str, str, str]] = [
    (
        [],
        "192.0.2.9",
        "for=192.0.2.9;proto=http;host=x",
        "nobody trusted: the client's fields are dropped; the header's address is appended",
    ),
    (
        ["--trusted-hops", "192.0.2.0/24"],
        "203.0.113.5, 192.0.2.9",
        "for=203.0.113.5, for=192.0.2.9;proto=http;host=x",
        "the header's address is trusted: its fields are kept and extended",
    ),
    (
        ["--trusted-hops", "127.0.0.0/8"],
        "192.0.2.9",
        "for=192.0.2.9;proto=http;host=x",
        "trusting the balancer's own address does not trust the client it names",
    ),
]


@pytest.mark.parametrize(
    ("options", "xff", "forwarded", "why"), TRUST, ids=["untrusted", "trusted", "balancer"]
)
def test_v2_header_names_the_client_upstream(
    origin: Origin, options: list[str], xff: str, forwarded: str, why: str
) -> None:
    with thor(
        "proxy", "--listen", "127.0.0.1:0", "--upstream", origin.url, "--proxy-protocol", *options
    ) as proxy:
        port = proxy.listening()
        status, _, seen = through_balancer(port, proxy_v2(CLIENT), "/v2", {"Host": "x", **FORGED})
        assert status == 200, why
        assert seen["path"] == "/v2"
        assert (seen["xff"], seen["forwarded"]) == (xff, forwarded), why


def test_v2_local_keeps_the_balancers_address(origin: Origin) -> None:
    """A LOCAL header (the balancer's own health check) names nobody: the connection's own
    address, 127.0.0.1, is the client."""
    with thor(
        "proxy", "--listen", "127.0.0.1:0", "--upstream", origin.url, "--proxy-protocol"
    ) as proxy:
        port = proxy.listening()
        status, _, seen = through_balancer(port, proxy_v2(CLIENT, command=0), "/health")
        assert status == 200
        assert seen["xff"] == "127.0.0.1"
        assert seen["forwarded"].startswith("for=127.0.0.1;")


# -- (b) a forward proxy --------------------------------------------------------------------------


def test_forward_proxy_with_proxy_protocol(origin: Origin) -> None:
    with thor(
        "proxy",
        "--forward",
        "--listen",
        "127.0.0.1:0",
        "--connect-ports",
        str(origin.port),
        "--proxy-protocol",
    ) as proxy:
        port = proxy.listening()
        # absolute-form GET, after a version 2 header and after a version 1 one
        for header, address in (
            (proxy_v2(("198.51.100.20", 1234)), "198.51.100.20"),
            (proxy_v1(("198.51.100.21", 1235)), "198.51.100.21"),
        ):
            status, _, seen = through_balancer(port, header, f"{origin.url}/fwd?q=1")
            assert status == 200
            assert seen["path"] == "/fwd?q=1"
            assert seen["host"] == f"127.0.0.1:{origin.port}"
            assert seen["xff"] == address
            assert seen["forwarded"].startswith(f"for={address};")
        # CONNECT after the header: the tunnel reaches the origin, which is spoken to directly
        authority = f"127.0.0.1:{origin.port}".encode()
        connect = b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority)
        tunnelled = b"GET /tunnelled HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        answer = answer_to(port, proxy_v2(("198.51.100.22", 1236)) + connect + tunnelled)
        assert answer.startswith(b"HTTP/1.1 200 ")
        origin_answer = answer.split(b"\r\n\r\n", 1)[1]  # (after the proxy's 200)
        assert origin_answer.startswith(b"HTTP/1.1 200 ")
        seen = json.loads(origin_answer.split(b"\r\n\r\n", 1)[1])
        assert (seen["path"], seen["xff"]) == ("/tunnelled", None)


# -- (c) --workers 2 ------------------------------------------------------------------------------


def test_workers_read_the_header(origin: Origin) -> None:
    with thor(
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        origin.url,
        "--proxy-protocol",
        "--workers",
        "2",
        "--worker-header",
    ) as supervisor:
        found = supervisor.expect(r" on http://127\.0\.0\.1:(\d+) \(2 workers: (\d+), (\d+);")
        port = int(found.group(1))
        workers = {int(found.group(2)), int(found.group(3))}
        seen_by: set[int] = set()
        for i in range(400):  # new connections until both workers answered (bounded)
            client = (f"192.0.2.{i % 250 + 1}", 10000 + i)
            status, fields, seen = through_balancer(port, proxy_v2(client), f"/w{i}")
            assert status == 200
            assert (seen["path"], seen["xff"]) == (f"/w{i}", client[0])
            seen_by.add(int(fields["x-thor-worker"]))
            if seen_by == workers:
                break
        assert seen_by == workers
        supervisor.signal(signal.SIGTERM)
        assert supervisor.wait() == 0


# -- (d) from a --config file ---------------------------------------------------------------------


def test_proxy_protocol_from_the_config_file(origin: Origin, tmp_path: Path) -> None:
    path = tmp_path / "proxy.toml"
    path.write_text(
        config_text(origin.url)
        + '\n[proxy]\nproxy_protocol = true\ntrusted_hops = ["192.0.2.0/24"]\n'
    )
    with thor("proxy", "--config", str(path)) as proxy:
        port = proxy.listening()
        status, _, seen = through_balancer(port, proxy_v2(CLIENT), "/file", FORGED)
        assert status == 200
        assert seen["xff"] == "203.0.113.5, 192.0.2.9"  # trusted by the file's trusted_hops
        status, _, seen = through_balancer(port, proxy_v1(("198.51.100.7", 5)), "/file", FORGED)
        assert status == 200
        assert seen["xff"] == "198.51.100.7"  # not trusted: the forged field is dropped
        # the file's setting is on: a request without a header is not served
        assert answer_to(port, b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n") == b""


def test_without_the_setting_a_header_is_a_bad_request(origin: Origin, tmp_path: Path) -> None:
    """The other way round: the file says nothing, so a PROXY header is not HTTP (400)."""
    path = tmp_path / "proxy.toml"
    path.write_text(config_text(origin.url))
    with thor("proxy", "--config", str(path)) as proxy:
        port = proxy.listening()
        answer = answer_to(port, proxy_v1(CLIENT) + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 ")


# -- (e) missing and malformed headers ------------------------------------------------------------

REQUEST = b"GET /bad HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

# (bytes sent, whether the sender then shuts its side down, why)
BAD: list[tuple[bytes, bool, str]] = [
    (REQUEST, False, "no header: HTTP straight away"),
    (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", False, "no header: a TLS ClientHello"),
    (b"PROXY TCP4 192.0.2.999 127.0.0.1 40000 80\r\n" + REQUEST, False, "v1: a bad address"),
    (b"PROXY TCP6 192.0.2.9 127.0.0.1 40000 80\r\n" + REQUEST, False, "v1: IPv4 in TCP6"),
    (b"PROXY TCP4 192.0.2.9 127.0.0.1 +4000 80\r\n" + REQUEST, False, "v1: a signed port"),
    (b"PROXY TCP4 192.0.2.9\n" + REQUEST, False, "v1: a bare LF"),
    (b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n" + REQUEST, False, "v1: too long"),
    (bytes([*proxy_v2(CLIENT)[:12], 0x11, *proxy_v2(CLIENT)[13:]]) + REQUEST, False, "v2: v1"),
    (bytes([*proxy_v2(CLIENT)[:12], 0x2F, *proxy_v2(CLIENT)[13:]]) + REQUEST, False, "v2: cmd"),
    (proxy_v2(CLIENT)[:14] + b"\xff\xff" + REQUEST, False, "v2: longer than the limit"),
    (proxy_v2(CLIENT)[:14] + b"\x00\x04" + b"\x00" * 4 + REQUEST, False, "v2: short addresses"),
    (proxy_v2(CLIENT)[:20], True, "v2: the sender stops inside the header"),
    (b"PROXY TCP4 192.0.2.9 127.0.0.1", True, "v1: the sender stops inside the header"),
]


def test_bad_headers_are_closed_and_the_next_good_one_is_served(origin: Origin) -> None:
    with thor(
        "proxy", "--listen", "127.0.0.1:0", "--upstream", origin.url, "--proxy-protocol"
    ) as proxy:
        port = proxy.listening()
        for i, (data, half_close, why) in enumerate(BAD):
            assert answer_to(port, data, half_close) == b"", why  # closed without a response
            client = (f"198.51.100.{i + 1}", 20000 + i)
            header = proxy_v2(client) if i % 2 else proxy_v1(client)
            status, _, seen = through_balancer(port, header, f"/good{i}")
            assert status == 200, why
            assert (seen["path"], seen["xff"]) == (f"/good{i}", client[0]), why
        assert proxy.proc.poll() is None  # still running
