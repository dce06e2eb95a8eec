"""HttpClient.defer_writes: a request written from inside a loop pass waits in its
connection's queue until the pass's IO is dispatched (thor-net's TcpConnection.defer_writes),
then goes out; False writes it at once. Against Python's http.server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import http_client_support as support
import pytest

if TYPE_CHECKING:
    from http_client_support import EchoServer, Harness, Recorder, Script, ScriptedServer

    from thor.http.client import HttpClient


harness = support.harness
echo_server = support.echo_server
scripted = support.scripted
read_request = support.read_request
response = support.response


def _queued_after_request(
    harness: Harness,
    client: HttpClient,
    echo_server: EchoServer,
    body: bytes,
    method: bytes = b"PUT",
) -> tuple[list[int], list[Recorder]]:
    """Fetch once, then ``method`` from that response's 'response_done' listener (a loop
    pass, on the pooled connection); the bytes its connection holds right after
    request_done."""
    queued: list[int] = []
    recs: list[Recorder] = []

    def again(rec: Recorder) -> None:
        if len(recs) == 1:
            recs.append(harness.fetch(client, echo_server.url("/second"), method, body=body))
            conn = recs[1].exchange.conn
            assert conn is not None and conn.tcp_conn is not None
            queued.append(conn.tcp_conn.write_buffer_size)

    harness.on_finished = again
    recs.append(harness.fetch(client, echo_server.url("/first")))
    harness.run()
    return queued, recs


def test_requests_written_in_a_pass_wait_for_its_io_dispatch(
    harness: Harness, echo_server: EchoServer
) -> None:
    client = harness.client()
    assert client.defer_writes is True
    queued, recs = _queued_after_request(harness, client, echo_server, b"hello")
    assert queued and queued[0] > len(b"hello")  # the head and the body, still queued
    assert [r.status for r in recs] == [b"200", b"200"]
    echoed = json.loads(bytes(recs[1].body))
    assert (echoed["method"], echoed["path"], echoed["body"]) == ("PUT", "/second", "hello")
    assert echo_server.accepts == 1


def test_the_first_write_of_a_post_goes_at_once_the_rest_waits(
    harness: Harness, echo_server: EchoServer
) -> None:
    # whether the kernel took a POST's first bytes decides whether it may be retried
    client = harness.client()
    queued, recs = _queued_after_request(harness, client, echo_server, b"hello", b"POST")
    assert queued == [len(b"hello")]  # the head went out; the body waits for the pass's end
    assert [r.status for r in recs] == [b"200", b"200"]
    echoed = json.loads(bytes(recs[1].body))
    assert (echoed["method"], echoed["body"]) == ("POST", "hello")


def test_defer_writes_false_writes_at_once(harness: Harness, echo_server: EchoServer) -> None:
    client = harness.client(defer_writes=False)
    queued, recs = _queued_after_request(harness, client, echo_server, b"hello")
    assert queued == [0]
    assert [r.status for r in recs] == [b"200", b"200"]
    assert json.loads(bytes(recs[1].body))["body"] == "hello"


def test_many_requests_started_in_one_pass_all_complete(
    harness: Harness, echo_server: EchoServer
) -> None:
    client = harness.client(max_server_conn=4)
    recs: list[Recorder] = []

    def burst() -> None:  # from a callback of the running loop: every write is deferred
        for n in range(20):
            recs.append(
                harness.fetch(client, echo_server.url(f"/n{n}"), b"PUT", body=b"x" * (n * 1000))
            )

    harness.then(burst)
    harness.run()
    assert [r.status for r in recs] == [b"200"] * 20
    for n, rec in enumerate(recs):
        echoed = json.loads(bytes(rec.body))
        assert (echoed["path"], len(echoed["body"])) == (f"/n{n}", n * 1000)
    assert echo_server.accepts <= 4


def test_a_post_whose_first_write_meets_a_reset_pooled_connection_is_retried(
    harness: Harness, scripted: Callable[[Script], ScriptedServer]
) -> None:
    # The first write of a request that is not idempotent goes out at once, not deferred: if
    # the kernel refuses it, no byte was taken and the request may go again (on a new
    # connection); deferred, the failure would only show after the write had "succeeded".
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        rest = bytearray()
        sock.settimeout(5)
        if index == 0:
            _, _, rest = read_request(sock, rest)
            sock.sendall(response(200, b"first"))
            if not server.event("reset").wait(5):
                return
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # the idle pooled connection: an RST
            server.event("was_reset").set()
            return
        while True:
            try:
                _head, body, rest = read_request(sock, rest)
            except OSError:
                return
            sock.sendall(response(200, b"second:" + body))

    server = scripted(script)
    client = harness.client()
    st: dict[str, Any] = {}

    def write_body() -> None:  # a timer: the RST arrived after the pass that started the POST
        server.event("reset").set()
        st["was_reset"] = server.event("was_reset").wait(5)
        time.sleep(0.02)  # (loopback delivers the RST at once; a margin all the same)
        st["post"].exchange.request_body(b"hello")
        st["post"].exchange.request_done([])

    def after_first(rec: Recorder) -> None:
        if "post" not in st:  # on the pooled connection (the probe passes: nothing is wrong yet)
            st["post"] = harness.fetch(client, server.url("/post"), b"POST", done=False)
            st["pooled"] = st["post"].exchange.conn is not None
            harness.loop.schedule(0.05, write_body)

    harness.on_finished = after_first
    harness.fetch(client, server.url("/first"))
    harness.run(timeout=5)
    post = st["post"]
    assert st["pooled"] and st["was_reset"]
    assert post.error is None, f"POST not retried: {post.error!r}"
    assert (post.status, bytes(post.body)) == (b"200", b"second:hello")


@pytest.mark.parametrize("how", ["loop.stop", "client.close"])
def test_a_request_written_before_stop_in_the_same_pass_reaches_the_server(
    harness: Harness, scripted: Callable[[Script], ScriptedServer], how: str
) -> None:
    # the client's connections are aborted when the loop stops (or the client closes):
    # what was written before goes out first, as it did when writes were not deferred
    def script(sock: socket.socket, index: int, server: ScriptedServer) -> None:
        rest = bytearray()
        sock.settimeout(5)
        while True:
            try:
                head, body, rest = read_request(sock, rest)
                server.notes.append(head.split(b"\r\n")[0] + b" " + body)
                sock.sendall(response(200, b"ok"))
            except OSError:
                return

    server = scripted(script)
    client = harness.client()

    def after_first(rec: Recorder) -> None:
        if rec.exchange.uri.endswith(b"/first"):
            harness.fetch(client, server.url("/last"), b"PUT", body=b"bye")
            if how == "client.close":
                client.close()
            harness.loop.stop()

    harness.on_finished = after_first
    harness.fetch(client, server.url("/first"))
    harness.run(timeout=5, until_done=False)
    deadline = time.monotonic() + 5
    while len(server.notes) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.notes == [b"GET /first HTTP/1.1 ", b"PUT /last HTTP/1.1 bye"]
