"""Code written for classic thor (0.17) runs unchanged: the facade, the module layout, and the
internal names real applications reach for (API.md: "thor (the facade)")."""

from __future__ import annotations

import http.client
import pickle
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import thor
import thor.http.error
import thor.loop
from thor.events import EventEmitter

ROOT = Path(__file__).resolve().parent.parent

CLASSIC_NAMES = [
    "on", "run", "schedule", "stop", "TcpClient", "TcpServer", "TcpConnection", "UdpEndpoint",
    "HttpClient", "HttpClientExchange", "HttpServer", "HttpServerExchange", "EventListener",
    "RawHeaderListType", "OriginType", "Address", "DnsResult", "DnsResultList", "TlsClient",
]  # fmt: skip


def run_fresh(code: str) -> str:
    """Run ``code`` in a new interpreter (a truly bare ``import thor``); return its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("name", CLASSIC_NAMES)
def test_the_facade_has_the_classic_name(name: str) -> None:
    assert getattr(thor, name) is not None
    assert name in dir(thor)


def test_version_is_a_string() -> None:
    assert isinstance(thor.__version__, str) and thor.__version__


def test_shortcuts_are_the_default_loops_methods() -> None:
    assert thor.run == thor.loop._loop.run
    assert thor.stop == thor.loop._loop.stop
    assert thor.schedule == thor.loop._loop.schedule
    assert thor.on is thor.events.on


def test_import_thor_is_cheap_and_submodules_resolve_as_attributes() -> None:
    out = run_fresh(
        """
        import sys
        import thor
        print("http loaded at import:", "thor.http.server" in sys.modules)
        print(thor.http.server.HttpServerExchange.__name__)
        print(thor.http.client.HttpClientExchange.__name__)
        print(thor.http.error.UrlError.__name__, thor.http.uri.parse_uri.__name__)
        print(thor.http.common.get_header.__name__)
        print(thor.events.EventEmitter.__name__, thor.loop.LoopBase.__name__)
        print(thor.tcp.TcpConnection.__name__, thor.tls.TlsClient.__name__)
        print(thor.udp.UdpEndpoint.__name__, thor.dns.lookup.__name__)
        """
    )
    lines = out.splitlines()
    assert lines[0] == "http loaded at import: False"
    assert lines[1:] == [
        "HttpServerExchange", "HttpClientExchange", "UrlError parse_uri", "get_header",
        "EventEmitter LoopBase", "TcpConnection TlsClient", "UdpEndpoint lookup",
    ]  # fmt: skip


def test_annotations_written_against_classic_modules_evaluate() -> None:
    """REDbot annotates with thor.http.server.HttpServerExchange and thor.loop.LoopBase."""
    out = run_fresh(
        """
        import thor
        def handler(exchange: thor.http.server.HttpServerExchange,
                    loop: thor.loop.LoopBase) -> None: ...
        print(handler.__annotations__["exchange"].__name__)
        """
    )
    assert out.strip() == "HttpServerExchange"


def test_http_exports_the_classic_helpers() -> None:
    for name in ["HttpClient", "HttpClientExchange", "HttpServer", "HttpServerExchange",
                 "get_header", "header_dict", "header_names", "hop_by_hop_hdrs",
                 "idempotent_methods", "safe_methods", "strip_hop_by_hop",
                 "OriginType", "RawHeaderListType"]:  # fmt: skip
        assert getattr(thor.http, name) is not None
        assert getattr(thor.http.common, name, None) is not None or name[0].isupper()


def test_the_default_loop_is_reachable_and_configurable() -> None:
    loop = thor.loop._loop
    assert isinstance(loop, thor.loop.LoopBase)
    old = loop.precision
    try:
        loop.precision = 0.2  # what REDbot's daemon does
        assert loop.precision == 0.2
    finally:
        loop.precision = old
    reports: list[str] = []
    loop.debug_out = lambda message, profile: reports.append(message)  # type: ignore[method-assign]
    try:
        assert isinstance(loop.scheduled_events(), list)
        assert isinstance(loop.registered_fd_handlers(), list)
    finally:
        del loop.debug_out


def test_errors_pickle_under_their_classic_module_path() -> None:
    for cls in (thor.http.error.HttpError, thor.http.error.UrlError,
                thor.http.error.ExtraDataError, thor.http.error.ChunkError,
                thor.http.error.HeaderSpaceError):  # fmt: skip
        err = cls("some detail")
        data = pickle.dumps(err)
        assert b"thor.http.error" in data
        back = pickle.loads(data)
        assert type(back) is cls
        assert back.detail == "some detail"
        assert back.desc == cls.desc
        assert "detail" in back.__dict__
    assert thor.http.error.HttpError().detail is None  # construction with no arguments


def test_emitter_subclasses_pickle_with_their_own_getstate() -> None:
    back = pickle.loads(pickle.dumps(_Saved()))
    assert back.result == 42
    back.on("x", lambda: None)  # usable again after unpickling
    assert back.emit("x")


class _Saved(EventEmitter):
    def __init__(self) -> None:
        EventEmitter.__init__(self)
        self.result = 42
        self.on("done", print)

    def __getstate__(self) -> dict[str, object]:
        state = EventEmitter.__getstate__(self)
        return state


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_seed_readme_server_runs() -> None:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "seed_readme_server.py"), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/")
                response = conn.getresponse()
                break
            except ConnectionRefusedError:
                assert server.poll() is None, server.communicate()[1]
                assert time.monotonic() < deadline, "the example server never listened"
                time.sleep(0.05)
        assert response.status == 200
        assert response.read() == b"Hello, world!"
        assert response.getheader("Content-Type") == "text/plain"
        conn.close()
    finally:
        server.terminate()
        server.communicate(timeout=10)


def test_internal_names_applications_reach_for() -> None:
    """REDbot reads exchange.http_conn.tcp_conn.socket.getpeername() on the server side and
    exchange.conn (.tcp_conn, .res_version), res_version and input_*_length on the client."""
    loop = thor.loop.make()
    seen: dict[str, object] = {}

    def on_exchange(exchange: thor.HttpServerExchange) -> None:
        @thor.on(exchange)
        def request_done(trailers: object) -> None:
            tcp_conn = exchange.http_conn.tcp_conn
            assert tcp_conn is not None
            seen["peer"] = tcp_conn.socket.getpeername()[0]
            seen["input_header_length"] = exchange.http_conn.input_header_length
            exchange.response_start(b"200", b"OK", [(b"Content-Length", b"2")])
            exchange.response_body(b"ok")
            exchange.response_done([])

    server = thor.HttpServer(b"127.0.0.1", 0, loop=loop)
    server.on("exchange", on_exchange)
    client = thor.HttpClient(loop)
    exchange = client.exchange()

    @thor.on(exchange)
    def response_start(status: bytes, phrase: bytes, headers: object) -> None:
        seen["res_version"] = exchange.res_version
        assert exchange.conn is not None
        seen["conn_tcp"] = exchange.conn.tcp_conn is not None
        seen["conn_res_version"] = exchange.conn.res_version

    @thor.on(exchange)
    def response_done(trailers: object) -> None:
        seen["input_transfer_length"] = exchange.input_transfer_length
        seen["client_header_length"] = exchange.input_header_length
        client.close()  # the server sees the close, and its graceful shutdown completes
        server.on("stop", loop.stop)
        server.graceful_shutdown()

    @thor.on(exchange)
    def error(err: object) -> None:
        seen["error"] = err
        loop.stop()

    exchange.request_start(b"GET", b"http://127.0.0.1:%d/" % server.port, [])
    exchange.request_done([])
    loop.schedule(10, loop.stop)
    loop.run()
    loop.close()
    assert "error" not in seen, seen
    assert seen["peer"] == "127.0.0.1"
    assert isinstance(seen["input_header_length"], int) and seen["input_header_length"] > 0
    assert seen["res_version"] == seen["conn_res_version"] == b"1.1"
    assert seen["conn_tcp"] is True
    assert seen["input_transfer_length"] == 2
    assert isinstance(seen["client_header_length"], int) and seen["client_header_length"] > 0
