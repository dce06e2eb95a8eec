"""ReverseProxy failures: 502 for a refused connection or a malformed upstream response, 504 for
an upstream that does not answer in time, a truncated response when the upstream fails after
the response started, and smuggling attempts (CL+TE, obs-fold, a bad chunk) that close the
client's connection without reaching the origin."""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

import http_server_support as support
import proxy_support as ps
import pytest

from thor.http.proxy import AccessRecord

if TYPE_CHECKING:
    from proxy_support import Harness

    from thor.http.server import HttpServerExchange

harness = ps.harness


def free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


class RawOrigin:
    """A raw-socket origin in a thread: answers each connection's first request with
    ``reply`` (then closes), or never answers when ``reply`` is None."""

    def __init__(self, reply: bytes | None, close: bool = True) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.reply = reply
        self.close_after = close
        self.requests: list[bytes] = []
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self) -> None:
        try:
            while True:
                conn, _ = self.listener.accept()
                self.conns.append(conn)
                conn.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    pass
                self.requests.append(data)
                if self.reply is not None:
                    conn.sendall(self.reply)
                    if self.close_after:
                        conn.close()
        except OSError:
            return

    def stop(self) -> None:
        self.listener.close()
        for conn in self.conns:
            conn.close()


def get(harness: Harness, port_server: object, request: bytes = b"") -> support.Response:
    sock = ps.raw_request(harness, port_server, request or b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")  # type: ignore[arg-type]
    return support.ResponseReader(sock).read()


def test_refused_connection_is_502(harness: Harness) -> None:
    front, proxy = ps.make_proxy(harness, f"http://127.0.0.1:{free_port()}")
    records: list[AccessRecord] = []
    proxy.on("access", records.append)
    proxy.client.connect_attempts = 1
    response = harness.client(lambda: get(harness, front))
    assert response.status == b"502"
    assert records[0].status == 502 and records[0].error is not None


def test_malformed_upstream_response_is_502_and_closes(harness: Harness) -> None:
    origin = RawOrigin(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    try:
        front, _proxy = ps.make_proxy(harness, origin.url)

        def client() -> tuple[support.Response, bool]:
            sock = ps.raw_request(harness, front, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
            reader = support.ResponseReader(sock)
            response = reader.read()
            return response, support.closed_by_peer(sock)

        response, closed = harness.client(client)
    finally:
        origin.stop()
    assert response.status == b"502"
    assert response.header(b"connection") == [b"close"]  # announced (RFC 9112 §9.6)
    assert closed


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        # the server's serialiser refuses the status: the upstream's fault, not an internal one
        (b"HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok", "099"),
        # (the parser's error class speaks of a request: the record says it is the response)
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", "gzip"),
    ],
)
def test_an_unrelayable_upstream_response_is_a_bad_upstream_response(
    harness: Harness, reply: bytes, error: str
) -> None:
    origin = RawOrigin(reply)
    try:
        front, proxy = ps.make_proxy(harness, origin.url)
        records: list[AccessRecord] = []
        errors: list[Exception] = []
        proxy.on("access", records.append)
        proxy.on("error", errors.append)

        def client() -> tuple[support.Response, bool]:
            sock = ps.raw_request(harness, front, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
            response = support.ResponseReader(sock).read()
            return response, support.closed_by_peer(sock)

        response, closed = harness.client(client)
    finally:
        origin.stop()
    assert response.status == b"502"
    assert response.body == b"Bad upstream response\n"
    assert response.header(b"connection") == [b"close"]
    assert closed
    assert errors == []  # not reported as an error of the proxy's
    assert records[0].status == 502
    assert records[0].error is not None
    assert records[0].error.startswith("bad upstream response: ")
    assert error in records[0].error


def test_an_upstream_sending_1xx_without_end_is_cut_off_with_502(harness: Harness) -> None:
    """An origin sending more interim responses than the proxy's client takes
    (``max_nonfinal_responses``, 20): the client gets the 20 relayed, then a 502 and the
    close, instead of 103s for as long as the origin likes."""
    origin = RawOrigin(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" * 30 + b"HTTP/1.1 200 OK\r\n"
    )
    try:
        front, proxy = ps.make_proxy(harness, origin.url)
        assert proxy.client.max_nonfinal_responses == 20

        def client() -> bytes:
            sock = ps.raw_request(harness, front, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
            return support.recv_until_close(sock)

        data = harness.client(client)
    finally:
        origin.stop()
    assert data.count(b"HTTP/1.1 103 Early Hints\r\n") == 20
    assert data.rpartition(b"\r\n\r\nHTTP/1.1 ")[2].startswith(b"502 Bad Gateway\r\n")


def test_nul_in_an_upstream_field_is_never_forwarded(harness: Harness) -> None:
    origin = RawOrigin(b"HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\nContent-Length: 2\r\n\r\nok")
    try:
        front, _proxy = ps.make_proxy(harness, origin.url)

        def client() -> bytes:
            sock = ps.raw_request(harness, front, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
            return support.recv_until_close(sock)

        data = harness.client(client)
    finally:
        origin.stop()
    assert data.startswith(b"HTTP/1.1 502 ")
    assert b"\x00" not in data and b"X-Bad" not in data


def test_silent_upstream_is_504(harness: Harness) -> None:
    origin = RawOrigin(None)
    try:
        front, proxy = ps.make_proxy(harness, origin.url)
        proxy.client.read_timeout = 0.3
        proxy.client.retry_limit = 0
        response = harness.client(lambda: get(harness, front))
    finally:
        origin.stop()
    assert response.status == b"504"
    assert origin.requests and origin.requests[0].startswith(b"GET /x HTTP/1.1\r\n")


def test_upstream_failing_mid_body_truncates_the_response(harness: Harness) -> None:
    origin = RawOrigin(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
    try:
        front, _proxy = ps.make_proxy(harness, origin.url)

        def client() -> bytes:
            sock = ps.raw_request(harness, front, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
            return support.recv_until_close(sock)

        data = harness.client(client)
    finally:
        origin.stop()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Length: 100" in head
    assert body == b"only part"  # and the connection closed: the client sees it short


def test_upstream_close_delimited_body_is_rechunked(harness: Harness) -> None:
    origin = RawOrigin(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
    try:
        front, _proxy = ps.make_proxy(harness, origin.url)
        response = harness.client(lambda: get(harness, front))
    finally:
        origin.stop()
    assert response.status == b"200"
    assert response.header(b"transfer-encoding") == [b"chunked"]
    assert response.body == b"until the end"


SMUGGLING = {
    "cl_te": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
    ),
    "obs_fold": (
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n folded\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"
    ),
    "bad_chunk": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
    ),
    "te_not_chunked_last": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"
    ),
    "double_cl": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
    ),
}


def test_smuggling_attempts_close_and_never_reach_the_origin(harness: Harness) -> None:
    reached: list[HttpServerExchange] = []
    origin = harness.server(reached.append)
    origin.on("exchange", support.hello_handler())
    front, _proxy = ps.make_proxy(harness, ps.origin_url(origin))

    def client() -> dict[str, tuple[bytes, bool]]:
        out = {}
        for name, request in SMUGGLING.items():
            sock = ps.raw_request(harness, front, request)
            reader = support.ResponseReader(sock)
            status = reader.read().status
            out[name] = (status, support.closed_by_peer(sock))
        return out

    results = harness.client(client, settle=0.2)
    for name, (status, closed) in results.items():
        assert status[:1] in (b"4", b"5"), name
        assert closed, name
    assert not [ex.uri for ex in reached]


def test_upstream_total_timeout_cuts_an_origin_that_drips_inside_the_read_timeout(
    harness: Harness,
) -> None:
    """An origin sends its head a byte at a time, each just inside ``upstream_read_timeout``:
    without a total limit the client waits as long as the origin likes. With
    ``upstream_total_timeout`` the exchange ends there: 504, the head never complete."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
                if stop.wait(0.1):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    threading.Thread(target=drip, daemon=True).start()
    try:
        front, proxy = ps.make_proxy(harness, f"http://127.0.0.1:{listener.getsockname()[1]}")
        proxy.upstream_read_timeout = 1.0
        proxy.upstream_total_timeout = 0.5
        proxy.client.retry_limit = 0
        response = harness.client(lambda: get(harness, front))
    finally:
        stop.set()
        listener.close()
    assert proxy.client.total_timeout == 0.5
    assert response.status == b"504"
